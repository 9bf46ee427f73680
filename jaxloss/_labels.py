"""Class-index labels, prepared once for every criterion that reads them.

cross_entropy, nll_loss, multi_margin_loss, linear_cross_entropy and the adaptive softmax all
take integer class indices with the same rules: positions labelled ``ignore_index`` or masked
by ``where`` do not count (and may hold anything, e.g. padding); a counted label outside
[0, C) raises when the labels are concrete and, under ``jit``, makes that position's loss nan
(never a plausible number); gathers read a safe index (0) wherever the label is not used.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from . import _checks


@dataclasses.dataclass(frozen=True)
class ClassIndices:
    """Labels ready for a kernel: all arrays have the labels' shape."""

    safe: jax.Array  # int32; the label where it counts and is in range, else 0
    valid: jax.Array  # bool; the position counts (not ignore_index, not masked out)
    out_of_range: jax.Array  # bool; the position counts but its label is outside [0, C)

    def label_weights(self, class_weight: jax.Array | None, dtype: Any) -> jax.Array:
        """w[y] per position (1 without class weights), nan where a counted label is out of
        range: multiplying a loss by it makes a bad label give nan under jit."""
        if class_weight is None:
            weights = jnp.ones(self.safe.shape, dtype)
        else:
            weights = class_weight.astype(dtype)[self.safe]
        return jnp.where(self.out_of_range, jnp.asarray(jnp.nan, dtype), weights)


def class_indices(
    fn: str,
    labels: jax.Array,
    num_classes: int,
    *,
    ignore_index: Any = None,
    where: ArrayLike | None = None,
) -> ClassIndices:
    """Validates integer class `labels` against `num_classes` and prepares them."""
    valid = jnp.ones(labels.shape, bool) if ignore_index is None else labels != ignore_index
    if where is not None:
        valid = valid & jnp.asarray(where, bool)
    in_range = (labels >= 0) & (labels < num_classes)
    ok = in_range | ~valid
    allowed = f"[0, {num_classes})" + (
        f" or ignore_index={ignore_index}" if ignore_index is not None else ""
    )
    _checks.value_check(
        fn,
        ok,
        f"class index {{}} in `labels` is out of range; expected {allowed}.",
        _checks.first_violation(labels, ok),
    )
    safe = jnp.where(valid & in_range, labels, 0).astype(jnp.int32)
    return ClassIndices(safe, valid, ~ok)
