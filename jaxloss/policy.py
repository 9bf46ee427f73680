r"""Policy-gradient losses for reinforcement learning of language models: the GRPO family
(GRPO, BNPO, Dr. GRPO, DAPO, CISPO, SAPO, LUSPO, VESPO) as pure functions of per-token
log-probabilities, and the group advantages they take.

The per-token log-probabilities come from the fused head (`jaxloss.linear_log_probs`, whose
entropies feed ``top_entropy_quantile``), so each loss is written once and runs on the head
without its logits, sharded and under every transformation. The formulas are TRL 1.16's
(``trl/trainer/grpo_trainer.py``, ``GRPOTrainer._compute_loss`` and its advantages;
``trl/trainer/rloo_trainer.py`` for RLOO); Liger-Kernel 0.8.5's ``LigerFusedLinearGRPOFunction``
computes the same for every type it has.
"""

from __future__ import annotations

import math
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax
from jax.typing import ArrayLike

from ._core import checks
from ._core.sharding import whole

__all__ = ["policy_loss", "group_advantages", "rloo_advantages"]

PolicyLossType = Literal["grpo", "bnpo", "dr_grpo", "dapo", "cispo", "sapo", "luspo", "vespo"]
POLICY_LOSS_TYPES: tuple[str, ...] = PolicyLossType.__args__  # type: ignore[attr-defined]
_CLIPPED_TYPES = ("grpo", "bnpo", "dr_grpo", "dapo", "luspo")


class PolicyMetrics(NamedTuple):
    """What a GRPO trainer logs, without gradient, as global means over the counted tokens
    (over the sequences with sequence-level importance sampling):

    - ``clip_ratio_low``, ``clip_ratio_high``, ``clip_ratio_region``: the fractions clipped
      below (ratio < 1 - ε_low with a negative advantage), above (ratio > 1 + ε_high with a
      positive one) and either; for ``"cispo"`` the high one is its clipped fraction (ratio >
      ε_high with a positive advantage); 0 for ``"sapo"`` and ``"vespo"``;
    - ``mean_ratio``: the mean importance ratio π/π_old;
    - ``kl``: the mean per-token KL estimate (0 without ``beta``);
    - ``entropy``: the mean entropy of the counted tokens (nan when none was given).
    """

    clip_ratio_low: jax.Array
    clip_ratio_high: jax.Array
    clip_ratio_region: jax.Array
    mean_ratio: jax.Array
    kl: jax.Array
    entropy: jax.Array


class PolicyOutput(NamedTuple):
    """A policy-gradient loss and its `PolicyMetrics`."""

    loss: jax.Array
    metrics: PolicyMetrics


def _token_array(fn, name, value, shape=None):
    array = checks.float_array(fn, name, value)
    if shape is not None and array.shape != tuple(shape):
        raise ValueError(
            f"{fn}: `{name}` must have the log-probabilities' shape {list(shape)}; got "
            f"{list(array.shape)}."
        )
    return array


def _high_entropy_mask(entropies, mask, quantile, axis_name):
    """TRL's ``get_high_entropy_mask``: the counted tokens whose entropy is at least the
    (1 - ``quantile``) quantile of every counted token's (across ``axis_name`` too), by linear
    interpolation as torch.quantile."""
    values = lax.stop_gradient(entropies)
    if axis_name is not None:  # every device's counted entropies, the others padded with nan
        gathered = lax.all_gather(jnp.where(mask, values, jnp.nan), axis_name, tiled=True)
    else:  # on an Explicit mesh, gathered whole (the quantile sorts)
        gathered = whole(jnp.where(mask, values, jnp.nan))
    threshold = jnp.nanquantile(gathered.reshape(-1), 1 - quantile)
    return mask & (jnp.where(mask, values, 0) >= threshold)


