"""segmentation_models_pytorch's ``FocalLoss`` class (smp 0.6), on jaxloss's
`jaxloss.sigmoid_focal_loss`: its binary, multiclass and multilabel modes, ``class_weights``,
``ignore_index``, ``from_logits=False``, and the reduced and normalised focal losses, channels
first, so a ported smp model means here what it meant there::

    from jaxloss.compat import smp
    loss = smp.FocalLoss("multiclass", gamma=2.0, ignore_index=255, class_weights=[1.0, 3.0, 3.0])
    value = loss(logits, labels)  # logits (N, C, H, W), labels (N, H, W)

smp's conventions, kept on purpose:

- every mode is a *sigmoid* focal loss: ``"multiclass"`` scores each class one-vs-rest on its
  own logit (targets ``labels == c``), not through a softmax;
- the loss of each class is reduced on its own (``normalized`` divides by that class's sum of
  focal factors), then the classes are averaged, weighted by ``class_weights``
  (``Σ w_c ℓ_c / Σ w_c``);
- ``ignore_index`` leaves the pixels with that label out, so ``"mean"`` is over the rest;
- ``from_logits=False`` clamps the probabilities to ``[eps, 1 - eps]`` and takes their
  log-odds (``"binary"``, ``"multilabel"``) or, in ``"multiclass"``, their logarithm, as the
  logits.

Where this differs from smp: ``reduction`` is ``"mean"`` or ``"sum"`` (and ``"none"``, flat
as smp's, in the binary mode without ``ignore_index``): smp's other combinations return ragged
or mis-broadcast arrays. ``ignore_index`` in the multilabel mode raises (smp's indexing fails
there). A multiclass label outside ``[0, C)`` (other than ``ignore_index``) raises, or gives
nan under ``jit``, where smp counts it as a negative of every class.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from .._core import checks
from ..focal import sigmoid_focal_loss

__all__ = ["FocalLoss"]

_MODES = ("binary", "multiclass", "multilabel")


class FocalLoss:
    """smp's ``FocalLoss`` (its arguments and defaults), on ``(N, C, *spatial)`` logits (any
    shape in the binary mode) and labels ``(N, *spatial)`` (multiclass), ``(N, C, *spatial)``
    (multilabel) or of the logits' shape (binary). See the module's docs for smp's
    conventions.

    Args:
      mode: ``"binary"``, ``"multiclass"`` or ``"multilabel"``.
      alpha: α in [0, 1] balancing positives and negatives, or None.
      gamma: γ >= 0, the focusing exponent.
      ignore_index: a label whose pixels count for nothing, or None.
      from_logits: whether the inputs are logits (else probabilities).
      eps: the clamp of probabilities with ``from_logits=False``.
      reduction: ``"mean"`` or ``"sum"`` (``"none"`` in the binary mode).
      normalized: the normalised focal loss (per class).
      reduced_threshold: r in (0, 1] of the reduced focal loss, or None.
      class_weights: one non-negative weight per class (multiclass and multilabel modes).

    Examples:
      >>> logits = jnp.array([[[[2.0, -1.0]], [[-0.5, 1.5]]]])  # (1, 2, 1, 2)
      >>> labels = jnp.array([[[0, 1]]])
      >>> round(float(FocalLoss("multiclass", class_weights=[1.0, 3.0])(logits, labels)), 5)
      0.03091
    """

    def __init__(
        self,
        mode: str,
        alpha: float | None = None,
        gamma: float | None = 2.0,
        ignore_index: int | None = None,
        from_logits: bool = True,
        eps: float = 1e-7,
        reduction: str | None = "mean",
        normalized: bool = False,
        reduced_threshold: float | None = None,
        class_weights: Sequence[float] | ArrayLike | None = None,
    ) -> None:
        fn = "FocalLoss"
        if mode not in _MODES:
            raise ValueError(f"{fn}: `mode` must be one of {_MODES}; got {mode!r}.")
        if class_weights is not None and mode == "binary":
            raise ValueError(f"{fn}: `class_weights` are not supported with mode='binary'.")
        if ignore_index is not None and mode == "multilabel":
            raise ValueError(f"{fn}: `ignore_index` is not supported with mode='multilabel'.")
        allowed = ("mean", "sum", "none") if mode == "binary" else ("mean", "sum")
        if reduction not in allowed:
            raise ValueError(
                f"{fn}: `reduction` must be one of {allowed} with mode={mode!r}; got {reduction!r}."
            )
        if reduction == "none" and ignore_index is not None:
            raise ValueError(f"{fn}: reduction='none' cannot be used with `ignore_index`.")
        checks.python_number(fn, "gamma", gamma, low=0.0)
        checks.python_number(fn, "eps", eps, low=0.0, high=0.5)
        self.mode = mode
        self.alpha = alpha
        self.gamma = float(gamma) if gamma is not None else 0.0
        self.ignore_index = ignore_index
        self.from_logits = from_logits
        self.eps = eps
        self.reduction = reduction
        self.normalized = normalized
        self.reduced_threshold = reduced_threshold
        self.class_weights = None
        if class_weights is not None:
            weights = jnp.asarray(class_weights, dtype=float)
            checks.value_check(
                fn,
                weights >= 0,
                "`class_weights` must be non-negative; found {}.",
                checks.first_violation(weights, weights >= 0),
            )
            self.class_weights = weights

    def _focal(self, logits, targets, where):
        return sigmoid_focal_loss(
            logits,
            targets,
            alpha=self.alpha,
            gamma=self.gamma,
            reduced_threshold=self.reduced_threshold,
            normalized=self.normalized,
            where=where,
            reduction=self.reduction,  # type: ignore[arg-type]
        )

    def __call__(self, y_pred: ArrayLike, y_true: ArrayLike) -> jax.Array:
        fn = "FocalLoss"
        x = checks.float_array(fn, "y_pred", y_pred)
        y = checks.as_array(fn, "y_true", y_true)
        if not self.from_logits:
            x = jnp.clip(x, self.eps, 1 - self.eps)
            x = jnp.log(x) if self.mode == "multiclass" else jnp.log(x / (1 - x))
        if self.mode == "binary":
            checks.shapes_equal(fn, "y_pred", x, "y_true", y)
            x, y = x.reshape(-1), y.reshape(-1)  # smp flattens ('none' is 1-D)
            where = None
            if self.ignore_index is not None:
                where = y != self.ignore_index
                y = jnp.where(where, y, 0)  # a finite target where the loss is masked
            return self._focal(x, y.astype(x.dtype), where)
        if x.ndim < 2:
            raise ValueError(
                f"{fn}: `y_pred` must be (N, C, ...) in mode={self.mode!r}; got shape "
                f"{list(x.shape)}."
            )
        num_classes = x.shape[1]
        if self.mode == "multiclass":
            expected = x.shape[:1] + x.shape[2:]
            if y.shape != expected:
                raise ValueError(
                    f"{fn}: in mode='multiclass' `y_true` must be class indices of shape "
                    f"{list(expected)}; got {list(y.shape)}."
                )
            where = None if self.ignore_index is None else y != self.ignore_index
            counted = jnp.ones(y.shape, bool) if where is None else where
            ok = ~counted | ((y >= 0) & (y < num_classes))
            checks.value_check(
                fn,
                ok,
                f"class index {{}} in `y_true` is out of range; expected [0, {num_classes})"
                + ("" if self.ignore_index is None else f" or ignore_index={self.ignore_index}")
                + ".",
                checks.first_violation(y, ok),
            )
            classes = jnp.arange(num_classes).reshape((1, -1) + (1,) * (x.ndim - 2))
            targets = (y[:, None] == classes).astype(x.dtype)
            # a bad label under jit: nan
            targets = jnp.where(ok[:, None], targets, jnp.nan)
        else:
            checks.shapes_equal(fn, "y_pred", x, "y_true", y)
            where, targets = None, y.astype(x.dtype)
        per_class = jax.vmap(self._focal, in_axes=(1, 1, None))(x, targets, where)  # (C,)
        if self.class_weights is None:
            return jnp.mean(per_class)
        checks.class_weight(fn, self.class_weights, num_classes)  # one per class
        weights = self.class_weights.astype(per_class.dtype)
        return jnp.sum(per_class * weights) / jnp.sum(weights)
