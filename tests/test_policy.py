"""The policy-gradient family (jaxloss.policy_loss, group_advantages, rloo_advantages)
against TRL 1.16 (``GRPOTrainer._compute_loss`` and its advantages in
``trl/trainer/grpo_trainer.py``, ``RLOOTrainer``'s in ``trl/trainer/rloo_trainer.py``,
transcribed as NumPy: importing TRL pulls in transformers) for every loss type and option,
and end to end from hidden states against Liger-Kernel 0.8.5's
``LigerFusedLinearGRPOFunction`` (its pure-torch ``chunked_loss``): the fused log-prob head,
then the loss; values, metrics and the gradients of the hidden states, the head and the bias.
"""

import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from jax.test_util import check_grads

import jaxloss
from jaxloss.parity.references import liger_chunked_loss
from jaxloss.policy import POLICY_LOSS_TYPES

B, T = 4, 6


def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


def _trl_grpo(lp, old, ref, adv, mask, o):
    """TRL 1.16 ``GRPOTrainer._compute_loss`` (one process, no accumulation): returns the loss
    and the logged clip fractions, KL and mean ratio. `o` holds the options."""
    adv = adv[:, None] if adv.ndim == 1 else adv
    eps_low, eps_high = o["epsilon_low"], o["epsilon_high"]
    log_ratio = lp - old
    if o["level"] == "token":
        log_w = log_ratio
    else:
        log_w = ((log_ratio * mask).sum(-1) / np.maximum(mask.sum(-1), 1.0))[:, None]
    coef_1 = np.exp(log_w)
    kl = np.zeros_like(lp)
    if o["beta"]:
        kl = np.exp(ref - lp) - (ref - lp) - 1
        if o["bias_corrected"]:
            kl = kl * coef_1
    loss_type = o["loss_type"]
    detached = None  # the detached weight of cispo and vespo
    if loss_type == "cispo":
        detached = np.minimum(coef_1, eps_high)
        per = -detached * adv * lp
    elif loss_type in ("grpo", "bnpo", "dr_grpo", "dapo", "luspo"):
        coef_2 = np.clip(coef_1, 1 - eps_low, 1 + eps_high)
        c1 = coef_1 if o["delta"] is None else np.minimum(coef_1, o["delta"])
        per = -np.minimum(c1 * adv, coef_2 * adv)
    elif loss_type == "sapo":
        tau = np.where(adv > 0, 1.0, 1.05)
        per = -_sigmoid(tau * (coef_1 - 1)) * 4 / tau * adv
    else:  # vespo (TRL's get_gamma_weights)
        lower = math.log(1e-8)
        seq = np.sum(np.clip(log_ratio, -20, 20) * mask, -1, keepdims=True)
        if o["is_ratio"] is not None:
            seq = seq + np.sum(np.clip(np.log(o["is_ratio"]), lower, 20), -1, keepdims=True)
        log_w_seq = np.clip(seq, lower, 20)
        nonneg = adv >= 0
        k, lam = np.where(nonneg, 2.0, 3.0), np.maximum(np.where(nonneg, 3.0, 2.0), 1e-4)
        detached = np.nan_to_num(np.exp(lam + k * log_w_seq - lam * np.exp(log_w_seq)), nan=0.0)
        per = -detached * adv * lp
    factor = np.ones_like(lp)
    if o["entropy_quantile"] < 1.0:
        ent = o["entropies"]
        threshold = np.quantile(ent[mask.astype(bool)], 1 - o["entropy_quantile"])
        factor = factor * (((ent * mask) >= threshold) & mask.astype(bool))
    if o["is_ratio"] is not None and loss_type != "vespo":
        factor = factor * o["is_ratio"]
    per = per * factor
    if o["beta"]:
        per = per + o["beta"] * kl
    if loss_type in ("grpo", "sapo"):
        loss = ((per * mask).sum(-1) / np.maximum(mask.sum(-1), 1.0)).mean()
    elif loss_type == "bnpo":
        loss = (per * mask).sum() / max(mask.sum(), 1.0)
    elif loss_type == "dr_grpo":
        loss = (per * mask).sum() / (per.shape[0] * o["max_completion_length"])
    elif loss_type in ("cispo", "dapo", "vespo"):
        loss = (per * mask).sum() / max(mask.sum(), 1.0)
    else:
        loss = (per * mask).sum(-1).mean()

    def global_masked_mean(x):
        if x.shape[1] == 1:
            return x.sum() / x.shape[0]
        return (x * mask).sum() / max(mask.sum(), 1.0)

    low = (coef_1 < 1 - eps_low) & (adv < 0)
    high = (coef_1 > 1 + eps_high) & (adv > 0)
    if loss_type == "cispo":
        low, high = np.zeros_like(low), (coef_1 > eps_high) & (adv > 0)
    elif loss_type in ("sapo", "vespo"):
        low, high = np.zeros_like(low), np.zeros_like(high)
    metrics = dict(
        clip_ratio_low=global_masked_mean(low.astype(float)),
        clip_ratio_high=global_masked_mean(high.astype(float)),
        clip_ratio_region=global_masked_mean((low | high).astype(float)),
        kl=global_masked_mean(kl),
    )
    if detached is not None:  # d loss / d log π of 'cispo' and 'vespo' (normalised by tokens)
        metrics["grad"] = -detached * adv * factor * mask / max(mask.sum(), 1.0)
    return loss, metrics