def policy_loss(
    logps: ArrayLike,
    advantages: ArrayLike,
    mask: ArrayLike,
    old_logps: ArrayLike | None = None,
    ref_logps: ArrayLike | None = None,
    *,
    loss_type: PolicyLossType = "dapo",
    epsilon_low: float = 0.2,
    epsilon_high: float | None = None,
    delta: float | None = None,
    beta: float = 0.0,
    kl_estimator: Literal["k3", "k1"] = "k3",
    bias_corrected_kl: bool = False,
    importance_sampling_level: Literal["token", "sequence"] = "token",
    importance_sampling_ratio: ArrayLike | None = None,
    max_completion_length: int | None = None,
    num_items_in_batch: ArrayLike | None = None,
    entropies: ArrayLike | None = None,
    top_entropy_quantile: float = 1.0,
    sapo_temperature_pos: float = 1.0,
    sapo_temperature_neg: float = 1.05,
    vespo_k_pos: float = 2.0,
    vespo_lambda_pos: float = 3.0,
    vespo_k_neg: float = 3.0,
    vespo_lambda_neg: float = 2.0,
    axis_name: Any = None,
) -> PolicyOutput:
    r"""The clipped policy-gradient losses of GRPO and its successors (TRL 1.16's
    ``GRPOTrainer``), from per-token log-probabilities.

    With the importance ratio $w = \pi/\pi_\mathrm{old}$ per token (``"token"``) or
    $w = \exp(\mathrm{mean}_t \log\frac{\pi}{\pi_\mathrm{old}})$ per sequence (``"sequence"``,
    GSPO), the advantage A of the sequence and ε_low, ε_high:

    - clipped types (``grpo``, ``bnpo``, ``dr_grpo``, ``dapo``, ``luspo``):
      $\ell = -\min(w A, \mathrm{clip}(w, 1-ε_\mathrm{low}, 1+ε_\mathrm{high}) A)$, with
      ``delta`` capping w in the first term (INTELLECT-2's two-sided clipping);
    - ``cispo``: $\ell = -\mathrm{sg}(\min(w, ε_\mathrm{high}))\,A \log\pi$;
    - ``sapo``: $\ell = -\frac{4}{τ}\sigma(τ(w - 1))\,A$, τ by the sign of A;
    - ``vespo``: $\ell = -\mathrm{sg}(φ(w_\mathrm{seq}))\,A\log\pi$ with the gamma weight
      $φ(w) = e^{λ} w^k e^{-λ w}$ of the sequence's ratio (k, λ by the sign of A);

    each token's loss multiplied by the entropy mask (``top_entropy_quantile`` < 1: only the
    counted tokens at or above that quantile of entropy learn) and by
    ``importance_sampling_ratio`` (vLLM's correction, not for vespo), plus β times the KL
    estimate to the reference (k3: $e^{d} - d - 1$, d = log π_ref − log π; k1: $-d$;
    times w with ``bias_corrected_kl``). The token losses are then reduced:

    - ``grpo``, ``sapo``: the mean over the sequences of each sequence's token mean;
    - ``bnpo``: the mean over every counted token;
    - ``dr_grpo``: the sum over the tokens / (B · ``max_completion_length``);
    - ``dapo``, ``cispo``, ``vespo``: the sum / ``num_items_in_batch`` (default: the number
      of counted tokens in the global batch);
    - ``luspo``: the mean over the sequences of each sequence's token sum.

    Args:
      logps: ``(B, T)`` the policy's per-token log-probabilities.
      advantages: ``(B,)`` one advantage per sequence, or ``(B, T)`` per token.
      mask: boolean ``(B, T)``: the completion tokens that count.
      old_logps: ``(B, T)`` the sampling policy's (None: ``logps`` without gradient, on-policy).
      ref_logps: ``(B, T)`` the reference model's, needed when ``beta`` != 0.
      loss_type: one of the types above (TRL's default ``"dapo"``).
      epsilon_low: ε_low >= 0.
      epsilon_high: ε_high (default ε_low; DAPO uses 0.28; CISPO's cap on w).
      delta: optional cap > 1 + ε_high on w in the unclipped term.
      beta: the KL penalty's weight >= 0.
      kl_estimator: ``"k3"`` (TRL's) or ``"k1"``.
      bias_corrected_kl: multiply the KL estimate by w (DeepSeek-V3.2, TRL's
        ``use_bias_correction_kl``).
      importance_sampling_level: ``"token"`` or ``"sequence"`` (GSPO).
      importance_sampling_ratio: optional ``(B, T)`` or ``(B, 1)`` correction π_old/π_sampler.
      max_completion_length: L of ``dr_grpo``.
      num_items_in_batch: the normaliser of ``dapo``, ``cispo`` and ``vespo`` (TRL's
        ``num_items_in_batch / num_processes`` for a process's share).
      entropies: ``(B, T)`` per-token entropies (from ``linear_log_probs(...,
        with_entropy=True)``), for the entropy mask and the metric.
      top_entropy_quantile: ρ in (0, 1]: the fraction of highest-entropy tokens that learn.
      sapo_temperature_pos: τ for positive advantages.
      sapo_temperature_neg: τ for negative advantages.
      vespo_k_pos: VESPO's k for non-negative advantages.
      vespo_lambda_pos: VESPO's λ for non-negative advantages.
      vespo_k_neg: VESPO's k for negative advantages.
      vespo_lambda_neg: VESPO's λ for negative advantages.
      axis_name: inside ``shard_map`` with the sequences split over a mesh axis: every
        normaliser, the entropy quantile and the metrics are global.

    Returns:
      `PolicyOutput` ``(loss, metrics)``.

    Examples:
      >>> logps = jnp.log(jnp.array([[0.5, 0.4, 0.3], [0.2, 0.6, 0.1]]))
      >>> old = jnp.log(jnp.array([[0.4, 0.4, 0.3], [0.3, 0.5, 0.1]]))
      >>> mask = jnp.array([[True, True, False], [True, True, True]])
      >>> out = jaxloss.policy_loss(logps, jnp.array([1.0, -1.0]), mask, old)
      >>> out.loss, out.metrics.clip_ratio_region
      (Array(0.16, dtype=float32), Array(0.4, dtype=float32))
    """
    fn = "policy_loss"
    lp = _token_array(fn, "logps", logps)
    if lp.ndim != 2:
        raise ValueError(f"{fn}: `logps` must be (B, T); got shape {list(lp.shape)}.")
    shape = lp.shape
    valid = checks.where_mask(fn, mask, shape, "the log-probabilities' shape", name="mask")
    assert valid is not None
    if loss_type not in POLICY_LOSS_TYPES:
        raise ValueError(
            f"{fn}: `loss_type` must be one of {list(POLICY_LOSS_TYPES)}; got {loss_type!r}."
        )
    adv = checks.float_array(fn, "advantages", advantages)
    if adv.shape not in ((shape[0],), shape):
        raise ValueError(
            f"{fn}: `advantages` must be (B,) = {[shape[0]]} (one per sequence) or (B, T) = "
            f"{list(shape)}; got {list(adv.shape)}."
        )
    adv = lax.stop_gradient(adv[:, None] if adv.ndim == 1 else adv)
    eps_low = float(checks.python_number(fn, "epsilon_low", epsilon_low, low=0.0))
    eps_high = eps_low if epsilon_high is None else float(epsilon_high)
    if loss_type != "cispo" and eps_high < eps_low:
        raise ValueError(
            f"{fn}: `epsilon_high` must be >= `epsilon_low` ({eps_low}); got {eps_high}."
        )
    if delta is not None and not delta > 1 + eps_high:
        raise ValueError(
            f"{fn}: `delta` caps the ratio above the clip range: it must be > 1 + epsilon_high "
            f"= {1 + eps_high}; got {delta}."
        )
    checks.python_number(fn, "beta", beta, low=0.0)
    if kl_estimator not in ("k3", "k1"):
        raise ValueError(f"{fn}: `kl_estimator` must be 'k3' or 'k1'; got {kl_estimator!r}.")
    if importance_sampling_level not in ("token", "sequence"):
        raise ValueError(
            f"{fn}: `importance_sampling_level` must be 'token' or 'sequence'; got "
            f"{importance_sampling_level!r}."
        )
    if importance_sampling_level == "sequence" and loss_type in ("cispo", "sapo", "vespo"):
        raise ValueError(
            f"{fn}: sequence-level importance sampling is not defined for '{loss_type}' (TRL and "
            "Liger refuse it); use importance_sampling_level='token'."
        )
    if loss_type == "dr_grpo" and max_completion_length is None:
        raise ValueError(f"{fn}: 'dr_grpo' needs `max_completion_length`, its fixed normaliser.")
    if max_completion_length is not None:
        checks.python_number(fn, "max_completion_length", max_completion_length, low=1)
    checks.python_number(fn, "top_entropy_quantile", top_entropy_quantile, low=0.0, high=1.0,
                         low_inclusive=False)  # fmt: skip
    if top_entropy_quantile < 1.0 and entropies is None:
        raise ValueError(f"{fn}: `top_entropy_quantile` < 1 needs the per-token `entropies`.")
    for name, value in (("sapo_temperature_pos", sapo_temperature_pos),
                        ("sapo_temperature_neg", sapo_temperature_neg)):  # fmt: skip
        checks.python_number(fn, name, value, low=0.0, low_inclusive=False)

    compute = jnp.promote_types(lp.dtype, jnp.float32)
    lp = lp.astype(compute)
    adv = adv.astype(compute)
    old = (
        lax.stop_gradient(lp)
        if old_logps is None
        else _token_array(fn, "old_logps", old_logps, shape)
    )
    old = lax.stop_gradient(old).astype(compute)
    if beta and ref_logps is None:
        raise ValueError(f"{fn}: `beta` > 0 needs the reference model's `ref_logps`.")
    ent = None if entropies is None else _token_array(fn, "entropies", entropies, shape)
    is_ratio = None
    if importance_sampling_ratio is not None:
        is_ratio = lax.stop_gradient(checks.float_array(fn, "importance_sampling_ratio",
                                                        importance_sampling_ratio))  # fmt: skip
        if is_ratio.shape not in (shape, (shape[0], 1)):
            raise ValueError(
                f"{fn}: `importance_sampling_ratio` must be (B, T) or (B, 1); got "
                f"{list(is_ratio.shape)}."
            )
        is_ratio = is_ratio.astype(compute)

    def total(values):
        summed = jnp.sum(values)
        return summed if axis_name is None else lax.psum(summed, axis_name)

    counted = valid.astype(compute)
    tokens = total(counted)
    sequences = total(jnp.ones((shape[0],), compute))

    def token_mean(values):  # TRL's global masked mean; per sequence for (B, 1) values
        if values.shape[-1] == 1:
            return total(values[:, 0]) / jnp.maximum(sequences, 1)
        return total(values * counted) / jnp.maximum(tokens, 1)

    log_ratio = jnp.where(valid, lp - old, 0)
    if importance_sampling_level == "token":
        log_weights = log_ratio
    else:
        length = jnp.maximum(jnp.sum(counted, axis=-1, keepdims=True), 1)
        log_weights = jnp.sum(log_ratio, axis=-1, keepdims=True) / length
    ratio = jnp.exp(log_weights)

    low_clipped = jnp.zeros(ratio.shape, bool)
    high_clipped = jnp.zeros(ratio.shape, bool)
    if loss_type == "cispo":
        capped = lax.stop_gradient(jnp.minimum(ratio, eps_high))
        per_token = -capped * adv * lp
        high_clipped = (ratio > eps_high) & (adv > 0)
    elif loss_type in _CLIPPED_TYPES:
        clipped = jnp.clip(ratio, 1 - eps_low, 1 + eps_high)
        unclipped = ratio if delta is None else jnp.minimum(ratio, delta)
        per_token = -jnp.minimum(unclipped * adv, clipped * adv)
        low_clipped = (ratio < 1 - eps_low) & (adv < 0)
        high_clipped = (ratio > 1 + eps_high) & (adv > 0)
    elif loss_type == "sapo":
        tau = jnp.where(adv > 0, sapo_temperature_pos, sapo_temperature_neg).astype(compute)
        per_token = -jax.nn.sigmoid(tau * (ratio - 1)) * 4 / tau * adv
    else:  # vespo: a detached gamma weight of the sequence's ratio
        lower = math.log(1e-8)
        seq_log = jnp.sum(jnp.clip(log_ratio, -20.0, 20.0), axis=-1, keepdims=True)
        if is_ratio is not None:
            log_is = jnp.clip(jnp.log(is_ratio), lower, 20.0)
            seq_log = seq_log + jnp.sum(log_is, axis=-1, keepdims=True)
        log_w = jnp.clip(seq_log, lower, 20.0)
        nonneg = adv >= 0
        k = jnp.where(nonneg, vespo_k_pos, vespo_k_neg).astype(compute)
        lam = jnp.maximum(jnp.where(nonneg, vespo_lambda_pos, vespo_lambda_neg), 1e-4)
        phi = jnp.exp(lam + k * log_w - lam * jnp.exp(log_w))
        phi = lax.stop_gradient(jnp.nan_to_num(phi, nan=0.0, posinf=0.0, neginf=0.0))
        per_token = -phi * adv * lp

    if top_entropy_quantile < 1.0:
        assert ent is not None
        per_token = per_token * _high_entropy_mask(ent, valid, top_entropy_quantile, axis_name)
    if is_ratio is not None and loss_type != "vespo":
        per_token = per_token * is_ratio
    kl = jnp.zeros(shape, compute)
    if beta:
        ref = lax.stop_gradient(_token_array(fn, "ref_logps", ref_logps, shape)).astype(compute)
        d = jnp.where(valid, ref - lp, 0)
        kl = jnp.expm1(d) - d if kl_estimator == "k3" else -d
        if bias_corrected_kl:
            kl = kl * ratio
        per_token = per_token + beta * kl
    per_token = jnp.broadcast_to(per_token, shape) * counted

    if loss_type in ("grpo", "sapo"):
        lengths = jnp.maximum(jnp.sum(counted, axis=-1), 1)
        loss = total(jnp.sum(per_token, axis=-1) / lengths) / sequences
    elif loss_type == "bnpo":
        loss = total(per_token) / jnp.maximum(tokens, 1)
    elif loss_type == "dr_grpo":
        loss = total(per_token) / (sequences * float(max_completion_length))  # type: ignore[arg-type]
    elif loss_type == "luspo":
        loss = total(per_token) / sequences
    else:
        normalizer = tokens
        if num_items_in_batch is not None:
            normalizer = lax.stop_gradient(jnp.asarray(num_items_in_batch, compute))
        loss = total(per_token) / jnp.maximum(normalizer, 1)

    as_float = lambda flags: flags.astype(compute)
    metrics = PolicyMetrics(
        clip_ratio_low=token_mean(as_float(low_clipped)),
        clip_ratio_high=token_mean(as_float(high_clipped)),
        clip_ratio_region=token_mean(as_float(low_clipped | high_clipped)),
        mean_ratio=token_mean(lax.stop_gradient(ratio)),
        kl=token_mean(lax.stop_gradient(kl)),
        entropy=jnp.asarray(jnp.nan, compute)
        if ent is None
        else token_mean(lax.stop_gradient(ent).astype(compute)),
    )
    return PolicyOutput(loss, metrics)


