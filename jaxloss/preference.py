r"""Preference optimisation: the DPO family, as pure functions of per-sequence
log-probabilities.

Each loss takes the policy's log-probabilities of the chosen and the rejected completion of
every pair (sums over the completion's tokens, from `jaxloss.linear_log_probs` or
`jaxloss.token_log_probs` and `jaxloss.sequence_sums`) and, optionally, the reference model's.
So each is written once and runs on the fused head, sharded and under every transformation.
It returns the loss and the metrics a trainer logs, as a pytree (`PreferenceOutput`).

The formulas are TRL 1.16's (``trl/trainer/dpo_trainer.py``, ``DPOTrainer._compute_loss``);
Liger-Kernel 0.8.5's ``LigerFusedLinearDPOFunction`` computes the same for the ten types it
has. With the log-ratios $r_c = \log\pi(y_c) - \log\pi_\mathrm{ref}(y_c)$ and $r_r$ likewise,
and the scores $s = f'(e^r)$ of the f-divergence (reverse KL: $s = r$), each ``loss_type`` is a
function of β, $r$, $s$ and, for some, the completion lengths; several combine with weights,
as TRL's ``loss_weights``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax
from jax.typing import ArrayLike

from ._core import checks
from ._core.reduction import Reduction
from ._core.sharding import whole
from .post_training import sequence_reduce

__all__ = [
    "dpo_loss",
    "cpo_loss",
    "simpo_loss",
    "orpo_loss",
    "kto_loss",
    "length_desensitized_logps",
    "wpo_weights",
]

DPOLossType = Literal[
    "sigmoid",
    "hinge",
    "ipo",
    "exo_pair",
    "nca_pair",
    "robust",
    "bco_pair",
    "sppo_hard",
    "aot",
    "aot_unpaired",
    "apo_zero",
    "apo_down",
    "discopop",
    "sft",
    "sigmoid_norm",
]
DPO_LOSS_TYPES: tuple[str, ...] = DPOLossType.__args__  # type: ignore[attr-defined]
FDivergence = Literal["reverse_kl", "forward_kl", "js_divergence", "alpha_divergence"]
F_DIVERGENCES: tuple[str, ...] = FDivergence.__args__  # type: ignore[attr-defined]
# The types built on the chosen-rejected score difference, where the f-DPO reparameterisation's
# β·log Z(x) cancels (TRL's list): only these take another f-divergence.
_SCORE_TYPES = {"sigmoid", "sigmoid_norm", "hinge", "ipo", "exo_pair", "robust", "discopop", "sft"}
_NEEDS_LENGTHS = {"ipo", "sigmoid_norm", "sft"}


class PreferenceMetrics(NamedTuple):
    """What a preference trainer logs, as means over the counted pairs (global ones across
    ``axis_name``), without gradient: the implicit rewards β·(log π - log π_ref) of the
    chosen and the rejected completions, their margin, the fraction of pairs whose chosen
    reward is higher, and the policy's mean log-probabilities (as given, or averaged with
    ``average_log_prob``). The losses with an NLL term log it as ``nll``; ORPO also logs the
    mean log σ of its log odds ratio and the mean log odds ratio (TRL's ``log_odds_ratio``
    and ``log_odds_chosen``); None elsewhere."""

    rewards_chosen: jax.Array
    rewards_rejected: jax.Array
    reward_margin: jax.Array
    reward_accuracy: jax.Array
    logps_chosen: jax.Array
    logps_rejected: jax.Array
    nll: jax.Array | None = None
    log_odds_ratio: jax.Array | None = None
    log_odds_chosen: jax.Array | None = None


class BCOState(NamedTuple):
    """The running mean of the batch-mean reward that ``bco_pair`` subtracts in its original
    form (Jung et al. 2024; TRL before 1.0): carry it in the training state, starting from
    ``BCOState.initial()``. ``count`` is the number of batches seen."""

    mean: jax.Array
    count: jax.Array

    @classmethod
    def initial(cls) -> BCOState:
        return cls(jnp.zeros((), jnp.float32), jnp.zeros((), jnp.float32))


class PreferenceOutput(NamedTuple):
    """A preference loss's result: the loss, the metrics (`PreferenceMetrics`; for KTO
    `KTOMetrics`), and for ``bco_pair`` with a `BCOState` the updated state (None
    otherwise)."""

    loss: jax.Array
    metrics: Any
    bco_state: BCOState | None = None


def _loss_types(fn, loss_type, loss_weights) -> tuple[tuple[str, ...], tuple[float, ...]]:
    types = (loss_type,) if isinstance(loss_type, str) else tuple(loss_type)
    if not types:
        raise ValueError(f"{fn}: `loss_type` must name at least one loss; got {loss_type!r}.")
    for name in types:
        if name not in DPO_LOSS_TYPES:
            raise ValueError(
                f"{fn}: `loss_type` must be one of {list(DPO_LOSS_TYPES)} (or a sequence of "
                f"them); got {name!r}."
            )
    if len(set(types)) != len(types):
        raise ValueError(f"{fn}: `loss_type` names a loss twice: {list(types)}.")
    if loss_weights is None:
        return types, (1.0,) * len(types)
    weights = tuple(loss_weights)
    if len(weights) != len(types):
        raise ValueError(
            f"{fn}: `loss_weights` must give one weight per loss type ({len(types)}); got "
            f"{len(weights)}."
        )
    for weight in weights:
        checks.python_number(fn, "loss_weights", weight)
    return types, tuple(float(w) for w in weights)


def _pair_array(fn, name, value, shape=None):
    array = checks.float_array(fn, name, value)
    if shape is not None and array.shape != tuple(shape):
        raise ValueError(
            f"{fn}: `{name}` must have the pairs' shape {list(shape)} (one value per pair); got "
            f"{list(array.shape)}."
        )
    return array


def _scores(logratios, f_divergence, alpha):
    """f'(π/π_ref) of the f-divergence, from the log-ratio (TRL's f-DPO scores)."""
    if f_divergence == "reverse_kl":
        return logratios
    if f_divergence == "forward_kl":  # f'(t) = 1 - 1/t
        return -jnp.expm1(-logratios)
    if f_divergence == "js_divergence":  # f'(t) = log 2t/(t+1)
        return math.log(2) + jax.nn.log_sigmoid(logratios)
    if abs(alpha - 1.0) < 1e-6:  # the α → 1 limit is the reverse KL, as in TRL
        return logratios
    # (t^(α-1) - 1)/(α-1), its exponent clamped where TRL clamps it (80; 11 in float16)
    limit = 11.0 if logratios.dtype == jnp.float16 else 80.0
    return jnp.expm1(jnp.minimum((alpha - 1.0) * logratios, limit)) / (alpha - 1.0)


def _sorted_counted(values, valid):
    """The counted values sorted ascending, the others (+inf) after them; the sorted values at
    the positions past the count are 0 (they are masked afterwards)."""
    ordered = jnp.sort(whole(jnp.where(valid, values, jnp.inf)))  # a sort needs the whole axis
    counted = jnp.arange(values.shape[0]) < jnp.sum(valid)
    return jnp.where(counted, ordered, jnp.zeros((), values.dtype)), counted


def _pair_losses(loss_type, beta, r_c, r_r, s_c, s_r, c, settings) -> jax.Array:
    """One loss type's per-pair losses (TRL 1.16's formulas)."""
    log_sigmoid, sigmoid = jax.nn.log_sigmoid, jax.nn.sigmoid
    eps = settings["label_smoothing"]
    delta = s_c - s_r
    if loss_type == "sigmoid":
        return -log_sigmoid(beta * delta)
    if loss_type == "hinge":
        return jax.nn.relu(1 - beta * delta)
    if loss_type in ("ipo", "sigmoid_norm"):
        per_token = s_c / settings["chosen_lengths"] - s_r / settings["rejected_lengths"]
        if loss_type == "ipo":
            return (per_token - 1 / (2 * beta)) ** 2
        return -log_sigmoid(beta * per_token)
    if loss_type == "exo_pair":
        z = beta * delta
        return sigmoid(z) * (log_sigmoid(z) - math.log1p(-eps)) + sigmoid(-z) * (
            log_sigmoid(-z) - math.log(eps)
        )
    if loss_type == "nca_pair":
        return (
            -log_sigmoid(beta * r_c)
            - 0.5 * log_sigmoid(-beta * r_c)
            - 0.5 * log_sigmoid(-beta * r_r)
        )
    if loss_type == "robust":
        z = beta * delta
        return (-(1 - eps) * log_sigmoid(z) + eps * log_sigmoid(-z)) / (1 - 2 * eps)
    if loss_type == "bco_pair":
        shift = settings["bco_shift"]
        return -log_sigmoid(beta * r_c - shift) - log_sigmoid(-(beta * r_r - shift))
    if loss_type == "sppo_hard":
        return (r_c - 0.5 / beta) ** 2 + (r_r + 0.5 / beta) ** 2
    if loss_type in ("aot", "aot_unpaired"):
        valid = settings["valid"]
        if loss_type == "aot":  # the policy's and the reference's margins, each sorted
            first, second = c["policy_c"] - c["policy_r"], c["ref_c"] - c["ref_r"]
        else:  # the chosen and the rejected log-ratios, each sorted
            first, second = r_c, r_r
        sorted_first, counted = _sorted_counted(first, valid)
        sorted_second, _ = _sorted_counted(second, valid)
        z = beta * jnp.where(counted, sorted_first - sorted_second, 0)
        sorted_losses = -log_sigmoid(z) * (1 - eps) - log_sigmoid(-z) * eps
        # the k-th counted pair takes the k-th sorted loss, so that `valid` masks them
        rank = jnp.maximum(jnp.cumsum(valid) - 1, 0)
        return sorted_losses[rank]
    if loss_type == "apo_zero":
        return 1 - sigmoid(beta * r_c) + sigmoid(beta * r_r)
    if loss_type == "apo_down":
        return sigmoid(beta * r_c) + 1 - sigmoid(beta * (r_c - r_r))
    if loss_type == "discopop":
        z = beta * delta
        modulation = sigmoid(z / settings["discopop_tau"])
        return -log_sigmoid(z) * (1 - modulation) + jnp.exp(-z) * modulation
    assert loss_type == "sft"  # -the mean log-probability of the chosen completions' tokens
    return jnp.broadcast_to(settings["sft"], r_c.shape)


class _Pairs:
    """The checked per-pair inputs of a preference loss (the chosen and rejected sequences'
    log-probabilities, `where`, the token counts) and its batch sums and means over the
    counted pairs: global ones across `axis_name` inside shard_map."""

    def __init__(self, fn, names, chosen, rejected, *, where, axis_name, lengths=None,
                 lengths_for=None):  # fmt: skip
        """`lengths` (the chosen and rejected token counts) are checked and kept when
        `lengths_for` says what needs them (an error names it if one is missing)."""
        self.fn, self.axis_name = fn, axis_name
        if lengths_for and (lengths is None or any(n is None for n in lengths)):
            raise ValueError(
                f"{fn}: {lengths_for} needs the completions' token counts `chosen_lengths` "
                "and `rejected_lengths`."
            )
        lengths = lengths if lengths_for else None
        p_c = _pair_array(fn, names[0], chosen)
        if p_c.ndim != 1:
            raise ValueError(
                f"{fn}: `{names[0]}` must be (B,), one value per pair; got shape {list(p_c.shape)}."
            )
        self.shape = p_c.shape
        p_r = _pair_array(fn, names[1], rejected, self.shape)
        valid = checks.where_mask(fn, where, self.shape, "one value per pair")
        self.valid = jnp.ones(self.shape, bool) if valid is None else valid
        self.compute = jnp.promote_types(jnp.result_type(p_c, p_r), jnp.float32)
        self.chosen, self.rejected = p_c.astype(self.compute), p_r.astype(self.compute)
        self.lengths = self.chosen_tokens = None
        if lengths is not None:
            counts = []
            for name, value in zip(("chosen_lengths", "rejected_lengths"), lengths):
                array = lax.stop_gradient(checks.as_array(fn, name, value))
                if array.shape != self.shape:
                    raise ValueError(
                        f"{fn}: `{name}` must have the pairs' shape {list(self.shape)}; got "
                        f"{list(array.shape)}."
                    )
                counts.append(array.astype(self.compute))
            self.chosen_tokens = counts[0]
            # clamped to 1 where a sequence's value is divided by its length, as TRL does
            self.lengths = tuple(jnp.maximum(c, 1) for c in counts)

    def other(self, name, value):
        """Another per-pair array (a reference's log-probabilities), without gradient."""
        array = _pair_array(self.fn, name, value, self.shape)
        return lax.stop_gradient(array).astype(self.compute)

    def total(self, values):
        summed = jnp.sum(jnp.where(self.valid, values, jnp.zeros((), values.dtype)))
        return summed if self.axis_name is None else lax.psum(summed, self.axis_name)

    def mean(self, values):
        return self.total(values) / jnp.maximum(self.total(jnp.ones(self.shape, values.dtype)), 1)

    def reduce(self, per_pair, reduction):
        if reduction == "none":
            return jnp.where(self.valid, per_pair, jnp.zeros((), per_pair.dtype))
        return self.total(per_pair) if reduction == "sum" else self.mean(per_pair)

    def chosen_nll(self):
        """-Σ log π(y_c) / Σ n_c over the counted pairs: the chosen completions' tokens' mean
        NLL (TRL's ``sft`` and the CPO/ORPO NLL term), from the sums and the counts."""
        assert self.chosen_tokens is not None
        return -self.total(self.chosen) / jnp.maximum(self.total(self.chosen_tokens), 1)

    def metrics(self, rewards_c, rewards_r, logps_c, logps_r, **extra) -> PreferenceMetrics:
        rewards_c, rewards_r = lax.stop_gradient(rewards_c), lax.stop_gradient(rewards_r)
        extra = {name: lax.stop_gradient(value) for name, value in extra.items()}
        return PreferenceMetrics(
            rewards_chosen=self.mean(rewards_c),
            rewards_rejected=self.mean(rewards_r),
            reward_margin=self.mean(rewards_c - rewards_r),
            reward_accuracy=self.mean((rewards_c > rewards_r).astype(self.compute)),
            logps_chosen=lax.stop_gradient(self.mean(logps_c)),
            logps_rejected=lax.stop_gradient(self.mean(logps_r)),
            **extra,
        )


def dpo_loss(
    policy_chosen_logps: ArrayLike,
    policy_rejected_logps: ArrayLike,
    ref_chosen_logps: ArrayLike | None = None,
    ref_rejected_logps: ArrayLike | None = None,
    *,
    beta: float = 0.1,
    loss_type: DPOLossType | Sequence[DPOLossType] = "sigmoid",
    loss_weights: Sequence[float] | None = None,
    label_smoothing: float = 0.0,
    f_divergence: FDivergence = "reverse_kl",
    alpha_divergence_coef: float = 0.5,
    discopop_tau: float = 0.05,
    chosen_lengths: ArrayLike | None = None,
    rejected_lengths: ArrayLike | None = None,
    average_log_prob: bool = False,
    bco_state: BCOState | None = None,
    pair_weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
    axis_name: Any = None,
) -> PreferenceOutput:
    r"""Direct preference optimisation and its variants (TRL 1.16's ``DPOTrainer``), from the
    log-probabilities of each pair's chosen and rejected completions.

    With $r_c = \log\pi(y_c) - \log\pi_\mathrm{ref}(y_c)$, $r_r$ likewise, the f-divergence
    scores $s = f'(e^{r})$ ($s = r$ for the reverse KL, DPO's), $\Delta = s_c - s_r$,
    ε = ``label_smoothing`` and $n_c, n_r$ the completions' token counts, the per-pair losses
    are:

    - ``"sigmoid"`` (DPO): $-\log\sigma(\beta\Delta)$;
    - ``"hinge"`` (SLiC): $\max(0, 1 - \beta\Delta)$;
    - ``"ipo"``: $(s_c/n_c - s_r/n_r - 1/(2\beta))^2$ (TRL's length-normalised IPO);
    - ``"exo_pair"``: $\sigma(z)(\log\sigma(z) - \log(1-ε)) + \sigma(-z)(\log\sigma(-z) -
      \log ε)$ with $z = \beta\Delta$;
    - ``"nca_pair"``: $-\log\sigma(\beta r_c) - \tfrac12\log\sigma(-\beta r_c)
      - \tfrac12\log\sigma(-\beta r_r)$;
    - ``"robust"``: $(-(1-ε)\log\sigma(\beta\Delta) + ε\log\sigma(-\beta\Delta))/(1-2ε)$;
    - ``"bco_pair"``: $-\log\sigma(\beta r_c - \delta) - \log\sigma(-(\beta r_r - \delta))$,
      δ = 0, or with ``bco_state`` the running mean reward;
    - ``"sppo_hard"``: $(r_c - 1/(2\beta))^2 + (r_r + 1/(2\beta))^2$;
    - ``"aot"``: $-(1-ε)\log\sigma(\beta d) - ε\log\sigma(-\beta d)$, d the sorted policy
      margins minus the sorted reference margins;
    - ``"aot_unpaired"``: as ``"aot"``, d the sorted $r_c$ minus the sorted $r_r$;
    - ``"apo_zero"``: $1 - \sigma(\beta r_c) + \sigma(\beta r_r)$;
    - ``"apo_down"``: $\sigma(\beta r_c) + 1 - \sigma(\beta(r_c - r_r))$;
    - ``"discopop"``: $-\log\sigma(z)(1 - m) + e^{-z} m$ with $z = \beta\Delta$,
      $m = \sigma(z/τ)$;
    - ``"sft"``: $-\sum \log\pi(y_c) / \sum n_c$ over the counted pairs (the chosen tokens'
      NLL);
    - ``"sigmoid_norm"``: $-\log\sigma(\beta(s_c/n_c - s_r/n_r))$.

    Several types combine: ``loss_type=("sigmoid", "sft")`` with ``loss_weights=(1.0, α)``
    is DPO with Liger's ``compute_nll_loss`` and ``alpha=α`` (RPO).

    ``pair_weights`` multiply every type's per-pair loss before the reduction: with
    `wpo_weights` of the chosen and the rejected completions, ``pair_weights=w_c * w_r`` is
    WPO (TRL's ``use_weighting=True``).

    Without reference log-probabilities the reference terms are 0 (reference-free, as Liger
    takes them). ``f_divergence`` other than ``"reverse_kl"`` is only defined for the types
    built on Δ (TRL's rule): ``sigmoid``, ``sigmoid_norm``, ``hinge``, ``ipo``, ``exo_pair``,
    ``robust``, ``discopop`` and ``sft``.

    Args:
      policy_chosen_logps: ``(B,)`` the policy's log-probability of each chosen completion:
        the sum over its tokens (TRL's convention; see ``average_log_prob``).
      policy_rejected_logps: ``(B,)`` the same for the rejected completions.
      ref_chosen_logps: optional ``(B,)`` the reference model's (no gradient flows to it).
      ref_rejected_logps: optional ``(B,)``, given with ``ref_chosen_logps``.
      beta: β > 0 (τ of IPO).
      loss_type: one type, or a sequence of them combined with ``loss_weights``.
      loss_weights: one weight per type (default 1 each); the loss is Σ weight · loss.
      label_smoothing: ε of ``robust`` (in [0, 0.5)), ``exo_pair`` (in (0, 1)), ``aot`` and
        ``aot_unpaired`` (in [0, 1]).
      f_divergence: ``"reverse_kl"`` (DPO), ``"forward_kl"``, ``"js_divergence"`` or
        ``"alpha_divergence"`` (f-DPO).
      alpha_divergence_coef: α of ``"alpha_divergence"``.
      discopop_tau: τ > 0 of ``discopop``.
      chosen_lengths: ``(B,)`` the chosen completions' token counts, for ``ipo``,
        ``sigmoid_norm``, ``sft`` and ``average_log_prob`` (clamped to at least 1 where
        divided by, as TRL does).
      rejected_lengths: ``(B,)`` the rejected completions' token counts.
      average_log_prob: divide the policy's and the reference's log-probabilities by the
        lengths first (Liger's ``average_log_prob=True``; ``sft`` keeps the sums).
      bco_state: for ``bco_pair``, the `BCOState` of the original BCO's running mean reward:
        the batch's mean reward updates it and the updated mean is subtracted (without, δ = 0
        as in TRL 1.16 and Liger).
      pair_weights: optional ``(B,)`` weights of the pairs' losses (WPO's, from
        `wpo_weights`); the 'mean' stays over the counted pairs, Σ w·loss / count, as in TRL.
        Gradients flow through them as given (`wpo_weights` are constants). Not for ``aot``
        and ``aot_unpaired``, whose losses belong to sorted ranks, not to pairs.
      where: optional boolean ``(B,)``: the pairs that count.
      reduction: ``'mean'`` over the counted pairs (TRL's), ``'sum'`` or ``'none'``.
      axis_name: inside ``shard_map`` with the pairs split over a mesh axis: 'mean', the
        metrics and the BCO mean are over every device's pairs. ``aot`` and ``aot_unpaired``,
        which sort the batch, are not split.

    Returns:
      `PreferenceOutput` ``(loss, metrics, bco_state)``: the loss (float32 or wider),
      `PreferenceMetrics`, and the updated `BCOState` when one was given.

    Examples:
      >>> out = jaxloss.dpo_loss(
      ...     jnp.array([-10.0, -12.0]), jnp.array([-14.0, -11.0]),
      ...     jnp.array([-11.0, -12.5]), jnp.array([-13.0, -11.5]), beta=0.1,
      ... )
      >>> out.loss, out.metrics.reward_accuracy
      (Array(0.6456..., dtype=float32), Array(0.5, dtype=float32))
    """
    fn = "dpo_loss"
    types, weights = _loss_types(fn, loss_type, loss_weights)
    length_types = sorted(set(types) & _NEEDS_LENGTHS)
    pairs = _Pairs(
        fn,
        ("policy_chosen_logps", "policy_rejected_logps"),
        policy_chosen_logps,
        policy_rejected_logps,
        where=where,
        axis_name=axis_name,
        lengths=(chosen_lengths, rejected_lengths),
        lengths_for="average_log_prob" if average_log_prob else length_types and str(length_types),
    )
    if (ref_chosen_logps is None) != (ref_rejected_logps is None):
        raise ValueError(
            f"{fn}: give both `ref_chosen_logps` and `ref_rejected_logps`, or neither "
            "(reference-free)."
        )
    checks.python_number(fn, "beta", beta, low=0.0, low_inclusive=False)
    checks.reduction(fn, reduction)
    if f_divergence not in F_DIVERGENCES:
        raise ValueError(f"{fn}: `f_divergence` must be one of {list(F_DIVERGENCES)}; got "
                         f"{f_divergence!r}.")  # fmt: skip
    if f_divergence != "reverse_kl" and not set(types) <= _SCORE_TYPES:
        raise ValueError(
            f"{fn}: f_divergence={f_divergence!r} is only defined for the loss types "
            f"{sorted(_SCORE_TYPES)} (the others have no f-divergence form); got "
            f"{list(types)}."
        )
    checks.python_number(fn, "alpha_divergence_coef", alpha_divergence_coef)
    eps = float(checks.python_number(fn, "label_smoothing", label_smoothing, low=0.0, high=1.0))
    if "robust" in types and not eps < 0.5:
        raise ValueError(f"{fn}: `label_smoothing` of 'robust' must be in [0, 0.5); got {eps}.")
    if "exo_pair" in types and not 0.0 < eps < 1.0:
        raise ValueError(
            f"{fn}: 'exo_pair' needs `label_smoothing` in (0, 1) (the EXO paper uses 1e-3); "
            f"got {eps}."
        )
    if "discopop" in types:
        checks.python_number(fn, "discopop_tau", discopop_tau, low=0.0, low_inclusive=False)
    if bco_state is not None and "bco_pair" not in types:
        raise ValueError(f"{fn}: `bco_state` is the state of 'bco_pair'; got {list(types)}.")
    if axis_name is not None and set(types) & {"aot", "aot_unpaired"}:
        raise ValueError(
            f"{fn}: 'aot' and 'aot_unpaired' sort the whole batch; gather the pairs on one "
            "device instead of splitting them over `axis_name`."
        )
    if pair_weights is not None and set(types) & {"aot", "aot_unpaired"}:
        raise ValueError(
            f"{fn}: `pair_weights` cannot weight 'aot' or 'aot_unpaired': their losses belong "
            f"to sorted ranks, not to pairs (TRL refuses WPO weighting for them too); got "
            f"{list(types)}."
        )
    weights_of_pairs = None
    if pair_weights is not None:
        weights_of_pairs = _pair_array(fn, "pair_weights", pair_weights, pairs.shape)

    p_c, p_r, compute = pairs.chosen, pairs.rejected, pairs.compute
    if ref_chosen_logps is None:
        ref_c = ref_r = jnp.zeros(pairs.shape, compute)
    else:
        ref_c = pairs.other("ref_chosen_logps", ref_chosen_logps)
        ref_r = pairs.other("ref_rejected_logps", ref_rejected_logps)
    settings: dict[str, Any] = dict(
        label_smoothing=eps, discopop_tau=discopop_tau, valid=pairs.valid
    )
    if "sft" in types:
        settings["sft"] = pairs.chosen_nll()
    if pairs.lengths is not None:
        settings["chosen_lengths"], settings["rejected_lengths"] = pairs.lengths
    if average_log_prob:
        assert pairs.lengths is not None
        p_c, ref_c = p_c / pairs.lengths[0], ref_c / pairs.lengths[0]
        p_r, ref_r = p_r / pairs.lengths[1], ref_r / pairs.lengths[1]
    r_c, r_r = p_c - ref_c, p_r - ref_r
    s_c = _scores(r_c, f_divergence, float(alpha_divergence_coef))
    s_r = _scores(r_r, f_divergence, float(alpha_divergence_coef))
    rewards_c, rewards_r = lax.stop_gradient(beta * r_c), lax.stop_gradient(beta * r_r)
    new_state = None
    settings["bco_shift"] = jnp.zeros((), compute)
    if bco_state is not None:
        batch_reward = (pairs.mean(rewards_c) + pairs.mean(rewards_r)) / 2
        count = jnp.asarray(bco_state.count, compute) + 1
        running = jnp.asarray(bco_state.mean, compute)
        new_state = BCOState(running + (batch_reward - running) / count, count)
        settings["bco_shift"] = lax.stop_gradient(new_state.mean)
    sequences = dict(policy_c=p_c, policy_r=p_r, ref_c=ref_c, ref_r=ref_r)
    per_pair = sum(
        weight * _pair_losses(name, beta, r_c, r_r, s_c, s_r, sequences, settings)
        for name, weight in zip(types, weights)
    )
    assert isinstance(per_pair, jax.Array)
    if weights_of_pairs is not None:
        per_pair = per_pair * weights_of_pairs.astype(compute)
    metrics = pairs.metrics(rewards_c, rewards_r, p_c, p_r)
    return PreferenceOutput(pairs.reduce(per_pair, reduction), metrics, new_state)


CPOLossType = Literal["sigmoid", "hinge", "ipo", "simpo"]


def cpo_loss(
    policy_chosen_logps: ArrayLike,
    policy_rejected_logps: ArrayLike,
    *,
    beta: float = 0.1,
    loss_type: CPOLossType = "sigmoid",
    label_smoothing: float = 0.0,
    simpo_gamma: float = 0.5,
    alphapo_alpha: float = 0.0,
    nll_weight: float = 1.0,
    chosen_lengths: ArrayLike | None = None,
    rejected_lengths: ArrayLike | None = None,
    average_log_prob: bool | None = None,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
    axis_name: Any = None,
) -> PreferenceOutput:
    r"""Contrastive preference optimisation (CPO, Xu et al. 2024) and its reference-free
    relatives, TRL's ``CPOTrainer.cpo_loss`` (``trl/experimental/cpo/cpo_trainer.py``): with
    $\ell = \log\pi(y_c) - \log\pi(y_r)$ (or AlphaPO's reward difference) and ε =
    ``label_smoothing``, per pair

    - ``"sigmoid"``: $-(1-ε)\log\sigma(\beta\ell) - ε\log\sigma(-\beta\ell)$;
    - ``"hinge"``: $\max(0, 1 - \beta\ell)$;
    - ``"ipo"``: $(\ell - 1/(2\beta))^2$;
    - ``"simpo"`` (SimPO, Meng et al. 2024): ``"sigmoid"`` of $\ell - \gamma/\beta$;

    plus ``nll_weight`` (TRL's ``cpo_alpha``) times the chosen completions' token-mean NLL;
    the loss is the mean over the counted pairs plus that term. AlphaPO (``alphapo_alpha``
    α ≠ 0) replaces each log-probability by the reward $(1 - \pi^{-α})/α$.

    The log-probabilities are sums over the completion's tokens; as in TRL they are averaged
    over the tokens for ``"ipo"`` and ``"simpo"`` (``average_log_prob=None``), or as
    ``average_log_prob`` says (Liger's CPO averages only when asked). The NLL term always uses
    the sums.

    Args:
      policy_chosen_logps: ``(B,)`` the sums of the chosen completions' token log-probabilities.
      policy_rejected_logps: ``(B,)`` the same for the rejected completions.
      beta: β > 0.
      loss_type: ``"sigmoid"``, ``"hinge"``, ``"ipo"`` or ``"simpo"``.
      label_smoothing: ε in [0, 0.5] of ``"sigmoid"`` and ``"simpo"``.
      simpo_gamma: γ, SimPO's target reward margin.
      alphapo_alpha: AlphaPO's α (0: the log-probabilities themselves).
      nll_weight: the NLL term's weight (TRL's ``cpo_alpha``; 0 for SimPO as TRL runs it).
      chosen_lengths: ``(B,)`` token counts; needed for the NLL term and for averaging.
      rejected_lengths: ``(B,)`` token counts.
      average_log_prob: average the log-probabilities over the tokens before the loss (None:
        TRL's choice, for ``"ipo"`` and ``"simpo"`` only).
      where: optional boolean ``(B,)``: the pairs that count.
      reduction: ``'mean'``, ``'sum'`` or ``'none'``; the NLL term (a batch mean) is added to
        every pair's loss, so 'mean' is TRL's mean + ``cpo_alpha`` · NLL.
      axis_name: as in `dpo_loss`.

    Returns:
      `PreferenceOutput` ``(loss, metrics, None)``; the rewards are β times the (averaged or
      AlphaPO-transformed) log-probabilities, as TRL logs them, and ``metrics.nll`` the NLL
      term.

    Examples:
      >>> out = jaxloss.cpo_loss(
      ...     jnp.array([-10.0, -12.0]), jnp.array([-14.0, -11.0]), beta=0.1,
      ...     chosen_lengths=jnp.array([5, 6]), rejected_lengths=jnp.array([7, 5]),
      ... )
      >>> out.loss
      Array(2.6287..., dtype=float32)
    """
    fn = "cpo_loss"
    if loss_type not in ("sigmoid", "hinge", "ipo", "simpo"):
        raise ValueError(
            f"{fn}: `loss_type` must be 'sigmoid', 'hinge', 'ipo' or 'simpo'; got {loss_type!r}."
        )
    average = loss_type in ("ipo", "simpo") if average_log_prob is None else average_log_prob
    checks.python_number(fn, "nll_weight", nll_weight, low=0.0)
    pairs = _Pairs(
        fn,
        ("policy_chosen_logps", "policy_rejected_logps"),
        policy_chosen_logps,
        policy_rejected_logps,
        where=where,
        axis_name=axis_name,
        lengths=(chosen_lengths, rejected_lengths),
        lengths_for=(
            "the NLL term (nll_weight > 0)" if nll_weight
            else "averaging the log-probabilities" if average else None
        ),
    )  # fmt: skip
    checks.python_number(fn, "beta", beta, low=0.0, low_inclusive=False)
    eps = float(checks.python_number(fn, "label_smoothing", label_smoothing, low=0.0, high=0.5))
    checks.python_number(fn, "simpo_gamma", simpo_gamma)
    checks.python_number(fn, "alphapo_alpha", alphapo_alpha)
    checks.reduction(fn, reduction)
    p_c, p_r = pairs.chosen, pairs.rejected
    if average:
        assert pairs.lengths is not None
        p_c, p_r = p_c / pairs.lengths[0], p_r / pairs.lengths[1]
    logps_c, logps_r = p_c, p_r  # what TRL logs: the (averaged) log-probabilities
    if alphapo_alpha:  # AlphaPO's reward (1 - p^-α)/α, written with expm1 for small α
        a = float(alphapo_alpha)
        p_c, p_r = -jnp.expm1(-a * p_c) / a, -jnp.expm1(-a * p_r) / a
    margin = p_c - p_r
    log_sigmoid = jax.nn.log_sigmoid
    if loss_type in ("sigmoid", "simpo"):
        if loss_type == "simpo":
            margin = margin - simpo_gamma / beta
        per_pair = -(1 - eps) * log_sigmoid(beta * margin) - eps * log_sigmoid(-beta * margin)
    elif loss_type == "hinge":
        per_pair = jax.nn.relu(1 - beta * margin)
    else:
        per_pair = (margin - 1 / (2 * beta)) ** 2
    extra = {}
    if nll_weight:  # a batch mean, added to every pair (TRL's mean + cpo_alpha · NLL)
        extra["nll"] = pairs.chosen_nll()
        per_pair = per_pair + nll_weight * extra["nll"]
    metrics = pairs.metrics(beta * p_c, beta * p_r, logps_c, logps_r, **extra)
    return PreferenceOutput(pairs.reduce(per_pair, reduction), metrics)


def simpo_loss(
    policy_chosen_logps: ArrayLike,
    policy_rejected_logps: ArrayLike,
    chosen_lengths: ArrayLike,
    rejected_lengths: ArrayLike,
    *,
    beta: float = 2.0,
    gamma: float = 0.5,
    label_smoothing: float = 0.0,
    nll_weight: float = 0.0,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
    axis_name: Any = None,
) -> PreferenceOutput:
    r"""SimPO (Meng et al. 2024): the reference-free, length-normalised preference loss
    $-\log\sigma(\beta(\bar\ell_c - \bar\ell_r) - \gamma)$ of the chosen and rejected
    completions' token-mean log-probabilities (with label smoothing ε:
    $-(1-ε)\log\sigma(z) - ε\log\sigma(-z)$). It is `cpo_loss` with ``loss_type="simpo"``
    (TRL runs SimPO as CPO with ``cpo_alpha = 0``; Liger's ``LigerFusedLinearSimPOLoss``
    takes the same arguments).

    Args:
      policy_chosen_logps: ``(B,)`` the sums of the chosen completions' token log-probabilities.
      policy_rejected_logps: ``(B,)`` the same for the rejected completions.
      chosen_lengths: ``(B,)`` the chosen completions' token counts.
      rejected_lengths: ``(B,)`` the rejected completions' token counts.
      beta: β > 0 (the paper's 2.0 to 2.5).
      gamma: γ, the target reward margin.
      label_smoothing: ε in [0, 0.5].
      nll_weight: an optional NLL term's weight (CPO-SimPO).
      where: optional boolean ``(B,)``: the pairs that count.
      reduction: ``'mean'``, ``'sum'`` or ``'none'``.
      axis_name: as in `dpo_loss`.

    Returns:
      `PreferenceOutput` ``(loss, metrics, None)``.

    Examples:
      >>> out = jaxloss.simpo_loss(
      ...     jnp.array([-10.0, -12.0]), jnp.array([-14.0, -11.0]),
      ...     jnp.array([5, 6]), jnp.array([7, 5]),
      ... )
      >>> out.loss
      Array(0.8592..., dtype=float32)
    """
    return cpo_loss(
        policy_chosen_logps,
        policy_rejected_logps,
        beta=beta,
        loss_type="simpo",
        label_smoothing=label_smoothing,
        simpo_gamma=gamma,
        nll_weight=nll_weight,
        chosen_lengths=chosen_lengths,
        rejected_lengths=rejected_lengths,
        where=where,
        reduction=reduction,
        axis_name=axis_name,
    )


def orpo_loss(
    policy_chosen_logps: ArrayLike,
    policy_rejected_logps: ArrayLike,
    chosen_lengths: ArrayLike,
    rejected_lengths: ArrayLike,
    *,
    beta: float = 0.1,
    nll_weight: float = 1.0,
    where: ArrayLike | None = None,
    axis_name: Any = None,
) -> PreferenceOutput:
    r"""ORPO (Hong et al. 2024), TRL's ``ORPOTrainer`` (``trl/experimental/orpo``): the
    chosen tokens' mean NLL minus β times the mean over the pairs of
    $\log\sigma\big(\log\frac{\mathrm{odds}(y_c)}{\mathrm{odds}(y_r)}\big)$, with
    $\mathrm{odds}(y) = p/(1-p)$ of the completion's token-mean log-probability $\log p$
    ($\log(1-p)$ formed stably as log1mexp).

    Args:
      policy_chosen_logps: ``(B,)`` the sums of the chosen completions' token log-probabilities.
      policy_rejected_logps: ``(B,)`` the same for the rejected completions.
      chosen_lengths: ``(B,)`` the chosen completions' token counts (the odds use the means).
      rejected_lengths: ``(B,)`` the rejected completions' token counts.
      beta: β > 0, the odds-ratio term's weight (TRL's λ).
      nll_weight: the NLL term's weight (1 in ORPO; Liger's ``compute_nll_loss``).
      where: optional boolean ``(B,)``: the pairs that count.
      axis_name: as in `dpo_loss`.

    Returns:
      `PreferenceOutput` ``(loss, metrics, None)``: a scalar loss, and the metrics with
      ``nll``, ``log_odds_ratio`` and ``log_odds_chosen``.

    Examples:
      >>> out = jaxloss.orpo_loss(
      ...     jnp.array([-10.0, -12.0]), jnp.array([-14.0, -11.0]),
      ...     jnp.array([5, 6]), jnp.array([7, 5]),
      ... )
      >>> out.loss
      Array(2.0639..., dtype=float32)
    """
    fn = "orpo_loss"
    pairs = _Pairs(
        fn,
        ("policy_chosen_logps", "policy_rejected_logps"),
        policy_chosen_logps,
        policy_rejected_logps,
        where=where,
        axis_name=axis_name,
        lengths=(chosen_lengths, rejected_lengths),
        lengths_for="ORPO's token means",
    )
    checks.python_number(fn, "beta", beta, low=0.0, low_inclusive=False)
    checks.python_number(fn, "nll_weight", nll_weight, low=0.0)
    assert pairs.lengths is not None
    mean_c, mean_r = pairs.chosen / pairs.lengths[0], pairs.rejected / pairs.lengths[1]
    log_odds = (mean_c - mean_r) - (_log1mexp(mean_c) - _log1mexp(mean_r))
    ratio = jax.nn.log_sigmoid(log_odds)
    nll = pairs.chosen_nll()
    metrics = pairs.metrics(
        beta * mean_c,
        beta * mean_r,
        mean_c,
        mean_r,
        nll=nll,
        log_odds_ratio=pairs.mean(ratio),
        log_odds_chosen=pairs.mean(log_odds),
    )
    return PreferenceOutput(nll_weight * nll - beta * pairs.mean(ratio), metrics)


def _log1mexp(x):
    """log(1 - e^x) for x < 0, stable at both ends (Mächler 2012)."""
    return jnp.where(x > -math.log(2), jnp.log(-jnp.expm1(x)), jnp.log1p(-jnp.exp(x)))


class KTOMetrics(NamedTuple):
    """What a KTO trainer logs, without gradient: the mean implicit reward β·(log π - log
    π_ref) of the desirable and of the undesirable completions and their difference, their
    mean log-probabilities (nan for a side with no example, as TRL leaves it out), and the KL
    estimate the loss used."""

    rewards_chosen: jax.Array
    rewards_rejected: jax.Array
    reward_margin: jax.Array
    logps_chosen: jax.Array
    logps_rejected: jax.Array
    kl: jax.Array


def kto_loss(
    policy_logps: ArrayLike,
    desirable: ArrayLike,
    ref_logps: ArrayLike | None = None,
    *,
    kl_policy_logps: ArrayLike | None = None,
    kl_ref_logps: ArrayLike | None = None,
    kl: ArrayLike | None = None,
    beta: float = 0.1,
    loss_type: Literal["kto", "apo_zero_unpaired"] = "kto",
    desirable_weight: float = 1.0,
    undesirable_weight: float = 1.0,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
    axis_name: Any = None,
) -> PreferenceOutput:
    r"""Kahneman–Tversky optimisation (KTO, Ethayarajh et al. 2024), TRL 1.16's
    ``KTOTrainer`` (``trl/trainer/kto_trainer.py``): unpaired completions, each desirable or
    not. With $r = \log\pi(y) - \log\pi_\mathrm{ref}(y)$ and the KL estimate $z_0$:

    - ``"kto"``: $w_D\,(1 - \sigma(\beta(r - z_0)))$ for a desirable completion,
      $w_U\,(1 - \sigma(\beta(z_0 - r)))$ for an undesirable one;
    - ``"apo_zero_unpaired"``: $w_D\,(1 - \sigma(\beta r))$ and $w_U\,\sigma(\beta r)$ (no KL);

    the loss is their mean over the counted completions. $z_0$ is TRL's batch estimate
    $\max(0, \mathrm{mean}(\log\pi(y') - \log\pi_\mathrm{ref}(y')))$ over mismatched
    (prompt, completion) pairs y' (``kl_policy_logps``, ``kl_ref_logps``; global across
    ``axis_name``), without gradient; or given as ``kl`` (Liger's argument, used as is).

    Args:
      policy_logps: ``(B,)`` the policy's log-probability of each completion (the sum over its
        tokens, TRL's and Liger's default).
      desirable: boolean ``(B,)``: True for a desirable (chosen) completion.
      ref_logps: optional ``(B,)`` the reference model's (no gradient; without it 0).
      kl_policy_logps: ``(B,)`` the policy's log-probabilities of the mismatched pairs.
      kl_ref_logps: ``(B,)`` the reference's log-probabilities of the mismatched pairs.
      kl: the KL estimate itself, a scalar (instead of the two above).
      beta: β > 0.
      loss_type: ``"kto"`` or ``"apo_zero_unpaired"``.
      desirable_weight: $w_D$ >= 0.
      undesirable_weight: $w_U$ >= 0.
      where: optional boolean ``(B,)``: the completions that count.
      reduction: ``'mean'``, ``'sum'`` or ``'none'``.
      axis_name: inside ``shard_map`` with the batch split over a mesh axis: the mean, the
        metrics and the KL estimate are global.

    Returns:
      `PreferenceOutput` ``(loss, KTOMetrics, None)``.

    Examples:
      >>> out = jaxloss.kto_loss(
      ...     jnp.array([-10.0, -12.0, -9.0]), jnp.array([True, False, True]),
      ...     jnp.array([-11.0, -11.5, -9.5]), kl=0.2,
      ... )
      >>> out.loss, out.metrics.rewards_chosen
      (Array(0.4850..., dtype=float32), Array(0.075, dtype=float32))
    """
    fn = "kto_loss"
    logps = _pair_array(fn, "policy_logps", policy_logps)
    if logps.ndim != 1:
        raise ValueError(
            f"{fn}: `policy_logps` must be (B,), one value per completion; got shape "
            f"{list(logps.shape)}."
        )
    shape = logps.shape
    labels = checks.as_array(fn, "desirable", desirable)
    if labels.dtype != jnp.bool_ or labels.shape != shape:
        raise ValueError(
            f"{fn}: `desirable` must be a boolean mask of the completions' shape {list(shape)}; "
            f"got {checks.describe(labels)}."
        )
    if loss_type not in ("kto", "apo_zero_unpaired"):
        raise ValueError(
            f"{fn}: `loss_type` must be 'kto' or 'apo_zero_unpaired'; got {loss_type!r}."
        )
    checks.python_number(fn, "beta", beta, low=0.0, low_inclusive=False)
    for name, value in (("desirable_weight", desirable_weight),
                        ("undesirable_weight", undesirable_weight)):  # fmt: skip
        checks.python_number(fn, name, value, low=0.0)
    checks.reduction(fn, reduction)
    pairs = _Pairs(fn, ("policy_logps", "policy_logps"), logps, logps, where=where,
                   axis_name=axis_name)  # fmt: skip
    compute = pairs.compute
    ref = jnp.zeros(shape, compute) if ref_logps is None else pairs.other("ref_logps", ref_logps)
    given = (kl_policy_logps is not None, kl_ref_logps is not None)
    if loss_type == "apo_zero_unpaired":
        if kl is not None or any(given):
            raise ValueError(f"{fn}: 'apo_zero_unpaired' takes no KL estimate.")
        z0 = jnp.zeros((), compute)
    elif kl is not None:
        if any(given):
            raise ValueError(
                f"{fn}: give the KL estimate `kl`, or the mismatched pairs' `kl_policy_logps` "
                "and `kl_ref_logps`, not both."
            )
        z0 = lax.stop_gradient(jnp.asarray(checks.as_array(fn, "kl", kl), compute))
        if z0.shape != ():
            raise ValueError(f"{fn}: `kl` must be a scalar; got shape {list(z0.shape)}.")
    elif all(given):
        kl_policy = pairs.other("kl_policy_logps", kl_policy_logps)
        kl_ref = pairs.other("kl_ref_logps", kl_ref_logps)
        z0 = jnp.maximum(pairs.mean(kl_policy - kl_ref), 0)
    else:
        raise ValueError(
            f"{fn}: 'kto' needs its KL estimate: the mismatched pairs' `kl_policy_logps` and "
            "`kl_ref_logps` (TRL's batch estimate), or `kl` (0.0 for none)."
        )
    r = pairs.chosen - ref
    sigmoid = jax.nn.sigmoid
    if loss_type == "kto":
        chosen_losses = 1 - sigmoid(beta * (r - z0))
        rejected_losses = 1 - sigmoid(beta * (z0 - r))
    else:
        chosen_losses, rejected_losses = 1 - sigmoid(beta * r), sigmoid(beta * r)
    per_example = jnp.where(
        labels, desirable_weight * chosen_losses, undesirable_weight * rejected_losses
    )
    rewards = lax.stop_gradient(beta * r)

    def side_mean(values, side):
        count = pairs.total(side.astype(compute))
        total = pairs.total(jnp.where(side, lax.stop_gradient(values), 0))
        return jnp.where(count > 0, total / jnp.maximum(count, 1), jnp.nan)

    rewards_chosen, rewards_rejected = side_mean(rewards, labels), side_mean(rewards, ~labels)
    metrics = KTOMetrics(
        rewards_chosen=rewards_chosen,
        rewards_rejected=rewards_rejected,
        reward_margin=rewards_chosen - rewards_rejected,
        logps_chosen=side_mean(pairs.chosen, labels),
        logps_rejected=side_mean(pairs.chosen, ~labels),
        kl=lax.stop_gradient(z0),
    )
    return PreferenceOutput(pairs.reduce(per_example, reduction), metrics)


def length_desensitized_logps(
    chosen_token_logps: ArrayLike,
    rejected_token_logps: ArrayLike,
    chosen_where: ArrayLike,
    rejected_where: ArrayLike,
    *,
    ld_alpha: float,
) -> tuple[jax.Array, jax.Array]:
    r"""LD-DPO's length-desensitised sequence log-probabilities (Liu et al. 2024; TRL's
    ``ld_alpha``): of each pair's two completions, the tokens up to the shorter one's length
    count fully and the longer one's remaining tokens with weight α.

    Args:
      chosen_token_logps: ``(B, T)`` per-token log-probabilities of the chosen rows.
      rejected_token_logps: ``(B, T)`` of the rejected rows.
      chosen_where: boolean ``(B, T)``: the chosen completions' tokens.
      rejected_where: boolean ``(B, T)``: the rejected completions' tokens.
      ld_alpha: α in [0, 1]: 1 is the plain sum, 0 drops the tail.

    Returns:
      ``(chosen, rejected)``, each ``(B,)``: the sums to give `dpo_loss` (for the policy and,
      with the same masks, the reference).

    Examples:
      >>> logps = jnp.array([[-1.0, -1.0, -1.0, 0.0]]), jnp.array([[-2.0, -2.0, 0.0, 0.0]])
      >>> masks = jnp.array([[True, True, True, False]]), jnp.array([[True, True, False, False]])
      >>> jaxloss.length_desensitized_logps(*logps, *masks, ld_alpha=0.5)
      (Array([-2.5], dtype=float32), Array([-4.], dtype=float32))
    """
    fn = "length_desensitized_logps"
    checks.python_number(fn, "ld_alpha", ld_alpha, low=0.0, high=1.0)
    sums = []
    positions = []
    for name, values, mask_name, mask in (
        ("chosen_token_logps", chosen_token_logps, "chosen_where", chosen_where),
        ("rejected_token_logps", rejected_token_logps, "rejected_where", rejected_where),
    ):
        array = checks.float_array(fn, name, values)
        if array.ndim != 2:
            raise ValueError(f"{fn}: `{name}` must be (B, T); got shape {list(array.shape)}.")
        counted = checks.where_mask(fn, mask, array.shape, f"`{name}`", name=mask_name)
        assert counted is not None
        sums.append((array, counted))
        positions.append(jnp.cumsum(counted, axis=-1))  # 1.. along each completion's tokens
    if sums[0][0].shape[0] != sums[1][0].shape[0]:
        raise ValueError(
            f"{fn}: the chosen and rejected rows must pair up; got {sums[0][0].shape[0]} and "
            f"{sums[1][0].shape[0]} rows."
        )
    shared = jnp.minimum(positions[0][:, -1], positions[1][:, -1])[:, None]
    out = []
    for (values, counted), position in zip(sums, positions):
        weight = jnp.where(position <= shared, 1.0, ld_alpha)
        weight = jnp.where(counted, weight, 0.0).astype(values.dtype)
        out.append(jnp.sum(values * weight, axis=-1))
    return out[0], out[1]


def wpo_weights(
    token_logps: ArrayLike,
    log_sum_sq_probs: ArrayLike,
    where: ArrayLike | None = None,
) -> jax.Array:
    r"""WPO's sequence weights (Zhou et al. 2024, Eq. 2; TRL 1.16's ``use_weighting``): the
    completion's probability under the policy, length-normalised and aligned to the policy's
    own sampling,

    $$w = \exp\Big(\frac{1}{n}\sum_{t} \big(\log\pi(y_t) - \log\textstyle\sum_v
    \pi(v)^2\big)\Big)$$

    over the completion's n counted tokens (n clamped to at least 1, as TRL does), as
    constants: no gradient flows through them. The pair weight `dpo_loss` takes is
    ``wpo_weights(chosen…) * wpo_weights(rejected…)``.

    Args:
      token_logps: ``(..., T)`` the policy's per-token log-probabilities of the completions
        (`jaxloss.linear_log_probs`).
      log_sum_sq_probs: ``(..., T)`` log Σ p² of the same positions (``log_sum_sq_probs`` of
        `jaxloss.linear_log_probs` with ``with_log_sum_sq_probs=True``).
      where: optional boolean ``(..., T)``: the completions' tokens (default: all).

    Returns:
      ``(...,)`` one weight per completion (float32 or wider).

    Examples:
      >>> logps = jnp.array([[-0.5, -1.5, 0.0]])
      >>> log_sum_sq = jnp.array([[-1.0, -1.0, -1.0]])
      >>> jaxloss.wpo_weights(logps, log_sum_sq, jnp.array([[True, True, False]]))
      Array([1.], dtype=float32)
    """
    fn = "wpo_weights"
    logps = checks.float_array(fn, "token_logps", token_logps)
    if logps.ndim < 1:
        raise ValueError(f"{fn}: `token_logps` must be (..., T); got a scalar.")
    sum_sq = checks.float_array(fn, "log_sum_sq_probs", log_sum_sq_probs)
    if sum_sq.shape != logps.shape:
        raise ValueError(
            f"{fn}: `log_sum_sq_probs` must have `token_logps`' shape {list(logps.shape)}; got "
            f"{list(sum_sq.shape)}."
        )
    counted = checks.where_mask(fn, where, logps.shape, "`token_logps`")
    compute = jnp.promote_types(jnp.result_type(logps, sum_sq), jnp.float32)
    aligned = lax.stop_gradient(logps.astype(compute) - sum_sq.astype(compute))
    # the mean over each completion's counted tokens, 0 for an empty one (TRL's clamp to 1)
    return jnp.exp(sequence_reduce(aligned, reduction="mean", where=counted))
