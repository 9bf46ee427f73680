"""The DPO family (jaxloss.dpo_loss, jaxloss.length_desensitized_logps) against TRL 1.16's
``DPOTrainer._compute_loss`` (``trl/trainer/dpo_trainer.py``, transcribed as NumPy: importing
TRL pulls in transformers) for every loss type and f-divergence, and end to end from hidden
states against Liger-Kernel 0.8.5's ``LigerFusedLinearDPOFunction`` (its pure-torch
``chunked_loss``, loaded without the triton ``__init__``) for the ten types it has: the fused
log-prob head, then the per-sequence sums, then the loss; values, metrics and the gradients
of the hidden states, the head and the bias, in float64 and float32.
"""

import itertools
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from jax.test_util import check_grads

import jaxloss
from jaxloss.parity.references import liger_chunked_loss
from jaxloss.preference import DPO_LOSS_TYPES, BCOState

B = 6  # pairs


def _log_sigmoid(z):
    return -np.logaddexp(0.0, -z)


def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


def _trl_dpo(p_c, p_r, ref_c, ref_r, n_c, n_r, loss_types, weights, beta, eps, f_div, alpha,
             tau=0.05, pair_weights=None):  # fmt: skip
    """TRL 1.16 ``DPOTrainer._compute_loss``'s loss (trl/trainer/dpo_trainer.py), from the
    sequence sums of the policy and the reference, and the completions' token counts; with
    `pair_weights` (``use_weighting``), each type's per-sequence loss is multiplied by them."""
    r_c, r_r = p_c - ref_c, p_r - ref_r
    if f_div == "reverse_kl":
        s_c, s_r = r_c, r_r
    elif f_div == "forward_kl":
        s_c, s_r = 1 - np.exp(-r_c), 1 - np.exp(-r_r)
    elif f_div == "js_divergence":
        s_c, s_r = np.log(2) + _log_sigmoid(r_c), np.log(2) + _log_sigmoid(r_r)
    else:
        coef = 1.0 / (alpha - 1.0)
        s_c = (np.exp(np.minimum((alpha - 1.0) * r_c, 80.0)) - 1.0) * coef
        s_r = (np.exp(np.minimum((alpha - 1.0) * r_r, 80.0)) - 1.0) * coef
    delta = s_c - s_r
    loss = 0.0
    for loss_type, weight in zip(loss_types, weights):
        if loss_type == "sigmoid":
            per = -_log_sigmoid(beta * delta)
        elif loss_type == "hinge":
            per = np.maximum(0, 1 - beta * delta)
        elif loss_type == "ipo":
            ipo = s_c / np.maximum(n_c, 1) - s_r / np.maximum(n_r, 1)
            per = (ipo - 1 / (2 * beta)) ** 2
        elif loss_type == "exo_pair":
            z = beta * delta
            per = _sigmoid(z) * (_log_sigmoid(z) - np.log1p(-eps)) + _sigmoid(-z) * (
                _log_sigmoid(-z) - np.log(eps)
            )
        elif loss_type == "nca_pair":
            c, r = beta * r_c, beta * r_r
            per = -_log_sigmoid(c) - 0.5 * _log_sigmoid(-c) - 0.5 * _log_sigmoid(-r)
        elif loss_type == "robust":
            z = beta * delta
            per = (-(1 - eps) * _log_sigmoid(z) + eps * _log_sigmoid(-z)) / (1 - 2 * eps)
        elif loss_type == "bco_pair":
            per = -_log_sigmoid(beta * r_c) - _log_sigmoid(-beta * r_r)
        elif loss_type == "sppo_hard":
            per = (r_c - 0.5 / beta) ** 2 + (r_r + 0.5 / beta) ** 2
        elif loss_type in ("aot", "aot_unpaired"):
            if loss_type == "aot":
                d = np.sort(p_c - p_r) - np.sort(ref_c - ref_r)
            else:
                d = np.sort(r_c) - np.sort(r_r)
            per = -_log_sigmoid(beta * d) * (1 - eps) - _log_sigmoid(-beta * d) * eps
        elif loss_type == "apo_zero":
            per = 1 - _sigmoid(beta * r_c) + _sigmoid(beta * r_r)
        elif loss_type == "apo_down":
            per = _sigmoid(beta * r_c) + 1 - _sigmoid(beta * (r_c - r_r))
        elif loss_type == "discopop":
            z = beta * delta
            m = _sigmoid(z / tau)
            per = -_log_sigmoid(z) * (1 - m) + np.exp(-z) * m
        elif loss_type == "sft":
            per = np.full_like(p_c, -p_c.sum() / n_c.sum())
        else:
            per = -_log_sigmoid(beta * (s_c / np.maximum(n_c, 1) - s_r / np.maximum(n_r, 1)))
        if pair_weights is not None:
            per = per * pair_weights
        loss = loss + per.mean() * weight
    return loss


def _trl_wpo_weights(token_logps, log_sum_sq_probs, mask):
    """TRL 1.16's WPO weights (``use_weighting``, trl/trainer/dpo_trainer.py): exp of the
    completion-mean of log π - log Σp², the count clamped to 1."""
    aligned = (token_logps - log_sum_sq_probs) * mask
    return np.exp(aligned.sum(1) / np.maximum(mask.sum(1), 1))


def _pairs(seed=0):
    rng = np.random.default_rng(seed)
    n_c, n_r = rng.integers(3, 20, B).astype(float), rng.integers(3, 20, B).astype(float)
    p_c, p_r = -rng.uniform(0.5, 2.0, B) * n_c, -rng.uniform(0.5, 2.0, B) * n_r
    ref_c, ref_r = p_c + rng.normal(size=B) * 2, p_r + rng.normal(size=B) * 2
    return p_c, p_r, ref_c, ref_r, n_c, n_r


