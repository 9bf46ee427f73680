r"""Focal, polynomial and generalized cross-entropies, and the z-loss.

- `sigmoid_focal_loss`: binary focal loss (Lin et al. 2017) on logits or probabilities, with
  α class balancing and label smoothing toward 1/2 (torchvision's and Keras' semantics).
- `softmax_focal_loss`: the categorical focal loss over class indices (on the index path, no
  one-hot) or class probabilities, with class weights, ``ignore_index``, label smoothing and
  class masks.
- `poly1_cross_entropy`: Poly-1 (Leng et al. 2022), cross-entropy plus ε(1 - p_t).
- `generalized_cross_entropy`: the noise-robust (1 - p_y^q)/q (Zhang & Sabuncu 2018).
- `z_loss`: the squared log-partition function, logsumexp(logits)², as a loss of its own.

The focusing factor $(1 - p_t)^\gamma$ is formed from $\log(1 - p_t)$ computed without
cancellation ($1 - \sigma(x) = \sigma(-x)$; $1 - p_y$ from the log-sum-exp of the other
classes), so logits of ±1000 give exact, finite losses and gradients for every γ >= 0,
including γ < 1, where the derivative of $q^\gamma$ at a rounded $q = 0$ is infinite.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from ._core import checks
from ._core.class_inputs import (
    along_axis,
    are_probabilities,
    class_indices,
    is_index,
    no_ignore_index_with_probabilities,
    pick_along_axis,
    prepare_class_inputs,
)
from ._core.ops import is_symbolic_zero
from ._core.precision import dtypes, upcast
from ._core.reduction import Reduction, finish, reduce_loss
from ._core.renames import renamed_keywords
from ._kernels.probability_ce import probability_cross_entropy

# The public functions, in the order their docs page lists them (jaxloss and the
# page read this list).
__all__ = [
    "sigmoid_focal_loss",
    "softmax_focal_loss",
    "poly1_cross_entropy",
    "generalized_cross_entropy",
    "z_loss",
]


def _power_of_log(log_q, gamma, dtype):
    """q**gamma from log q (log q = -inf: 0, or 1 when gamma = 0), with finite gradients."""
    finite = log_q > -jnp.inf
    safe = jnp.where(finite, log_q, jnp.zeros((), dtype))
    at_zero = jnp.where(jnp.asarray(gamma) == 0, 1, 0).astype(dtype)
    return jnp.where(finite, jnp.exp(gamma * safe), at_zero)


def _log_of(q, dtype):
    """log q for q >= 0 (-inf at 0) without a nan gradient at 0."""
    positive = q > 0
    return jnp.where(
        positive, jnp.log(jnp.where(positive, q, jnp.ones((), dtype))), jnp.asarray(-jnp.inf, dtype)
    )


@jax.custom_jvp
def _log_one_minus_pt(x, t):
    """log(1 - p_t) = log(t σ(-x) + (1 - t) σ(x)) for logits x and targets t in [0, 1].

    The value is a log-sum-exp of the two terms' logs (a target of 0 or 1 drops its term
    exactly). The derivatives are closed forms whose ratios are taken in log space,
    σ(x)σ(-x)/q = exp(log σ(x) + log σ(-x) - log q) with q = 1 - p_t >= min(σ(x), σ(-x)), so no
    small number is divided by another: first and second derivatives stay finite where
    1 - p_t underflows (a saturated logit), which autodiff of log(q) does not."""
    return jnp.logaddexp(jnp.log(t) + jax.nn.log_sigmoid(-x), jnp.log1p(-t) + jax.nn.log_sigmoid(x))


def _log_one_minus_pt_jvp(primals, tangents):
    x, t = primals
    t_x, t_t = tangents
    log_q = _log_one_minus_pt(x, t)
    log_p, log_not_p = jax.nn.log_sigmoid(x), jax.nn.log_sigmoid(-x)
    tangent = jnp.zeros_like(log_q)
    if not is_symbolic_zero(t_x):
        tangent = tangent + (1 - 2 * t) * jnp.exp(log_p + log_not_p - log_q) * t_x
    # d/dt = (σ(-x) - σ(x)) / q overflows where a saturated logit meets the opposite target:
    # it is formed only when the targets have a tangent, so a constant target adds nothing
    if not is_symbolic_zero(t_t):
        tangent = tangent + (jnp.exp(log_not_p - log_q) - jnp.exp(log_p - log_q)) * t_t
    return log_q, tangent


_log_one_minus_pt.defjvp(_log_one_minus_pt_jvp, symbolic_zeros=True)


def sigmoid_focal_loss(
    logits: ArrayLike,
    targets: ArrayLike,
    *,
    alpha: float | None = 0.25,
    gamma: float = 2.0,
    label_smoothing: float = 0.0,
    from_logits: bool = True,
    reduced_threshold: float | None = None,
    normalized: bool = False,
    weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> jax.Array:
    r"""Binary focal loss (Lin et al. 2017), elementwise:
    $\ell = \alpha_t\,(1 - p_t)^\gamma\,\mathrm{BCE}(x, t)$ with $p = \sigma(x)$,
    $p_t = p\,t + (1 - p)(1 - t)$ and $\alpha_t = \alpha t + (1 - \alpha)(1 - t)$.

    With ``label_smoothing`` ε the targets first become $t(1 - ε) + ε/2$ (Keras'
    ``BinaryFocalCrossentropy``), and every term uses them. ``alpha=None`` leaves out the
    balancing (torchvision's ``alpha=-1``; Keras' ``apply_class_balancing=False``).

    Two variants, as segmentation_models_pytorch has them (exact to its
    ``focal_loss_with_logits`` for hard targets, whose $p_t$ it takes as $e^{-\mathrm{BCE}}$):
    the reduced focal loss (Sergievskiy & Ponamarev 2019) with ``reduced_threshold`` r uses
    $((1 - p_t)/r)^\gamma$ where $p_t \ge r$ and 1 where $p_t < r$; the normalised one
    (``normalized``) divides every term by $\sum (1 - p_t)^\gamma$ over the counted elements
    (at least 1e-6), gradient included.

    Exact to torchvision's ``sigmoid_focal_loss`` (``jaxloss.compat.torchvision``) where
    that is finite; at saturated logits with γ < 1, where torch's gradient is nan, this one
    is exact and finite.

    Args:
      logits: float logits x (or probabilities with ``from_logits=False``).
      targets: float targets t in [0, 1], of the logits' shape.
      alpha: α in [0, 1], the weight of the positive class, or None.
      gamma: γ >= 0, the focusing exponent (0: weighted BCE).
      label_smoothing: ε in [0, 1].
      from_logits: whether ``logits`` are logits (default) or probabilities in [0, 1] (their
        logs clamped at -100, as torch's ``binary_cross_entropy``).
      reduced_threshold: r in (0, 1] of the reduced focal loss, or None.
      normalized: divide by the sum of the focal factors (the normalised focal loss).
      weights: optional per-element weights broadcastable to the logits, e.g. ``(C,)`` class
        weights on a channels-last input (MONAI's ``FocalLoss(weight=...)``); 'mean' still
        divides by the number of elements.
      where: optional boolean mask of the logits' shape.
      reduction: ``'none'``, ``'mean'`` or ``'sum'``.

    Returns:
      ``'none'``: ``logits.shape``; ``'mean'``/``'sum'``: a scalar.

    Examples:
      >>> x, t = jnp.array([2.0, -1.0, 0.5]), jnp.array([1.0, 0.0, 0.0])
      >>> round(float(jaxloss.sigmoid_focal_loss(x, t)), 5)
      0.10017
    """
    fn = "sigmoid_focal_loss"
    x = checks.float_array(fn, "logits", logits)
    t = checks.float_array(fn, "targets", targets, " Cast 0/1 targets to a float dtype.")
    checks.shapes_equal(fn, "logits", x, "targets", t)
    checks.reduction(fn, reduction)
    if alpha is not None:
        checks.python_number(fn, "alpha", alpha, low=0.0, high=1.0)
    checks.python_number(fn, "gamma", gamma, low=0.0)
    checks.python_number(fn, "label_smoothing", label_smoothing, low=0.0, high=1.0)
    if reduced_threshold is not None:
        checks.python_number(
            fn, "reduced_threshold", reduced_threshold, low=0.0, high=1.0, low_inclusive=False
        )
    where = checks.where_mask(fn, where, x.shape)
    if weights is not None:
        weights = checks.float_array(fn, "weights", weights)
        checks.broadcasts_to(fn, "weights", weights, x.shape, "`logits`")
    if not from_logits:
        in_range = (x >= 0) & (x <= 1)
        checks.value_check(
            fn,
            in_range,
            "with from_logits=False every element of `logits` is a probability and must be in "
            "[0, 1]; found {}.",
            checks.first_violation(x, in_range),
        )
    result_dtype, compute = dtypes(x, t)
    x, t = x.astype(compute), t.astype(compute)
    if not checks.known_zero(label_smoothing):
        t = t * (1 - label_smoothing) + label_smoothing / 2
    # An integer γ (the usual 2) is a product: exact and finite even where 1 - p_t rounds
    # to 0. Another γ goes through log(1 - p_t), computed without cancellation or underflow.
    integer_gamma = isinstance(gamma, (int, float)) and float(gamma).is_integer()
    if from_logits:
        # σ(x), σ(-x) and softplus(-x) have no cancellation, and their derivatives are smooth
        # at x = 0, where a zero-initialised head puts every logit (|x| and max(-x, 0) are not).
        # BCE as t·softplus(-x) + (1 - t)·softplus(x): each term is exact in its own tail, where
        # (1 - t)·x + softplus(-x) would cancel (x ≪ 0 with t = 0: -x + x + e^x).
        p, not_p = jax.nn.sigmoid(x), jax.nn.sigmoid(-x)
        bce = t * jax.nn.softplus(-x) + (1 - t) * jax.nn.softplus(x)
        q = t * not_p + (1 - t) * p  # 1 - p_t
        if integer_gamma:
            focus = q ** int(gamma)
        else:
            focus = _power_of_log(_log_one_minus_pt(x, t), gamma, compute)
    else:
        log_p = jnp.maximum(_log_of(x, compute), -100.0)
        log_not_p = jnp.maximum(_log_of(1 - x, compute), -100.0)
        bce = -(t * log_p + (1 - t) * log_not_p)
        q = t * (1 - x) + (1 - t) * x
        focus = (
            q ** int(gamma) if integer_gamma else _power_of_log(_log_of(q, compute), gamma, compute)
        )
    if reduced_threshold is not None:
        focus = jnp.where(q > 1 - reduced_threshold, 1.0, focus / reduced_threshold**gamma)
    loss = focus * bce
    if normalized:
        counted = focus if where is None else jnp.where(where, focus, 0.0)
        loss = loss / jnp.maximum(jnp.sum(counted), 1e-6)
    if not from_logits:  # under jit an out-of-range probability gives nan, never a number
        loss = jnp.where((x >= 0) & (x <= 1), loss, jnp.nan)
    if alpha is not None:
        loss = (alpha * t + (1 - alpha) * (1 - t)) * loss
    if weights is not None:
        loss = loss * weights.astype(compute)
    return finish(reduce_loss(loss, reduction, where=where), result_dtype)


class _SoftmaxTerms:
    """Per-position log p_c, log(1 - p_c) and the label's log p_y, log(1 - p_y) over the
    included classes, with the classes on `axis`."""

    def __init__(self, x, safe_labels, axis, class_mask):
        dtype = x.dtype
        if class_mask is not None:
            mask = along_axis(class_mask, x.ndim, axis) if class_mask.ndim == 1 else class_mask
            x = jnp.where(mask, x, -jnp.inf)
        self.mask = None if class_mask is None else jnp.broadcast_to(mask, x.shape)
        lse = jax.nn.logsumexp(x, axis=axis, keepdims=True)
        self.log_p = x - lse
        self.log_p_label = pick_along_axis(self.log_p, safe_labels, axis)
        # 1 - p_y = Σ_{c≠y} p_c, from the other classes' log-sum-exp: no cancellation as p_y -> 1.
        others = jnp.where(is_index(x.shape, safe_labels, axis), -jnp.inf, x)
        # No other class at all (C = 1, or a mask keeping only the label): 1 - p_y = 0. The
        # log-sum-exp of nothing but -inf would pass a nan back through its log.
        has_other = jnp.any(others > -jnp.inf, axis=axis, keepdims=True)
        others = jnp.where(has_other, others, jnp.zeros((), dtype))
        log_not_label = jax.nn.logsumexp(others, axis=axis, keepdims=True) - lse
        self.log_not_label = jnp.squeeze(
            jnp.where(has_other, log_not_label, jnp.asarray(-jnp.inf, dtype)), axis
        )
        self.dtype = dtype
        self.axis = axis

    def smoothing_sum(self, per_class, weight):
        """Σ_c w_c · per_class_c over the included classes, and their count."""
        if weight is not None:
            per_class = per_class * along_axis(weight, per_class.ndim, self.axis)
        num_classes = per_class.shape[self.axis]
        if self.mask is None:
            return jnp.sum(per_class, axis=self.axis), num_classes
        zero = jnp.zeros((), per_class.dtype)
        total = jnp.sum(jnp.where(self.mask, per_class, zero), axis=self.axis)
        return total, jnp.sum(self.mask, axis=self.axis).astype(per_class.dtype)

    def safe_log_p(self):
        """log p_c with 0 at excluded classes (whose -inf would make 0·inf)."""
        if self.mask is None:
            return self.log_p
        return jnp.where(self.mask, self.log_p, jnp.zeros((), self.dtype))


def _class_loss(fn, logits, labels, axis, weight, ignore_index, label_smoothing, class_mask, where):
    """Shared set-up of the index-label softmax losses: terms, label weights, validity."""
    logits, labels, axis, kind, weight, where, class_mask = prepare_class_inputs(
        fn,
        logits,
        labels,
        axis=axis,
        weight=weight,
        where=where,
        class_mask=class_mask,
        label_smoothing=label_smoothing,
    )
    del kind  # integer labels only (checked)
    result_dtype, compute = dtypes(logits)
    weight = upcast(weight, compute)
    indices = class_indices(
        fn,
        labels,
        logits.shape[axis],
        ignore_index=ignore_index,
        where=where,
        class_mask=class_mask,
        class_axis=axis,
    )
    terms = _SoftmaxTerms(logits.astype(compute), indices.safe, axis, class_mask)
    label_weight = indices.label_weights(weight, compute)
    return terms, indices, label_weight, weight, result_dtype, compute


def _probability_class_loss(
    fn,
    logits,
    labels,
    axis,
    weight,
    ignore_index,
    label_smoothing,
    class_mask,
    where,
    reduction,
    per_class,
):
    """-Σ_c w_c q'_c f(log p_c) per position for class-probability labels q (smoothed to q'),
    through cross-entropy's probability path; 'mean' divides by the number of positions."""
    no_ignore_index_with_probabilities(fn, ignore_index)
    logits, labels, axis, _, weight, where, class_mask = prepare_class_inputs(
        fn,
        logits,
        labels,
        axis=axis,
        weight=weight,
        where=where,
        class_mask=class_mask,
        label_smoothing=label_smoothing,
        allow_probabilities=True,
    )
    checks.reduction(fn, reduction)
    result_dtype, compute = dtypes(logits, labels)
    loss = probability_cross_entropy(
        fn,
        logits.astype(compute),
        labels.astype(compute),
        axis=axis,
        weight=upcast(weight, compute),
        label_smoothing=label_smoothing,
        where=where,
        class_mask=class_mask,
        per_class=per_class,
    )
    return finish(reduce_loss(loss, reduction, where=where), result_dtype)


def _finish_class_loss(loss, indices, label_weight, weight, reduction, result_dtype):
    zero = jnp.zeros((), loss.dtype)
    loss = jnp.where(indices.valid, loss, zero)
    normalizer = None if weight is None else label_weight
    return finish(
        reduce_loss(loss, reduction, where=indices.valid, normalizer=normalizer), result_dtype
    )


@renamed_keywords(weight="class_weights")
def softmax_focal_loss(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    gamma: float = 2.0,
    axis: int = -1,
    class_weights: ArrayLike | None = None,
    ignore_index: int | None = -100,
    label_smoothing: float = 0.0,
    class_mask: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> jax.Array:
    r"""Categorical focal loss over class indices: per position
    $\ell = -(1-\varepsilon)\,w_y (1 - p_y)^\gamma \log p_y
    - \tfrac{\varepsilon}{C}\sum_c w_c (1 - p_c)^\gamma \log p_c$, $p = \mathrm{softmax}$,
    the focal version of `jaxloss.cross_entropy` (γ = 0 gives it exactly), with its
    weighting: 'mean' divides by $\sum w_y$ over the positions that count.

    With class-probability labels q (Keras' ``CategoricalFocalCrossentropy``, whose scalar
    α is ``class_weights=jnp.full(C, α)``), $\ell = -\sum_c w_c\,q'_c (1 - p_c)^\gamma \log p_c$
    with $q'$ the smoothed q, and 'mean' divides by the number of positions, as
    `jaxloss.cross_entropy` does.

    Args:
      logits: float array ``(..., C, ...)`` with the classes on ``axis``.
      labels: integer class indices, ``logits.shape`` without ``axis``, or float class
        probabilities of the logits' shape.
      gamma: γ >= 0, the focusing exponent.
      axis: the class axis.
      class_weights: optional ``(C,)`` class weights (α per class).
      ignore_index: label value that is ignored; ``None`` ignores nothing.
      label_smoothing: ε in [0, 1].
      class_mask: optional boolean mask of the classes in the softmax, ``(C,)`` or
        broadcastable to ``logits`` (see `jaxloss.cross_entropy`).
      where: optional boolean mask of positions.
      reduction: ``'none'``, ``'mean'`` or ``'sum'``.

    Returns:
      ``'none'``: one loss per position; ``'mean'``/``'sum'``: a scalar.

    Examples:
      >>> logits = jnp.array([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]])
      >>> round(float(jaxloss.softmax_focal_loss(logits, jnp.array([0, 2]))), 4)
      0.2062
    """
    fn = "softmax_focal_loss"
    checks.python_number(fn, "gamma", gamma, low=0.0)
    if are_probabilities(labels):

        def focal_log_p(log_p):
            log_not_p = _log_of(-jnp.expm1(log_p), log_p.dtype)
            return _power_of_log(log_not_p, gamma, log_p.dtype) * log_p

        return _probability_class_loss(
            fn,
            logits,
            labels,
            axis,
            class_weights,
            ignore_index,
            label_smoothing,
            class_mask,
            where,
            reduction,
            focal_log_p,
        )
    terms, indices, label_weight, class_weights, result_dtype, compute = _class_loss(
        fn, logits, labels, axis, class_weights, ignore_index, label_smoothing, class_mask, where
    )
    checks.reduction(fn, reduction)
    focus = _power_of_log(terms.log_not_label, gamma, compute)
    loss = -label_weight * focus * terms.log_p_label
    if not checks.known_zero(label_smoothing):
        log_not_p = _log_of(-jnp.expm1(terms.log_p), compute)
        per_class = _power_of_log(log_not_p, gamma, compute) * terms.safe_log_p()
        total, count = terms.smoothing_sum(per_class, class_weights)
        loss = (1 - label_smoothing) * loss - label_smoothing / count * total
    return _finish_class_loss(loss, indices, label_weight, class_weights, reduction, result_dtype)


@renamed_keywords(weight="class_weights")
def poly1_cross_entropy(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    epsilon: float = 2.0,
    axis: int = -1,
    class_weights: ArrayLike | None = None,
    ignore_index: int | None = -100,
    label_smoothing: float = 0.0,
    class_mask: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> jax.Array:
    r"""Poly-1 cross-entropy (Leng et al. 2022), `jaxloss.cross_entropy` plus
    $\epsilon \sum_c w_c q_c (1 - p_c)$, $q$ the (smoothed) one-hot target: without smoothing
    or weights, $-\log p_y + \epsilon(1 - p_y)$. Matches optax's
    ``poly_loss_cross_entropy`` on one-hot labels (its ``epsilon=2.0`` default too).

    Args:
      logits: float array ``(..., C, ...)`` with the classes on ``axis``.
      labels: integer class indices, ``logits.shape`` without ``axis``, or float class
        probabilities of the logits' shape.
      epsilon: ε, the weight of the first polynomial term (may be negative, >= -1 keeps the
        loss convex in p_y).
      axis: the class axis.
      class_weights: optional ``(C,)`` class weights.
      ignore_index: label value that is ignored; ``None`` ignores nothing.
      label_smoothing: ε_s in [0, 1], as in `jaxloss.cross_entropy`.
      class_mask: optional boolean mask of the classes in the softmax.
      where: optional boolean mask of positions.
      reduction: ``'none'``, ``'mean'`` (divided by $\sum w_y$) or ``'sum'``.

    Returns:
      ``'none'``: one loss per position; ``'mean'``/``'sum'``: a scalar.

    Examples:
      >>> logits = jnp.array([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]])
      >>> round(float(jaxloss.poly1_cross_entropy(logits, jnp.array([0, 2]))), 4)
      1.4689
    """
    fn = "poly1_cross_entropy"
    checks.python_number(fn, "epsilon", epsilon)
    if are_probabilities(labels):
        return _probability_class_loss(
            fn,
            logits,
            labels,
            axis,
            class_weights,
            ignore_index,
            label_smoothing,
            class_mask,
            where,
            reduction,
            lambda log_p: log_p + epsilon * jnp.expm1(log_p),
        )
    terms, indices, label_weight, class_weights, result_dtype, _ = _class_loss(
        fn, logits, labels, axis, class_weights, ignore_index, label_smoothing, class_mask, where
    )
    checks.reduction(fn, reduction)
    not_label = jnp.exp(terms.log_not_label)
    loss = -label_weight * (terms.log_p_label - epsilon * not_label)
    if not checks.known_zero(label_smoothing):
        per_class = terms.safe_log_p() - epsilon * (-jnp.expm1(terms.log_p))
        total, count = terms.smoothing_sum(per_class, class_weights)
        loss = (1 - label_smoothing) * loss - label_smoothing / count * total
    return _finish_class_loss(loss, indices, label_weight, class_weights, reduction, result_dtype)


@renamed_keywords(weight="class_weights")
def generalized_cross_entropy(
    predictions: ArrayLike,
    labels: ArrayLike,
    *,
    q: float = 0.7,
    from_logits: bool = True,
    axis: int = -1,
    class_weights: ArrayLike | None = None,
    ignore_index: int | None = -100,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> jax.Array:
    r"""Generalized cross-entropy (Zhang & Sabuncu 2018), a loss robust to noisy labels:
    $\ell = w_y\,(1 - p_y^{\,q}) / q$. As q → 0 it tends to the cross-entropy $-\log p_y$;
    q = 1 gives $1 - p_y$, the mean absolute error of the probabilities.

    $p_y^q$ is formed as $e^{q \log p_y}$ and $1 - p_y^q$ with ``expm1``, so small q and
    confident predictions lose nothing to cancellation.

    Args:
      predictions: float logits (``from_logits=True``) or probabilities, ``(..., C, ...)``
        with the classes on ``axis``.
      labels: integer class indices, ``predictions.shape`` without ``axis``.
      q: q in (0, 1]; the paper's default is 0.7 (Keras' ``CategoricalGeneralizedCrossEntropy``
        defaults to 0.5).
      from_logits: whether ``predictions`` are logits (softmax applied here) or probabilities.
      axis: the class axis.
      class_weights: optional ``(C,)`` class weights; 'mean' then divides by $\sum w_y$.
      ignore_index: label value that is ignored; ``None`` ignores nothing.
      where: optional boolean mask of positions.
      reduction: ``'none'``, ``'mean'`` or ``'sum'``.

    Returns:
      ``'none'``: one loss per position; otherwise a scalar.

    Examples:
      >>> probs = jnp.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
      >>> loss = jaxloss.generalized_cross_entropy(probs, jnp.array([0, 1]), q=0.5,
      ...                                          from_logits=False, reduction="none")
      >>> loss.round(4)
      Array([0.3267, 1.3675], dtype=float32)
    """
    fn = "generalized_cross_entropy"
    checks.python_number(fn, "q", q, low=0.0, high=1.0, low_inclusive=False)
    checks.reduction(fn, reduction)
    if from_logits:
        terms, indices, label_weight, class_weights, result_dtype, _ = _class_loss(
            fn, predictions, labels, axis, class_weights, ignore_index, 0.0, None, where
        )
        log_p = terms.log_p_label
    else:
        probs, labels, axis, _, class_weights, where, _ = prepare_class_inputs(
            fn,
            predictions,
            labels,
            scores_name="predictions",
            axis=axis,
            weight=class_weights,
            where=where,
        )
        result_dtype, compute = dtypes(probs)
        probs = probs.astype(compute)
        checks.value_check(
            fn,
            (probs >= 0) & (probs <= 1),
            "probabilities in `predictions` must lie in [0, 1]; found {}.",
            checks.first_violation(probs, (probs >= 0) & (probs <= 1)),
        )
        class_weights = upcast(class_weights, compute)
        indices = class_indices(
            fn, labels, probs.shape[axis], ignore_index=ignore_index, where=where
        )
        label_weight = indices.label_weights(class_weights, compute)
        log_p = _log_of(pick_along_axis(probs, indices.safe, axis), compute)
    loss = -label_weight * jnp.expm1(q * log_p) / q
    return _finish_class_loss(loss, indices, label_weight, class_weights, reduction, result_dtype)


def z_loss(
    logits: ArrayLike,
    *,
    axis: int = -1,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> jax.Array:
    r"""The z-loss, $(\log \sum_c e^{x_c})^2$ per position: it pulls the softmax's
    normaliser toward 1 (PaLM, ST-MoE use it with a weight of 1e-4). The same term that
    `jaxloss.cross_entropy`'s fused relatives take as ``z_loss=``, on its own.

    Args:
      logits: float array with the classes on ``axis``.
      axis: the class axis.
      where: optional boolean mask of positions (``logits.shape`` without ``axis``).
      reduction: ``'none'``, ``'mean'`` or ``'sum'``.

    Returns:
      ``'none'``: one value per position; ``'mean'``/``'sum'``: a scalar.

    Examples:
      >>> round(float(jaxloss.z_loss(jnp.zeros((1, 2)))), 6)  # (log 2)²
      0.480453
    """
    fn = "z_loss"
    x = checks.float_array(fn, "logits", logits)
    if x.ndim == 0:
        raise ValueError(f"{fn}: `logits` must have a class axis; got a scalar.")
    axis = checks.axis(fn, "logits", axis, x.ndim)
    checks.reduction(fn, reduction)
    where = checks.where_mask(fn, where, x.shape[:axis] + x.shape[axis + 1 :], "one per position")
    result_dtype, compute = dtypes(x)
    lse = jax.nn.logsumexp(x.astype(compute), axis=axis)
    return finish(reduce_loss(lse * lse, reduction, where=where), result_dtype)
