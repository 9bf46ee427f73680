"""Segmentation losses beyond the MONAI/smp comparisons (tests/test_libraries.py): the Lovász
losses in float64 against NumPy written from Berman et al.'s Algorithm 1 (smp's run only in
float32), the edge regimes (perfect predictions, everything ignored, absent classes), and the
errors on bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import jaxloss

pytestmark = pytest.mark.usefixtures("x64")


def _lovasz_extension(errors, foreground):
    """Σ_i max(e_(i), 0) (J(i) - J(i-1)): the Jaccard loss J of the i largest errors' pixels."""
    order = np.argsort(-errors, kind="stable")
    e, fg = errors[order], foreground[order]
    total = fg.sum()
    intersection = total - np.cumsum(fg)
    union = total + np.cumsum(1 - fg)
    jaccard = 1 - intersection / union
    increments = np.diff(jaccard, prepend=0.0)
    return float(np.sum(np.maximum(e, 0) * increments))


def _softmax(x):
    z = np.exp(x - x.max(-1, keepdims=True))
    return z / z.sum(-1, keepdims=True)


@jax.jit
def _lovasz_both(x, t, y, z):
    return (
        jaxloss.lovasz_hinge_loss(x, t, reduction="none"),
        jaxloss.lovasz_softmax_loss(z, y, per_image=True, reduction="none"),
        jaxloss.lovasz_softmax_loss(z, y, classes="all"),
    )


def test_lovasz_float64_against_the_algorithm():
    rng = np.random.default_rng(0)
    x = rng.normal(0, 2, (3, 6, 5))
    t = (rng.uniform(size=x.shape) < 0.4).astype(np.float64)
    z = rng.normal(0, 2, (3, 6, 5, 4))
    y = rng.integers(0, 4, (3, 6, 5))
    y[0][y[0] == 3] = 0  # class 3 absent from image 0
    hinge, per_image, all_classes = _lovasz_both(x, t, y, z)
    for n in range(3):
        errors = 1 - x[n].ravel() * (2 * t[n].ravel() - 1)
        assert hinge[n] == pytest.approx(_lovasz_extension(errors, t[n].ravel()), rel=1e-13)
        p = _softmax(z[n]).reshape(-1, 4)
        fg = np.eye(4)[y[n].ravel()]
        present = [c for c in range(4) if fg[:, c].any()]
        expected = np.mean(
            [_lovasz_extension(np.abs(fg[:, c] - p[:, c]), fg[:, c]) for c in present]
        )
        assert per_image[n] == pytest.approx(expected, rel=1e-13)
    p = _softmax(z).reshape(-1, 4)
    fg = np.eye(4)[y.ravel()]
    expected = np.mean([_lovasz_extension(np.abs(fg[:, c] - p[:, c]), fg[:, c]) for c in range(4)])
    assert all_classes == pytest.approx(expected, rel=1e-13)


@jax.jit
def _edge_losses(logits, labels, where):
    def total(x):
        kwargs = dict(where=where)
        return (
            jaxloss.dice_loss(x, labels, **kwargs)
            + jaxloss.jaccard_loss(x, labels, **kwargs)
            + jaxloss.tversky_loss(x, labels, gamma=0.75, **kwargs)
            + jaxloss.generalized_dice_loss(x, labels, **kwargs)
            + jaxloss.mcc_loss(x, labels, **kwargs)
            + jaxloss.dice_ce_loss(x, labels, where=where, reduction="sum")
            + jaxloss.dice_focal_loss(x, labels, where=where, reduction="sum")
            + jaxloss.lovasz_softmax_loss(x, labels, where=where)
            + jaxloss.lovasz_hinge_loss(x[..., 0], labels, where=where)
        )

    return jax.value_and_grad(total)(logits)


