"""Classification criteria: cross-entropy, NLL, KL divergence, binary cross-entropy (on
probabilities and on logits), and the margin / multi-label losses.

Conventions: the class axis is the last one by default (``axis=-1``; torch uses 1), options are
keyword-only, defaults match torch's (``ignore_index=-100``, ``reduction="mean"``), and ``where``
masks out elements of the unreduced loss (they contribute nothing and are not counted by 'mean').
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from . import _checks
from ._ops import strict_hinge
from ._precision import dtypes, upcast
from ._reduction import finish, reduce_loss
from ._softmax_ce import softmax_cross_entropy_rows

_ARGMAX_HINT = (
    " It looks like `logits` holds one value per sample (an already argmax'ed prediction or a "
    "single binary logit): class scores need a class axis, e.g. shape (N, C); for one logit per "
    "sample use binary_cross_entropy_with_logits with float labels."
)
_ONE_HOT_HINT = (
    " Integer `labels` with the logits' own shape look like one-hot encodings: pass class indices "
    "(labels.argmax(axis)) or class probabilities as floats (labels.astype(logits.dtype))."
)
_FLOAT_INDEX_HINT = (
    " Floating-point `labels` are read as class probabilities, which need the logits' shape; "
    "these have the shape of class indices, so cast them to an integer dtype."
)


def _label_kind(fn, logits, labels, axis, *, allow_probabilities):
    """Validates labels against logits; returns 'index' or 'probability'."""
    index_shape = logits.shape[:axis] + logits.shape[axis + 1:]
    if jnp.issubdtype(labels.dtype, jnp.integer):
        if labels.shape == index_shape:
            return "index"
        hint = ""
        if logits.ndim == 1 and labels.ndim == 1:
            hint = _ARGMAX_HINT
        elif labels.shape == logits.shape:
            hint = _ONE_HOT_HINT
        raise ValueError(
            f"{fn}: integer `labels` must hold one class index per position, shape "
            f"{list(index_shape)} for `logits` of shape {list(logits.shape)} (class axis {axis}); "
            f"got {list(labels.shape)}.{hint}"
        )
    if jnp.issubdtype(labels.dtype, jnp.floating):
        if not allow_probabilities:
            raise TypeError(
                f"{fn}: `labels` must hold integer class indices; got {_checks.describe(labels)}."
                " (Class-probability targets are supported by cross_entropy.)"
            )
        if labels.shape == logits.shape:
            return "probability"
        hint = _FLOAT_INDEX_HINT if labels.shape == index_shape else ""
        raise ValueError(
            f"{fn}: floating-point `labels` are class probabilities and must have the shape of "
            f"`logits` {list(logits.shape)}; got {list(labels.shape)}.{hint}"
        )
    raise TypeError(
        f"{fn}: `labels` must be integer class indices or floating-point class probabilities; "
        f"got {_checks.describe(labels)}."
    )


def _along_axis(per_class, ndim, axis):
    """Reshapes a (C,) vector to broadcast along `axis` of an ndim-dimensional array."""
    return per_class.reshape([-1 if d == axis else 1 for d in range(ndim)])


def _maybe_nonzero(option):
    """False only for an option known to be 0 (a traced option under jit is assumed nonzero)."""
    return not (_checks.is_concrete(option) and option == 0)


def _check_class_indices(fn, labels, num_classes, ignore_index, valid):
    in_range = (labels >= 0) & (labels < num_classes)
    ok = in_range | ~valid
    allowed = f"[0, {num_classes})" + (
        f" or ignore_index={ignore_index}" if ignore_index is not None else "")
    _checks.value_check(
        fn, ok, f"class index {{}} in `labels` is out of range; expected {allowed}.",
        _checks.first_violation(labels, ok))


def _index_loss(fn, log_probs, labels, *, axis, weight, ignore_index, where, reduction):
    """Weighted NLL of class indices (torch's exact weighting): -w[y]·logp[y] per position;
    ignored positions give 0; 'mean' divides by Σ w[y] over the positions that count."""
    num_classes = log_probs.shape[axis]
    valid = jnp.ones(labels.shape, bool)
    if ignore_index is not None:
        valid = labels != ignore_index
    if where is not None:
        valid = valid & where  # masked positions may hold anything (e.g. padding)
    _check_class_indices(fn, labels, num_classes, ignore_index, valid)
    safe_labels = jnp.where(valid, labels, 0)
    # Out-of-range labels under jit gather nan ("fill"), so a bad label cannot give a plausible loss.
    picked = jnp.take_along_axis(
        log_probs, jnp.expand_dims(safe_labels, axis), axis, mode="fill", fill_value=jnp.nan
    ).squeeze(axis)
    if weight is None:
        label_weight = jnp.ones((), log_probs.dtype)
    else:
        label_weight = weight.at[safe_labels].get(mode="fill", fill_value=jnp.nan)
    loss = -label_weight * picked
    normalizer = jnp.broadcast_to(label_weight, loss.shape)
    return reduce_loss(loss, reduction, where=valid, normalizer=normalizer)


def _fast_index_cross_entropy(fn, logits, labels, *, axis, weight, ignore_index, label_smoothing,
                              where, reduction, compute):
    """Cross-entropy of class indices through the custom-VJP row kernel (_softmax_ce): the
    same weighting and normalisation as _index_loss, without materialising log-probabilities."""
    num_classes = logits.shape[axis]
    valid = jnp.ones(labels.shape, bool)
    if ignore_index is not None:
        valid = labels != ignore_index
    if where is not None:
        valid = valid & where  # masked positions may hold anything (e.g. padding)
    _check_class_indices(fn, labels, num_classes, ignore_index, valid)
    in_range = (labels >= 0) & (labels < num_classes)
    safe_labels = jnp.where(valid & in_range, labels, 0).astype(jnp.int32)
    if weight is None:
        label_weight = jnp.ones(labels.shape, compute)
    else:
        label_weight = weight[safe_labels]
    # Under jit an out-of-range label cannot raise: its loss is nan, never a plausible number.
    label_weight = jnp.where(valid & ~in_range, jnp.nan, label_weight)
    rows = jnp.moveaxis(logits, axis, -1).reshape(-1, num_classes)
    smooth = _maybe_nonzero(label_smoothing)
    loss = softmax_cross_entropy_rows(
        rows, safe_labels.reshape(-1), valid.reshape(-1), label_weight.reshape(-1), weight,
        jnp.asarray(label_smoothing, compute), smooth).reshape(labels.shape)
    normalizer = None if weight is None else label_weight
    return reduce_loss(loss, reduction, where=valid, normalizer=normalizer)


def _prepare_class_inputs(fn, scores, scores_name, labels, axis, weight, where, label_smoothing,
                          allow_probabilities):
    scores = _checks.float_array(fn, scores_name, scores)
    if scores.ndim == 0:
        raise ValueError(
            f"{fn}: `{scores_name}` must have a class axis (at least 1 dimension); got a scalar.")
    labels = _checks.as_array(fn, "labels", labels)
    axis = _checks.axis(fn, scores_name, axis, scores.ndim)
    kind = _label_kind(fn, scores, labels, axis, allow_probabilities=allow_probabilities)
    weight = _checks.class_weight(fn, weight, scores.shape[axis])
    _checks.python_number(fn, "label_smoothing", label_smoothing, low=0.0, high=1.0)
    position_shape = scores.shape[:axis] + scores.shape[axis + 1:]
    where = _checks.where_mask(fn, where, position_shape, "one loss per position")
    return scores, labels, axis, kind, weight, where


def cross_entropy(logits, labels, *, axis=-1, weight=None, ignore_index=-100,
                  label_smoothing=0.0, where=None, reduction="mean"):
    r"""Cross-entropy between class logits and class indices or class probabilities.

    With integer ``labels`` (class indices), per position

    .. math:: \ell = -(1-\varepsilon)\,w_y \log p_y - \tfrac{\varepsilon}{C}\sum_c w_c \log p_c,
       \quad p = \mathrm{softmax}(\text{logits}),

    positions whose label equals ``ignore_index`` (or where ``where`` is False) give 0, and
    'mean' divides the sum by :math:`\sum w_y` over the positions that count (nan when none do).
    With floating ``labels`` of the logits' shape (class probabilities ``q``), per position
    :math:`\ell = -\sum_c w_c\, q'_c \log p_c` with :math:`q' = (1-\varepsilon)q + \varepsilon/C`,
    and 'mean' divides by the number of positions. This is exactly torch's ``cross_entropy``.

    Args:
      logits: float array ``(..., C, ...)`` with the classes on ``axis`` (default last);
        ``(C,)`` is one unbatched sample.
      labels: integer indices of shape ``logits.shape`` without ``axis``, or float class
        probabilities of the logits' shape.
      axis: the class axis of ``logits``.
      weight: optional ``(C,)`` class weights.
      ignore_index: label value that is ignored (index labels only); ``None`` ignores nothing.
      label_smoothing: ε in [0, 1].
      where: optional boolean mask over positions (``logits.shape`` without ``axis``).
      reduction: 'none' | 'mean' | 'sum'.

    Under ``jit``, an out-of-range class index gives a nan loss (use :func:`jaxloss.checked` to
    raise instead); with concrete inputs it raises ``ValueError``.

    Example:
      >>> cross_entropy(jnp.array([[2.0, 0.5, -1.0]]), jnp.array([0]), label_smoothing=0.1)
    """
    fn = "cross_entropy"
    logits, labels, axis, kind, weight, where = _prepare_class_inputs(
        fn, logits, "logits", labels, axis, weight, where, label_smoothing, True)
    _checks.reduction(fn, reduction)
    result_dtype, compute = dtypes(logits, labels if kind == "probability" else None)
    weight = upcast(weight, compute)
    if kind == "index":
        # 16-bit logits go in as they are: the kernel accumulates in float32 and returns the
        # gradient in their dtype, without a float32 copy of the logits.
        loss = _fast_index_cross_entropy(
            fn, logits, labels, axis=axis, weight=weight, ignore_index=ignore_index,
            label_smoothing=label_smoothing, where=where, reduction=reduction, compute=compute)
        return finish(loss, result_dtype)
    log_probs = jax.nn.log_softmax(logits.astype(compute), axis=axis)
    if ignore_index is not None and _checks.is_concrete(ignore_index) and ignore_index >= 0:
        # torch: "ignore_index is not supported for floating point target" (its default -100 is ok).
        raise ValueError(
            f"{fn}: `ignore_index`={ignore_index} cannot be used with class-probability labels; "
            "mask positions with `where` instead.")
    num_classes = logits.shape[axis]
    targets = labels.astype(compute)
    if _maybe_nonzero(label_smoothing):
        targets = targets * (1 - label_smoothing) + label_smoothing / num_classes
    weighted = log_probs * targets
    if weight is not None:
        weighted = weighted * _along_axis(weight, logits.ndim, axis)
    loss = -jnp.sum(weighted, axis=axis)
    return finish(reduce_loss(loss, reduction, where=where), result_dtype)


def nll_loss(log_probs, labels, *, axis=-1, weight=None, ignore_index=-100, where=None,
             reduction="mean"):
    r"""Negative log-likelihood of class indices: :math:`\ell = -w_y \cdot \text{log\_probs}_y`.

    ``log_probs`` are log-probabilities with classes on ``axis`` (e.g. from
    ``jax.nn.log_softmax``); ``labels`` integer indices of ``log_probs.shape`` without ``axis``.
    Positions labelled ``ignore_index`` or masked by ``where`` give 0; 'mean' divides by
    :math:`\sum w_y` over the positions that count (nan when none do), as torch's ``nll_loss``.

    Example:
      >>> nll_loss(jax.nn.log_softmax(jnp.array([[2.0, 0.5, -1.0]])), jnp.array([0]))
    """
    fn = "nll_loss"
    log_probs, labels, axis, _, weight, where = _prepare_class_inputs(
        fn, log_probs, "log_probs", labels, axis, weight, where, 0.0, False)
    _checks.reduction(fn, reduction)
    result_dtype, compute = dtypes(log_probs)
    loss = _index_loss(fn, log_probs.astype(compute), labels, axis=axis,
                       weight=upcast(weight, compute), ignore_index=ignore_index,
                       where=where, reduction=reduction)
    return finish(loss, result_dtype)


def kl_div(log_predictions, targets, *, log_target=False, where=None, reduction="mean"):
    r"""Pointwise Kullback-Leibler divergence, as torch's ``kl_div``.

    :math:`\ell = t\,(\log t - x)` (``xlogy`` so that t = 0 gives 0), or with
    ``log_target=True`` :math:`\ell = e^{t}(t - x)`, where x are log-predictions.
    'mean' averages over every element (torch's default, which is *not* the KL divergence);
    'batchmean' divides the sum by the size of the first axis, which is the true KL for
    distributions along the remaining axes.

    Example:
      >>> kl_div(jnp.log(jnp.array([[0.5, 0.5]])), jnp.array([[0.9, 0.1]]), reduction="batchmean")
    """
    fn = "kl_div"
    x = _checks.float_array(fn, "log_predictions", log_predictions)
    t = _checks.float_array(fn, "targets", targets)
    shape = _checks.broadcast_shape(fn, ("log_predictions", "targets"), (x, t))
    _checks.reduction(fn, reduction, ("none", "mean", "sum", "batchmean"))
    where = _checks.where_mask(fn, where, shape)
    result_dtype, compute = dtypes(x, t)
    x, t = x.astype(compute), t.astype(compute)
    if log_target:
        loss = jnp.exp(t) * (t - x)
    else:
        loss = jax.scipy.special.xlogy(t, t) - t * x
    batch = x.shape[0] if x.ndim else None
    return finish(reduce_loss(loss, reduction, where=where, batch_size=batch), result_dtype)


@jax.custom_vjp
def _bce_terms(probs, labels):
    # torch clamps each log at -100 so that probabilities of exactly 0 or 1 give finite losses.
    log_p = jnp.maximum(jnp.log(probs), -100.0)
    log_1mp = jnp.maximum(jnp.log1p(-probs), -100.0)
    return (labels - 1) * log_1mp - labels * log_p


# torch's kernel declares EPSILON = 1e-12 as a C++ float, so even float64 sees float32(1e-12).
_BCE_GRAD_EPSILON = float(np.float32(1e-12))


def _bce_fwd(probs, labels):
    return _bce_terms(probs, labels), (probs, labels)


def _bce_bwd(residuals, g):
    probs, labels = residuals
    # torch's backward: (p - y) / max(p(1-p), 1e-12), not the derivative of the clamped logs.
    d_probs = g * (probs - labels) / jnp.maximum((1 - probs) * probs, _BCE_GRAD_EPSILON)
    d_labels = g * (jnp.log1p(-probs) - jnp.log(probs))
    return d_probs, d_labels


_bce_terms.defvjp(_bce_fwd, _bce_bwd)


def binary_cross_entropy(probs, labels, *, weight=None, where=None, reduction="mean"):
    r"""Binary cross-entropy on probabilities, as torch's ``binary_cross_entropy``.

    :math:`\ell = -w\,[y \log p + (1-y)\log(1-p)]` with each log clamped at -100 (torch's rule,
    so p = 0 or 1 gives a finite loss) and torch's gradient
    :math:`(p-y)/\max(p(1-p), 10^{-12})`. ``labels`` must have the shape of ``probs``;
    ``weight`` broadcasts to it. 'mean' divides by the number of elements. Prefer
    :func:`binary_cross_entropy_with_logits`, which is stable without clamping.

    Example:
      >>> binary_cross_entropy(jnp.array([0.9, 0.2]), jnp.array([1.0, 0.0]))
    """
    fn = "binary_cross_entropy"
    p = _checks.float_array(fn, "probs", probs)
    y = _checks.float_array(fn, "labels", labels, " Cast 0/1 labels to a float dtype.")
    _checks.shapes_equal(fn, "probs", p, "labels", y)
    _checks.reduction(fn, reduction)
    if weight is not None:
        weight = _checks.float_array(fn, "weight", weight)
        _checks.broadcasts_to(fn, "weight", weight, p.shape, "`probs`")
    where = _checks.where_mask(fn, where, p.shape)
    p_ok = (p >= 0) & (p <= 1)
    _checks.value_check(fn, p_ok, "every element of `probs` must be in [0, 1]; found {}.",
                        _checks.first_violation(p, p_ok))
    y_ok = (y >= 0) & (y <= 1)
    _checks.value_check(fn, y_ok, "every element of `labels` must be in [0, 1]; found {}.",
                        _checks.first_violation(y, y_ok))
    result_dtype, compute = dtypes(p, y)
    loss = _bce_terms(p.astype(compute), y.astype(compute))
    if weight is not None:
        loss = loss * weight.astype(compute)
    return finish(reduce_loss(loss, reduction, where=where), result_dtype)


def binary_cross_entropy_with_logits(logits, labels, *, weight=None, pos_weight=None, where=None,
                                     reduction="mean"):
    r"""Binary cross-entropy on logits, as torch's ``binary_cross_entropy_with_logits``.

    :math:`\ell = w\,[(1-y)\,x - (1 + (\text{pos\_weight}-1)\,y)\log\sigma(x)]`, computed with
    ``log_sigmoid`` so logits of any magnitude are exact. ``labels`` must have the logits' shape;
    ``weight`` and ``pos_weight`` (e.g. one per class, shape ``(C,)``) broadcast to it.

    Example:
      >>> binary_cross_entropy_with_logits(jnp.array([3.0, -1.0]), jnp.array([1.0, 0.0]))
    """
    fn = "binary_cross_entropy_with_logits"
    x = _checks.float_array(fn, "logits", logits)
    y = _checks.float_array(fn, "labels", labels, " Cast 0/1 labels to a float dtype.")
    _checks.shapes_equal(fn, "logits", x, "labels", y)
    _checks.reduction(fn, reduction)
    for name, extra in (("weight", weight), ("pos_weight", pos_weight)):
        if extra is not None:
            _checks.broadcasts_to(fn, name, _checks.float_array(fn, name, extra), x.shape,
                                  "`logits`")
    where = _checks.where_mask(fn, where, x.shape)
    result_dtype, compute = dtypes(x, y)
    x, y = x.astype(compute), y.astype(compute)
    log_weight = 1.0 if pos_weight is None else (upcast(jnp.asarray(pos_weight), compute) - 1) * y + 1
    loss = (1 - y) * x - log_weight * jax.nn.log_sigmoid(x)
    if weight is not None:
        loss = loss * upcast(jnp.asarray(weight), compute)
    return finish(reduce_loss(loss, reduction, where=where), result_dtype)


def soft_margin_loss(scores, labels, *, where=None, reduction="mean"):
    r"""Two-class logistic loss :math:`\ell = \log(1 + e^{-y x})` for labels y in {-1, 1}.

    Computed as ``softplus(-y·x)``, which stays finite where torch's ``log1p(exp(-y·x))``
    overflows (|x| > 88 in float32). ``labels`` broadcast against ``scores``.

    Example:
      >>> soft_margin_loss(jnp.array([2.0, -1.0]), jnp.array([1.0, -1.0]))
    """
    fn = "soft_margin_loss"
    x = _checks.float_array(fn, "scores", scores)
    y = _checks.real_array(fn, "labels", labels)
    shape = _checks.broadcast_shape(fn, ("scores", "labels"), (x, y))
    _checks.reduction(fn, reduction)
    where = _checks.where_mask(fn, where, shape)
    result_dtype, compute = dtypes(x, y)
    loss = jax.nn.softplus(-y.astype(compute) * x.astype(compute))
    return finish(reduce_loss(loss, reduction, where=where), result_dtype)


def multilabel_soft_margin_loss(scores, labels, *, axis=-1, weight=None, where=None,
                                reduction="mean"):
    r"""Multi-label one-versus-all logistic loss, averaged over classes.

    Per sample :math:`\ell = -\frac1C\sum_c w_c\,[y_c\log\sigma(x_c) + (1-y_c)\log\sigma(-x_c)]`
    with the classes on ``axis`` (torch uses the last axis too). ``labels`` (0/1 or soft) broadcast
    to ``scores``; ``weight`` broadcasts to ``scores`` (typically ``(C,)``). ``where`` masks
    samples (``scores.shape`` without ``axis``).

    Example:
      >>> multilabel_soft_margin_loss(jnp.array([[2.0, -1.0, 0.5]]), jnp.array([[1, 0, 1]]))
    """
    fn = "multilabel_soft_margin_loss"
    x = _checks.float_array(fn, "scores", scores)
    if x.ndim == 0:
        raise ValueError(f"{fn}: `scores` must have a class axis; got a scalar.")
    y = _checks.real_array(fn, "labels", labels)
    _checks.broadcasts_to(fn, "labels", y, x.shape, "`scores`")
    axis = _checks.axis(fn, "scores", axis, x.ndim)
    if weight is not None:
        weight = _checks.float_array(fn, "weight", weight)
        _checks.broadcasts_to(fn, "weight", weight, x.shape, "`scores`")
    _checks.reduction(fn, reduction)
    where = _checks.where_mask(fn, where, x.shape[:axis] + x.shape[axis + 1:],
                               "one loss per sample")
    result_dtype, compute = dtypes(x, y)
    x, y = x.astype(compute), y.astype(compute)
    loss = -(y * jax.nn.log_sigmoid(x) + (1 - y) * jax.nn.log_sigmoid(-x))
    if weight is not None:
        loss = loss * weight.astype(compute)
    loss = jnp.sum(loss, axis=axis) / x.shape[axis]
    return finish(reduce_loss(loss, reduction, where=where), result_dtype)


def multi_margin_loss(scores, labels, *, axis=-1, p=1, margin=1.0, weight=None, where=None,
                      reduction="mean"):
    r"""Multi-class hinge loss, as torch's ``multi_margin_loss``.

    Per sample with label y: :math:`\ell = \frac1C\sum_{i\ne y} w_y\,\max(0,\ \text{margin}
    - x_y + x_i)^p`, p in {1, 2}. ``labels`` are integer indices of ``scores.shape`` without
    ``axis``; 'mean' is the plain mean over samples (weights do not divide).

    Example:
      >>> multi_margin_loss(jnp.array([[0.1, 0.2, 0.4, 0.8]]), jnp.array([3]))
    """
    fn = "multi_margin_loss"
    x, labels, axis, _, weight, where = _prepare_class_inputs(
        fn, scores, "scores", labels, axis, weight, where, 0.0, False)
    if p not in (1, 2) or isinstance(p, bool):
        raise ValueError(f"{fn}: `p` must be 1 or 2; got {p!r}.")
    _checks.python_number(fn, "margin", margin)
    _checks.reduction(fn, reduction)
    num_classes = x.shape[axis]
    counted = jnp.ones(labels.shape, bool) if where is None else where
    _check_class_indices(fn, labels, num_classes, None, counted)
    result_dtype, compute = dtypes(x)
    x = x.astype(compute)
    expanded = jnp.expand_dims(labels, axis)
    target_score = jnp.take_along_axis(x, expanded, axis, mode="fill", fill_value=jnp.nan)
    # torch's kernel counts a term only when z > 0: zero gradient at the kink.
    hinge = strict_hinge(margin - target_score + x)
    if p == 2:
        hinge = hinge * hinge
    class_ids = _along_axis(jnp.arange(num_classes), x.ndim, axis)
    hinge = jnp.where(class_ids == expanded, jnp.zeros((), compute), hinge)
    loss = jnp.sum(hinge, axis=axis) / num_classes
    if weight is not None:
        loss = loss * weight.astype(compute).at[labels].get(mode="fill", fill_value=jnp.nan)
    return finish(reduce_loss(loss, reduction, where=where), result_dtype)


def _multilabel_margin_row(x, y):
    """One sample of multilabel_margin_loss in O(C log C), without materialising all C² pairs.

    For a listed target j, sum over non-targets i of max(0, 1 - x_j + x_i) is
    count·(1 - x_j) + (sum of those x_i) over the non-targets with x_i > x_j - 1 (strictly, as
    torch's kernel tests z > 0): a binary search in the sorted non-target scores and a prefix sum.
    """
    num_classes = x.shape[-1]
    listed = jnp.cumprod(y != -1).astype(bool)  # targets before the first -1
    safe_y = jnp.where(listed, y, 0)
    is_target = jnp.zeros(num_classes, bool).at[safe_y].max(listed)
    # Targets sort below every threshold, so only non-targets are ever counted.
    ascending = jnp.sort(jnp.where(is_target, -jnp.inf, x))
    descending = ascending[::-1]
    top_sums = jnp.cumsum(jnp.where(jnp.isfinite(descending), descending, 0.0))
    target_scores = jnp.take_along_axis(x, safe_y, 0, mode="fill", fill_value=jnp.nan)
    above = num_classes - jnp.searchsorted(ascending, target_scores - 1, side="right")
    top_sum = jnp.where(above > 0, top_sums[jnp.maximum(above - 1, 0)], 0.0)
    per_target = above * (1 - target_scores) + top_sum
    return jnp.sum(jnp.where(listed, per_target, 0.0)) / num_classes


def multilabel_margin_loss(scores, labels, *, axis=-1, where=None, reduction="mean"):
    r"""Multi-label hinge loss, as torch's ``multilabel_margin_loss``.

    ``labels`` has the shape of ``scores``: per sample, the target classes come first and the
    list ends at the first -1 (the rest is ignored). With T the target set,
    :math:`\ell = \frac1C\sum_{j\in T}\sum_{i\notin T}\max(0,\ 1 - (x_j - x_i))`,
    computed per sample in O(C log C) time and O(C) memory (sort, binary search, prefix sums).

    Example:
      >>> multilabel_margin_loss(jnp.array([[0.1, 0.2, 0.4, 0.8]]), jnp.array([[3, 0, -1, 1]]))
    """
    fn = "multilabel_margin_loss"
    x = _checks.float_array(fn, "scores", scores)
    if x.ndim == 0:
        raise ValueError(f"{fn}: `scores` must have a class axis; got a scalar.")
    y = _checks.int_array(fn, "labels", labels)
    _checks.shapes_equal(fn, "scores", x, "labels", y,
                         " (Each row lists target classes and ends with -1.)")
    axis = _checks.axis(fn, "scores", axis, x.ndim)
    _checks.reduction(fn, reduction)
    where = _checks.where_mask(fn, where, x.shape[:axis] + x.shape[axis + 1:],
                               "one loss per sample")
    num_classes = x.shape[axis]
    ok = (y >= -1) & (y < num_classes)
    _checks.value_check(fn, ok, f"label {{}} is out of range; expected [-1, {num_classes}).",
                        _checks.first_violation(y, ok))
    result_dtype, compute = dtypes(x)
    x = jnp.moveaxis(x.astype(compute), axis, -1)
    y = jnp.moveaxis(y, axis, -1)
    rows_x, rows_y = x.reshape(-1, num_classes), y.reshape(-1, num_classes)
    loss = jax.vmap(_multilabel_margin_row)(rows_x, rows_y).reshape(x.shape[:-1])
    return finish(reduce_loss(loss, reduction, where=where), result_dtype)
