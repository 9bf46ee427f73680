"""The adaptive softmax (Grave et al., 2017, "Efficient softmax approximation for GPUs").

Classes are split by frequency: a *head* softmax over the shortlist ``[0, cutoffs[0])`` plus one
entry per cluster, and for cluster i (classes ``[cutoffs[i], cutoffs[i+1])``) a *tail* of two
linear maps, a projection to a smaller hidden size and the cluster's classes. The
log-probability of a class in cluster i is ``head[shortlist + i] + log_softmax(tail_i)[c -
cutoffs[i]]``. Weights are in torch's Linear layout, as in ``torch.nn.AdaptiveLogSoftmaxWithLoss``
(whose compat module, `jaxloss.compat.nn.AdaptiveLogSoftmaxWithLoss`, is built on these).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from jax import lax
from jax.typing import ArrayLike

from ._core import checks
from ._core.class_inputs import class_indices
from ._core.precision import dtypes
from ._core.reduction import finish, reduce_loss

# The public functions, in the order their docs page lists them (jaxloss and the
# page read this list).
__all__ = [
    "adaptive_log_softmax",
    "adaptive_softmax_loss",
]

TailWeights = Sequence[tuple[ArrayLike, ArrayLike]]


def _matmul_t(a, b):
    """a @ b.T, accumulating in float32 (or wider)."""
    out = jnp.promote_types(jnp.promote_types(a.dtype, b.dtype), jnp.float32)
    return lax.dot_general(a, b, (((1,), (1,)), ((), ())), preferred_element_type=out)


def _inputs(fn, x, head_weight, tail_weights, cutoffs, head_bias):
    """Checked arrays and the class boundaries [cutoffs..., n_classes]."""
    x = checks.float_array(fn, "x", x)
    head_weight = checks.float_array(fn, "head_weight", head_weight)
    tails = [
        tuple(checks.float_array(fn, f"tail_weights[{i}]", a) for a in pair)
        for i, pair in enumerate(tail_weights)
    ]
    head_bias = None if head_bias is None else checks.float_array(fn, "head_bias", head_bias)
    if x.ndim != 2:
        raise ValueError(f"{fn}: `x` must be (N, in_features); got {list(x.shape)}.")
    cutoffs = list(cutoffs)
    if (
        not cutoffs
        or any(int(c) != c for c in cutoffs)
        or cutoffs != sorted(set(cutoffs))
        or cutoffs[0] <= 0
    ):
        raise ValueError(
            f"{fn}: `cutoffs` must be unique positive integers in increasing order; got {cutoffs}."
        )
    if len(tails) != len(cutoffs) or any(len(pair) != 2 for pair in tails):
        raise ValueError(
            f"{fn}: `tail_weights` needs one (projection, output) pair per cluster "
            f"({len(cutoffs)}); got {len(tails)}."
        )
    n_classes = int(cutoffs[-1]) + (tails[-1][1].shape[0] if tails[-1][1].ndim == 2 else 0)
    boundaries = [int(c) for c in cutoffs] + [n_classes]
    head_size = boundaries[0] + len(cutoffs)
    if head_weight.shape != (head_size, x.shape[1]):
        raise ValueError(
            f"{fn}: `head_weight` must be (shortlist + clusters, in_features) = "
            f"[{head_size}, {x.shape[1]}]; got {list(head_weight.shape)}."
        )
    if head_bias is not None and head_bias.shape != (head_size,):
        raise ValueError(
            f"{fn}: `head_bias` must have shape [{head_size}]; got {list(head_bias.shape)}."
        )
    for i, (projection, output) in enumerate(tails):
        size = boundaries[i + 1] - boundaries[i]
        if (
            projection.ndim != 2
            or projection.shape[1] != x.shape[1]
            or output.ndim != 2
            or output.shape != (size, projection.shape[0])
            or size <= 0
        ):
            raise ValueError(
                f"{fn}: cluster {i} (classes [{boundaries[i]}, {boundaries[i + 1]})) needs a "
                f"projection (hidden, {x.shape[1]}) and an output ({size}, hidden) weight; got "
                f"{list(projection.shape)} and {list(output.shape)}."
            )
    return x, head_weight, tails, head_bias, boundaries


@jax.jit
def _log_prob_parts(x, head_weight, head_bias, tails):
    """Head log-probs (N, shortlist + clusters) and each cluster's log-probs (N, size_i)."""
    head = _matmul_t(x, head_weight)
    if head_bias is not None:
        head = head + head_bias.astype(head.dtype)
    clusters = [
        jax.nn.log_softmax(_matmul_t(_matmul_t(x, p).astype(x.dtype), o), axis=-1) for p, o in tails
    ]
    return jax.nn.log_softmax(head, axis=-1), clusters


@functools.partial(jax.jit, static_argnames=("boundaries",))
def _label_log_probs(x, head_weight, head_bias, tails, labels, *, boundaries):
    """log p(label | x) per row (N,); labels are safe indices in [0, n_classes).

    Jitted (as `_log_prob_parts`) so that eager calls compile once per shape.
    """
    head, clusters = _log_prob_parts(x, head_weight, head_bias, tails)
    shortlist = boundaries[0]
    head_index = labels
    log_p = jnp.zeros(labels.shape, head.dtype)
    for i, cluster in enumerate(clusters):
        low, high = boundaries[i], boundaries[i + 1]
        inside = (labels >= low) & (labels < high)
        local = jnp.take_along_axis(
            cluster, jnp.clip(labels - low, 0, high - low - 1)[:, None], axis=1
        )[:, 0]
        log_p = log_p + jnp.where(inside, local, 0.0)
        head_index = jnp.where(inside, shortlist + i, head_index)
    return log_p + jnp.take_along_axis(head, head_index[:, None], axis=1)[:, 0]


