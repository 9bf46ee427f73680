"""Embedding and ranking criteria: margin ranking, hinge embedding, cosine embedding and the
triplet losses, plus the pairwise distance they use by default.

Feature vectors lie on the last axis; any leading axes are batch axes.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from . import _checks
from ._ops import hinge
from ._precision import dtypes
from ._reduction import finish, reduce_loss


def margin_ranking_loss(scores1, scores2, labels, *, margin=0.0, where=None, reduction="mean"):
    r"""Pairwise ranking loss :math:`\ell = \max(0,\ -y\,(x_1 - x_2) + \text{margin})`.

    ``labels`` y in {1, -1} says which of ``scores1``/``scores2`` should rank higher; the three
    arrays broadcast together.

    Example:
      >>> margin_ranking_loss(jnp.array([0.8]), jnp.array([0.3]), jnp.array([1.0]), margin=0.1)
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


def hinge_embedding_loss(distances, labels, *, margin=1.0, where=None, reduction="mean"):
    r"""Hinge embedding loss: :math:`\ell = x` where y = 1 and
    :math:`\max(0, \text{margin} - x)` where y = -1.

    As in torch, a label that is neither 1 nor -1 gets both terms.

    Example:
      >>> hinge_embedding_loss(jnp.array([0.3, 0.2]), jnp.array([1.0, -1.0]))
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


def cosine_embedding_loss(embeddings1, embeddings2, labels, *, margin=0.0, where=None,
                          reduction="mean"):
    r"""Cosine embedding loss: :math:`1 - \cos(x_1, x_2)` where y = 1 and
    :math:`\max(0, \cos(x_1, x_2) - \text{margin})` where y = -1 (0 for other labels).

    Embeddings are ``(..., D)`` and broadcast together; ``labels`` have the batch shape
    ``(...)``. The cosine is :math:`x_1\cdot x_2 / \sqrt{(|x_1|^2+\epsilon)(|x_2|^2+\epsilon)}`
    with torch's ε = 1e-12.

    Example:
      >>> cosine_embedding_loss(jnp.ones((2, 3)), jnp.ones((2, 3)), jnp.array([1.0, -1.0]))
    """
    fn = "cosine_embedding_loss"
    x1 = _checks.float_array(fn, "embeddings1", embeddings1)
    x2 = _checks.float_array(fn, "embeddings2", embeddings2)
    y = _checks.real_array(fn, "labels", labels)
    if x1.ndim == 0 or x2.ndim == 0:
        raise ValueError(f"{fn}: embeddings need a feature axis; got shapes "
                         f"{list(x1.shape)} and {list(x2.shape)}.")
    pair_shape = _checks.broadcast_shape(fn, ("embeddings1", "embeddings2"), (x1, x2))
    shape = _checks.broadcast_shape(fn, ("embeddings1/embeddings2 batch", "labels"),
                                    (jnp.empty(pair_shape[:-1]), y))
    _checks.python_number(fn, "margin", margin)
    _checks.reduction(fn, reduction)
    where = _checks.where_mask(fn, where, shape)
    result_dtype, compute = dtypes(x1, x2, y)
    x1, x2 = x1.astype(compute), x2.astype(compute)
    dot = jnp.sum(x1 * x2, axis=-1)
    norms = (jnp.sum(x1 * x1, axis=-1) + _COSINE_EPSILON) * (
        jnp.sum(x2 * x2, axis=-1) + _COSINE_EPSILON)
    cos = dot / jnp.sqrt(norms)
    zero = jnp.zeros((), compute)
    loss = jnp.where(y == 1, 1 - cos, zero) + jnp.where(y == -1, hinge(cos - margin), zero)
    return finish(reduce_loss(loss, reduction, where=where), result_dtype)


def pairwise_distance(x1, x2, *, p=2.0, eps=1e-6, keepdims=False):
    r"""p-norm distance along the last axis, :math:`\|x_1 - x_2 + \epsilon\|_p`, as torch's
    ``pairwise_distance`` (ε keeps the gradient finite when the points coincide).

    Example:
      >>> pairwise_distance(jnp.zeros((2, 3)), jnp.ones((2, 3)))
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
    distance = jnp.linalg.norm(diff, ord=p, axis=-1, keepdims=keepdims)
    return distance.astype(result_dtype)


