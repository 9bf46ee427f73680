"""Fused losses: linear head + cross-entropy without materialising the (N, V) logits.

``linear_cross_entropy(x, w, labels)`` equals ``cross_entropy(x @ w.T + b, labels)`` but walks
the tokens in chunks of ``chunk_size`` rows, so at most a (chunk, V) block of logits exists at a
time. For 'mean' and 'sum' the loss is a sum over rows whose cotangent is one scalar, so the
forward pass of the VJP already forms dx, dW and db for a unit cotangent (three matmuls per
chunk: logits, dx, dW) and the backward pass only scales them; for 'none' the backward
recomputes each chunk's logits (four matmuls). The per-row math (weights, ignore_index, label
smoothing, masks) is the cross-entropy kernel of `jaxloss._softmax_ce`; this module adds
PaLM's z-loss (λ·logsumexp²) and Gemma 2's logit soft-capping (c·tanh(z/c)). The adaptive
softmax, the other way to avoid a full (N, V) softmax, is `jaxloss.adaptive`.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.custom_derivatives import SymbolicZero
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
from jax.typing import ArrayLike

from . import _checks
from ._labels import class_indices
from ._matmul import MatmulForm, form_for, matmul
from ._precision import dtypes
from ._reduction import finish, mean_denominator, reduce_summed
from ._sharding import has_explicit_axes
from ._softmax_ce import (
    ClassAxis,
    Head,
    RowTargets,
    capped,
    global_counts,
    head_forward,
    head_logit_grad,
)

DEFAULT_CHUNK_SIZE = 512  # (512, 32768) f32 logits = 64 MiB; measured as fast as 1024


def _chunk_logits(x, w, b, head: Head, form: MatmulForm = "native"):
    """The capped logits of one chunk, (c, V) = cap(x @ w.T + b)."""
    z = matmul(x, w, ((1,), (1,)), form)
    if b is not None:
        z = z + b.astype(z.dtype)
    return capped(z, head)


@dataclasses.dataclass(frozen=True)
class FusedSettings:
    """Static configuration of one fused call (hashable: it keys the compiled kernel)."""

    head: Head  # smoothing on, z-loss, soft-cap (the rows kernel's options)
    chunk_size: int  # rows per chunk; N is padded to a multiple of it
    summed: bool  # the loss is Σ rows ('mean'/'sum'), not per row ('none')
    matmul: MatmulForm = "native"  # 16-bit operands: native or float32 (jaxloss._matmul)


def _chunk_forward(x, w, b, targets: RowTargets, settings: FusedSettings):
    z = _chunk_logits(x, w, b, settings.head, settings.matmul)
    loss, stats = head_forward(z, targets, settings.head)
    return z, loss, stats.lse


def _chunk_grad(z, x, w, targets: RowTargets, settings: FusedSettings, lse, cotangent, counts):
    """(dx, dW, db) of Σ_i g_i·loss_i over one chunk (dx partial over a split vocabulary)."""
    dz = head_logit_grad(z, targets, lse, cotangent, settings.head, counts).whole()
    # native 16-bit matmuls take 16-bit operands (accumulating in f32); the float32 form
    # keeps dz as it is
    dz_in = dz if settings.matmul == "float32" else dz.astype(x.dtype)
    dx = matmul(dz_in, w, ((1,), (0,)), settings.matmul)  # (c, D)
    dw = matmul(dz_in, x, ((0,), (0,)), settings.matmul)  # (V, D)
    return dx, dw, jnp.sum(dz, axis=0)


def _chunks(array, chunk_size):
    return array.reshape((-1, chunk_size) + array.shape[1:])


class ChunkPass(NamedTuple):
    """What one walk over the chunks returns (dx, dw, db only with a cotangent)."""

    losses: Any  # (N,) per-row losses
    lse: Any  # (N / chunk, chunk) logsumexps
    dx: Any  # (N, D)
    dw: Any  # (V, D)
    db: Any  # (V,)


def _varying_like(values, inputs):
    """`values` typed as varying over every manual mesh axis any of `inputs` varies over
    (inside shard_map, a scan's accumulator must start with the type its sums will have);
    unchanged elsewhere."""
    axes = set()
    for leaf in jax.tree.leaves(inputs):
        manual = getattr(jax.typeof(leaf), "manual_axis_type", None)
        axes |= set(getattr(manual, "varying", ()) or ())
    if not axes:
        return values
    return jax.tree.map(lambda v: lax.pcast(v, tuple(sorted(axes)), to="varying"), values)


def _walk_chunks(
    x, w, b, targets: RowTargets, settings: FusedSettings, *, cotangent=None
) -> ChunkPass:
    """One scan over the row chunks: the forward pass of every call of the fused loss.

    Without `cotangent`: per-row losses and logsumexps. With a per-row `cotangent`: also
    dx (N, D) and the accumulated dW, db of Σ g·loss; each chunk's logits are formed once and
    used for both.
    """
    size = settings.chunk_size
    compute = jnp.promote_types(x.dtype, jnp.float32)
    per_row = [_chunks(a, size) for a in (x, targets.labels, targets.valid, targets.label_weight)]
    if cotangent is not None:
        per_row.append(_chunks(cotangent, size))

    def body(carry, chunk):
        xc, yc, vc, lwc, *rest = chunk
        chunk_targets = targets._replace(labels=yc, valid=vc, label_weight=lwc)
        z, loss, lse_c = _chunk_forward(xc, w, b, chunk_targets, settings)
        if cotangent is None:
            return carry, (loss, lse_c)
        dx, dw, db = _chunk_grad(z, xc, w, chunk_targets, settings, lse_c, rest[0], counts)
        return (carry[0] + dw, carry[1] + db), (loss, lse_c, dx)

    grads = cotangent is not None
    counts = global_counts(targets, w.shape[0], settings.head)
    zeros = None
    if grads:
        zeros = (jnp.zeros(w.shape, compute), jnp.zeros((w.shape[0],), compute))
        zeros = _varying_like(zeros, (x, w, b, targets, cotangent))
    totals, outputs = lax.scan(body, zeros, tuple(per_row))
    outputs = tuple(outputs)  # (losses, lse[, dx])
    dx = outputs[-1].reshape(x.shape) if grads else None
    dw, db = (totals[0], totals[1]) if totals is not None else (None, None)
    return ChunkPass(outputs[0].reshape(-1), outputs[1], dx, dw, db)


def _is_zero(tangent) -> bool:
    return tangent is None or isinstance(tangent, SymbolicZero)


def _row_tangents(x, w, b, targets: RowTargets, settings: FusedSettings, lse, t_x, t_w, t_b):
    """Per-row tangents (N,) of the 'none' loss: Σ_c dloss_i/dz_ic · ż_ic with
    ż = ẋ Wᵀ + x Ẇᵀ + ḃ, chunk by chunk. The scan body is checkpointed, so reverse mode (which
    transposes it) recomputes each chunk's logits instead of saving an (N, V) array, and forms
    dx, dW, db with the same three matmuls per chunk a hand-written backward would."""
    size = settings.chunk_size
    compute = jnp.promote_types(x.dtype, jnp.float32)
    counts = global_counts(targets, w.shape[0], settings.head)
    per_row = [_chunks(a, size) for a in (x, targets.labels, targets.valid, targets.label_weight)]
    per_row += [
        lse,
        jnp.zeros((x.shape[0] // size, size, 0), x.dtype) if _is_zero(t_x) else _chunks(t_x, size),
    ]

    @jax.checkpoint
    def body(_, chunk):
        xc, yc, vc, lwc, lse_c, t_xc = chunk
        chunk_targets = targets._replace(labels=yc, valid=vc, label_weight=lwc)
        z = _chunk_logits(xc, w, b, settings.head, settings.matmul)
        ones = jnp.ones_like(lse_c)
        dz = head_logit_grad(z, chunk_targets, lse_c, ones, settings.head, counts)
        z_dot = jnp.zeros(z.shape, compute)
        if not _is_zero(t_x):
            z_dot = z_dot + matmul(t_xc, w, ((1,), (1,)), settings.matmul)
        if not _is_zero(t_w):
            z_dot = z_dot + matmul(xc, t_w, ((1,), (1,)), settings.matmul)
        if b is not None and not _is_zero(t_b):
            z_dot = z_dot + t_b.astype(compute)
        return None, dz.dot(z_dot)

    _, tangents = lax.scan(body, None, tuple(per_row))
    tangents = tangents.reshape(-1)
    classes = settings.head.classes
    # Over a split vocabulary each device's sum covers its block (reverse mode: no psum).
    return tangents if classes is None else classes.sum(tangents)


def _inner(a, t):
    """Σ a·t in the precision of `a` (float32 or wider)."""
    return jnp.sum(a * t.astype(a.dtype))


@functools.partial(jax.custom_jvp, nondiff_argnums=(4,))
def _fused_with_derivatives(x, w, b, targets: RowTargets, settings: FusedSettings):
    losses = _walk_chunks(x, w, b, targets, settings).losses
    return jnp.sum(losses) if settings.summed else losses


def _fused_jvp(settings, primals, tangents):
    """Forward mode for the fused loss; reverse mode transposes it.

    Summed ('mean'/'sum'): the gradients of the sum for a unit cotangent are formed in the
    forward pass (three matmuls per chunk) and the tangent is their inner product with the
    inputs' tangents, so reverse mode only scales them, as before. Per row ('none'): the
    chunked tangent of `_row_tangents`.
    """
    x, w, b, targets = primals
    t_x, t_w, t_b = tangents[:3]
    if not settings.summed:
        walked = _walk_chunks(x, w, b, targets, settings)
        if _is_zero(t_x) and _is_zero(t_w) and (b is None or _is_zero(t_b)):
            return walked.losses, jnp.zeros_like(walked.losses)
        return walked.losses, _row_tangents(x, w, b, targets, settings, walked.lse, t_x, t_w, t_b)
    unit = jnp.ones(targets.labels.shape, jnp.promote_types(x.dtype, jnp.float32))
    walked = _walk_chunks(x, w, b, targets, settings, cotangent=unit)
    total = jnp.sum(walked.losses)
    tangent = jnp.zeros_like(total)
    if not _is_zero(t_x):
        tangent = tangent + _inner(walked.dx, t_x)
    if not _is_zero(t_w):
        tangent = tangent + _inner(walked.dw, t_w)
    if b is not None and not _is_zero(t_b):
        tangent = tangent + _inner(walked.db, t_b)
    classes = settings.head.classes
    # Over a split vocabulary dx is partial and dW, db are blocks: the tangent sums every
    # device's part, a psum that reverse mode transposes into the one psum of dx.
    return total, tangent if classes is None else classes.sum(tangent)


_fused_with_derivatives.defjvp(_fused_jvp, symbolic_zeros=True)


@functools.partial(jax.jit, static_argnames=("settings",))
def _fused_rows(x, w, b, targets: RowTargets, *, settings: FusedSettings):
    """Row losses (N,) or, with `settings.summed`, their sum; N a multiple of the chunk size.

    Jitted so that eager calls compile once per shape; inside a user's jit it simply inlines.
    """
    return _fused_with_derivatives(x, w, b, targets, settings)


def head_arguments(fn, x, w, labels, reduction, chunk_size):
    """x (..., D), w (V, D) (or a vocabulary block of it) and labels x.shape[:-1], checked,
    with the reduction and the chunk size."""
    x = _checks.float_array(fn, "x", x)
    w = _checks.float_array(fn, "w", w)
    labels = _checks.int_array(fn, "labels", labels)
    _checks.reduction(fn, reduction, ("none", "mean", "sum", "sum_and_count"))
    if x.ndim < 1 or w.ndim != 2 or w.shape[1] != x.shape[-1]:
        raise ValueError(
            f"{fn}: `w` must be (V, D) with D = x.shape[-1] = "
            f"{x.shape[-1] if x.ndim else '?'}; got x {list(x.shape)} and w "
            f"{list(w.shape)}."
        )
    if labels.shape != x.shape[:-1]:
        raise ValueError(
            f"{fn}: `labels` must have shape x.shape[:-1] = {list(x.shape[:-1])}; "
            f"got {list(labels.shape)}."
        )
    if not isinstance(chunk_size, int) or isinstance(chunk_size, bool) or chunk_size < 1:
        raise ValueError(f"{fn}: `chunk_size` must be a positive int; got {chunk_size!r}.")
    return x, w, labels


def _vocabulary_mask(fn, class_mask, valid_vocab_size, num_classes):
    """The (V,) mask of `class_mask` or `valid_vocab_size` (None when neither is given)."""
    if valid_vocab_size is not None:
        if class_mask is not None:
            raise ValueError(f"{fn}: give `class_mask` or `valid_vocab_size`, not both.")
        _checks.int_in_range(
            fn, "valid_vocab_size", valid_vocab_size, 1, num_classes, " (V = w.shape[0])"
        )
        return jnp.arange(num_classes) < valid_vocab_size
    # One mask for every token: the shared check, with the vocabulary as the scores' shape.
    return _checks.class_mask(fn, class_mask, (num_classes,), 0)


def linear_cross_entropy(
    x: ArrayLike,
    w: ArrayLike,
    labels: ArrayLike,
    *,
    bias: ArrayLike | None = None,
    weight: ArrayLike | None = None,
    ignore_index: int | None = -100,
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
    softcap: float | None = None,
    class_mask: ArrayLike | None = None,
    valid_vocab_size: int | None = None,
    where: ArrayLike | None = None,
    reduction: Literal["none", "mean", "sum", "sum_and_count"] = "mean",
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> Any:
    r"""Cross-entropy of a linear head, $\mathrm{CE}(x W^\top + b,\ y)$, without ever
    materialising the (N, V) logits.

    Equal to ``cross_entropy(x @ w.T + bias, labels, weight=..., ignore_index=...,
    label_smoothing=...)`` (same weighting and 'mean' normalisation), computed ``chunk_size``
    rows at a time: extra memory is O(chunk_size · V) besides the gradients. With ``softcap``
    the logits are $c\tanh(z/c)$ (Gemma 2); with ``z_loss`` = λ each counted row adds
    $\lambda\,(\log\sum_c e^{z_c})^2$ (PaLM), which 'mean' divides like the rest.

    Args:
      x: ``(..., D)`` hidden states (leading axes are tokens).
      w: ``(V, D)`` head weight (torch's Linear layout).
      labels: integer classes of ``x.shape[:-1]``; ``ignore_index`` rows count for nothing.
      bias: optional ``(V,)`` head bias.
      weight: optional ``(V,)`` class weights.
      ignore_index: label value that is ignored; ``None`` ignores nothing.
      label_smoothing: ε in [0, 1].
      z_loss: λ >= 0 of PaLM's z-loss.
      softcap: c > 0 of Gemma 2's logit soft-capping, or None.
      class_mask: optional boolean ``(V,)`` mask of the vocabulary entries that take part
        (as `cross_entropy`'s ``class_mask``, one mask for every token): the loss is exactly
        the loss over the included entries alone, and excluded rows of ``w`` get zero
        gradient. A counted label on an excluded entry is an error (nan under ``jit``).
      valid_vocab_size: optional int K: only the first K vocabulary entries take part, the
        usual case of a head padded to a multiple of 128 (the same as ``class_mask =
        arange(V) < K``; give one or the other).
      where: optional boolean mask of ``x.shape[:-1]``.
      reduction: ``'none'``, ``'mean'``, ``'sum'``, or ``'sum_and_count'``: the pair
        (Σ w·loss, Σ w) whose ratio is ``'mean'``, for accumulating a mean over
        micro-batches.
      chunk_size: rows per chunk (a Python int >= 1).

    Returns:
      ``'none'``: one loss per token, ``x.shape[:-1]``; ``'mean'``/``'sum'``: a scalar;
      ``'sum_and_count'``: two scalars.

    Sharded inputs: on an Explicit mesh the loss runs per device under ``shard_map`` in the
    layout the shardings describe (x's leading axes: tokens, data parallel; w's first axis:
    the vocabulary, tensor parallel, or FSDP when that axis is a token axis), with the
    values and gradients of the unsharded call and gradients sharded like their inputs; see
    `jaxloss.parallel.linear_cross_entropy`. On Auto meshes XLA's partitioner decides.

    bfloat16/float16 inputs run their matmuls in that dtype with float32 accumulation, or,
    on a CPU where that is slower (no native bf16 arithmetic), as float32 matmuls: measured
    once per shape and cached (``JAXLOSS_MATMUL_16BIT=native|float32`` fixes it; see
    ``jaxloss/_matmul.py``). The softmax and the sums are float32; gradients come back in the
    inputs' dtypes. Gradients flow
    to ``x``, ``w`` and ``bias``; ``weight`` and ``label_smoothing`` are constants here
    (use `cross_entropy` to differentiate them).

    Examples:
      >>> x = jax.random.normal(jax.random.key(0), (1000, 64))
      >>> w = jax.random.normal(jax.random.key(1), (5000, 64)) * 0.1
      >>> labels = jax.random.randint(jax.random.key(2), (1000,), 0, 5000)
      >>> fused = jaxloss.linear_cross_entropy(x, w, labels, chunk_size=256)
      >>> naive = jaxloss.cross_entropy(x @ w.T, labels)
      >>> bool(jnp.allclose(fused, naive, rtol=1e-5))
      True
    """
    fn = "linear_cross_entropy"
    x, w, labels = head_arguments(fn, x, w, labels, reduction, chunk_size)
    num_classes = w.shape[0]
    if bias is not None:
        bias = _checks.float_array(fn, "bias", bias)
        if bias.shape != (num_classes,):
            raise ValueError(
                f"{fn}: `bias` must have shape [{num_classes}]; got {list(bias.shape)}."
            )
    weight = _checks.class_weight(fn, weight, num_classes)
    _checks.head_options(fn, label_smoothing, z_loss, softcap)
    where = _checks.where_mask(fn, where, labels.shape, "one loss per token")
    class_mask = _vocabulary_mask(fn, class_mask, valid_vocab_size, num_classes)
    options: dict[str, Any] = dict(
        ignore_index=ignore_index,
        label_smoothing=label_smoothing,
        z_loss=z_loss,
        softcap=softcap,
        reduction=reduction,
        chunk_size=chunk_size,
        fn=fn,
    )
    arrays: dict[str, Any] = dict(bias=bias, weight=weight, class_mask=class_mask, where=where)
    if has_explicit_axes(x) or has_explicit_axes(w):
        return _on_explicit_mesh(x, w, labels, arrays, options)
    return _fused_loss(x, w, labels, **arrays, **options)


def _on_explicit_mesh(x, w, labels, arrays, options):
    """The fused loss of arrays sharded on an Explicit mesh, as `shard_map` of the per-device
    loss, in the layout their shardings describe: tokens split over the axes of x's leading
    dimensions (dW, db summed over them), the vocabulary over the axes of w's first (tensor
    parallel: O(chunk) statistics per chunk, one psum of dx), or over token axes (FSDP: w
    all-gathered inside, dW reduce-scattered by its transpose). A sharded hidden dimension D
    is gathered first. Per-class arrays follow w's vocabulary split; labels and `where`
    follow the tokens."""
    fn = options["fn"]
    mesh: Any = jax.typeof(x if has_explicit_axes(x) else w).sharding.mesh

    def spec_of(a):
        spec = tuple(jax.typeof(a).sharding.spec)
        return spec + (None,) * (a.ndim - len(spec))

    def names(entry):
        return () if entry is None else entry if isinstance(entry, tuple) else (entry,)

    def resharded(a, spec) -> Any:
        if a is None or spec_of(a) == tuple(spec):
            return a
        return jax.sharding.reshard(a, NamedSharding(mesh, P(*spec)))

    x_spec = spec_of(x)[:-1] + (None,)  # D whole
    token_axes = tuple(a for entry in x_spec for a in names(entry))
    vocab_entry = spec_of(w)[0]
    vocab_axes = names(vocab_entry)
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
    inputs = dict(arrays)
    inputs["where"] = resharded(arrays["where"], token_spec)
    for name in ("bias", "weight", "class_mask"):
        inputs[name] = resharded(arrays[name], per_class_spec)
    specs = {
        name: (None if a is None else P(*(token_spec if name == "where" else per_class_spec)))
        for name, a in inputs.items()
    }
    present = [name for name in inputs if inputs[name] is not None]
    num_classes = w.shape[0]
    sizes: dict[str, int] = dict(mesh.shape)
    shards = int(np.prod([sizes[a] for a in vocab_axes + gather_axes], dtype=int))
    if num_classes % shards:
        raise ValueError(
            f"{fn}: the vocabulary of `w` ({num_classes}) must split evenly over the "
            f"{shards} devices of {vocab_axes + gather_axes}; pad w to a multiple and pass "
            "valid_vocab_size."
        )
    reduction = options["reduction"]
    if reduction == "none":
        out_specs: Any = P(*token_spec)
    elif reduction == "sum_and_count":
        out_specs = (P(), P())
    else:
        out_specs = P()

    def local(x, w, labels, *values):
        given = dict(zip(present, values))
        full = {name: given.get(name) for name in inputs}
        if gather_axes:
            w = lax.all_gather(w, gather_axes, axis=0, tiled=True)
            for name in ("bias", "weight", "class_mask"):
                if full[name] is not None:
                    full[name] = lax.all_gather(full[name], gather_axes, axis=0, tiled=True)
        classes = ClassAxis(vocab_axes, num_classes) if vocab_axes else None
        return _fused_loss(
            x,
            w,
            labels,
            **full,
            **options,
            classes=classes,
            num_classes=num_classes,
            batch_axis_name=token_axes or None,
        )

    in_specs = (P(*x_spec), P(*w_spec), P(*token_spec)) + tuple(specs[n] for n in present)
    return jax.shard_map(local, mesh=mesh, in_specs=in_specs, out_specs=out_specs)(
        x, w, labels, *(inputs[n] for n in present)
    )


def _fused_loss(
    x,
    w,
    labels,
    *,
    bias,
    weight,
    ignore_index,
    label_smoothing,
    z_loss,
    softcap,
    class_mask,
    where,
    reduction,
    chunk_size,
    fn,
    classes: ClassAxis | None = None,
    num_classes: int | None = None,
    batch_axis_name=None,
) -> Any:
    """The fused loss of validated arguments. With `classes`, `w`, `bias`, `weight` and
    `class_mask` are this device's blocks of a vocabulary split over a mesh axis (inside
    shard_map; `num_classes` its true size), and with `batch_axis_name` the reductions run
    over every token shard."""
    result_dtype, compute = dtypes(x, w)
    local_width = w.shape[0]
    if classes is None:
        indices = class_indices(
            fn, labels, local_width, ignore_index=ignore_index, where=where, class_mask=class_mask
        )
        # Class weights and ε are constants of this loss: gradients flow to x, w and bias.
        class_weight = None if weight is None else lax.stop_gradient(weight.astype(compute))
        label_weight = indices.label_weights(class_weight, compute)
    else:
        assert num_classes is not None
        indices = class_indices(fn, labels, num_classes, ignore_index=ignore_index, where=where)
        if class_mask is not None:  # this block's mask: a label on an excluded class is bad
            included = block_lookup(indices.safe, class_mask.astype(compute), classes) > 0
            bad = indices.valid & ~indices.out_of_range & ~included
            indices = dataclasses.replace(
                indices,
                safe=jnp.where(bad, 0, indices.safe),
                out_of_range=indices.out_of_range | bad,
            )
        class_weight = None if weight is None else lax.stop_gradient(weight.astype(compute))
        label_weight = block_label_weights(indices, class_weight, classes, compute)

    rows = x.reshape(-1, x.shape[-1])
    n = rows.shape[0]
    chunk = max(1, min(chunk_size, n))
    pad = -(-n // chunk) * chunk - n

    def pad_rows(a, value):
        return jnp.pad(a, [(0, pad)] + [(0, 0)] * (a.ndim - 1), constant_values=value) if pad else a

    settings = FusedSettings(
        head=Head(
            smooth=not _checks.known_zero(label_smoothing),
            z_loss=float(z_loss),
            softcap=None if softcap is None else float(softcap),
            classes=classes,
        ),
        chunk_size=chunk,
        summed=reduction != "none",
        matmul=form_for(jnp.result_type(x, w), chunk, x.shape[-1], local_width),
    )
    targets = RowTargets(
        pad_rows(indices.safe.reshape(-1), 0),
        pad_rows(indices.valid.reshape(-1), False),
        pad_rows(label_weight.reshape(-1), 0),
        class_weight,
        lax.stop_gradient(jnp.asarray(label_smoothing, compute)),
        class_mask,
    )
    out = _fused_rows(pad_rows(rows, 0), w, bias, targets, settings=settings)
    if reduction == "none":
        loss = out[:n].reshape(labels.shape)
        return finish(jnp.where(indices.valid, loss, jnp.zeros((), loss.dtype)), result_dtype)
    total = out
    count = mean_denominator(
        labels.shape,
        compute,
        where=indices.valid,
        normalizer=None if weight is None else label_weight,
    )
    return reduce_summed(total, count, reduction, result_dtype, batch_axis_name=batch_axis_name)


def block_lookup(index, block, classes: ClassAxis):
    """table[index] of global class indices from this device's block of a per-class table:
    the device holding the class contributes it, one O(N) psum combines them."""
    width = block.shape[0]
    local_index = index - classes.offset(width)
    here = (local_index >= 0) & (local_index < width)
    picked = block[jnp.where(here, local_index, 0)]
    return classes.sum(jnp.where(here, picked, jnp.zeros((), block.dtype)))


def block_label_weights(indices, class_weight, classes: ClassAxis, dtype):
    """w[y] of global labels from this device's block of the class weights (1 without), nan
    where a counted label is out of range (one O(N) psum, only with class weights)."""
    if class_weight is None:
        weights = jnp.ones(indices.safe.shape, dtype)
    else:
        weights = block_lookup(indices.safe, class_weight.astype(dtype), classes)
    return jnp.where(indices.out_of_range, jnp.asarray(jnp.nan, dtype), weights)