def _groups(fn, rewards, num_generations, group_ids, num_groups):
    """(group index per reward, number of groups) of contiguous groups of `num_generations`
    (TRL's layout) or of explicit `group_ids` in [0, num_groups)."""
    n = rewards.shape[0]
    if (num_generations is None) == (group_ids is None):
        raise ValueError(
            f"{fn}: give `num_generations` (contiguous groups, TRL's layout) or `group_ids`, "
            "exactly one."
        )
    if num_generations is not None:
        if not isinstance(num_generations, int) or num_generations < 1 or n % num_generations:
            raise ValueError(
                f"{fn}: `num_generations` must be a positive int dividing the {n} rewards; got "
                f"{num_generations!r}."
            )
        return jnp.arange(n) // num_generations, n // num_generations
    ids = checks.int_array(fn, "group_ids", group_ids)
    if ids.shape != (n,):
        raise ValueError(f"{fn}: `group_ids` must be ({n},); got {list(ids.shape)}.")
    if not isinstance(num_groups, int) or num_groups < 1:
        raise ValueError(
            f"{fn}: with `group_ids`, `num_groups` (a Python int, for static shapes) is "
            f"required; got {num_groups!r}."
        )
    in_range = (ids >= 0) & (ids < num_groups)
    checks.value_check(fn, in_range, f"`group_ids` must be in [0, {num_groups}); found {{}}.",
                       checks.first_violation(ids, in_range))  # fmt: skip
    return ids, num_groups