def test_everything_masked_is_finite():
    """No pixel counts: every loss is finite (the smoothed scores of empty sets), and so is
    every gradient (zero)."""
    rng = np.random.default_rng(1)
    logits = jnp.asarray(rng.normal(0, 2, (2, 3, 3, 2)))
    labels = jnp.asarray(rng.integers(0, 2, (2, 3, 3)))
    value, grad = _edge_losses(logits, labels, jnp.zeros((2, 3, 3), bool))
    assert np.isfinite(value)
    assert np.all(np.asarray(grad) == 0)


@jax.jit
def _perfect(labels):
    probs = jax.nn.one_hot(labels, 2, dtype=jnp.float64)
    big = 50 * (2 * probs - 1)
    return jnp.stack(
        [
            jaxloss.dice_loss(probs, labels, activation="none"),
            jaxloss.jaccard_loss(probs, labels, activation="none"),
            jaxloss.tversky_loss(probs, labels, activation="none"),
            jaxloss.generalized_dice_loss(probs, labels, activation="none"),
            jaxloss.mcc_loss(probs, labels, activation="none"),
            jaxloss.lovasz_softmax_loss(big, labels),
            jaxloss.lovasz_hinge_loss(big[..., 1], labels),
        ]
    )


def test_perfect_prediction_scores_zero():
    np.testing.assert_allclose(_perfect(jnp.array([[[0, 1], [1, 0]]])), 0, atol=1e-12)


def test_dice_definitions():
    """Dice is the Tversky index at α = β = ½ and Jaccard at α = β = 1; squared denominators
    are V-Net's Σp² + Σt²; class weights multiply and 'mean' is their plain mean."""
    rng = np.random.default_rng(2)
    x = jnp.asarray(rng.normal(0, 2, (2, 4, 4, 3)))
    y = jnp.asarray(rng.integers(0, 3, (2, 4, 4)))
    kw = dict(smooth_numerator=0.3, smooth_denominator=0.3, reduction="none")
    dice = jaxloss.dice_loss(x, y, **kw)
    tversky = jaxloss.tversky_loss(
        x, y, smooth_numerator=0.15, smooth_denominator=0.15, reduction="none"
    )
    np.testing.assert_allclose(dice, tversky, rtol=1e-13)
    np.testing.assert_allclose(
        jaxloss.jaccard_loss(x, y, **kw),
        jaxloss.tversky_loss(x, y, alpha=1.0, beta=1.0, **kw),
        rtol=1e-13,
    )
    p = np.asarray(jax.nn.softmax(x))
    t = np.eye(3)[np.asarray(y)]
    vnet = 1 - (2 * (p * t).sum((1, 2)) + 0.3) / ((p * p).sum((1, 2)) + (t * t).sum((1, 2)) + 0.3)
    np.testing.assert_allclose(jaxloss.dice_loss(x, y, squared=True, **kw), vnet, rtol=1e-13)
    w = jnp.array([0.2, 1.0, 3.0])
    weighted = jaxloss.dice_loss(
        x, y, class_weights=w, smooth_numerator=0.3, smooth_denominator=0.3
    )
    assert float(weighted) == pytest.approx(float(jnp.mean(dice * w)), rel=1e-13)