def _tokens(seed=0):
    rng = np.random.default_rng(seed)
    lp = np.log(rng.uniform(0.05, 0.9, (B, T)))
    old = lp + rng.normal(size=(B, T)) * 0.25
    ref = lp + rng.normal(size=(B, T)) * 0.3
    adv = rng.normal(size=B)
    mask = np.ones((B, T), bool)
    mask[0, 4:] = mask[2, 2:] = False
    entropies = rng.uniform(0.1, 3.0, (B, T))
    is_ratio = rng.uniform(0.7, 1.3, (B, T))
    return lp, old, ref, adv, mask, entropies, is_ratio


TRL_CASES = [
    *((t, "token", {}) for t in POLICY_LOSS_TYPES),
    *((t, "sequence", {}) for t in ("grpo", "dapo", "luspo", "bnpo")),
    ("dapo", "token", dict(beta=0.04, bias_corrected=True, delta=1.5)),
    ("grpo", "sequence", dict(beta=0.1)),
    ("bnpo", "token", dict(entropy_quantile=0.4, is_ratio=True)),
    ("vespo", "token", dict(is_ratio=True)),
    ("cispo", "token", dict(epsilon_high=4.0, entropy_quantile=0.7)),
]


# Each type, each level and each option once in the default tier; the rest in --full.
DEFAULT_TRL_CASES = {0, 2, 3, 4, 5, 6, 7, 9, 12, 13, 14, 15}