def _options(loss_type):
    return dict(label_smoothing=0.1 if loss_type in ("exo_pair", "robust", "aot") else 0.0)


CASES = [(t, "reverse_kl") for t in DPO_LOSS_TYPES] + [
    (t, f)
    for t, f in itertools.product(
        ["sigmoid", "ipo", "exo_pair", "discopop", "sigmoid_norm"],
        ["forward_kl", "js_divergence", "alpha_divergence"],
    )
]


# Every type with DPO's reverse KL, and each other divergence once, in the default tier.
DEFAULT_CASES = {c for c in CASES if c[1] == "reverse_kl"} | {
    ("sigmoid", "forward_kl"),
    ("ipo", "js_divergence"),
    ("discopop", "alpha_divergence"),
}


@pytest.mark.parametrize(
    "loss_type,f_divergence",
    [c if c in DEFAULT_CASES else pytest.param(*c, marks=pytest.mark.slow) for c in CASES],
)
def test_every_loss_type_is_trl_s(loss_type, f_divergence, x64):
    """Each loss type (with each f-divergence where TRL allows one) equals TRL's formula in
    float64, and its gradient with respect to the policy's log-probabilities is the numerical
    one."""
    p_c, p_r, ref_c, ref_r, n_c, n_r = _pairs()
    options = _options(loss_type)
    beta = 0.3

    def ours(p_c, p_r):
        return jaxloss.dpo_loss(
            p_c, p_r, ref_c, ref_r, beta=beta, loss_type=loss_type, f_divergence=f_divergence,
            alpha_divergence_coef=0.3, chosen_lengths=n_c, rejected_lengths=n_r, **options,
        ).loss  # fmt: skip

    want = _trl_dpo(p_c, p_r, ref_c, ref_r, n_c, n_r, [loss_type], [1.0], beta,
                    options["label_smoothing"], f_divergence, 0.3)  # fmt: skip
    np.testing.assert_allclose(ours(p_c, p_r), want, rtol=1e-12)
    check_grads(ours, (p_c, p_r), order=1, modes=["rev"], atol=1e-6, rtol=1e-6)


def test_combined_types_weights_metrics_and_reference_free(x64):
    """Weighted combinations are TRL's Σ weight · mean; the metrics are TRL's logged means;
    without a reference the reference terms are 0."""
    p_c, p_r, ref_c, ref_r, n_c, n_r = _pairs(1)
    types, weights = ("sigmoid", "sft", "bco_pair"), (0.8, 0.2, 1.0)
    out = jaxloss.dpo_loss(
        p_c, p_r, ref_c, ref_r, beta=0.2, loss_type=types, loss_weights=weights,
        chosen_lengths=n_c, rejected_lengths=n_r,
    )  # fmt: skip
    want = _trl_dpo(p_c, p_r, ref_c, ref_r, n_c, n_r, types, weights, 0.2, 0.0, "reverse_kl", 0)
    np.testing.assert_allclose(out.loss, want, rtol=1e-12)
    rewards_c, rewards_r = 0.2 * (p_c - ref_c), 0.2 * (p_r - ref_r)
    expected = dict(
        rewards_chosen=rewards_c.mean(),
        rewards_rejected=rewards_r.mean(),
        reward_margin=(rewards_c - rewards_r).mean(),
        reward_accuracy=(rewards_c > rewards_r).mean(),
        logps_chosen=p_c.mean(),
        logps_rejected=p_r.mean(),
    )
    for name, value in expected.items():
        np.testing.assert_allclose(getattr(out.metrics, name), value, rtol=1e-12, err_msg=name)
    free = jaxloss.dpo_loss(p_c, p_r, beta=0.2).loss
    zeros = np.zeros(B)
    np.testing.assert_allclose(
        free, _trl_dpo(p_c, p_r, zeros, zeros, n_c, n_r, ["sigmoid"], [1], 0.2, 0, "reverse_kl", 0)
    )


def test_where_and_reductions(x64):
    """Pairs outside `where` take no part: the loss and metrics equal those of the counted
    pairs alone (the sorting 'aot' types included), 'none' gives 0 there, 'sum' sums."""
    p_c, p_r, ref_c, ref_r, n_c, n_r = _pairs(2)
    where = np.array([True, False, True, True, False, True])
    for loss_type in ("sigmoid", "aot", "aot_unpaired", "sft", "ipo"):
        options = dict(beta=0.2, loss_type=loss_type, **_options(loss_type))
        masked = jaxloss.dpo_loss(
            p_c, p_r, ref_c, ref_r, chosen_lengths=n_c, rejected_lengths=n_r, where=where,
            **options,
        )  # fmt: skip
        subset = [a[where] for a in (p_c, p_r, ref_c, ref_r, n_c, n_r)]
        alone = jaxloss.dpo_loss(
            *subset[:4], chosen_lengths=subset[4], rejected_lengths=subset[5], **options
        )
        np.testing.assert_allclose(masked.loss, alone.loss, rtol=1e-12, err_msg=loss_type)
        for got, want in zip(jax.tree.leaves(masked.metrics), jax.tree.leaves(alone.metrics)):
            np.testing.assert_allclose(got, want, rtol=1e-12)
    none = jaxloss.dpo_loss(p_c, p_r, ref_c, ref_r, where=where, reduction="none").loss
    assert np.all(np.asarray(none)[~where] == 0)
    total = jaxloss.dpo_loss(p_c, p_r, ref_c, ref_r, where=where, reduction="sum").loss
    np.testing.assert_allclose(total, np.sum(none), rtol=1e-12)


