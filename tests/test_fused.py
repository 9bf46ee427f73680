"""The cross-entropy hot path (custom VJP) and the fused linear cross-entropy: values and
gradients against torch and against the unfused computation, options, dtypes, transforms."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import jaxloss

# float64 comparisons: 64-bit JAX arrays, scoped to each test.
pytestmark = pytest.mark.usefixtures("x64")

rng = np.random.default_rng(0)
N, D, V = 37, 6, 11
X = rng.standard_normal((N, D))
W = rng.standard_normal((V, D)) / np.sqrt(D)
B = rng.standard_normal(V) * 0.1
Y = rng.integers(0, V, N)
Y[3] = -100
CLASS_WEIGHT = rng.uniform(0.5, 2.0, V)
OPTIONS = [
    dict(),
    dict(weight=CLASS_WEIGHT),
    dict(label_smoothing=0.2),
    dict(weight=CLASS_WEIGHT, label_smoothing=0.2),
]


def _torch_linear_ce(x, w, b, y, reduction, options=None, **kwargs):
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    if "weight" in kwargs:
        kwargs["weight"] = torch.tensor(kwargs["weight"])
    loss = torch.nn.functional.linear_cross_entropy(
        xt, wt, torch.tensor(y), linear_bias=bt, reduction=reduction, options=options, **kwargs
    )
    loss.sum().backward()
    return loss.detach().numpy(), [t.grad.numpy() for t in (xt, wt, bt)]


@pytest.mark.parametrize(
    "dtype, tol", [(np.float64, 1e-10), (np.float32, 2e-5)], ids=["float64", "float32"]
)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("options", OPTIONS, ids=["plain", "weight", "smoothing", "both"])
def test_linear_cross_entropy_matches_torch(options, reduction, dtype, tol):
    x, w, b = (a.astype(dtype) for a in (X, W, B))
    kwargs = {k: (v.astype(dtype) if isinstance(v, np.ndarray) else v) for k, v in options.items()}
    value, grads = _torch_linear_ce(x, w, b, Y, reduction, **kwargs)
    if "weight" in kwargs:  # torch's name, jaxloss's
        kwargs["class_weights"] = kwargs.pop("weight")
    fn = functools.partial(
        jaxloss.linear_cross_entropy, labels=Y, reduction=reduction, chunk_size=8, **kwargs
    )
    ours, our_grads = jax.value_and_grad(
        lambda x, w, b: jnp.sum(fn(x, w, bias=b)), argnums=(0, 1, 2)
    )(x, w, b)
    np.testing.assert_allclose(fn(x, w, bias=b), value, rtol=tol, atol=tol)
    for g, ref in zip(our_grads, grads):
        np.testing.assert_allclose(g, ref, rtol=tol, atol=tol)
    assert np.asarray(ours).dtype == dtype


@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_z_loss_and_softcap_match_their_formulas(reduction):
    lam, cap = 1e-3, 5.0

    def reference(x, w, b):
        z = cap * jnp.tanh((x @ w.T + b) / cap)
        lse = jax.nn.logsumexp(z, -1)
        valid = Y != -100
        rows = jaxloss.cross_entropy(z, Y, reduction="none") + jnp.where(valid, lam * lse**2, 0)
        return jnp.sum(rows) / jnp.sum(valid) if reduction == "mean" else jnp.sum(rows)

    def ours(x, w, b):
        return jnp.sum(
            jaxloss.linear_cross_entropy(
                x, w, Y, bias=b, z_loss=lam, softcap=cap, chunk_size=16, reduction=reduction
            )
        )

    (v1, g1), (v2, g2) = (
        jax.value_and_grad(f, argnums=(0, 1, 2))(X, W, B) for f in (reference, ours)
    )
    np.testing.assert_allclose(v2, v1, rtol=1e-12)
    for a, c in zip(g2, g1):
        np.testing.assert_allclose(a, c, atol=1e-12)


@pytest.mark.parametrize("argnums", [1, (1, 2)])
def test_per_token_gradient_of_the_head_alone(argnums):
    """The gradient of w (and bias) alone with reduction='none', x's tangent absent (a frozen
    trunk): the chunk walk's empty tangent rows once failed to reshape."""
    rng = np.random.default_rng(0)
    x, w, b = rng.normal(size=(8, 4)), rng.normal(size=(5, 4)), rng.normal(size=5)
    labels = np.arange(8) % 5

    def total(loss):
        return lambda x, w, b: jnp.sum(loss(x, w, b) * np.arange(1.0, 9.0))

    fused = total(
        lambda x, w, b: jaxloss.linear_cross_entropy(
            x, w, labels, bias=b, reduction="none", chunk_size=4
        )
    )
    naive = total(lambda x, w, b: jaxloss.cross_entropy(x @ w.T + b, labels, reduction="none"))
    got = jax.grad(fused, argnums)(x, w, b)
    want = jax.grad(naive, argnums)(x, w, b)
    for g, e in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-6)


