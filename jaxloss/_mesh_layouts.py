"""Layouts of a linear-head loss over a mesh: which axes split the tokens and which the
vocabulary, planned from the inputs' shardings on an Explicit mesh, and the per-device loss
run there under ``shard_map`` (`run_on_explicit_mesh`, used by `jaxloss.fused`). Inside the
per-device loss, a vocabulary split over a mesh axis is the one `jaxloss.parallel` takes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import numpy as np
from jax import lax
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from ._core.sharding import has_explicit_axes
from ._kernels.softmax_ce import ClassAxis

# The arrays that follow the head's vocabulary split (the rest follow the tokens).
HEAD_PER_CLASS = ("bias", "weight", "class_mask")


def _spec_of(a) -> tuple:
    spec = tuple(jax.typeof(a).sharding.spec)
    return spec + (None,) * (a.ndim - len(spec))


def _names(entry) -> tuple:
    return () if entry is None else entry if isinstance(entry, tuple) else (entry,)


def run_on_explicit_mesh(
    fn: str,
    per_device: Callable[..., Any],
    x: jax.Array,
    w: jax.Array,
    labels: jax.Array | None,
    arrays: Any,
    out_spec: Any,
    per_class: tuple[str, ...] = HEAD_PER_CLASS,
) -> Any:
    """``per_device`` run under ``shard_map`` in the layout the shardings of `x` and `w`
    describe, on their Explicit mesh:

    - tokens split over the axes of x's leading dimensions (dW, db summed over them);
    - the vocabulary split over the axes of w's first dimension (tensor parallel: O(chunk)
      statistics per chunk, one psum of dx), or over token axes (FSDP: w all-gathered inside,
      dW reduce-scattered by its transpose);
    - a sharded hidden dimension D is gathered first.

    `arrays` is a NamedTuple of optional arrays: those named in `per_class` (``bias``,
    ``weight`` and ``class_mask``; a second head's ``(V, D')`` weight too) follow w's
    vocabulary split, the rest (``where``; a second ``(..., D')`` input) the tokens, their
    trailing axes whole. `labels` may be None. `out_spec` maps the token spec to the output's
    spec(s). ``per_device(x, w, labels, arrays, classes=, num_classes=,
    batch_axis_name=)`` gets this device's blocks, `classes` naming the vocabulary split (None
    when w is whole on the device).
    """
    on_mesh = [a for a in (x, w, labels, *arrays) if a is not None and has_explicit_axes(a)]
    mesh: Any = jax.typeof(on_mesh[0]).sharding.mesh

    def resharded(a, spec) -> Any:
        if a is None or _spec_of(a) == tuple(spec):
            return a
        return jax.sharding.reshard(a, NamedSharding(mesh, P(*spec)))

    x_spec = _spec_of(x)[:-1] + (None,)  # D whole
    token_axes = tuple(a for entry in x_spec for a in _names(entry))
    vocab_entry = _spec_of(w)[0]
    vocab_axes = _names(vocab_entry)
    gather_axes: tuple = ()
    if vocab_axes and set(vocab_axes) <= set(token_axes):
        gather_axes, vocab_axes = vocab_axes, ()  # FSDP: gather w inside
    elif set(vocab_axes) & set(token_axes):
        vocab_axes = ()  # a mixed split: replicate w (correct, not fast)
        vocab_entry = None
    w_spec = (vocab_entry if (vocab_axes or gather_axes) else None, None)
    x, w = resharded(x, x_spec), resharded(w, w_spec)
    token_spec = x_spec[:-1]
    per_class_spec = (w_spec[0],)
    labels = resharded(labels, token_spec)
    spec_by_name = {n: per_class_spec if n in per_class else token_spec for n in arrays._fields}
    arrays = arrays._replace(
        **{n: resharded(a, spec_by_name[n]) for n, a in arrays._asdict().items()}
    )
    present = [name for name, a in arrays._asdict().items() if a is not None]
    num_classes = w.shape[0]
    sizes: dict[str, int] = dict(mesh.shape)
    shards = int(np.prod([sizes[a] for a in vocab_axes + gather_axes], dtype=int))
    if num_classes % shards:
        raise ValueError(
            f"{fn}: the vocabulary of `w` ({num_classes}) must split evenly over the "
            f"{shards} devices of {vocab_axes + gather_axes}; pad w to a multiple and pass "
            "valid_vocab_size."
        )

    def local(x, w, labels, *values):
        blocks = arrays._replace(**{n: None for n in arrays._fields})
        blocks = blocks._replace(**dict(zip(present, values)))
        if gather_axes:
            w = lax.all_gather(w, gather_axes, axis=0, tiled=True)
            gathered = {
                n: lax.all_gather(getattr(blocks, n), gather_axes, axis=0, tiled=True)
                for n in per_class
                if getattr(blocks, n) is not None
            }
            blocks = blocks._replace(**gathered)
        return per_device(
            x,
            w,
            labels,
            blocks,
            classes=ClassAxis(vocab_axes, num_classes) if vocab_axes else None,
            num_classes=num_classes,
            batch_axis_name=token_axes or None,
        )

    in_specs = (P(*x_spec), P(*w_spec), P(*token_spec))
    in_specs += tuple(P(*spec_by_name[n]) for n in present)
    return jax.shard_map(local, mesh=mesh, in_specs=in_specs, out_specs=out_spec(token_spec))(
        x, w, labels, *(getattr(arrays, n) for n in present)
    )