def test_bco_running_mean_state(x64):
    """With a BCOState, 'bco_pair' subtracts the running mean of the batch-mean rewards (the
    original BCO, TRL before 1.0: mean + (batch mean - mean)/count) and returns it updated."""
    p_c, p_r, ref_c, ref_r, _, _ = _pairs(3)
    state = BCOState.initial()
    for step in range(3):
        shift = 0.5 * step
        out = jaxloss.dpo_loss(
            p_c + shift, p_r, ref_c, ref_r, beta=0.2, loss_type="bco_pair", bco_state=state
        )
        rewards_c, rewards_r = 0.2 * (p_c + shift - ref_c), 0.2 * (p_r - ref_r)
        batch = np.concatenate([rewards_c, rewards_r]).mean()
        mean = float(state.mean) + (batch - float(state.mean)) / (step + 1)
        want = -_log_sigmoid(rewards_c - mean) - _log_sigmoid(-(rewards_r - mean))
        np.testing.assert_allclose(out.loss, want.mean(), rtol=1e-12)
        assert out.bco_state is not None
        np.testing.assert_allclose(out.bco_state.mean, mean, rtol=1e-12)
        state = out.bco_state
    assert float(state.count) == 3


WPO_TYPES = [t for t in DPO_LOSS_TYPES if t not in ("aot", "aot_unpaired")]


def test_wpo_weighting_is_trl_s(x64):
    """TRL's use_weighting: per-token log π and log Σp² → each completion's weight (no
    gradient), their product weighting every type's per-pair loss, combined types included;
    the gradient with respect to the policy's sums is the numerical one."""
    rng = np.random.default_rng(6)
    tokens = 9
    token_logps = -rng.uniform(0.1, 3.0, (2 * B, tokens))
    log_sum_sq = -rng.uniform(0.5, 2.0, (2 * B, tokens))
    mask = np.zeros((2 * B, tokens), bool)
    for row in range(2 * B):
        start = rng.integers(0, 3)
        mask[row, start : start + rng.integers(1, 7)] = True
    mask[3] = False  # an empty completion: its count clamps to 1, its weight is 1
    weights = _trl_wpo_weights(token_logps, log_sum_sq, mask)
    pair_weights = weights[:B] * weights[B:]
    got_weights = jaxloss.wpo_weights(token_logps, log_sum_sq, mask)
    np.testing.assert_allclose(got_weights, weights, rtol=1e-13)
    assert float(got_weights[3]) == 1.0
    grad = jax.grad(lambda lp: jnp.sum(jaxloss.wpo_weights(lp, log_sum_sq, mask)))(token_logps)
    assert np.all(np.asarray(grad) == 0.0)  # constants, as TRL's torch.no_grad

    sums = (token_logps * mask).sum(1)
    counts = mask.sum(1).astype(float)
    p_c, p_r, n_c, n_r = sums[:B], sums[B:], counts[:B], counts[B:]
    ref_c, ref_r = p_c + rng.normal(size=B), p_r + rng.normal(size=B)
    for types, type_weights in [*(((t,), (1.0,)) for t in WPO_TYPES),
                                (("sigmoid", "sft"), (1.0, 0.3))]:  # fmt: skip
        eps = max(_options(t)["label_smoothing"] for t in types)

        def ours(p_c, p_r, types=types, type_weights=type_weights, eps=eps):
            return jaxloss.dpo_loss(
                p_c, p_r, ref_c, ref_r, beta=0.3, loss_type=types, loss_weights=type_weights,
                label_smoothing=eps, chosen_lengths=n_c, rejected_lengths=n_r,
                pair_weights=got_weights[:B] * got_weights[B:],
            ).loss  # fmt: skip

        want = _trl_dpo(p_c, p_r, ref_c, ref_r, n_c, n_r, types, type_weights, 0.3, eps,
                        "reverse_kl", 0.0, pair_weights=pair_weights)  # fmt: skip
        np.testing.assert_allclose(ours(p_c, p_r), want, rtol=1e-12, err_msg=str(types))
        if types == ("sigmoid", "sft"):
            check_grads(ours, (p_c, p_r), order=1, modes=["rev"], atol=1e-6, rtol=1e-6)


def test_wpo_weights_from_the_fused_head(x64):
    """The weights from `linear_log_probs(with_log_sum_sq_probs=True)` on the fused head are
    TRL's formula on the full softmax."""
    x, w, b, *_, labels = _heads(7, "float64")
    stats = jaxloss.linear_log_probs(
        x, w, labels, bias=b, with_log_sum_sq_probs=True, chunk_size=16
    )
    got = jaxloss.wpo_weights(stats.log_probs, stats.log_sum_sq_probs, labels != -100)
    logits = x @ w.T + b
    log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    token_logps = np.take_along_axis(log_p, np.maximum(labels, 0)[..., None], -1)[..., 0]
    log_sum_sq = np.log(np.exp(2 * log_p).sum(-1))
    want = _trl_wpo_weights(token_logps, log_sum_sq, labels != -100)
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_length_desensitized_logps_is_trl_s(x64):
    """TRL's ld_alpha: each pair's tokens up to the shorter completion's length count fully,
    the longer one's tail with weight α (masks with prompt and padding positions)."""
    rng = np.random.default_rng(4)
    logps = rng.normal(size=(2, 3, 12))
    masks = np.zeros((2, 3, 12), bool)
    for side, row in itertools.product(range(2), range(3)):
        start, length = rng.integers(0, 4), rng.integers(1, 8)
        masks[side, row, start : start + length] = True
    chosen, rejected = jaxloss.length_desensitized_logps(
        logps[0], logps[1], masks[0], masks[1], ld_alpha=0.3
    )
    position = masks.cumsum(-1)
    shared = np.minimum(masks[0].sum(-1), masks[1].sum(-1))[None, :, None]
    shared_mask = (position > 0) & (position <= shared) & masks
    tail_mask = (position > shared) & masks
    want = (logps * shared_mask).sum(-1) + 0.3 * (logps * tail_mask).sum(-1)
    np.testing.assert_allclose(chosen, want[0], rtol=1e-12)
    np.testing.assert_allclose(rejected, want[1], rtol=1e-12)