def cosine_similarity(x1, x2, *, axis=-1, eps=1e-8):
    r"""Cosine similarity along ``axis``, as torch's ``cosine_similarity``:
    :math:`\frac{x_1}{\max(\|x_1\|, \epsilon)}\cdot\frac{x_2}{\max(\|x_2\|, \epsilon)}`
    (each vector normalised first, as torch does for precision). Inputs broadcast together.

    Example:
      >>> 1 - cosine_similarity(u, v)   # a distance for triplet_margin_with_distance_loss
    """
    fn = "cosine_similarity"
    x1 = _checks.float_array(fn, "x1", x1)
    x2 = _checks.float_array(fn, "x2", x2)
    shape = _checks.broadcast_shape(fn, ("x1", "x2"), (x1, x2))
    if not shape:
        raise ValueError(f"{fn}: `x1` and `x2` need a vector axis; got scalars.")
    axis = _checks.axis(fn, "x1/x2 (broadcast)", axis, len(shape))
    _checks.python_number(fn, "eps", eps)
    result_dtype, compute = dtypes(x1, x2)
    # Normalise in the broadcast shape: `axis` refers to it, as in torch.
    x1 = jnp.broadcast_to(x1.astype(compute), shape)
    x2 = jnp.broadcast_to(x2.astype(compute), shape)

    def normalised(x):
        return x / jnp.maximum(jnp.linalg.norm(x, axis=axis, keepdims=True), eps)

    return jnp.sum(normalised(x1) * normalised(x2), axis=axis).astype(result_dtype)


def _triplet_inputs(fn, anchor, positive, negative, margin, reduction):
    arrays = [_checks.float_array(fn, name, a) for name, a in
              (("anchor", anchor), ("positive", positive), ("negative", negative))]
    ndims = {a.ndim for a in arrays}
    if len(ndims) != 1:
        raise ValueError(
            f"{fn}: `anchor`, `positive` and `negative` must have the same number of dimensions; "
            f"got {arrays[0].ndim}, {arrays[1].ndim} and {arrays[2].ndim}.")
    _checks.broadcast_shape(fn, ("anchor", "positive", "negative"), arrays)
    _checks.python_number(fn, "margin", margin, low=0.0, low_inclusive=False)
    _checks.reduction(fn, reduction)
    return arrays


def _triplet_loss(distance, anchor, positive, negative, margin, swap, where, reduction, fn,
                  result_dtype):
    d_pos = distance(anchor, positive)
    d_neg = distance(anchor, negative)
    if swap:
        d_neg = jnp.minimum(d_neg, distance(positive, negative))
    loss = hinge(margin + d_pos - d_neg)
    where = _checks.where_mask(fn, where, loss.shape)
    return finish(reduce_loss(loss, reduction, where=where), result_dtype)


def triplet_margin_loss(anchor, positive, negative, *, margin=1.0, p=2.0, eps=1e-6, swap=False,
                        where=None, reduction="mean"):
    r"""Triplet margin loss :math:`\max(d(a, p) - d(a, n) + \text{margin},\ 0)` with
    :math:`d = \|\cdot - \cdot + \epsilon\|_p` (:func:`pairwise_distance`).

    ``swap=True`` uses :math:`\min(d(a, n), d(p, n))` as the negative distance (Balntas et
    al., 2016). Inputs are ``(..., D)`` with equal rank; margin > 0.

    Example:
      >>> triplet_margin_loss(jnp.zeros((1, 2)), jnp.ones((1, 2)), -jnp.ones((1, 2)))
    """
    fn = "triplet_margin_loss"
    a, pos, neg = _triplet_inputs(fn, anchor, positive, negative, margin, reduction)
    _checks.python_number(fn, "p", p)
    result_dtype, compute = dtypes(a, pos, neg)

    def distance(u, v):
        return pairwise_distance(u, v, p=p, eps=eps)

    return _triplet_loss(distance, a.astype(compute), pos.astype(compute), neg.astype(compute),
                         margin, swap, where, reduction, fn, result_dtype)


def triplet_margin_with_distance_loss(anchor, positive, negative, *, distance_function=None,
                                      margin=1.0, swap=False, where=None, reduction="mean"):
    r"""Triplet margin loss with any distance:
    :math:`\max(\text{margin} + d(a, p) - d(a, n),\ 0)`.

    ``distance_function(u, v)`` maps two batches of embeddings to their distances; the default
    is :func:`pairwise_distance` (Euclidean). ``swap`` as in :func:`triplet_margin_loss`.

    Example:
      >>> cosine = lambda u, v: 1 - optax.cosine_similarity(u, v)
      >>> triplet_margin_with_distance_loss(a, p, n, distance_function=cosine, margin=0.5)
    """
    fn = "triplet_margin_with_distance_loss"
    a, pos, neg = _triplet_inputs(fn, anchor, positive, negative, margin, reduction)
    if distance_function is None:
        distance_function = pairwise_distance
    elif not callable(distance_function):
        raise TypeError(f"{fn}: `distance_function` must be callable (u, v) -> distances; "
                        f"got {type(distance_function).__name__}.")
    result_dtype, compute = dtypes(a, pos, neg)
    return _triplet_loss(distance_function, a.astype(compute), pos.astype(compute),
                         neg.astype(compute), margin, swap, where, reduction, fn, result_dtype)
