"""The post-training statistics (jaxloss.post_training): per-token log-probabilities, entropy,
logsumexp and log Σ p² from logits and from the chunked linear head, against naive JAX (full
logits, log-softmax, gather), against TRL 1.16's ``selective_log_softmax``,
``entropy_from_logits`` and its chunked head's ``log_sum_sq_probs`` (transcribed as NumPy:
importing TRL pulls in transformers) and against Liger-Kernel 0.8.5's
chunked selective log-probability (its pure-torch ``chunked_loss``, loaded without the triton
``__init__``), values and gradients with a cotangent on every output, in float64 and float32;
forward mode and Hessian-vector products; padded vocabularies; bf16; sharded layouts; errors.
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

import jaxloss
from jaxloss.parity.references import liger_chunked_loss

N, D, V = 37, 8, 23  # 37 tokens: a last chunk shorter than the others


def _problem(seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(N, D)).astype(dtype)
    w = (rng.normal(size=(V, D)) * 0.7).astype(dtype)
    b = rng.normal(size=V).astype(dtype)
    y = rng.integers(0, V, N)
    y[[3, 20]] = -100
    return x, w, b, y


def _naive(logits, y, temperature=1.0, softcap=None):
    """Full logits, log-softmax and a gather: the statistics every stack builds today."""
    z = logits if softcap is None else softcap * jnp.tanh(logits / softcap)
    z = z / temperature
    log_softmax = jax.nn.log_softmax(z)
    valid = y != -100
    safe = jnp.where(valid, y, 0)
    log_prob = jnp.take_along_axis(log_softmax, safe[:, None], -1)[:, 0]
    p = jnp.exp(log_softmax)
    entropy = -jnp.sum(p * log_softmax, -1)
    lse = jax.nn.logsumexp(z, -1)
    log_sum_sq = jnp.log(jnp.sum(p * p, -1))
    return tuple(jnp.where(valid, s, 0.0) for s in (log_prob, entropy, lse, log_sum_sq))


def _weighted(outputs, cotangents):
    """Σ over the outputs of ⟨output, cotangent⟩: a scalar whose gradient has a cotangent on
    every output."""
    return sum(jnp.sum(o * c) for o, c in zip(outputs, cotangents))


OPTIONS = {
    "plain": dict(),
    "bias": dict(bias=True),
    "temperature": dict(bias=True, temperature=0.7),
    "softcap": dict(softcap=2.5, temperature=1.6),
    "padded": dict(bias=True, softcap=3.0, valid_vocab_size=19),
}


@pytest.mark.parametrize(
    "name",
    # the softcap and padded cases hold every option; the simpler ones run in --full
    [n if n in ("softcap", "padded") else pytest.param(n, marks=pytest.mark.slow) for n in OPTIONS],
)
def test_linear_and_logit_forms_equal_naive_jax(name, x64):
    options = dict(OPTIONS[name])
    x, w, b, y = _problem()
    if options.pop("bias", False) is False:
        b = None
    mask = None
    if "valid_vocab_size" in options:
        mask = np.arange(V) < options["valid_vocab_size"]
        y = np.where(y >= options["valid_vocab_size"], 1, y)
    cotangents = [np.random.default_rng(1).normal(size=N) for _ in range(4)]
    naive_options = {k: v for k, v in options.items() if k != "valid_vocab_size"}

    def naive(x, w, b):
        logits = x @ w.T + (0 if b is None else b)
        if mask is not None:  # the padded head's statistics are the unpadded head's
            logits = logits[:, : int(mask.sum())]
        return _weighted(_naive(logits, y, **naive_options), cotangents)

    def fused(x, w, b):
        stats = jaxloss.linear_log_probs(
            x, w, y, bias=b, with_entropy=True, with_logsumexp=True,
            with_log_sum_sq_probs=True, chunk_size=8, **options,
        )  # fmt: skip
        return _weighted(stats, cotangents)

    def from_logits(x, w, b):
        logits = x @ w.T + (0 if b is None else b)
        stats = jaxloss.token_log_probs(
            logits, y, with_entropy=True, with_logsumexp=True, with_log_sum_sq_probs=True,
            **options,
        )  # fmt: skip
        return _weighted(stats, cotangents)

    args = (x, w, b)
    argnums = (0, 1) if b is None else (0, 1, 2)
    expected, expected_grads = jax.value_and_grad(naive, argnums)(*args)
    for ours in (fused, from_logits):
        value, grads = jax.value_and_grad(ours, argnums)(*args)
        np.testing.assert_allclose(value, expected, rtol=1e-12)
        for got, want in zip(grads, expected_grads):
            np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    if mask is not None:  # the padded rows of w take no gradient at all
        grad_w = jax.grad(fused, 1)(*args)
        assert np.all(np.asarray(grad_w)[~mask] == 0.0)


def test_forward_mode_and_hessian_vector_products(x64):
    x, w, b, y = _problem(2)
    rng = np.random.default_rng(3)
    cotangents = [rng.normal(size=N) for _ in range(4)]
    tangents = tuple(rng.normal(size=a.shape) for a in (x, w, b))

    def naive(x, w, b):
        return _weighted(_naive(x @ w.T + b, y, temperature=0.8, softcap=4.0), cotangents)

    def fused(x, w, b):
        stats = jaxloss.linear_log_probs(
            x, w, y, bias=b, temperature=0.8, softcap=4.0, with_entropy=True,
            with_logsumexp=True, with_log_sum_sq_probs=True, chunk_size=16,
        )  # fmt: skip
        return _weighted(stats, cotangents)

    for fn in (jax.jvp, lambda f, p, t: jax.jvp(jax.grad(f, (0, 1, 2)), p, t)):
        want = jax.tree.leaves(fn(naive, (x, w, b), tangents)[1])
        got = jax.tree.leaves(fn(fused, (x, w, b), tangents)[1])
        for g, e in zip(got, want):
            np.testing.assert_allclose(g, e, rtol=1e-10, atol=1e-12)


def _trl_selective_log_softmax(logits, index):
    """TRL 1.16 ``selective_log_softmax`` (float32/64 path): the gathered logit minus the
    row's logsumexp."""
    top = logits.max(-1, keepdims=True)
    lse = (top + np.log(np.exp(logits - top).sum(-1, keepdims=True)))[..., 0]
    return np.take_along_axis(logits, index[..., None], -1)[..., 0] - lse


