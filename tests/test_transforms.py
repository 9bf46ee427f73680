"""jit equals eager, vmap equals a loop, grads are finite where torch's are, and 16-bit inputs
accumulate in float32 and come back in their own dtype."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxloss
from jaxloss.parity.cases import CRITERIA as PARITY_CRITERIA
from jaxloss.parity.cases import cases
from jaxloss.parity.compare import jaxloss_function

CRITERIA = sorted(PARITY_CRITERIA)
# The default tier (bound by compile time) runs these transformation checks on the criteria
# with their own kernels or custom derivatives, and one of each simpler kind; --full on all.
DEFAULT_TIER = {
    "cross_entropy",
    "cross_entropy_probs",
    "nll_loss",
    "kl_div",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "mse_loss",
    "multilabel_margin_loss",
    "triplet_margin_loss",
    "ctc_loss",
}


def _tiered(params, name_of=lambda p: p):
    return [
        p
        if name_of(p) in DEFAULT_TIER
        else pytest.param(*p if isinstance(p, tuple) else (p,), marks=pytest.mark.slow)
        for p in params
    ]


@pytest.mark.parametrize("criterion", _tiered(CRITERIA))
def test_jit_equals_eager(criterion, x64, full_tier):
    drawn = cases(criterion, seed=1, dtypes=("float64",), regimes=("normal",))
    # Each case compiles; the parity suite covers the options (one case in the default tier).
    count = 8 if full_tier else 1
    for case in drawn[:: max(1, len(drawn) // count)][:count]:
        call, primals = jaxloss_function(case)
        eager = call(*primals)
        jitted = jax.jit(call)(*primals)
        np.testing.assert_allclose(jitted, eager, rtol=1e-12, atol=1e-14, err_msg=case.describe())

        def total(*args, call=call):
            return jnp.sum(call(*args))

        eager_grads = jax.grad(total, argnums=0)(*primals)
        jit_grads = jax.jit(jax.grad(total, argnums=0))(*primals)
        np.testing.assert_allclose(jit_grads, eager_grads, rtol=1e-12, atol=1e-14)


def _batched_native_calls():
    """(name, per-sample function, batched inputs) for vmap over a leading batch axis."""
    k = jax.random.split(jax.random.PRNGKey(0), 6)
    b, n, c, d = 3, 4, 5, 6
    logits = jax.random.normal(k[0], (b, n, c))
    labels = jax.random.randint(k[1], (b, n), 0, c)
    probs = jax.nn.sigmoid(logits)
    x = jax.random.normal(k[2], (b, n, d))
    y = jax.random.normal(k[3], (b, n, d))
    z = jax.random.normal(k[4], (b, n, d))
    signs = jnp.where(jax.random.normal(k[5], (b, n)) > 0, 1.0, -1.0)
    w = jnp.linspace(0.5, 2.0, c)
    return [
        (
            "cross_entropy",
            functools.partial(jaxloss.cross_entropy, class_weights=w, label_smoothing=0.2),
            (logits, labels),
        ),
        ("cross_entropy_probs", jaxloss.cross_entropy, (logits, jax.nn.softmax(y[..., :c]))),
        (
            "nll_loss",
            functools.partial(jaxloss.nll_loss, class_weights=w),
            (jax.nn.log_softmax(logits), labels),
        ),
        (
            "kl_div",
            functools.partial(jaxloss.kl_div, reduction="batchmean"),
            (jax.nn.log_softmax(logits), jax.nn.softmax(x[..., :c])),
        ),
        ("binary_cross_entropy", jaxloss.binary_cross_entropy, (probs, jnp.round(probs))),
        (
            "binary_cross_entropy_with_logits",
            functools.partial(jaxloss.binary_cross_entropy_with_logits, pos_weight=w),
            (logits, jnp.round(probs)),
        ),
        ("l1_loss", jaxloss.l1_loss, (x, y)),
        ("mse_loss", jaxloss.mse_loss, (x, y)),
        ("huber_loss", functools.partial(jaxloss.huber_loss, delta=0.5), (x, y)),
        ("smooth_l1_loss", functools.partial(jaxloss.smooth_l1_loss, beta=0.5), (x, y)),
        (
            "poisson_nll_loss",
            functools.partial(jaxloss.poisson_nll_loss, full=True),
            (x, jnp.abs(jnp.round(y * 3))),
        ),
        ("gaussian_nll_loss", jaxloss.gaussian_nll_loss, (x, y, jnp.exp(z))),
        ("soft_margin_loss", jaxloss.soft_margin_loss, (logits[..., 0], signs)),
        (
            "multilabel_soft_margin_loss",
            jaxloss.multilabel_soft_margin_loss,
            (logits, jnp.round(probs)),
        ),
        ("multi_margin_loss", functools.partial(jaxloss.multi_margin_loss, p=2), (logits, labels)),
        (
            "multilabel_margin_loss",
            jaxloss.multilabel_margin_loss,
            (logits, jnp.concatenate([labels[..., None], -jnp.ones((b, n, c - 1), int)], -1)),
        ),
        ("margin_ranking_loss", jaxloss.margin_ranking_loss, (x[..., 0], y[..., 0], signs)),
        ("hinge_embedding_loss", jaxloss.hinge_embedding_loss, (jnp.abs(x[..., 0]), signs)),
        ("cosine_embedding_loss", jaxloss.cosine_embedding_loss, (x, y, signs)),
        (
            "triplet_margin_loss",
            functools.partial(jaxloss.triplet_margin_loss, swap=True),
            (x, y, z),
        ),
        ("triplet_margin_with_distance_loss", jaxloss.triplet_margin_with_distance_loss, (x, y, z)),
        (
            "ctc_loss",
            jaxloss.ctc_loss,
            (jax.random.normal(k[0], (b, 7, c)), jax.random.randint(k[1], (b, 3), 1, c)),
        ),
    ]


@pytest.mark.parametrize(
    "name,fn,inputs",
    [
        # CTC's vmapped scans take ~5 s of compiles; the sharded tests batch it by default.
        pytest.param(*c, marks=pytest.mark.slow)
        if c[0] == "ctc_loss" or c[0] not in DEFAULT_TIER
        else c
        for c in _batched_native_calls()
    ],
    ids=[c[0] for c in _batched_native_calls()],
)
def test_vmap_equals_loop(name, fn, inputs):
    batched = jax.vmap(fn)(*inputs)
    looped = jnp.stack([fn(*(a[i] for a in inputs)) for i in range(inputs[0].shape[0])])
    np.testing.assert_allclose(batched, looped, rtol=1e-6, atol=1e-7)
    grads = jax.grad(lambda a: jnp.sum(jax.vmap(fn)(a, *inputs[1:])))(inputs[0])
    assert np.all(np.isfinite(grads)), f"{name}: non-finite gradient"


# float16 takes the same path as bfloat16 (computed in float32, cast back): --full runs it.
@pytest.mark.parametrize(
    "dtype",
    [jnp.bfloat16, pytest.param(jnp.float16, marks=pytest.mark.slow)],
    ids=["bfloat16", "float16"],
)
@pytest.mark.parametrize(
    "name,fn,inputs",
    _tiered(_batched_native_calls(), name_of=lambda c: c[0]),
    ids=[c[0] for c in _batched_native_calls()],
)
def test_low_precision_accumulates_in_float32(name, fn, inputs, dtype):
    low = [a.astype(dtype) if jnp.issubdtype(a.dtype, jnp.floating) else a for a in inputs]
    # The float32 reference sees exactly the rounded low-precision inputs.
    ref = fn(*[a.astype(jnp.float32) if jnp.issubdtype(a.dtype, jnp.floating) else a for a in low])
    out = fn(*low)
    assert out.dtype == dtype, f"{name}: expected {dtype} out, got {out.dtype}"
    np.testing.assert_allclose(np.asarray(out, np.float32), ref, rtol=1e-2, atol=1e-2)
    grad = jax.grad(lambda a: fn(a, *low[1:]).astype(jnp.float32))(low[0])
    assert grad.dtype == dtype and np.all(np.isfinite(np.asarray(grad, np.float32)))


def test_large_sums_do_not_lose_precision_in_bfloat16():
    # 65536 equal losses: a bfloat16 running sum would stall far below the true mean.
    logits = jnp.zeros((65536, 4), jnp.bfloat16)
    labels = jnp.zeros((65536,), jnp.int32)
    value = jaxloss.cross_entropy(logits, labels, reduction="sum")
    assert abs(float(value) - 65536 * np.log(4)) / (65536 * np.log(4)) < 1e-2