def test_chunking_is_invisible():
    values = [
        jaxloss.linear_cross_entropy(X, W, Y, bias=B, chunk_size=c, reduction="none")
        for c in (1, 5, 37, 1000)
    ]
    for v in values[1:]:
        np.testing.assert_allclose(v, values[0], rtol=1e-13)


@pytest.mark.parametrize("form", ["native", "float32"])
def test_bfloat16_matmul_forms_agree_with_float32(form, monkeypatch):
    """Both forms of the 16-bit matmuls (the one-time measurement picks the faster on CPU)
    accumulate in float32: the loss and gradients are the float32 ones to bf16 rounding."""
    from jaxloss._kernels import matmul as _matmul

    monkeypatch.setenv("JAXLOSS_MATMUL_16BIT", form)
    assert _matmul.form_for(jnp.bfloat16, 8, 4, 16) == form
    x, w = jnp.asarray(X, jnp.bfloat16), jnp.asarray(W, jnp.bfloat16)

    def loss(x, w):
        return jaxloss.linear_cross_entropy(x, w, Y, chunk_size=4).astype(jnp.float32)

    value, grads = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))(x, w)
    ref_value, ref_grads = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))(
        x.astype(jnp.float32), w.astype(jnp.float32)
    )
    np.testing.assert_allclose(value, ref_value, rtol=1e-2)
    for grad, ref in zip(grads, ref_grads):
        assert grad.dtype == jnp.bfloat16
        np.testing.assert_allclose(np.float32(grad), ref, atol=1e-2)


def test_matmul_form_is_measured_once_and_can_be_fixed(monkeypatch):
    from jaxloss._kernels import matmul as _matmul

    monkeypatch.delenv("JAXLOSS_MATMUL_16BIT", raising=False)
    assert _matmul.form_for(jnp.float32, 8, 4, 16) == "native"  # only 16-bit operands vary
    first = _matmul.form_for(jnp.bfloat16, 8, 4, 16)
    hits = _matmul._measured.cache_info().hits
    assert _matmul.form_for(jnp.bfloat16, 8, 4, 16) == first in ("native", "float32")
    assert _matmul._measured.cache_info().hits == hits + 1
    monkeypatch.setenv("JAXLOSS_MATMUL_16BIT", "fp32")
    with pytest.raises(ValueError, match="JAXLOSS_MATMUL_16BIT"):
        _matmul.form_for(jnp.bfloat16, 8, 4, 16)


def test_bfloat16_within_1e2_and_gradients_in_input_dtype():
    x, w = jnp.asarray(X, jnp.bfloat16), jnp.asarray(W, jnp.bfloat16)
    ref = jaxloss.linear_cross_entropy(x.astype(jnp.float32), w.astype(jnp.float32), Y)
    out = jaxloss.linear_cross_entropy(x, w, Y)
    assert out.dtype == jnp.bfloat16
    np.testing.assert_allclose(np.float32(out), ref, rtol=1e-2)
    gx, gw = jax.grad(
        lambda x, w: jaxloss.linear_cross_entropy(x, w, Y).astype(jnp.float32), argnums=(0, 1)
    )(x, w)
    rx, rw = jax.grad(lambda x, w: jaxloss.linear_cross_entropy(x, w, Y), argnums=(0, 1))(
        x.astype(jnp.float32), w.astype(jnp.float32)
    )
    assert gx.dtype == gw.dtype == jnp.bfloat16
    np.testing.assert_allclose(np.float32(gx), rx, atol=1e-2)
    np.testing.assert_allclose(np.float32(gw), rw, atol=1e-2)