# --------------------------------------------------------------- Liger, from hidden states

T, D, V = 7, 5, 13
LIGER_TYPES = ["sigmoid", "hinge", "exo_pair", "nca_pair", "robust", "bco_pair", "sppo_hard",
               "apo_zero", "apo_down", "discopop"]  # fmt: skip
# (loss type, dtype, average_log_prob, compute_nll_loss, bias): every type in float64 and
# float32; a default tier that covers each option once
LIGER_CASES = [
    (t, dtype, i % 3 == 0, i % 2 == 0, i % 4 != 1)
    for i, (t, dtype) in enumerate(itertools.product(LIGER_TYPES, ["float64", "float32"]))
]
DEFAULT_TIER = {0, 9}


def _heads(seed, dtype):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(2 * 3, T, D)).astype(dtype)  # 3 chosen rows, then 3 rejected
    w = (rng.normal(size=(V, D)) * 0.6).astype(dtype)
    b = rng.normal(size=V).astype(dtype)
    ref_x = x + 0.3 * rng.normal(size=x.shape).astype(dtype)
    ref_w = w + 0.1 * rng.normal(size=w.shape).astype(dtype)
    ref_b = b + 0.1 * rng.normal(size=V).astype(dtype)
    y = rng.integers(0, V, (2 * 3, T))
    y[:, :2] = -100  # the prompt
    y[[1, 4], -2:] = -100  # padding
    return x, w, b, ref_x, ref_w, ref_b, y


def liger_dpo_pairs(loss_type, dtype, average, nll, bias):
    """(ours, Liger's) of the loss, its metrics and the x, w (and bias) gradients: Liger's
    ``LigerFusedLinearDPOFunction`` with a reference model, against `linear_log_probs`, then
    `sequence_sums`, then `dpo_loss` (``sft`` weighted α is Liger's NLL term)."""
    liger = liger_chunked_loss()
    x, w, b, ref_x, ref_w, ref_b, y = _heads(LIGER_TYPES.index(loss_type), np.dtype(dtype))
    beta, alpha = 0.3, 0.7
    eps = 0.1 if loss_type in ("exo_pair", "robust") else 0.0
    tensors = [torch.from_numpy(a).requires_grad_(True) for a in (x, w, b)]
    ref = [torch.from_numpy(a) for a in (ref_x, ref_w, ref_b)]
    loss, aux = liger.LigerFusedLinearDPOFunction.apply(
        tensors[0], tensors[1], torch.from_numpy(y), tensors[2] if bias else None,
        ref[0], ref[1], ref[2] if bias else None, -100, beta, nll, False, True, average, 1,
        loss_type, eps, 0.05, alpha,
    )  # fmt: skip
    loss.backward()

    def sums(x, w, b):
        log_probs = jaxloss.linear_log_probs(x, w, y, bias=b if bias else None, chunk_size=8)
        return jaxloss.sequence_sums(log_probs, where=y != -100)

    def ours(x, w, b):
        policy, counts = sums(x, w, b)
        reference, _ = sums(ref_x, ref_w, ref_b)
        out = jaxloss.dpo_loss(
            policy[:3], policy[3:], reference[:3], reference[3:], beta=beta,
            loss_type=(loss_type, "sft") if nll else loss_type,
            loss_weights=(1.0, alpha) if nll else None, label_smoothing=eps,
            chosen_lengths=counts[:3], rejected_lengths=counts[3:], average_log_prob=average,
        )  # fmt: skip
        return out.loss, out.metrics

    (value, metrics), grads = jax.value_and_grad(ours, (0, 1, 2), has_aux=True)(x, w, b)
    chosen_logps, rejected_logps, _, _, _, chosen_rewards, rejected_rewards = aux
    pairs = {
        "loss": (value, loss),
        "logps_chosen": (metrics.logps_chosen, chosen_logps.mean()),
        "logps_rejected": (metrics.logps_rejected, rejected_logps.mean()),
        "rewards_chosen": (metrics.rewards_chosen, chosen_rewards.mean()),
        "rewards_rejected": (metrics.rewards_rejected, rejected_rewards.mean()),
    }
    for name, got, tensor in zip(("dx", "dw", "db") if bias else ("dx", "dw"), grads, tensors):
        pairs[name] = (got, tensor.grad)
    return {k: (np.asarray(g), t.detach().numpy()) for k, (g, t) in pairs.items()}


@pytest.mark.parametrize(
    "loss_type,dtype,average,nll,bias",
    [c if i in DEFAULT_TIER else pytest.param(*c, marks=pytest.mark.slow)
     for i, c in enumerate(LIGER_CASES)],
)  # fmt: skip
def test_end_to_end_from_hidden_states_is_liger_s(loss_type, dtype, average, nll, bias, x64):
    # Liger's log-softmax is float32 whatever the inputs' dtype
    rtol, atol = (1e-5, 1e-6) if dtype == "float64" else (2e-5, 2e-5)
    for name, (ours, theirs) in liger_dpo_pairs(loss_type, dtype, average, nll, bias).items():
        np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=atol, err_msg=name)


# ------------------------------------------------------------------- CPO, SimPO and ORPO