def _group_sums(values, ids, count):
    return jax.ops.segment_sum(values, ids, num_segments=count)


def _unbiased_std(values, mean, count):
    """Bessel-corrected standard deviation (TRL's ``nanstd``): nan with fewer than 2 values."""
    variance = jnp.sum((values - mean) ** 2) / count
    return jnp.where(count > 1, jnp.sqrt(variance * count / jnp.maximum(count - 1, 1)), jnp.nan)


def group_advantages(
    rewards: ArrayLike,
    *,
    num_generations: int | None = None,
    group_ids: ArrayLike | None = None,
    num_groups: int | None = None,
    scale: Literal["group", "batch", "none"] = "group",
    epsilon: float = 1e-4,
) -> jax.Array:
    r"""GRPO's advantages (TRL 1.16's ``GRPOTrainer``): each completion's reward minus its
    group's mean, divided by the standard deviation plus ε: the group's (``"group"``, GRPO),
    the batch's (``"batch"``), or not at all (``"none"``: Dr. GRPO's unscaled advantages).
    Standard deviations are Bessel-corrected as TRL's ``nanstd``; a group of one completion
    gets advantage 0 (TRL's nan, zeroed).

    Args:
      rewards: ``(B,)`` one reward per completion.
      num_generations: G: the completions of a prompt are contiguous groups of G (TRL's
        layout).
      group_ids: ``(B,)`` the group (prompt) of each completion, instead of
        ``num_generations``.
      num_groups: with ``group_ids``, the number of groups (static).
      scale: ``"group"``, ``"batch"`` or ``"none"``.
      epsilon: added to the standard deviation.

    Returns:
      ``(B,)`` advantages, without gradient.

    Examples:
      >>> rewards = jnp.array([1.0, 0.0, 0.0, 1.0, 1.0, 1.0])
      >>> [round(float(a), 3) for a in jaxloss.group_advantages(rewards, num_generations=3)]
      [1.155, -0.577, -0.577, 0.0, 0.0, 0.0]
    """
    fn = "group_advantages"
    r = checks.float_array(fn, "rewards", rewards)
    if r.ndim != 1:
        raise ValueError(f"{fn}: `rewards` must be (B,); got shape {list(r.shape)}.")
    if scale not in ("group", "batch", "none"):
        raise ValueError(f"{fn}: `scale` must be 'group', 'batch' or 'none'; got {scale!r}.")
    checks.python_number(fn, "epsilon", epsilon, low=0.0)
    r = lax.stop_gradient(r.astype(jnp.promote_types(r.dtype, jnp.float32)))
    ids, count = _groups(fn, r, num_generations, group_ids, num_groups)
    sizes = _group_sums(jnp.ones_like(r), ids, count)
    means = (_group_sums(r, ids, count) / jnp.maximum(sizes, 1))[ids]
    advantages = r - means
    if scale == "group":
        squares = _group_sums((r - means) ** 2, ids, count)[ids]
        size = sizes[ids]
        std = jnp.where(size > 1, jnp.sqrt(squares / jnp.maximum(size - 1, 1)), jnp.nan)
        advantages = advantages / (std + epsilon)
    elif scale == "batch":
        std = _unbiased_std(r, jnp.mean(r), jnp.asarray(r.shape[0], r.dtype))
        advantages = advantages / (std + epsilon)
    return jnp.nan_to_num(advantages, nan=0.0)


