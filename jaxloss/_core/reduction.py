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

import jax.numpy as jnp
import numpy as np
from jax import lax

# The reductions every criterion takes ('batchmean' only where torch has it: kl_div).
Reduction = Literal["none", "mean", "sum"]


def reduce_loss(
    loss, reduction: str, *, where=None, normalizer=None, batch_size=None, empty_mean=None
):
    """`empty_mean`: what 'mean' over no elements gives instead of nan (torchvision's box
    losses give 0, so a batch without matched boxes adds nothing)."""
    if where is not None:
        loss = jnp.where(where, loss, jnp.zeros((), loss.dtype))
    if reduction == "none":
        return loss
    total = jnp.sum(loss)
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
        return jnp.mean(loss)
    return total / mean_denominator(loss.shape, loss.dtype, where=where, normalizer=normalizer)


def mean_denominator(shape, dtype, *, where=None, normalizer=None):
    """What 'mean' divides by: the number of unmasked elements, or the sum of `normalizer`
    (e.g. the class weight of each label) over them. For losses summed elsewhere (fused)."""
    if normalizer is None:
        if where is None:
            return jnp.asarray(np.prod(shape), dtype)
        return jnp.sum(jnp.broadcast_to(where, shape), dtype=dtype)
    normalizer = jnp.broadcast_to(normalizer, shape).astype(dtype)
    if where is not None:
        normalizer = jnp.where(where, normalizer, jnp.zeros((), dtype))
    return jnp.sum(normalizer)


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