def test_focal_tversky_is_per_class():
    """(1 - TI_c)^γ per class (Abraham & Khan), so the mean over classes differs from
    segmentation_models_pytorch's (mean over classes)^γ when C > 1."""
    rng = np.random.default_rng(3)
    x = jnp.asarray(rng.normal(0, 2, (2, 4, 4, 3)))
    y = jnp.asarray(rng.integers(0, 3, (2, 4, 4)))
    plain = jaxloss.tversky_loss(x, y, alpha=0.7, beta=0.3, reduction="none")
    focal = jaxloss.tversky_loss(x, y, alpha=0.7, beta=0.3, gamma=0.75, reduction="none")
    np.testing.assert_allclose(focal, plain**0.75, rtol=1e-13)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda x, y: jaxloss.dice_loss(x[0, 0, 0], y[0, 0, 0]), ValueError, "channel-last"),
        (lambda x, y: jaxloss.dice_loss(x, y, activation="relu"), ValueError, "activation"),
        (lambda x, y: jaxloss.dice_loss(x, y[..., None]), ValueError, "one class index"),
        (lambda x, y: jaxloss.dice_loss(x, y.astype(float)), ValueError, "float `targets`"),
        (
            lambda x, y: jaxloss.dice_loss(x, jax.nn.one_hot(y, 3), ignore_index=0),
            ValueError,
            "ignore_index",
        ),
        (lambda x, y: jaxloss.dice_loss(x, y + 3), ValueError, "out of range"),
        (lambda x, y: jaxloss.dice_loss(x[..., :1], y), ValueError, "softmax over one"),
        (
            lambda x, y: jaxloss.dice_loss(
                x[..., :1], y % 2, activation="sigmoid", include_background=False
            ),
            ValueError,
            "include_background",
        ),
        (lambda x, y: jaxloss.dice_loss(x, y, class_weights=jnp.ones(2)), ValueError, "weight"),
        (lambda x, y: jaxloss.tversky_loss(x, y, gamma=0.0), ValueError, "gamma"),
        (lambda x, y: jaxloss.dice_ce_loss(x, y, reduction="none"), ValueError, "reduction"),
        (
            lambda x, y: jaxloss.dice_focal_loss(x, y, alpha=0.25),
            ValueError,
            "class_weights",
        ),
        (
            lambda x, y: jaxloss.generalized_dice_loss(x, y, weighting="cubic"),
            ValueError,
            "weighting",
        ),
        (lambda x, y: jaxloss.lovasz_softmax_loss(x, y, classes="some"), ValueError, "classes"),
        (lambda x, y: jaxloss.lovasz_softmax_loss(x, y[..., None]), ValueError, "labels"),
        (lambda x, y: jaxloss.lovasz_hinge_loss(x[..., 0], y + 2), ValueError, "0 or 1"),
        (lambda x, y: jaxloss.sparsemax_loss(x, x + 2), ValueError, r"\[0, 1\]"),
        (
            lambda x, y: jaxloss.dice_ce_loss(x, y + 5, activation="sigmoid"),
            ValueError,
            "out of range",
        ),
    ],
)
def test_errors(call, error, match):
    x = jnp.zeros((2, 3, 3, 3))
    y = jnp.zeros((2, 3, 3), jnp.int32)
    with pytest.raises(error, match=match):
        call(x, y)


def test_out_of_range_label_is_nan_under_jit():
    x = jnp.zeros((1, 2, 2, 3))
    y = jnp.array([[[0, 1], [2, 7]]])
    assert np.isnan(jax.jit(jaxloss.dice_loss)(x, y))


@jax.jit
def _masked_both_ways(x, y, where):
    ignored = jnp.where(where, y, 255)
    return jnp.stack(
        [
            jaxloss.dice_loss(x, y, where=where, reduction="none"),
            jaxloss.dice_loss(x, ignored, ignore_index=255, reduction="none"),
            jaxloss.mcc_loss(x, y, where=where, reduction="none"),
            jaxloss.mcc_loss(x, ignored, ignore_index=255, reduction="none"),
        ]
    ), jnp.stack(
        [
            jaxloss.lovasz_softmax_loss(x, y, where=where),
            jaxloss.lovasz_softmax_loss(x, ignored, ignore_index=255),
        ]
    )


def test_where_is_ignore_index_by_another_name():
    """A pixel mask `where` leaves out exactly what labelling those pixels ignore_index does
    (which is what MONAI and smp are compared on)."""
    rng = np.random.default_rng(4)
    x = jnp.asarray(rng.normal(0, 2, (2, 4, 4, 3)))
    y = jnp.asarray(rng.integers(0, 3, (2, 4, 4)))
    where = jnp.asarray(rng.uniform(size=(2, 4, 4)) < 0.6)
    overlap, lovasz = _masked_both_ways(x, y, where)
    np.testing.assert_allclose(overlap[0], overlap[1], rtol=1e-13)
    np.testing.assert_allclose(overlap[2], overlap[3], rtol=1e-13)
    np.testing.assert_allclose(lovasz[0], lovasz[1], rtol=1e-13)
    unmasked = jaxloss.dice_loss(x, y, reduction="none")
    assert not np.allclose(overlap[0], unmasked)