def test_jit_vmap_and_leading_axes():
    fn = jax.jit(lambda x, w, y: jaxloss.linear_cross_entropy(x, w, y, chunk_size=4))
    np.testing.assert_allclose(fn(X, W, Y), jaxloss.linear_cross_entropy(X, W, Y), rtol=1e-13)
    batched = jax.vmap(lambda x, y: jaxloss.linear_cross_entropy(x, W, y, reduction="sum"))(
        X[:36].reshape(4, 9, D), Y[:36].reshape(4, 9)
    )
    looped = [
        jaxloss.linear_cross_entropy(
            X[i * 9 : (i + 1) * 9], W, Y[i * 9 : (i + 1) * 9], reduction="sum"
        )
        for i in range(4)
    ]
    np.testing.assert_allclose(batched, looped, rtol=1e-12)
    per_token = jaxloss.linear_cross_entropy(
        X[:36].reshape(4, 9, D), W, Y[:36].reshape(4, 9), reduction="none"
    )
    assert per_token.shape == (4, 9)


@pytest.mark.parametrize(
    "call, words",
    [
        (lambda: jaxloss.linear_cross_entropy(X, W.T, Y), ["w", "(V, D)"]),
        (lambda: jaxloss.linear_cross_entropy(X, W, Y[:5]), ["labels", f"[{N}]"]),
        (lambda: jaxloss.linear_cross_entropy(X, W, Y, bias=B[:3]), ["bias", f"[{V}]"]),
        (lambda: jaxloss.linear_cross_entropy(X, W, Y, chunk_size=0), ["chunk_size"]),
        (lambda: jaxloss.linear_cross_entropy(X, W, Y, softcap=0.0), ["softcap"]),
        (lambda: jaxloss.linear_cross_entropy(X, W, np.full(N, V)), ["out of range", str(V)]),
        (lambda: jaxloss.linear_cross_entropy(X, W, Y, label_smoothing=2.0), ["label_smoothing"]),
    ],
)
def test_linear_cross_entropy_errors(call, words):
    with pytest.raises((ValueError, TypeError)) as info:
        call()
    for word in words:
        assert word in str(info.value)


@pytest.mark.parametrize("options", OPTIONS, ids=["plain", "weight", "smoothing", "both"])
def test_cross_entropy_weight_and_smoothing_gradients_are_exact(options):
    """The custom VJP also differentiates the class weights and ε, like autodiff would."""
    logits = jnp.asarray(rng.standard_normal((9, V)))
    labels = jnp.asarray(Y[:9])
    weight = jnp.asarray(options.get("weight", np.ones(V)))
    eps = options.get("label_smoothing", 0.0)

    def reference(x, w, e):  # torch's formula through log_softmax and autodiff
        log_probs = jax.nn.log_softmax(x)
        valid = labels != -100
        safe = jnp.where(valid, labels, 0)
        w_y = w[safe]
        nll = -jnp.take_along_axis(log_probs, safe[:, None], axis=1)[:, 0]
        smooth = -jnp.sum(log_probs * w, axis=1)
        rows = (1 - e) * w_y * nll + e / V * smooth
        return jnp.sum(jnp.where(valid, rows, 0)) / jnp.sum(jnp.where(valid, w_y, 0))

    def ours(x, w, e):
        return jaxloss.cross_entropy(x, labels, class_weights=w, label_smoothing=e)

    for argnum in (0, 1, 2):
        np.testing.assert_allclose(
            jax.grad(ours, argnums=argnum)(logits, weight, eps),
            jax.grad(reference, argnums=argnum)(logits, weight, eps),
            atol=1e-13,
        )


def test_cross_entropy_masked_logits_and_16_bit_inputs():
    logits = jnp.asarray(rng.standard_normal((8, V)))
    logits = logits.at[:, -1].set(-jnp.inf)  # a vocabulary mask
    labels = jnp.asarray(rng.integers(0, V - 1, 8))
    value, grad = jax.value_and_grad(jaxloss.cross_entropy)(logits, labels)
    assert np.isfinite(value) and np.all(np.isfinite(grad)) and np.all(grad[:, -1] == 0)
    for dtype in (jnp.bfloat16, jnp.float16):
        low = logits.astype(dtype)
        grad_low = jax.grad(lambda x: jaxloss.cross_entropy(x, labels).astype(jnp.float32))(low)
        assert grad_low.dtype == dtype
        np.testing.assert_allclose(np.float32(grad_low), grad, atol=1e-2)


# ----------------------------------------------------------------------------- compat layer

from jaxloss.compat import functional as F  # noqa: E402
from jaxloss.compat import nn  # noqa: E402


def _shape(signature):
    return [(p.name, p.kind, p.default) for p in signature.parameters.values()]


