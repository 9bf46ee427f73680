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
(`jaxloss._kernels.softmax_ce`); this module only maps its arguments onto a split class axis.

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

from ._core import checks
from ._core.class_inputs import class_indices
from ._core.precision import dtypes
from ._core.reduction import finish, reduce_summed
from ._core.renames import renamed_keywords
from ._kernels.chunked_head import (
    DEFAULT_CHUNK_SIZE,
    HeadArrays,
    HeadOptions,
    LossOrSumAndCount,
    head_loss,
)
from ._kernels.contrastive import (
    clip_rows_on_axis,
    device_loss,
    pair_inputs,
    sigmoid_gather_rows,
    sigmoid_ring_rows,
)
from ._kernels.distillation import (
    DistillArrays,
    Divergence,
    distill_options,
    head_distillation,
    token_labels,
)
from ._kernels.softmax_ce import ClassAxis, Head, RowTargets, softmax_cross_entropy_rows
from ._kernels.token_stats import HeadStatsOptions, TokenStats, head_log_probs, stats_extras
from ._kernels.vocab_blocks import block_label_weights

__all__ = [
    "cross_entropy",
    "linear_cross_entropy",
    "linear_log_probs",
    "linear_distillation_loss",
    "clip_loss",
    "siglip_loss",
]

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


def _num_classes(fn, num_classes, local_width, shards, axis_name) -> int:
    """The true vocabulary size: `num_classes`, or every class of the blocks."""
    padded = local_width * shards
    if num_classes is None:
        return padded
    what = f" (the {shards} blocks of {local_width} classes along {axis_name!r})"
    return checks.int_in_range(fn, "num_classes", num_classes, 1, padded, what)


def _padding_mask(classes: ClassAxis, local_width: int, num_classes: int):
    """This block's classes below `num_classes` (None when nothing is padding)."""
    if num_classes == classes.size:
        return None
    positions = lax.broadcasted_iota(jnp.int32, (local_width,), 0)
    return positions + classes.offset(local_width) < num_classes


def _head_vocabulary(fn, axis_name, num_classes, local_width):
    """(classes, padding mask, true size) of a linear head's vocabulary: whole on this device
    (None, None, V) without `axis_name`, else split over it in blocks of `local_width`."""
    if axis_name is None:
        if num_classes is not None:
            raise ValueError(f"{fn}: `num_classes` is for a split vocabulary (`axis_name`).")
        return None, None, local_width
    shards = _axis_size(fn, "axis_name", axis_name)
    num_classes = _num_classes(fn, num_classes, local_width, shards, axis_name)
    classes = ClassAxis(axis_name, local_width * shards)
    return classes, _padding_mask(classes, local_width, num_classes), num_classes


def _block(fn, name, value, width):
    """A per-class array given as this device's (width,) block."""
    if value is None:
        return None
    value = checks.float_array(fn, name, value)
    if value.shape != (width,):
        raise ValueError(
            f"{fn}: `{name}` must be this device's block of the per-class values, shape "
            f"[{width}]; got {list(value.shape)}."
        )
    return value


@renamed_keywords(weight="class_weights")
def cross_entropy(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    axis_name: AxisName,
    num_classes: int | None = None,
    class_weights: ArrayLike | None = None,
    ignore_index: int | None = -100,
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
    softcap: float | None = None,
    where: ArrayLike | None = None,
    reduction: ParallelReduction = "mean",
    batch_axis_name: AxisName | None = None,
) -> LossOrSumAndCount:
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
      class_weights: this device's ``(V/k,)`` block of the class weights (sharded like the
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

    Examples:
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
    z = checks.float_array(fn, "logits", logits)
    y = checks.int_array(fn, "labels", labels)
    checks.reduction(fn, reduction, ("none", "mean", "sum", "sum_and_count"))
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
    num_classes = _num_classes(fn, num_classes, local_width, shards, axis_name)
    padded = local_width * shards
    class_weights = _block(fn, "class_weights", class_weights, local_width)
    checks.head_options(fn, label_smoothing, z_loss, softcap)
    where = checks.where_mask(fn, where, y.shape, "one loss per token")
    result_dtype, compute = dtypes(z)

    classes = ClassAxis(axis_name, padded)
    class_mask = _padding_mask(classes, local_width, num_classes)
    indices = class_indices(fn, y, num_classes, ignore_index=ignore_index, where=where)
    safe = indices.safe.reshape(-1)
    class_weight = (
        None if class_weights is None else lax.stop_gradient(class_weights.astype(compute))
    )
    label_weight = block_label_weights(indices, class_weight, classes, compute).reshape(-1)
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
        smooth=not checks.known_zero(label_smoothing),
        z_loss=float(z_loss),
        softcap=None if softcap is None else float(softcap),
        classes=classes,
    )
    rows = z.reshape(-1, local_width)
    loss = softmax_cross_entropy_rows(rows, targets, head=head)
    if reduction == "none":
        return finish(loss.reshape(y.shape), result_dtype)
    count = jnp.sum(jnp.where(valid, label_weight, jnp.zeros((), compute)))
    return reduce_summed(
        jnp.sum(loss), count, reduction, result_dtype, batch_axis_name=batch_axis_name
    )


