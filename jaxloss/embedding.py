"""Embedding and ranking criteria: margin ranking, hinge embedding, cosine embedding and the
triplet losses (torch's), the pairwise distance they use by default, the contrastive NT-Xent
and circle losses over a batch of labelled embeddings, and the listwise ranking softmax.

Feature vectors lie on the last axis; any leading axes are batch axes.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from ._core import checks
from ._core.ops import hinge, unit_rows
from ._core.precision import dtypes
from ._core.reduction import Reduction, finish, reduce_loss

# The public functions, in the order their docs page lists them (jaxloss and the
# page read this list).
__all__ = [
    "margin_ranking_loss",
    "hinge_embedding_loss",
    "cosine_embedding_loss",
    "triplet_margin_loss",
    "triplet_margin_with_distance_loss",
    "pairwise_distance",
    "cosine_similarity",
    "ntxent_loss",
    "circle_loss",
    "ranking_softmax_loss",
]


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

    Examples:
      >>> loss = jaxloss.margin_ranking_loss(jnp.array([0.8]), jnp.array([0.3]),
      ...                                    jnp.array([-1.0]), margin=0.1)
      >>> round(float(loss), 4)
      0.6
    """
    fn = "margin_ranking_loss"
    x1 = checks.float_array(fn, "scores1", scores1)
    x2 = checks.float_array(fn, "scores2", scores2)
    y = checks.real_array(fn, "labels", labels)
    shape = checks.broadcast_shape(fn, ("scores1", "scores2", "labels"), (x1, x2, y))
    checks.python_number(fn, "margin", margin)
    checks.reduction(fn, reduction)
    where = checks.where_mask(fn, where, shape)
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

    Examples:
      >>> round(float(jaxloss.hinge_embedding_loss(jnp.array([0.3, 0.2]),
      ...                                          jnp.array([1.0, -1.0]))), 4)
      0.55
    """
    fn = "hinge_embedding_loss"
    x = checks.float_array(fn, "distances", distances)
    y = checks.real_array(fn, "labels", labels)
    shape = checks.broadcast_shape(fn, ("distances", "labels"), (x, y))
    checks.python_number(fn, "margin", margin)
    checks.reduction(fn, reduction)
    where = checks.where_mask(fn, where, shape)
    result_dtype, compute = dtypes(x, y)
    x = x.astype(compute)
    zero = jnp.zeros((), compute)
    loss = jnp.where(y != 1, hinge(margin - x), zero) + jnp.where(y != -1, x, zero)
    return finish(reduce_loss(loss, reduction, where=where, branched=True), result_dtype)


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

    Examples:
      >>> float(jaxloss.cosine_embedding_loss(jnp.ones((2, 3)), jnp.ones((2, 3)),
      ...                                     jnp.array([1.0, -1.0])))
      0.5
    """
    fn = "cosine_embedding_loss"
    x1 = checks.float_array(fn, "embeddings1", embeddings1)
    x2 = checks.float_array(fn, "embeddings2", embeddings2)
    y = checks.real_array(fn, "labels", labels)
    if x1.ndim == 0 or x2.ndim == 0:
        raise ValueError(
            f"{fn}: embeddings need a feature axis; got shapes "
            f"{list(x1.shape)} and {list(x2.shape)}."
        )
    pair_shape = checks.broadcast_shape(fn, ("embeddings1", "embeddings2"), (x1, x2))
    shape = checks.broadcast_shape(
        fn, ("embeddings1/embeddings2 batch", "labels"), (jnp.empty(pair_shape[:-1]), y)
    )
    checks.python_number(fn, "margin", margin)
    checks.reduction(fn, reduction)
    where = checks.where_mask(fn, where, shape)
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

    Examples:
      >>> round(float(jaxloss.pairwise_distance(jnp.zeros(3), jnp.ones(3))), 4)
      1.732
    """
    fn = "pairwise_distance"
    x1 = checks.float_array(fn, "x1", x1)
    x2 = checks.float_array(fn, "x2", x2)
    checks.broadcast_shape(fn, ("x1", "x2"), (x1, x2))
    checks.python_number(fn, "p", p)
    result_dtype, compute = dtypes(x1, x2)
    diff = x1.astype(compute) - x2.astype(compute) + eps
    if diff.ndim == 0:
        diff = diff[None]
    if where is not None:
        mask = checks.where_mask(fn, where, diff.shape, "the points (..., D)")
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

    Examples:
      >>> round(float(jaxloss.cosine_similarity(jnp.array([1.0, 0.0]), jnp.array([1.0, 1.0]))), 4)
      0.7071
      >>> distance = lambda u, v: 1 - jaxloss.cosine_similarity(u, v)  # a triplet distance
    """
    fn = "cosine_similarity"
    x1 = checks.float_array(fn, "x1", x1)
    x2 = checks.float_array(fn, "x2", x2)
    shape = checks.broadcast_shape(fn, ("x1", "x2"), (x1, x2))
    if not shape:
        # torch reads two scalars as vectors of one element (axis 0 or -1): the result is
        # their signs' product (0 if either is 0).
        checks.axis(fn, "x1/x2 (scalars, read as 1-vectors)", axis, 1)
        x1, x2, shape, axis = x1[None], x2[None], (1,), 0
    axis = checks.axis(fn, "x1/x2 (broadcast)", axis, len(shape))
    checks.python_number(fn, "eps", eps)
    result_dtype, compute = dtypes(x1, x2)
    # Normalise in the broadcast shape: `axis` refers to it, as in torch.
    x1 = jnp.broadcast_to(x1.astype(compute), shape)
    x2 = jnp.broadcast_to(x2.astype(compute), shape)
    if where is not None:
        mask = checks.where_mask(fn, where, shape, "the inputs (broadcast)")
        zero = jnp.zeros((), compute)
        x1, x2 = jnp.where(mask, x1, zero), jnp.where(mask, x2, zero)

    def normalised(x):
        return x / jnp.maximum(jnp.linalg.norm(x, axis=axis, keepdims=True), eps)

    return jnp.sum(normalised(x1) * normalised(x2), axis=axis).astype(result_dtype)