@pytest.mark.parametrize("include_background", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_dice_focal_without_background_leaves_class_0_out_of_both_terms_as_monai(
    include_background,
):
    """MONAI's DiceFocalLoss passes include_background to its Dice and its (sigmoid) focal
    term alike: without it, channel 0 is out of both."""
    from monai.losses import DiceFocalLoss

    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 3, 4, 4))  # MONAI's channels-first layout
    labels = rng.integers(0, 3, size=(2, 1, 4, 4))
    theirs = DiceFocalLoss(softmax=True, to_onehot_y=True, include_background=include_background)(
        torch.from_numpy(logits), torch.from_numpy(labels)
    )
    ours = jaxloss.dice_focal_loss(
        np.moveaxis(logits, 1, -1),
        labels[:, 0],
        focal="sigmoid",
        include_background=include_background,
    )
    np.testing.assert_allclose(ours, theirs.numpy(), rtol=1e-6)


@pytest.mark.parametrize("case", ["all-positive", "all-negative", "random"])
def test_mcc_with_count_eps_is_segmentation_models_pytorch_mcc(case):
    """smp's MCCLoss (eps = 1e-5 on every count, no smoothing, one score over the batch) is
    reachable by arguments alone, perfect predictions included (smp: 1/2 when every pixel is
    positive; MONAI's rule, loss 0, holds only without count_eps)."""
    from jaxloss.parity.references import smp_losses

    rng = np.random.default_rng(5)
    if case == "random":
        p = rng.uniform(size=(2, 6, 6, 1))
        t = (rng.uniform(size=(2, 6, 6, 1)) < 0.4).astype(float)
    else:
        p = t = np.full((2, 6, 6, 1), 1.0 if case == "all-positive" else 0.0)
    theirs = smp_losses().MCCLoss()(
        torch.from_numpy(np.moveaxis(p, -1, 1)), torch.from_numpy(np.moveaxis(t, -1, 1))
    )
    smp_form = dict(activation="none", batch=True, count_eps=1e-5, smooth_denominator=0.0)
    ours = jaxloss.mcc_loss(p, t, smooth_numerator=0.0, **smp_form)
    np.testing.assert_allclose(ours, theirs.numpy(), rtol=1e-9)
    if case == "all-positive":
        assert float(ours) == pytest.approx(0.5, abs=1e-6)
        assert float(jaxloss.mcc_loss(p, t, activation="none")) == 0.0  # MONAI's rule


def test_class_frequency_weights_are_optax_s_generalized_dice_weights():
    """1/(f² + 1e-7) of the batch's class frequencies, normalised to mean 1, from class
    indices or one-hot targets alike; other powers, no normalisation, no gradient, errors."""
    labels = np.array([[0, 0, 1, 1, 1, 2], [0, 1, 1, 1, 1, 1]])
    frequency = np.array([3.0, 8.0, 1.0])
    expected = 1 / (frequency**2 + 1e-7)
    expected = expected / expected.sum() * 3
    from_indices = jaxloss.class_frequency_weights(labels, num_classes=3)
    one_hot = jax.nn.one_hot(labels, 3, dtype=jnp.float64)
    np.testing.assert_allclose(from_indices, expected, rtol=1e-12)
    np.testing.assert_allclose(jaxloss.class_frequency_weights(one_hot), expected, rtol=1e-12)
    np.testing.assert_allclose(
        jaxloss.class_frequency_weights(one_hot, power=1.0, eps=0.0, normalize=False),
        1 / frequency,
        rtol=1e-12,
    )
    assert not np.any(jax.grad(lambda t: jnp.sum(jaxloss.class_frequency_weights(t)))(one_hot))
    with pytest.raises(ValueError, match="num_classes"):
        jaxloss.class_frequency_weights(labels)
    with pytest.raises(ValueError, match="out of range"):
        jaxloss.class_frequency_weights(labels + 1, num_classes=3)
    with pytest.raises(ValueError, match="never negative"):
        jaxloss.class_frequency_weights(-one_hot)
    assert np.all(np.isnan(jax.jit(jaxloss.class_frequency_weights)(-one_hot)))