@renamed_keywords(weight="class_weights")
def linear_cross_entropy(
    x: ArrayLike,
    w: ArrayLike,
    labels: ArrayLike,
    *,
    axis_name: AxisName | None = None,
    batch_axis_name: AxisName | None = None,
    num_classes: int | None = None,
    bias: ArrayLike | None = None,
    class_weights: ArrayLike | None = None,
    ignore_index: int | None = -100,
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
    softcap: float | None = None,
    where: ArrayLike | None = None,
    reduction: ParallelReduction = "mean",
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> LossOrSumAndCount:
    r"""The fused `jaxloss.linear_cross_entropy` inside ``jax.shard_map``: this device's
    tokens, and either the whole head or its block of a vocabulary split over ``axis_name``.

    Two layouts, combinable:

    - tokens split over ``batch_axis_name`` (data or FSDP parallelism) with the whole head
      ``w`` on every device: each device walks its own tokens in chunks; JAX's transpose of
      the replicated head sums dW (and db) over the token shards, one psum of (V, D).
    - the head split on the vocabulary over ``axis_name`` (tensor parallelism): ``w`` is
      this device's ``(V/k, D)`` block (``bias`` and ``class_weights`` its ``(V/k,)`` blocks); per
      chunk an online logsumexp is combined across ``axis_name`` with O(chunk) collectives,
      and dx, partial on each device, is summed by one psum. No device holds more than a
      (chunk, V/k) block of logits.

    Args:
      x: this device's ``(..., D)`` hidden states.
      w: the ``(V, D)`` head, or with ``axis_name`` this device's ``(V/k, D)`` block.
      labels: integer *global* class indices of ``x.shape[:-1]``.
      axis_name: the mesh axis (or axes) the vocabulary is split over, or None.
      batch_axis_name: the mesh axis (or axes) the tokens are split over, or None: the
        reductions then run over every token shard.
      num_classes: with ``axis_name``, the true vocabulary size of a padded one (see
        `jaxloss.parallel.cross_entropy`).
      bias: optional ``(V,)`` bias, or with ``axis_name`` this device's ``(V/k,)`` block.
      class_weights: optional ``(V,)`` class weights, or with ``axis_name`` this device's block.
      ignore_index: as in `jaxloss.linear_cross_entropy`.
      label_smoothing: as in `jaxloss.linear_cross_entropy` (over the global vocabulary).
      z_loss: as in `jaxloss.linear_cross_entropy` (of the global logsumexp).
      softcap: as in `jaxloss.linear_cross_entropy`.
      where: optional boolean mask of this device's tokens (``x.shape[:-1]``).
      chunk_size: tokens per chunk, as in `jaxloss.linear_cross_entropy`.
      reduction: ``'none'``, ``'mean'``, ``'sum'`` or ``'sum_and_count'``.

    Returns:
      As `jaxloss.parallel.cross_entropy`.

    Examples:
      >>> from jax.sharding import NamedSharding, PartitionSpec as P
      >>> mesh = jax.make_mesh((1, 1), ("data", "model"))
      >>> x = jax.random.normal(jax.random.key(0), (8, 4))
      >>> w = jax.random.normal(jax.random.key(1), (10, 4))
      >>> labels = jnp.arange(8)
      >>> shard = lambda a, spec: jax.device_put(a, NamedSharding(mesh, spec))
      >>> loss = jax.shard_map(
      ...     lambda x, w, y: jaxloss.parallel.linear_cross_entropy(
      ...         x, w, y, axis_name="model", batch_axis_name="data"),
      ...     mesh=mesh, in_specs=(P("data"), P("model"), P("data")), out_specs=P(),
      ... )(shard(x, P("data")), shard(w, P("model")), shard(labels, P("data")))
      >>> bool(jnp.allclose(loss, jaxloss.cross_entropy(x @ w.T, labels)))
      True
    """
    fn = "parallel.linear_cross_entropy"
    x, w, y = checks.linear_head(fn, x, w, labels, reduction, chunk_size)
    if batch_axis_name is not None:
        _axis_size(fn, "batch_axis_name", batch_axis_name)
    local_width = w.shape[0]
    bias = _block(fn, "bias", bias, local_width)
    class_weights = _block(fn, "class_weights", class_weights, local_width)
    checks.head_options(fn, label_smoothing, z_loss, softcap)
    where = checks.where_mask(fn, where, y.shape, "one loss per token")
    classes, class_mask, num_classes = _head_vocabulary(fn, axis_name, num_classes, local_width)
    arrays = HeadArrays(bias=bias, weight=class_weights, class_mask=class_mask, where=where)
    options = HeadOptions(
        ignore_index=ignore_index,
        label_smoothing=label_smoothing,
        z_loss=z_loss,
        softcap=softcap,
        reduction=reduction,
        chunk_size=chunk_size,
    )
    return head_loss(
        fn,
        x,
        w,
        y,
        arrays,
        options,
        classes=classes,
        num_classes=num_classes,
        batch_axis_name=batch_axis_name,
    )


def linear_log_probs(
    x: ArrayLike,
    w: ArrayLike,
    labels: ArrayLike,
    *,
    axis_name: AxisName | None = None,
    num_classes: int | None = None,
    bias: ArrayLike | None = None,
    temperature: float = 1.0,
    softcap: float | None = None,
    ignore_index: int | None = -100,
    where: ArrayLike | None = None,
    with_entropy: bool = False,
    with_logsumexp: bool = False,
    with_log_sum_sq_probs: bool = False,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> jax.Array | TokenStats:
    r"""`jaxloss.linear_log_probs` inside ``jax.shard_map``: this device's tokens, and either
    the whole head or its block of a vocabulary split over ``axis_name``. Over a split
    vocabulary each chunk's row max is one pmax and its statistics (Σ e^z, the label's logit,
    for the entropy Σ e^z z, for log Σ p² Σ e^{2z}) one psum of O(chunk) values; dx, partial
    on each device, is summed by one psum in the backward pass. Nothing is reduced over the
    tokens, so a token split needs no axis name (JAX's transpose of a replicated head sums dW
    over the token shards).

    Args:
      x: this device's ``(..., D)`` hidden states.
      w: the ``(V, D)`` head, or with ``axis_name`` this device's ``(V/k, D)`` block.
      labels: integer *global* token indices of ``x.shape[:-1]``.
      axis_name: the mesh axis (or axes) the vocabulary is split over, or None.
      num_classes: with ``axis_name``, the true vocabulary size of a padded one: entries at
        or beyond it get probability exactly 0.
      bias: optional ``(V,)`` bias, or with ``axis_name`` this device's ``(V/k,)`` block.
      temperature: as in `jaxloss.linear_log_probs`.
      softcap: as in `jaxloss.linear_log_probs`.
      ignore_index: as in `jaxloss.linear_log_probs`.
      where: optional boolean mask of this device's tokens.
      with_entropy: also return the entropy.
      with_logsumexp: also return the logsumexp.
      with_log_sum_sq_probs: also return log Σ p².
      chunk_size: tokens per chunk.

    Returns:
      As `jaxloss.linear_log_probs`, for this device's tokens.

    Examples:
      >>> from jax.sharding import NamedSharding, PartitionSpec as P
      >>> mesh = jax.make_mesh((1, 1), ("data", "model"))
      >>> x = jax.random.normal(jax.random.key(0), (8, 4))
      >>> w = jax.random.normal(jax.random.key(1), (10, 4))
      >>> labels = jnp.arange(8)
      >>> shard = lambda a, spec: jax.device_put(a, NamedSharding(mesh, spec))
      >>> log_probs = jax.shard_map(
      ...     lambda x, w, y: jaxloss.parallel.linear_log_probs(x, w, y, axis_name="model"),
      ...     mesh=mesh, in_specs=(P("data"), P("model"), P("data")), out_specs=P("data"),
      ... )(shard(x, P("data")), shard(w, P("model")), shard(labels, P("data")))
      >>> bool(jnp.allclose(log_probs, jaxloss.token_log_probs(x @ w.T, labels), atol=1e-6))
      True
    """
    fn = "parallel.linear_log_probs"
    x, w, y = checks.linear_head(fn, x, w, labels, "none", chunk_size)
    local_width = w.shape[0]
    bias = _block(fn, "bias", bias, local_width)
    checks.head_options(fn, 0.0, 0.0, softcap)
    where = checks.where_mask(fn, where, y.shape, "one value per token")
    classes, class_mask, num_classes = _head_vocabulary(fn, axis_name, num_classes, local_width)
    extras = stats_extras(fn, with_entropy, with_logsumexp, with_log_sum_sq_probs)
    options = HeadStatsOptions(temperature, softcap, ignore_index, extras, chunk_size)
    arrays = HeadArrays(bias=bias, class_mask=class_mask, where=where)
    return head_log_probs(fn, x, w, y, arrays, options, classes=classes, num_classes=num_classes)


def linear_distillation_loss(
    x_student: ArrayLike,
    w_student: ArrayLike,
    x_teacher: ArrayLike,
    w_teacher: ArrayLike,
    labels: ArrayLike | None = None,
    *,
    axis_name: AxisName | None = None,
    batch_axis_name: AxisName | None = None,
    num_classes: int | None = None,
    bias_student: ArrayLike | None = None,
    bias_teacher: ArrayLike | None = None,
    divergence: Divergence = "jsd",
    beta: float = 0.5,
    temperature: float = 1.0,
    weight_soft: float = 1.0,
    weight_hard: float = 0.0,
    ignore_index: int | None = -100,
    where: ArrayLike | None = None,
    stop_teacher_gradient: bool = True,
    reduction: Literal["none", "mean", "sum"] = "mean",
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> jax.Array:
    r"""`jaxloss.linear_distillation_loss` inside ``jax.shard_map``: this device's tokens, and
    either both whole heads or their blocks of a vocabulary split over ``axis_name``.

    - Tokens split over ``batch_axis_name``: 'mean' and 'sum' are over every device's tokens
      (one psum of the sum and the count; never a mean of means). JAX's transpose of a
      replicated head sums dW over the token shards.
    - The vocabulary split over ``axis_name`` (tensor parallelism): ``w_student`` and
      ``w_teacher`` are this device's ``(V/k, D_s)`` and ``(V/k, D_t)`` blocks (the biases
      their ``(V/k,)`` blocks). Each chunk's softmaxes take one pmax and one psum of O(chunk)
      values, each divergence sum one psum more; the loss is the global one on every device.

    Args:
      x_student: this device's ``(..., D_s)`` student hidden states.
      w_student: the ``(V, D_s)`` student head, or with ``axis_name`` this device's block.
      x_teacher: this device's ``(..., D_t)`` teacher hidden states.
      w_teacher: the ``(V, D_t)`` teacher head, or with ``axis_name`` this device's block.
      labels: optional integer *global* token indices of ``x_student.shape[:-1]``.
      axis_name: the mesh axis (or axes) the vocabulary is split over, or None.
      batch_axis_name: the mesh axis (or axes) the tokens are split over, or None.
      num_classes: with ``axis_name``, the true vocabulary size of a padded one: entries at
        or beyond it get probability exactly 0.
      bias_student: optional ``(V,)`` bias, or with ``axis_name`` this device's block.
      bias_teacher: optional ``(V,)`` bias, or with ``axis_name`` this device's block.
      divergence: as in `jaxloss.distillation_loss`.
      beta: as in `jaxloss.distillation_loss`.
      temperature: as in `jaxloss.distillation_loss`.
      weight_soft: as in `jaxloss.distillation_loss`.
      weight_hard: as in `jaxloss.distillation_loss`.
      ignore_index: as in `jaxloss.distillation_loss`.
      where: optional boolean mask of this device's tokens.
      stop_teacher_gradient: as in `jaxloss.distillation_loss`.
      reduction: ``'none'`` (this device's tokens), ``'mean'`` or ``'sum'``.
      chunk_size: tokens per chunk.

    Returns:
      A scalar (the same on every device of both axes), or with ``'none'`` one loss per token
      of this device.

    Examples:
      >>> from jax.sharding import NamedSharding, PartitionSpec as P
      >>> mesh = jax.make_mesh((1, 1), ("data", "model"))
      >>> keys = jax.random.split(jax.random.key(0), 4)
      >>> x_s, x_t = jax.random.normal(keys[0], (8, 4)), jax.random.normal(keys[1], (8, 6))
      >>> w_s, w_t = jax.random.normal(keys[2], (10, 4)), jax.random.normal(keys[3], (10, 6))
      >>> shard = lambda a, spec: jax.device_put(a, NamedSharding(mesh, spec))
      >>> loss = jax.shard_map(
      ...     lambda *a: jaxloss.parallel.linear_distillation_loss(
      ...         *a, axis_name="model", batch_axis_name="data"
      ...     ),
      ...     mesh=mesh, in_specs=(P("data"), P("model"), P("data"), P("model")), out_specs=P(),
      ... )(shard(x_s, P("data")), shard(w_s, P("model")), shard(x_t, P("data")),
      ...   shard(w_t, P("model")))
      >>> want = jaxloss.distillation_loss(x_s @ w_s.T, x_t @ w_t.T)
      >>> bool(jnp.allclose(loss, want, rtol=1e-5))
      True
    """
    fn = "parallel.linear_distillation_loss"
    x_s, w_s, x_t, w_t = checks.two_heads(
        fn, x_student, w_student, x_teacher, w_teacher, chunk_size
    )
    if batch_axis_name is not None:
        _axis_size(fn, "batch_axis_name", batch_axis_name)
    options = distill_options(
        fn,
        divergence,
        beta,
        temperature,
        weight_soft,
        weight_hard,
        stop_teacher_gradient,
        ignore_index,
        reduction,
        labels,
        chunk_size,
    )
    local_width = w_s.shape[0]
    classes, class_mask, num_classes = _head_vocabulary(fn, axis_name, num_classes, local_width)
    tokens = x_s.shape[:-1]
    arrays = DistillArrays(
        x_teacher=x_t,
        w_teacher=w_t,
        bias=_block(fn, "bias_student", bias_student, local_width),
        bias_teacher=_block(fn, "bias_teacher", bias_teacher, local_width),
        class_mask=class_mask,
        where=checks.where_mask(fn, where, tokens, "one value per token"),
    )
    y = None if labels is None else token_labels(fn, labels, tokens)
    return head_distillation(
        fn,
        x_s,
        w_s,
        y,
        arrays,
        options,
        classes=classes,
        num_classes=num_classes,
        batch_axis_name=batch_axis_name,
    )


# Two-tower contrastive losses over a batch split along `axis_name` --------------------------


def clip_loss(
    image_embeddings: ArrayLike,
    text_embeddings: ArrayLike,
    scale: ArrayLike,
    bias: ArrayLike | None = None,
    *,
    axis_name: AxisName,
    local_loss: bool = False,
    gather_with_grad: bool = True,
    normalize: bool = False,
    eps: float = 1e-12,
    group_ids: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: Literal["none", "mean", "sum"] = "mean",
) -> jax.Array:
    r"""`jaxloss.clip_loss` inside ``jax.shard_map`` with the batch split over ``axis_name``:
    each device holds its ``(B/n, D)`` rows of both towers. Both towers are all-gathered, as
    open_clip's ``ClipLoss`` does on each rank, and:

    - ``local_loss=False``: every device forms the whole (B, B) logits and its value is the
      global loss;
    - ``local_loss=True``: each device forms only its rows against the global batch, two
      (B/n, B) blocks, and its value is its rows' share (the mean over devices is the loss).

    ``gather_with_grad`` says whether the gradient flows back through the gather (JAX's
    transpose of ``all_gather``, a reduce-scatter), as open_clip's ``gather_with_grad``.
    What ``jax.grad`` of ``lax.pmean(loss, axis_name)`` gives each device, for its own rows
    (n devices, L the global loss):

    - ``gather_with_grad=True`` (the default here): ∂L/∂(own rows), the global gradient, with
      either ``local_loss``;
    - ``gather_with_grad=False, local_loss=False`` (open_clip's default): (1/n)·∂L/∂(own
      rows). Each device's own value has the exact gradient for its rows; data-parallel
      averaging then divides it by n, which Adam-like optimisers do not notice;
    - ``gather_with_grad=False, local_loss=True``: only the terms where its rows are the
      queries, (1/n)·∂L_own/∂(own rows); the terms where they are another device's keys are
      lost (a different gradient, as in open_clip).

    The gradient with respect to the shared ``scale`` and ``bias`` is the global one in each
    setting (summed over the devices).
    What each device's value means (open_clip's per-rank loss): with ``local_loss`` it is this
    device's rows' share, n·Σ(own rows)/B for 'mean' (B the counted rows of the global batch)
    and Σ(own rows) for 'sum', so that ``lax.pmean`` ('mean') or ``lax.psum`` ('sum') over
    ``axis_name`` is the global loss; without ``local_loss`` every device's value is the
    global loss. ``'none'`` gives this device's rows' losses.

    Args:
      image_embeddings: this device's ``(B/n, D)`` rows of one tower.
      text_embeddings: this device's ``(B/n, D)`` rows of the other.
      scale: the logit scale as a value, a scalar replicated over the devices.
      bias: optional scalar logit bias, replicated.
      axis_name: the mesh axis (or axes) the batch is split over; device i holds rows
        ``[i·B/n, (i+1)·B/n)``.
      local_loss: each device's rows against the global batch (memory (B/n, B)) instead of the
        whole (B, B).
      gather_with_grad: let the gradient flow through the gathered embeddings.
      normalize: as in `jaxloss.clip_loss`.
      eps: as in `jaxloss.clip_loss`.
      group_ids: optional integer ``(B/n,)`` group ids of this device's rows.
      where: optional boolean ``(B/n,)`` mask of this device's rows.
      reduction: ``'none'`` (this device's rows), ``'mean'`` or ``'sum'``.

    Returns:
      A scalar, or with ``'none'`` this device's ``(B/n,)`` row losses.

    Examples:
      >>> from jax.sharding import NamedSharding, PartitionSpec as P
      >>> mesh = jax.make_mesh((1,), ("data",))
      >>> image = jax.random.normal(jax.random.key(0), (8, 4))
      >>> text = jax.random.normal(jax.random.key(1), (8, 4))
      >>> shard = lambda a: jax.device_put(a, NamedSharding(mesh, P("data")))
      >>> loss = jax.jit(jax.shard_map(
      ...     lambda i, t: jax.lax.pmean(
      ...         jaxloss.parallel.clip_loss(i, t, 5.0, axis_name="data", local_loss=True),
      ...         "data",
      ...     ),
      ...     mesh=mesh, in_specs=(P("data"), P("data")), out_specs=P(),
      ... ))(shard(image), shard(text))
      >>> bool(jnp.allclose(loss, jaxloss.clip_loss(image, text, 5.0), rtol=1e-6))
      True
    """
    fn = "parallel.clip_loss"
    checks.reduction(fn, reduction)
    checks.python_bool(fn, "local_loss", local_loss)
    checks.python_bool(fn, "gather_with_grad", gather_with_grad)
    size = _axis_size(fn, "axis_name", axis_name)
    pairs = pair_inputs(
        fn, image_embeddings, text_embeddings, scale, bias,
        normalize=normalize, eps=eps, group_ids=group_ids, where=where,
    )  # fmt: skip
    keys = pairs.keys
    rows = clip_rows_on_axis(
        pairs.image, keys.text.astype(pairs.image.dtype), pairs.scale, pairs.bias, keys.ids,
        keys.valid, axis_name=axis_name, local_loss=local_loss,
        gather_with_grad=gather_with_grad,
    )  # fmt: skip
    valid = keys.valid
    if not local_loss and valid is not None:
        valid = lax.all_gather(valid, axis_name, tiled=True)
    loss = device_loss(
        rows, valid, reduction, axis_name=axis_name, axis_size=size, local=local_loss
    )
    return finish(loss, pairs.result_dtype)


def siglip_loss(
    image_embeddings: ArrayLike,
    text_embeddings: ArrayLike,
    scale: ArrayLike,
    bias: ArrayLike | None = None,
    *,
    axis_name: AxisName,
    method: Literal["ring", "gather"] = "ring",
    normalize: bool = False,
    eps: float = 1e-12,
    group_ids: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: Literal["none", "mean", "sum"] = "mean",
) -> jax.Array:
    r"""`jaxloss.siglip_loss` inside ``jax.shard_map`` with the batch split over ``axis_name``:
    each device holds its ``(B/n, D)`` rows of both towers and scores its image rows against
    every text row of the global batch.

    - ``method='ring'`` (open_clip's default ``bidir``): the texts travel a bidirectional ring
      of collective permutes, ⌊(n-1)/2⌋ rounds in each direction and one more to the right
      when n is even, so each device receives n-1 blocks of (B/n, D) texts and holds its rows
      against one (B/n, B/n) block per direction at a time. The gradient is a second walk of
      the ring (the texts travel again, each with the gradient the devices it visits add for
      it, which one last permute takes home), so nothing of size (B/n, B) exists in either
      pass. Forward-mode differentiation (``jax.jvp``) of the ring is not available: it is a
      custom VJP.
    - ``method='gather'``: one all-gather of the texts and a (B/n, B) block, open_clip's
      ``gather``: fewer collectives, more memory; every transformation applies.

    Either way, the gradient flows across devices as in open_clip (its exchanges carry their
    gradient): ``jax.grad`` of ``lax.pmean(loss, axis_name)`` is the global gradient for
    each device's rows, and for the shared ``scale`` and ``bias``. Each device's value is
    open_clip's per-rank value.
    What each device's value means (open_clip's per-rank loss): this device's rows' share,
    n·Σ(own rows)/B for 'mean' (B the counted rows of the global batch) and Σ(own rows) for
    'sum', so that ``lax.pmean`` ('mean') or ``lax.psum`` ('sum') over ``axis_name`` is the
    global loss. ``'none'`` gives this device's rows' losses.

    Args:
      image_embeddings: this device's ``(B/n, D)`` rows of one tower.
      text_embeddings: this device's ``(B/n, D)`` rows of the other.
      scale: the logit scale as a value, a scalar replicated over the devices.
      bias: optional scalar logit bias, replicated.
      axis_name: the mesh axis (or axes) the batch is split over; device i holds rows
        ``[i·B/n, (i+1)·B/n)``.
      method: ``'ring'`` or ``'gather'``.
      normalize: as in `jaxloss.siglip_loss`.
      eps: as in `jaxloss.siglip_loss`.
      group_ids: optional integer ``(B/n,)`` group ids of this device's rows.
      where: optional boolean ``(B/n,)`` mask of this device's rows.
      reduction: ``'none'`` (this device's rows), ``'mean'`` or ``'sum'``.

    Returns:
      A scalar, or with ``'none'`` this device's ``(B/n,)`` row losses.

    Examples:
      >>> from jax.sharding import NamedSharding, PartitionSpec as P
      >>> mesh = jax.make_mesh((1,), ("data",))
      >>> image = jax.random.normal(jax.random.key(0), (8, 4))
      >>> text = jax.random.normal(jax.random.key(1), (8, 4))
      >>> shard = lambda a: jax.device_put(a, NamedSharding(mesh, P("data")))
      >>> loss = jax.jit(jax.shard_map(
      ...     lambda i, t: jax.lax.pmean(
      ...         jaxloss.parallel.siglip_loss(i, t, 5.0, -2.0, axis_name="data"), "data"
      ...     ),
      ...     mesh=mesh, in_specs=(P("data"), P("data")), out_specs=P(),
      ... ))(shard(image), shard(text))
      >>> bool(jnp.allclose(loss, jaxloss.siglip_loss(image, text, 5.0, -2.0), rtol=1e-6))
      True
    """
    fn = "parallel.siglip_loss"
    checks.reduction(fn, reduction)
    if method not in ("ring", "gather"):
        raise ValueError(f"{fn}: `method` must be 'ring' or 'gather'; got {method!r}.")
    size = _axis_size(fn, "axis_name", axis_name)
    pairs = pair_inputs(
        fn, image_embeddings, text_embeddings, scale, bias,
        normalize=normalize, eps=eps, group_ids=group_ids, where=where,
    )  # fmt: skip
    if method == "ring":
        rows = sigmoid_ring_rows(
            pairs.image, pairs.keys, pairs.scale, pairs.bias, axis_name=axis_name, axis_size=size
        )
    else:
        rows = sigmoid_gather_rows(
            pairs.image, pairs.keys, pairs.scale, pairs.bias, axis_name=axis_name
        )
    loss = device_loss(
        rows, pairs.keys.valid, reduction, axis_name=axis_name, axis_size=size, local=True
    )
    return finish(loss, pairs.result_dtype)