def _trl_cpo(p_c, p_r, n_c, n_r, loss_type, beta, eps, gamma, alpha, cpo_alpha):
    """TRL 1.16 ``CPOTrainer`` (trl/experimental/cpo/cpo_trainer.py): ``cpo_loss`` on the
    log-probabilities (token means for 'ipo' and 'simpo', sums otherwise), then
    ``losses.mean() + cpo_alpha * policy_nll_loss``."""
    nll = -p_c.sum() / n_c.sum()
    if loss_type in ("ipo", "simpo"):
        p_c, p_r = p_c / n_c, p_r / n_r
    if alpha:
        p_c, p_r = (1 - np.exp(p_c) ** -alpha) / alpha, (1 - np.exp(p_r) ** -alpha) / alpha
    logits = p_c - p_r
    if loss_type == "simpo":
        logits = logits - gamma / beta
    if loss_type in ("sigmoid", "simpo"):
        losses = -_log_sigmoid(beta * logits) * (1 - eps) - _log_sigmoid(-beta * logits) * eps
    elif loss_type == "hinge":
        losses = np.maximum(0, 1 - beta * logits)
    else:
        losses = (logits - 1 / (2 * beta)) ** 2
    return losses.mean() + cpo_alpha * nll


def _trl_orpo(p_c, p_r, n_c, n_r, beta):
    """TRL 1.16 ``ORPOTrainer`` (trl/experimental/orpo/orpo_trainer.py): the NLL minus the
    mean of β·``odds_ratio_loss`` of the token-mean log-probabilities."""
    nll = -p_c.sum() / n_c.sum()
    c, r = p_c / n_c, p_r / n_r
    log_odds = (c - r) - (np.log1p(-np.exp(c)) - np.log1p(-np.exp(r)))
    return nll - (beta * _log_sigmoid(log_odds)).mean()


@pytest.mark.parametrize(
    "loss_type,alpha", [("sigmoid", 0.0), ("hinge", 0.0), ("ipo", 0.0), ("simpo", 0.0),
                        ("sigmoid", 0.25)],
)  # fmt: skip
def test_cpo_and_orpo_are_trl_s(loss_type, alpha, x64):
    """cpo_loss (every type, AlphaPO) and orpo_loss equal TRL's formulas in float64; their
    gradients are the numerical ones."""
    p_c, p_r, _, _, n_c, n_r = _pairs(5)
    p_c, p_r = p_c / 4, p_r / 4  # AlphaPO's p^-α stays moderate
    eps = 0.1 if loss_type in ("sigmoid", "simpo") else 0.0

    def cpo(p_c, p_r):
        return jaxloss.cpo_loss(
            p_c, p_r, beta=0.3, loss_type=loss_type, label_smoothing=eps, simpo_gamma=0.4,
            alphapo_alpha=alpha, nll_weight=0.7, chosen_lengths=n_c, rejected_lengths=n_r,
        ).loss  # fmt: skip

    want = _trl_cpo(p_c, p_r, n_c, n_r, loss_type, 0.3, eps, 0.4, alpha, 0.7)
    np.testing.assert_allclose(cpo(p_c, p_r), want, rtol=1e-12)
    check_grads(cpo, (p_c, p_r), order=1, modes=["rev"], atol=1e-6, rtol=1e-6)
    if loss_type == "simpo":
        simpo = jaxloss.simpo_loss(p_c, p_r, n_c, n_r, beta=0.3, gamma=0.4, label_smoothing=eps)
        np.testing.assert_allclose(
            simpo.loss, _trl_cpo(p_c, p_r, n_c, n_r, "simpo", 0.3, eps, 0.4, 0.0, 0.0), rtol=1e-12
        )
    if loss_type == "sigmoid" and not alpha:

        def orpo(p_c, p_r):
            return jaxloss.orpo_loss(p_c, p_r, n_c, n_r, beta=0.2).loss

        np.testing.assert_allclose(orpo(p_c, p_r), _trl_orpo(p_c, p_r, n_c, n_r, 0.2), rtol=1e-12)
        check_grads(orpo, (p_c, p_r), order=1, modes=["rev"], atol=1e-6, rtol=1e-6)


def test_orpo_log1mexp_is_stable_near_zero_log_probability(x64):
    """The odds of a completion whose token-mean log-probability is near 0 (p near 1): the
    log odds ratio stays finite and its gradient too."""
    p_c, p_r = np.array([-1e-9, -3.0]), np.array([-2.0, -1e-12])
    out = jaxloss.orpo_loss(p_c, p_r, np.ones(2), np.ones(2))
    grads = jax.grad(lambda c, r: jaxloss.orpo_loss(c, r, np.ones(2), np.ones(2)).loss, (0, 1))(
        p_c, p_r
    )
    assert np.isfinite(out.loss) and all(np.all(np.isfinite(g)) for g in grads)
    assert np.isfinite(out.metrics.log_odds_chosen)


PAIRED_LIGER = [  # (the loss, dtype, its options)
    ("cpo", "float64", dict(label_smoothing=0.1, average=False)),
    ("cpo", "float32", dict(label_smoothing=0.0, average=True)),
    ("simpo", "float64", dict(label_smoothing=0.1)),
    ("simpo", "float32", dict(label_smoothing=0.0)),
    ("orpo", "float64", {}),
    ("orpo", "float32", {}),
]