def test_jaccard_with_squared_denominators_is_monai_s_jaccard_squared_pred():
    """MONAI's DiceLoss(jaccard=True, squared_pred=True): 1 - (2TP + s_nr)/(2(Σp² + Σt² - TP)
    + s_dr), i.e. jaxloss.jaccard_loss(squared=True) with s_n = s_nr/2 and s_d = s_dr/2."""
    from monai.losses import DiceLoss

    rng = np.random.default_rng(4)
    logits = rng.normal(size=(2, 3, 5, 4))  # channels first, MONAI's layout
    labels = rng.integers(0, 3, size=(2, 1, 5, 4))
    theirs = DiceLoss(
        softmax=True,
        to_onehot_y=True,
        jaccard=True,
        squared_pred=True,
        smooth_nr=1e-4,
        smooth_dr=2e-4,
        reduction="none",
    )(torch.from_numpy(logits), torch.from_numpy(labels))
    ours = jaxloss.jaccard_loss(
        np.moveaxis(logits, 1, -1),
        labels[:, 0],
        squared=True,
        smooth_numerator=0.5e-4,
        smooth_denominator=1e-4,
        reduction="none",
    )
    # MONAI's one-hot targets are float32: agreement at float32's precision
    np.testing.assert_allclose(ours, theirs.numpy().reshape(2, 3), rtol=1e-6)


def test_dice_ce_on_one_channel_takes_monai_s_weight_as_pos_weight():
    """MONAI's DiceCELoss on one channel passes its `weight` to BCEWithLogitsLoss as
    pos_weight (its Dice term ignores a class weight for one class): pos_weight here."""
    from monai.losses import DiceCELoss

    rng = np.random.default_rng(6)
    logits = rng.normal(size=(2, 1, 4, 4))
    targets = (rng.uniform(size=(2, 1, 4, 4)) < 0.4).astype(float)
    weight = torch.tensor([2.5], dtype=torch.float64)
    theirs = DiceCELoss(sigmoid=True, weight=weight)(
        torch.from_numpy(logits), torch.from_numpy(targets)
    )
    ours = jaxloss.dice_ce_loss(
        np.moveaxis(logits, 1, -1),
        np.moveaxis(targets, 1, -1),
        activation="sigmoid",
        pos_weight=jnp.array([2.5]),
    )
    np.testing.assert_allclose(ours, theirs.numpy(), rtol=1e-6)
    with pytest.raises(ValueError, match="pos_weight"):
        jaxloss.dice_ce_loss(
            np.moveaxis(logits, 1, -1), targets[:, 0].astype(int), pos_weight=jnp.array([2.5])
        )


def test_monai_masked_dice_is_dice_with_where():
    """MONAI's MaskedDiceLoss (one-hot targets, background kept, a spatial mask) is dice_loss
    with the mask as `where`, on one-hot or index targets alike."""
    from monai.losses import MaskedDiceLoss

    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 3, 4, 4))
    labels = rng.integers(0, 3, size=(2, 4, 4))
    mask = rng.uniform(size=(2, 1, 4, 4)) < 0.6
    one_hot = np.moveaxis(np.eye(3)[labels], -1, 1)
    theirs = MaskedDiceLoss(softmax=True)(
        torch.from_numpy(logits), torch.from_numpy(one_hot), mask=torch.from_numpy(mask * 1.0)
    )
    channels_last = np.moveaxis(logits, 1, -1)
    for targets in (np.moveaxis(one_hot, 1, -1), labels):
        ours = jaxloss.dice_loss(channels_last, targets, where=mask[:, 0])
        np.testing.assert_allclose(ours, theirs.numpy(), rtol=1e-10)


