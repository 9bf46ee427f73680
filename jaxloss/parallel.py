"""Vocab-parallel cross-entropy, for code inside ``jax.shard_map`` whose logits are split along
the class (vocabulary) axis over a mesh axis.

Each device holds a ``(N, V/k)`` block of the logits, classes ``[i·V/k, (i+1)·V/k)`` on the
device at index i of ``axis_name``, and the labels of its N tokens (global class indices).
The loss is the global one, computed from O(N) statistics: one ``pmax`` of the row max and one
``psum`` of the stacked per-row sums (Σ exp, the label's logit, Σ w·x when smoothing), so no
device ever holds a full row. Label smoothing uses the *global* V and Σ_c x_c, z-loss and
soft-capping the global logsumexp. The backward pass is local: each device's gradient block is
``p_c`` scaled minus the label and smoothing terms, from the forward pass's logsumexp, with no
collective. The per-row math is the cross-entropy kernel every other criterion uses
(`jaxloss._softmax_ce`); this module only maps its arguments onto a split class axis.

Why a separate namespace rather than an ``axis_name=`` argument on `jaxloss.cross_entropy`:
inside ``shard_map`` the logits are a *block*, not the array the other functions describe
(shapes, ``weight`` and ``class_mask`` are local; labels are global), and the call is only
valid where ``axis_name`` is bound. Code outside ``shard_map`` needs none of this: under
``jit`` with ``NamedSharding``, `jaxloss.cross_entropy` on class-sharded logits already
partitions the same way (no all-gather of the logits).
"""

from __future__ import annotations

from typing import Any, Literal

import jax
import jax.numpy as jnp
from jax import lax
from jax.typing import ArrayLike

from . import _checks
from ._labels import class_indices
from ._precision import dtypes
from ._reduction import finish
from ._softmax_ce import ClassAxis, Head, RowTargets, softmax_cross_entropy_rows

ParallelReduction = Literal["none", "mean", "sum", "sum_and_count"]
AxisName = str | tuple[str, ...]


def _axis_size(fn: str, name: str, axis: Any) -> int:
    """The size of a bound mesh axis (or tuple of axes), with a clear error elsewhere."""
    names = axis if isinstance(axis, tuple) else (axis,)
    if not names or not all(isinstance(a, str) for a in names):
        raise TypeError(
            f"{fn}: `{name}` must be a mesh axis name or a tuple of them; got {axis!r}."
        )
    try:
        return int(lax.axis_size(axis))
    except NameError as error:
        raise ValueError(
            f"{fn}: `{name}`={axis!r} is not a bound mesh axis here; call {fn} inside "
            "jax.shard_map over a mesh with that axis (outside shard_map, give the sharded "
            "array to jaxloss.cross_entropy under jit instead)."
        ) from error


