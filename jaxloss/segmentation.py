r"""Segmentation overlap losses: soft Dice, Jaccard (IoU), Tversky and focal Tversky,
generalized Dice, Matthews correlation, Dice + cross-entropy, Dice + focal, the asymmetric
unified focal loss, and the Lovász hinge and Lovász-softmax.

Layout: predictions are channel-last, ``(N, ..., C)``: a batch, any spatial axes, then
classes. Targets are integer class indices ``(N, ...)`` or float class probabilities
(one-hot, multi-label or soft) of the predictions' shape.

Options shared by the overlap losses:

- ``activation``: ``"softmax"`` (logits of mutually exclusive classes), ``"sigmoid"``
  (independent logits: binary or multi-label) or ``"none"`` (probabilities).
- ``ignore_index`` (integer targets) and ``where`` (a boolean ``(N, ...)`` mask) leave pixels
  out: their predictions and targets count for nothing, as in MONAI and
  segmentation_models_pytorch.
- ``include_background=False`` drops class 0 after the activation (its weight with it).
- ``batch=True`` sums the soft counts over the batch too: one score per class for the whole
  batch instead of one per sample and class.
- ``class_weights`` ``(C,)`` multiply the per-class losses; ``'mean'`` is the plain mean of
  the weighted losses (MONAI's and optax's convention; segmentation_models_pytorch divides by
  the weights' sum instead: ``reduction="sum"`` divided by ``class_weights.sum()``).

With soft counts $TP = \sum p\,t$, $FP = \sum p(1 - t)$, $FN = \sum (1 - p)t$ (summed as
written: no cancellation near a perfect prediction) over the pixels (and the batch with
``batch=True``), every overlap score is a Tversky index
$(TP + s_n)/(TP + \alpha FP + \beta FN + s_d)$: Dice is α = β = ½ (written as
$(2TP + s_n)/(2TP + FP + FN + s_d)$), Jaccard α = β = 1.
"""

from __future__ import annotations

import math
from typing import Literal

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from ._core import checks
from ._core.class_inputs import class_indices
from ._core.ops import power_of_nonnegative
from ._core.precision import dtypes
from ._core.reduction import Reduction, finish, reduce_loss
from .classification import binary_cross_entropy_with_logits, cross_entropy
from .focal import sigmoid_focal_loss, softmax_focal_loss

# The public functions, in the order their docs page lists them (jaxloss and the
# page read this list).
__all__ = [
    "dice_loss",
    "jaccard_loss",
    "tversky_loss",
    "generalized_dice_loss",
    "class_frequency_weights",
    "mcc_loss",
    "dice_ce_loss",
    "dice_focal_loss",
    "asymmetric_unified_focal_loss",
    "lovasz_hinge_loss",
    "lovasz_softmax_loss",
]

Activation = Literal["softmax", "sigmoid", "none"]


class _Segmentation:
    """Probabilities, targets and class weights after activation, masks and background."""

    def __init__(
        self,
        fn,
        predictions,
        targets,
        *,
        activation,
        class_weights,
        ignore_index,
        where,
        include_background,
    ):
        x = checks.float_array(fn, "predictions", predictions)
        if x.ndim < 2:
            raise ValueError(
                f"{fn}: `predictions` must be channel-last (N, ..., C), at least 2-D; got "
                f"{list(x.shape)}."
            )
        if activation not in ("softmax", "sigmoid", "none"):
            raise ValueError(
                f"{fn}: `activation` must be 'softmax', 'sigmoid' or 'none'; got {activation!r}."
            )
        t = checks.real_array(fn, "targets", targets)
        num_classes = x.shape[-1]
        result_dtype, compute = dtypes(x)
        x = x.astype(compute)
        present = None if where is None else checks.where_mask(fn, where, x.shape[:-1], "pixels")
        if jnp.issubdtype(t.dtype, jnp.integer):
            if t.shape != x.shape[:-1]:
                raise ValueError(
                    f"{fn}: integer `targets` must hold one class index per pixel, shape "
                    f"{list(x.shape[:-1])} for predictions {list(x.shape)}; got {list(t.shape)}."
                )
            if num_classes == 1 and activation == "softmax":
                raise ValueError(
                    f"{fn}: a softmax over one channel is constant; use activation='sigmoid' "
                    "for binary predictions (N, ..., 1)."
                )
            # one channel is binary: indices 0 and 1, the channel the foreground
            indices = class_indices(
                fn,
                t,
                max(num_classes, 2),
                ignore_index=ignore_index,
                where=present,
                name="targets",
            )
            if ignore_index is not None:
                present = indices.valid
            if num_classes == 1:
                t = indices.safe[..., None].astype(compute)
            else:
                t = jax.nn.one_hot(indices.safe, num_classes, dtype=compute)
            # a bad label under jit: nan
            t = jnp.where(indices.out_of_range[..., None], jnp.nan, t)
        else:
            if t.shape != x.shape:
                raise ValueError(
                    f"{fn}: float `targets` must have the predictions' shape {list(x.shape)}; "
                    f"got {list(t.shape)}. Pass class indices as integers."
                )
            if ignore_index is not None:
                raise ValueError(
                    f"{fn}: `ignore_index` needs integer class-index targets; mask pixels of "
                    "float targets with `where`."
                )
            t = t.astype(compute)
        if activation == "softmax":
            p = jax.nn.softmax(x, axis=-1)
        elif activation == "sigmoid":
            p = jax.nn.sigmoid(x)
        else:
            p = x
        if present is not None:
            zero = jnp.zeros((), compute)
            p = jnp.where(present[..., None], p, zero)
            t = jnp.where(present[..., None], t, zero)
        w = checks.class_weight(fn, class_weights, num_classes)
        w = None if w is None else w.astype(compute)
        if not include_background:
            if num_classes == 1:
                raise ValueError(
                    f"{fn}: `include_background=False` drops class 0, which leaves nothing of "
                    "a single-channel prediction."
                )
            p, t = p[..., 1:], t[..., 1:]
            w = None if w is None else w[1:]
        self.logits, self.probabilities, self.targets = x, p, t
        self.weights, self.present = w, present
        self.result_dtype, self.compute = result_dtype, compute

    def _axes(self, batch):
        return tuple(range(0 if batch else 1, self.probabilities.ndim - 1))

    def true_negatives(self, batch):
        """Soft TN = Σ (1 - p)(1 - t) over the counted pixels."""
        p, t = self.probabilities, self.targets
        one = jnp.ones((), p.dtype)
        inside = one if self.present is None else self.present[..., None].astype(p.dtype)
        return jnp.sum((inside - p) * (inside - t), axis=self._axes(batch))

    def counts(self, batch, *, squared=False, soft_labels=False):
        """Soft TP, FP, FN, per sample and class, or per class with `batch`."""
        p, t = self.probabilities, self.targets
        axes = self._axes(batch)
        tp = jnp.sum(p * t, axis=axes)
        if squared:  # V-Net's denominators Σp² + Σt²
            fp = jnp.sum(p * p, axis=axes) - tp
            fn = jnp.sum(t * t, axis=axes) - tp
        elif soft_labels:  # the L1 form, exact for soft labels: 2TP = Σp + Σt - Σ|p - t|
            total_p, total_t = jnp.sum(p, axis=axes), jnp.sum(t, axis=axes)
            tp = (total_p + total_t - jnp.sum(jnp.abs(p - t), axis=axes)) / 2
            fp, fn = total_p - tp, total_t - tp
        else:
            fp = jnp.sum(p * (1 - t), axis=axes)
            fn = jnp.sum((1 - p) * t, axis=axes)
        return tp, fp, fn

    def finish(self, loss, reduction):
        if self.weights is not None:
            loss = loss * self.weights
        return finish(reduce_loss(loss, reduction), self.result_dtype)


