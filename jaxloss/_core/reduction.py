"""The one place that knows how a loss is reduced: none / mean / sum / batchmean.

A criterion hands over its unreduced loss (weights already applied), an optional `where` mask and,
when its mean is a *weighted* mean, the per-element `normalizer` (e.g. ``weight[label]`` for
cross-entropy): mean is then ``sum(loss) / sum(normalizer)`` over the unmasked elements, exactly as
torch divides. Without a normalizer, mean divides by the number of unmasked elements.
Means over zero elements (or zero total weight) are nan, as in torch, unless the caller asks
for another value (`empty_mean`).
"""

from __future__ import annotations

from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from .ops import reduction_result
from .sharding import explicitly_sharded

# The reductions every criterion takes ('batchmean' only where torch has it: kl_div).
Reduction = Literal["none", "mean", "sum"]


def reduce_loss(
    loss,
    reduction: str,
    *,
    where=None,
    normalizer=None,
    batch_size=None,
    empty_mean=None,
    branched=False,
):
    """`empty_mean`: what 'mean' over no elements gives instead of nan (torchvision's box
    losses give 0, so a batch without matched boxes adds nothing). `branched`: the loss
    selects between formulas elementwise (Huber's |d| < δ), so it is summed by
    `total_in_parts`, as every loss masked by `where` is."""
    if where is not None:
        loss = jnp.where(where, loss, jnp.zeros((), loss.dtype))
    if reduction == "none":
        return loss
    total = total_in_parts(loss) if branched or where is not None else jnp.sum(loss)
    if reduction == "sum":
        return total
    if reduction == "batchmean":
        return total / batch_size if batch_size is not None else total
    # mean
    if empty_mean is not None:
        count = mean_denominator(loss.shape, loss.dtype, where=where, normalizer=normalizer)
        counted = count > 0
        return jnp.where(counted, total / jnp.where(counted, count, 1), empty_mean)
    if normalizer is None and where is None:
        return total / loss.size if branched else jnp.mean(loss)
    return total / mean_denominator(loss.shape, loss.dtype, where=where, normalizer=normalizer)


# The most parts `total_in_parts` splits the last axis into, and the fewest elements per part.
_MAX_PARTS = 8
_MIN_PART = 8


def _parts(shape: tuple[int, ...]) -> int:
    """How many parts `total_in_parts` folds a loss of this shape's last axis onto: the most
    that divide it evenly, each at least `_MIN_PART` wide; 1 for a 1-D loss."""
    if len(shape) < 2:
        return 1
    width = shape[-1]
    for parts in range(_MAX_PARTS, 1, -1):
        if width % parts == 0 and width // parts >= _MIN_PART:
            return parts
    return 1


@jax.custom_jvp
def total_in_parts(loss):
    """Σ loss, with the loss's last axis first folded onto a k-th of it (k <= 8, each part
    at least 8 wide) by adding its k contiguous parts, in the loop that computes the loss.

    Why: XLA:CPU (jaxlib 0.10) gives a sum to a YNNPACK fusion, which takes in the elementwise
    ops before it only where YNNPACK has them: no select and no compare. A loss that selects
    (Huber's |d| < δ, or any loss masked by `where`) is then written out whole by its own
    loop and read back by the sum. Folded part by part first (`reduction_result` ends the
    YNNPACK fusion at the folded array), the loop writes a k-th of it: Huber's mean
    forward+backward at 8192x128 float32 takes 0.66-0.75x the time of the plain sum's
    (in-process A/B, medians of interleaved rounds), hinge_embedding_loss's 0.34-0.45x.
    A loss made only of YNNPACK's ops is better summed plainly: the whole sum is then one
    YNNPACK fusion that writes nothing (folding made BCE with logits 1.6x slower), so
    `reduce_loss` folds only branched or masked losses.

    The total is the same up to rounding (elements a k-th of the axis apart are added first;
    a 16-bit loss is folded in float32, as a plain sum accumulates it). Leading axes, which
    carry the batch and its sharding, stay whole, and so does a last axis split over an
    Explicit mesh; a 1-D loss (its one axis is the batch) is summed plainly. The tangent is
    the plain sum's.
    """
    parts = _parts(loss.shape)
    if parts == 1 or explicitly_sharded(loss, loss.ndim - 1):
        return jnp.sum(loss)
    width = loss.shape[-1] // parts
    wide = loss.astype(jnp.promote_types(loss.dtype, jnp.float32))
    folded = wide[..., :width]
    for part in range(1, parts):
        folded = folded + wide[..., part * width : (part + 1) * width]
    return jnp.sum(reduction_result(folded)).astype(loss.dtype)


@total_in_parts.defjvp
def _total_in_parts_jvp(primals, tangents):
    return total_in_parts(primals[0]), jnp.sum(tangents[0])


def mean_denominator(shape, dtype, *, where=None, normalizer=None):
    """What 'mean' divides by: the number of unmasked elements, or the sum of `normalizer`
    (e.g. the class weight of each label) over them. For losses summed elsewhere (fused)."""
    if normalizer is None:
        if where is None:
            return jnp.asarray(np.prod(shape), dtype)
        return total_in_parts(jnp.broadcast_to(where, shape).astype(dtype))
    normalizer = jnp.broadcast_to(normalizer, shape).astype(dtype)
    if where is None:
        return jnp.sum(normalizer)
    return total_in_parts(jnp.where(where, normalizer, jnp.zeros((), dtype)))


def finish(loss, result_dtype):
    """Casts a loss computed in the compute dtype back to the inputs' dtype."""
    return loss.astype(result_dtype)


def reduce_summed(total, count, reduction: str, result_dtype, *, batch_axis_name=None):
    """'sum', 'mean' (total / count) or 'sum_and_count' (the pair) of a loss summed elsewhere
    with its mean's denominator; with `batch_axis_name` (inside shard_map) both are first
    summed over the token shards along it, so 'mean' is global, never a mean of means."""
    if batch_axis_name is not None:
        total, count = lax.psum((total, count), batch_axis_name)
    if reduction == "sum":
        return finish(total, result_dtype)
    if reduction == "sum_and_count":
        return finish(total, result_dtype), finish(count, result_dtype)
    return finish(total / count, result_dtype)