def _unified_focal_reference(p, t, counted, lam, delta, gamma, eps):
    """Yeung et al.'s asymmetric unified focal loss per (sample, class), NumPy, channel last:
    p and t (N, P, C) over P pixels, `counted` (N, P) the pixels that count."""
    p = np.clip(p, eps, 1 - eps)
    losses = np.zeros((p.shape[0], p.shape[-1]))
    for n in range(p.shape[0]):
        k = counted[n]
        if not k.any():
            continue  # an image without a counted pixel scores 0
        pn, tn = p[n][k], t[n][k]
        ce = -tn * np.log(pn)
        for c in range(p.shape[-1]):
            if c == 0:
                focal = (1 - delta) * np.mean((1 - pn[:, 0]) ** gamma * ce[:, 0])
            else:
                focal = delta * np.mean(ce[:, c])
            tp = np.sum(tn[:, c] * pn[:, c])
            fn = np.sum(tn[:, c] * (1 - pn[:, c]))
            fp = np.sum((1 - tn[:, c]) * pn[:, c])
            index = (tp + eps) / (tp + delta * fn + (1 - delta) * fp + eps)
            tversky = 1 - index if c == 0 else (1 - index) ** (1 - gamma)
            losses[n, c] = lam * focal + (1 - lam) * tversky
    return losses


@pytest.mark.parametrize(
    "activation,include_background,masked",
    [
        ("softmax", True, False),
        ("softmax", False, True),
        pytest.param("sigmoid", True, True, marks=pytest.mark.slow),
        ("none", True, False),
    ],
)
def test_asymmetric_unified_focal_against_the_paper_s_formula(
    activation, include_background, masked
):
    rng = np.random.default_rng(3)
    logits = rng.normal(0, 2, (3, 5, 4, 3))
    labels = rng.integers(0, 3, (3, 5, 4))
    counted = np.ones((3, 5, 4), bool)
    ignore_index = None
    if masked:
        labels[0, 1, :3] = 255
        labels[2] = 255  # an image without a counted pixel scores 0
        counted = labels != 255
        ignore_index = 255
    if activation == "softmax":
        p = _softmax(logits)
    elif activation == "sigmoid":
        p = 1 / (1 + np.exp(-logits))
    else:
        p = logits = _softmax(logits)
    kwargs = dict(lambda_focal=0.3, delta=0.65, gamma=0.4, epsilon=1e-6)
    ours = jaxloss.asymmetric_unified_focal_loss(
        logits,
        labels,
        activation=activation,
        include_background=include_background,
        ignore_index=ignore_index,
        reduction="none",
        **kwargs,
    )
    t = np.eye(3)[np.where(counted, labels, 0)]
    expected = _unified_focal_reference(
        p.reshape(3, 20, 3), t.reshape(3, 20, 3), counted.reshape(3, 20), 0.3, 0.65, 0.4, 1e-6
    )
    if not include_background:
        expected = expected[:, 1:]
    np.testing.assert_allclose(ours, expected, rtol=1e-12, atol=1e-15)


def test_asymmetric_unified_focal_binary_channel_is_foreground():
    """One channel: the foreground, with 1 - p the background (MONAI's two-channel form)."""
    rng = np.random.default_rng(4)
    logits = rng.normal(0, 2, (2, 6, 1))
    t = (rng.uniform(size=(2, 6, 1)) < 0.5).astype(float)
    where = np.ones((2, 6), bool)
    where[1, :2] = False
    ours = jaxloss.asymmetric_unified_focal_loss(
        logits, t, activation="sigmoid", where=where, reduction="none"
    )
    p = 1 / (1 + np.exp(-logits))
    two = lambda a: np.concatenate([1 - a, a], axis=-1)
    expected = _unified_focal_reference(two(p), two(t), where, 0.5, 0.6, 0.5, 1e-7)
    np.testing.assert_allclose(ours, expected, rtol=1e-12)