def adaptive_log_softmax(
    x: ArrayLike,
    head_weight: ArrayLike,
    tail_weights: TailWeights,
    *,
    cutoffs: Sequence[int],
    head_bias: ArrayLike | None = None,
) -> jax.Array:
    r"""Every class's log-probability under the adaptive softmax, as torch's
    ``AdaptiveLogSoftmaxWithLoss.log_prob``.

    Args:
      x: ``(N, D)`` hidden states.
      head_weight: ``(cutoffs[0] + len(cutoffs), D)``: the shortlist and one row per cluster.
      tail_weights: per cluster i, ``(projection (h_i, D), output (size_i, h_i))``.
      cutoffs: the first class of each cluster, increasing; the last cluster ends at
        ``n_classes = cutoffs[-1] + size_last``.
      head_bias: optional ``(cutoffs[0] + len(cutoffs),)``.

    Returns:
      ``(N, n_classes)`` log-probabilities (each row's exponentials sum to 1), in the dtype
      of ``x``.

    Examples:
      >>> import jax.numpy as jnp
      >>> x = jnp.ones((2, 4))
      >>> tails = [(jnp.ones((2, 4)), jnp.ones((3, 2)))]
      >>> log_p = adaptive_log_softmax(x, jnp.zeros((3, 4)), tails, cutoffs=[2])
      >>> log_p.shape, round(float(jnp.exp(log_p[0]).sum()), 6)
      ((2, 5), 1.0)
    """
    fn = "adaptive_log_softmax"
    x, head_weight, tails, head_bias, boundaries = _inputs(
        fn, x, head_weight, tail_weights, cutoffs, head_bias
    )
    head, clusters = _log_prob_parts(x, head_weight, head_bias, tails)
    shortlist = boundaries[0]
    pieces = [head[:, :shortlist]] + [
        cluster + head[:, shortlist + i][:, None] for i, cluster in enumerate(clusters)
    ]
    return jnp.concatenate(pieces, axis=1).astype(dtypes(x)[0])


def adaptive_softmax_loss(
    x: ArrayLike,
    labels: ArrayLike,
    head_weight: ArrayLike,
    tail_weights: TailWeights,
    *,
    cutoffs: Sequence[int],
    head_bias: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
    r"""Negative log-likelihood of class indices under the adaptive softmax:
    $\ell_i = -\log p(y_i \mid x_i)$, as torch's ``AdaptiveLogSoftmaxWithLoss`` (whose
    ``output`` is $-\ell$ and whose ``loss`` is the mean).

    Every cluster is evaluated for every row (static shapes under ``jit``; torch evaluates only
    the rows that need it): the values are the same.

    Args:
      x: ``(N, D)`` hidden states, or ``(D,)`` for one sample.
      labels: ``(N,)`` (or ``()``) integer classes in ``[0, n_classes)``. Out of range raises
        when concrete, and gives nan under ``jit``.
      head_weight: as in `adaptive_log_softmax`.
      tail_weights: as in `adaptive_log_softmax`.
      cutoffs: as in `adaptive_log_softmax`.
      head_bias: as in `adaptive_log_softmax`.
      where: optional ``(N,)`` mask of the rows that count.
      reduction: ``'none'`` | ``'mean'`` | ``'sum'``.

    Returns:
      ``'none'``: the per-row losses ``(N,)`` (``()`` unbatched; masked rows give 0);
      ``'mean'``/``'sum'``: a scalar (the mean over the rows that count).

    Examples:
      >>> import jax.numpy as jnp
      >>> x = jnp.ones((2, 4))
      >>> tails = [(jnp.ones((2, 4)), jnp.ones((3, 2)))]
      >>> loss = adaptive_softmax_loss(x, jnp.array([0, 4]), jnp.zeros((3, 4)), tails,
      ...                              cutoffs=[2])
      >>> round(float(loss), 4)   # head: log 3 for both rows; tail: + log 3 for class 4
      1.6479
    """
    fn = "adaptive_softmax_loss"
    labels = checks.int_array(fn, "labels", labels)
    checks.reduction(fn, reduction)
    x = checks.float_array(fn, "x", x)
    unbatched = labels.ndim == 0
    if unbatched:
        if x.ndim != 1:
            raise ValueError(f"{fn}: a 0-d `labels` needs a 1-d `x`; got {list(x.shape)}.")
        x, labels = x[None], labels[None]
        where = None if where is None else jnp.reshape(jnp.asarray(where), (1,))
    elif labels.ndim != 1 or x.ndim != 2 or x.shape[0] != labels.shape[0]:
        raise ValueError(
            f"{fn}: `labels` (N,) needs `x` (N, in_features) with the same N; got "
            f"x {list(x.shape)} and labels {list(labels.shape)}."
        )
    x, head_weight, tails, head_bias, boundaries = _inputs(
        fn, x, head_weight, tail_weights, cutoffs, head_bias
    )
    where = checks.where_mask(fn, where, labels.shape, "one loss per row")
    indices = class_indices(fn, labels, boundaries[-1], where=where)
    log_p = _label_log_probs(
        x, head_weight, head_bias, tails, indices.safe, boundaries=tuple(boundaries)
    )
    loss = -log_p * indices.label_weights(None, log_p.dtype)  # nan for a bad label under jit
    loss = reduce_loss(loss, reduction, where=where)
    if unbatched and reduction == "none":
        loss = loss[0]
    return finish(loss, dtypes(x)[0])
