"""Embedding and ranking criteria: margin ranking, hinge embedding, cosine embedding and the
triplet losses, plus the pairwise distance they use by default.

Feature vectors lie on the last axis; any leading axes are batch axes.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from . import _checks
from ._ops import hinge
from ._precision import dtypes
from ._reduction import Reduction, finish, reduce_loss


def margin_ranking_loss(
    scores1: ArrayLike,
    scores2: ArrayLike,
    labels: ArrayLike,
    *,
    margin: float = 0.0,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> jax.Array:
    r"""Pairwise ranking loss $\ell = \max(0,\ -y\,(x_1 - x_2) + \text{margin})$, as
    torch's ``margin_ranking_loss``.

    Args:
      scores1: float scores of the first item of each pair.
      scores2: float scores of the second item.
      labels: y = 1 where ``scores1`` should rank higher, -1 where ``scores2`` should; the
        three arrays broadcast together.
      margin: the required gap.
      where: optional boolean mask over the unreduced loss; masked elements count for nothing.
      reduction: ``'none'``, ``'mean'`` or ``'sum'``.

    Returns:
      ``'none'``: the loss in the broadcast shape; ``'mean'``/``'sum'``: a scalar.

    Example:
      >>> loss = jaxloss.margin_ranking_loss(jnp.array([0.8]), jnp.array([0.3]),
      ...                                    jnp.array([-1.0]), margin=0.1)
      >>> round(float(loss), 4)
      0.6
    """
    fn = "margin_ranking_loss"
    x1 = _checks.float_array(fn, "scores1", scores1)
    x2 = _checks.float_array(fn, "scores2", scores2)
    y = _checks.real_array(fn, "labels", labels)
    shape = _checks.broadcast_shape(fn, ("scores1", "scores2", "labels"), (x1, x2, y))
    _checks.python_number(fn, "margin", margin)
    _checks.reduction(fn, reduction)
    where = _checks.where_mask(fn, where, shape)
    result_dtype, compute = dtypes(x1, x2, y)
    loss = hinge(-y.astype(compute) * (x1.astype(compute) - x2.astype(compute)) + margin)
    return finish(reduce_loss(loss, reduction, where=where), result_dtype)


def hinge_embedding_loss(
    distances: ArrayLike,
    labels: ArrayLike,
    *,
    margin: float = 1.0,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> jax.Array:
    r"""Hinge embedding loss, as torch's ``hinge_embedding_loss``: $\ell = x$ where
    y = 1 and $\max(0, \text{margin} - x)$ where y = -1.

    As in torch, a label that is neither 1 nor -1 gets both terms.

    Args:
      distances: float distances (or any scores) x.
      labels: 1 (similar) or -1 (dissimilar), broadcastable with ``distances``.
      margin: the distance beyond which dissimilar pairs cost nothing.
      where: optional boolean mask over the unreduced loss; masked elements count for nothing.
      reduction: ``'none'``, ``'mean'`` or ``'sum'``.

    Returns:
      ``'none'``: the loss in the broadcast shape; ``'mean'``/``'sum'``: a scalar.

    Example:
      >>> round(float(jaxloss.hinge_embedding_loss(jnp.array([0.3, 0.2]),
      ...                                          jnp.array([1.0, -1.0]))), 4)
      0.55
    """
    fn = "hinge_embedding_loss"
    x = _checks.float_array(fn, "distances", distances)
    y = _checks.real_array(fn, "labels", labels)
    shape = _checks.broadcast_shape(fn, ("distances", "labels"), (x, y))
    _checks.python_number(fn, "margin", margin)
    _checks.reduction(fn, reduction)
    where = _checks.where_mask(fn, where, shape)
    result_dtype, compute = dtypes(x, y)
    x = x.astype(compute)
    zero = jnp.zeros((), compute)
    loss = jnp.where(y != 1, hinge(margin - x), zero) + jnp.where(y != -1, x, zero)
    return finish(reduce_loss(loss, reduction, where=where), result_dtype)


# torch's cosine_embedding_loss adds this to each squared norm so that zero vectors give 0, not
# nan; its kernel declares it as a C++ float, so float64 inputs see float32(1e-12) too.
_COSINE_EPSILON = float(np.float32(1e-12))


def cosine_embedding_loss(
    embeddings1: ArrayLike,
    embeddings2: ArrayLike,
    labels: ArrayLike,
    *,
    margin: float = 0.0,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> jax.Array:
    r"""Cosine embedding loss, as torch's ``cosine_embedding_loss``: $1 - \cos(x_1, x_2)$
    where y = 1 and $\max(0, \cos(x_1, x_2) - \text{margin})$ where y = -1 (0 for other
    labels). The cosine is $x_1\cdot x_2 / \sqrt{(|x_1|^2+\epsilon)(|x_2|^2+\epsilon)}$
    with torch's ε = 1e-12, so zero vectors give finite values.

    Args:
      embeddings1: ``(..., D)`` float embeddings.
      embeddings2: ``(..., D)`` float embeddings that broadcast with ``embeddings1``.
      labels: 1 or -1 per pair, of the batch shape ``(...)``.
      margin: dissimilar pairs cost nothing below this cosine.
      where: optional boolean mask over the unreduced loss; masked elements count for nothing.
      reduction: ``'none'``, ``'mean'`` or ``'sum'``.

    Returns:
      ``'none'``: one loss per pair, of the batch shape; ``'mean'``/``'sum'``: a scalar.

    Example:
      >>> float(jaxloss.cosine_embedding_loss(jnp.ones((2, 3)), jnp.ones((2, 3)),
      ...                                     jnp.array([1.0, -1.0])))
      0.5
    """
    fn = "cosine_embedding_loss"
    x1 = _checks.float_array(fn, "embeddings1", embeddings1)
    x2 = _checks.float_array(fn, "embeddings2", embeddings2)
    y = _checks.real_array(fn, "labels", labels)
    if x1.ndim == 0 or x2.ndim == 0:
        raise ValueError(
            f"{fn}: embeddings need a feature axis; got shapes "
            f"{list(x1.shape)} and {list(x2.shape)}."
        )
    pair_shape = _checks.broadcast_shape(fn, ("embeddings1", "embeddings2"), (x1, x2))
    shape = _checks.broadcast_shape(
        fn, ("embeddings1/embeddings2 batch", "labels"), (jnp.empty(pair_shape[:-1]), y)
    )
    _checks.python_number(fn, "margin", margin)
    _checks.reduction(fn, reduction)
    where = _checks.where_mask(fn, where, shape)
    result_dtype, compute = dtypes(x1, x2, y)
    x1, x2 = x1.astype(compute), x2.astype(compute)
    dot = jnp.sum(x1 * x2, axis=-1)
    norms = (jnp.sum(x1 * x1, axis=-1) + _COSINE_EPSILON) * (
        jnp.sum(x2 * x2, axis=-1) + _COSINE_EPSILON
    )
    cos = dot / jnp.sqrt(norms)
    zero = jnp.zeros((), compute)
    loss = jnp.where(y == 1, 1 - cos, zero) + jnp.where(y == -1, hinge(cos - margin), zero)
    return finish(reduce_loss(loss, reduction, where=where), result_dtype)


def pairwise_distance(
    x1: ArrayLike,
    x2: ArrayLike,
    *,
    p: float = 2.0,
    eps: float = 1e-6,
    keepdims: bool = False,
    where: ArrayLike | None = None,
) -> jax.Array:
    r"""p-norm distance along the last axis, $\|x_1 - x_2 + \epsilon\|_p$, as torch's
    ``pairwise_distance`` (ε keeps the gradient finite when the points coincide).

    Args:
      x1: ``(..., D)`` float points.
      x2: ``(..., D)`` float points that broadcast with ``x1``.
      p: the norm's order (``inf`` too).
      eps: ε added to the difference.
      keepdims: keep the last axis with size 1.
      where: optional boolean mask of the feature axis (``(..., D)``, broadcastable): masked
        features do not count towards the distance.

    Returns:
      The distances, of the broadcast batch shape ``(...)`` (``(..., 1)`` with ``keepdims``).

    Example:
      >>> round(float(jaxloss.pairwise_distance(jnp.zeros(3), jnp.ones(3))), 4)
      1.732
    """
    fn = "pairwise_distance"
    x1 = _checks.float_array(fn, "x1", x1)
    x2 = _checks.float_array(fn, "x2", x2)
    _checks.broadcast_shape(fn, ("x1", "x2"), (x1, x2))
    _checks.python_number(fn, "p", p)
    result_dtype, compute = dtypes(x1, x2)
    diff = x1.astype(compute) - x2.astype(compute) + eps
    if diff.ndim == 0:
        diff = diff[None]
    if where is not None:
        mask = _checks.where_mask(fn, where, diff.shape, "the points (..., D)")
        diff = jnp.where(mask, diff, jnp.zeros((), compute))  # masked features add nothing
    distance = jnp.linalg.norm(diff, ord=p, axis=-1, keepdims=keepdims)
    return distance.astype(result_dtype)


def cosine_similarity(
    x1: ArrayLike,
    x2: ArrayLike,
    *,
    axis: int = -1,
    eps: float = 1e-8,
    where: ArrayLike | None = None,
) -> jax.Array:
    r"""Cosine similarity along ``axis``, as torch's ``cosine_similarity``:
    $\frac{x_1}{\max(\|x_1\|, \epsilon)}\cdot\frac{x_2}{\max(\|x_2\|, \epsilon)}$
    (each vector normalised first, as torch does for precision).

    Args:
      x1: float array; two scalars are read as one-element vectors, as in torch.
      x2: float array that broadcasts with ``x1``.
      axis: the vector axis of the broadcast shape.
      eps: the smallest norm a vector is divided by.
      where: optional boolean mask (broadcastable to the inputs): masked components are left
        out of both norms and the dot product.

    Returns:
      The broadcast shape without ``axis``.

    Example:
      >>> round(float(jaxloss.cosine_similarity(jnp.array([1.0, 0.0]), jnp.array([1.0, 1.0]))), 4)
      0.7071
      >>> distance = lambda u, v: 1 - jaxloss.cosine_similarity(u, v)  # a triplet distance
    """
    fn = "cosine_similarity"
    x1 = _checks.float_array(fn, "x1", x1)
    x2 = _checks.float_array(fn, "x2", x2)
    shape = _checks.broadcast_shape(fn, ("x1", "x2"), (x1, x2))
    if not shape:
        # torch reads two scalars as vectors of one element (axis 0 or -1): the result is
        # their signs' product (0 if either is 0).
        _checks.axis(fn, "x1/x2 (scalars, read as 1-vectors)", axis, 1)
        x1, x2, shape, axis = x1[None], x2[None], (1,), 0
    axis = _checks.axis(fn, "x1/x2 (broadcast)", axis, len(shape))
    _checks.python_number(fn, "eps", eps)
    result_dtype, compute = dtypes(x1, x2)
    # Normalise in the broadcast shape: `axis` refers to it, as in torch.
    x1 = jnp.broadcast_to(x1.astype(compute), shape)
    x2 = jnp.broadcast_to(x2.astype(compute), shape)
    if where is not None:
        mask = _checks.where_mask(fn, where, shape, "the inputs (broadcast)")
        zero = jnp.zeros((), compute)
        x1, x2 = jnp.where(mask, x1, zero), jnp.where(mask, x2, zero)

    def normalised(x):
        return x / jnp.maximum(jnp.linalg.norm(x, axis=axis, keepdims=True), eps)

    return jnp.sum(normalised(x1) * normalised(x2), axis=axis).astype(result_dtype)


def _triplet_inputs(fn, anchor, positive, negative, margin, reduction):
    arrays = [
        _checks.float_array(fn, name, a)
        for name, a in (("anchor", anchor), ("positive", positive), ("negative", negative))
    ]
    ndims = {a.ndim for a in arrays}
    if len(ndims) != 1:
        raise ValueError(
            f"{fn}: `anchor`, `positive` and `negative` must have the same number of dimensions; "
            f"got {arrays[0].ndim}, {arrays[1].ndim} and {arrays[2].ndim}."
        )
    _checks.broadcast_shape(fn, ("anchor", "positive", "negative"), arrays)
    _checks.python_number(fn, "margin", margin, low=0.0, low_inclusive=False)
    _checks.reduction(fn, reduction)
    return arrays


def _triplet_loss(
    distance, anchor, positive, negative, margin, swap, where, reduction, fn, result_dtype
):
    d_pos = distance(anchor, positive)
    d_neg = distance(anchor, negative)
    if swap:
        d_neg = jnp.minimum(d_neg, distance(positive, negative))
    loss = hinge(margin + d_pos - d_neg)
    where = _checks.where_mask(fn, where, loss.shape)
    return finish(reduce_loss(loss, reduction, where=where), result_dtype)


def triplet_margin_loss(
    anchor: ArrayLike,
    positive: ArrayLike,
    negative: ArrayLike,
    *,
    margin: float = 1.0,
    p: float = 2.0,
    eps: float = 1e-6,
    swap: bool = False,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> jax.Array:
    r"""Triplet margin loss $\max(d(a, p) - d(a, n) + \text{margin},\ 0)$ with
    $d = \|\cdot - \cdot + \epsilon\|_p$ (`pairwise_distance`), as torch's
    ``triplet_margin_loss``.

    Args:
      anchor: ``(..., D)`` float anchor embeddings.
      positive: embeddings of the same class, of ``anchor``'s rank (they broadcast).
      negative: embeddings of another class, of ``anchor``'s rank.
      margin: > 0.
      p: the distance's norm order.
      eps: ε of `pairwise_distance`.
      swap: use $\min(d(a, n), d(p, n))$ as the negative distance (Balntas et al.,
        2016).
      where: optional boolean mask over the unreduced loss; masked elements count for nothing.
      reduction: ``'none'``, ``'mean'`` or ``'sum'``.

    Returns:
      ``'none'``: one loss per triplet, of the batch shape ``(...)``; ``'mean'``/``'sum'``: a
      scalar.

    Example:
      >>> round(float(jaxloss.triplet_margin_loss(jnp.zeros((1, 2)), jnp.ones((1, 2)),
      ...                                         -jnp.ones((1, 2)))), 4)
      1.0
    """
    fn = "triplet_margin_loss"
    a, pos, neg = _triplet_inputs(fn, anchor, positive, negative, margin, reduction)
    _checks.python_number(fn, "p", p)
    result_dtype, compute = dtypes(a, pos, neg)

    def distance(u, v):
        return pairwise_distance(u, v, p=p, eps=eps)

    return _triplet_loss(
        distance,
        a.astype(compute),
        pos.astype(compute),
        neg.astype(compute),
        margin,
        swap,
        where,
        reduction,
        fn,
        result_dtype,
    )


def triplet_margin_with_distance_loss(
    anchor: ArrayLike,
    positive: ArrayLike,
    negative: ArrayLike,
    *,
    distance_function: Callable[[jax.Array, jax.Array], jax.Array] | None = None,
    margin: float = 1.0,
    swap: bool = False,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> jax.Array:
    r"""Triplet margin loss with any distance,
    $\max(\text{margin} + d(a, p) - d(a, n),\ 0)$, as torch's
    ``triplet_margin_with_distance_loss``.

    Args:
      anchor: ``(..., D)`` float anchor embeddings.
      positive: embeddings of the same class, of ``anchor``'s rank.
      negative: embeddings of another class, of ``anchor``'s rank.
      distance_function: ``d(u, v)`` mapping two batches of embeddings to their distances;
        default `pairwise_distance` (Euclidean).
      margin: > 0.
      swap: as in `triplet_margin_loss`.
      where: optional boolean mask over the unreduced loss; masked elements count for nothing.
      reduction: ``'none'``, ``'mean'`` or ``'sum'``.

    Returns:
      ``'none'``: one loss per triplet; ``'mean'``/``'sum'``: a scalar.

    Example:
      >>> cosine_distance = lambda u, v: 1 - jaxloss.cosine_similarity(u, v)
      >>> a, p, n = jnp.array([[1.0, 0.0]]), jnp.array([[1.0, 0.1]]), jnp.array([[0.0, 1.0]])
      >>> round(float(jaxloss.triplet_margin_with_distance_loss(
      ...     a, p, n, distance_function=cosine_distance, margin=0.5)), 4)
      0.0
    """
    fn = "triplet_margin_with_distance_loss"
    a, pos, neg = _triplet_inputs(fn, anchor, positive, negative, margin, reduction)
    if distance_function is None:
        distance_function = pairwise_distance
    elif not callable(distance_function):
        raise TypeError(
            f"{fn}: `distance_function` must be callable (u, v) -> distances; "
            f"got {type(distance_function).__name__}."
        )
    result_dtype, compute = dtypes(a, pos, neg)
    return _triplet_loss(
        distance_function,
        a.astype(compute),
        pos.astype(compute),
        neg.astype(compute),
        margin,
        swap,
        where,
        reduction,
        fn,
        result_dtype,
    )