def test_asymmetric_unified_focal_reference_values():
    """MONAI's own test values for its multi-class form (B=1, C=3): an imperfect prediction,
    and a confident perfect one (close to 0)."""
    logits = np.moveaxis(np.array([[[[-10.0, -10.0]], [[10.0, 10.0]], [[-10.0, -10.0]]]]), 1, -1)
    target = np.moveaxis(np.array([[[[1.0, 1.0]], [[0.0, 0.0]], [[0.0, 0.0]]]]), 1, -1)
    loss = jaxloss.asymmetric_unified_focal_loss(logits, target)
    assert float(loss) == pytest.approx(1.518984, rel=1e-6)
    labels = np.array([[[0, 1], [2, 2]]])
    confident = np.where(np.eye(3)[labels] > 0, 10.0, -10.0)
    assert float(jaxloss.asymmetric_unified_focal_loss(confident, labels)) < 1e-3


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(lambda_focal=1.5), r"`lambda_focal` must be in \[0.0, 1.0\]; got 1.5"),
        (dict(delta=-0.1), "`delta` must be in"),
        (dict(gamma=2.0), r"`gamma` must be in \[0.0, 1.0\]; got 2.0"),
        (dict(epsilon=0.5), r"`epsilon` must be in \(0.0, 0.5\); got 0.5"),
        (dict(epsilon=0.0), r"`epsilon` must be in \(0.0, 0.5\); got 0.0"),
        (dict(reduction="batchmean"), "reduction"),
    ],
)
def test_asymmetric_unified_focal_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        jaxloss.asymmetric_unified_focal_loss(np.zeros((1, 2, 3)), np.zeros((1, 2), int), **kwargs)


def test_asymmetric_unified_focal_softmax_of_one_channel_is_refused():
    with pytest.raises(ValueError, match="softmax over one channel is constant"):
        jaxloss.asymmetric_unified_focal_loss(np.zeros((1, 2, 1)), np.zeros((1, 2, 1)))


@pytest.mark.parametrize("weighting", ["square", "simple", "uniform"])
@pytest.mark.parametrize("batch,soft_labels", [(False, False), (True, True), (False, True)])
def test_generalized_dice_of_a_perfect_prediction_is_exactly_0_in_float32(
    weighting, batch, soft_labels
):
    """MONAI gives exactly 0 for a perfect prediction, one-hot or soft; so must float32 here
    (not 1 - (1 - ulp))."""
    rng = np.random.default_rng(6)
    labels = rng.integers(0, 4, (3, 7, 5))
    labels[1][labels[1] == 2] = 0  # a class absent from one sample
    one_hot = np.eye(4, dtype=np.float32)[labels]
    soft = rng.uniform(size=one_hot.shape).astype(np.float32)
    for p in (one_hot, soft) if soft_labels else (one_hot,):
        loss = jaxloss.generalized_dice_loss(
            p, p, activation="none", weighting=weighting, batch=batch, soft_labels=soft_labels
        )
        assert loss.dtype == jnp.float32
        assert float(loss) == 0.0


@pytest.mark.parametrize("loss", ["tversky", "unified"])
def test_a_perfect_score_has_a_finite_gradient_under_a_power_below_1(loss):
    """(1 - TI)^γ with γ < 1 has an infinite slope at a perfect score; the gradient there is
    0 (it was nan for the focal Tversky loss, whatever the smoothing)."""
    perfect = np.eye(3)[np.array([[0, 1, 2, 2]])]
    if loss == "tversky":
        fn = lambda p: jaxloss.tversky_loss(p, perfect, activation="none", gamma=0.75)
    else:  # ε so small that the clip leaves 1 at 1 and the Tversky index is exactly 1
        fn = lambda p: jaxloss.asymmetric_unified_focal_loss(
            p, perfect, activation="none", epsilon=1e-300
        )
    value, grad = jax.value_and_grad(fn)(perfect)
    assert float(value) == 0.0
    assert np.all(np.isfinite(grad))
