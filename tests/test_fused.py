"""The cross-entropy hot path (custom VJP) and the fused linear cross-entropy: values and
gradients against torch and against the unfused computation, options, dtypes, transforms."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import jaxloss
from jaxloss.classification import _index_loss

rng = np.random.default_rng(0)
N, D, V = 37, 6, 11
X = rng.standard_normal((N, D))
W = rng.standard_normal((V, D)) / np.sqrt(D)
B = rng.standard_normal(V) * 0.1
Y = rng.integers(0, V, N)
Y[3] = -100
CLASS_WEIGHT = rng.uniform(0.5, 2.0, V)
OPTIONS = [dict(), dict(weight=CLASS_WEIGHT), dict(label_smoothing=0.2),
           dict(weight=CLASS_WEIGHT, label_smoothing=0.2)]


def _torch_linear_ce(x, w, b, y, reduction, options=None, **kwargs):
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    if "weight" in kwargs:
        kwargs["weight"] = torch.tensor(kwargs["weight"])
    loss = torch.nn.functional.linear_cross_entropy(
        xt, wt, torch.tensor(y), linear_bias=bt, reduction=reduction, options=options, **kwargs)
    loss.sum().backward()
    return loss.detach().numpy(), [t.grad.numpy() for t in (xt, wt, bt)]


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-10), (np.float32, 2e-5)],
                         ids=["float64", "float32"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("options", OPTIONS, ids=["plain", "weight", "smoothing", "both"])
def test_linear_cross_entropy_matches_torch(options, reduction, dtype, tol):
    x, w, b = (a.astype(dtype) for a in (X, W, B))
    kwargs = {k: (v.astype(dtype) if isinstance(v, np.ndarray) else v) for k, v in options.items()}
    value, grads = _torch_linear_ce(x, w, b, Y, reduction, **kwargs)
    fn = functools.partial(jaxloss.linear_cross_entropy, labels=Y, reduction=reduction,
                           chunk_size=8, **kwargs)
    ours, our_grads = jax.value_and_grad(
        lambda x, w, b: jnp.sum(fn(x, w, bias=b)), argnums=(0, 1, 2))(x, w, b)
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
        return jnp.sum(jaxloss.linear_cross_entropy(x, w, Y, bias=b, z_loss=lam, softcap=cap,
                                                    chunk_size=16, reduction=reduction))

    (v1, g1), (v2, g2) = (jax.value_and_grad(f, argnums=(0, 1, 2))(X, W, B)
                          for f in (reference, ours))
    np.testing.assert_allclose(v2, v1, rtol=1e-12)
    for a, c in zip(g2, g1):
        np.testing.assert_allclose(a, c, atol=1e-12)


def test_chunking_is_invisible():
    values = [jaxloss.linear_cross_entropy(X, W, Y, bias=B, chunk_size=c, reduction="none")
              for c in (1, 5, 37, 1000)]
    for v in values[1:]:
        np.testing.assert_allclose(v, values[0], rtol=1e-13)


def test_bfloat16_within_1e2_and_gradients_in_input_dtype():
    x, w = jnp.asarray(X, jnp.bfloat16), jnp.asarray(W, jnp.bfloat16)
    ref = jaxloss.linear_cross_entropy(x.astype(jnp.float32), w.astype(jnp.float32), Y)
    out = jaxloss.linear_cross_entropy(x, w, Y)
    assert out.dtype == jnp.bfloat16
    np.testing.assert_allclose(np.float32(out), ref, rtol=1e-2)
    gx, gw = jax.grad(lambda x, w: jaxloss.linear_cross_entropy(x, w, Y).astype(jnp.float32),
                      argnums=(0, 1))(x, w)
    rx, rw = jax.grad(lambda x, w: jaxloss.linear_cross_entropy(x, w, Y), argnums=(0, 1))(
        x.astype(jnp.float32), w.astype(jnp.float32))
    assert gx.dtype == gw.dtype == jnp.bfloat16
    np.testing.assert_allclose(np.float32(gx), rx, atol=1e-2)
    np.testing.assert_allclose(np.float32(gw), rw, atol=1e-2)


def test_jit_vmap_and_leading_axes():
    fn = jax.jit(lambda x, w, y: jaxloss.linear_cross_entropy(x, w, y, chunk_size=4))
    np.testing.assert_allclose(fn(X, W, Y), jaxloss.linear_cross_entropy(X, W, Y), rtol=1e-13)
    batched = jax.vmap(lambda x, y: jaxloss.linear_cross_entropy(x, W, y, reduction="sum"))(
        X[:36].reshape(4, 9, D), Y[:36].reshape(4, 9))
    looped = [jaxloss.linear_cross_entropy(X[i * 9:(i + 1) * 9], W, Y[i * 9:(i + 1) * 9],
                                           reduction="sum") for i in range(4)]
    np.testing.assert_allclose(batched, looped, rtol=1e-12)
    per_token = jaxloss.linear_cross_entropy(X[:36].reshape(4, 9, D), W, Y[:36].reshape(4, 9),
                                             reduction="none")
    assert per_token.shape == (4, 9)


@pytest.mark.parametrize("call, words", [
    (lambda: jaxloss.linear_cross_entropy(X, W.T, Y), ["w", "(V, D)"]),
    (lambda: jaxloss.linear_cross_entropy(X, W, Y[:5]), ["labels", f"[{N}]"]),
    (lambda: jaxloss.linear_cross_entropy(X, W, Y, bias=B[:3]), ["bias", f"[{V}]"]),
    (lambda: jaxloss.linear_cross_entropy(X, W, Y, chunk_size=0), ["chunk_size"]),
    (lambda: jaxloss.linear_cross_entropy(X, W, Y, softcap=0.0), ["softcap"]),
    (lambda: jaxloss.linear_cross_entropy(X, W, np.full(N, V)), ["out of range", str(V)]),
    (lambda: jaxloss.linear_cross_entropy(X, W, Y, label_smoothing=2.0), ["label_smoothing"]),
])
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

    def reference(x, w, e):
        return _index_loss("ce", jax.nn.log_softmax(x), labels, axis=1, weight=w,
                           ignore_index=-100, label_smoothing=e, where=None, reduction="mean")

    def ours(x, w, e):
        return jaxloss.cross_entropy(x, labels, weight=w, label_smoothing=e)

    for argnum in (0, 1, 2):
        np.testing.assert_allclose(jax.grad(ours, argnums=argnum)(logits, weight, eps),
                                   jax.grad(reference, argnums=argnum)(logits, weight, eps),
                                   atol=1e-13)


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