def paired_liger_pairs(name, dtype, options):
    """(ours, Liger's) of the loss, the logged log-probabilities and rewards (ORPO: its log
    odds) and the x, w, bias gradients, from hidden states: linear_log_probs, sequence_sums,
    then cpo_loss / simpo_loss / orpo_loss against Liger's LigerFusedLinear{CPO,SimPO,ORPO}
    Function (the NLL term on for CPO and ORPO)."""
    liger = liger_chunked_loss()
    x, w, b, *_, y = _heads(11, np.dtype(dtype))
    beta, eps = 0.3, options.get("label_smoothing", 0.0)
    tensors = [torch.from_numpy(a).requires_grad_(True) for a in (x, w, b)]
    target = torch.from_numpy(y)
    if name == "cpo":
        loss, aux = liger.LigerFusedLinearCPOFunction.apply(
            *tensors[:2], target, tensors[2], -100, beta, 0.7, eps, True, False,
            options["average"], 1,
        )  # fmt: skip
    elif name == "simpo":
        loss, aux = liger.LigerFusedLinearSimPOFunction.apply(
            *tensors[:2], target, tensors[2], -100, beta, 1.0, eps, False, False, 0.4, 1
        )
    else:
        loss, aux = liger.LigerFusedLinearORPOFunction.apply(
            *tensors[:2], target, tensors[2], -100, beta, True, None, False, 1
        )
    loss.backward()

    def ours(x, w, b):
        log_probs = jaxloss.linear_log_probs(x, w, y, bias=b, chunk_size=8)
        sums, counts = jaxloss.sequence_sums(log_probs, where=y != -100)
        args = (sums[:3], sums[3:])
        lengths = dict(chosen_lengths=counts[:3], rejected_lengths=counts[3:])
        if name == "cpo":
            out = jaxloss.cpo_loss(
                *args, beta=beta, label_smoothing=eps, nll_weight=0.7,
                average_log_prob=options["average"], **lengths,
            )  # fmt: skip
        elif name == "simpo":
            out = jaxloss.simpo_loss(*args, counts[:3], counts[3:], beta=beta, gamma=0.4,
                                     label_smoothing=eps)  # fmt: skip
        else:
            out = jaxloss.orpo_loss(*args, counts[:3], counts[3:], beta=beta)
        return out.loss, out.metrics

    (value, metrics), grads = jax.value_and_grad(ours, (0, 1, 2), has_aux=True)(x, w, b)
    chosen_logps, rejected_logps, _, _, _, chosen_rewards, rejected_rewards = aux[:7]
    pairs = {
        "loss": (value, loss),
        "logps_chosen": (metrics.logps_chosen, chosen_logps.mean()),
        "logps_rejected": (metrics.logps_rejected, rejected_logps.mean()),
        "rewards_chosen": (metrics.rewards_chosen, chosen_rewards.mean()),
        "rewards_rejected": (metrics.rewards_rejected, rejected_rewards.mean()),
        "dx": (grads[0], tensors[0].grad),
        "dw": (grads[1], tensors[1].grad),
        "db": (grads[2], tensors[2].grad),
    }
    if name == "orpo":
        pairs["log_odds_ratio"] = (metrics.log_odds_ratio, aux[7])
        pairs["log_odds_chosen"] = (metrics.log_odds_chosen, aux[8])
    return {k: (np.asarray(g), t.detach().numpy()) for k, (g, t) in pairs.items()}


@pytest.mark.parametrize(
    "name,dtype,options",
    [c if c[1] == "float64" else pytest.param(*c, marks=pytest.mark.slow) for c in PAIRED_LIGER],
)
def test_cpo_simpo_orpo_end_to_end_are_liger_s(name, dtype, options, x64):
    rtol, atol = (1e-5, 1e-6) if dtype == "float64" else (2e-5, 2e-5)
    for key, (ours, theirs) in paired_liger_pairs(name, dtype, options).items():
        np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=atol, err_msg=key)


# ------------------------------------------------------------------------------------ KTO


def _trl_kto(logps, labels, ref, kl_policy, kl_ref, beta, loss_type, w_d, w_u):
    """TRL 1.16 ``KTOTrainer._compute_loss`` (trl/trainer/kto_trainer.py): the batch KL
    estimate clamped at 0, the weighted chosen and rejected losses concatenated, their mean."""
    kl = max((kl_policy - kl_ref).mean(), 0.0) if loss_type == "kto" else 0.0
    r_c, r_r = logps[labels] - ref[labels], logps[~labels] - ref[~labels]
    if loss_type == "kto":
        chosen, rejected = 1 - _sigmoid(beta * (r_c - kl)), 1 - _sigmoid(beta * (kl - r_r))
    else:
        chosen, rejected = 1 - _sigmoid(beta * r_c), _sigmoid(beta * r_r)
    return np.concatenate([w_d * chosen, w_u * rejected]).mean(), kl


@pytest.mark.parametrize("loss_type,kl_sign", [("kto", 1.0), ("kto", -1.0),
                                               ("apo_zero_unpaired", 1.0)])  # fmt: skip
def test_kto_is_trl_s(loss_type, kl_sign, x64):
    """kto_loss equals TRL's KTO (the KL estimate from mismatched pairs, clamped at 0 when the
    mean is negative; desirable and undesirable weights) and its unpaired APO; gradients are
    the numerical ones, and none flows through the KL estimate."""
    rng = np.random.default_rng(7)
    logps, ref = -rng.uniform(5, 20, 8), -rng.uniform(5, 20, 8)
    labels = np.array([True, False, True, True, False, False, True, False])
    kl_ref = -rng.uniform(5, 20, 8)
    kl_policy = kl_ref + kl_sign * rng.uniform(0.1, 1.0, 8)
    options = dict(beta=0.3, loss_type=loss_type, desirable_weight=1.3, undesirable_weight=0.8)
    kl_args = dict(kl_policy_logps=kl_policy, kl_ref_logps=kl_ref) if loss_type == "kto" else {}

    def ours(logps, kl_policy):
        args = dict(kl_args, kl_policy_logps=kl_policy) if kl_args else {}
        return jaxloss.kto_loss(logps, labels, ref, **args, **options).loss

    want, kl = _trl_kto(logps, labels, ref, kl_policy, kl_ref, 0.3, loss_type, 1.3, 0.8)
    np.testing.assert_allclose(ours(logps, kl_policy), want, rtol=1e-12)
    check_grads(lambda lp: ours(lp, kl_policy), (logps,), order=1, modes=["rev"], atol=1e-7)
    assert np.all(np.asarray(jax.grad(ours, 1)(logps, kl_policy)) == 0)
    out = jaxloss.kto_loss(logps, labels, ref, **kl_args, **options)
    np.testing.assert_allclose(out.metrics.kl, kl, rtol=1e-12, atol=1e-15)
    rewards = 0.3 * (logps - ref)
    np.testing.assert_allclose(out.metrics.rewards_chosen, rewards[labels].mean(), rtol=1e-12)
    np.testing.assert_allclose(out.metrics.logps_rejected, logps[~labels].mean(), rtol=1e-12)