@pytest.mark.parametrize(
    "loss_type,level,extra",
    [c if i in DEFAULT_TRL_CASES else pytest.param(*c, marks=pytest.mark.slow)
     for i, c in enumerate(TRL_CASES)],
)  # fmt: skip
def test_every_loss_type_is_trl_s(loss_type, level, extra, x64):
    """Each type (token and sequence-level importance sampling where TRL allows it, with the
    KL penalty and its bias correction, two-sided clipping, the entropy mask and the vLLM
    correction) equals TRL's loss and logged metrics in float64; the gradient with respect to
    the log-probabilities is the numerical one."""
    lp, old, ref, adv, mask, entropies, is_ratio = _tokens(
        TRL_CASES.index((loss_type, level, extra))
    )
    o = dict(
        loss_type=loss_type, level=level, epsilon_low=0.2, epsilon_high=0.28, delta=None,
        beta=0.0, bias_corrected=False, entropy_quantile=1.0, entropies=entropies,
        is_ratio=None, max_completion_length=T + 2,
    )  # fmt: skip
    o.update(extra)
    o["is_ratio"] = is_ratio if o["is_ratio"] is True else None

    def ours(lp):
        return jaxloss.policy_loss(
            lp, adv, mask, old, ref, loss_type=loss_type, epsilon_low=0.2,
            epsilon_high=o["epsilon_high"], delta=o["delta"], beta=o["beta"],
            bias_corrected_kl=o["bias_corrected"], importance_sampling_level=level,
            importance_sampling_ratio=o["is_ratio"], max_completion_length=T + 2,
            entropies=entropies, top_entropy_quantile=o["entropy_quantile"],
        )  # fmt: skip

    want, want_metrics = _trl_grpo(lp, old, ref, adv, mask.astype(float), o)
    out = ours(lp)
    np.testing.assert_allclose(out.loss, want, rtol=1e-12, atol=1e-15)
    want_grad = want_metrics.pop("grad", None)
    for name, value in want_metrics.items():
        np.testing.assert_allclose(getattr(out.metrics, name), value, rtol=1e-12, err_msg=name)
    if want_grad is None:
        check_grads(lambda lp: ours(lp).loss, (lp,), order=1, modes=["rev"], atol=1e-6, rtol=1e-6)
    else:  # a detached weight: the gradient is the weight's, not the numerical one
        np.testing.assert_allclose(jax.grad(lambda lp: ours(lp).loss)(lp), want_grad, rtol=1e-12)


def test_on_policy_default_and_k1():
    """Without old log-probabilities the ratio is 1 (on-policy, TRL's default): the loss is
    -mean(A) for 'dapo' with a unit-sum normaliser, and its gradient is -A per token; k1 is
    log π - log π_ref."""
    lp, _, ref, adv, mask, _, _ = _tokens(1)
    lp, ref = lp.astype(np.float32), ref.astype(np.float32)
    out = jaxloss.policy_loss(lp, adv, mask, loss_type="bnpo")
    want = -(adv[:, None] * mask).sum() / mask.sum()
    np.testing.assert_allclose(out.loss, want, rtol=1e-6)
    np.testing.assert_allclose(out.metrics.mean_ratio, 1.0)
    grad = jax.grad(lambda lp: jaxloss.policy_loss(lp, adv, mask, loss_type="bnpo").loss)(lp)
    np.testing.assert_allclose(grad, -adv[:, None] * mask / mask.sum(), rtol=1e-6)
    k1 = jaxloss.policy_loss(lp, adv, mask, ref_logps=ref, beta=1.0, kl_estimator="k1")
    np.testing.assert_allclose(k1.metrics.kl, ((lp - ref) * mask).sum() / mask.sum(), rtol=1e-5)


# --------------------------------------------------------------------------------- advantages


def _nanstd(x, axis=None):
    """TRL's ``nanstd``: Bessel-corrected."""
    return np.nanstd(x, axis=axis, ddof=1)


@pytest.mark.parametrize("scale", ["group", "batch", "none"])
def test_group_advantages_are_trl_s(scale, x64):
    rng = np.random.default_rng(3)
    rewards = rng.normal(size=12)
    rewards[3:6] = 1.0  # a group with zero spread
    grouped = rewards.reshape(-1, 3)
    mean = grouped.mean(1).repeat(3)
    if scale == "group":
        std = _nanstd(grouped, axis=1).repeat(3)
    else:
        std = np.full(12, _nanstd(rewards))
    want = rewards - mean
    if scale != "none":
        want = want / (std + 1e-4)
    got = jaxloss.group_advantages(rewards, num_generations=3, scale=scale)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)
    # the same groups, given by id in another order
    order = rng.permutation(12)
    by_id = jaxloss.group_advantages(
        rewards[order], group_ids=np.arange(12)[order] // 3, num_groups=4, scale=scale
    )
    np.testing.assert_allclose(by_id, want[order], rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("normalize", [False, True])
def test_rloo_advantages_are_trl_s(normalize, x64):
    rng = np.random.default_rng(4)
    rewards = rng.normal(size=8)
    grouped = rewards.reshape(-1, 4)
    baselines = ((grouped.sum(1, keepdims=True) - grouped) / 3).reshape(-1)
    want = rewards - baselines
    if normalize:
        want = (want - want.mean()) / (_nanstd(want) + 1e-4)
    got = jaxloss.rloo_advantages(rewards, num_generations=4, normalize=normalize)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)


