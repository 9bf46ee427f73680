"""MONAI's focal losses (MONAI 1.6), on jaxloss's criteria: ``FocalLoss``, ``DiceFocalLoss``
and ``AsymmetricUnifiedFocalLoss`` with every constructor argument, channels first (``(B, C,
*spatial)``), so a ported MONAI model means here what it meant there::

    from jaxloss.compat import monai
    loss = monai.FocalLoss(to_onehot_y=True, use_softmax=True, alpha=[0.2, 0.8], ignore_index=255)
    value = loss(logits, labels)  # logits (B, C, H, W), labels (B, 1, H, W)

The focal math is jaxloss's (`jaxloss.sigmoid_focal_loss`, `jaxloss.softmax_focal_loss` and
`jaxloss.asymmetric_unified_focal_loss`);
this module maps MONAI's arguments onto them and applies MONAI's conventions, kept on purpose:

- ``reduction="sum"`` is a sum over images and channels of each channel's *spatial mean*
  (MONAI's ``average_spatial_dims``), with ``ignore_index`` a mean over the image's pixels
  that count; ``"mean"`` divides the sum of all elements by their number, or with
  ``ignore_index`` by the number of pixels that count (not times the channels);
  ``"none"`` keeps ``(B, C, *spatial)``.
- ``alpha`` with the sigmoid: a float weighs the positives by α and the negatives by 1 - α;
  a sequence weighs the positives of class c (targets exactly 1) by ``alpha[c]`` and the
  negatives by 1. With the softmax a float is the class weights ``[1 - α, α, ..., α]``
  (ignored, as MONAI warns, without the background), a sequence the class weights.
- ``ignore_index`` zeroes the logits and targets of the pixels it marks before the loss
  (MONAI's ``mask_loss_inputs``) and their loss after it; a label outside ``[0, C)`` is
  one-hot encoded as class 0 first.
- ``include_background=False`` drops channel 0 of the logits and targets (before the
  softmax, which is then over the other channels).

Where this differs from MONAI: it computes in the inputs' floating dtype (MONAI casts to
float32), and ``DiceFocalLoss`` refuses ``other_act`` (a torch callable; activate the logits
first). As in MONAI, ``to_onehot_y`` and ``include_background=False`` are ignored with one
channel.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Literal

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from .._core import checks
from .._core.class_inputs import along_axis
from ..focal import sigmoid_focal_loss, softmax_focal_loss
from ..segmentation import asymmetric_unified_focal_loss, dice_loss, jaccard_loss

__all__ = ["AsymmetricUnifiedFocalLoss", "DiceFocalLoss", "FocalLoss"]

_REDUCTIONS = ("none", "mean", "sum")


def _channels_last(x):
    return jnp.moveaxis(x, 1, -1)


def _channels_first(x):
    return jnp.moveaxis(x, -1, 1)


def _per_class(fn, name, value, num_classes, dtype):
    """A number (0-d) or one value per class ``(C,)``, as a non-negative array of `dtype`."""
    array = jnp.asarray(value, dtype)
    if array.ndim:
        checks.class_weight(fn, array, num_classes, name=name)  # one per class
    checks.value_check(
        fn,
        array >= 0,
        f"`{name}` must be non-negative; found {{}}.",
        checks.first_violation(array, array >= 0),
    )
    return array


def _on_channels(values, ndim):
    """A 0-d value as it is, a (C,) one along the channel axis 1."""
    return values if values.ndim == 0 else along_axis(values, ndim, 1)


def _one_hot(fn, labels, num_classes, ignore_index, dtype):
    """MONAI's one-hot encoding of ``(B, 1, *spatial)`` class indices, channels first: a
    sentinel `ignore_index` (outside ``[0, C)``) is encoded as class 0 first; any other label
    outside ``[0, C)`` raises (MONAI's ``one_hot`` fails there), or gives nan under jit."""
    if ignore_index is not None and not 0 <= ignore_index < num_classes:
        labels = jnp.where(labels == ignore_index, 0, labels)
    ok = (labels >= 0) & (labels < num_classes)
    checks.value_check(
        fn,
        ok,
        f"`target` class index {{}} is out of range; expected [0, {num_classes}).",
        checks.first_violation(labels, ok),
    )
    encoded = _channels_first(jax.nn.one_hot(labels[:, 0], num_classes, dtype=dtype))
    return jnp.where(ok, encoded, jnp.nan)


def _ignore_mask(target, ignore_index):
    """MONAI's ``create_ignore_mask``: (B, 1, *spatial), 1 where a pixel counts."""
    if target.shape[1] == 1:
        return (target != ignore_index).astype(jnp.float32)
    if 0 <= ignore_index < target.shape[1]:
        ignored = target[:, ignore_index : ignore_index + 1]
        if not jnp.issubdtype(ignored.dtype, jnp.floating):
            ignored = ignored.astype(jnp.float32)
        return 1.0 - ignored  # soft targets give a soft mask, in their own precision
    return (jnp.sum(target, axis=1, keepdims=True) > 0).astype(jnp.float32)


class FocalLoss:
    """MONAI's ``FocalLoss`` (its arguments and defaults): the sigmoid focal loss of every
    element, or with ``use_softmax`` the categorical one of each class, on ``(B, C,
    *spatial)`` logits and ``(B, C, *spatial)`` or (with ``to_onehot_y``) ``(B, 1,
    *spatial)`` targets. See the module's docs for MONAI's conventions.

    Args:
      include_background: keep channel 0.
      to_onehot_y: one-hot encode ``(B, 1, ...)`` class-index targets.
      gamma: γ >= 0, the focusing exponent.
      alpha: α in [0, 1], a sequence of one per class, or None.
      weight: a number or one non-negative weight per class (after ``include_background``),
        multiplying each class's loss.
      reduction: ``"mean"``, ``"sum"`` (of spatial means) or ``"none"``.
      use_softmax: the softmax focal loss instead of the sigmoid one.
      ignore_index: a target value whose pixels count for nothing, or None.

    Examples:
      >>> logits = jnp.array([[[[2.0, -1.0]], [[-0.5, 1.5]]]])  # (1, 2, 1, 2)
      >>> labels = jnp.array([[[[0, 1]]]])
      >>> round(float(FocalLoss(to_onehot_y=True)(logits, labels)), 5)
      0.02468
    """

    def __init__(
        self,
        include_background: bool = True,
        to_onehot_y: bool = False,
        gamma: float = 2.0,
        alpha: float | Sequence[float] | None = None,
        weight: Sequence[float] | float | ArrayLike | None = None,
        reduction: str = "mean",
        use_softmax: bool = False,
        ignore_index: int | None = None,
    ) -> None:
        fn = "FocalLoss"
        if reduction not in _REDUCTIONS:
            raise ValueError(f"{fn}: `reduction` must be one of {_REDUCTIONS}; got {reduction!r}.")
        checks.python_number(fn, "gamma", gamma, low=0.0)
        if alpha is not None and isinstance(alpha, (int, float)):
            checks.python_number(fn, "alpha", alpha, low=0.0, high=1.0)
        self.include_background = include_background
        self.to_onehot_y = to_onehot_y
        self.gamma = gamma
        self.alpha = alpha
        self.weight = weight
        self.reduction = reduction
        self.use_softmax = use_softmax
        self.ignore_index = ignore_index

    def __call__(self, input: ArrayLike, target: ArrayLike) -> jax.Array:
        fn = "FocalLoss"
        x = checks.float_array(fn, "input", input)
        t = checks.as_array(fn, "target", target)
        if x.ndim < 3:
            raise ValueError(
                f"{fn}: `input` must be (B, C, *spatial) with at least one spatial axis; got "
                f"shape {list(x.shape)}."
            )
        num_channels, original_target = x.shape[1], t
        if self.to_onehot_y and num_channels > 1:
            if t.ndim != x.ndim or t.shape[1] != 1:
                raise ValueError(
                    f"{fn}: with to_onehot_y, `target` must be (B, 1, *spatial) class indices; "
                    f"got shape {list(t.shape)}."
                )
            t = _one_hot(fn, t, num_channels, self.ignore_index, x.dtype)
        if not self.include_background and num_channels > 1:
            x, t = x[:, 1:], t[:, 1:]
        if t.shape != x.shape:
            raise ValueError(
                f"{fn}: `target` (after to_onehot_y and include_background) must have the "
                f"shape of `input`, {list(x.shape)}; got {list(t.shape)}."
            )
        t = t.astype(x.dtype)
        mask = None
        if self.ignore_index is not None:
            mask = _ignore_mask(original_target, self.ignore_index).astype(x.dtype)
            x, t = x * mask, t * mask
        num_classes = x.shape[1]
        class_weight = None
        if self.weight is not None:
            class_weight = _per_class(fn, "weight", self.weight, num_classes, x.dtype)
            if class_weight.ndim == 1 and num_classes == 1:
                raise ValueError(f"{fn}: a per-class `weight` needs more than one channel.")
        if self.use_softmax:
            loss = self._softmax_elements(fn, x, t, class_weight)
        else:
            loss = self._sigmoid_elements(fn, x, t)
            if class_weight is not None:
                loss = loss * _on_channels(class_weight, x.ndim)
        return _monai_reduction(loss, mask, self.reduction, num_classes)

    def _sigmoid_elements(self, fn, x, t):
        alpha = self.alpha
        if alpha is None or isinstance(alpha, (int, float)):
            return sigmoid_focal_loss(x, t, alpha=alpha, gamma=self.gamma, reduction="none")
        per_class = _per_class(fn, "alpha", alpha, x.shape[1], x.dtype)
        positives = jnp.where(t == 1, _on_channels(per_class, x.ndim), 1.0)
        return sigmoid_focal_loss(
            x, t, alpha=None, gamma=self.gamma, weights=positives, reduction="none"
        )

    def _softmax_elements(self, fn, x, t, class_weight):
        """-α_c w_c t_c (1 - p_c)^γ log p_c of each class, (B, C, *spatial)."""
        num_classes = x.shape[1]
        alpha = self.alpha
        if alpha is None or (not self.include_background and isinstance(alpha, (int, float))):
            if alpha is not None:
                warnings.warn(
                    f"{fn}: `include_background=False`, scalar `alpha` ignored when using "
                    "softmax (as MONAI).",
                    stacklevel=3,
                )
            factors = jnp.ones((num_classes,), x.dtype)
        elif isinstance(alpha, (int, float)):
            factors = jnp.asarray([1 - alpha] + [alpha] * (num_classes - 1), x.dtype)
        else:
            factors = _per_class(fn, "alpha", alpha, num_classes, x.dtype)
        if class_weight is not None:
            factors = factors * class_weight
        logits, labels = _channels_last(x), _channels_last(t)

        def one_class(selector):
            return softmax_focal_loss(
                logits,
                labels,
                gamma=self.gamma,
                class_weights=factors * selector,
                ignore_index=None,
                reduction="none",
            )

        if self.reduction != "none":  # the sums need only each pixel's sum over the classes
            return one_class(jnp.ones((num_classes,), x.dtype))[:, None]
        return jnp.moveaxis(jax.vmap(one_class)(jnp.eye(num_classes, dtype=x.dtype)), 0, 1)


def _monai_reduction(loss, mask, reduction, num_classes):
    """MONAI's FocalLoss reductions of (B, C, *spatial) losses, or of (B, 1, *spatial) ones
    already summed over the C classes."""
    if mask is not None:
        loss = loss * mask
    if reduction == "none":
        return loss
    spatial = tuple(range(2, loss.ndim))
    eps = jnp.finfo(jnp.float32).eps
    if reduction == "sum":
        if mask is None:
            return jnp.sum(jnp.sum(loss, axis=spatial) / math.prod(loss.shape[2:]))
        counts = jnp.maximum(jnp.sum(mask, axis=spatial), eps)
        return jnp.sum(jnp.sum(loss, axis=spatial) / counts)
    if mask is None:
        return jnp.sum(loss) / (loss.shape[0] * num_classes * math.prod(loss.shape[2:]))
    return jnp.sum(loss) / jnp.maximum(jnp.sum(mask), eps)


class DiceFocalLoss:
    """MONAI's ``DiceFocalLoss`` (its arguments and defaults): λ_d · MONAI's ``DiceLoss`` +
    λ_f · `FocalLoss` (sigmoid), on ``(B, C, *spatial)`` logits. The Dice term is
    `jaxloss.dice_loss` (``jaccard``: `jaxloss.jaccard_loss`) on the activated logits.

    MONAI's conventions, kept: ``"none"`` adds the Dice term's ``(B, C, 1, ...)`` (``(C, 1,
    ...)`` with ``batch``) to the focal term's ``(B, C, *spatial)``; ``weight`` weighs both
    terms' classes, except that the Dice term ignores it when one class remains (the focal
    term still takes a number); ``alpha`` is the focal term's.

    Args:
      include_background: keep channel 0, in both terms.
      to_onehot_y: one-hot encode ``(B, 1, ...)`` class-index targets.
      sigmoid: the Dice term on the sigmoid of the logits.
      softmax: the Dice term on their softmax over the channels (neither: on the logits).
      other_act: not supported (raises): apply the activation to the logits first.
      squared_pred: squared denominators in the Dice term.
      jaccard: the Jaccard index instead of Dice.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``, of each term.
      smooth_nr: the Dice term's numerator smoothing.
      smooth_dr: its denominator smoothing.
      batch: the Dice term per class over the whole batch.
      gamma: the focal term's γ >= 0.
      weight: a number or one non-negative weight per class.
      lambda_dice: λ_d >= 0.
      lambda_focal: λ_f >= 0.
      alpha: the focal term's α, or None.

    Examples:
      >>> logits = jnp.array([[[[2.0, -1.0]], [[-0.5, 1.5]]]])  # (1, 2, 1, 2)
      >>> labels = jnp.array([[[[0, 1]]]])
      >>> round(float(DiceFocalLoss(to_onehot_y=True, softmax=True)(logits, labels)), 5)
      0.10054
    """

    def __init__(
        self,
        include_background: bool = True,
        to_onehot_y: bool = False,
        sigmoid: bool = False,
        softmax: bool = False,
        other_act: object | None = None,
        squared_pred: bool = False,
        jaccard: bool = False,
        reduction: str = "mean",
        smooth_nr: float = 1e-5,
        smooth_dr: float = 1e-5,
        batch: bool = False,
        gamma: float = 2.0,
        weight: Sequence[float] | float | ArrayLike | None = None,
        lambda_dice: float = 1.0,
        lambda_focal: float = 1.0,
        alpha: float | None = None,
    ) -> None:
        fn = "DiceFocalLoss"
        if other_act is not None:
            raise ValueError(
                f"{fn}: `other_act` is not supported; apply the activation to the logits and "
                "pass neither `sigmoid` nor `softmax`."
            )
        if sigmoid and softmax:
            raise ValueError(f"{fn}: `sigmoid` and `softmax` are exclusive; got both True.")
        for name, value in (("lambda_dice", lambda_dice), ("lambda_focal", lambda_focal)):
            checks.python_number(fn, name, value, low=0.0)
        self.include_background = include_background
        self.to_onehot_y = to_onehot_y
        self.activation: Literal["sigmoid", "softmax", "none"] = (
            "sigmoid" if sigmoid else "softmax" if softmax else "none"
        )
        self.squared_pred = squared_pred
        self.jaccard = jaccard
        self.smooth_nr, self.smooth_dr = smooth_nr, smooth_dr
        self.batch = batch
        self.weight = weight
        self.lambda_dice, self.lambda_focal = lambda_dice, lambda_focal
        self.focal = FocalLoss(
            include_background=include_background,
            gamma=gamma,
            weight=weight,
            alpha=alpha,
            reduction=reduction,
        )
        self.reduction = self.focal.reduction

    def __call__(self, input: ArrayLike, target: ArrayLike) -> jax.Array:
        fn = "DiceFocalLoss"
        x = checks.float_array(fn, "input", input)
        t = checks.as_array(fn, "target", target)
        if t.ndim != x.ndim or t.shape[1] not in (1, x.shape[1]):
            raise ValueError(
                f"{fn}: `target` must be (B, 1, *spatial) or (B, C, *spatial) for `input` of "
                f"shape {list(x.shape)}; got {list(t.shape)}."
            )
        num_channels = x.shape[1]
        if self.to_onehot_y and num_channels > 1:
            t = _one_hot(fn, t, num_channels, None, x.dtype)
        t = t.astype(x.dtype)
        return self.lambda_dice * self._dice(fn, x, t) + self.lambda_focal * self.focal(x, t)

    def _dice(self, fn, x, t):
        num_channels = x.shape[1]
        dropped = not self.include_background and num_channels > 1
        num_classes = num_channels - 1 if dropped else num_channels
        activation: Literal["sigmoid", "softmax", "none"] = self.activation
        if activation == "softmax" and num_channels == 1:
            activation = "none"  # MONAI warns and skips it
        class_weights = None
        if self.weight is not None and num_classes > 1:
            class_weights = _per_class(fn, "weight", self.weight, num_classes, x.dtype)
            class_weights = jnp.broadcast_to(class_weights, (num_classes,))
            if dropped:  # jaxloss weighs all C classes; class 0 is left out anyway
                class_weights = jnp.concatenate([jnp.ones((1,), x.dtype), class_weights])
        if not self.jaccard:
            loss, smooth_nr, smooth_dr = dice_loss, self.smooth_nr, self.smooth_dr
        else:  # MONAI's Jaccard is 1 - (2 tp + s_n) / (2 (tp + fp + fn) + s_d)
            loss, smooth_nr, smooth_dr = jaccard_loss, self.smooth_nr / 2, self.smooth_dr / 2
        values = loss(
            _channels_last(x),
            _channels_last(t),
            activation=activation,
            squared=self.squared_pred,
            smooth_numerator=smooth_nr,
            smooth_denominator=smooth_dr,
            soft_labels=True,
            include_background=not dropped,
            batch=self.batch,
            class_weights=class_weights,
            reduction="none",
        )
        if self.reduction == "mean":
            return jnp.mean(values)
        if self.reduction == "sum":
            return jnp.sum(values)
        return values.reshape(values.shape + (1,) * (x.ndim - 2))


class AsymmetricUnifiedFocalLoss:
    """MONAI 1.6's ``AsymmetricUnifiedFocalLoss`` (its arguments and defaults), binary only
    as there: `jaxloss.asymmetric_unified_focal_loss` of ``(B, 2, *spatial)`` or ``(B, 1,
    *spatial)`` *probabilities* (MONAI's docstring says logits, but its code applies no
    activation) with 2 or 3 spatial axes, and targets of their shape or, with
    ``to_onehot_y``, ``(B, 1, *spatial)`` labels. One channel is the foreground, with
    ``1 - p`` the background.

    MONAI's conventions, kept: the loss is always the mean over images and both classes, so
    ``reduction`` ("mean", "sum" or "none") changes nothing (MONAI's inner losses reduce by
    their mean first); ``ignore_index`` zeroes the probabilities and targets of the pixels
    it marks, which still count in the focal term's mean and, clipped to ε = 1e-7, in the
    false positives; a label outside ``[0, 2)`` is one-hot encoded as class 0 first.

    Where this differs from MONAI: the foreground's Tversky term has gradient 0 instead of
    inf at a perfect score, and more than two channels (which MONAI 1.6 reads as two,
    ignoring the rest) or ``num_classes != 2`` raise; use
    `jaxloss.asymmetric_unified_focal_loss` for more classes.

    Args:
      to_onehot_y: one-hot encode ``(B, 1, ...)`` class-index targets (two channels).
      num_classes: 2, the only value MONAI 1.6 computes.
      weight: λ in [0, 1], the focal term's share.
      gamma: γ in [0, 1].
      delta: δ in [0, 1], the foreground's weight.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``, all the mean.
      ignore_index: a target value whose pixels are zeroed, or None.

    Examples:
      >>> probabilities = jnp.array([[[[0.9, 0.2]], [[0.1, 0.8]]]])  # (1, 2, 1, 2)
      >>> labels = jnp.array([[[[0, 1]]]])
      >>> round(float(AsymmetricUnifiedFocalLoss(to_onehot_y=True)(probabilities, labels)), 5)
      0.15699
    """

    def __init__(
        self,
        to_onehot_y: bool = False,
        num_classes: int = 2,
        weight: float = 0.5,
        gamma: float = 0.5,
        delta: float = 0.7,
        reduction: str = "mean",
        ignore_index: int | None = None,
    ) -> None:
        fn = "AsymmetricUnifiedFocalLoss"
        if reduction not in _REDUCTIONS:
            raise ValueError(f"{fn}: `reduction` must be one of {_REDUCTIONS}; got {reduction!r}.")
        if num_classes != 2:
            raise ValueError(
                f"{fn}: MONAI 1.6 computes `num_classes=2` only; got {num_classes!r}. Use "
                "jaxloss.asymmetric_unified_focal_loss for more classes."
            )
        for name, value in (("weight", weight), ("gamma", gamma), ("delta", delta)):
            checks.python_number(fn, name, value, low=0.0, high=1.0)
        self.to_onehot_y = to_onehot_y
        self.num_classes = num_classes
        self.weight, self.gamma, self.delta = weight, gamma, delta
        self.reduction = reduction
        self.ignore_index = ignore_index

    def __call__(self, input: ArrayLike, target: ArrayLike) -> jax.Array:
        fn = "AsymmetricUnifiedFocalLoss"
        x = checks.float_array(fn, "input", input)
        t = checks.as_array(fn, "target", target)
        if x.ndim not in (4, 5):
            raise ValueError(
                f"{fn}: `input` must be (B, C, H, W) or (B, C, H, W, D); got shape {list(x.shape)}."
            )
        num_channels = x.shape[1]
        if num_channels > 2:
            raise ValueError(
                f"{fn}: MONAI 1.6's loss is binary, `input` must have 1 or 2 channels; got "
                f"{num_channels}. Use jaxloss.asymmetric_unified_focal_loss for more classes."
            )
        onehot = self.to_onehot_y and num_channels == 2
        expected = (x.shape[0], 1, *x.shape[2:]) if onehot or num_channels == 1 else x.shape
        if t.shape != expected:
            raise ValueError(
                f"{fn}: `target` must have shape {list(expected)} for `input` of shape "
                f"{list(x.shape)}; got {list(t.shape)}."
            )
        original_target = t
        if num_channels == 1:
            x = jnp.concatenate([1 - x, x], axis=1)
        if onehot:
            t = _one_hot(fn, t, self.num_classes, self.ignore_index, x.dtype)
        elif num_channels == 1:
            t = t.astype(x.dtype)
            t = jnp.concatenate([1 - t, t], axis=1)
        t = t.astype(x.dtype)
        if self.ignore_index is None:
            checks.value_check(
                fn,
                t <= 1,
                "`target` must not exceed 1 (MONAI's check of the class index); found {}.",
                checks.first_violation(t, t <= 1),
            )
        else:
            mask = _ignore_mask(original_target, self.ignore_index).astype(x.dtype)
            x, t = x * mask, t * mask
        return asymmetric_unified_focal_loss(
            _channels_last(x),
            _channels_last(t),
            activation="none",
            lambda_focal=self.weight,
            delta=self.delta,
            gamma=self.gamma,
            reduction="mean",
        )
