"""Classification criteria: cross-entropy, NLL, KL divergence, binary cross-entropy (on
probabilities and on logits), and the margin / multi-label losses.

Conventions: the class axis is the last one by default (``axis=-1``; torch uses 1), options are
keyword-only, defaults match torch's (``ignore_index=-100``, ``reduction="mean"``), and ``where``
masks out elements of the unreduced loss (they contribute nothing and are not counted by 'mean').
"""

from __future__ import annotations

from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
from jax.custom_derivatives import SymbolicZero
from jax.typing import ArrayLike

from ._core import checks
from ._core.class_inputs import (
    along_axis,
    class_indices,
    no_ignore_index_with_probabilities,
    pick_along_axis,
    pick_with_dense_gradient,
    prepare_class_inputs,
)
from ._core.ops import fusible_softplus, strict_hinge, with_partials
from ._core.precision import dtypes, upcast
from ._core.reduction import Reduction, finish, reduce_loss
from ._core.renames import renamed_keywords
from ._core.sharding import rowwise
from ._kernels.probability_ce import probability_cross_entropy
from ._kernels.softmax_ce import Head, RowTargets, softmax_cross_entropy_rows

# The public functions, in the order their docs page lists them (jaxloss and the
# page read this list).
__all__ = [
    "cross_entropy",
    "nll_loss",
    "kl_div",
    "kl_divergence",
    "smooth_labels",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "soft_margin_loss",
    "multilabel_soft_margin_loss",
    "multi_margin_loss",
    "multilabel_margin_loss",
]


def _index_loss(fn, log_probs, labels, *, axis, weight, ignore_index, where, class_mask, reduction):
    """Weighted NLL of class indices (torch's exact weighting): -w[y]·logp[y] per position;
    ignored positions give 0; 'mean' divides by Σ w[y] over the positions that count."""
    indices = class_indices(
        fn,
        labels,
        log_probs.shape[axis],
        ignore_index=ignore_index,
        where=where,
        class_mask=class_mask,
        class_axis=axis,
    )
    label_weight = indices.label_weights(weight, log_probs.dtype)
    picked = pick_with_dense_gradient(log_probs, indices.safe, axis)
    loss = -label_weight * picked
    return reduce_loss(loss, reduction, where=indices.valid, normalizer=label_weight)


def _as_rows(array, axis, num_classes):
    """(..., C, ...) with classes on `axis` -> (N, C)."""
    return jnp.moveaxis(array, axis, -1).reshape(-1, num_classes)


def _fast_index_cross_entropy(
    fn,
    logits,
    labels,
    *,
    axis,
    weight,
    ignore_index,
    label_smoothing,
    where,
    class_mask,
    reduction,
    compute,
):
    """Cross-entropy of class indices through the custom-JVP row kernel (_softmax_ce): the
    same weighting and normalisation as _index_loss, without materialising log-probabilities."""
    num_classes = logits.shape[axis]
    indices = class_indices(
        fn,
        labels,
        num_classes,
        ignore_index=ignore_index,
        where=where,
        class_mask=class_mask,
        class_axis=axis,
    )
    label_weight = indices.label_weights(weight, compute)
    if class_mask is not None and class_mask.ndim > 1:
        class_mask = _as_rows(class_mask, axis, num_classes)
    targets = RowTargets(
        indices.safe.reshape(-1),
        indices.valid.reshape(-1),
        label_weight.reshape(-1),
        weight,
        jnp.asarray(label_smoothing, compute),
        class_mask,
    )
    rows = _as_rows(logits, axis, num_classes)
    head = Head(smooth=not checks.known_zero(label_smoothing))
    loss = softmax_cross_entropy_rows(rows, targets, head=head).reshape(labels.shape)
    normalizer = None if weight is None else label_weight
    return reduce_loss(loss, reduction, where=indices.valid, normalizer=normalizer)