# --------------------------------------------------------------- Liger, from hidden states

D, V = 5, 11
LIGER_CASES = [  # (loss type, importance sampling level, dtype, beta, extra options)
    ("dapo", "token", "float64", 0.04, {}),
    ("grpo", "token", "float64", 0.0, dict(delta=1.4)),
    ("bnpo", "sequence", "float64", 0.1, dict(bias_corrected=True)),
    ("dr_grpo", "token", "float64", 0.04, {}),
    ("cispo", "token", "float64", 0.0, dict(epsilon_high=3.0)),
    ("sapo", "token", "float64", 0.04, {}),
    ("luspo", "sequence", "float64", 0.0, {}),
    ("vespo", "token", "float64", 0.0, dict(is_ratio=True)),
    ("dapo", "token", "float32", 0.04, dict(is_ratio=True)),
    ("grpo", "sequence", "float32", 0.04, {}),
]
LIGER_DEFAULT_TIER = {0, 4, 5, 7}


def liger_grpo_pairs(loss_type, level, dtype, beta, extra):
    """(ours, Liger's) of the loss, the KL and clip metrics and the x, w, bias gradients:
    Liger's LigerFusedLinearGRPOFunction with a reference head and old log-probabilities,
    against linear_log_probs then policy_loss."""
    liger = liger_chunked_loss()
    rng = np.random.default_rng(LIGER_CASES.index((loss_type, level, dtype, beta, extra)))
    dt = np.dtype(dtype)
    x = rng.normal(size=(B, T, D)).astype(dt)
    w, b = (rng.normal(size=(V, D)) * 0.6).astype(dt), rng.normal(size=V).astype(dt)
    ref_x = (x + 0.2 * rng.normal(size=x.shape)).astype(dt)
    ref_w = (w + 0.1 * rng.normal(size=w.shape)).astype(dt)
    ids = rng.integers(0, V, (B, T))
    mask = np.ones((B, T), bool)
    mask[0, 4:] = mask[3, 3:] = False
    adv = rng.normal(size=B).astype(dt)
    eps_high = extra.get("epsilon_high", 0.28)
    is_ratio = rng.uniform(0.8, 1.2, (B, T)).astype(dt) if extra.get("is_ratio") else None

    def head_logps(x, w, b):
        return jaxloss.linear_log_probs(x, w, ids, bias=b, chunk_size=8)

    old = np.asarray(head_logps(x, w, b)) + 0.2 * rng.normal(size=(B, T)).astype(dt)
    old = old.astype(dt)
    tensors = [torch.from_numpy(a).requires_grad_(True) for a in (x, w, b)]
    loss, metrics = liger.LigerFusedLinearGRPOFunction.apply(
        tensors[0], tensors[1], torch.from_numpy(ids), torch.from_numpy(mask.astype(dt)),
        torch.from_numpy(adv), tensors[2], None, torch.from_numpy(old),
        torch.from_numpy(ref_x), torch.from_numpy(ref_w), torch.from_numpy(b), beta, 0.2,
        eps_high, loss_type, T + 2, level, 1.0, 1.05, 1.0, False, True, 1,
        None if is_ratio is None else torch.from_numpy(is_ratio), extra.get("delta"),
        extra.get("bias_corrected", False),
    )  # fmt: skip
    loss.backward()
    ref = np.asarray(head_logps(ref_x, ref_w, b))

    def ours(x, w, b):
        out = jaxloss.policy_loss(
            head_logps(x, w, b), adv, mask, old, ref, loss_type=loss_type, epsilon_low=0.2,
            epsilon_high=eps_high, delta=extra.get("delta"), beta=beta,
            bias_corrected_kl=extra.get("bias_corrected", False),
            importance_sampling_level=level, importance_sampling_ratio=is_ratio,
            max_completion_length=T + 2,
        )  # fmt: skip
        return out.loss, out.metrics

    (value, ours_metrics), grads = jax.value_and_grad(ours, (0, 1, 2), has_aux=True)(x, w, b)
    pairs = {"loss": (value, loss), "dx": (grads[0], tensors[0].grad),
             "dw": (grads[1], tensors[1].grad), "db": (grads[2], tensors[2].grad)}  # fmt: skip
    theirs = list(metrics)
    if beta:
        pairs["kl"] = (ours_metrics.kl, theirs.pop(0))
    if level == "token":  # Liger weights sequence-level clip fractions by tokens, TRL does not
        pairs["clip_ratio_region"] = (ours_metrics.clip_ratio_region, theirs[0])
    return {k: (np.asarray(g), t.detach().numpy()) for k, (g, t) in pairs.items()}


