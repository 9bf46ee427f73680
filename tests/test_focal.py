"""Focal, Poly-1 and z-loss: against optax where it has the same loss, against NumPy
references written from the formulas elsewhere, and finite (exact) at logits of +-1000 with
gamma < 1, where torch's gradient is nan. torchvision parity of
sigmoid_focal_loss is in the parity suite."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxloss

pytestmark = pytest.mark.usefixtures("x64")


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def ref_sigmoid_focal(x, t, alpha=0.25, gamma=2.0, smoothing=0.0):
    """Keras' BinaryFocalCrossentropy (with class balancing) / torchvision's, per element."""
    t = t * (1 - smoothing) + smoothing / 2
    p = _sigmoid(x)
    bce = -(t * np.log(p) + (1 - t) * np.log(1 - p))
    p_t = p * t + (1 - p) * (1 - t)
    loss = (1 - p_t) ** gamma * bce
    if alpha is not None:
        loss = (alpha * t + (1 - alpha) * (1 - t)) * loss
    return loss


def _log_softmax(x):
    shifted = x - x.max(-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))


def ref_softmax_focal(x, y, gamma=2.0, weight=None, smoothing=0.0, ignore=-100):
    c = x.shape[1]
    w = np.ones(c) if weight is None else weight
    log_p = _log_softmax(x)
    p = np.exp(log_p)
    valid = y != ignore
    safe = np.where(valid, y, 0)
    target = np.eye(c)[safe] * (1 - smoothing) + smoothing / c
    per = -(target * w * (1 - p) ** gamma * log_p).sum(-1)
    per = np.where(valid, per, 0.0)
    return per, per.sum() / w[safe][valid].sum()


def ref_poly1(x, y, epsilon=2.0, weight=None, smoothing=0.0):
    c = x.shape[1]
    w = np.ones(c) if weight is None else weight
    log_p = _log_softmax(x)
    target = np.eye(c)[y] * (1 - smoothing) + smoothing / c
    per = (target * w * (-log_p + epsilon * (1 - np.exp(log_p)))).sum(-1)
    return per, per.sum() / w[y].sum()


RNG = np.random.default_rng(0)
X = RNG.normal(0, 2, (6, 5))
T = RNG.uniform(0, 1, (6, 5))
T[0, :2] = [0.0, 1.0]
Y = np.array([0, 4, 2, 2, 1, -100])


@functools.partial(jax.jit, static_argnames=("alpha", "gamma"))
def _focal_and_grad(x, t, alpha, gamma):
    """jaxloss's and optax's per-element losses and the gradients of their sums."""

    def ours(x):
        return jaxloss.sigmoid_focal_loss(x, t, alpha=alpha, gamma=gamma, reduction="none")

    def theirs(x):
        return optax.losses.sigmoid_focal_loss(x, t, alpha=alpha, gamma=gamma)

    return (
        ours(x),
        theirs(x),
        jax.grad(lambda x: jnp.sum(ours(x)))(x),
        jax.grad(lambda x: jnp.sum(theirs(x)))(x),
    )


@pytest.mark.parametrize(
    "alpha,gamma", [(None, 0.0), (0.25, 0.5), (0.8, 2.0), (None, 3.0), (0.25, 2.0)]
)
def test_sigmoid_focal_matches_optax_and_the_reference(alpha, gamma):
    ours, theirs, grad_ours, grad_theirs = _focal_and_grad(X, T, alpha, gamma)
    np.testing.assert_allclose(ours, ref_sigmoid_focal(X, T, alpha, gamma), rtol=1e-11)
    np.testing.assert_allclose(ours, theirs, rtol=1e-10)
    np.testing.assert_allclose(grad_ours, grad_theirs, rtol=1e-9, atol=1e-12)
    # float32
    got = _focal_and_grad(X.astype(np.float32), T.astype(np.float32), alpha, gamma)[0]
    assert got.dtype == jnp.float32
    np.testing.assert_allclose(got, ref_sigmoid_focal(X, T, alpha, gamma), rtol=2e-5, atol=1e-7)


def test_sigmoid_focal_label_smoothing_and_probabilities_follow_keras():
    ours = jaxloss.sigmoid_focal_loss(X, T, label_smoothing=0.2, reduction="none")
    np.testing.assert_allclose(ours, ref_sigmoid_focal(X, T, smoothing=0.2), rtol=1e-11)
    probs = _sigmoid(X)
    from_probs = jaxloss.sigmoid_focal_loss(probs, T, from_logits=False, reduction="none")
    np.testing.assert_allclose(from_probs, ref_sigmoid_focal(X, T), rtol=1e-9)
    outside = jax.jit(lambda p: jaxloss.sigmoid_focal_loss(p, T, from_logits=False))(probs + 1)
    assert np.isnan(outside), "under jit a probability outside [0, 1] gives nan"
    mean = jaxloss.sigmoid_focal_loss(X, T, where=T > 0.5)
    np.testing.assert_allclose(mean, ref_sigmoid_focal(X, T)[T > 0.5].mean(), rtol=1e-11)


@pytest.mark.parametrize("gamma", [0.25, pytest.param(2.0, marks=pytest.mark.slow)])
def test_sigmoid_focal_is_finite_and_exact_at_large_logits(gamma):
    x = np.array([1000.0, -1000.0, 1000.0, -1000.0, 30.0, -30.0])
    t = np.array([1.0, 0.0, 0.0, 1.0, 1.0, 0.0])
    for dtype in (np.float64, np.float32):
        value, _theirs, grad, grad_theirs = (
            np.asarray(a) for a in _focal_and_grad(x.astype(dtype), t.astype(dtype), None, gamma)
        )
        assert np.all(np.isfinite(value)) and np.all(np.isfinite(grad)), (value, grad)
        # right answers: a confident right logit costs ~0; a confident wrong one |x|
        np.testing.assert_allclose(value[[0, 1]], 0.0, atol=1e-30)
        np.testing.assert_allclose(value[[2, 3]], 1000.0, rtol=1e-6)
        np.testing.assert_allclose(grad[[2, 3]], [1.0, -1.0], rtol=1e-6)
        # optax 0.2.8 is finite here too (earlier releases gave nan), and agrees
        np.testing.assert_allclose(grad, grad_theirs, rtol=1e-6, atol=1e-15)


def _focal_sum(x, t, alpha, gamma):
    return jaxloss.sigmoid_focal_loss(x, t, alpha=alpha, gamma=gamma, reduction="sum")


@pytest.mark.parametrize(
    "x",
    [0.0, pytest.param(1.0, marks=pytest.mark.slow), pytest.param(-1.0, marks=pytest.mark.slow)],
    ids=lambda v: f"x={v}",
)
@pytest.mark.parametrize("t", [1.0, 0.0, 0.3], ids=lambda v: f"t={v}")
@pytest.mark.parametrize(
    "alpha, gamma", [(None, 0.0), (0.25, 2.0), (None, 0.5), (0.25, 1.5)], ids=str
)
def test_sigmoid_focal_gradient_at_zero_and_one_equals_central_differences(x, t, alpha, gamma):
    """A zero-initialised head puts every logit at exactly 0: the gradient there is the
    derivative of the formula (BCE's σ(0) - t = -0.5 at γ = 0, t = 1), not a one-sided one."""
    x, t = jnp.float64(x), jnp.float64(t)
    h = 1e-6
    central = (_focal_sum(x + h, t, alpha, gamma) - _focal_sum(x - h, t, alpha, gamma)) / (2 * h)
    grad = jax.grad(_focal_sum)(x, t, alpha, gamma)
    np.testing.assert_allclose(grad, central, rtol=1e-7, atol=1e-10)
    theirs = jax.grad(
        lambda x: jnp.sum(optax.losses.sigmoid_focal_loss(x, t, alpha=alpha, gamma=gamma))
    )(x)
    np.testing.assert_allclose(grad, theirs, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("x, t", [(-20.0, 0.0), (20.0, 1.0), (-50.0, 0.0), (50.0, 1.0)])
def test_sigmoid_focal_float32_gradient_keeps_its_digits_in_the_tails(x, t):
    """Where the loss is e^{-(1+γ)|x|}-small, the float32 gradient is within a few roundings
    of the float64 one (the BCE is summed as t·softplus(-x) + (1 - t)·softplus(x), no
    cancellation), for γ = 0.5 as in optax's extreme-logits test."""
    exact = jax.grad(_focal_sum)(jnp.float64(x), jnp.float64(t), None, 0.5)
    single = jax.grad(_focal_sum)(jnp.float32(x), jnp.float32(t), None, 0.5)
    assert single.dtype == jnp.float32
    np.testing.assert_allclose(single, exact, rtol=1e-5)
    assert exact != 0


@pytest.mark.parametrize("dtype", ["float32", pytest.param("float64", marks=pytest.mark.slow)])
@pytest.mark.parametrize(
    "x, t",
    [(50.0, 1.0), (0.0, 1.0)]
    + [
        pytest.param(x, t, marks=pytest.mark.slow)
        for x, t in [(-50.0, 0.0), (100.0, 1.0), (100.0, 0.0)]
    ],
)
@pytest.mark.parametrize("gamma", [0.5, pytest.param(1.5, marks=pytest.mark.slow)])
def test_sigmoid_focal_hessian_is_finite_and_optax_s_at_saturated_logits(gamma, x, t, dtype):
    """optax's test_extreme_logits_finite_gradients: at γ < 2 non-integer, 1 - p_t underflows
    at saturated logits and autodiff of its log divides 0 by 0; the closed-form derivatives of
    log(1 - p_t) keep the Hessian finite and equal to optax's."""
    x, t = jnp.asarray(x, dtype), jnp.asarray(t, dtype)
    ours = jax.hessian(_focal_sum)(x, t, None, gamma)
    theirs = jax.hessian(
        lambda x: jnp.sum(optax.losses.sigmoid_focal_loss(x, t, alpha=None, gamma=gamma))
    )(x)
    assert np.isfinite(ours)
    np.testing.assert_allclose(ours, theirs, rtol=1e-5 if dtype == "float32" else 1e-12, atol=0)
    targets_gradient = jax.grad(lambda t: _focal_sum(jnp.asarray(2.0, dtype), t, None, gamma))(
        jnp.asarray(0.3, dtype)
    )
    reference = jax.grad(
        lambda t: jnp.sum(
            optax.losses.sigmoid_focal_loss(jnp.asarray(2.0, dtype), t, alpha=None, gamma=gamma)
        )
    )(jnp.asarray(0.3, dtype))
    np.testing.assert_allclose(
        targets_gradient, reference, rtol=1e-5 if dtype == "float32" else 1e-12
    )


@pytest.mark.parametrize(
    "smoothing,weighted,gamma",
    [(0.0, False, 0.0), (0.3, True, 0.0), (0.0, True, 0.5), (0.3, False, 2.0), (0.3, True, 2.0)],
)
def test_softmax_focal_matches_the_reference(smoothing, weighted, gamma):
    weight = np.linspace(0.5, 2.0, 5) if weighted else None
    per, mean = ref_softmax_focal(X, Y, gamma, weight, smoothing)
    kwargs = dict(gamma=gamma, class_weights=weight, label_smoothing=smoothing)

    @jax.jit
    def ours(x):
        def focal(x):
            return jaxloss.softmax_focal_loss(x, Y, **kwargs)

        def cross_entropy(x):
            return jaxloss.cross_entropy(x, Y, class_weights=weight, label_smoothing=smoothing)

        unreduced = jaxloss.softmax_focal_loss(x, Y, reduction="none", **kwargs)
        return unreduced, focal(x), jax.grad(focal)(x), cross_entropy(x), jax.grad(cross_entropy)(x)

    unreduced, reduced, grad, ce, ce_grad = ours(X)
    np.testing.assert_allclose(unreduced, per, rtol=1e-11, atol=1e-14)
    np.testing.assert_allclose(reduced, mean, rtol=1e-11)
    if gamma == 0:  # the cross-entropy
        np.testing.assert_allclose(reduced, ce, rtol=1e-12)
        np.testing.assert_allclose(grad, ce_grad, rtol=1e-10, atol=1e-14)


def test_softmax_focal_gradient_matches_central_differences():
    def reference_mean(x):
        return ref_softmax_focal(x, Y, 2.0, np.linspace(0.5, 2.0, 5), 0.2)[1]

    grad = jax.jit(
        jax.grad(
            lambda x: jaxloss.softmax_focal_loss(
                x, Y, class_weights=np.linspace(0.5, 2.0, 5), label_smoothing=0.2
            )
        )
    )(X)
    numeric = np.zeros_like(X)
    for index in np.ndindex(X.shape):
        up, down = X.copy(), X.copy()
        up[index] += 1e-6
        down[index] -= 1e-6
        numeric[index] = (reference_mean(up) - reference_mean(down)) / 2e-6
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-8)


def test_softmax_focal_class_mask_is_the_loss_over_the_kept_classes():
    keep = np.array([True, True, False, True, True])
    labels = np.array([0, 4, 3, 3, 1, 0])

    @jax.jit
    def masked_and_alone(x):
        def masked(x):
            return jaxloss.softmax_focal_loss(x, labels, class_mask=keep, label_smoothing=0.1)

        ours = jaxloss.softmax_focal_loss(
            x, labels, class_mask=keep, label_smoothing=0.1, reduction="none"
        )
        alone = jaxloss.softmax_focal_loss(
            x[:, keep], np.array([0, 3, 2, 2, 1, 0]), label_smoothing=0.1, reduction="none"
        )
        return ours, alone, jax.grad(masked)(x)

    ours, alone, grad = masked_and_alone(X)
    np.testing.assert_allclose(ours, alone, rtol=1e-12)
    assert np.all(grad[:, 2] == 0)
    with pytest.raises(ValueError, match="class_mask"):
        jaxloss.softmax_focal_loss(X, np.array([2, 0, 0, 0, 0, 0]), class_mask=keep)


@pytest.mark.parametrize("gamma", [0.5])
def test_softmax_focal_is_finite_at_large_logits(gamma):
    x = np.array([[1000.0, -1000.0, 0.0], [1000.0, -1000.0, 0.0]])
    y = np.array([0, 1])

    @jax.jit
    def value_and_grad(x):
        def loss(x):
            return jaxloss.softmax_focal_loss(
                x, y, gamma=gamma, label_smoothing=0.1, reduction="none"
            )

        return loss(x), jax.grad(lambda x: jnp.mean(loss(x)))(x)

    for dtype in (np.float64, np.float32):
        value, grad = (np.asarray(a) for a in value_and_grad(jnp.asarray(x, dtype)))
        assert np.all(np.isfinite(value)) and np.all(np.isfinite(grad)), (value, grad)
        np.testing.assert_allclose(value[1], 0.9 * 2000 + 0.1 / 3 * (2000 + 1000), rtol=1e-5)


@pytest.mark.parametrize(
    "epsilon",
    [2.0, pytest.param(-1.0, marks=pytest.mark.slow), pytest.param(0.5, marks=pytest.mark.slow)],
)
def test_poly1_matches_optax_and_the_reference(epsilon):
    labels = np.array([0, 4, 2, 2, 1, 3])
    one_hot = np.eye(5)[labels]
    theirs = optax.losses.poly_loss_cross_entropy(X, one_hot, epsilon=epsilon)
    ours = jaxloss.poly1_cross_entropy(X, labels, epsilon=epsilon, reduction="none")
    np.testing.assert_allclose(ours, theirs, rtol=1e-11)
    np.testing.assert_allclose(
        jax.grad(
            lambda x: jaxloss.poly1_cross_entropy(x, labels, epsilon=epsilon, reduction="sum")
        )(X),
        jax.grad(
            lambda x: jnp.sum(optax.losses.poly_loss_cross_entropy(x, one_hot, epsilon=epsilon))
        )(X),
        rtol=1e-10,
        atol=1e-13,
    )
    weight = np.linspace(0.5, 2.0, 5)
    per, mean = ref_poly1(X, labels, epsilon, weight, 0.2)
    np.testing.assert_allclose(
        jaxloss.poly1_cross_entropy(
            X, labels, epsilon=epsilon, class_weights=weight, label_smoothing=0.2, reduction="none"
        ),
        per,
        rtol=1e-11,
    )
    np.testing.assert_allclose(
        jaxloss.poly1_cross_entropy(
            X, labels, epsilon=epsilon, class_weights=weight, label_smoothing=0.2
        ),
        mean,
        rtol=1e-11,
    )
    # ignore_index leaves a position out
    with_ignored = np.array([0, 4, 2, 2, 1, -100])
    np.testing.assert_allclose(
        jaxloss.poly1_cross_entropy(X, with_ignored, epsilon=epsilon),
        np.mean(np.asarray(theirs)[:5]),
        rtol=1e-11,
    )


def test_z_loss_is_the_squared_log_partition():
    lse = np.log(np.exp(X).sum(-1))
    np.testing.assert_allclose(jaxloss.z_loss(X, reduction="none"), lse**2, rtol=1e-12)
    np.testing.assert_allclose(jaxloss.z_loss(X.T, axis=0), np.mean(lse**2), rtol=1e-12)
    where = np.arange(6) < 4
    np.testing.assert_allclose(jaxloss.z_loss(X, where=where), np.mean(lse[:4] ** 2), rtol=1e-12)
    big = jnp.asarray([[1000.0, 999.0]], jnp.float32)
    assert np.isfinite(jax.grad(lambda x: jaxloss.z_loss(x))(big)).all()


@pytest.mark.parametrize(
    "call,words",
    [
        (lambda: jaxloss.sigmoid_focal_loss(X, T[:, :2]), ["targets", "[6, 5]"]),
        (lambda: jaxloss.sigmoid_focal_loss(X, T, alpha=1.5), ["alpha"]),
        (lambda: jaxloss.sigmoid_focal_loss(X, T, gamma=-1.0), ["gamma"]),
        (lambda: jaxloss.sigmoid_focal_loss(X, T, label_smoothing=2.0), ["label_smoothing"]),
        (
            lambda: jaxloss.sigmoid_focal_loss(X, T, from_logits=False),
            ["logits", "from_logits=False", "[0, 1]"],
        ),
        (lambda: jaxloss.softmax_focal_loss(X, Y.astype(float)), ["labels", "integer"]),
        (lambda: jaxloss.softmax_focal_loss(X, np.array([0, 9, 0, 0, 0, 0])), ["labels"]),
        (lambda: jaxloss.softmax_focal_loss(X, Y, gamma=-2.0), ["gamma"]),
        (lambda: jaxloss.poly1_cross_entropy(X, Y[:3]), ["labels"]),
        (lambda: jaxloss.z_loss(np.float64(1.0)), ["logits"]),
        (lambda: jaxloss.z_loss(X, where=np.ones(5, bool)), ["where"]),
    ],
)
def test_errors_name_the_argument(call, words):
    with pytest.raises((ValueError, TypeError)) as info:
        call()
    for word in words:
        assert word in str(info.value), f"{word!r} missing from: {info.value}"


def test_probability_labels_refuse_ignore_index():
    probs = jnp.full((2, 3), 1 / 3)
    for loss in (jaxloss.softmax_focal_loss, jaxloss.poly1_cross_entropy):
        with pytest.raises(ValueError, match="ignore_index"):
            loss(jnp.zeros((2, 3)), probs, ignore_index=0)


@pytest.mark.parametrize(
    "options",
    [
        {"reduced_threshold": 0.5},
        {"normalized": True},
        {"reduced_threshold": 0.3, "normalized": True, "alpha": None, "gamma": 1.5},
    ],
    ids=["reduced", "normalized", "both"],
)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_sigmoid_focal_variants_are_segmentation_models_pytorch_s(options, reduction):
    """smp's focal_loss_with_logits with reduced_threshold and normalized (hard targets, where
    its e^{-BCE} is p_t): values and gradients."""
    import torch

    from jaxloss.parity.references import smp_losses

    smp_focal = smp_losses().focal_loss_with_logits
    rng = np.random.default_rng(9)
    x = rng.normal(size=(4, 6)) * 2
    t = (rng.uniform(size=(4, 6)) < 0.3).astype(float)
    kwargs = {"alpha": 0.25, "gamma": 2.0, **options}
    xt = torch.tensor(x, requires_grad=True)
    theirs = smp_focal(xt, torch.tensor(t), reduction=reduction, **kwargs)
    theirs.backward()

    def ours(x):
        return jaxloss.sigmoid_focal_loss(x, t, reduction=reduction, **kwargs)

    np.testing.assert_allclose(ours(x), theirs.detach().numpy(), rtol=1e-10)
    np.testing.assert_allclose(jax.grad(ours)(x), xt.grad.numpy(), rtol=1e-9, atol=1e-14)


@pytest.mark.parametrize("reduction", ["none", "mean"])
def test_sigmoid_focal_weights_are_monai_s_focal_class_weights(reduction):
    """MONAI's FocalLoss(weight=w) multiplies each channel's elementwise focal loss by w_c,
    'none' and 'mean' alike: weights=w on a channels-last input here."""
    import torch
    from monai.losses import FocalLoss

    rng = np.random.default_rng(10)
    logits = rng.normal(size=(2, 3, 4, 4)) * 2  # MONAI's channels first
    targets = (rng.uniform(size=(2, 3, 4, 4)) < 0.3).astype(float)
    w = np.array([0.5, 2.0, 1.5])
    theirs = FocalLoss(gamma=2.0, weight=torch.tensor(w), reduction=reduction)(
        torch.from_numpy(logits), torch.from_numpy(targets)
    ).numpy()
    ours = jaxloss.sigmoid_focal_loss(
        np.moveaxis(logits, 1, -1),
        np.moveaxis(targets, 1, -1),
        alpha=None,
        weights=w,
        reduction=reduction,
    )
    if reduction == "none":
        theirs = np.moveaxis(theirs, 1, -1)
    # MONAI's FocalLoss casts its inputs to float32
    np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-8)
    with pytest.raises(ValueError, match="weights"):
        jaxloss.sigmoid_focal_loss(
            np.moveaxis(logits, 1, -1), np.moveaxis(targets, 1, -1), weights=np.ones(5)
        )