@renamed_keywords(weight="class_weights")
def cross_entropy(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    axis: int = -1,
    class_weights: ArrayLike | None = None,
    ignore_index: int | None = -100,
    label_smoothing: float = 0.0,
    class_mask: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> jax.Array:
    r"""Cross-entropy between class logits and class indices or class probabilities, exactly
    torch's ``cross_entropy``; optionally over a subset of the classes (``class_mask``).

    With integer ``labels`` (class indices), per position

    $$\ell = -(1-\varepsilon)\,w_y \log p_y - \tfrac{\varepsilon}{C}\sum_c w_c \log p_c,
    \quad p = \mathrm{softmax}(\text{logits}),$$

    positions whose label equals ``ignore_index`` (or where ``where`` is False) give 0, and
    'mean' divides the sum by $\sum w_y$ over the positions that count (nan when none
    do). With floating ``labels`` of the logits' shape (class probabilities ``q``), per position
    $\ell = -\sum_c w_c\, q'_c \log p_c$ with $q' = (1-\varepsilon)q +
    \varepsilon/C$, and 'mean' divides by the number of positions.

    Args:
      logits: float array ``(..., C, ...)`` with the classes on ``axis`` (default last);
        ``(C,)`` is one unbatched sample.
      labels: integer indices of shape ``logits.shape`` without ``axis``, or float class
        probabilities of the logits' shape.
      axis: the class axis of ``logits``.
      class_weights: optional ``(C,)`` class weights.
      ignore_index: label value that is ignored (index labels only); ``None`` ignores nothing.
      label_smoothing: ε in [0, 1].
      class_mask: optional boolean mask of the *classes* that take part, ``(C,)`` for every
        position or broadcastable to ``logits``' shape for a mask per position (a vocabulary
        padded to a multiple of 128, an RL policy's invalid actions). Excluded classes are
        left out of the softmax: the loss is exactly the loss over the included classes alone
        (smoothing spreads ε over the included classes, and $\sum w_c$ runs over them),
        and excluded classes get a zero gradient whatever their logits hold. A counted label
        (or class probability > 0) on an excluded class is an error, like an out-of-range
        label. Not to be confused with ``where``, which masks positions.
      where: optional boolean mask of positions (``logits.shape`` without ``axis``); masked
        positions give 0, are not counted by 'mean', and may hold any label.
      reduction: ``'none'``, ``'mean'`` or ``'sum'``.

    Returns:
      ``'none'``: one loss per position, ``logits.shape`` without ``axis`` (``()`` for an
      unbatched ``(C,)`` input); ``'mean'``/``'sum'``: a scalar. In the logits' dtype.

    Under ``jit``, an out-of-range class index (or a label on an excluded class) gives a nan
    loss (use `jaxloss.checked` to raise instead); with concrete inputs it raises
    ``ValueError``.

    Examples:
      >>> logits = jnp.array([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]])
      >>> round(float(jaxloss.cross_entropy(logits, jnp.array([0, 2]))), 4)
      0.6216
      >>> loss = jaxloss.cross_entropy(logits, jnp.array([0, -100]), label_smoothing=0.1,
      ...                              class_weights=jnp.array([1.0, 2.0, 0.5]))
      >>> round(float(loss), 4)
      0.3953

      A vocabulary padded from 3 to 4 classes gives the unpadded loss:

      >>> padded = jnp.pad(logits, ((0, 0), (0, 1)), constant_values=7.0)
      >>> loss = jaxloss.cross_entropy(padded, jnp.array([0, 2]),
      ...                              class_mask=jnp.arange(4) < 3)
      >>> round(float(loss), 4)
      0.6216
    """
    fn = "cross_entropy"
    logits, labels, axis, kind, class_weights, where, class_mask = prepare_class_inputs(
        fn,
        logits,
        labels,
        axis=axis,
        weight=class_weights,
        where=where,
        class_mask=class_mask,
        label_smoothing=label_smoothing,
        allow_probabilities=True,
    )
    checks.reduction(fn, reduction)
    result_dtype, compute = dtypes(logits, labels if kind == "probability" else None)
    class_weights = upcast(class_weights, compute)
    if kind == "index":
        # 16-bit logits go in as they are: the kernel accumulates in float32 and returns the
        # gradient in their dtype, without a float32 copy of the logits.
        loss = _fast_index_cross_entropy(
            fn,
            logits,
            labels,
            axis=axis,
            weight=class_weights,
            ignore_index=ignore_index,
            label_smoothing=label_smoothing,
            where=where,
            class_mask=class_mask,
            reduction=reduction,
            compute=compute,
        )
        return finish(loss, result_dtype)
    no_ignore_index_with_probabilities(fn, ignore_index)
    loss = probability_cross_entropy(
        fn,
        logits.astype(compute),
        labels.astype(compute),
        axis=axis,
        weight=class_weights,
        label_smoothing=label_smoothing,
        where=where,
        class_mask=class_mask,
    )
    return finish(reduce_loss(loss, reduction, where=where), result_dtype)


@renamed_keywords(weight="class_weights")
def nll_loss(
    log_probs: ArrayLike,
    labels: ArrayLike,
    *,
    axis: int = -1,
    class_weights: ArrayLike | None = None,
    ignore_index: int | None = -100,
    class_mask: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> jax.Array:
    r"""Negative log-likelihood of class indices, $\ell = -w_y \cdot
    \text{log\_probs}_y$, as torch's ``nll_loss``.

    Positions labelled ``ignore_index`` or masked by ``where`` give 0; 'mean' divides by
    $\sum w_y$ over the positions that count (nan when none do).

    Args:
      log_probs: float log-probabilities with classes on ``axis`` (e.g. from
        ``jax.nn.log_softmax``; nothing requires them to be normalised).
      labels: integer indices of ``log_probs.shape`` without ``axis``.
      axis: the class axis.
      class_weights: optional ``(C,)`` class weights.
      ignore_index: label value that is ignored; ``None`` ignores nothing.
      class_mask: optional boolean mask of the classes that exist, ``(C,)`` or broadcastable
        to ``log_probs``' shape (as in `cross_entropy`). The loss reads only the label's
        entry, so this only checks the labels: a counted label on an excluded class is an
        error (nan under ``jit``). Normalise the log-probabilities over the included classes
        yourself, or use `cross_entropy` with the same mask, which does.
      where: optional boolean mask of positions (``log_probs.shape`` without ``axis``); masked
        positions give 0, are not counted by 'mean', and may hold any label.
      reduction: ``'none'``, ``'mean'`` or ``'sum'``.

    Returns:
      ``'none'``: ``log_probs.shape`` without ``axis``; ``'mean'``/``'sum'``: a scalar.

    Examples:
      >>> log_probs = jax.nn.log_softmax(jnp.array([[2.0, 0.5, -1.0]]))
      >>> round(float(jaxloss.nll_loss(log_probs, jnp.array([0]))), 4)
      0.2413
    """
    fn = "nll_loss"
    log_probs, labels, axis, _, class_weights, where, class_mask = prepare_class_inputs(
        fn,
        log_probs,
        labels,
        scores_name="log_probs",
        axis=axis,
        weight=class_weights,
        where=where,
        class_mask=class_mask,
    )
    checks.reduction(fn, reduction)
    result_dtype, compute = dtypes(log_probs)
    loss = _index_loss(
        fn,
        log_probs.astype(compute),
        labels,
        axis=axis,
        weight=upcast(class_weights, compute),
        ignore_index=ignore_index,
        where=where,
        class_mask=class_mask,
        reduction=reduction,
    )
    return finish(loss, result_dtype)


@renamed_keywords(log_target="log_targets")
def kl_div(
    log_predictions: ArrayLike,
    targets: ArrayLike,
    *,
    log_targets: bool = False,
    class_mask: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: Literal["none", "mean", "sum", "batchmean"] = "mean",
) -> jax.Array:
    r"""Pointwise Kullback-Leibler divergence, as torch's ``kl_div``:
    $\ell = t\,(\log t - x)$ (as ``xlogy``: t = 0 gives 0), or with ``log_targets=True``
    $\ell = e^{t}(t - x)$, where x are log-predictions.

    'mean' averages over every element (torch's default, which is *not* the KL divergence);
    'batchmean' divides the sum by the size of the first axis, which is the true KL for
    distributions along the remaining axes.

    Args:
      log_predictions: float log-probabilities x.
      targets: probabilities t (or log-probabilities with ``log_targets``), broadcastable with
        ``log_predictions``.
      log_targets: whether ``targets`` are log-probabilities (-inf is a valid one).
      class_mask: optional boolean mask of the classes that exist, broadcastable to the
        loss (``(C,)`` masks the last axis of every row). Excluded elements give 0, get a zero
        gradient whatever ``log_predictions`` hold there, and are not counted by 'mean'
        ('batchmean' still divides by the batch); a target with mass there (t > 0, or a
        log-target above -inf) is an error, nan under ``jit``. Otherwise it acts like
        ``where``, which masks elements without that check.
      where: optional boolean mask over the broadcast loss.
      reduction: ``'none'``, ``'mean'``, ``'sum'`` or ``'batchmean'``.

    Returns:
      ``'none'``: the broadcast shape; otherwise a scalar.

    Examples:
      >>> loss = jaxloss.kl_div(jnp.log(jnp.array([[0.5, 0.5]])), jnp.array([[0.9, 0.1]]),
      ...                       reduction="batchmean")
      >>> round(float(loss), 4)
      0.3681
    """
    fn = "kl_div"
    x = checks.float_array(fn, "log_predictions", log_predictions)
    t = checks.float_array(fn, "targets", targets)
    shape = checks.broadcast_shape(fn, ("log_predictions", "targets"), (x, t))
    checks.reduction(fn, reduction, ("none", "mean", "sum", "batchmean"))
    where = checks.where_mask(fn, where, shape)
    if class_mask is not None:
        class_mask = checks.where_mask(fn, class_mask, shape, "the loss", name="class_mask")
    result_dtype, compute = dtypes(x, t)
    x, t = x.astype(compute), t.astype(compute)
    if log_targets:
        loss = jnp.exp(t) * (t - x)
    else:
        loss = _kl_terms(x, t)
    if class_mask is not None:
        t_full = jnp.broadcast_to(t, shape)
        fine = class_mask | (jnp.isneginf(t_full) if log_targets else t_full == 0)
        if where is not None:
            fine = fine | ~where
        checks.value_check(
            fn,
            fine,
            "`targets` put mass {} on an element that `class_mask` excludes; the targets must "
            + ("be -inf (log-targets) there." if log_targets else "be 0 there."),
            checks.first_violation(t_full, fine),
        )
        # A bad target's element stays counted (as nan), so that the reduction is nan too.
        loss = jnp.where(fine, loss, jnp.asarray(jnp.nan, compute))
        counted = class_mask | ~fine
        where = counted if where is None else where & counted
    batch = x.shape[0] if x.ndim else None
    return finish(reduce_loss(loss, reduction, where=where, batch_size=batch), result_dtype)


def _kl_value(x, t):
    # t·(log t - x) without xlogy's select, which XLA:CPU's reductions do not fuse (the (N, C)
    # xlogy was written out and read back): log(t + tiny) is log t for every t > 0 that tiny
    # does not round (t >= 2^24·tiny), finite at t = 0 (so 0 gives 0, or nan when x = -inf,
    # as xlogy's) and nan for t < 0; below 2^24·tiny the term changes by less than tiny.
    return t * (jnp.log(t + jnp.finfo(t.dtype).tiny) - x)


# Its partials are torch's (and xlogy's): -t, and log t + t/t - x (nan at t = 0).
_kl_terms = with_partials(
    _kl_value,
    lambda x, t: -t,
    lambda x, t: jnp.log(t) + t / t - x,
)


def kl_divergence(
    log_predictions: ArrayLike,
    targets: ArrayLike,
    *,
    log_targets: bool = False,
    generalized: bool = False,
    axis: int = -1,
    class_mask: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> jax.Array:
    r"""The Kullback-Leibler divergence of each distribution along ``axis``,
    $\mathrm{KL}(t\,\|\,p) = \sum_c t_c(\log t_c - x_c)$ with $x = \log p$; with
    ``generalized=True`` (optax's ``generalized_kl_divergence``, for unnormalised
    non-negative measures) plus $\sum_c (e^{x_c} - t_c)$.

    Unlike torch's pointwise `kl_div`, the loss is one divergence per distribution, and a
    class without target mass ($t_c = 0$, or $\log t_c = -\infty$ with ``log_targets``)
    adds exactly 0 whatever its prediction, even $x_c = -\infty$ (where ``kl_div``, torch and
    optax give nan), with a zero gradient there.

    Args:
      log_predictions: float log-probabilities x (``(..., C, ...)``).
      targets: probabilities t, or log-probabilities with ``log_targets=True``,
        broadcastable with ``log_predictions``.
      log_targets: whether ``targets`` are log-probabilities.
      generalized: add $\sum_c(e^{x_c} - t_c)$, which is 0 for normalised distributions.
      axis: the axis of each distribution (of the broadcast shape).
      class_mask: optional boolean mask, broadcastable to the inputs, of the elements that take
        part; the others are left out of the sums.
      where: optional boolean mask of positions (the broadcast shape without ``axis``).
      reduction: ``'none'``, ``'mean'`` (over positions: torch's 'batchmean' for 2-D inputs)
        or ``'sum'``.

    Returns:
      ``'none'``: one divergence per position; otherwise a scalar.

    Examples:
      >>> log_p = jnp.log(jnp.array([[0.5, 0.5], [0.9, 0.1]]))
      >>> jaxloss.kl_divergence(log_p, jnp.array([[0.9, 0.1], [1.0, 0.0]]), reduction="none")
      Array([0.36806..., 0.10536...], dtype=float32)
    """
    fn = "kl_divergence"
    x = checks.float_array(fn, "log_predictions", log_predictions)
    t = checks.float_array(fn, "targets", targets)
    shape = checks.broadcast_shape(fn, ("log_predictions", "targets"), (x, t))
    if not shape:
        raise ValueError(f"{fn}: the inputs need an axis of classes; got scalars.")
    axis = checks.axis(fn, "log_predictions/targets (broadcast)", axis, len(shape))
    checks.reduction(fn, reduction)
    where = checks.where_mask(fn, where, shape[:axis] + shape[axis + 1 :], "one per position")
    if class_mask is not None:
        class_mask = checks.where_mask(fn, class_mask, shape, "the inputs", name="class_mask")
    result_dtype, compute = dtypes(x, t)
    x = jnp.broadcast_to(x.astype(compute), shape)
    t = jnp.broadcast_to(t.astype(compute), shape)
    zero = jnp.zeros((), compute)
    if log_targets:
        has_mass = t > -jnp.inf
        log_t = jnp.where(has_mass, t, zero)
        mass = jnp.where(has_mass, jnp.exp(log_t), zero)
    else:
        has_mass = t != 0
        log_t = jnp.log(jnp.where(has_mass, t, jnp.ones((), compute)))
        mass = t
    terms = jnp.where(has_mass, mass * (log_t - jnp.where(has_mass, x, zero)), zero)
    if generalized:
        terms = terms + jnp.exp(x) - mass
    if class_mask is not None:
        terms = jnp.where(class_mask, terms, zero)
    loss = jnp.sum(terms, axis=axis)
    return finish(reduce_loss(loss, reduction, where=where), result_dtype)


def smooth_labels(
    labels: ArrayLike, alpha: float, *, axis: int = -1, class_mask: ArrayLike | None = None
) -> jax.Array:
    r"""Label smoothing of class probabilities (Müller et al. 2019): $(1 - \alpha)\,q +
    \alpha / C$ along ``axis``; with ``class_mask``, α is spread over the included classes only
    and the excluded ones get 0 (optax's ``smooth_labels(where=...)`` adds α/C to them too).

    The losses of jaxloss take ``label_smoothing=`` directly, on class indices as well; this
    is for targets built by hand.

    Args:
      labels: float class probabilities (e.g. one-hot), classes on ``axis``.
      alpha: α in [0, 1].
      axis: the class axis.
      class_mask: optional boolean mask of the included classes, broadcastable to ``labels``.

    Returns:
      The smoothed probabilities, ``labels``' shape and dtype.

    Examples:
      >>> jaxloss.smooth_labels(jnp.array([1.0, 0.0, 0.0, 0.0]), 0.2)
      Array([0.85, 0.05, 0.05, 0.05], dtype=float32)
    """
    fn = "smooth_labels"
    q = checks.float_array(fn, "labels", labels)
    if q.ndim == 0:
        raise ValueError(f"{fn}: `labels` need a class axis; got a scalar.")
    axis = checks.axis(fn, "labels", axis, q.ndim)
    checks.python_number(fn, "alpha", alpha, low=0.0, high=1.0)
    if class_mask is None:
        return (1 - alpha) * q + alpha / q.shape[axis]
    mask = checks.where_mask(fn, class_mask, q.shape, "`labels`", name="class_mask")
    included = jnp.sum(mask, axis=axis, keepdims=True).astype(q.dtype)
    smoothed = (1 - alpha) * q + alpha / included
    return jnp.where(mask, smoothed, jnp.zeros((), q.dtype))


@jax.custom_jvp
def _bce_terms(probs, labels):
    # torch clamps each log at -100 so that probabilities of exactly 0 or 1 give finite losses.
    log_p = jnp.maximum(jnp.log(probs), -100.0)
    log_1mp = jnp.maximum(jnp.log1p(-probs), -100.0)
    return (labels - 1) * log_1mp - labels * log_p


# torch's kernel declares EPSILON = 1e-12 as a C++ float, so even float64 sees float32(1e-12).
_BCE_GRAD_EPSILON = float(np.float32(1e-12))


def _bce_jvp(primals, tangents):
    """torch's derivative, (p - y) / max(p(1-p), 1e-12), not that of the clamped logs; as a
    JVP, so forward mode and second derivatives work too (reverse mode transposes it). The
    label term (infinite at p = 0 or 1) is formed only when the labels have a tangent."""
    probs, labels = primals
    t_probs, t_labels = tangents
    loss = _bce_terms(probs, labels)
    tangent = jnp.zeros_like(loss)
    if not isinstance(t_probs, SymbolicZero):
        d_probs = (probs - labels) / jnp.maximum((1 - probs) * probs, _BCE_GRAD_EPSILON)
        tangent = tangent + d_probs * t_probs
    if not isinstance(t_labels, SymbolicZero):
        tangent = tangent + (jnp.log1p(-probs) - jnp.log(probs)) * t_labels
    return loss, tangent


_bce_terms.defjvp(_bce_jvp, symbolic_zeros=True)


@renamed_keywords(weight="weights")
def binary_cross_entropy(
    probs: ArrayLike,
    labels: ArrayLike,
    *,
    weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> jax.Array:
    r"""Binary cross-entropy on probabilities, as torch's ``binary_cross_entropy``:
    $\ell = -w\,[y \log p + (1-y)\log(1-p)]$, each log clamped at -100 (torch's rule,
    so p = 0 or 1 gives a finite loss), with torch's gradient
    $(p-y)/\max(p(1-p), 10^{-12})$. Prefer `binary_cross_entropy_with_logits`,
    which is stable without clamping.

    Args:
      probs: float probabilities in [0, 1] (outside raises when concrete).
      labels: float targets in [0, 1] of ``probs``' shape.
      weights: optional weights broadcastable to ``probs``.
      where: optional boolean mask of ``probs``' shape.
      reduction: ``'none'``, ``'mean'`` or ``'sum'`` ('mean' divides by the element count).

    Returns:
      ``'none'``: ``probs.shape``; ``'mean'``/``'sum'``: a scalar.

    Examples:
      >>> round(float(jaxloss.binary_cross_entropy(jnp.array([0.9, 0.2]),
      ...                                          jnp.array([1.0, 0.0]))), 4)
      0.1643
    """
    fn = "binary_cross_entropy"
    p = checks.float_array(fn, "probs", probs)
    y = checks.float_array(fn, "labels", labels, " Cast 0/1 labels to a float dtype.")
    checks.shapes_equal(fn, "probs", p, "labels", y)
    checks.reduction(fn, reduction)
    if weights is not None:
        weights = checks.float_array(fn, "weights", weights)
        checks.broadcasts_to(fn, "weights", weights, p.shape, "`probs`")
    where = checks.where_mask(fn, where, p.shape)
    p_ok = (p >= 0) & (p <= 1)
    checks.value_check(
        fn,
        p_ok,
        "every element of `probs` must be in [0, 1]; found {}.",
        checks.first_violation(p, p_ok),
    )
    y_ok = (y >= 0) & (y <= 1)
    checks.value_check(
        fn,
        y_ok,
        "every element of `labels` must be in [0, 1]; found {}.",
        checks.first_violation(y, y_ok),
    )
    result_dtype, compute = dtypes(p, y)
    loss = _bce_terms(p.astype(compute), y.astype(compute))
    if weights is not None:
        loss = loss * weights.astype(compute)
    return finish(reduce_loss(loss, reduction, where=where), result_dtype)


# The logistic loss (1 - y)·x - log σ(x) = x - x·y + softplus(-x) of logits x and targets y,
# with torch's derivative σ(x) - y in its own pass (see `with_partials`): two passes over the
# inputs instead of five.
_logistic_terms = with_partials(
    lambda x, y: x - x * y + fusible_softplus(-x),
    lambda x, y: jax.nn.sigmoid(x) - y,
    lambda x, y: -x,
)
# With the positive term weighted by w = 1 + (pos_weight - 1)·y: (1 - y)·x - w·log σ(x).
_weighted_logistic_terms = with_partials(
    lambda x, y, w: x - x * y + w * fusible_softplus(-x),
    lambda x, y, w: (1 - y) - w * jax.nn.sigmoid(-x),
    lambda x, y, w: -x,
    # a partial is differentiated for second derivatives: jax.nn.softplus's is right at
    # x = 0, where fusible_softplus's max and |x| have kinks
    lambda x, y, w: jax.nn.softplus(-x),
)
# softplus(-y·x), the two-class logistic loss of ±1 labels.
_soft_margin_terms = with_partials(
    lambda x, y: fusible_softplus(-y * x),
    lambda x, y: -y * jax.nn.sigmoid(-y * x),
    lambda x, y: -x * jax.nn.sigmoid(-y * x),
)


@renamed_keywords(weight="weights")
def binary_cross_entropy_with_logits(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    weights: ArrayLike | None = None,
    pos_weight: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> jax.Array:
    r"""Binary cross-entropy on logits, as torch's ``binary_cross_entropy_with_logits``:
    $\ell = w\,[(1-y)\,x - (1 + (\text{pos\_weight}-1)\,y)\log\sigma(x)]$, with
    $-\log\sigma(x)$ as $\max(-x, 0) + \log(1 + e^{-|x|})$, so logits of any magnitude are
    exact. The gradient (torch's $\sigma(x) - y$ without ``pos_weight``) has a pass of its own.

    Args:
      logits: float logits x.
      labels: float targets y in [0, 1] of the logits' shape.
      weights: optional weights broadcastable to ``logits``.
      pos_weight: optional weight of the positive term, broadcastable to ``logits`` (e.g.
        one per class, ``(C,)``).
      where: optional boolean mask of the logits' shape.
      reduction: ``'none'``, ``'mean'`` or ``'sum'``.

    Returns:
      ``'none'``: ``logits.shape``; ``'mean'``/``'sum'``: a scalar.

    Examples:
      >>> round(float(jaxloss.binary_cross_entropy_with_logits(jnp.array([3.0, -1.0]),
      ...                                                      jnp.array([1.0, 0.0]))), 4)
      0.1809
    """
    fn = "binary_cross_entropy_with_logits"
    x = checks.float_array(fn, "logits", logits)
    y = checks.float_array(fn, "labels", labels, " Cast 0/1 labels to a float dtype.")
    checks.shapes_equal(fn, "logits", x, "labels", y)
    checks.reduction(fn, reduction)
    for name, extra in (("weights", weights), ("pos_weight", pos_weight)):
        if extra is not None:
            checks.broadcasts_to(fn, name, checks.float_array(fn, name, extra), x.shape, "`logits`")
    where = checks.where_mask(fn, where, x.shape)
    result_dtype, compute = dtypes(x, y)
    x, y = x.astype(compute), y.astype(compute)
    if pos_weight is None:
        loss = _logistic_terms(x, y)
    else:
        log_weight = (jnp.asarray(pos_weight).astype(compute) - 1) * y + 1
        loss = _weighted_logistic_terms(x, y, jnp.broadcast_to(log_weight, x.shape))
    if weights is not None:
        loss = loss * jnp.asarray(weights).astype(compute)
    return finish(reduce_loss(loss, reduction, where=where), result_dtype)


def soft_margin_loss(
    scores: ArrayLike,
    labels: ArrayLike,
    *,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> jax.Array:
    r"""Two-class logistic loss $\ell = \log(1 + e^{-y x})$ for labels y in {-1, 1}, as
    torch's ``soft_margin_loss``.

    Computed as ``softplus(-y·x)``, which stays finite where torch's ``log1p(exp(-y·x))``
    overflows (|x| > 88 in float32).

    Args:
      scores: float scores x.
      labels: ±1 labels, broadcastable with ``scores``.
      where: optional boolean mask over the broadcast loss.
      reduction: ``'none'``, ``'mean'`` or ``'sum'``.

    Returns:
      ``'none'``: the broadcast shape; ``'mean'``/``'sum'``: a scalar.

    Examples:
      >>> round(float(jaxloss.soft_margin_loss(jnp.array([2.0, -1.0]), jnp.array([1.0, -1.0]))), 4)
      0.2201
    """
    fn = "soft_margin_loss"
    x = checks.float_array(fn, "scores", scores)
    y = checks.real_array(fn, "labels", labels)
    shape = checks.broadcast_shape(fn, ("scores", "labels"), (x, y))
    checks.reduction(fn, reduction)
    where = checks.where_mask(fn, where, shape)
    result_dtype, compute = dtypes(x, y)
    x, y = jnp.broadcast_arrays(x.astype(compute), y.astype(compute))
    loss = _soft_margin_terms(x, y)
    return finish(reduce_loss(loss, reduction, where=where), result_dtype)


@renamed_keywords(weight="weights")
def multilabel_soft_margin_loss(
    scores: ArrayLike,
    labels: ArrayLike,
    *,
    axis: int = -1,
    weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> jax.Array:
    r"""Multi-label one-versus-all logistic loss averaged over classes, as torch's
    ``multilabel_soft_margin_loss``: per sample
    $\ell = -\frac1C\sum_c w_c\,[y_c\log\sigma(x_c) + (1-y_c)\log\sigma(-x_c)]$.

    Args:
      scores: float scores with the classes on ``axis`` (torch uses the last axis too).
      labels: 0/1 (or soft) targets broadcastable to ``scores``.
      axis: the class axis.
      weights: optional weights broadcastable to ``scores`` (typically ``(C,)``).
      where: optional boolean mask of samples (``scores.shape`` without ``axis``).
      reduction: ``'none'``, ``'mean'`` or ``'sum'``.

    Returns:
      ``'none'``: one loss per sample, ``scores.shape`` without ``axis``; otherwise a scalar.

    Examples:
      >>> round(float(jaxloss.multilabel_soft_margin_loss(jnp.array([[2.0, -1.0, 0.5]]),
      ...                                                 jnp.array([[1, 0, 1]]))), 4)
      0.3048
    """
    fn = "multilabel_soft_margin_loss"
    x = checks.float_array(fn, "scores", scores)
    if x.ndim == 0:
        raise ValueError(f"{fn}: `scores` must have a class axis; got a scalar.")
    y = checks.real_array(fn, "labels", labels)
    checks.broadcasts_to(fn, "labels", y, x.shape, "`scores`")
    axis = checks.axis(fn, "scores", axis, x.ndim)
    if weights is not None:
        weights = checks.float_array(fn, "weights", weights)
        checks.broadcasts_to(fn, "weights", weights, x.shape, "`scores`")
    checks.reduction(fn, reduction)
    where = checks.where_mask(
        fn, where, x.shape[:axis] + x.shape[axis + 1 :], "one loss per sample"
    )
    result_dtype, compute = dtypes(x, y)
    x, y = x.astype(compute), y.astype(compute)
    loss = _logistic_terms(x, jnp.broadcast_to(y, x.shape))
    if weights is not None:
        loss = loss * weights.astype(compute)
    loss = jnp.sum(loss, axis=axis) / x.shape[axis]
    return finish(reduce_loss(loss, reduction, where=where), result_dtype)


@renamed_keywords(weight="class_weights")
def multi_margin_loss(
    scores: ArrayLike,
    labels: ArrayLike,
    *,
    axis: int = -1,
    p: int = 1,
    margin: float = 1.0,
    class_weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> jax.Array:
    r"""Multi-class hinge loss, as torch's ``multi_margin_loss``: per sample with label y,
    $\ell = \frac1C\sum_{i\ne y} w_y\,\max(0,\ \text{margin} - x_y + x_i)^p$.

    A *mean* over the classes: optax's ``multiclass_hinge_loss`` is a different loss (a max
    over the classes).

    Args:
      scores: float scores with the classes on ``axis``.
      labels: integer indices of ``scores.shape`` without ``axis``.
      axis: the class axis.
      p: 1 or 2.
      margin: the required gap between the label's score and the others.
      class_weights: optional ``(C,)`` class weights (w_y scales the sample; 'mean' does not
        divide by them).
      where: optional boolean mask of positions (``scores.shape`` without ``axis``); masked
        positions give 0, are not counted by 'mean', and may hold any label.
      reduction: ``'none'``, ``'mean'`` or ``'sum'``.

    Returns:
      ``'none'``: one loss per sample; ``'mean'``/``'sum'``: a scalar.

    Examples:
      >>> round(float(jaxloss.multi_margin_loss(jnp.array([[0.1, 0.2, 0.4, 0.8]]),
      ...                                       jnp.array([3]))), 4)
      0.325
    """
    fn = "multi_margin_loss"
    checks.multi_margin_options(fn, p, class_weights)
    x, labels, axis, _, class_weights, where, _ = prepare_class_inputs(
        fn,
        scores,
        labels,
        scores_name="scores",
        axis=axis,
        weight=class_weights,
        where=where,
    )
    checks.python_number(fn, "margin", margin)
    checks.reduction(fn, reduction)
    num_classes = x.shape[axis]
    indices = class_indices(fn, labels, num_classes, where=where)
    result_dtype, compute = dtypes(x)
    x = x.astype(compute)
    expanded = jnp.expand_dims(indices.safe, axis)
    target_score = jnp.expand_dims(pick_along_axis(x, indices.safe, axis), axis)
    # torch's kernel counts a term only when z > 0: zero gradient at the kink (and NaN scores
    # count for nothing, as there).
    hinge = strict_hinge(margin - target_score + x)
    if p == 2:
        hinge = hinge * hinge
    class_ids = along_axis(jnp.arange(num_classes), x.ndim, axis)
    hinge = jnp.where(class_ids == expanded, jnp.zeros((), compute), hinge)
    # w[y] (1 unweighted) is nan for an out-of-range label under jit.
    loss = jnp.sum(hinge, axis=axis) / num_classes * indices.label_weights(class_weights, compute)
    return finish(reduce_loss(loss, reduction, where=where), result_dtype)


def _multilabel_margin_with_grad(x, y):
    """Per-row multilabel margin loss of (R, C) scores and its gradient, looping only over
    the listed target slots, as torch's kernel does.

    Row r's loss is Σ_j Σ_i max(0, 1 - x_j + x_i) / C over its listed targets j (the labels
    before the first -1, repeats counted again, as in torch) and its non-targets i. Slot s of
    every row is one (R, C) elementwise step, and the loop stops after the last slot any row
    lists: T·R·C work for T listed targets, against C² per row for every pair or a sort per
    row. The gradient is counted in the same pass: +1/C at a non-target per target it is
    within the margin of, -1/C at a target per such non-target. A NaN score makes its terms
    NaN, which torch's kernel (testing z > 0) counts as 0; so does this.
    """
    rows, num_classes = x.shape
    # Labels closed over by a user's jit are constants, and XLA's constant folding of the
    # reductions below takes seconds at (1024, 128) (30 s at 8192 rows); the barrier keeps
    # them runtime values.
    y = jax.lax.optimization_barrier(y)
    classes = jax.lax.broadcasted_iota(jnp.int32, (rows, num_classes), 1)
    # The targets are the labels before the first -1.
    stops = jnp.concatenate([y == -1, jnp.ones_like(y[:, :1], bool)], axis=1)
    listed = classes < jnp.argmax(stops, axis=1)[:, None]
    safe = jnp.where(listed, y, 0)
    zero = jnp.zeros((), x.dtype)

    def has_slot(state):
        slot = state[0]
        column = jax.lax.dynamic_index_in_dim(listed, jnp.minimum(slot, num_classes - 1), 1)
        return (slot < num_classes) & jnp.any(column)

    def slot_target(slot):
        target = jax.lax.dynamic_index_in_dim(safe, slot, 1, keepdims=True)  # (R, 1)
        return target, jax.lax.dynamic_index_in_dim(listed, slot, 1, keepdims=True)

    def mark_target(state):
        slot, is_target = state
        target, active = slot_target(slot)
        return slot + 1, is_target | ((classes == target) & active)

    no_slot = jnp.zeros((), jnp.int32)
    _, is_target = jax.lax.while_loop(has_slot, mark_target, (no_slot, jnp.zeros_like(listed)))

    def one_slot(state):
        slot, loss, grad = state
        target, active = slot_target(slot)
        target_score = jnp.take_along_axis(x, target, axis=1)
        margin = 1 - target_score + x
        hit = (margin > 0) & ~is_target & active
        loss = loss + jnp.sum(jnp.where(hit, margin, zero), axis=1)
        hits = hit.astype(x.dtype)
        grad = grad + hits - jnp.where(classes == target, jnp.sum(hits, axis=1, keepdims=True), 0)
        return slot + 1, loss, grad

    # *_like x: inside shard_map (`rowwise`) the carry then varies over the mesh as x does.
    start = (no_slot, jnp.zeros_like(x[:, 0]), jnp.zeros_like(x))
    _, loss, grad = jax.lax.while_loop(has_slot, one_slot, start)
    return loss / num_classes, grad / num_classes


@jax.custom_jvp
def _multilabel_margin_rows_with_derivatives(x, y):
    return _multilabel_margin_with_grad(x, y)[0]


def _multilabel_margin_rows_jvp(primals, tangents):
    """The loss is piecewise linear in the scores: its tangent is the gradient (counted in
    the forward pass, constant between kinks) times the scores' tangent, so forward and
    reverse mode both work without differentiating the loop."""
    x, y = primals
    loss, grad = _multilabel_margin_with_grad(x, y)
    grad = jax.lax.stop_gradient(grad)
    t_x = tangents[0]
    if isinstance(t_x, SymbolicZero):
        return loss, jnp.zeros_like(loss)
    return loss, jnp.sum(grad * t_x, axis=1)


_multilabel_margin_rows_with_derivatives.defjvp(_multilabel_margin_rows_jvp, symbolic_zeros=True)

# Jitted so that eager calls compile the slot loop once per shape. On an Explicit mesh it
# runs per device (`rowwise`), rows split as the scores'.
_multilabel_margin_rows = jax.jit(_multilabel_margin_rows_with_derivatives)


def multilabel_margin_loss(
    scores: ArrayLike,
    labels: ArrayLike,
    *,
    axis: int = -1,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> jax.Array:
    r"""Multi-label hinge loss, as torch's ``multilabel_margin_loss``: with T the target set of
    a sample, $\ell = \frac1C\sum_{j\in T}\sum_{i\notin T}\max(0,\ 1 - (x_j -
    x_i))$, computed in O(C log C) time and O(C) memory per sample (sort, binary search,
    prefix sums) instead of all C² pairs.

    Args:
      scores: float scores with the classes on ``axis``.
      labels: integers of ``scores``' shape: per sample, the target classes first, the list
        ending at the first -1 (the rest is ignored).
      axis: the class axis.
      where: optional boolean mask of samples (``scores.shape`` without ``axis``).
      reduction: ``'none'``, ``'mean'`` or ``'sum'``.

    Returns:
      ``'none'``: one loss per sample; ``'mean'``/``'sum'``: a scalar.

    Examples:
      >>> round(float(jaxloss.multilabel_margin_loss(jnp.array([[0.1, 0.2, 0.4, 0.8]]),
      ...                                            jnp.array([[3, 0, -1, 1]]))), 4)
      0.85
    """
    fn = "multilabel_margin_loss"
    x = checks.float_array(fn, "scores", scores)
    if x.ndim == 0:
        raise ValueError(f"{fn}: `scores` must have a class axis; got a scalar.")
    y = checks.int_array(fn, "labels", labels)
    checks.shapes_equal(
        fn, "scores", x, "labels", y, " (Each row lists target classes and ends with -1.)"
    )
    axis = checks.axis(fn, "scores", axis, x.ndim)
    checks.reduction(fn, reduction)
    where = checks.where_mask(
        fn, where, x.shape[:axis] + x.shape[axis + 1 :], "one loss per sample"
    )
    num_classes = x.shape[axis]
    ok = (y >= -1) & (y < num_classes)
    checks.value_check(
        fn,
        ok,
        f"label {{}} is out of range; expected [-1, {num_classes}).",
        checks.first_violation(y, ok),
    )
    result_dtype, compute = dtypes(x)
    x = jnp.moveaxis(x.astype(compute), axis, -1)
    y = jnp.moveaxis(y, axis, -1)
    rows_x, rows_y = x.reshape(-1, num_classes), y.reshape(-1, num_classes)
    loss = rowwise(_multilabel_margin_rows, rows_x, rows_y).reshape(x.shape[:-1])
    # Under jit an out-of-range label cannot raise: its sample's loss is nan, never a number.
    loss = jnp.where(jnp.all(jnp.moveaxis(ok, axis, -1), axis=-1), loss, jnp.nan)
    return finish(reduce_loss(loss, reduction, where=where), result_dtype)
