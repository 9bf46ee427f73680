"""Class-index labels, prepared once for every criterion that reads them.

cross_entropy, nll_loss, multi_margin_loss, linear_cross_entropy and the adaptive softmax all
take integer class indices with the same rules: positions labelled ``ignore_index`` or masked
by ``where`` do not count (and may hold anything, e.g. padding); a counted label outside
[0, C) raises when the labels are concrete and, under ``jit``, makes that position's loss nan
(never a plausible number); gathers read a safe index (0) wherever the label is not used.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax
from jax.typing import ArrayLike

from . import _checks
from ._sharding import explicitly_sharded, has_explicit_axes


def is_index(shape: tuple[int, ...], index: jax.Array, axis: int) -> jax.Array:
    """Boolean array of `shape`, true where the position along `axis` equals `index` (which
    has `shape` without `axis`): a one-hot of class indices, as an iota compare that XLA
    fuses into whatever reads it."""
    axis = axis % len(shape)
    return lax.broadcasted_iota(index.dtype, shape, axis) == jnp.expand_dims(index, axis)


def pick_along_axis(values: jax.Array, index: jax.Array, axis: int) -> jax.Array:
    """values[..., index, ...] along `axis` (index has values' shape without `axis`).

    A gather, except where `axis` is sharded over an Explicit mesh axis: there a gather has no
    sharding rule (and would need the whole axis on every device), so it is a masked
    compare-and-sum, which each shard computes locally and one O(N) sum combines.
    """
    axis = axis % values.ndim
    if not explicitly_sharded(values, axis):
        return jnp.take_along_axis(values, jnp.expand_dims(index, axis), axis).squeeze(axis)
    hit = is_index(values.shape, index, axis)
    return jnp.sum(jnp.where(hit, values, jnp.zeros((), values.dtype)), axis=axis)


@functools.partial(jax.custom_jvp, nondiff_argnums=(2,))
def pick_with_dense_gradient(values: jax.Array, index: jax.Array, axis: int) -> jax.Array:
    """`pick_along_axis`, whose gradient is written in one pass over `values`' shape.

    Autodiff of a gather gives a scatter onto zeros: XLA writes the (N, C) zeros and then
    scatters N values, two passes where one suffices. Here the tangent is the compare-and-sum
    of `pick_along_axis`'s sharded form, so reverse mode (its transpose) writes the gradient
    as one fused select of an iota compare: nll_loss's forward+backward at 8192x128 took
    0.375 against 0.525 ms. The primal is still the gather.
    """
    return pick_along_axis(values, index, axis)


@pick_with_dense_gradient.defjvp
def _pick_with_dense_gradient_jvp(axis, primals, tangents):
    values, index = primals
    t_values, _ = tangents
    hit = is_index(values.shape, index, axis)
    tangent = jnp.sum(jnp.where(hit, t_values, jnp.zeros((), t_values.dtype)), axis=axis)
    return pick_along_axis(values, index, axis), tangent


def lookup(table: jax.Array, index: jax.Array) -> jax.Array:
    """table[index] for a per-class table (C,) and class indices of any shape.

    Indices sharded over an Explicit mesh give the result their sharding (a gather has no
    rule to infer it). A class-sharded table is looked up by compare-and-sum instead, so that
    it is never gathered whole.
    """
    if explicitly_sharded(table, 0):
        wide = jnp.broadcast_to(table, index.shape + table.shape)
        return pick_along_axis(wide, index, -1)
    if has_explicit_axes(index):
        return table.at[index].get(out_sharding=jax.typeof(index).sharding)
    return table[index]


@dataclasses.dataclass(frozen=True)
class ClassIndices:
    """Labels ready for a kernel: all arrays have the labels' shape."""

    safe: jax.Array  # int32; the label where it counts and is in range, else 0
    valid: jax.Array  # bool; the position counts (not ignore_index, not masked out)
    out_of_range: jax.Array  # bool; counts, but its label is outside [0, C) or an excluded class

    def label_weights(self, class_weight: jax.Array | None, dtype: Any) -> jax.Array:
        """w[y] per position (1 without class weights), nan where a counted label is out of
        range: multiplying a loss by it makes a bad label give nan under jit."""
        if class_weight is None:
            weights = jnp.ones(self.safe.shape, dtype)
        else:
            weights = lookup(class_weight.astype(dtype), self.safe)
        return jnp.where(self.out_of_range, jnp.asarray(jnp.nan, dtype), weights)


def class_indices(
    fn: str,
    labels: jax.Array,
    num_classes: int,
    *,
    ignore_index: Any = None,
    where: ArrayLike | None = None,
    class_mask: jax.Array | None = None,
    class_axis: int = -1,
) -> ClassIndices:
    """Validates integer class `labels` against `num_classes` and prepares them.

    `class_mask` (from `_checks.class_mask`: ``(C,)``, or the scores' shape with classes on
    `class_axis`) marks the classes that take part; a counted label on an excluded class is
    as wrong as one out of range.
    """
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
    if class_mask is not None:
        if class_mask.ndim == 1:
            included = lookup(class_mask, safe)
        else:
            included = pick_along_axis(class_mask, safe, class_axis)
        allowed_here = included | ~(valid & in_range)
        _checks.value_check(
            fn,
            allowed_here,
            "class index {} in `labels` points at a class that `class_mask` excludes; a "
            "label must be one of the classes its row's softmax includes.",
            _checks.first_violation(labels, allowed_here),
        )
        ok = ok & allowed_here
        safe = jnp.where(allowed_here, safe, 0)
    return ClassIndices(safe, valid, ~ok)
