"""jaxloss.compat.monai against MONAI 1.6 itself: every combination of FocalLoss's,
DiceFocalLoss's and AsymmetricUnifiedFocalLoss's arguments, values and gradients in float64
(MONAI computes its focal term in float32, hence the tolerances), a representative per argument
value in the default tier and the rest in --full."""

from __future__ import annotations

import itertools
import warnings

import jax
import jax.numpy as jnp
import monai.losses as monai_losses
import numpy as np
import pytest
import torch

from jaxloss.compat import monai as compat_monai

IGNORE = 255


def _inputs(channels, seed=0):
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((2, channels, 4, 5)) * 2
    labels = rng.integers(0, channels, (2, 1, 4, 5))
    labels[0, 0, 1, :2] = IGNORE
    return logits, labels


def _against_monai(ours, theirs, x, y, rtol=1e-5, atol=1e-6):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MONAI's own warnings on the arguments it ignores
        expected = theirs(torch.from_numpy(x), torch.from_numpy(y))
        leaf = torch.from_numpy(x).requires_grad_(True)
        theirs(leaf, torch.from_numpy(y)).sum().backward()
        # Jitted: one compiled program per case, not one per primitive met eagerly.
        (_, value), grad = jax.jit(
            jax.value_and_grad(lambda x: (jnp.sum(out := ours(x, y)), out), has_aux=True)
        )(jnp.asarray(x))
    assert value.shape == tuple(expected.shape)
    np.testing.assert_allclose(value, expected.double().numpy(), rtol=rtol, atol=atol)
    np.testing.assert_allclose(grad, leaf.grad.numpy(), rtol=10 * rtol, atol=atol)


def _tiered(cases, representative):
    """Every case; those `representative` does not pick are --full only."""
    return [
        pytest.param(*case, marks=() if representative(i) else pytest.mark.slow)
        for i, case in enumerate(cases)
    ]


FOCAL_CASES = list(
    itertools.product(
        ["mean", "sum", "none"],  # reduction
        [False, True],  # use_softmax
        [True, False],  # include_background
        [None, 0.25, "per class"],  # alpha
        [None, 2.0, "per class"],  # weight
        [None, IGNORE, 1],  # ignore_index
    )
)


@pytest.mark.parametrize(
    "reduction,use_softmax,include_background,alpha,weight,ignore_index",
    _tiered(FOCAL_CASES, lambda i: i % 11 == 0),
)
def test_focal_loss_is_monai_s(
    reduction, use_softmax, include_background, alpha, weight, ignore_index, x64
):
    x, y = _inputs(3)
    if ignore_index != IGNORE:
        y = np.where(y == IGNORE, 0, y)
    classes = 3 if include_background else 2
    kwargs = dict(
        include_background=include_background,
        to_onehot_y=True,
        gamma=1.5,
        alpha=[0.2, 0.5, 0.9][:classes] if alpha == "per class" else alpha,
        weight=[0.5, 2.0, 1.0][:classes] if weight == "per class" else weight,
        reduction=reduction,
        use_softmax=use_softmax,
        ignore_index=ignore_index,
    )
    _against_monai(
        compat_monai.FocalLoss(**kwargs), monai_losses.FocalLoss(**kwargs), x, y, atol=1e-7
    )


def test_focal_loss_on_one_hot_targets_with_an_ignored_class(x64):
    x, y = _inputs(3)
    y = np.where(y == IGNORE, 0, y)
    one_hot = np.moveaxis(np.eye(3)[y[:, 0]], -1, 1)
    for ignore_index in (1, -1):
        kwargs = dict(ignore_index=ignore_index, use_softmax=True, reduction="sum")
        _against_monai(
            compat_monai.FocalLoss(**kwargs), monai_losses.FocalLoss(**kwargs), x, one_hot
        )


def test_focal_loss_in_float32_is_monai_s():
    x, y = _inputs(3)
    kwargs = dict(to_onehot_y=True, use_softmax=True, alpha=[0.2, 0.5, 0.9], ignore_index=IGNORE)
    value = compat_monai.FocalLoss(**kwargs)(x.astype(np.float32), y)
    assert value.dtype == jnp.float32
    expected = monai_losses.FocalLoss(**kwargs)(torch.from_numpy(x).float(), torch.from_numpy(y))
    np.testing.assert_allclose(value, expected.numpy(), rtol=1e-5)


DICE_FOCAL_CASES = [
    (channels, *rest)
    for channels in (3, 2)
    for rest in itertools.product(
        ["mean", "sum", "none"],  # reduction
        ["sigmoid", "softmax", "none"],  # the Dice term's activation
        [True, False],  # include_background
        [False, True],  # squared_pred
        [False, True],  # jaccard
        [False, True],  # batch
        [None, 1.5, "per class"],  # weight
    )
    # a per-class weight cannot have one entry (MONAI's focal term refuses it)
    if not (rest[-1] == "per class" and channels == 2 and not rest[2])
]


