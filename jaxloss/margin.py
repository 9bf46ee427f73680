r"""Margin and sparse-output classification losses: binary and multiclass hinge (with the
perceptron as margin 0), sparsemax and its losses, and Fenchel-Young losses in general.

These are the linear-model and structured-prediction losses of optax.losses and Keras
(``hinge_loss``, ``perceptron_loss``, ``multiclass_hinge_loss``, ``sparsemax_loss``,
``make_fenchel_young_loss``; Keras' ``Hinge``, ``SquaredHinge``, ``CategoricalHinge``), in
jaxloss's conventions: ``axis``, ``where`` and ``reduction`` on every one. torch's own margin
criteria (``multi_margin_loss``, ``soft_margin_loss``, ...) live in `jaxloss.classification`.

The sparsemax losses are Fenchel-Young losses (Blondel et al. 2020): with
$\Omega = \tfrac12\|p\|^2$ on the simplex, $\ell(s, t) = \Omega^*(s) + \Omega(t) - \langle s,
t\rangle$, whose gradient in the scores is exactly $\mathrm{sparsemax}(s) - t$.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from ._core import checks
from ._core.class_inputs import class_indices, is_index, pick_along_axis, prepare_class_inputs
from ._core.ops import hinge as _relu
from ._core.precision import dtypes
from ._core.reduction import Reduction, finish, reduce_loss

# The public functions, in the order their docs page lists them (jaxloss and the
# page read this list).
__all__ = [
    "hinge_loss",
    "multiclass_hinge_loss",
    "sparsemax",
    "sparsemax_loss",
    "multiclass_sparsemax_loss",
    "make_fenchel_young_loss",
]


def _binary_inputs(fn, scores, targets, where, reduction):
    s = checks.float_array(fn, "scores", scores)
    t = checks.real_array(fn, "targets", targets)
    shape = checks.broadcast_shape(fn, ("scores", "targets"), (s, t))
    checks.reduction(fn, reduction)
    where = checks.where_mask(fn, where, shape)
    result_dtype, compute = dtypes(s, t)
    return s.astype(compute), t.astype(compute), where, result_dtype


def hinge_loss(
    scores: ArrayLike,
    targets: ArrayLike,
    *,
    margin: float = 1.0,
    squared: bool = False,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> jax.Array:
    r"""Binary hinge loss $\ell = \max(0, m - s\,t)$, or its square with ``squared=True``,
    for scores s and targets t in {-1, +1}. ``margin=0`` is the perceptron loss
    $\max(0, -s\,t)$.

    Args:
      scores: float decision values (not probabilities).
      targets: labels in {-1, +1} (any real values are used as they are), broadcastable
        with ``scores``. For {0, 1} labels pass ``2 * labels - 1``.
      margin: m >= 0.
      squared: square the hinge (Keras' ``SquaredHinge``); differentiable at the kink.
      where: optional boolean mask over the broadcast loss.
      reduction: ``'none'``, ``'mean'`` or ``'sum'``.

    Returns:
      ``'none'``: the broadcast elementwise loss; otherwise a scalar. In the inputs' dtype.

    Reference: Cortes & Vapnik, "Support-vector networks", 1995.

    Examples:
      >>> float(jaxloss.hinge_loss(jnp.array([2.0, 0.5, -1.0]), jnp.array([1.0, 1.0, 1.0])))
      0.8333333730697632
      >>> float(jaxloss.hinge_loss(jnp.array([0.5]), jnp.array([-1.0]), margin=0.0))  # perceptron
      0.5
    """
    fn = "hinge_loss"
    checks.python_number(fn, "margin", margin, low=0.0)
    s, t, where, result_dtype = _binary_inputs(fn, scores, targets, where, reduction)
    loss = _relu(margin - s * t)
    if squared:
        loss = loss * loss
    return finish(reduce_loss(loss, reduction, where=where), result_dtype)


def _position_where(fn, where, shape, axis):
    return checks.where_mask(fn, where, shape[:axis] + shape[axis + 1 :], "one loss per position")


def multiclass_hinge_loss(
    scores: ArrayLike,
    labels: ArrayLike,
    *,
    margin: float = 1.0,
    axis: int = -1,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> jax.Array:
    r"""Crammer-Singer multiclass hinge loss,
    $\ell = \max_c\big(s_c + m\,[c \ne y]\big) - s_y = \max\big(0,\ m + \max_{c\ne y} s_c -
    s_y\big)$; ``margin=0`` is the multiclass perceptron loss $\max_c s_c - s_y$.

    Unlike torch's ``multi_margin_loss`` (Weston-Watkins: a *sum* over the wrong classes,
    divided by C), only the most violating class counts.

    Args:
      scores: float array ``(..., C, ...)`` with the classes on ``axis``.
      labels: integer class indices, ``scores.shape`` without ``axis``.
      margin: m >= 0.
      axis: the class axis.
      where: optional boolean mask of positions.
      reduction: ``'none'``, ``'mean'`` or ``'sum'``.

    Returns:
      ``'none'``: one loss per position; otherwise a scalar.

    Under ``jit`` an out-of-range label gives nan; with concrete inputs it raises.

    Reference: Crammer & Singer, "On the algorithmic implementation of multiclass kernel-based
    vector machines", JMLR 2001.

    Examples:
      >>> scores = jnp.array([[2.0, 1.5, -1.0], [0.0, 3.0, 1.0]])
      >>> jaxloss.multiclass_hinge_loss(scores, jnp.array([0, 2]), reduction="none")
      Array([0.5, 3. ], dtype=float32)
    """
    fn = "multiclass_hinge_loss"
    checks.python_number(fn, "margin", margin, low=0.0)
    s, labels, axis, _, _, where, _ = prepare_class_inputs(
        fn, scores, labels, scores_name="scores", axis=axis, where=where
    )
    checks.reduction(fn, reduction)
    result_dtype, compute = dtypes(s)
    s = s.astype(compute)
    indices = class_indices(fn, labels, s.shape[axis], where=where)
    is_label = is_index(s.shape, indices.safe, axis)
    augmented = jnp.where(is_label, s, s + margin)
    loss = jnp.max(augmented, axis=axis) - pick_along_axis(s, indices.safe, axis)
    loss = loss * indices.label_weights(None, compute)  # nan for an out-of-range label
    return finish(reduce_loss(loss, reduction, where=indices.valid), result_dtype)


def sparsemax(x: ArrayLike, *, axis: int = -1) -> jax.Array:
    r"""Sparsemax (Martins & Astudillo 2016): the Euclidean projection of ``x`` onto the
    probability simplex along ``axis``, $\mathrm{sparsemax}(x) = \max(x - \tau, 0)$ with τ
    such that the result sums to 1. Unlike softmax, it gives exact zeros.

    Args:
      x: float scores.
      axis: the axis of the distribution.

    Returns:
      An array of ``x``'s shape and dtype, non-negative and summing to 1 along ``axis``.

    Examples:
      >>> jaxloss.sparsemax(jnp.array([2.0, 1.5, -1.0]))
      Array([0.75, 0.25, 0.  ], dtype=float32)
    """
    fn = "sparsemax"
    x = checks.float_array(fn, "x", x)
    if x.ndim == 0:
        raise ValueError(f"{fn}: `x` must have at least one dimension; got a scalar.")
    axis = checks.axis(fn, "x", axis, x.ndim)
    result_dtype, compute = dtypes(x)
    moved = jnp.moveaxis(x.astype(compute), axis, -1)
    return jnp.moveaxis(_sparsemax_last(moved), -1, axis).astype(result_dtype)


def _sparsemax_last(z):
    """Sparsemax along the last axis: the support is the k largest with
    1 + k z_(k) > Σ_{j<=k} z_(j), and τ = (Σ_{j<=k} z_(j) - 1) / k."""
    z = z - jax.lax.stop_gradient(jnp.max(z, axis=-1, keepdims=True))  # exact: τ shifts too
    ordered = -jnp.sort(-z, axis=-1)
    k = jnp.arange(1, z.shape[-1] + 1, dtype=z.dtype)
    cumulative = jnp.cumsum(ordered, axis=-1)
    in_support = 1 + k * ordered > cumulative
    support = jnp.sum(in_support, axis=-1, keepdims=True)
    total = jnp.take_along_axis(cumulative, support.astype(jnp.int32) - 1, axis=-1)
    tau = (total - 1) / support.astype(z.dtype)
    return jnp.maximum(z - tau, 0)


@jax.custom_jvp
def _sparsemax_fy(s, t):
    """Σ_c p_c s_c - ½‖p‖² - ⟨t, s⟩ + ½‖t‖² with p = sparsemax(s), along the last axis."""
    p = _sparsemax_last(s)
    return jnp.sum(p * (s - 0.5 * p) - t * (s - 0.5 * t), axis=-1)


@_sparsemax_fy.defjvp
def _sparsemax_fy_jvp(primals, tangents):
    # Fenchel-Young: ∂ℓ/∂s = sparsemax(s) - t, ∂ℓ/∂t = t - s (the argmax, p, is not differentiated).
    s, t = primals
    ds, dt = tangents
    p = _sparsemax_last(s)
    value = jnp.sum(p * (s - 0.5 * p) - t * (s - 0.5 * t), axis=-1)
    return value, jnp.sum((p - t) * ds + (t - s) * dt, axis=-1)


def sparsemax_loss(
    logits: ArrayLike,
    targets: ArrayLike,
    *,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> jax.Array:
    r"""Binary sparsemax loss (Martins & Astudillo 2016), elementwise:
    $\ell = \mathrm{sparse\_plus}(x) - t\,x$, where sparse_plus is 0 below -1, $(x+1)^2/4$
    on [-1, 1] and x above 1. The sparse counterpart of binary cross-entropy with logits: its
    gradient is $\mathrm{clip}((x+1)/2, 0, 1) - t$, exactly zero once the prediction is sure.

    Args:
      logits: float scores.
      targets: float or integer targets in [0, 1] (0/1 labels, or soft labels),
        broadcastable with ``logits``.
      where: optional boolean mask over the broadcast loss.
      reduction: ``'none'``, ``'mean'`` or ``'sum'``.

    Returns:
      ``'none'``: the broadcast elementwise loss; otherwise a scalar.

    Examples:
      >>> jaxloss.sparsemax_loss(jnp.array([2.0, 0.0, -3.0]), jnp.array([1, 1, 0]),
      ...                        reduction="none")
      Array([0.  , 0.25, 0.  ], dtype=float32)
    """
    fn = "sparsemax_loss"
    x, t, where, result_dtype = _binary_inputs(fn, logits, targets, where, reduction)
    in_range = (t >= 0) & (t <= 1)
    checks.value_check(
        fn,
        in_range,
        "`targets` must lie in [0, 1]; found {}.",
        checks.first_violation(t, in_range),
    )
    loss = jnp.where(in_range, jax.nn.sparse_plus(x) - t * x, jnp.nan)
    return finish(reduce_loss(loss, reduction, where=where), result_dtype)


def multiclass_sparsemax_loss(
    scores: ArrayLike,
    labels: ArrayLike,
    *,
    axis: int = -1,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> jax.Array:
    r"""Sparsemax loss (Martins & Astudillo 2016), the Fenchel-Young loss of the Gini
    entropy: with $p = \mathrm{sparsemax}(s)$ and target distribution t,
    $\ell = \langle p, s\rangle - \tfrac12\|p\|^2 - \langle t, s\rangle + \tfrac12\|t\|^2$,
    which for a class index y is $\langle p, s\rangle - \tfrac12\|p\|^2 - s_y + \tfrac12$.
    Its gradient is $p - t$; it is 0 exactly when sparsemax puts all mass on the target.

    Args:
      scores: float array ``(..., C, ...)`` with the classes on ``axis``.
      labels: integer class indices (``scores.shape`` without ``axis``) or float class
        probabilities of the scores' shape.
      axis: the class axis.
      where: optional boolean mask of positions.
      reduction: ``'none'``, ``'mean'`` or ``'sum'``.

    Returns:
      ``'none'``: one loss per position; otherwise a scalar.

    Examples:
      >>> scores = jnp.array([[2.0, 1.5, -1.0], [0.0, 3.0, 1.0]])
      >>> jaxloss.multiclass_sparsemax_loss(scores, jnp.array([0, 1]), reduction="none")
      Array([0.0625, 0.    ], dtype=float32)
    """
    fn = "multiclass_sparsemax_loss"
    s, labels, axis, kind, _, where, _ = prepare_class_inputs(
        fn, scores, labels, scores_name="scores", axis=axis, where=where, allow_probabilities=True
    )
    checks.reduction(fn, reduction)
    result_dtype, compute = dtypes(s, labels if kind == "probability" else None)
    s = jnp.moveaxis(s.astype(compute), axis, -1)
    if kind == "index":
        indices = class_indices(fn, labels, s.shape[-1], where=where)
        t = jax.nn.one_hot(indices.safe, s.shape[-1], dtype=compute)
        loss = _sparsemax_fy(s, t) * indices.label_weights(None, compute)
        return finish(reduce_loss(loss, reduction, where=indices.valid), result_dtype)
    loss = _sparsemax_fy(s, jnp.moveaxis(labels.astype(compute), axis, -1))
    return finish(reduce_loss(loss, reduction, where=where), result_dtype)


def make_fenchel_young_loss(
    max_fn: Callable[[jax.Array], jax.Array],
) -> Callable[..., jax.Array]:
    r"""The Fenchel-Young loss of a regularised max (Blondel et al. 2020):
    $\ell(s, t) = \mathrm{max\_fn}(s) - \langle t, s\rangle$ along the last axis.

    ``max_fn`` maps one score vector to a scalar, a convex conjugate $\Omega^*$:
    ``jax.nn.logsumexp`` gives the softmax cross-entropy up to the targets' entropy, ``jnp.max``
    the perceptron. The gradient in s is $\nabla\mathrm{max\_fn}(s) - t$, by autodiff of
    ``max_fn``. For the sparsemax one use `multiclass_sparsemax_loss`, which adds
    $\tfrac12\|t\|^2$ so that the minimum is 0.

    Args:
      max_fn: a function of one 1-D score vector returning a scalar; it is vectorised over
        the leading axes.

    Returns:
      ``loss(scores, targets, *, where=None, reduction="mean")``: scores and targets of the
      same shape ``(..., C)``, ``where`` a mask of positions (``scores.shape[:-1]``); 'none'
      gives one loss per position.

    Examples:
      >>> fy = jaxloss.make_fenchel_young_loss(jax.nn.logsumexp)
      >>> scores = jnp.array([[2.0, 0.5, -1.0]])
      >>> round(float(fy(scores, jnp.array([[1.0, 0.0, 0.0]]))), 4)  # = cross-entropy
      0.2413
    """
    if not callable(max_fn):
        raise TypeError(f"make_fenchel_young_loss: `max_fn` must be callable; got {max_fn!r}.")
    vector_max = jnp.vectorize(max_fn, signature="(n)->()")

    def fenchel_young_loss(
        scores: ArrayLike,
        targets: ArrayLike,
        *,
        where: ArrayLike | None = None,
        reduction: Reduction = "mean",
    ) -> jax.Array:
        fn = "fenchel_young_loss"
        s = checks.float_array(fn, "scores", scores)
        t = checks.float_array(fn, "targets", targets)
        if s.ndim == 0:
            raise ValueError(f"{fn}: `scores` must have a class axis; got a scalar.")
        checks.shapes_equal(fn, "scores", s, "targets", t)
        checks.reduction(fn, reduction)
        where = _position_where(fn, where, s.shape, s.ndim - 1)
        result_dtype, compute = dtypes(s, t)
        s, t = s.astype(compute), t.astype(compute)
        loss = vector_max(s) - jnp.sum(t * s, axis=-1)
        return finish(reduce_loss(loss, reduction, where=where), result_dtype)

    return fenchel_young_loss
