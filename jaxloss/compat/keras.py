"""Keras' loss API (keras 3.15), on jaxloss's criteria: the functions of ``keras.losses``
(``y_true`` first, one loss per sample: the mean over the last axis for elementwise losses)
and its ``Loss`` classes, with Keras' reductions and ``sample_weight``.

A ported Keras model means here what it meant in Keras::

    from jaxloss.compat import keras as losses
    loss = losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=0)
    value = loss(labels, logits, sample_weight=w)

Every name and argument is Keras'; the loss math is jaxloss's (each call maps its arguments
onto a native criterion). Keras' own conventions are kept on purpose:

- ``reduction``: ``"sum_over_batch_size"`` (the default, and ``"mean"``) divides the weighted
  sum by the number of per-sample losses; ``"mean_with_sample_weight"`` by the sum of the
  weights; ``"sum"``; ``None``/``"none"``. Losses that mask entries (``ignore_class``,
  ``Circle``) average over the entries that count, 0 when none does.
- probabilities (``from_logits=False``) are clipped to [1e-7, 1 - 1e-7] (Keras' epsilon),
  and categorical ones renormalised first;
- ``Hinge`` and ``SquaredHinge`` turn {0, 1} labels into {-1, +1};
- ``Tversky``'s α multiplies the false *negatives* and β the false positives (the reverse of
  the paper and of `jaxloss.tversky_loss`, whose α weights false positives);
- the classes compute in ``dtype`` (float32 when None, Keras' default floatx).

Where jaxloss differs from Keras:

- precision: from logits, the categorical and binary (focal) cross-entropies are computed in
  log space, where Keras computes the softmax or sigmoid and clips it at 1e-7; both agree
  wherever that clip is inactive, and beyond it Keras' loss saturates at -log(1e-7) ≈ 16.1
  with a zero gradient while jaxloss's stays exact;
- ``categorical_hinge`` takes one-hot rows and rows of zeros, as Keras' tests use; a soft or
  multi-hot row raises (nan under ``jit``), where Keras computes a number that is not the
  hinge of any one label.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from .._core import checks
from .._core.reduction import reduce_loss
from ..classification import (
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    cross_entropy,
)
from ..classification import (
    kl_divergence as _kl_divergence,
)
from ..embedding import circle_loss
from ..embedding import cosine_similarity as _cosine_similarity
from ..focal import generalized_cross_entropy, sigmoid_focal_loss, softmax_focal_loss
from ..margin import hinge_loss, multiclass_hinge_loss
from ..regression import (
    huber_loss,
    l1_loss,
    log_cosh_loss,
    mape_loss,
    mse_loss,
    msle_loss,
    poisson_nll_loss,
)
from ..segmentation import dice_loss, tversky_loss
from ..sequence import ctc_loss

EPSILON = 1e-7  # keras.config.epsilon()

__all__ = [
    "CTC",
    "BinaryCrossentropy",
    "BinaryFocalCrossentropy",
    "CategoricalCrossentropy",
    "CategoricalFocalCrossentropy",
    "CategoricalGeneralizedCrossEntropy",
    "CategoricalHinge",
    "Circle",
    "CosineSimilarity",
    "Dice",
    "Hinge",
    "Huber",
    "KLDivergence",
    "LogCosh",
    "Loss",
    "MeanAbsoluteError",
    "MeanAbsolutePercentageError",
    "MeanSquaredError",
    "MeanSquaredLogarithmicError",
    "Poisson",
    "SparseCategoricalCrossentropy",
    "SquaredHinge",
    "Tversky",
    "binary_crossentropy",
    "binary_focal_crossentropy",
    "categorical_crossentropy",
    "categorical_focal_crossentropy",
    "categorical_generalized_cross_entropy",
    "categorical_hinge",
    "circle",
    "cosine_similarity",
    "ctc",
    "dice",
    "hinge",
    "huber",
    "kl_divergence",
    "log_cosh",
    "mean_absolute_error",
    "mean_absolute_percentage_error",
    "mean_squared_error",
    "mean_squared_logarithmic_error",
    "poisson",
    "sparse_categorical_crossentropy",
    "squared_hinge",
    "tversky",
]


# ----------------------------------------------------------------------- argument mapping


def _same_rank(x1, x2):
    """Keras' squeeze_or_expand_to_same_rank: a trailing axis of 1 is squeezed (or the
    rank-1 side expanded) when the ranks differ by one."""
    if x1.ndim == x2.ndim + 1 and x1.shape[-1] == 1:
        return (x1, x2[..., None]) if x2.ndim == 1 else (x1[..., 0], x2)
    if x2.ndim == x1.ndim + 1 and x2.shape[-1] == 1:
        return (x1[..., None], x2) if x1.ndim == 1 else (x1, x2[..., 0])
    return x1, x2


def _pair(y_true, y_pred, *, same_rank=True):
    """y_pred as a float array and y_true cast to its dtype (Keras' convert_to_tensor)."""
    pred = jnp.asarray(y_pred)
    if not jnp.issubdtype(pred.dtype, jnp.floating):
        pred = pred.astype(jnp.float32)
    true = jnp.asarray(y_true).astype(pred.dtype)
    return _same_rank(true, pred) if same_rank else (true, pred)


def _mean_last(loss, axis=-1):
    """Keras' per-sample value of an elementwise loss: its mean over `axis`."""
    return jnp.mean(loss, axis=axis)


def _clip(probabilities):
    return jnp.clip(probabilities, EPSILON, 1 - EPSILON)


def _log_probabilities(probabilities, axis):
    """Keras' categorical probabilities: renormalised along `axis`, clipped, logged (the
    cross-entropies then read them as logits: log-softmax leaves normalised log-probabilities
    as they are)."""
    return jnp.log(_clip(probabilities / jnp.sum(probabilities, axis=axis, keepdims=True)))


def _smoothed_binary(y_true, label_smoothing):
    if not label_smoothing:
        return y_true
    return y_true * (1 - label_smoothing) + 0.5 * label_smoothing


def _hinge_labels(y_true):
    """{0, 1} labels become {-1, +1}; other labels are used as they are (Keras' rule)."""
    binary = jnp.all((y_true == 0) | (y_true == 1))
    return jnp.where(binary, 2 * y_true - 1, y_true)


# ------------------------------------------------------------------------------ functions


def mean_squared_error(y_true: ArrayLike, y_pred: ArrayLike) -> jax.Array:
    """``keras.losses.mean_squared_error``: the mean over the last axis of (y_true - y_pred)²."""
    t, p = _pair(y_true, y_pred)
    return _mean_last(mse_loss(p, t, reduction="none"))


def mean_absolute_error(y_true: ArrayLike, y_pred: ArrayLike) -> jax.Array:
    """``keras.losses.mean_absolute_error``."""
    t, p = _pair(y_true, y_pred)
    return _mean_last(l1_loss(p, t, reduction="none"))


def mean_absolute_percentage_error(y_true: ArrayLike, y_pred: ArrayLike) -> jax.Array:
    """``keras.losses.mean_absolute_percentage_error``, in percent (`jaxloss.mape_loss`)."""
    t, p = _pair(y_true, y_pred)
    return _mean_last(mape_loss(p, t, eps=EPSILON, reduction="none"))


def mean_squared_logarithmic_error(y_true: ArrayLike, y_pred: ArrayLike) -> jax.Array:
    """``keras.losses.mean_squared_logarithmic_error`` (`jaxloss.msle_loss`)."""
    t, p = _pair(y_true, y_pred)
    return _mean_last(msle_loss(p, t, eps=EPSILON, reduction="none"))


def huber(y_true: ArrayLike, y_pred: ArrayLike, delta: float = 1.0) -> jax.Array:
    """``keras.losses.huber``."""
    t, p = _pair(y_true, y_pred)
    return _mean_last(huber_loss(p, t, delta=delta, reduction="none"))


def log_cosh(y_true: ArrayLike, y_pred: ArrayLike) -> jax.Array:
    """``keras.losses.log_cosh``."""
    t, p = _pair(y_true, y_pred)
    return _mean_last(log_cosh_loss(p, t, reduction="none"))


def poisson(y_true: ArrayLike, y_pred: ArrayLike) -> jax.Array:
    """``keras.losses.poisson``: the mean of y_pred - y_true·log(y_pred + 1e-7)."""
    t, p = _pair(y_true, y_pred, same_rank=False)
    return _mean_last(poisson_nll_loss(p, t, log_input=False, eps=EPSILON, reduction="none"))


def kl_divergence(y_true: ArrayLike, y_pred: ArrayLike) -> jax.Array:
    """``keras.losses.kl_divergence``: both sides clipped to [1e-7, 1], summed over the last
    axis (`jaxloss.kl_divergence`)."""
    t, p = _pair(y_true, y_pred, same_rank=False)
    t, p = jnp.clip(t, EPSILON, 1), jnp.clip(p, EPSILON, 1)
    return _kl_divergence(jnp.log(p), t, reduction="none")


def cosine_similarity(y_true: ArrayLike, y_pred: ArrayLike, axis: int = -1) -> jax.Array:
    """``keras.losses.cosine_similarity``: the *negative* cosine similarity along `axis`,
    each side divided by max(‖x‖, 1e-6) (Keras' L2 normalisation at 1e-12 squared)."""
    t, p = _pair(y_true, y_pred)
    return -_cosine_similarity(t, p, axis=axis, eps=1e-6)


def hinge(y_true: ArrayLike, y_pred: ArrayLike) -> jax.Array:
    """``keras.losses.hinge``: {0, 1} labels become ±1 first."""
    t, p = _pair(y_true, y_pred, same_rank=False)
    return _mean_last(hinge_loss(p, _hinge_labels(t), reduction="none"))


def squared_hinge(y_true: ArrayLike, y_pred: ArrayLike) -> jax.Array:
    """``keras.losses.squared_hinge``: {0, 1} labels become ±1 first."""
    t, p = _pair(y_true, y_pred, same_rank=False)
    return _mean_last(hinge_loss(p, _hinge_labels(t), squared=True, reduction="none"))


def categorical_hinge(y_true: ArrayLike, y_pred: ArrayLike) -> jax.Array:
    """``keras.losses.categorical_hinge`` for one-hot or all-zero rows of ``y_true``:
    max(0, 1 + max(0, max_{c≠y} s_c) - s_y), and max(0, 1 + max_c s_c) for a row of zeros.

    Keras' ``max((1 - y_true) * y_pred)`` counts the true class as a score of 0, which is
    the Crammer-Singer hinge (`jaxloss.multiclass_hinge_loss`) over the scores with one more
    class of score 0; that is how it is computed here, and a row of zeros is that extra class
    as its label (the same number Keras gives). Other rows (soft or multi-hot labels) raise,
    or give nan under ``jit``: Keras' formula for them is not a hinge of one label.
    """
    fn = "compat.keras.categorical_hinge"
    t, p = _pair(y_true, y_pred, same_rank=False)
    total = jnp.sum(t, axis=-1)
    binary = jnp.all((t == 0) | (t == 1), axis=-1)
    allowed = binary & ((total == 1) | (total == 0))
    checks.value_check(
        fn,
        allowed,
        "`y_true` must be one-hot (or all zeros) along the last axis; found a row summing to {}.",
        checks.first_violation(total, allowed),
    )
    labels = jnp.where(total == 0, p.shape[-1], jnp.argmax(t, axis=-1))
    padded = jnp.concatenate([p, jnp.zeros(p.shape[:-1] + (1,), p.dtype)], axis=-1)
    loss = multiclass_hinge_loss(padded, labels, reduction="none")
    return jnp.where(allowed, loss, jnp.nan)


def binary_crossentropy(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    from_logits: bool = False,
    label_smoothing: float = 0.0,
    axis: int = -1,
) -> jax.Array:
    """``keras.losses.binary_crossentropy``: targets smoothed toward ½, probabilities
    clipped to [1e-7, 1 - 1e-7], the mean over `axis`."""
    t, p = _pair(y_true, y_pred, same_rank=False)
    t = _smoothed_binary(t, label_smoothing)
    if from_logits:
        loss = binary_cross_entropy_with_logits(p, t, reduction="none")
    else:
        loss = binary_cross_entropy(_clip(p), t, reduction="none")
    return _mean_last(loss, axis)


def binary_focal_crossentropy(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    apply_class_balancing: bool = False,
    alpha: float = 0.25,
    gamma: float = 2.0,
    from_logits: bool = False,
    label_smoothing: float = 0.0,
    axis: int = -1,
) -> jax.Array:
    """``keras.losses.binary_focal_crossentropy`` (`jaxloss.sigmoid_focal_loss`)."""
    t, p = _pair(y_true, y_pred, same_rank=False)
    loss = sigmoid_focal_loss(
        p if from_logits else _clip(p),
        t,
        alpha=alpha if apply_class_balancing else None,
        gamma=gamma,
        label_smoothing=label_smoothing,
        from_logits=from_logits,
        reduction="none",
    )
    return _mean_last(loss, axis)


def categorical_crossentropy(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    from_logits: bool = False,
    label_smoothing: float = 0.0,
    axis: int = -1,
) -> jax.Array:
    """``keras.losses.categorical_crossentropy`` (`jaxloss.cross_entropy` on class
    probabilities)."""
    t, p = _pair(y_true, y_pred, same_rank=False)
    logits = p if from_logits else _log_probabilities(p, axis)
    return cross_entropy(logits, t, axis=axis, label_smoothing=label_smoothing, reduction="none")


def categorical_focal_crossentropy(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    alpha: float = 0.25,
    gamma: float = 2.0,
    from_logits: bool = False,
    label_smoothing: float = 0.0,
    axis: int = -1,
) -> jax.Array:
    """``keras.losses.categorical_focal_crossentropy``: α for every class
    (`jaxloss.softmax_focal_loss` on class probabilities with ``weight=α``)."""
    t, p = _pair(y_true, y_pred, same_rank=False)
    logits = p if from_logits else _log_probabilities(p, axis)
    weight = jnp.full((p.shape[axis],), alpha, p.dtype)
    return softmax_focal_loss(
        logits,
        t,
        gamma=gamma,
        axis=axis,
        class_weights=weight,
        label_smoothing=label_smoothing,
        reduction="none",
    )


def _sparse_labels(y_true, y_pred, axis):
    y = jnp.asarray(y_true)
    if y.ndim == y_pred.ndim and y.shape[axis] == 1:
        y = jnp.squeeze(y, axis=axis)
    return y.astype(jnp.int32)


def sparse_categorical_crossentropy(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    from_logits: bool = False,
    ignore_class: int | None = None,
    axis: int = -1,
) -> jax.Array:
    """``keras.losses.sparse_categorical_crossentropy``: 0 where the label is
    ``ignore_class`` (the ``SparseCategoricalCrossentropy`` class then averages over the
    other positions)."""
    p = jnp.asarray(y_pred)
    y = _sparse_labels(y_true, p, axis)
    logits = p if from_logits else _log_probabilities(p, axis)
    return cross_entropy(logits, y, axis=axis, ignore_index=ignore_class, reduction="none")


def categorical_generalized_cross_entropy(
    y_true: ArrayLike, y_pred: ArrayLike, q: float
) -> jax.Array:
    """``keras.losses.categorical_generalized_cross_entropy``: (1 - p_y^q)/q of the
    probabilities `y_pred` at the integer labels `y_true`."""
    p = jnp.asarray(y_pred)
    y = jnp.asarray(y_true).astype(jnp.int32)
    return generalized_cross_entropy(
        p, y, q=q, from_logits=False, ignore_index=None, reduction="none"
    )


def circle(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    ref_labels: ArrayLike | None = None,
    ref_embeddings: ArrayLike | None = None,
    remove_diagonal: bool = True,
    gamma: float = 80,
    margin: float = 0.4,
) -> jax.Array:
    """``keras.losses.circle`` on (normalised) embeddings `y_pred` with integer labels
    `y_true` (`jaxloss.circle_loss` with Keras' dot products and differentiated weights)."""
    e = jnp.asarray(y_pred)
    y = jnp.asarray(y_true).astype(jnp.int32)
    ref_e = e if ref_embeddings is None else jnp.asarray(ref_embeddings)
    ref_y = y if ref_labels is None else jnp.asarray(ref_labels).astype(jnp.int32)
    return circle_loss(
        e,
        y,
        reference_embeddings=ref_e,
        reference_labels=ref_y,
        gamma=float(gamma),
        margin=margin,
        remove_diagonal=remove_diagonal,
        normalize=False,
        detach_weights=False,
        reduction="none",
    )


def ctc(y_true: ArrayLike, y_pred: ArrayLike) -> jax.Array:
    """``keras.losses.ctc``: logits `y_pred` (batch, T, classes) with blank 0, labels
    `y_true` (batch, max_length) padded with 0 (their length is the count of non-zeros)."""
    fn = "compat.keras.ctc"
    y = jnp.asarray(y_true)
    p = jnp.asarray(y_pred)
    if y.ndim != 2:
        raise ValueError(f"{fn}: `y_true` must be (batch_size, max_length); got {list(y.shape)}.")
    if p.ndim != 3:
        raise ValueError(
            f"{fn}: `y_pred` must be (batch_size, max_length, num_classes); got {list(p.shape)}."
        )
    y = y.astype(jnp.int32)
    return ctc_loss(
        p,
        y,
        input_lengths=jnp.full(p.shape[:1], p.shape[1], jnp.int32),
        label_lengths=jnp.sum(y != 0, axis=-1).astype(jnp.int32),
        blank=0,
        reduction="none",
    )


def _overlap_layout(t, p, axis):
    """(kept, flattened): `axis` (None: all) summed as the pixels of one channel, the other
    axes kept as samples, for the segmentation losses' (N, pixels, 1) layout."""
    reduced = (
        tuple(range(p.ndim))
        if axis is None
        else tuple(a % p.ndim for a in ((axis,) if isinstance(axis, int) else axis))
    )
    kept = tuple(a for a in range(p.ndim) if a not in reduced)
    order = kept + reduced
    kept_shape = tuple(p.shape[a] for a in kept)

    def flat(x):
        return jnp.transpose(x, order).reshape((math.prod(kept_shape), -1, 1))

    return kept_shape, flat(t), flat(p)


def dice(
    y_true: ArrayLike, y_pred: ArrayLike, axis: int | Sequence[int] | None = None
) -> jax.Array:
    """``keras.losses.dice``: 1 - 2Σ(y_true·y_pred)/(Σy_true + Σy_pred + 1e-7) over `axis`
    (all axes when None), `jaxloss.dice_loss` on probabilities."""
    t, p = _pair(y_true, y_pred, same_rank=False)
    kept, t, p = _overlap_layout(t, p, axis)
    loss = dice_loss(
        p,
        t,
        activation="none",
        smooth_numerator=0.0,
        smooth_denominator=EPSILON,
        reduction="none",
    )
    return loss.reshape(kept)


def tversky(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    alpha: float = 0.5,
    beta: float = 0.5,
    axis: int | Sequence[int] | None = None,
) -> jax.Array:
    """``keras.losses.tversky``: Keras' α multiplies the false negatives and β the false
    positives, so they become `jaxloss.tversky_loss`'s β and α."""
    t, p = _pair(y_true, y_pred, same_rank=False)
    kept, t, p = _overlap_layout(t, p, axis)
    loss = tversky_loss(
        p,
        t,
        alpha=beta,
        beta=alpha,
        activation="none",
        smooth_numerator=0.0,
        smooth_denominator=EPSILON,
        reduction="none",
    )
    return loss.reshape(kept)


# -------------------------------------------------------------------------------- classes

_REDUCTIONS = ("sum", "sum_over_batch_size", "mean", "mean_with_sample_weight", "none", None)


class Loss:
    """Keras' ``Loss``: ``loss(y_true, y_pred, sample_weight=None)`` computes the per-sample
    losses with `call` and reduces them (see the module's notes on ``reduction``)."""

    def __init__(
        self,
        name: str | None = None,
        reduction: str | None = "sum_over_batch_size",
        dtype: Any = None,
    ):
        if reduction not in _REDUCTIONS:
            raise ValueError(
                f"{type(self).__name__}: `reduction` must be one of "
                f"{', '.join(repr(r) for r in _REDUCTIONS)}; got {reduction!r}."
            )
        self.name = name or type(self).__name__
        self.reduction = reduction
        self.dtype = jnp.dtype(dtype or jnp.float32)

    def call(self, y_true: jax.Array, y_pred: jax.Array) -> jax.Array:
        raise NotImplementedError

    def mask(self, y_true: jax.Array, losses: jax.Array) -> jax.Array | None:
        """The entries that count (Keras' loss mask); None: all."""
        del y_true, losses
        return None

    def __call__(
        self, y_true: ArrayLike, y_pred: ArrayLike, sample_weight: ArrayLike | None = None
    ) -> jax.Array:
        y_true = jnp.asarray(y_true, self.dtype)
        y_pred = jnp.asarray(y_pred, self.dtype)
        losses = self.call(y_true, y_pred)
        return _keras_reduction(
            losses, sample_weight, self.mask(y_true, losses), self.reduction, self.dtype
        )


def _keras_reduction(values, sample_weight, mask, reduction, dtype):
    """Keras' reduce_weighted_values, through `reduction.reduce_loss`."""
    weight = None
    if sample_weight is not None:
        weight = jnp.asarray(sample_weight, dtype)
        values, weight = _same_rank(values, weight)
        weight = jnp.broadcast_to(weight, jnp.broadcast_shapes(values.shape, weight.shape))
        values = values * weight
    if mask is not None:
        mask = jnp.broadcast_to(mask, values.shape)
    if reduction in (None, "none") or values.shape in ((), (0,)):
        return values if mask is None else jnp.where(mask, values, 0)
    if reduction == "sum":
        return reduce_loss(values, "sum", where=mask)
    # Keras divides with divide_no_nan: nothing to average over gives 0.
    if reduction == "mean_with_sample_weight" and weight is not None:
        return reduce_loss(values, "mean", where=mask, normalizer=weight, empty_mean=0.0)
    return reduce_loss(values, "mean", where=mask, empty_mean=0.0)


class _FunctionLoss(Loss):
    """A Keras loss class over one of this module's functions and its keyword options."""

    function: Any = None

    def __init__(self, name, reduction, dtype, **options):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.options = options

    def call(self, y_true, y_pred):
        return type(self).function(y_true, y_pred, **self.options)


class MeanSquaredError(_FunctionLoss):
    """``keras.losses.MeanSquaredError``."""

    function = staticmethod(mean_squared_error)

    def __init__(self, reduction="sum_over_batch_size", name="mean_squared_error", dtype=None):
        super().__init__(name, reduction, dtype)


class MeanAbsoluteError(_FunctionLoss):
    """``keras.losses.MeanAbsoluteError``."""

    function = staticmethod(mean_absolute_error)

    def __init__(self, reduction="sum_over_batch_size", name="mean_absolute_error", dtype=None):
        super().__init__(name, reduction, dtype)


class MeanAbsolutePercentageError(_FunctionLoss):
    """``keras.losses.MeanAbsolutePercentageError``."""

    function = staticmethod(mean_absolute_percentage_error)

    def __init__(
        self,
        reduction="sum_over_batch_size",
        name="mean_absolute_percentage_error",
        dtype=None,
    ):
        super().__init__(name, reduction, dtype)


class MeanSquaredLogarithmicError(_FunctionLoss):
    """``keras.losses.MeanSquaredLogarithmicError``."""

    function = staticmethod(mean_squared_logarithmic_error)

    def __init__(
        self,
        reduction="sum_over_batch_size",
        name="mean_squared_logarithmic_error",
        dtype=None,
    ):
        super().__init__(name, reduction, dtype)


class Huber(_FunctionLoss):
    """``keras.losses.Huber``."""

    function = staticmethod(huber)

    def __init__(self, delta=1.0, reduction="sum_over_batch_size", name="huber_loss", dtype=None):
        super().__init__(name, reduction, dtype, delta=delta)


class LogCosh(_FunctionLoss):
    """``keras.losses.LogCosh``."""

    function = staticmethod(log_cosh)

    def __init__(self, reduction="sum_over_batch_size", name="log_cosh", dtype=None):
        super().__init__(name, reduction, dtype)


class Poisson(_FunctionLoss):
    """``keras.losses.Poisson``."""

    function = staticmethod(poisson)

    def __init__(self, reduction="sum_over_batch_size", name="poisson", dtype=None):
        super().__init__(name, reduction, dtype)


class KLDivergence(_FunctionLoss):
    """``keras.losses.KLDivergence``."""

    function = staticmethod(kl_divergence)

    def __init__(self, reduction="sum_over_batch_size", name="kl_divergence", dtype=None):
        super().__init__(name, reduction, dtype)


class CosineSimilarity(_FunctionLoss):
    """``keras.losses.CosineSimilarity``."""

    function = staticmethod(cosine_similarity)

    def __init__(
        self, axis=-1, reduction="sum_over_batch_size", name="cosine_similarity", dtype=None
    ):
        super().__init__(name, reduction, dtype, axis=axis)


class Hinge(_FunctionLoss):
    """``keras.losses.Hinge``."""

    function = staticmethod(hinge)

    def __init__(self, reduction="sum_over_batch_size", name="hinge", dtype=None):
        super().__init__(name, reduction, dtype)


class SquaredHinge(_FunctionLoss):
    """``keras.losses.SquaredHinge``."""

    function = staticmethod(squared_hinge)

    def __init__(self, reduction="sum_over_batch_size", name="squared_hinge", dtype=None):
        super().__init__(name, reduction, dtype)


class CategoricalHinge(_FunctionLoss):
    """``keras.losses.CategoricalHinge``."""

    function = staticmethod(categorical_hinge)

    def __init__(self, reduction="sum_over_batch_size", name="categorical_hinge", dtype=None):
        super().__init__(name, reduction, dtype)


class BinaryCrossentropy(_FunctionLoss):
    """``keras.losses.BinaryCrossentropy``."""

    function = staticmethod(binary_crossentropy)

    def __init__(
        self,
        from_logits=False,
        label_smoothing=0.0,
        axis=-1,
        reduction="sum_over_batch_size",
        name="binary_crossentropy",
        dtype=None,
    ):
        super().__init__(
            name,
            reduction,
            dtype,
            from_logits=from_logits,
            label_smoothing=label_smoothing,
            axis=axis,
        )


class BinaryFocalCrossentropy(_FunctionLoss):
    """``keras.losses.BinaryFocalCrossentropy``."""

    function = staticmethod(binary_focal_crossentropy)

    def __init__(
        self,
        apply_class_balancing=False,
        alpha=0.25,
        gamma=2.0,
        from_logits=False,
        label_smoothing=0.0,
        axis=-1,
        reduction="sum_over_batch_size",
        name="binary_focal_crossentropy",
        dtype=None,
    ):
        super().__init__(
            name,
            reduction,
            dtype,
            apply_class_balancing=apply_class_balancing,
            alpha=alpha,
            gamma=gamma,
            from_logits=from_logits,
            label_smoothing=label_smoothing,
            axis=axis,
        )


class CategoricalCrossentropy(_FunctionLoss):
    """``keras.losses.CategoricalCrossentropy``."""

    function = staticmethod(categorical_crossentropy)

    def __init__(
        self,
        from_logits=False,
        label_smoothing=0.0,
        axis=-1,
        reduction="sum_over_batch_size",
        name="categorical_crossentropy",
        dtype=None,
    ):
        super().__init__(
            name,
            reduction,
            dtype,
            from_logits=from_logits,
            label_smoothing=label_smoothing,
            axis=axis,
        )


class CategoricalFocalCrossentropy(_FunctionLoss):
    """``keras.losses.CategoricalFocalCrossentropy``."""

    function = staticmethod(categorical_focal_crossentropy)

    def __init__(
        self,
        alpha=0.25,
        gamma=2.0,
        from_logits=False,
        label_smoothing=0.0,
        axis=-1,
        reduction="sum_over_batch_size",
        name="categorical_focal_crossentropy",
        dtype=None,
    ):
        super().__init__(
            name,
            reduction,
            dtype,
            alpha=alpha,
            gamma=gamma,
            from_logits=from_logits,
            label_smoothing=label_smoothing,
            axis=axis,
        )


class SparseCategoricalCrossentropy(_FunctionLoss):
    """``keras.losses.SparseCategoricalCrossentropy``; with ``ignore_class`` the reduction
    averages over the positions whose label is another class."""

    function = staticmethod(sparse_categorical_crossentropy)

    def __init__(
        self,
        from_logits=False,
        ignore_class=None,
        reduction="sum_over_batch_size",
        axis=-1,
        name="sparse_categorical_crossentropy",
        dtype=None,
    ):
        super().__init__(
            name, reduction, dtype, from_logits=from_logits, ignore_class=ignore_class, axis=axis
        )

    def mask(self, y_true, losses):
        ignore = self.options["ignore_class"]
        if ignore is None:
            return None
        labels = _sparse_labels(y_true, losses[..., None], -1)
        return jnp.reshape(labels != ignore, losses.shape)


class CategoricalGeneralizedCrossEntropy(_FunctionLoss):
    """``keras.losses.CategoricalGeneralizedCrossEntropy``."""

    function = staticmethod(categorical_generalized_cross_entropy)

    def __init__(
        self,
        q=0.5,
        reduction="sum_over_batch_size",
        name="categorical_generalized_cross_entropy",
        dtype=None,
    ):
        if not 0 < q <= 1:
            raise ValueError(f"CategoricalGeneralizedCrossEntropy: `q` must be in (0, 1]; got {q}.")
        super().__init__(name, reduction, dtype, q=q)


class Circle(_FunctionLoss):
    """``keras.losses.Circle``: the reduction averages over the anchors with a positive loss
    (Keras' mask), i.e. those with at least one positive and one negative pair."""

    function = staticmethod(circle)

    def __init__(
        self,
        gamma=80.0,
        margin=0.4,
        remove_diagonal=True,
        reduction="sum_over_batch_size",
        name="circle",
        dtype=None,
    ):
        super().__init__(
            name, reduction, dtype, gamma=gamma, margin=margin, remove_diagonal=remove_diagonal
        )

    def mask(self, y_true, losses):
        return losses > 0


class CTC(_FunctionLoss):
    """``keras.losses.CTC``."""

    function = staticmethod(ctc)

    def __init__(self, reduction="sum_over_batch_size", name="ctc", dtype=None):
        super().__init__(name, reduction, dtype)

    def __call__(self, y_true, y_pred, sample_weight=None):
        # the labels stay integers (Keras converts them to int32 inside ctc)
        losses = ctc(y_true, jnp.asarray(y_pred, self.dtype))
        return _keras_reduction(losses, sample_weight, None, self.reduction, self.dtype)


class Dice(_FunctionLoss):
    """``keras.losses.Dice``."""

    function = staticmethod(dice)

    def __init__(self, reduction="sum_over_batch_size", name="dice", axis=None, dtype=None):
        super().__init__(name, reduction, dtype, axis=axis)


class Tversky(_FunctionLoss):
    """``keras.losses.Tversky`` (Keras' α weights false negatives: see the module notes)."""

    function = staticmethod(tversky)

    def __init__(
        self,
        alpha=0.5,
        beta=0.5,
        reduction="sum_over_batch_size",
        name="tversky",
        axis=None,
        dtype=None,
    ):
        super().__init__(name, reduction, dtype, alpha=alpha, beta=beta, axis=axis)