@pytest.mark.parametrize("dtype", ["float64", pytest.param("float32", marks=pytest.mark.slow)])
def test_kto_end_to_end_is_liger_s(dtype, x64):
    """From hidden states: linear_log_probs, sequence_sums, kto_loss with a given KL against
    Liger's LigerFusedLinearKTOFunction with a reference model: the loss, the logged sums of
    the chosen and rejected log-probabilities and rewards, and the x, w, bias gradients."""
    liger = liger_chunked_loss()
    x, w, b, ref_x, ref_w, ref_b, y = _heads(12, np.dtype(dtype))
    labels = np.array([True, False, False, True, True, False])
    beta, kl = 0.3, 0.4
    tensors = [torch.from_numpy(a).requires_grad_(True) for a in (x, w, b)]
    ref = [torch.from_numpy(a) for a in (ref_x, ref_w, ref_b)]
    loss, aux = liger.LigerFusedLinearKTOFunction.apply(
        tensors[0], tensors[1], torch.from_numpy(y), torch.from_numpy(labels), tensors[2],
        *ref, torch.tensor(kl, dtype=tensors[0].dtype), -100, beta, False, True, False, 1,
    )  # fmt: skip
    loss.backward()

    def ours(x, w, b):
        def sums(x, w, b):
            log_probs = jaxloss.linear_log_probs(x, w, y, bias=b, chunk_size=8)
            return jaxloss.sequence_sums(log_probs, where=y != -100).sums

        out = jaxloss.kto_loss(sums(x, w, b), labels, sums(ref_x, ref_w, ref_b), kl=kl, beta=beta)
        return out.loss, out.metrics

    (value, metrics), grads = jax.value_and_grad(ours, (0, 1, 2), has_aux=True)(x, w, b)
    rtol, atol = (1e-5, 1e-6) if dtype == "float64" else (2e-5, 2e-5)
    np.testing.assert_allclose(value, loss.detach().numpy(), rtol=rtol, atol=atol)
    chosen_sum, rejected_sum, _, _, chosen_rewards_sum, rejected_rewards_sum = aux
    counts = labels.sum(), (~labels).sum()
    for got, theirs in [
        (metrics.logps_chosen * counts[0], chosen_sum),
        (metrics.logps_rejected * counts[1], rejected_sum),
        (metrics.rewards_chosen * counts[0], chosen_rewards_sum),
        (metrics.rewards_rejected * counts[1], rejected_rewards_sum),
    ]:
        np.testing.assert_allclose(got, theirs.detach().numpy(), rtol=rtol, atol=atol)
    for got, tensor in zip(grads, tensors):
        np.testing.assert_allclose(got, tensor.grad.numpy(), rtol=rtol, atol=atol)


# ------------------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    "call,words",
    [
        (lambda: jaxloss.dpo_loss(jnp.zeros(3), jnp.zeros(4)), "`policy_rejected_logps` must"),
        (lambda: jaxloss.dpo_loss(jnp.zeros(3), jnp.zeros(3), loss_type="dpo"), "one of"),
        (
            lambda: jaxloss.dpo_loss(jnp.zeros(3), jnp.zeros(3), loss_type="exo_pair"),
            "'exo_pair' needs `label_smoothing`",
        ),
        (
            lambda: jaxloss.dpo_loss(
                jnp.zeros(3), jnp.zeros(3), loss_type="robust", label_smoothing=0.5
            ),
            "'robust' must be in [0, 0.5)",
        ),
        (lambda: jaxloss.dpo_loss(jnp.zeros(3), jnp.zeros(3), beta=0.0), "`beta` must be > 0"),
        (
            lambda: jaxloss.dpo_loss(jnp.zeros(3), jnp.zeros(3), loss_type="ipo"),
            "needs the completions' token counts",
        ),
        (
            lambda: jaxloss.dpo_loss(
                jnp.zeros(3), jnp.zeros(3), loss_type="nca_pair", f_divergence="forward_kl"
            ),
            "only defined for the loss types",
        ),
        (
            lambda: jaxloss.dpo_loss(jnp.zeros(3), jnp.zeros(3), jnp.zeros(3)),
            "give both `ref_chosen_logps`",
        ),
        (
            lambda: jaxloss.dpo_loss(
                jnp.zeros(3), jnp.zeros(3), loss_type=("sigmoid", "sft"), loss_weights=(1.0,)
            ),
            "one weight per loss type",
        ),
        (
            lambda: jaxloss.dpo_loss(jnp.zeros(3), jnp.zeros(3), bco_state=BCOState.initial()),
            "`bco_state` is the state of 'bco_pair'",
        ),
        (
            lambda: jaxloss.cpo_loss(jnp.zeros(3), jnp.zeros(3), loss_type="dpo"),
            "`loss_type` must be 'sigmoid', 'hinge', 'ipo' or 'simpo'",
        ),
        (lambda: jaxloss.cpo_loss(jnp.zeros(3), jnp.zeros(3)), "the NLL term (nll_weight > 0)"),
        (
            lambda: jaxloss.orpo_loss(jnp.zeros(3), jnp.zeros(3), jnp.ones(3), jnp.ones(4)),
            "`rejected_lengths` must have the pairs' shape [3]",
        ),
        (
            lambda: jaxloss.simpo_loss(
                jnp.zeros(3), jnp.zeros(3), jnp.ones(3), jnp.ones(3), beta=-1.0
            ),
            "`beta` must be > 0",
        ),
        (
            lambda: jaxloss.kto_loss(jnp.zeros(3), jnp.array([True, False, True])),
            "'kto' needs its KL estimate",
        ),
        (
            lambda: jaxloss.kto_loss(jnp.zeros(3), jnp.array([1, 0, 1]), kl=0.0),
            "`desirable` must be a boolean mask",
        ),
        (
            lambda: jaxloss.dpo_loss(
                jnp.zeros(3), jnp.zeros(3), loss_type="aot", pair_weights=jnp.ones(3)
            ),
            "`pair_weights` cannot weight 'aot' or 'aot_unpaired'",
        ),
        (
            lambda: jaxloss.dpo_loss(jnp.zeros(3), jnp.zeros(3), pair_weights=jnp.ones(4)),
            "`pair_weights` must have the pairs' shape [3] (one value per pair); got [4]",
        ),
        (
            lambda: jaxloss.wpo_weights(jnp.zeros((2, 5)), jnp.zeros((2, 4))),
            "`log_sum_sq_probs` must have `token_logps`' shape [2, 5]; got [2, 4]",
        ),
        (lambda: jaxloss.wpo_weights(0.0, 0.0), "`token_logps` must be (..., T)"),
        (
            lambda: jaxloss.wpo_weights(
                jnp.zeros((2, 5)), jnp.zeros((2, 5)), jnp.ones((2, 4), bool)
            ),
            "`where` must broadcast to the shape of `token_logps` [2, 5]; got [2, 4]",
        ),
        (
            lambda: jaxloss.length_desensitized_logps(
                jnp.zeros((2, 5)),
                jnp.zeros((2, 5)),
                jnp.ones((2, 4), bool),
                jnp.ones((2, 5), bool),
                ld_alpha=0.5,
            ),
            "`chosen_where` must broadcast to the shape of `chosen_token_logps` [2, 5]",
        ),
    ],
)
def test_errors_name_the_argument(call, words):
    with pytest.raises(ValueError, match=re.escape(words)):
        call()