def _trl_log_sum_sq_probs(logits):
    """TRL 1.16's chunked head (``trl/kernels/chunked_logprob.py``): ``log(sq_sum_exp) -
    2 * log(sum_exp)``, both sums of the logits shifted by the row max."""
    shifted = logits - logits.max(-1, keepdims=True)
    return np.log(np.exp(2 * shifted).sum(-1)) - 2 * np.log(np.exp(shifted).sum(-1))


def _trl_entropy_from_logits(logits):
    """TRL 1.16 ``entropy_from_logits``: -Σ p log p from the log-softmax, per position."""
    shifted = logits - logits.max(-1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
    return -(np.exp(log_p) * log_p).sum(-1)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_token_log_probs_are_trl_s(dtype, x64):
    rng = np.random.default_rng(4)
    logits = (rng.normal(size=(3, 11, V)) * 3).astype(dtype)
    labels = rng.integers(0, V, (3, 11))
    stats = jaxloss.token_log_probs(
        logits, labels, with_entropy=True, with_log_sum_sq_probs=True, ignore_index=None
    )
    rtol = 1e-12 if dtype == "float64" else 2e-6
    np.testing.assert_allclose(
        stats.log_probs, _trl_selective_log_softmax(logits, labels), rtol=rtol, atol=rtol
    )
    np.testing.assert_allclose(
        stats.entropy, _trl_entropy_from_logits(logits), rtol=rtol, atol=rtol
    )
    np.testing.assert_allclose(
        stats.log_sum_sq_probs, _trl_log_sum_sq_probs(logits), rtol=rtol, atol=rtol
    )
    assert stats.log_probs.dtype == dtype and stats.logsumexp is None


@pytest.mark.parametrize(
    "dtype,bias,temperature",
    [("float64", True, 0.7), ("float32", False, 1.0), ("float32", True, 1.3)],
)
def test_linear_log_probs_are_liger_s(dtype, bias, temperature, x64):
    """Liger's chunked selective log-probability (the primitive of its PPO/GRPO losses and
    TRL 1.14's replacement for them): values and gradients of x, w and bias. Liger forms its
    logits in float32 whatever the inputs' dtype, so float64 agrees to float32's precision;
    float64 exactness is the naive-JAX test's."""
    liger = liger_chunked_loss()
    x, w, b, y = _problem(5, np.dtype(dtype))
    y = np.where(y < 0, 0, y)  # Liger has no ignored positions in this function
    g = np.random.default_rng(6).normal(size=N).astype(dtype)
    tensors = [torch.from_numpy(a).requires_grad_(True) for a in (x, w, b)]
    theirs = liger._ChunkedSelectiveLogProbFunction.apply(
        tensors[0], tensors[1], torch.from_numpy(y), tensors[2] if bias else None, temperature, 8
    )
    theirs.backward(torch.from_numpy(g).to(theirs.dtype))

    def ours(x, w, b):
        return jaxloss.linear_log_probs(
            x, w, y, bias=b if bias else None, temperature=temperature, chunk_size=8
        )

    value, pullback = jax.vjp(ours, x, w, b)
    grads = pullback(jnp.asarray(g, value.dtype))
    # Liger computes its logits and statistics in float32 whatever the inputs' dtype
    rtol, atol = (2e-6, 2e-6) if dtype == "float64" else (2e-5, 2e-5)
    np.testing.assert_allclose(value, theirs.detach().numpy(), rtol=rtol, atol=atol)
    for got, tensor in zip(grads[:3] if bias else grads[:2], tensors):
        np.testing.assert_allclose(got, tensor.grad.numpy(), rtol=rtol, atol=atol)
    if not bias:
        assert np.all(np.asarray(grads[2]) == 0.0)


@pytest.mark.parametrize(
    "dtype,average", [("float64", True), pytest.param("float32", False, marks=pytest.mark.slow)]
)
def test_sequence_log_probs_are_liger_preference_base_s(dtype, average, x64):
    """Liger's preference base (``LigerFusedLinearPreferenceBase.chunk_forward``, under its DPO,
    CPO, SimPO and ORPO losses), end to end from hidden states: the chosen and rejected
    sequences' log-probabilities (the mean over the counted tokens, or their sum) are
    `linear_log_probs` then `sequence_reduce`, and its chosen NLL term the negated sum of the
    chosen rows; values and the gradients of x, w and bias for a cotangent on each output.
    Liger's log-softmax is float32 whatever the inputs' dtype."""
    liger = liger_chunked_loss()
    rng = np.random.default_rng(15)
    batch, length = 4, 9  # rows 0, 1 chosen, rows 2, 3 rejected
    x = rng.normal(size=(batch, length, D)).astype(dtype)
    w = (rng.normal(size=(V, D)) * 0.7).astype(dtype)
    b = rng.normal(size=V).astype(dtype)
    y = rng.integers(0, V, (batch, length))
    y[:, :3] = -100  # the prompt
    y[1, -2:] = -100  # padding
    g_chosen, g_rejected = rng.normal(size=(2, batch // 2)).astype(dtype)
    g_nll = 0.3
    tensors = [torch.from_numpy(a).requires_grad_(True) for a in (x, w, b)]
    chosen, rejected, _, _, nll = liger.LigerFusedLinearPreferenceBase.chunk_forward(
        *tensors[:2], torch.from_numpy(y), tensors[2], average_log_prob=average
    )
    torch_total = (
        (chosen * torch.from_numpy(g_chosen)).sum()
        + (rejected * torch.from_numpy(g_rejected)).sum()
        + g_nll * nll
    )
    torch_total.backward()

    def ours(x, w, b):
        log_probs = jaxloss.linear_log_probs(x, w, y, bias=b, chunk_size=8)
        sequences = jaxloss.sequence_reduce(
            log_probs, where=y != -100, reduction="mean" if average else "sum"
        )
        nll = -jnp.sum(log_probs[: batch // 2])
        return sequences[: batch // 2], sequences[batch // 2 :], nll

    (got_chosen, got_rejected, got_nll), pullback = jax.vjp(ours, x, w, b)
    grads = pullback((jnp.asarray(g_chosen), jnp.asarray(g_rejected), jnp.asarray(g_nll, dtype)))
    rtol, atol = (2e-6, 2e-6) if dtype == "float64" else (2e-5, 2e-5)
    for got, theirs in zip((got_chosen, got_rejected, got_nll), (chosen, rejected, nll)):
        np.testing.assert_allclose(got, theirs.detach().numpy(), rtol=rtol, atol=atol)
    for got, tensor in zip(grads, tensors):
        np.testing.assert_allclose(got, tensor.grad.numpy(), rtol=rtol, atol=atol)


def test_ignored_positions_return_0_and_take_no_gradient(x64):
    x, w, _, y = _problem(7)
    x[3] = np.nan  # an ignored position's hidden state may hold anything
    where = np.ones(N, bool)
    where[5] = False

    def total(x, w):
        stats = jaxloss.linear_log_probs(
            x, w, y, where=where, with_entropy=True, with_logsumexp=True,
            with_log_sum_sq_probs=True, chunk_size=8,
        )  # fmt: skip
        return sum(jnp.sum(s) for s in stats), stats

    (value, stats), (grad_x, grad_w) = jax.value_and_grad(total, (0, 1), has_aux=True)(x, w)
    for s in stats:
        assert np.all(np.asarray(s)[[3, 5, 20]] == 0.0)
    assert np.isfinite(value) and np.all(np.isfinite(grad_w))
    assert np.all(np.asarray(grad_x)[[3, 5, 20]] == 0.0)


def test_padded_vocabulary_has_zero_probability_with_softcap(x64):
    """unsloth#10616: a soft-capped padded head leaked mass onto the padding lanes; here they
    get probability exactly 0, so the statistics equal those of the unpadded head."""
    x, w, _, y = _problem(8)
    y = np.where(y >= 19, 2, y)
    padded = np.concatenate([w[:19], np.full((5, D), 50.0)])  # lanes that would dominate
    fused = jaxloss.linear_log_probs(
        x, padded, y, softcap=3.0, valid_vocab_size=19, with_entropy=True, chunk_size=8
    )
    exact = jaxloss.token_log_probs(x @ w[:19].T, y, softcap=3.0, with_entropy=True)
    for got, want in zip(fused[:2], exact[:2]):
        np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("form", ["native", "float32"])
def test_bfloat16_runs_with_float32_statistics(form, monkeypatch):
    """bf16 operands, float32 accumulation and statistics: the values of the float32 head on
    the same (bf16-rounded) numbers, in either matmul form; gradients come back in bf16,
    rounded from the float32 ones."""
    monkeypatch.setenv("JAXLOSS_MATMUL_16BIT", form)
    x, w, _, y = _problem(9, np.float32)
    xb, wb = jnp.asarray(x, jnp.bfloat16), jnp.asarray(w, jnp.bfloat16)
    stats = jaxloss.linear_log_probs(xb, wb, y, with_entropy=True, chunk_size=8)
    assert stats.log_probs.dtype == jnp.float32
    x32, w32 = xb.astype(jnp.float32), wb.astype(jnp.float32)
    reference = jaxloss.token_log_probs(x32 @ w32.T, y, with_entropy=True)
    for got, want in zip(stats[:2], reference[:2]):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)

    def total(x, w):
        return jnp.sum(jaxloss.linear_log_probs(x, w, y, with_entropy=True, chunk_size=8).entropy)

    grads = jax.grad(total, (0, 1))(xb, wb)
    want = jax.grad(total, (0, 1))(x32, w32)
    for got, wanted in zip(grads, want):
        assert got.dtype == jnp.bfloat16
        np.testing.assert_allclose(np.asarray(got, np.float32), wanted, rtol=1e-2, atol=1e-2)


def test_jit_vmap_and_leading_axes(x64):
    x, w, _, y = _problem(10)
    x3, y3 = x[:36].reshape(3, 12, D), y[:36].reshape(3, 12)
    flat = jaxloss.linear_log_probs(x[:36], w, y[:36], chunk_size=5)
    np.testing.assert_allclose(
        jaxloss.linear_log_probs(x3, w, y3, chunk_size=5), flat.reshape(3, 12)
    )
    jitted = jax.jit(lambda x, y: jaxloss.linear_log_probs(x, w, y, chunk_size=5))
    np.testing.assert_allclose(jax.vmap(jitted)(x3, y3), flat.reshape(3, 12), rtol=1e-13)


@pytest.mark.parametrize(
    "call,words",
    [
        (lambda x, w, y: jaxloss.linear_log_probs(x, w, np.full(N, V)), "out of range"),
        (
            lambda x, w, y: jaxloss.linear_log_probs(x, w, np.full(N, 20), valid_vocab_size=19),
            "class index 20 in `labels` points at a class that `class_mask` excludes",
        ),
        (lambda x, w, y: jaxloss.linear_log_probs(x, w[:, :5], y), r"D = x.shape\[-1\] = 8"),
        (lambda x, w, y: jaxloss.linear_log_probs(x, w, y, temperature=-1.0), "temperature"),
        (lambda x, w, y: jaxloss.token_log_probs(x @ w.T, y, temperature=0.0), "temperature"),
        (lambda x, w, y: jaxloss.linear_log_probs(x, w, y, chunk_size=0), "chunk_size"),
        (
            lambda x, w, y: jaxloss.linear_log_probs(x, w, y, bias=np.zeros(3)),
            r"`bias` must have shape \[23\]; got \[3\]",
        ),
        (lambda x, w, y: jaxloss.token_log_probs(x @ w.T, y, softcap=-1.0), "softcap"),
        (lambda x, w, y: jaxloss.token_log_probs(x @ w.T, y[:5]), r"logits.shape\[:-1\] = \[37\]"),
        (lambda x, w, y: jaxloss.token_log_probs(1.0, 0), r"`logits` must be \(..., V\)"),
    ],
)
def test_errors_name_the_argument(call, words):
    x, w, _, y = _problem()
    with pytest.raises(ValueError, match=words):
        call(x, w, y)


def test_flags_must_be_bools():
    x, w, _, y = _problem()
    for flag in ("with_entropy", "with_logsumexp", "with_log_sum_sq_probs"):
        with pytest.raises(TypeError, match=f"`{flag}` must be True or False; got 1"):
            jaxloss.linear_log_probs(x, w, y, **{flag: 1})
        with pytest.raises(TypeError, match=f"`{flag}` must be True or False; got 'yes'"):
            jaxloss.token_log_probs(x @ w.T, y, **{flag: "yes"})


def test_bad_labels_and_temperature_are_nan_under_jit():
    x, w, _, y = _problem(11, np.float32)
    bad = y.copy()
    bad[0] = V
    out = jax.jit(lambda y: jaxloss.linear_log_probs(x, w, y, chunk_size=8))(bad)
    assert np.isnan(out[0]) and np.all(np.isfinite(out[1:]))
    hot = jax.jit(lambda t: jaxloss.linear_log_probs(x, w, y, temperature=t, chunk_size=8))
    assert np.all(np.isnan(np.asarray(hot(-1.0))[y != -100]))


# ------------------------------------------------------------------------------ sharded


LAYOUTS = {
    "tokens": (P("data"), P()),
    "vocabulary": (P(), P("model")),
    "both": (P("data"), P("model")),
    "fsdp": (P("data"), P("data")),
}


def _sharded_problem():
    rng = np.random.default_rng(12)
    x = jnp.asarray(rng.normal(size=(16, 4)), jnp.float32)
    w = jnp.asarray(rng.normal(size=(16, 4)), jnp.float32)
    bias = jnp.asarray(rng.normal(size=16), jnp.float32)
    labels = np.array([3, 12, -100, 5, -100, -100, 1, 9, 4, 7, 8, 11, 0, 15, 14, 14])
    cotangents = [jnp.asarray(rng.normal(size=16), jnp.float32) for _ in range(4)]
    return x, w, bias, jnp.asarray(labels), cotangents


def _stats(x, w, bias, labels, cotangents, **options):
    stats = jaxloss.linear_log_probs(
        x, w, labels, bias=bias, softcap=5.0, temperature=0.9, with_entropy=True,
        with_logsumexp=True, with_log_sum_sq_probs=True, chunk_size=4, **options,
    )  # fmt: skip
    return _weighted(stats, cotangents), stats


@pytest.mark.skipif(jax.device_count() < 8, reason="needs 8 (CPU) devices")
@pytest.mark.parametrize(
    "layout,axis_type",
    [
        *itertools.product(LAYOUTS, ["Explicit"]),
        pytest.param("both", "Auto", marks=pytest.mark.slow),
    ],
)
def test_sharded_layouts_equal_one_device(layout, axis_type):
    x, w, bias, labels, cotangents = _sharded_problem()
    mesh = jax.make_mesh((2, 4), ("data", "model"), axis_types=(AxisType[axis_type],) * 2)
    x_spec, w_spec = LAYOUTS[layout]
    put = lambda a, spec: jax.device_put(a, NamedSharding(mesh, spec))
    args = (put(x, x_spec), put(w, w_spec), put(bias, P(*w_spec[:1])))
    labels_s = put(labels, P(*x_spec[:1]))
    step = jax.jit(
        jax.value_and_grad(
            lambda x, w, b: _stats(x, w, b, labels_s, cotangents), (0, 1, 2), has_aux=True
        )
    )
    with jax.set_mesh(mesh):
        (value, stats), grads = step(*args)
    (expected, expected_stats), expected_grads = jax.value_and_grad(
        lambda x, w, b: _stats(x, w, b, labels, cotangents), (0, 1, 2), has_aux=True
    )(x, w, bias)
    np.testing.assert_allclose(value, expected, rtol=1e-5)
    for got, want in zip(stats, expected_stats):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    for got, want in zip(grads, expected_grads):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    if axis_type == "Explicit":
        for got, arg in zip(grads, args):
            assert got.sharding.is_equivalent_to(arg.sharding, got.ndim), (got.sharding, arg)


@pytest.mark.skipif(jax.device_count() < 8, reason="needs 8 (CPU) devices")
def test_parallel_variant_in_shard_map_with_a_padded_vocabulary():
    """jaxloss.parallel.linear_log_probs: tokens over 'data', the vocabulary over 'model',
    the last 2 of its 16 entries padding (num_classes=14)."""
    x, w, bias, labels, cotangents = _sharded_problem()
    labels = jnp.where(labels >= 14, 2, labels)
    mesh = jax.make_mesh((2, 4), ("data", "model"))

    def local(x, w, bias, labels):
        return jaxloss.parallel.linear_log_probs(
            x, w, labels, bias=bias, axis_name="model", num_classes=14, softcap=5.0,
            temperature=0.9, with_entropy=True, with_logsumexp=True,
            with_log_sum_sq_probs=True, chunk_size=4,
        )  # fmt: skip

    specs = (P("data"), P("model"), P("model"), P("data"))
    out = jaxloss.post_training.TokenStats(P("data"), P("data"), P("data"), P("data"))

    def total(x, w, bias):
        args = [
            jax.sharding.reshard(a, NamedSharding(mesh, s))
            for a, s in zip((x, w, bias, labels), specs)
        ]
        stats = jax.shard_map(local, mesh=mesh, in_specs=specs, out_specs=out)(*args)
        return _weighted(stats, cotangents)

    def expected(x, w, bias):
        stats = jaxloss.linear_log_probs(
            x, w[:14], labels, bias=bias[:14], softcap=5.0, temperature=0.9,
            with_entropy=True, with_logsumexp=True, with_log_sum_sq_probs=True,
        )  # fmt: skip
        return _weighted(stats, cotangents)

    value, grads = jax.jit(jax.value_and_grad(total, (0, 1, 2)))(x, w, bias)
    want, want_grads = jax.value_and_grad(expected, (0, 1, 2))(x, w, bias)
    np.testing.assert_allclose(value, want, rtol=1e-5)
    for got, wanted in zip(grads, want_grads):
        np.testing.assert_allclose(got, wanted, rtol=1e-5, atol=1e-5)
    assert np.all(np.asarray(grads[1])[14:] == 0.0)  # the padding's rows of w


# ------------------------------------------------------------------- per-sequence reductions


def _packed():
    """Two rows of 10 tokens: row 0 holds sequences 1, 2, 3 then padding; row 1 holds
    sequences 1 and 2 (no 3) with padding between them allowed only as its own run."""
    ids = np.array([[1, 1, 1, 2, 2, 3, 3, 3, 0, 0], [1, 1, 1, 1, 2, 2, 2, 2, 2, 0]])
    rng = np.random.default_rng(13)
    values = rng.normal(size=ids.shape)
    where = rng.uniform(size=ids.shape) < 0.8
    return values, ids, where


def _sequence_reference(values, ids, where, num_segments):
    sums = np.zeros((ids.shape[0], num_segments))
    counts = np.zeros_like(sums)
    for row in range(ids.shape[0]):
        for s in range(1, num_segments + 1):
            member = (ids[row] == s) & where[row]
            sums[row, s - 1] = values[row][member].sum()
            counts[row, s - 1] = member.sum()
    return sums, counts


def test_packed_sequences_sum_mean_and_fixed_normaliser(x64):
    values, ids, where = _packed()
    sums, counts = jaxloss.sequence_sums(values, where=where, segment_ids=ids, num_segments=3)
    want_sums, want_counts = _sequence_reference(values, ids, where, 3)
    np.testing.assert_allclose(sums, want_sums, rtol=1e-13, atol=1e-15)
    np.testing.assert_array_equal(counts, want_counts)
    reduce = lambda v, **kw: jaxloss.sequence_reduce(
        v, where=where, segment_ids=ids, num_segments=3, **kw
    )
    mean = reduce(values, reduction="mean")
    np.testing.assert_allclose(mean, want_sums / np.maximum(want_counts, 1), rtol=1e-13)
    assert float(mean[1, 2]) == 0.0  # row 1 holds no sequence 3
    np.testing.assert_allclose(reduce(values, reduction="fixed", normalizer=8.0), want_sums / 8)
    # gradients: each counted token of a sequence takes 1/|y| of its sequence's cotangent
    g = np.random.default_rng(14).normal(size=(2, 3))
    grad = jax.grad(lambda v: jnp.sum(reduce(v, reduction="mean") * g))(values)
    expected = np.zeros_like(values)
    for row in range(2):
        for s in range(1, 4):
            member = (ids[row] == s) & where[row]
            expected[row][member] = g[row, s - 1] / max(member.sum(), 1)
    np.testing.assert_allclose(grad, expected, rtol=1e-13)


def test_padded_rows_and_jit(x64):
    values, _, where = _packed()
    jitted = jax.jit(lambda v, m: jaxloss.sequence_reduce(v, reduction="mean", where=m))
    np.testing.assert_allclose(
        jitted(values, where),
        (values * where).sum(-1) / where.sum(-1),
        rtol=1e-13,
    )
    np.testing.assert_allclose(jaxloss.sequence_reduce(values), values.sum(-1), rtol=1e-13)


@pytest.mark.parametrize(
    "call,words",
    [
        (
            lambda v, ids: jaxloss.sequence_sums(
                v, segment_ids=np.array([[1, 1, 2, 1]]), num_segments=2
            ),
            "sequence 1 of a row is split",
        ),
        (
            lambda v, ids: jaxloss.sequence_sums(
                v, segment_ids=np.array([[1, 1, 3, 0]]), num_segments=2
            ),
            r"`segment_ids` must be in \[0, 2\] \(0 is padding\); found 3",
        ),
        (lambda v, ids: jaxloss.sequence_sums(v, segment_ids=ids), "`num_segments`"),
        (lambda v, ids: jaxloss.sequence_sums(v, num_segments=2), "for packed sequences"),
        (
            lambda v, ids: jaxloss.sequence_sums(v, segment_ids=ids[:, :3], num_segments=2),
            r"`segment_ids` must have the values' shape \[1, 4\]",
        ),
        (lambda v, ids: jaxloss.sequence_reduce(v, reduction="fixed"), "`normalizer`"),
        (lambda v, ids: jaxloss.sequence_reduce(v, normalizer=4.0), "`normalizer`"),
        (
            lambda v, ids: jaxloss.sequence_reduce(v, reduction="fixed", normalizer=-1.0),
            "`normalizer` must be > 0.0",
        ),
        (lambda v, ids: jaxloss.sequence_reduce(v, reduction="token"), "`reduction`"),
    ],
)
def test_sequence_errors_name_the_argument(call, words):
    values, ids = np.zeros((1, 4)), np.array([[1, 1, 2, 0]])
    with pytest.raises(ValueError, match=words):
        call(values, ids)


def test_split_sequence_is_nan_under_jit():
    """Under jit a malformed row cannot raise: its sums are nan, the other rows are exact."""
    ids = np.array([[1, 1, 2, 1], [1, 1, 2, 0]])
    sums, _ = jax.jit(lambda v, i: jaxloss.sequence_sums(v, segment_ids=i, num_segments=2))(
        np.ones((2, 4), np.float32), ids
    )
    assert np.all(np.isnan(np.asarray(sums)[0, 0]))
    np.testing.assert_array_equal(np.asarray(sums)[1], [2.0, 1.0])


@pytest.mark.skipif(jax.device_count() < 8, reason="needs 8 (CPU) devices")
def test_tokens_split_across_devices_give_global_means():
    """Tokens split over 'model' (sequence parallelism), rows over 'data': on an Explicit
    mesh and inside shard_map with axis_name, the per-sequence means use the global counts,
    not a mean of per-shard means."""
    rng = np.random.default_rng(15)
    values = jnp.asarray(rng.normal(size=(2, 16)), jnp.float32)
    ids = np.repeat(np.array([[1, 2, 2, 3]]), 4, axis=1).repeat(2, axis=0)
    ids[1, 12:] = 0
    where = jnp.asarray(rng.uniform(size=(2, 16)) < 0.7)
    expected = jaxloss.sequence_reduce(
        values, reduction="mean", where=where, segment_ids=ids, num_segments=3
    )
    mesh = jax.make_mesh((2, 4), ("data", "model"))
    put = lambda a: jax.device_put(jnp.asarray(a), NamedSharding(mesh, P("data", "model")))
    explicit = jax.jit(
        lambda v, m, i: jaxloss.sequence_reduce(
            v, reduction="mean", where=m, segment_ids=i, num_segments=3
        )
    )(put(values), put(where), put(ids))
    np.testing.assert_allclose(explicit, expected, rtol=1e-6)

    def local(v, m, i):
        return jaxloss.sequence_reduce(
            v, reduction="mean", where=m, segment_ids=i, num_segments=3, axis_name="model"
        )

    spec = P("data", "model")
    in_map = jax.jit(jax.shard_map(local, mesh=mesh, in_specs=(spec,) * 3, out_specs=P("data")))(
        put(values), put(where), put(ids)
    )
    np.testing.assert_allclose(in_map, expected, rtol=1e-6)