@pytest.mark.parametrize(
    "ours, theirs",
    [
        (F.linear_cross_entropy, torch.nn.functional.linear_cross_entropy),
        (nn.LinearCrossEntropyLoss.__init__, torch.nn.LinearCrossEntropyLoss.__init__),
        (nn.LinearCrossEntropyLoss.forward, torch.nn.LinearCrossEntropyLoss.forward),
        (nn.LinearCrossEntropyOptions, torch.nn.LinearCrossEntropyOptions),
        (nn.AdaptiveLogSoftmaxWithLoss.__init__, torch.nn.AdaptiveLogSoftmaxWithLoss.__init__),
        (nn.AdaptiveLogSoftmaxWithLoss.forward, torch.nn.AdaptiveLogSoftmaxWithLoss.forward),
        (nn.AdaptiveLogSoftmaxWithLoss.log_prob, torch.nn.AdaptiveLogSoftmaxWithLoss.log_prob),
        (nn.AdaptiveLogSoftmaxWithLoss.predict, torch.nn.AdaptiveLogSoftmaxWithLoss.predict),
    ],
    ids=[
        "F.linear_cross_entropy",
        "LCE.__init__",
        "LCE.forward",
        "LCEOptions",
        "ALS.__init__",
        "ALS.forward",
        "ALS.log_prob",
        "ALS.predict",
    ],
)
def test_signatures_match_torch(ours, theirs):
    import inspect

    names = lambda s: [(n, k, d if not isinstance(d, type) else None) for n, k, d in _shape(s)]
    assert [n for n, _, _ in names(inspect.signature(ours))] == [
        n for n, _, _ in names(inspect.signature(theirs))
    ]
    for (n, k, d), (_, k2, d2) in zip(
        _shape(inspect.signature(ours)), _shape(inspect.signature(theirs))
    ):
        assert k == k2, n
        if isinstance(d2, (int, float, str, bool, tuple, type(None))):
            assert d == d2, n


@pytest.mark.parametrize("chunk", [None, 5])
@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_functional_linear_cross_entropy_matches_torch_chunked_path(chunk, reduction):
    options_t = torch.nn.LinearCrossEntropyOptions(batch_chunk_size=chunk) if chunk else None
    options_j = nn.LinearCrossEntropyOptions(batch_chunk_size=chunk) if chunk else None
    y = Y.copy()
    y[3] = 2  # torch's chunked path keeps -100 too, but test real labels everywhere here
    value, grads = _torch_linear_ce(X, W, B, y, reduction, options=options_t, weight=CLASS_WEIGHT)
    fn = lambda x, w, b: F.linear_cross_entropy(
        x, w, y, linear_bias=b, reduction=reduction, weight=CLASS_WEIGHT, options=options_j
    )
    np.testing.assert_allclose(fn(X, W, B), value, rtol=1e-10)
    ours = jax.grad(lambda *a: jnp.sum(fn(*a)), argnums=(0, 1, 2))(X, W, B)
    for g, ref in zip(ours, grads):
        np.testing.assert_allclose(g, ref, atol=1e-10)


def test_functional_reference_paths_probabilities_kdim_and_unbatched():
    probs = jax.nn.softmax(jnp.asarray(rng.standard_normal((N, V))))
    torch_value = torch.nn.functional.linear_cross_entropy(
        torch.tensor(X), torch.tensor(W), torch.tensor(np.asarray(probs))
    )
    np.testing.assert_allclose(F.linear_cross_entropy(X, W, probs), torch_value.item(), rtol=1e-12)
    w_kdim = rng.standard_normal((V, 3, D))
    y_kdim = rng.integers(0, V, (N, 3))
    torch_value = torch.nn.functional.linear_cross_entropy(
        torch.tensor(X), torch.tensor(w_kdim), torch.tensor(y_kdim)
    )
    np.testing.assert_allclose(
        F.linear_cross_entropy(X, w_kdim, y_kdim), torch_value.item(), rtol=1e-12
    )
    torch_value = torch.nn.functional.linear_cross_entropy(
        torch.tensor(X[0]), torch.tensor(W), torch.tensor(Y[0])
    )
    np.testing.assert_allclose(
        F.linear_cross_entropy(X[0], W, Y[0]), torch_value.item(), rtol=1e-12
    )