@pytest.mark.skipif(jax.device_count() < 8, reason="needs 8 (CPU) devices")
def test_dpo_on_the_fused_head_over_a_data_model_mesh():
    """DPO on the fused head with the tokens split over 'data' and the heads' vocabulary over
    'model' of an Explicit (2, 4) mesh equals one device: values, metrics and the policy's x,
    w, bias gradients; and in shard_map with the pairs split over 'data' (axis_name), the
    mean and the metrics are global."""
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    x, w, b, ref_x, ref_w, ref_b, y = _heads(20, np.float32)
    w, ref_w, b, ref_b = (np.concatenate([a, a[:3]]) for a in (w, ref_w, b, ref_b))  # V = 16
    # chosen rows 0..2 and rejected 3..5, reordered so each data shard holds whole pairs
    order = np.array([0, 3, 1, 4, 2, 5, 0, 3])
    x, ref_x, y = x[order], ref_x[order], y[order]
    mesh = jax.make_mesh((2, 4), ("data", "model"))
    put = lambda a, spec: jax.device_put(a, NamedSharding(mesh, spec))

    def loss(x, w, b, ref_x, ref_w, ref_b, y):
        def sums(x, w, b):
            log_probs = jaxloss.linear_log_probs(x, w, y, bias=b, chunk_size=4)
            return jaxloss.sequence_sums(log_probs, where=y != -100)

        policy, counts = sums(x, w, b)
        reference, _ = sums(ref_x, ref_w, ref_b)
        out = jaxloss.dpo_loss(
            policy[0::2], policy[1::2], reference[0::2], reference[1::2], beta=0.2,
            loss_type=("sigmoid", "sft"), loss_weights=(1.0, 0.5),
            chosen_lengths=counts[0::2], rejected_lengths=counts[1::2],
        )  # fmt: skip
        return out.loss, out.metrics

    args = (x, w, b, ref_x, ref_w, ref_b, y)
    specs = (P("data"), P("model"), P("model"), P("data"), P("model"), P("model"), P("data"))
    step = jax.value_and_grad(loss, (0, 1, 2), has_aux=True)
    with jax.set_mesh(mesh):
        (value, metrics), grads = jax.jit(step)(*(put(a, s) for a, s in zip(args, specs)))
    (want, want_metrics), want_grads = step(*args)
    np.testing.assert_allclose(value, want, rtol=1e-5)
    for got, wanted in zip(jax.tree.leaves(metrics), jax.tree.leaves(want_metrics)):
        np.testing.assert_allclose(got, wanted, rtol=1e-5, atol=1e-6)
    for got, wanted in zip(grads, want_grads):
        np.testing.assert_allclose(got, wanted, rtol=1e-4, atol=1e-5)

    p_c, p_r, r_c, r_r, n_c, n_r = (a.astype(np.float32) for a in _pairs(21))

    def local(*pairs):
        return jaxloss.dpo_loss(*pairs[:4], chosen_lengths=pairs[4], rejected_lengths=pairs[5],
                                loss_type=("ipo", "sft"), axis_name="data")  # fmt: skip

    sharded = jax.shard_map(local, mesh=mesh, in_specs=P("data"), out_specs=P())
    pairs = (p_c, p_r, r_c, r_r, n_c, n_r)
    got = jax.jit(sharded)(*(put(a, P("data")) for a in pairs))
    whole = jaxloss.dpo_loss(*pairs[:4], chosen_lengths=n_c, rejected_lengths=n_r,
                             loss_type=("ipo", "sft"))  # fmt: skip
    for g, e in zip(jax.tree.leaves(got), jax.tree.leaves(whole)):
        np.testing.assert_allclose(g, e, rtol=1e-5)