@pytest.mark.parametrize(
    "channels,reduction,activation,include_background,squared_pred,jaccard,batch,weight",
    _tiered(DICE_FOCAL_CASES, lambda i: i % 23 == 0),
)
def test_dice_focal_loss_is_monai_s(
    channels, reduction, activation, include_background, squared_pred, jaccard, batch, weight, x64
):
    x, y = _inputs(channels)
    y = np.where(y == IGNORE, 0, y)
    if activation == "none":
        x = 1 / (1 + np.exp(-x))
    classes = channels if include_background else channels - 1
    kwargs = dict(
        include_background=include_background,
        to_onehot_y=True,
        sigmoid=activation == "sigmoid",
        softmax=activation == "softmax",
        squared_pred=squared_pred,
        jaccard=jaccard,
        reduction=reduction,
        batch=batch,
        gamma=1.5,
        weight=[0.5, 2.0, 1.0][:classes] if weight == "per class" else weight,
        lambda_dice=0.7,
        lambda_focal=1.3,
        alpha=0.25,
        smooth_nr=0.1,
        smooth_dr=0.2,
    )
    _against_monai(compat_monai.DiceFocalLoss(**kwargs), monai_losses.DiceFocalLoss(**kwargs), x, y)


def test_dice_focal_with_one_class_left_weighs_only_the_focal_term(x64):
    """MONAI's Dice term ignores `weight` when one class remains; its focal term takes it."""
    x, y = _inputs(2)
    y = np.where(y == IGNORE, 0, y)
    kwargs = dict(include_background=False, to_onehot_y=True, softmax=True, weight=3.0)
    ours = compat_monai.DiceFocalLoss(**kwargs)
    _against_monai(ours, monai_losses.DiceFocalLoss(**kwargs), x, y)
    unweighted = compat_monai.DiceFocalLoss(
        include_background=False, to_onehot_y=True, softmax=True
    )
    focal = compat_monai.FocalLoss(include_background=False, to_onehot_y=True)
    np.testing.assert_allclose(ours(x, y) - unweighted(x, y), 2 * focal(x, y), rtol=1e-12)


@pytest.mark.parametrize(
    "make,call,match",
    [
        (lambda: compat_monai.FocalLoss(reduction="batchmean"), None, "`reduction` must be one"),
        (lambda: compat_monai.FocalLoss(gamma=-1.0), None, "gamma"),
        (lambda: compat_monai.FocalLoss(alpha=1.5), None, "alpha"),
        (
            lambda: compat_monai.FocalLoss(alpha=[0.1, 0.2]),
            lambda loss: loss(np.zeros((1, 3, 2, 2)), np.zeros((1, 3, 2, 2))),
            r"`alpha` must hold one weight per class, shape \[3\]; got \[2\]",
        ),
        (
            lambda: compat_monai.FocalLoss(weight=[1.0, -1.0, 1.0]),
            lambda loss: loss(np.zeros((1, 3, 2, 2)), np.zeros((1, 3, 2, 2))),
            "`weight` must be non-negative",
        ),
        (
            lambda: compat_monai.FocalLoss(),
            lambda loss: loss(np.zeros((1, 3, 2, 2)), np.zeros((1, 2, 2, 2))),
            r"`target` .* must have the shape of `input`, \[1, 3, 2, 2\]; got \[1, 2, 2, 2\]",
        ),
        (
            lambda: compat_monai.FocalLoss(to_onehot_y=True),
            lambda loss: loss(np.zeros((1, 3, 2, 2)), np.zeros((1, 3, 2, 2), int)),
            r"with to_onehot_y, `target` must be \(B, 1, \*spatial\)",
        ),
        (lambda: compat_monai.DiceFocalLoss(other_act=jnp.tanh), None, "`other_act`"),
        (lambda: compat_monai.DiceFocalLoss(sigmoid=True, softmax=True), None, "exclusive"),
        (lambda: compat_monai.DiceFocalLoss(lambda_focal=-1.0), None, "lambda_focal"),
        (
            lambda: compat_monai.FocalLoss(to_onehot_y=True, ignore_index=255),
            lambda loss: loss(np.zeros((1, 3, 1, 2)), np.array([[[[255, 3]]]])),
            r"`target` class index 3 is out of range; expected \[0, 3\)",
        ),
        (
            lambda: compat_monai.DiceFocalLoss(to_onehot_y=True),
            lambda loss: loss(np.zeros((1, 3, 1, 2)), np.array([[[[0, -1]]]])),
            r"`target` class index -1 is out of range",
        ),
        (
            lambda: compat_monai.AsymmetricUnifiedFocalLoss(num_classes=3),
            None,
            "computes `num_classes=2` only; got 3",
        ),
        (lambda: compat_monai.AsymmetricUnifiedFocalLoss(gamma=1.5), None, "`gamma` must be in"),
        (
            lambda: compat_monai.AsymmetricUnifiedFocalLoss(),
            lambda loss: loss(np.zeros((1, 3, 2, 2)), np.zeros((1, 3, 2, 2))),
            "binary, `input` must have 1 or 2 channels; got 3",
        ),
        (
            lambda: compat_monai.AsymmetricUnifiedFocalLoss(),
            lambda loss: loss(np.zeros((1, 2, 2)), np.zeros((1, 2, 2))),
            r"`input` must be \(B, C, H, W\) or \(B, C, H, W, D\); got shape \[1, 2, 2\]",
        ),
        (
            lambda: compat_monai.AsymmetricUnifiedFocalLoss(to_onehot_y=True),
            lambda loss: loss(np.zeros((1, 2, 2, 2)), np.zeros((1, 2, 2, 2), int)),
            r"`target` must have shape \[1, 1, 2, 2\]",
        ),
        (
            lambda: compat_monai.AsymmetricUnifiedFocalLoss(to_onehot_y=True),
            lambda loss: loss(np.zeros((1, 2, 2, 2)), np.full((1, 1, 2, 2), 2)),
            r"`target` class index 2 is out of range; expected \[0, 2\)",
        ),
        (
            lambda: compat_monai.AsymmetricUnifiedFocalLoss(),
            lambda loss: loss(np.zeros((1, 1, 2, 2)), np.full((1, 1, 2, 2), 2.0)),
            "`target` must not exceed 1",
        ),
        (
            lambda: compat_monai.DiceFocalLoss(),
            lambda loss: loss(np.zeros((1, 3, 2, 2)), np.zeros((1, 2, 2, 2))),
            r"`target` must be \(B, 1, \*spatial\) or \(B, C, \*spatial\)",
        ),
    ],
)
def test_bad_arguments_name_themselves(make, call, match):
    with pytest.raises(ValueError, match=match):
        loss = make()
        if call is not None:
            call(loss)


