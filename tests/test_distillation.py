"""Distillation losses (jaxloss.distillation_loss, jaxloss.linear_distillation_loss) against
Liger-Kernel 0.8.5's fused JSD and cosine losses (its pure-torch ``chunked_loss``, loaded
without the triton ``__init__``) and TRL 1.16's GKD ``generalized_jsd_loss`` (transcribed as
NumPy: importing TRL pulls in transformers), values and the student's gradients, at both ends
of β and inside, with temperatures, biases, hard-label weights and ignored positions; the
fused form against the logits form (forward mode, Hessian-vector products, teacher gradients,
padded vocabularies); errors.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from jax.sharding import PartitionSpec as P

import jaxloss
from jaxloss.parity.references import liger_chunked_loss

N, DS, DT, V = 12, 6, 10, 17


def _problem(seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    x_s = rng.normal(size=(N, DS)).astype(dtype)
    w_s = (rng.normal(size=(V, DS)) * 0.6).astype(dtype)
    x_t = rng.normal(size=(N, DT)).astype(dtype)
    w_t = (rng.normal(size=(V, DT)) * 0.6).astype(dtype)
    b_s, b_t = rng.normal(size=V).astype(dtype), rng.normal(size=V).astype(dtype)
    labels = rng.integers(0, V, N)
    labels[[2, 7]] = -100
    return x_s, w_s, x_t, w_t, b_s, b_t, labels


def _log_softmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def _trl_generalized_jsd_loss(student_logits, teacher_logits, labels, beta, temperature):
    """TRL 1.16 GKD ``generalized_jsd_loss`` with reduction='batchmean': the JSD summed over
    the vocabulary and the positions whose label is not -100, over their number."""
    log_s = _log_softmax(student_logits / temperature)
    log_t = _log_softmax(teacher_logits / temperature)

    def kl(log_p, log_q):  # F.kl_div(log_q, log_p, log_target=True) summed: KL(p || q)
        return np.exp(log_p) * (log_p - log_q)

    if beta == 0:
        jsd = kl(log_t, log_s)
    elif beta == 1:
        jsd = kl(log_s, log_t)
    else:
        log_m = np.logaddexp(log_s + np.log1p(-beta), log_t + np.log(beta))
        jsd = beta * kl(log_t, log_m) + (1 - beta) * kl(log_s, log_m)
    mask = labels != -100
    return jsd[mask].sum() / mask.sum()


@pytest.mark.parametrize("beta", [0.0, 0.3, 1.0])
def test_logits_form_is_trl_s_generalized_jsd(beta, x64):
    x_s, w_s, x_t, w_t, b_s, b_t, labels = _problem()
    z_s, z_t = x_s @ w_s.T + b_s, x_t @ w_t.T + b_t
    ours = jaxloss.distillation_loss(z_s, z_t, labels, beta=beta, temperature=1.7)
    expected = _trl_generalized_jsd_loss(z_s, z_t, labels, beta, 1.7)
    np.testing.assert_allclose(ours, expected, rtol=1e-12)


def _liger(function, x_s, w_s, x_t, w_t, b_s, b_t, labels, **options):
    """Liger's loss and the gradients of the student's x, w and bias."""
    tensors = [torch.from_numpy(a).requires_grad_(True) for a in (x_s, w_s, b_s)]
    loss = function.apply(
        tensors[0],
        tensors[1],
        torch.from_numpy(x_t),
        torch.from_numpy(w_t),
        torch.from_numpy(labels),
        tensors[2],
        torch.from_numpy(b_t),
        options["weight_hard"],
        options["weight_soft"],
        options["beta"],
        -100,
        options["temperature"],
        False,  # compiled
        4,  # chunk_size
    )
    loss.backward()
    return loss.detach().numpy(), [t.grad.numpy() for t in tensors]


LIGER_CASES = {
    "forward_kl_end": dict(divergence="jsd", beta=0.0, temperature=1.0, weight_hard=0.0),
    "jsd": dict(divergence="jsd", beta=0.5, temperature=2.0, weight_hard=0.0),
    "reverse_kl_end": dict(divergence="jsd", beta=1.0, temperature=0.7, weight_hard=0.0),
    "jsd_with_hard_labels": dict(divergence="jsd", beta=0.25, temperature=1.5, weight_hard=0.5),
    "cosine": dict(divergence="cosine", beta=0.8, temperature=1.0, weight_hard=0.0),
}


@pytest.mark.parametrize("name", list(LIGER_CASES))
def test_fused_form_is_liger_s(name, x64):
    options = dict(LIGER_CASES[name])
    divergence = options.pop("divergence")
    weight_soft = 1.0 - options["weight_hard"] if options["weight_hard"] else 1.0
    problem = _problem(1)
    x_s, w_s, x_t, w_t, b_s, b_t, labels = problem
    liger = liger_chunked_loss()
    function = (
        liger.LigerFusedLinearCosineSimilarityFunction
        if divergence == "cosine"
        else liger.LigerFusedLinearJSDFunction
    )
    expected, expected_grads = _liger(function, *problem, weight_soft=weight_soft, **options)

    def ours(x_s, w_s, b_s):
        return jaxloss.linear_distillation_loss(
            x_s,
            w_s,
            x_t,
            w_t,
            labels,
            bias_student=b_s,
            bias_teacher=b_t,
            divergence=divergence,
            weight_soft=weight_soft,
            chunk_size=4,
            **options,
        )

    value, grads = jax.value_and_grad(ours, (0, 1, 2))(x_s, w_s, b_s)
    # Liger accumulates its loss in a float32 scalar, and its hard term runs the log-softmax
    # in float32, whatever the inputs' dtype; its float64 gradients of the soft term are exact
    rtol = 1e-6 if options["weight_hard"] else 1e-11
    np.testing.assert_allclose(value, expected, rtol=1e-6)
    for got, want in zip(grads, expected_grads):
        np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol)


@pytest.mark.parametrize(
    "options",
    [
        # the KL ends are Liger-tested above; --full also checks them against the logits form
        pytest.param(dict(divergence="forward_kl"), marks=pytest.mark.slow),
        pytest.param(dict(divergence="reverse_kl", temperature=0.8), marks=pytest.mark.slow),
        dict(divergence="jsd", beta=0.4, weight_hard=0.3, valid_vocab_size=15),
        dict(divergence="cosine", beta=2.0, reduction="none"),
    ],
    ids=["forward_kl", "reverse_kl", "jsd_hard_padded", "cosine_none"],
)
def test_fused_equals_logits_form_with_teacher_gradients(options, x64):
    x_s, w_s, x_t, w_t, b_s, b_t, labels = _problem(2)
    if "valid_vocab_size" in options:
        labels = np.where(labels >= 15, 1, labels)
    where = np.ones(N, bool)
    where[4] = False
    common = dict(where=where, stop_teacher_gradient=False, **options)

    def fused(x_s, w_s, x_t, w_t):
        loss = jaxloss.linear_distillation_loss(
            x_s, w_s, x_t, w_t, labels, bias_student=b_s, bias_teacher=b_t, chunk_size=5, **common
        )
        return jnp.sum(loss * np.arange(1.0, N + 1)) if loss.ndim else loss

    def logits(x_s, w_s, x_t, w_t):
        loss = jaxloss.distillation_loss(x_s @ w_s.T + b_s, x_t @ w_t.T + b_t, labels, **common)
        return jnp.sum(loss * np.arange(1.0, N + 1)) if loss.ndim else loss

    args = (x_s, w_s, x_t, w_t)
    value, grads = jax.value_and_grad(fused, (0, 1, 2, 3))(*args)
    want, want_grads = jax.value_and_grad(logits, (0, 1, 2, 3))(*args)
    np.testing.assert_allclose(value, want, rtol=1e-12)
    for got, wanted in zip(grads, want_grads):
        np.testing.assert_allclose(got, wanted, rtol=1e-10, atol=1e-12)
    assert np.any(np.asarray(grads[3]) != 0)  # the teacher learns when asked to
    tangents = tuple(np.random.default_rng(3).normal(size=a.shape) for a in args)
    for transform in (jax.jvp, lambda f, p, t: jax.jvp(jax.grad(f, (0, 1)), p, t)):
        got = jax.tree.leaves(transform(fused, args, tangents)[1])
        wanted = jax.tree.leaves(transform(logits, args, tangents)[1])
        for g, e in zip(got, wanted):
            np.testing.assert_allclose(g, e, rtol=1e-9, atol=1e-11)


def test_teacher_gradient_is_stopped_by_default_and_ignored_rows_take_none(x64):
    x_s, w_s, x_t, w_t, _, _, labels = _problem(4)
    x_s[2] = np.nan  # an ignored position's hidden state may hold anything

    def loss(x_s, w_s, x_t, w_t):
        return jaxloss.linear_distillation_loss(x_s, w_s, x_t, w_t, labels, chunk_size=5)

    grads = jax.grad(loss, (0, 1, 2, 3))(x_s, w_s, x_t, w_t)
    assert np.all(np.asarray(grads[2]) == 0) and np.all(np.asarray(grads[3]) == 0)
    assert np.all(np.isfinite(np.asarray(grads[1])))
    assert np.all(np.asarray(grads[0])[[2, 7]] == 0)


@pytest.mark.parametrize("divergence", ["jsd", "cosine"])
def test_padded_vocabulary_equals_the_unpadded_heads(divergence, x64):
    x_s, w_s, x_t, w_t, _, _, labels = _problem(5)
    labels = np.where(labels >= 14, 0, labels)
    big = np.full((3, DS), 40.0), np.full((3, DT), -40.0)  # lanes that would dominate
    padded = jaxloss.linear_distillation_loss(
        x_s,
        np.concatenate([w_s[:14], big[0]]),
        x_t,
        np.concatenate([w_t[:14], big[1]]),
        labels,
        valid_vocab_size=14,
        divergence=divergence,
        weight_hard=0.5,
        chunk_size=5,
    )
    exact = jaxloss.linear_distillation_loss(
        x_s, w_s[:14], x_t, w_t[:14], labels, divergence=divergence, weight_hard=0.5, chunk_size=5
    )
    np.testing.assert_allclose(padded, exact, rtol=1e-13)


def test_bfloat16_heads_with_float32_divergence():
    x_s, w_s, x_t, w_t, _, _, labels = _problem(6, np.float32)
    b16 = [jnp.asarray(a, jnp.bfloat16) for a in (x_s, w_s, x_t, w_t)]
    loss = jaxloss.linear_distillation_loss(*b16, labels, chunk_size=5)
    assert loss.dtype == jnp.float32
    up = [a.astype(jnp.float32) for a in b16]
    want = jaxloss.distillation_loss(up[0] @ up[1].T, up[2] @ up[3].T, labels)
    np.testing.assert_allclose(loss, want, rtol=1e-5)
    grad = jax.grad(lambda x: jaxloss.linear_distillation_loss(x, *b16[1:], labels))(b16[0])
    assert grad.dtype == jnp.bfloat16


@pytest.mark.parametrize(
    "call,words",
    [
        (lambda p: jaxloss.linear_distillation_loss(*p[:3], p[3][:5], p[6]), "share the vocab"),
        (
            lambda p: jaxloss.linear_distillation_loss(p[0], p[1][:, :3], *p[2:4], p[6]),
            r"`w_student` must be \(V, D\) with D = x_student.shape\[-1\] = 6",
        ),
        (
            lambda p: jaxloss.linear_distillation_loss(p[0], p[1], p[2][:5], p[3], p[6]),
            "`x_teacher` must hold the student's tokens",
        ),
        (lambda p: jaxloss.linear_distillation_loss(*p[:4], weight_hard=0.5), "needs the hard"),
        (lambda p: jaxloss.distillation_loss(p[0], p[0], divergence="kl"), "`divergence`"),
        (lambda p: jaxloss.distillation_loss(p[0], p[0], beta=1.5), r"`beta` must be in"),
        (lambda p: jaxloss.distillation_loss(p[0], p[0], temperature=-1.0), "temperature"),
        (lambda p: jaxloss.distillation_loss(p[0], p[0][:, :3]), "same shape"),
        (
            lambda p: jaxloss.distillation_loss(p[0] @ p[1].T, p[0] @ p[1].T, np.full(N, V)),
            "out of range",
        ),
        (lambda p: jaxloss.distillation_loss(p[0], p[0], reduction="batchmean"), "reduction"),
    ],
)
def test_errors_name_the_argument(call, words):
    with pytest.raises(ValueError, match=words):
        call(_problem())


def test_a_bad_label_is_nan_under_jit():
    x_s, w_s, x_t, w_t, _, _, labels = _problem(7, np.float32)
    labels[0] = V
    loss = jax.jit(
        lambda y: jaxloss.linear_distillation_loss(x_s, w_s, x_t, w_t, y, reduction="none")
    )(labels)
    assert np.isnan(loss[0]) and np.all(np.isfinite(loss[1:]))


LAYOUTS = {  # (student and teacher hidden states, both heads)
    "tokens": (P("data"), P()),
    "vocabulary": (P(), P("model")),
    "both": (P("data"), P("model")),
    "fsdp": (P("data"), P("data")),
}


def _sharded_problem():
    x_s, w_s, x_t, w_t, b_s, b_t, labels = _problem(8, np.float32)
    # V = 16 splits over 4 devices; the last entry is padding (valid_vocab_size=15)
    w_s, w_t, b_s, b_t = w_s[:16], w_t[:16], b_s[:16], b_t[:16]
    x_s, x_t = np.concatenate([x_s, x_s[:4]]), np.concatenate([x_t, x_t[:4]])  # N = 16
    labels = np.concatenate([np.where(labels >= 15, 0, labels), [3, 14, -100, 9]])
    return x_s, w_s, x_t, w_t, b_s, b_t, labels


@pytest.mark.skipif(jax.device_count() < 8, reason="needs 8 (CPU) devices")
@pytest.mark.parametrize(
    "layout,divergence,reduction",
    [  # the vocabulary split also runs in the shard_map and 2-process tests
        ("tokens", "jsd", "mean"),
        pytest.param("vocabulary", "cosine", "sum", marks=pytest.mark.slow),
        pytest.param("both", "jsd", "none", marks=pytest.mark.slow),
        ("fsdp", "reverse_kl", "mean"),
    ],
)
def test_sharded_layouts_equal_one_device(layout, divergence, reduction):
    """On an Explicit (2 x 4) mesh every layout runs per device and equals one device: values
    and the gradients of both heads' x, w and bias (the teacher's gradient unstopped), with a
    hard term, ignored positions and a padded vocabulary; the gradients keep their inputs'
    shardings."""
    from jax.sharding import NamedSharding

    x_s, w_s, x_t, w_t, b_s, b_t, labels = _sharded_problem()
    mesh = jax.make_mesh((2, 4), ("data", "model"))
    put = lambda a, spec: jax.device_put(a, NamedSharding(mesh, spec))
    x_spec, w_spec = LAYOUTS[layout]
    cotangent = np.random.default_rng(9).normal(size=16).astype(np.float32)

    def loss(x_s, w_s, b_s, x_t, w_t, b_t, labels):
        value = jaxloss.linear_distillation_loss(
            x_s, w_s, x_t, w_t, labels, bias_student=b_s, bias_teacher=b_t,
            divergence=divergence, beta=0.3, temperature=1.5, weight_hard=0.4,
            valid_vocab_size=15, stop_teacher_gradient=False, reduction=reduction,
            chunk_size=4,
        )  # fmt: skip
        return jnp.sum(value * cotangent) if reduction == "none" else value

    specs = (x_spec, w_spec, P(*w_spec[:1])) * 2 + (P(*x_spec[:1]),)
    args = (x_s, w_s, b_s, x_t, w_t, b_t, labels)
    sharded = [put(a, spec) for a, spec in zip(args, specs)]
    step = jax.value_and_grad(loss, range(6))
    with jax.set_mesh(mesh):
        value, grads = jax.jit(step)(*sharded)
    want, want_grads = step(*args)
    np.testing.assert_allclose(value, want, rtol=1e-5)
    for got, wanted, arg in zip(grads, want_grads, sharded):
        np.testing.assert_allclose(got, wanted, rtol=1e-4, atol=1e-5)
        assert got.sharding.is_equivalent_to(arg.sharding, got.ndim), (got.sharding, arg)


@pytest.mark.skipif(jax.device_count() < 8, reason="needs 8 (CPU) devices")
def test_parallel_variant_in_shard_map_with_a_padded_vocabulary():
    """jaxloss.parallel.linear_distillation_loss: tokens over 'data' (batch_axis_name), the
    vocabulary over 'model', the last of its 16 entries padding (num_classes=15): the global
    mean on every device, and the student's and teacher's gradients."""
    from jax.sharding import NamedSharding

    x_s, w_s, x_t, w_t, b_s, b_t, labels = _sharded_problem()
    mesh = jax.make_mesh((2, 4), ("data", "model"))
    options = dict(divergence="jsd", beta=0.7, temperature=0.8, weight_hard=0.5, chunk_size=4)

    def local(x_s, w_s, b_s, x_t, w_t, b_t, labels):
        return jaxloss.parallel.linear_distillation_loss(
            x_s, w_s, x_t, w_t, labels, bias_student=b_s, bias_teacher=b_t, axis_name="model",
            batch_axis_name="data", num_classes=15, stop_teacher_gradient=False, **options,
        )  # fmt: skip

    specs = (P("data"), P("model"), P("model")) * 2 + (P("data"),)

    def total(*args):
        args = [jax.sharding.reshard(a, NamedSharding(mesh, s)) for a, s in zip(args, specs)]
        return jax.shard_map(local, mesh=mesh, in_specs=specs, out_specs=P())(*args)

    def expected(x_s, w_s, b_s, x_t, w_t, b_t, labels):
        return jaxloss.linear_distillation_loss(
            x_s, w_s[:15], x_t, w_t[:15], labels, bias_student=b_s[:15],
            bias_teacher=b_t[:15], stop_teacher_gradient=False, **options,
        )  # fmt: skip

    args = (x_s, w_s, b_s, x_t, w_t, b_t, labels)
    value, grads = jax.jit(jax.value_and_grad(total, range(6)))(*args)
    want, want_grads = jax.value_and_grad(expected, range(6))(*args)
    np.testing.assert_allclose(value, want, rtol=1e-5)
    for got, wanted in zip(grads, want_grads):
        padded = np.zeros_like(np.asarray(got))
        padded[: wanted.shape[0]] = wanted
        np.testing.assert_allclose(got, padded, rtol=1e-4, atol=1e-5)
    assert np.all(np.asarray(grads[1])[15:] == 0.0)  # the padding's rows of w


@pytest.mark.skipif(jax.device_count() < 8, reason="needs 8 (CPU) devices")
def test_logits_form_on_a_mesh_split_over_tokens_and_vocabulary():
    """distillation_loss on logits split over the tokens and the vocabulary of an Explicit mesh
    (XLA partitions it) equals one device, value and both gradients."""
    from jax.sharding import NamedSharding

    rng = np.random.default_rng(10)
    z_s, z_t = (rng.normal(size=(2, 8, 16)).astype(np.float32) for _ in range(2))
    labels = rng.integers(0, 16, (2, 8))
    labels[0, :3] = -100
    mesh = jax.make_mesh((2, 4), ("data", "model"))
    put = lambda a, spec: jax.device_put(a, NamedSharding(mesh, spec))

    def loss(z_s, z_t, labels):
        return jaxloss.distillation_loss(
            z_s, z_t, labels, weight_hard=0.3, stop_teacher_gradient=False
        )

    step = jax.value_and_grad(loss, (0, 1))
    spec = P("data", None, "model")
    with jax.set_mesh(mesh):
        value, grads = jax.jit(step)(put(z_s, spec), put(z_t, spec), put(labels, P("data")))
    want, want_grads = step(z_s, z_t, labels)
    np.testing.assert_allclose(value, want, rtol=1e-6)
    for got, wanted in zip(grads, want_grads):
        np.testing.assert_allclose(got, wanted, rtol=1e-5, atol=1e-7)