@pytest.mark.parametrize(
    "loss_type,level,dtype,beta,extra",
    [c if i in LIGER_DEFAULT_TIER else pytest.param(*c, marks=pytest.mark.slow)
     for i, c in enumerate(LIGER_CASES)],
)  # fmt: skip
def test_end_to_end_from_hidden_states_is_liger_s(loss_type, level, dtype, beta, extra, x64):
    # Liger accumulates its loss in a float32 scalar whatever the inputs' dtype
    rtol, atol = (1e-5, 1e-6) if dtype == "float64" else (2e-5, 2e-5)
    for name, (ours, theirs) in liger_grpo_pairs(loss_type, level, dtype, beta, extra).items():
        np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=atol, err_msg=name)


# ------------------------------------------------------------------------------ errors

_LP, _MASK = jnp.zeros((2, 3)), jnp.ones((2, 3), bool)


@pytest.mark.parametrize(
    "call,words",
    [
        (lambda: jaxloss.policy_loss(_LP, jnp.zeros(3), _MASK), "`advantages` must be (B,)"),
        (
            lambda: jaxloss.policy_loss(_LP, jnp.zeros(2), _MASK, epsilon_high=0.1),
            "`epsilon_high` must be >= `epsilon_low`",
        ),
        (lambda: jaxloss.policy_loss(_LP, jnp.zeros(2), _MASK, loss_type="ppo"), "one of"),
        (
            lambda: jaxloss.policy_loss(_LP, jnp.zeros(2), _MASK, loss_type="dr_grpo"),
            "'dr_grpo' needs `max_completion_length`",
        ),
        (lambda: jaxloss.policy_loss(_LP, jnp.zeros(2), _MASK, beta=0.1), "needs the reference"),
        (
            lambda: jaxloss.policy_loss(
                _LP, jnp.zeros(2), _MASK, loss_type="sapo", importance_sampling_level="sequence"
            ),
            "sequence-level importance sampling is not defined for 'sapo'",
        ),
        (
            lambda: jaxloss.policy_loss(_LP, jnp.zeros(2), _MASK, top_entropy_quantile=0.5),
            "needs the per-token `entropies`",
        ),
        (lambda: jaxloss.policy_loss(_LP, jnp.zeros(2), _MASK, delta=1.1), "`delta` caps"),
        (
            lambda: jaxloss.group_advantages(jnp.zeros(6), num_generations=4),
            "`num_generations` must be a positive int dividing the 6 rewards",
        ),
        (
            lambda: jaxloss.rloo_advantages(
                jnp.zeros(4), group_ids=jnp.array([0, 1, 2, 5]), num_groups=3
            ),
            "`group_ids` must be in [0, 3)",
        ),
        (lambda: jaxloss.group_advantages(jnp.zeros(4)), "exactly one"),
    ],
)
def test_errors_name_the_argument(call, words):
    with pytest.raises(ValueError, match=re.escape(words)):
        call()


