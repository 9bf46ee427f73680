"""The one place that knows how a loss is reduced: none / mean / sum / batchmean.

A criterion hands over its unreduced loss (weights already applied), an optional `where` mask and,
when its mean is a *weighted* mean, the per-element `normalizer` (e.g. ``weight[label]`` for
cross-entropy): mean is then ``sum(loss) / sum(normalizer)`` over the unmasked elements, exactly as
torch divides. Without a normalizer, mean divides by the number of unmasked elements.
Means over zero elements (or zero total weight) are nan, as in torch.
"""

from __future__ import annotations

import jax.numpy as jnp


def reduce_loss(loss, reduction: str, *, where=None, normalizer=None, batch_size=None):
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
    if normalizer is None and where is None:
        return jnp.mean(loss)
    if normalizer is None:
        denominator = jnp.sum(where, dtype=loss.dtype)
    else:
        normalizer = jnp.broadcast_to(normalizer, loss.shape).astype(loss.dtype)
        if where is not None:
            normalizer = jnp.where(where, normalizer, jnp.zeros((), loss.dtype))
        denominator = jnp.sum(normalizer)
    return total / denominator


def finish(loss, result_dtype):
    """Casts a loss computed in the compute dtype back to the inputs' dtype."""
    return loss.astype(result_dtype)