@pytest.mark.parametrize("bias", [False, True])
def test_linear_cross_entropy_module_loads_torch_weights(bias):
    torch.manual_seed(0)
    theirs = torch.nn.LinearCrossEntropyLoss(D, V, bias=bias, label_smoothing=0.1).double()
    ours = nn.LinearCrossEntropyLoss(D, V, bias=bias, label_smoothing=0.1, dtype=jnp.float64)
    ours.load_state_dict(theirs.state_dict())
    np.testing.assert_allclose(
        ours(X, Y), theirs(torch.tensor(X), torch.tensor(Y)).item(), rtol=1e-12
    )
    with pytest.raises(ValueError, match="one weight per class"):
        nn.LinearCrossEntropyLoss(D, V, weight=np.ones(3))
    with pytest.raises(ValueError, match="missing keys"):
        ours.load_state_dict({})


def test_parameters_initialise_like_torch_linear_and_seed():
    nn.manual_seed(3)
    a = nn.LinearCrossEntropyLoss(64, 10, bias=True)
    nn.manual_seed(3)
    b = nn.LinearCrossEntropyLoss(64, 10, bias=True)
    np.testing.assert_array_equal(a.linear.weight, b.linear.weight)
    bound = 1 / np.sqrt(64)
    assert np.abs(a.linear.weight).max() <= bound and np.abs(a.linear.weight).max() > 0.9 * bound
    assert a.linear.weight.shape == (10, 64) and a.linear.bias.shape == (10,)


def _adaptive_pair(head_bias):
    torch.manual_seed(1)
    theirs = torch.nn.AdaptiveLogSoftmaxWithLoss(
        16, 20, [4, 10, 15], div_value=2.0, head_bias=head_bias
    ).double()
    ours = nn.AdaptiveLogSoftmaxWithLoss(
        16, 20, [4, 10, 15], div_value=2.0, head_bias=head_bias, dtype=jnp.float64
    )
    ours.load_state_dict(theirs.state_dict())
    return ours, theirs


# With a head bias by default (it covers the unbiased path's terms too); without, --full.
@pytest.mark.parametrize("head_bias", [pytest.param(False, marks=pytest.mark.slow), True])
def test_adaptive_log_softmax_matches_torch(head_bias):
    ours, theirs = _adaptive_pair(head_bias)
    x = rng.standard_normal((25, 16))
    y = rng.integers(0, 20, 25)
    xt = torch.tensor(x, requires_grad=True)
    out_t = theirs(xt, torch.tensor(y))
    out_t.loss.backward()
    out_j = ours(x, y)
    np.testing.assert_allclose(out_j.output, out_t.output.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(out_j.loss, out_t.loss.item(), rtol=1e-12)
    np.testing.assert_allclose(
        ours.log_prob(x), theirs.log_prob(torch.tensor(x)).detach(), rtol=1e-12
    )
    np.testing.assert_array_equal(ours.predict(x), theirs.predict(torch.tensor(x)).numpy())
    weights = ours._weights()
    grad = jax.grad(lambda x: jaxloss.adaptive_softmax_loss(x, y, **weights))(x)
    np.testing.assert_allclose(grad, xt.grad.numpy(), atol=1e-12)
    # The native loss takes `where` and the reductions like every other criterion.
    keep = np.arange(25) % 3 != 0
    masked = jaxloss.adaptive_softmax_loss(x, y, where=keep, reduction="sum", **weights)
    np.testing.assert_allclose(masked, -out_t.output.detach().numpy()[keep].sum(), rtol=1e-12)
    none = jaxloss.adaptive_softmax_loss(x, y, where=keep, reduction="none", **weights)
    assert none.shape == (25,) and np.all(np.asarray(none)[~keep] == 0)
    single = ours(x[0], y[0])
    np.testing.assert_allclose(single.output, out_t.output[0].item(), rtol=1e-12)


def test_adaptive_log_softmax_errors_where_torch_raises():
    for cutoffs in ([], [5, 3], [0, 4], [4, 20], [4, 4]):
        with pytest.raises(ValueError):
            torch.nn.AdaptiveLogSoftmaxWithLoss(16, 20, cutoffs)
        with pytest.raises(ValueError, match="cutoffs"):
            nn.AdaptiveLogSoftmaxWithLoss(16, 20, cutoffs)
    ours, _ = _adaptive_pair(False)
    with pytest.raises(ValueError, match="20"):
        ours(rng.standard_normal((3, 16)), np.array([0, 5, 20]))
    with pytest.raises(ValueError, match="same N"):
        ours(rng.standard_normal((3, 16)), np.array([0, 5]))
    with pytest.raises(ValueError, match=r"tail\.0\.0\.weight"):
        ours.load_state_dict(dict(ours.state_dict(), **{"tail.0.0.weight": np.zeros((3, 3))}))
