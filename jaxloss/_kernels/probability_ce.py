"""Cross-entropy against class probabilities, -Σ_c w_c q'_c f(log p_c), with label smoothing,
class weights and a class mask: the probability-label path of `jaxloss.cross_entropy` and of
the focal and Poly-1 losses (their `per_class` f)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from .._core import checks
from .._core.class_inputs import along_axis


def probability_cross_entropy(
    fn, logits, targets, *, axis, weight, label_smoothing, where, class_mask, per_class=None
):
    """Unreduced -Σ_c w_c q'_c f(log p_c) over the included classes, q' the smoothed targets
    and f = `per_class` (the identity for cross-entropy; focal and poly-1 weight log p_c)."""
    if class_mask is None:
        return _probability_terms(logits, targets, axis, weight, label_smoothing, None, per_class)
    mask = along_axis(class_mask, logits.ndim, axis) if class_mask.ndim == 1 else class_mask
    logits = jnp.where(mask, logits, -jnp.inf)
    # Probability mass on an excluded class is a label on it: an error, or nan under jit.
    fine = (targets == 0) | mask
    if where is not None:
        fine = fine | ~jnp.expand_dims(where, axis)
    checks.value_check(
        fn,
        fine,
        "class-probability `labels` put mass {} on a class that `class_mask` excludes; "
        "the targets must be 0 there.",
        checks.first_violation(targets, fine),
    )
    loss = _probability_terms(logits, targets, axis, weight, label_smoothing, mask, per_class)
    return jnp.where(jnp.all(fine, axis=axis), loss, jnp.asarray(jnp.nan, loss.dtype))


def _probability_terms(logits, targets, axis, weight, label_smoothing, mask, per_class=None):
    """-Σ_c m_c w_c q'_c f(log p_c): the smoothed targets q' spread ε over the included
    classes."""
    num_classes = logits.shape[axis]
    log_probs = jax.nn.log_softmax(logits, axis=axis)
    if not checks.known_zero(label_smoothing):
        included = num_classes if mask is None else jnp.sum(mask, axis=axis, keepdims=True)
        targets = targets * (1 - label_smoothing) + label_smoothing / included
    # 0·log 0 = 0: a class without target mass whose logit is -inf (or an excluded class)
    # adds nothing; zeroing log p there first keeps 0·inf out of the gradient too. Elsewhere
    # the targets' gradient stays -w log p, also where a target is 0.
    absent = (targets == 0) & jnp.isneginf(log_probs)
    if mask is not None:
        absent = absent | ~mask
    log_probs = jnp.where(absent, jnp.zeros((), log_probs.dtype), log_probs)
    if per_class is not None:
        log_probs = per_class(log_probs)
    weighted = jnp.where(absent, jnp.zeros((), log_probs.dtype), log_probs * targets)
    if weight is not None:
        weighted = weighted * along_axis(weight, logits.ndim, axis)
    return -jnp.sum(weighted, axis=axis)