def test_metrics_are_global_across_shards_in_shard_map():
    """Inside shard_map with the sequences split over 'data', the loss and the metrics equal
    one device's (the normalisers and the entropy quantile are global)."""
    if jax.device_count() < 2:
        pytest.skip("needs 2 (CPU) devices")
    from jax.sharding import AxisType
    from jax.sharding import PartitionSpec as P

    lp, old, ref, adv, mask, entropies, _ = (a.astype(np.float32) if a.dtype == np.float64
                                             else a for a in _tokens(9))  # fmt: skip
    mesh = jax.make_mesh((2,), ("data",), axis_types=(AxisType.Explicit,))
    options = dict(loss_type="grpo", beta=0.05, entropies=None, top_entropy_quantile=0.6)

    def local(lp, adv, mask, old, ref, ent):
        return jaxloss.policy_loss(lp, adv, mask, old, ref, **dict(options, entropies=ent),
                                   axis_name="data")  # fmt: skip

    for loss_type in ("grpo", "dapo", "luspo"):
        options["loss_type"] = loss_type
        sharded = jax.shard_map(local, mesh=mesh, in_specs=P("data"), out_specs=P())
        args = (lp, adv, mask, old, ref, entropies)
        put = [jax.device_put(a, jax.sharding.NamedSharding(mesh, P("data"))) for a in args]
        got = jax.jit(sharded)(*put)
        want = jaxloss.policy_loss(lp, adv, mask, old, ref, **dict(options, entropies=entropies))
        for g, e in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
            np.testing.assert_allclose(g, e, rtol=1e-5, err_msg=loss_type)


@pytest.mark.skipif(jax.device_count() < 8, reason="needs 8 (CPU) devices")
def test_grpo_on_the_fused_head_over_a_data_model_mesh():
    """GRPO ('dapo', with the KL penalty and the entropy mask) on the fused head with the
    sequences split over 'data' and the vocabulary over 'model' of an Explicit (2, 4) mesh
    equals one device: the loss, the metrics and the x, w, bias gradients."""
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    rng = np.random.default_rng(30)
    x = rng.normal(size=(B, T, D)).astype(np.float32)
    w = (rng.normal(size=(16, D)) * 0.6).astype(np.float32)
    b = rng.normal(size=16).astype(np.float32)
    ids = rng.integers(0, 16, (B, T))
    mask = np.ones((B, T), bool)
    mask[1, 3:] = False
    old = rng.normal(size=(B, T)).astype(np.float32) * 0.1 - 2.8
    ref = old + 0.05
    adv = jaxloss.group_advantages(rng.normal(size=B).astype(np.float32), num_generations=2)
    mesh = jax.make_mesh((2, 4), ("data", "model"))
    put = lambda a, spec: jax.device_put(a, NamedSharding(mesh, spec))

    def loss(x, w, b, ids, mask, old, ref, adv):
        stats = jaxloss.linear_log_probs(x, w, ids, bias=b, with_entropy=True, chunk_size=4)
        out = jaxloss.policy_loss(
            stats.log_probs, adv, mask, old, ref, loss_type="dapo", beta=0.04,
            entropies=stats.entropy, top_entropy_quantile=0.5,
        )  # fmt: skip
        return out.loss, out.metrics

    args = (x, w, b, ids, mask, old, ref, adv)
    specs = (P("data"), P("model"), P("model")) + (P("data"),) * 5
    step = jax.value_and_grad(loss, (0, 1, 2), has_aux=True)
    with jax.set_mesh(mesh):
        (value, metrics), grads = jax.jit(step)(*(put(a, s) for a, s in zip(args, specs)))
    (want, want_metrics), want_grads = step(*args)
    np.testing.assert_allclose(value, want, rtol=1e-5)
    for got, wanted in zip(jax.tree.leaves(metrics), jax.tree.leaves(want_metrics)):
        np.testing.assert_allclose(got, wanted, rtol=1e-5, atol=1e-6)
    for got, wanted in zip(grads, want_grads):
        np.testing.assert_allclose(got, wanted, rtol=1e-4, atol=1e-5)