def _check_common(fn, reduction, smooth_numerator, smooth_denominator):
    checks.reduction(fn, reduction)
    checks.python_number(fn, "smooth_numerator", smooth_numerator, low=0.0)
    checks.python_number(fn, "smooth_denominator", smooth_denominator, low=0.0)


def _tversky_terms(tp, fp, fn, alpha, beta, smooth_numerator, smooth_denominator, log):
    score = (tp + smooth_numerator) / (tp + alpha * fp + beta * fn + smooth_denominator)
    if log:
        # segmentation_models_pytorch's log loss, with its clamp of the score at 1e-7
        return -jnp.log(jnp.maximum(score, 1e-7))
    return 1 - score


def tversky_loss(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    alpha: float = 0.5,
    beta: float = 0.5,
    gamma: float = 1.0,
    activation: Activation = "softmax",
    smooth_numerator: float = 1e-5,
    smooth_denominator: float = 1e-5,
    soft_labels: bool = False,
    log: bool = False,
    include_background: bool = True,
    batch: bool = False,
    class_weights: ArrayLike | None = None,
    ignore_index: int | None = None,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> jax.Array:
    r"""Tversky loss (Salehi et al. 2017) and focal Tversky loss (Abraham & Khan 2019): per
    sample and class, $\ell = (1 - TI)^\gamma$ with the Tversky index
    $TI = (TP + s_n)/(TP + \alpha FP + \beta FN + s_d)$; α weights false positives and β
    false negatives (α = β = ½ is Dice, α = β = 1 Jaccard).

    Args:
      predictions: float ``(N, ..., C)`` logits (or probabilities with ``activation="none"``).
      targets: integer class indices ``(N, ...)`` or float probabilities ``(N, ..., C)``.
      alpha: α >= 0, the weight of false positives.
      beta: β >= 0, the weight of false negatives.
      gamma: γ > 0, the focal exponent of each class's loss (the paper writes it as 1/γ with
        its γ in [1, 3]); 1 is the plain Tversky loss. segmentation_models_pytorch raises the
        *mean over classes* to γ instead; the two agree for one class. At a perfect score
        (loss 0), where γ < 1 has an infinite slope, the gradient is 0, not nan.
      activation: ``"softmax"``, ``"sigmoid"`` or ``"none"``.
      smooth_numerator: $s_n$ >= 0.
      smooth_denominator: $s_d$ >= 0; with $s_n = s_d > 0$ a class absent from both target
        and prediction scores 1 (loss 0).
      soft_labels: count TP as $(\sum p + \sum t - \sum|p - t|)/2$ (MONAI's ``soft_label``):
        equal for hard targets, and minimised at p = t for soft ones.
      log: $-\log TI$ instead of $1 - TI$ (segmentation_models_pytorch's ``log_loss``).
      include_background: keep class 0.
      batch: one score per class over the whole batch.
      class_weights: optional ``(C,)`` weights of the per-class losses.
      ignore_index: a target class index whose pixels are left out (integer targets).
      where: optional boolean ``(N, ...)`` mask of the pixels that count.
      reduction: ``'none'``, ``'mean'`` or ``'sum'`` over samples and classes.

    Returns:
      ``'none'``: ``(N, C)`` (``(C,)`` with ``batch``; C - 1 classes without background);
      otherwise a scalar.

    Examples:
      >>> logits = jnp.array([[[2.0, -1.0], [0.5, 1.5], [-1.0, 2.0]]])  # N=1, 3 pixels, C=2
      >>> loss = jaxloss.tversky_loss(logits, jnp.array([[0, 1, 1]]), alpha=0.3, beta=0.7,
      ...                             reduction="none")
      >>> [round(float(v), 4) for v in loss[0]]
      [0.1185, 0.1228]
    """
    fn = "tversky_loss"
    _check_common(fn, reduction, smooth_numerator, smooth_denominator)
    checks.python_number(fn, "alpha", alpha, low=0.0)
    checks.python_number(fn, "beta", beta, low=0.0)
    checks.python_number(fn, "gamma", gamma, low=0.0, low_inclusive=False)
    seg = _Segmentation(
        fn,
        predictions,
        targets,
        activation=activation,
        class_weights=class_weights,
        ignore_index=ignore_index,
        where=where,
        include_background=include_background,
    )
    tp, fp, fn_ = seg.counts(batch, soft_labels=soft_labels)
    loss = _tversky_terms(tp, fp, fn_, alpha, beta, smooth_numerator, smooth_denominator, log)
    # a perfect score (loss 0) takes a zero gradient, where γ < 1 has an infinite slope
    loss = power_of_nonnegative(jnp.maximum(loss, 0), gamma)
    return seg.finish(loss, reduction)


def dice_loss(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    activation: Activation = "softmax",
    squared: bool = False,
    smooth_numerator: float = 1e-5,
    smooth_denominator: float = 1e-5,
    soft_labels: bool = False,
    log: bool = False,
    include_background: bool = True,
    batch: bool = False,
    class_weights: ArrayLike | None = None,
    ignore_index: int | None = None,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> jax.Array:
    r"""Soft Dice loss (Milletari et al. 2016; Sudre et al. 2017): per sample and class,
    $\ell = 1 - \dfrac{2\,TP + s_n}{2\,TP + FP + FN + s_d}$, i.e.
    $1 - (2\sum p t + s_n)/(\sum p + \sum t + s_d)$; with ``squared=True`` the
    denominator is V-Net's $\sum p^2 + \sum t^2 + s_d$.

    Args:
      predictions: float ``(N, ..., C)`` logits (or probabilities with ``activation="none"``).
      targets: integer class indices ``(N, ...)`` or float probabilities ``(N, ..., C)``.
      activation: ``"softmax"``, ``"sigmoid"`` or ``"none"``.
      squared: square the denominator's terms (MONAI's ``squared_pred``).
      smooth_numerator: $s_n$ >= 0 (MONAI's ``smooth_nr``; segmentation_models_pytorch's
        ``smooth`` s is $s_n = s_d = 2s$).
      smooth_denominator: $s_d$ >= 0 (``smooth_dr``).
      soft_labels: count TP in the L1 form that is exact for soft labels (see
        `tversky_loss`).
      log: $-\log(\text{Dice})$ instead of $1 - \text{Dice}$.
      include_background: keep class 0.
      batch: one score per class over the whole batch.
      class_weights: optional ``(C,)`` weights of the per-class losses.
      ignore_index: a target class index whose pixels are left out (integer targets).
      where: optional boolean ``(N, ...)`` mask of the pixels that count.
      reduction: ``'none'``, ``'mean'`` or ``'sum'`` over samples and classes.

    Returns:
      ``'none'``: ``(N, C)`` (``(C,)`` with ``batch``; C - 1 classes without background);
      otherwise a scalar.

    Examples:
      >>> logits = jnp.array([[[2.0, -1.0], [0.5, 1.5], [-1.0, 2.0]]])  # N=1, 3 pixels, C=2
      >>> jaxloss.dice_loss(logits, jnp.array([[0, 1, 1]]), reduction="none").round(4)
      Array([[0.1603, 0.0975]], dtype=float32)
    """
    fn = "dice_loss"
    _check_common(fn, reduction, smooth_numerator, smooth_denominator)
    seg = _Segmentation(
        fn,
        predictions,
        targets,
        activation=activation,
        class_weights=class_weights,
        ignore_index=ignore_index,
        where=where,
        include_background=include_background,
    )
    tp, fp, fn_ = seg.counts(batch, squared=squared, soft_labels=soft_labels)
    loss = _tversky_terms(tp, fp, fn_, 0.5, 0.5, smooth_numerator / 2, smooth_denominator / 2, log)
    return seg.finish(loss, reduction)


def jaccard_loss(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    activation: Activation = "softmax",
    smooth_numerator: float = 1e-5,
    smooth_denominator: float = 1e-5,
    squared: bool = False,
    soft_labels: bool = False,
    log: bool = False,
    include_background: bool = True,
    batch: bool = False,
    class_weights: ArrayLike | None = None,
    ignore_index: int | None = None,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> jax.Array:
    r"""Soft Jaccard (IoU) loss: per sample and class,
    $\ell = 1 - (TP + s_n)/(TP + FP + FN + s_d)$, i.e.
    $1 - (\sum pt + s_n)/(\sum p + \sum t - \sum pt + s_d)$.

    Args:
      predictions: float ``(N, ..., C)`` logits (or probabilities with ``activation="none"``).
      targets: integer class indices ``(N, ...)`` or float probabilities ``(N, ..., C)``.
      activation: ``"softmax"``, ``"sigmoid"`` or ``"none"``.
      smooth_numerator: $s_n$ >= 0 (MONAI's ``DiceLoss(jaccard=True)`` with ``smooth_nr``
        has $s_n$ = smooth_nr / 2; segmentation_models_pytorch's ``smooth`` is $s_n = s_d$).
      smooth_denominator: $s_d$ >= 0.
      squared: count the union with squares, $\sum p^2 + \sum t^2 - \sum pt$ (MONAI's
        ``DiceLoss(jaccard=True, squared_pred=True)``).
      soft_labels: count TP in the L1 form that is exact for soft labels.
      log: $-\log(\text{IoU})$ instead of $1 - \text{IoU}$.
      include_background: keep class 0.
      batch: one score per class over the whole batch.
      class_weights: optional ``(C,)`` weights of the per-class losses.
      ignore_index: a target class index whose pixels are left out (integer targets).
      where: optional boolean ``(N, ...)`` mask of the pixels that count.
      reduction: ``'none'``, ``'mean'`` or ``'sum'`` over samples and classes.

    Returns:
      ``'none'``: ``(N, C)`` (``(C,)`` with ``batch``); otherwise a scalar.

    Examples:
      >>> logits = jnp.array([[[2.0, -1.0], [0.5, 1.5], [-1.0, 2.0]]])
      >>> jaxloss.jaccard_loss(logits, jnp.array([[0, 1, 1]]), reduction="none").round(4)
      Array([[0.2764, 0.1777]], dtype=float32)
    """
    fn = "jaccard_loss"
    _check_common(fn, reduction, smooth_numerator, smooth_denominator)
    seg = _Segmentation(
        fn,
        predictions,
        targets,
        activation=activation,
        class_weights=class_weights,
        ignore_index=ignore_index,
        where=where,
        include_background=include_background,
    )
    tp, fp, fn_ = seg.counts(batch, squared=squared, soft_labels=soft_labels)
    loss = _tversky_terms(tp, fp, fn_, 1.0, 1.0, smooth_numerator, smooth_denominator, log)
    return seg.finish(loss, reduction)


def class_frequency_weights(
    targets: ArrayLike,
    *,
    num_classes: int | None = None,
    power: float = 2.0,
    eps: float = 1e-7,
    normalize: bool = True,
) -> jax.Array:
    r"""Per-class weights from the classes' frequencies over the whole batch,
    $w_c = 1 / (f_c^{\,p} + \epsilon)$ with $f_c$ the number (or soft mass) of pixels of class
    c, normalised to a mean of 1: the weighting of optax's
    ``multiclass_generalized_dice_loss`` (p = 2), which is
    ``mean(dice_loss(..., class_weights=class_frequency_weights(targets), reduction="none"))``.
    The weights depend on the targets only and carry no gradient.

    Args:
      targets: integer class indices ``(N, ...)`` (with ``num_classes``) or float one-hot or
        probability targets ``(N, ..., C)``.
      num_classes: C, for integer targets.
      power: p >= 0 (2: inverse squared frequency; 1: inverse frequency).
      eps: ε >= 0 added to $f_c^{\,p}$, so an absent class gets a large but finite weight.
      normalize: scale the weights to a mean of 1 over the classes.

    Returns:
      ``(C,)`` weights: for integer targets in JAX's default float dtype (float32, float64
      with ``jax_enable_x64``), else in the targets' float dtype.

    Examples:
      >>> weights = jaxloss.class_frequency_weights(jnp.array([[0, 0, 0, 1]]), num_classes=2)
      >>> [round(float(w), 4) for w in weights]  # 1/9 and 1/1, scaled to a mean of 1
      [0.2, 1.8]
    """
    fn = "class_frequency_weights"
    t = checks.real_array(fn, "targets", targets)
    checks.python_number(fn, "power", power, low=0.0)
    checks.python_number(fn, "eps", eps, low=0.0)
    if jnp.issubdtype(t.dtype, jnp.integer):
        if num_classes is None:
            raise ValueError(f"{fn}: integer `targets` are class indices; give `num_classes` (C).")
        checks.int_in_range(fn, "num_classes", num_classes, 1, 2**31 - 1)
        indices = class_indices(fn, t, num_classes, name="targets")
        counted = jnp.where(indices.out_of_range, jnp.nan, 1.0)
        default_float = jax.dtypes.canonicalize_dtype(jnp.float64)  # float32 without x64
        counted = counted.astype(default_float)
        t = jax.nn.one_hot(indices.safe, num_classes, dtype=default_float) * counted[..., None]
    elif t.ndim == 0:
        raise ValueError(f"{fn}: float `targets` must be (..., C); got a scalar.")
    elif num_classes is not None and t.shape[-1] != num_classes:
        raise ValueError(
            f"{fn}: float `targets` have {t.shape[-1]} classes on their last axis; "
            f"`num_classes` is {num_classes}."
        )
    else:
        non_negative = t >= 0
        checks.value_check(
            fn,
            non_negative,
            "float `targets` are one-hot or class probabilities, never negative; found {}.",
            checks.first_violation(t, non_negative),
        )
        t = jnp.where(non_negative, t, jnp.nan)  # under jit: nan weights, never a number
    result_dtype, compute = dtypes(t)
    frequency = jnp.sum(t.astype(compute), axis=tuple(range(t.ndim - 1)))
    weights = 1 / (frequency**power + eps)
    if normalize:
        weights = weights / jnp.sum(weights) * weights.shape[0]
    return jax.lax.stop_gradient(weights).astype(result_dtype)


def generalized_dice_loss(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    weighting: Literal["square", "simple", "uniform"] = "square",
    activation: Activation = "softmax",
    smooth_numerator: float = 1e-5,
    smooth_denominator: float = 1e-5,
    soft_labels: bool = False,
    include_background: bool = True,
    batch: bool = False,
    ignore_index: int | None = None,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> jax.Array:
    r"""Generalized Dice loss (Sudre et al. 2017): one score over all classes, each weighted
    by the inverse of its target volume,

    $$\ell = 1 - \frac{2\sum_c w_c TP_c + s_n}{\sum_c w_c(2TP_c + FP_c + FN_c) + s_d},\quad
    w_c = 1/(\textstyle\sum t_c)^2\ (\text{square}),\ 1/\sum t_c\ (\text{simple}),\ 1\
    (\text{uniform}).$$

    A class absent from the targets (infinite weight) takes the largest finite weight of the
    sample (of the batch with ``batch``), as in MONAI.

    Args:
      predictions: float ``(N, ..., C)`` logits (or probabilities with ``activation="none"``).
      targets: integer class indices ``(N, ...)`` or float probabilities ``(N, ..., C)``.
      weighting: ``"square"``, ``"simple"`` or ``"uniform"``.
      activation: ``"softmax"``, ``"sigmoid"`` or ``"none"``.
      smooth_numerator: $s_n$ >= 0.
      smooth_denominator: $s_d$ >= 0.
      soft_labels: count TP in the L1 form that is exact for soft labels.
      include_background: keep class 0.
      batch: one score for the whole batch.
      ignore_index: a target class index whose pixels are left out (integer targets).
      where: optional boolean ``(N, ...)`` mask of the pixels that count.
      reduction: ``'none'``, ``'mean'`` or ``'sum'`` over samples.

    Returns:
      ``'none'``: ``(N,)`` (``()`` with ``batch``); otherwise a scalar.

    Examples:
      >>> logits = jnp.array([[[2.0, -1.0], [0.5, 1.5], [-1.0, 2.0]]])
      >>> jaxloss.generalized_dice_loss(logits, jnp.array([[0, 1, 1]]), reduction="none")
      Array([0.14203...], dtype=float32)
    """
    fn = "generalized_dice_loss"
    _check_common(fn, reduction, smooth_numerator, smooth_denominator)
    if weighting not in ("square", "simple", "uniform"):
        raise ValueError(
            f"{fn}: `weighting` must be 'square', 'simple' or 'uniform'; got {weighting!r}."
        )
    seg = _Segmentation(
        fn,
        predictions,
        targets,
        activation=activation,
        class_weights=None,
        ignore_index=ignore_index,
        where=where,
        include_background=include_background,
    )
    tp, fp, fn_ = seg.counts(batch, soft_labels=soft_labels)
    volume = tp + fn_  # Σ t per class
    if weighting == "uniform":
        w = jnp.ones_like(volume)
    else:
        power = 2 if weighting == "square" else 1
        absent = volume == 0
        w = jnp.where(absent, 0.0, 1 / jnp.where(absent, 1.0, volume) ** power)
        w = jnp.where(absent, jnp.max(w, axis=-1, keepdims=True), w)
    w = jax.lax.stop_gradient(w)  # the weights depend on the targets only
    numerator = 2 * jnp.sum(w * tp, axis=-1) + smooth_numerator
    denominator = jnp.sum(w * (2 * tp + fp + fn_), axis=-1) + smooth_denominator
    return finish(reduce_loss(1 - numerator / denominator, reduction), seg.result_dtype)


def mcc_loss(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    activation: Activation = "sigmoid",
    smooth_numerator: float = 0.0,
    smooth_denominator: float = 1e-5,
    count_eps: float = 0.0,
    include_background: bool = True,
    batch: bool = False,
    class_weights: ArrayLike | None = None,
    ignore_index: int | None = None,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> jax.Array:
    r"""Matthews correlation coefficient loss (Abhishek & Hamarneh 2021), $\ell = 1 -
    \mathrm{MCC}$ per sample and class with soft counts:

    $$\mathrm{MCC} = \frac{TP\cdot TN - FP\cdot FN + s_n}
    {\sqrt{(TP+FP)(TP+FN)(TN+FP)(TN+FN) + s_d}};$$

    a class predicted perfectly (FP = FN = 0) has loss 0, as in MONAI. With ``count_eps`` > 0
    the formula alone decides, as in segmentation_models_pytorch (whose all-positive perfect
    prediction scores 1/2: its TN, FP and FN are all ``count_eps``).

    Args:
      predictions: float ``(N, ..., C)`` logits (or probabilities with ``activation="none"``).
      targets: integer class indices ``(N, ...)`` or float probabilities ``(N, ..., C)``.
      activation: ``"sigmoid"`` (the default: MCC is a binary, per-channel measure),
        ``"softmax"`` or ``"none"``.
      smooth_numerator: $s_n$ >= 0.
      smooth_denominator: $s_d$ >= 0, inside the square root (MONAI's ``smooth_dr``).
      count_eps: added to each of TP, TN, FP and FN first (segmentation_models_pytorch's
        ``eps`` = 1e-5, which also has $s_n$ = $s_d$ = 0, ``batch=True`` and
        ``activation="none"``).
      include_background: keep class 0.
      batch: one score per class over the whole batch.
      class_weights: optional ``(C,)`` weights of the per-class losses.
      ignore_index: a target class index whose pixels are left out (integer targets).
      where: optional boolean ``(N, ...)`` mask of the pixels that count.
      reduction: ``'none'``, ``'mean'`` or ``'sum'`` over samples and classes.

    Returns:
      ``'none'``: ``(N, C)`` (``(C,)`` with ``batch``); otherwise a scalar.

    Examples:
      >>> logits = jnp.array([[[3.0], [-2.0], [1.0], [-3.0]]])  # N=1, 4 pixels, one channel
      >>> jaxloss.mcc_loss(logits, jnp.array([[1, 0, 1, 0]]), reduction="none").round(4)
      Array([[0.2394]], dtype=float32)
    """
    fn = "mcc_loss"
    _check_common(fn, reduction, smooth_numerator, smooth_denominator)
    checks.python_number(fn, "count_eps", count_eps, low=0.0)
    seg = _Segmentation(
        fn,
        predictions,
        targets,
        activation=activation,
        class_weights=class_weights,
        ignore_index=ignore_index,
        where=where,
        include_background=include_background,
    )
    tp, fp, fn_ = seg.counts(batch)
    tn = seg.true_negatives(batch)
    perfect = (fp == 0) & (fn_ == 0)
    tp, fp, fn_, tn = (count + count_eps for count in (tp, fp, fn_, tn))
    numerator = tp * tn - fp * fn_ + smooth_numerator
    product = (tp + fp) * (tp + fn_) * (tn + fp) * (tn + fn_) + smooth_denominator
    loss = 1 - numerator / jnp.sqrt(product)
    if checks.known_zero(count_eps):
        # MONAI's rule; with count_eps the counts are segmentation_models_pytorch's, which
        # scores a perfect prediction by its formula (1/2 when every pixel is positive)
        loss = jnp.where(perfect, jnp.zeros((), loss.dtype), loss)
    return seg.finish(loss, reduction)


def _combined_reduction(fn, reduction):
    if reduction not in ("mean", "sum"):
        raise ValueError(
            f"{fn}: `reduction` must be 'mean' or 'sum' (the two terms have different "
            f"shapes); got {reduction!r}."
        )


def dice_ce_loss(
    logits: ArrayLike,
    targets: ArrayLike,
    *,
    activation: Literal["softmax", "sigmoid"] = "softmax",
    lambda_dice: float = 1.0,
    lambda_ce: float = 1.0,
    label_smoothing: float = 0.0,
    squared: bool = False,
    smooth_numerator: float = 1e-5,
    smooth_denominator: float = 1e-5,
    include_background: bool = True,
    batch: bool = False,
    class_weights: ArrayLike | None = None,
    pos_weight: ArrayLike | None = None,
    ignore_index: int | None = None,
    where: ArrayLike | None = None,
    reduction: Literal["mean", "sum"] = "mean",
) -> jax.Array:
    r"""Dice + cross-entropy, $\lambda_d\,\ell_{\text{Dice}} + \lambda_{ce}\,\ell_{CE}$
    (MONAI's ``DiceCELoss``): `dice_loss` on the activated logits plus `jaxloss.cross_entropy`
    on the logits (``activation="softmax"``; class weights and label smoothing as there, all
    classes, background included) or `jaxloss.binary_cross_entropy_with_logits`
    (``"sigmoid"``, elementwise, its mean over all elements).

    Args:
      logits: float ``(N, ..., C)``.
      targets: integer class indices ``(N, ...)`` or float probabilities ``(N, ..., C)``.
      activation: ``"softmax"`` or ``"sigmoid"``.
      lambda_dice: λ_d >= 0.
      lambda_ce: λ_ce >= 0.
      label_smoothing: of the cross-entropy (softmax only).
      squared: V-Net denominators in the Dice term.
      smooth_numerator: the Dice term's $s_n$.
      smooth_denominator: the Dice term's $s_d$.
      include_background: keep class 0 in the Dice term.
      batch: the Dice term per class over the whole batch.
      class_weights: optional ``(C,)`` weights of the Dice term's classes and of the
        cross-entropy (softmax) or of the elementwise BCE (sigmoid).
      pos_weight: optional ``(C,)`` weights of the sigmoid cross-entropy's positive terms
        (`jaxloss.binary_cross_entropy_with_logits`' ``pos_weight``): MONAI's
        ``DiceCELoss(weight=w)`` on one channel is ``pos_weight=w`` here.
      ignore_index: a target class index whose pixels are left out of both terms.
      where: optional boolean ``(N, ...)`` mask of the pixels that count.
      reduction: ``'mean'`` or ``'sum'``, of each term.

    Returns:
      A scalar.

    Examples:
      >>> logits = jnp.array([[[2.0, -1.0], [0.5, 1.5], [-1.0, 2.0]]])
      >>> round(float(jaxloss.dice_ce_loss(logits, jnp.array([[0, 1, 1]]))), 4)
      0.2657
    """
    fn = "dice_ce_loss"
    if pos_weight is not None and activation != "sigmoid":
        raise ValueError(
            f"{fn}: `pos_weight` weights the sigmoid cross-entropy's positive terms; with "
            f"activation={activation!r} weight the classes with `class_weights`."
        )
    _combined_reduction(fn, reduction)
    for name, value in (("lambda_dice", lambda_dice), ("lambda_ce", lambda_ce)):
        checks.python_number(fn, name, value, low=0.0)
    dice = dice_loss(
        logits,
        targets,
        activation=activation,
        squared=squared,
        smooth_numerator=smooth_numerator,
        smooth_denominator=smooth_denominator,
        include_background=include_background,
        batch=batch,
        class_weights=class_weights,
        ignore_index=ignore_index,
        where=where,
        reduction=reduction,
    )
    ce = _second_term(
        fn,
        logits,
        targets,
        activation,
        class_weights,
        ignore_index,
        where,
        softmax=lambda x, t, w, ignore, mask: cross_entropy(
            x,
            t,
            class_weights=w,
            ignore_index=ignore,
            label_smoothing=label_smoothing,
            where=mask,
            reduction=reduction,
        ),
        sigmoid=lambda x, t, w, mask: binary_cross_entropy_with_logits(
            x, t, weights=w, pos_weight=pos_weight, where=mask, reduction=reduction
        ),
    )
    return lambda_dice * dice + lambda_ce * ce


def _second_term(
    fn,
    logits,
    targets,
    activation,
    class_weights,
    ignore_index,
    where,
    *,
    softmax,
    sigmoid,
    include_background=True,
):
    """The cross-entropy or focal term beside a Dice term: on class indices with ignored pixels
    passed through (softmax), or elementwise over one-hot channels (sigmoid), channel 0 left
    out without `include_background` (MONAI's DiceFocalLoss)."""
    if activation not in ("softmax", "sigmoid"):
        raise ValueError(f"{fn}: `activation` must be 'softmax' or 'sigmoid'; got {activation!r}.")
    x = checks.float_array(fn, "logits", logits)
    t = checks.real_array(fn, "targets", targets)
    weights = None if class_weights is None else jnp.asarray(class_weights)
    if activation == "softmax":
        ignore = -100 if ignore_index is None else ignore_index
        return softmax(x, t, weights, ignore, where)
    # elementwise over channels: the Dice term's targets (one-hot, ignored pixels zeroed)
    seg = _Segmentation(
        fn,
        x,
        t,
        activation="none",
        class_weights=None,
        ignore_index=ignore_index,
        where=where,
        include_background=True,
    )
    x, t = seg.logits, seg.targets
    if not include_background:  # the Dice term has checked that C > 1
        x, t = x[..., 1:], t[..., 1:]
        weights = None if weights is None else weights[1:]
    mask = None if seg.present is None else jnp.broadcast_to(seg.present[..., None], x.shape)
    w = None if weights is None else jnp.broadcast_to(weights.astype(seg.compute), x.shape)
    return sigmoid(x, t, w, mask)


def dice_focal_loss(
    logits: ArrayLike,
    targets: ArrayLike,
    *,
    activation: Literal["softmax", "sigmoid"] = "softmax",
    focal: Literal["softmax", "sigmoid"] | None = None,
    gamma: float = 2.0,
    alpha: float | None = None,
    lambda_dice: float = 1.0,
    lambda_focal: float = 1.0,
    squared: bool = False,
    smooth_numerator: float = 1e-5,
    smooth_denominator: float = 1e-5,
    include_background: bool = True,
    batch: bool = False,
    class_weights: ArrayLike | None = None,
    ignore_index: int | None = None,
    where: ArrayLike | None = None,
    reduction: Literal["mean", "sum"] = "mean",
) -> jax.Array:
    r"""Dice + focal, $\lambda_d\,\ell_{\text{Dice}} + \lambda_f\,\ell_{\text{focal}}$:
    `dice_loss` on the activated logits plus a focal loss on the logits, either
    `jaxloss.softmax_focal_loss` (categorical, per pixel) or `jaxloss.sigmoid_focal_loss`
    (per channel, its mean over all elements: MONAI's ``DiceFocalLoss``, whose focal term is
    sigmoid whatever the Dice term's activation).

    Args:
      logits: float ``(N, ..., C)``.
      targets: integer class indices ``(N, ...)`` or float probabilities ``(N, ..., C)``.
      activation: the Dice term's ``"softmax"`` or ``"sigmoid"``.
      focal: the focal term's ``"softmax"`` or ``"sigmoid"``; the same as ``activation``
        when None.
      gamma: γ >= 0 of the focal term.
      alpha: the sigmoid focal term's α balancing (None: none); for the softmax one use
        ``class_weights``.
      lambda_dice: λ_d >= 0.
      lambda_focal: λ_f >= 0.
      squared: V-Net denominators in the Dice term.
      smooth_numerator: the Dice term's $s_n$.
      smooth_denominator: the Dice term's $s_d$.
      include_background: keep class 0, in the Dice term and in the sigmoid focal term
        (MONAI's ``DiceFocalLoss``, whose ``include_background`` applies to both); the
        softmax focal term is over every class either way.
      batch: the Dice term per class over the whole batch.
      class_weights: optional ``(C,)`` weights of the Dice term's classes and of the focal
        term's.
      ignore_index: a target class index whose pixels are left out of both terms.
      where: optional boolean ``(N, ...)`` mask of the pixels that count.
      reduction: ``'mean'`` or ``'sum'``, of each term.

    Returns:
      A scalar.

    Examples:
      >>> logits = jnp.array([[[2.0, -1.0], [0.5, 1.5], [-1.0, 2.0]]])
      >>> round(float(jaxloss.dice_focal_loss(logits, jnp.array([[0, 1, 1]]))), 4)
      0.1365
    """
    fn = "dice_focal_loss"
    _combined_reduction(fn, reduction)
    for name, value in (("lambda_dice", lambda_dice), ("lambda_focal", lambda_focal)):
        checks.python_number(fn, name, value, low=0.0)
    if alpha is not None and (focal or activation) == "softmax":
        raise ValueError(
            f"{fn}: `alpha` balances the sigmoid focal term; weight the softmax one's classes "
            "with `class_weights`."
        )
    dice = dice_loss(
        logits,
        targets,
        activation=activation,
        squared=squared,
        smooth_numerator=smooth_numerator,
        smooth_denominator=smooth_denominator,
        include_background=include_background,
        batch=batch,
        class_weights=class_weights,
        ignore_index=ignore_index,
        where=where,
        reduction=reduction,
    )
    focal_term = _second_term(
        fn,
        logits,
        targets,
        focal or activation,
        class_weights,
        ignore_index,
        where,
        softmax=lambda x, t, w, ignore, mask: softmax_focal_loss(
            x, t, gamma=gamma, class_weights=w, ignore_index=ignore, where=mask, reduction=reduction
        ),
        sigmoid=lambda x, t, w, mask: _weighted(
            sigmoid_focal_loss(x, t, alpha=alpha, gamma=gamma, where=mask, reduction="none"),
            w,
            mask,
            reduction,
        ),
        include_background=include_background,
    )
    return lambda_dice * dice + lambda_focal * focal_term


def asymmetric_unified_focal_loss(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    activation: Activation = "softmax",
    lambda_focal: float = 0.5,
    delta: float = 0.6,
    gamma: float = 0.5,
    epsilon: float = 1e-7,
    include_background: bool = True,
    ignore_index: int | None = None,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> jax.Array:
    r"""Asymmetric unified focal loss (Yeung et al. 2022): an asymmetric focal loss plus an
    asymmetric focal Tversky loss, in which class 0 is the background, whose easy pixels are
    suppressed, and classes 1.. the foreground, whose losses are enhanced. Per sample and
    class, with probabilities clipped to $[\epsilon, 1 - \epsilon]$,

    $$\ell_c = \lambda\,F_c + (1 - \lambda)\,T_c,\qquad
    \mathrm{TI}_c = \frac{TP_c + \epsilon}{TP_c + \delta\,FN_c + (1 - \delta)\,FP_c
    + \epsilon},$$

    $$F_0 = (1 - \delta)\,\overline{(1 - p_0)^{\gamma}\,(-t_0 \log p_0)},\quad
    F_{c \ge 1} = \delta\,\overline{-t_c \log p_c},\quad
    T_0 = 1 - \mathrm{TI}_0,\quad T_{c \ge 1} = (1 - \mathrm{TI}_c)^{1 - \gamma},$$

    where the bar is the mean over the sample's pixels that count. δ > ½ penalises false
    negatives more than false positives. One channel is binary: it is the foreground and
    $1 - p$ the background, as in MONAI. The gradient of $T_c$ at a perfect score
    ($\mathrm{TI}_c = 1$, where $x^{1-\gamma}$ has an infinite slope) is taken as 0.

    Args:
      predictions: float ``(N, ..., C)`` logits (or probabilities with ``activation="none"``).
      targets: integer class indices ``(N, ...)`` or float probabilities ``(N, ..., C)``.
      activation: ``"softmax"``, ``"sigmoid"`` or ``"none"``.
      lambda_focal: λ in [0, 1], the focal term's share (the Tversky term's is 1 - λ).
      delta: δ in [0, 1], the weight of the foreground's false negatives and of its focal term
        (the background's take 1 - δ).
      gamma: γ in [0, 1]: suppresses the background's focal term by $(1 - p_0)^γ$ and enhances
        the foreground's Tversky term by the exponent 1 - γ.
      epsilon: ε in (0, ½): the probabilities' clip and the Tversky index's smoothing.
      include_background: keep class 0's loss (its probabilities count either way).
      ignore_index: a target class index whose pixels are left out (integer targets).
      where: optional boolean ``(N, ...)`` mask of the pixels that count.
      reduction: ``'none'`` ``(N, C)`` (``(N, C - 1)`` without the background), ``'mean'``
        or ``'sum'``.

    Returns:
      ``(N, C)`` with ``'none'``, else a scalar.

    Examples:
      >>> logits = jnp.array([[[2.0, -1.0], [0.5, 1.5], [-1.0, 2.0]]])
      >>> jaxloss.asymmetric_unified_focal_loss(logits, jnp.array([[0, 1, 1]]), reduction="none")
      Array([[0.07067..., 0.20226...]], dtype=float32)
    """
    fn = "asymmetric_unified_focal_loss"
    checks.reduction(fn, reduction)
    for name, value in (("lambda_focal", lambda_focal), ("delta", delta), ("gamma", gamma)):
        checks.python_number(fn, name, value, low=0.0, high=1.0)
    checks.python_number(
        fn, "epsilon", epsilon, low=0.0, high=0.5, low_inclusive=False, high_inclusive=False
    )
    x = checks.float_array(fn, "predictions", predictions)
    if activation == "softmax" and x.ndim >= 2 and x.shape[-1] == 1:
        raise ValueError(
            f"{fn}: a softmax over one channel is constant; use activation='sigmoid' for "
            "binary predictions (N, ..., 1)."
        )
    seg = _Segmentation(
        fn,
        x,
        targets,
        activation=activation,
        class_weights=None,
        ignore_index=ignore_index,
        where=where,
        include_background=True,
    )
    p, t = seg.probabilities, seg.targets
    if p.shape[-1] == 1:  # binary: the channel is the foreground, 1 - p the background
        p = jnp.concatenate([1 - p, p], axis=-1)
        t = jnp.concatenate([1 - t, t], axis=-1)
    if seg.present is None:
        inside, pixels = jnp.ones((), p.dtype), math.prod(p.shape[1:-1])
    else:
        inside = seg.present[..., None].astype(p.dtype)
        pixels = jnp.maximum(jnp.sum(inside, axis=tuple(range(1, p.ndim - 1))), 1)
    p = jnp.clip(p, epsilon, 1 - epsilon)
    t = t * inside  # a left-out pixel's 1 - t of a binary channel is no background
    axes = tuple(range(1, p.ndim - 1))
    cross_entropy = -t * jnp.log(p)
    suppressed = power_of_nonnegative(1 - p[..., :1], gamma) * cross_entropy[..., :1]
    focal = jnp.concatenate([(1 - delta) * suppressed, delta * cross_entropy[..., 1:]], axis=-1)
    focal = jnp.sum(focal, axis=axes) / pixels
    counted = p * inside
    tp = jnp.sum(t * counted, axis=axes)
    fn_ = jnp.sum(t * (1 - p), axis=axes)
    fp = jnp.sum((inside - t) * counted, axis=axes)
    tversky = (tp + epsilon) / (tp + delta * fn_ + (1 - delta) * fp + epsilon)
    miss = 1 - tversky  # >= 0: the denominator is at least the numerator
    enhanced = power_of_nonnegative(miss, 1 - gamma)
    tversky_term = jnp.concatenate([miss[..., :1], enhanced[..., 1:]], axis=-1)
    loss = lambda_focal * focal + (1 - lambda_focal) * tversky_term
    if not include_background:
        loss = loss[..., 1:]
    return finish(reduce_loss(loss, reduction), seg.result_dtype)


def _weighted(loss, weight, where, reduction):
    if weight is not None:
        loss = loss * weight
    return reduce_loss(loss, reduction, where=where)


def _lovasz_gradient(sorted_targets, valid):
    """The Lovász extension's weights for errors sorted in decreasing order: the increments
    of the Jaccard loss as pixels are added one by one (Berman et al. 2018, Alg. 1)."""
    total = jnp.sum(sorted_targets, axis=-1, keepdims=True)
    intersection = total - jnp.cumsum(sorted_targets, axis=-1)
    union = total + jnp.cumsum(jnp.where(valid, 1 - sorted_targets, 0), axis=-1)
    # union is >= 1 from the first counted pixel on; 0 only for an image without any
    jaccard = 1 - intersection / jnp.where(union > 0, union, 1)
    return jnp.concatenate([jaccard[..., :1], jnp.diff(jaccard, axis=-1)], axis=-1)


def _lovasz_flat(errors, fg, valid):
    """Σ_i max(e_(i), 0) g_i over the last axis: errors sorted in decreasing order; invalid
    pixels are sorted last with error -inf (they add nothing)."""
    errors = jnp.where(valid, errors, -jnp.inf)
    fg = jnp.where(valid, fg, 0)  # an uncounted pixel is no part of the target set either
    order = jnp.argsort(-errors, axis=-1)
    sorted_errors = jnp.take_along_axis(errors, order, axis=-1)
    sorted_fg = jnp.take_along_axis(fg, order, axis=-1)
    sorted_valid = jnp.take_along_axis(valid, order, axis=-1)
    gradient = jax.lax.stop_gradient(_lovasz_gradient(sorted_fg, sorted_valid))
    contribution = jnp.where(sorted_valid, jax.nn.relu(sorted_errors) * gradient, 0.0)
    return jnp.sum(contribution, axis=-1)


def _lovasz_inputs(fn, scores, targets, where, ignore_index):
    x = checks.float_array(fn, "predictions", scores)
    if x.ndim < 2:
        raise ValueError(f"{fn}: `predictions` must be (N, ...) or (N, ..., C); got a vector.")
    t = checks.real_array(fn, "targets", targets)
    valid = jnp.ones(t.shape, bool)
    if ignore_index is not None:
        valid = t != ignore_index
    if where is not None:
        valid = valid & checks.where_mask(fn, where, t.shape, "the targets")
    return x, t, valid


def lovasz_hinge_loss(
    logits: ArrayLike,
    targets: ArrayLike,
    *,
    per_image: bool = True,
    ignore_index: int | None = None,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> jax.Array:
    r"""Lovász hinge loss (Berman et al. 2018), the convex surrogate of the binary Jaccard
    loss: hinge errors $e_i = 1 - x_i\,y_i$ ($y_i = \pm 1$) sorted in decreasing order and
    weighted by the increments of the Jaccard loss, $\ell = \sum_i \max(e_{(i)}, 0)\,
    g_i$. Its gradient is exact almost everywhere (the sort's order is held constant).

    Args:
      logits: float ``(N, ...)`` binary logits (every axis after the first is pixels, a
        trailing channel of 1 included).
      targets: 0/1 targets (float or integer) of the same shape.
      per_image: one loss per image (the paper's default), else one over the whole batch.
      ignore_index: a target value whose pixels are left out.
      where: optional boolean mask of the pixels that count, the targets' shape.
      reduction: over images: ``'none'`` ``(N,)``, ``'mean'`` or ``'sum'`` (without
        ``per_image`` the one batch loss is returned as a scalar).

    Returns:
      ``(N,)`` for ``'none'`` with ``per_image``; otherwise a scalar.

    Examples:
      >>> logits = jnp.array([[2.0, -1.0, 0.5, -3.0]])
      >>> round(float(jaxloss.lovasz_hinge_loss(logits, jnp.array([[1, 0, 0, 0]]))), 4)
      0.75
    """
    fn = "lovasz_hinge_loss"
    checks.reduction(fn, reduction)
    x, t, valid = _lovasz_inputs(fn, logits, targets, where, ignore_index)
    checks.shapes_equal(fn, "logits", x, "targets", t)
    binary = (t == 0) | (t == 1) | ~valid
    checks.value_check(
        fn,
        binary,
        "`targets` must be 0 or 1 (or ignore_index); found {}.",
        checks.first_violation(t, binary),
    )
    t = jnp.where(binary, t, jnp.nan)  # under jit a bad target gives nan, never a number
    result_dtype, compute = dtypes(x)
    x = x.astype(compute)
    rows = x.shape[0] if per_image else 1
    fg = jnp.where(valid, t, 0).astype(compute).reshape(rows, -1)
    errors = 1 - x.reshape(rows, -1) * (2 * fg - 1)
    loss = _lovasz_flat(errors, fg, valid.reshape(rows, -1))
    if not per_image:
        return finish(loss[0], result_dtype)
    return finish(reduce_loss(loss, reduction), result_dtype)


def lovasz_softmax_loss(
    predictions: ArrayLike,
    labels: ArrayLike,
    *,
    from_logits: bool = True,
    classes: Literal["present", "all"] = "present",
    per_image: bool = False,
    ignore_index: int | None = None,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> jax.Array:
    r"""Lovász-softmax loss (Berman et al. 2018), the convex surrogate of the multiclass
    Jaccard loss: per class c, the errors $|[y_i = c] - p_{i,c}|$ sorted in decreasing order
    and weighted by the Jaccard loss's increments, averaged over the classes (those present in
    the labels, or all).

    Args:
      predictions: float ``(N, ..., C)`` logits (softmax applied here) or probabilities
        (``from_logits=False``).
      labels: integer class indices ``(N, ...)``.
      from_logits: whether to apply the softmax.
      classes: ``"present"``: average over the classes that occur in the (image's, or the
        batch's) counted labels, 0 if none does; ``"all"``: over every class.
      per_image: one loss per image, else one over the whole batch (the paper's default).
      ignore_index: a label whose pixels are left out.
      where: optional boolean ``(N, ...)`` mask of the pixels that count.
      reduction: over images: ``'none'`` ``(N,)``, ``'mean'`` or ``'sum'`` (without
        ``per_image`` the one batch loss is returned as a scalar).

    Returns:
      ``(N,)`` for ``'none'`` with ``per_image``; otherwise a scalar.

    Examples:
      >>> logits = jnp.array([[[2.0, -1.0], [0.5, 1.5], [-1.0, 2.0]]])
      >>> round(float(jaxloss.lovasz_softmax_loss(logits, jnp.array([[0, 1, 1]]))), 4)
      0.1582
    """
    fn = "lovasz_softmax_loss"
    checks.reduction(fn, reduction)
    if classes not in ("present", "all"):
        raise ValueError(f"{fn}: `classes` must be 'present' or 'all'; got {classes!r}.")
    x, y, valid = _lovasz_inputs(fn, predictions, labels, where, ignore_index)
    if not jnp.issubdtype(y.dtype, jnp.integer) or y.shape != x.shape[:-1]:
        raise ValueError(
            f"{fn}: `labels` must be integer class indices of shape {list(x.shape[:-1])}; got "
            f"{checks.describe(y)}."
        )
    result_dtype, compute = dtypes(x)
    x = x.astype(compute)
    num_classes = x.shape[-1]
    p = jax.nn.softmax(x, axis=-1) if from_logits else x
    rows = x.shape[0] if per_image else 1
    p = jnp.moveaxis(p.reshape(rows, -1, num_classes), -1, 1)  # (rows, C, pixels)
    y = y.reshape(rows, 1, -1)
    valid = jnp.broadcast_to(valid.reshape(rows, 1, -1), p.shape)
    fg = (y == jnp.arange(num_classes)[None, :, None]).astype(compute)
    per_class = _lovasz_flat(jnp.abs(fg - p), fg, valid)  # (rows, C)
    if classes == "all":
        loss = jnp.mean(per_class, axis=-1)
    else:
        present = jnp.any((fg > 0) & valid, axis=-1)
        count = jnp.sum(present, axis=-1)
        total = jnp.sum(jnp.where(present, per_class, 0.0), axis=-1)
        loss = jnp.where(count > 0, total / jnp.maximum(count, 1), 0.0)
    if not per_image:
        return finish(loss[0], result_dtype)
    return finish(reduce_loss(loss, reduction), result_dtype)