def cross_entropy(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    axis_name: AxisName,
    num_classes: int | None = None,
    weight: ArrayLike | None = None,
    ignore_index: int | None = -100,
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
    softcap: float | None = None,
    where: ArrayLike | None = None,
    reduction: ParallelReduction = "mean",
    batch_axis_name: AxisName | None = None,
) -> jax.Array | tuple[jax.Array, jax.Array]:
    r"""Cross-entropy of logits whose class axis is split over mesh axis ``axis_name``, for
    use inside ``jax.shard_map``; equal to `jaxloss.cross_entropy` of the whole logits.

    Args:
      logits: this device's ``(..., V/k)`` block of the logits: classes ``[i·V/k,
        (i+1)·V/k)`` where i is its index along ``axis_name`` (``P(..., axis_name)`` in the
        shard_map's ``in_specs``).
      labels: integer *global* class indices of shape ``logits.shape[:-1]`` (the same on
        every device along ``axis_name``).
      axis_name: the mesh axis (or tuple of axes) the classes are split over.
      num_classes: the true vocabulary size V when the class axis was padded to a multiple
        of the shard count (``V_padded = k·V/k``): padding classes ``>= num_classes`` are
        left out of the softmax, so the loss and gradients equal the unpadded ones. Default:
        the padded size.
      weight: this device's ``(V/k,)`` block of the class weights (sharded like the
        classes), or None. A constant here (no gradient).
      ignore_index: label value that is ignored; ``None`` ignores nothing.
      label_smoothing: ε in [0, 1], spread over the global V (or ``num_classes``).
      z_loss: λ >= 0: each counted row adds PaLM's $\lambda\,\mathrm{lse}^2$ of the global
        logsumexp.
      softcap: c > 0 of Gemma 2's soft-capping $c\tanh(z/c)$ (elementwise, before the
        softmax), or None.
      where: optional boolean mask of ``logits.shape[:-1]``.
      reduction: ``'none'`` (per-token losses of this device's tokens), ``'sum'``,
        ``'mean'`` (Σ w·loss / Σ w over every counted token, torch's weighting), or
        ``'sum_and_count'``: the pair (Σ w·loss, Σ w), for accumulating a global mean over
        micro-batches. With ``batch_axis_name`` the sums run over the tokens of every
        device along those axes too (a global mean, never a mean of per-shard means).
      batch_axis_name: the mesh axis (or axes) the tokens are split over, or None.

    Returns:
      ``'none'``: ``logits.shape[:-1]``; ``'mean'``/``'sum'``: a scalar; ``'sum_and_count'``:
      two scalars. Every value is the same on all devices along ``axis_name`` (and along
      ``batch_axis_name`` once reduced), so ``out_specs=P()`` fits a reduced loss.

    Example:
      >>> from jax.sharding import NamedSharding, PartitionSpec as P
      >>> mesh = jax.make_mesh((1,), ("model",))
      >>> logits = jax.random.normal(jax.random.key(0), (6, 10))
      >>> labels = jnp.array([0, 3, 9, 2, 2, 7])
      >>> blocks = jax.device_put(logits, NamedSharding(mesh, P(None, "model")))
      >>> loss = jax.shard_map(
      ...     lambda z, y: jaxloss.parallel.cross_entropy(z, y, axis_name="model"),
      ...     mesh=mesh, in_specs=(P(None, "model"), P()), out_specs=P(),
      ... )(blocks, labels)
      >>> bool(jnp.allclose(loss, jaxloss.cross_entropy(logits, labels)))
      True
    """
    fn = "parallel.cross_entropy"
    z = _checks.float_array(fn, "logits", logits)
    y = _checks.int_array(fn, "labels", labels)
    _checks.reduction(fn, reduction, ("none", "mean", "sum", "sum_and_count"))
    shards = _axis_size(fn, "axis_name", axis_name)
    if batch_axis_name is not None:
        _axis_size(fn, "batch_axis_name", batch_axis_name)
    if z.ndim < 1:
        raise ValueError(f"{fn}: `logits` must be (..., V/k); got a scalar.")
    if y.shape != z.shape[:-1]:
        raise ValueError(
            f"{fn}: `labels` must have shape logits.shape[:-1] = {list(z.shape[:-1])}; got "
            f"{list(y.shape)}."
        )
    local_width = z.shape[-1]
    padded = local_width * shards
    if num_classes is None:
        num_classes = padded
    if (
        not isinstance(num_classes, int)
        or isinstance(num_classes, bool)
        or not 1 <= num_classes <= padded
    ):
        raise ValueError(
            f"{fn}: `num_classes` must be an int in [1, {padded}] (the {shards} blocks of "
            f"{local_width} classes along {axis_name!r}); got {num_classes!r}."
        )
    if weight is not None:
        weight = _checks.float_array(fn, "weight", weight)
        if weight.shape != (local_width,):
            raise ValueError(
                f"{fn}: `weight` must be this device's block of the class weights, shape "
                f"[{local_width}]; got {list(weight.shape)}."
            )
    _checks.python_number(fn, "label_smoothing", label_smoothing, low=0.0, high=1.0)
    _checks.python_number(fn, "z_loss", z_loss, low=0.0)
    if softcap is not None:
        _checks.python_number(fn, "softcap", softcap, low=0.0, low_inclusive=False)
    where = _checks.where_mask(fn, where, y.shape, "one loss per token")
    result_dtype, compute = dtypes(z)

    classes = ClassAxis(axis_name, padded)
    offset = classes.offset(local_width)
    class_mask = None
    if num_classes < padded:  # padding classes leave the softmax
        class_mask = lax.broadcasted_iota(jnp.int32, (local_width,), 0) + offset < num_classes
    indices = class_indices(fn, y, num_classes, ignore_index=ignore_index, where=where)
    safe = indices.safe.reshape(-1)
    if weight is None:
        class_weight = None
        label_weight = jnp.ones(safe.shape, compute)
    else:
        class_weight = lax.stop_gradient(weight.astype(compute))
        local_label = safe - offset
        here = (local_label >= 0) & (local_label < local_width)
        # w[y] from the blocks: the device holding y contributes it, one O(N) psum.
        picked = class_weight[jnp.where(here, local_label, 0)]
        label_weight = classes.sum(jnp.where(here, picked, jnp.zeros((), compute)))
    bad = indices.out_of_range.reshape(-1)
    label_weight = jnp.where(bad, jnp.asarray(jnp.nan, compute), label_weight)
    valid = indices.valid.reshape(-1)
    targets = RowTargets(
        safe,
        valid,
        label_weight,
        class_weight,
        lax.stop_gradient(jnp.asarray(label_smoothing, compute)),
        class_mask,
    )
    head = Head(
        smooth=not _checks.known_zero(label_smoothing),
        z_loss=float(z_loss),
        softcap=None if softcap is None else float(softcap),
        classes=classes,
    )
    rows = z.reshape(-1, local_width)
    loss = softmax_cross_entropy_rows(rows, targets, head=head)
    if reduction == "none":
        return finish(loss.reshape(y.shape), result_dtype)
    total = jnp.sum(loss)
    count = jnp.sum(jnp.where(valid, label_weight, jnp.zeros((), compute)))
    if batch_axis_name is not None:
        total, count = lax.psum((total, count), batch_axis_name)
    if reduction == "sum":
        return finish(total, result_dtype)
    if reduction == "sum_and_count":
        return finish(total, result_dtype), finish(count, result_dtype)
    return finish(total / count, result_dtype)