def _unified_inputs(form, spatial, ignore_index, seed=1):
    """(input, target, to_onehot_y) of MONAI 1.6's binary AsymmetricUnifiedFocalLoss."""
    rng = np.random.default_rng(seed)
    shape = (2, 1, *spatial)
    probabilities = 1 / (1 + np.exp(-2 * rng.standard_normal(shape)))
    labels = rng.integers(0, 2, shape)
    if ignore_index == IGNORE and form == "labels":
        labels.reshape(-1)[:3] = IGNORE
    if form == "binary":
        return probabilities, labels.astype(np.float64), False
    probabilities = np.concatenate([1 - probabilities, probabilities], axis=1)
    if form == "labels":
        return probabilities, labels, True
    target = np.concatenate([1 - labels, labels], axis=1).astype(np.float64)
    if form == "soft":
        target = rng.uniform(size=target.shape)
    if ignore_index == IGNORE:  # MONAI's sentinel on one-hot targets: all-zero pixels
        target.reshape(2, 2, -1)[0, :, :3] = 0.0
    return probabilities, target, False


UNIFIED_CASES = list(
    itertools.product(
        ["onehot", "labels", "binary", "soft"],  # the target's form
        [None, 1, IGNORE],  # ignore_index
        [(0.5, 0.5, 0.7), (0.2, 0.9, 0.4), (1.0, 0.0, 1.0)],  # weight, gamma, delta
        ["mean", "sum", "none"],  # reduction
        [(4, 5), (3, 2, 4)],  # spatial axes
    )
)


@pytest.mark.parametrize(
    "form,ignore_index,options,reduction,spatial",
    _tiered(UNIFIED_CASES, lambda i: i % 13 == 0),
)
def test_asymmetric_unified_focal_loss_is_monai_s(
    form, ignore_index, options, reduction, spatial, x64
):
    x, y, to_onehot_y = _unified_inputs(form, spatial, ignore_index)
    weight, gamma, delta = options
    kwargs = dict(
        to_onehot_y=to_onehot_y,
        weight=weight,
        gamma=gamma,
        delta=delta,
        reduction=reduction,
        ignore_index=ignore_index,
    )
    _against_monai(
        compat_monai.AsymmetricUnifiedFocalLoss(**kwargs),
        monai_losses.AsymmetricUnifiedFocalLoss(**kwargs),
        x,
        y,
        rtol=1e-12,
        atol=1e-14,
    )


def test_asymmetric_unified_focal_loss_in_float32_is_monai_s():
    x, y, _ = _unified_inputs("labels", (8, 8), None)
    kwargs = dict(to_onehot_y=True)
    value = compat_monai.AsymmetricUnifiedFocalLoss(**kwargs)(x.astype(np.float32), y)
    assert value.dtype == jnp.float32
    expected = monai_losses.AsymmetricUnifiedFocalLoss(**kwargs)(
        torch.from_numpy(x).float(), torch.from_numpy(y)
    )
    np.testing.assert_allclose(value, expected.numpy(), rtol=1e-6)


def test_a_bad_label_under_jit_is_nan():
    loss = jax.jit(compat_monai.FocalLoss(to_onehot_y=True))
    assert np.isnan(float(loss(np.zeros((1, 3, 1, 2)), np.array([[[[0, 3]]]]))))