def _triplet_inputs(fn, anchor, positive, negative, margin, reduction):
    arrays = [
        checks.float_array(fn, name, a)
        for name, a in (("anchor", anchor), ("positive", positive), ("negative", negative))
    ]
    ndims = {a.ndim for a in arrays}
    if len(ndims) != 1:
        raise ValueError(
            f"{fn}: `anchor`, `positive` and `negative` must have the same number of dimensions; "
            f"got {arrays[0].ndim}, {arrays[1].ndim} and {arrays[2].ndim}."
        )
    checks.broadcast_shape(fn, ("anchor", "positive", "negative"), arrays)
    checks.python_number(fn, "margin", margin, low=0.0, low_inclusive=False)
    checks.reduction(fn, reduction)
    return arrays


def _triplet_loss(
    distance, anchor, positive, negative, margin, swap, where, reduction, fn, result_dtype
):
    d_pos = distance(anchor, positive)
    d_neg = distance(anchor, negative)
    if swap:
        d_neg = jnp.minimum(d_neg, distance(positive, negative))
    loss = hinge(margin + d_pos - d_neg)
    where = checks.where_mask(fn, where, loss.shape)
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

    Examples:
      >>> round(float(jaxloss.triplet_margin_loss(jnp.zeros((1, 2)), jnp.ones((1, 2)),
      ...                                         -jnp.ones((1, 2)))), 4)
      1.0
    """
    fn = "triplet_margin_loss"
    a, pos, neg = _triplet_inputs(fn, anchor, positive, negative, margin, reduction)
    checks.python_number(fn, "p", p)
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

    Examples:
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


def _labelled_batch(fn, embeddings, labels, where):
    e = checks.float_array(fn, "embeddings", embeddings)
    if e.ndim != 2:
        raise ValueError(
            f"{fn}: `embeddings` must be a batch of vectors, shape (N, D); got {list(e.shape)}."
        )
    y = checks.int_array(fn, "labels", labels)
    if y.shape != e.shape[:1]:
        raise ValueError(
            f"{fn}: `labels` must hold one integer label per embedding, shape [{e.shape[0]}]; "
            f"got {list(y.shape)}."
        )
    where = checks.where_mask(fn, where, e.shape[:1], "one per embedding")
    return e, y, where


def _masked_logsumexp(x, mask):
    """log Σ exp(x) over `mask` along the last axis: -inf (with a zero gradient) where empty."""
    any_in = jnp.any(mask, axis=-1)
    safe = jnp.where(mask, x, jnp.where(any_in[..., None], -jnp.inf, 0.0))
    lse = jax.nn.logsumexp(safe, axis=-1)
    return jnp.where(any_in, lse, -jnp.inf)


def ntxent_loss(
    embeddings: ArrayLike,
    labels: ArrayLike,
    *,
    temperature: float = 0.07,
    eps: float = 1e-8,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> jax.Array:
    r"""NT-Xent, the normalised temperature-scaled cross-entropy of contrastive learning
    (SimCLR, Chen et al. 2020), for a batch of embeddings whose equal labels mark positive
    pairs. With $s_{ij} = \cos(e_i, e_j)/\tau$, each positive pair $i \ne j$ gives

    $$\ell_{ij} = -\log\frac{e^{s_{ij}}}{e^{s_{ij}} + \sum_{k:\,y_k \ne y_i} e^{s_{ik}}}
    = \mathrm{softplus}\Big(\log\sum_{k:\,y_k\ne y_i} e^{s_{ik}} - s_{ij}\Big),$$

    the positive against the anchor's negatives (optax's ``ntxent``), computed in log space.

    Args:
      embeddings: float ``(N, D)``.
      labels: integer ``(N,)``; embeddings with equal labels are positives of each other.
      temperature: τ > 0.
      eps: the smallest norm an embedding is divided by.
      where: optional boolean ``(N,)`` mask of the embeddings that take part (padding).
      reduction: ``'none'`` (the ``(N, N)`` matrix of pair losses, 0 off the positive pairs),
        ``'mean'`` (over the positive pairs; nan without any) or ``'sum'``.

    Returns:
      ``'none'``: ``(N, N)``; otherwise a scalar.

    Examples:
      >>> e = jnp.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
      >>> round(float(jaxloss.ntxent_loss(e, jnp.array([0, 0, 1, 1]), temperature=0.5)), 4)
      0.2965
    """
    fn = "ntxent_loss"
    checks.python_number(fn, "temperature", temperature, low=0.0, low_inclusive=False)
    checks.python_number(fn, "eps", eps, low=0.0)
    checks.reduction(fn, reduction)
    e, y, where = _labelled_batch(fn, embeddings, labels, where)
    result_dtype, compute = dtypes(e)
    u = unit_rows(e.astype(compute), eps)
    s = (u @ u.T) / temperature
    same = y[:, None] == y[None, :]
    present = jnp.ones(y.shape, bool) if where is None else where
    both = present[:, None] & present[None, :]
    positive = same & both & ~jnp.eye(y.shape[0], dtype=bool)
    negative = ~same & both
    lse_negative = _masked_logsumexp(s, negative)
    loss = jax.nn.softplus(lse_negative[:, None] - jnp.where(positive, s, 0.0))
    return finish(reduce_loss(loss, reduction, where=positive), result_dtype)


def circle_loss(
    embeddings: ArrayLike,
    labels: ArrayLike,
    *,
    reference_embeddings: ArrayLike | None = None,
    reference_labels: ArrayLike | None = None,
    gamma: float = 80.0,
    margin: float = 0.4,
    remove_diagonal: bool = True,
    normalize: bool = True,
    detach_weights: bool = True,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> jax.Array:
    r"""Circle loss (Sun et al. 2020) of each anchor against its positive and negative
    references: with cosine similarities $s$, $\alpha_p = [1 + m - s_p]_+$,
    $\alpha_n = [s_n + m]_+$, $\Delta_p = 1 - m$, $\Delta_n = m$,

    $$\ell = \mathrm{softplus}\Big(\log\sum_{p} e^{-\gamma\alpha_p(s_p - \Delta_p)}
    + \log\sum_{n} e^{\gamma\alpha_n(s_n - \Delta_n)}\Big).$$

    Args:
      embeddings: float ``(N, D)`` anchors.
      labels: integer ``(N,)``.
      reference_embeddings: optional ``(M, D)`` references (a memory bank); the batch itself
        by default.
      reference_labels: their ``(M,)`` labels (required with ``reference_embeddings``).
      gamma: γ > 0, the scale.
      margin: m, the relaxation.
      remove_diagonal: leave out the pair of an anchor with itself (for the batch as
        reference).
      normalize: L2-normalise the embeddings first; ``False`` takes dot products as the
        similarities (clipped at 1, as Keras' ``Circle``, which expects normalised inputs).
      detach_weights: treat $\alpha_p, \alpha_n$ as constants in the gradient, as the
        authors' code does; Keras differentiates through them (``False``).
      where: optional boolean ``(N,)`` mask of the anchors that count.
      reduction: ``'none'``, ``'mean'`` (over the anchors with at least one positive and one
        negative: the others give 0, as in Keras) or ``'sum'``.

    Returns:
      ``'none'``: ``(N,)``; otherwise a scalar.

    Examples:
      >>> e = jnp.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
      >>> round(float(jaxloss.circle_loss(e, jnp.array([0, 0, 1, 1]), gamma=8.0)), 4)
      0.166
    """
    fn = "circle_loss"
    checks.python_number(fn, "gamma", gamma, low=0.0, low_inclusive=False)
    checks.python_number(fn, "margin", margin)
    checks.reduction(fn, reduction)
    e, y, where = _labelled_batch(fn, embeddings, labels, where)
    if (reference_embeddings is None) != (reference_labels is None):
        raise ValueError(
            f"{fn}: pass `reference_embeddings` and `reference_labels` together, or neither."
        )
    if reference_embeddings is None:
        r, ry = e, y
    else:
        r, ry, _ = _labelled_batch(fn, reference_embeddings, reference_labels, None)
        if r.shape[1] != e.shape[1]:
            raise ValueError(
                f"{fn}: `reference_embeddings` must have the embeddings' width {e.shape[1]}; "
                f"got {list(r.shape)}."
            )
    result_dtype, compute = dtypes(e, r)
    e, r = e.astype(compute), r.astype(compute)
    if normalize:
        e, r = unit_rows(e, 1e-12), unit_rows(r, 1e-12)
    s = jnp.minimum(e @ r.T, 1.0)
    same = y[:, None] == ry[None, :]
    positive = same
    if remove_diagonal:
        positive = positive & ~jnp.eye(s.shape[0], s.shape[1], dtype=bool)
    negative = ~same
    weight_p = jax.nn.relu(1 + margin - s)
    weight_n = jax.nn.relu(s + margin)
    if detach_weights:
        weight_p, weight_n = jax.lax.stop_gradient((weight_p, weight_n))
    lse_p = _masked_logsumexp(-gamma * weight_p * (s - (1 - margin)), positive)
    lse_n = _masked_logsumexp(gamma * weight_n * (s - margin), negative)
    counted = jnp.any(positive, axis=-1) & jnp.any(negative, axis=-1)
    if where is not None:
        counted = counted & where
    loss = jax.nn.softplus(jnp.where(counted, lse_p + lse_n, 0.0))
    return finish(reduce_loss(loss, reduction, where=counted), result_dtype)


def ranking_softmax_loss(
    scores: ArrayLike,
    relevance: ArrayLike,
    *,
    weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> jax.Array:
    r"""Listwise softmax cross-entropy for learning to rank (Bruch et al. 2019): per list of
    items on the last axis, $\ell = -\sum_i w_i\,r_i \log \mathrm{softmax}(s)_i$ with
    relevance labels r (used as they are, not normalised: optax's
    ``ranking_softmax_loss``).

    Args:
      scores: float ``(..., n)`` item scores.
      relevance: float or integer relevance labels of the same shape (0 = irrelevant).
      weights: optional per-item weights, broadcastable to ``scores``.
      where: optional boolean mask of the items that exist (ragged lists padded to n);
        absent items are left out of the softmax.
      reduction: ``'none'`` (one loss per list, 0 for a list without items), ``'mean'``
        (over the lists with at least one item) or ``'sum'``.

    Returns:
      ``'none'``: ``scores.shape[:-1]``; otherwise a scalar.

    Examples:
      >>> scores = jnp.array([[2.0, 1.0, 0.0]])
      >>> round(float(jaxloss.ranking_softmax_loss(scores, jnp.array([[1.0, 0.0, 1.0]]))), 4)
      2.8152
    """
    fn = "ranking_softmax_loss"
    s = checks.float_array(fn, "scores", scores)
    r = checks.real_array(fn, "relevance", relevance)
    if s.ndim == 0:
        raise ValueError(f"{fn}: `scores` must have an axis of items; got a scalar.")
    checks.shapes_equal(fn, "scores", s, "relevance", r)
    checks.reduction(fn, reduction)
    where = checks.where_mask(fn, where, s.shape, "the scores")
    result_dtype, compute = dtypes(s)
    s, r = s.astype(compute), r.astype(compute)
    if weights is not None:
        w = checks.float_array(fn, "weights", weights)
        checks.broadcasts_to(fn, "weights", w, s.shape, "the scores")
        r = r * w.astype(compute)
    present = jnp.ones(s.shape, bool) if where is None else where
    r = jnp.where(present, r, 0.0)
    lists = jnp.any(present, axis=-1)
    log_norm = _masked_logsumexp(s, present)
    log_p = jnp.where(present, s - jnp.where(lists, log_norm, 0.0)[..., None], 0.0)
    loss = -jnp.sum(jnp.where(r == 0, 0.0, r * log_p), axis=-1)
    return finish(reduce_loss(loss, reduction, where=lists), result_dtype)