def rloo_advantages(
    rewards: ArrayLike,
    *,
    num_generations: int | None = None,
    group_ids: ArrayLike | None = None,
    num_groups: int | None = None,
    normalize: bool = False,
    epsilon: float = 1e-4,
) -> jax.Array:
    r"""REINFORCE leave-one-out advantages (TRL 1.16's ``RLOOTrainer``): each completion's
    reward minus the mean of its group's other rewards; a group of one gets 0. With
    ``normalize`` the advantages are then standardised over the batch (Bessel-corrected
    standard deviation plus ε).

    Args:
      rewards: ``(B,)`` one reward per completion.
      num_generations: G: contiguous groups of G completions (TRL's layout).
      group_ids: ``(B,)`` the group of each completion, instead of ``num_generations``.
      num_groups: with ``group_ids``, the number of groups (static).
      normalize: standardise over the batch (TRL's ``normalize_advantages``).
      epsilon: added to the standard deviation.

    Returns:
      ``(B,)`` advantages, without gradient.

    Examples:
      >>> jaxloss.rloo_advantages(jnp.array([1.0, 0.0, 0.0, 2.0]), num_generations=2)
      Array([ 1., -1., -2.,  2.], dtype=float32)
    """
    fn = "rloo_advantages"
    r = checks.float_array(fn, "rewards", rewards)
    if r.ndim != 1:
        raise ValueError(f"{fn}: `rewards` must be (B,); got shape {list(r.shape)}.")
    checks.python_number(fn, "epsilon", epsilon, low=0.0)
    r = lax.stop_gradient(r.astype(jnp.promote_types(r.dtype, jnp.float32)))
    ids, count = _groups(fn, r, num_generations, group_ids, num_groups)
    sizes = _group_sums(jnp.ones_like(r), ids, count)[ids]
    sums = _group_sums(r, ids, count)[ids]
    advantages = jnp.where(sizes > 1, r - (sums - r) / jnp.maximum(sizes - 1, 1), 0.0)
    if normalize:
        std = _unbiased_std(advantages, jnp.mean(advantages), jnp.asarray(r.shape[0], r.dtype))
        advantages = (advantages - jnp.mean(advantages)) / (std + epsilon)
    return jnp.nan_to_num(advantages, nan=0.0)
