"""jaxloss.compat.smp.FocalLoss against segmentation_models_pytorch 0.6's own FocalLoss (its
losses/ loaded through the test-only shim): every combination of its arguments that smp
computes, values and gradients in float64; representatives in the default tier, the rest in
--full."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from jaxloss.compat import smp as compat_smp

IGNORE = 255


def _smp_focal(**kwargs):
    from jaxloss.parity.references import smp_losses

    return smp_losses().FocalLoss(**kwargs)


def _inputs(mode, ignore_index, from_logits):
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((2, 3, 4, 5)) * 2
    labels = rng.integers(0, 3, (2, 4, 5))
    if ignore_index is not None:
        labels[0, 1, :2] = IGNORE
    if mode == "binary":
        logits = logits[:, 0]
        labels = np.where(labels == IGNORE, IGNORE, labels > 0).astype(float)
    elif mode == "multilabel":
        labels = (rng.uniform(size=logits.shape) < 0.4).astype(float)
    if not from_logits:
        if mode == "multiclass":
            logits = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
        else:
            logits = 1 / (1 + np.exp(-logits))
    return logits, labels


CASES = [
    case
    for case in itertools.product(
        ["binary", "multiclass", "multilabel"],  # mode
        ["mean", "sum", "none"],  # reduction
        [None, 0.25],  # alpha
        [2.0, 1.5],  # gamma
        [None, IGNORE],  # ignore_index
        [True, False],  # from_logits
        [False, True],  # normalized
        [None, 0.5],  # reduced_threshold
        [None, (1.0, 3.0, 0.5)],  # class_weights
    )
    # the combinations smp computes (the others raise here, see test_refused_combinations)
    if not (case[0] == "binary" and case[-1] is not None)
    and not (case[0] != "binary" and case[1] == "none")
    and not (case[0] == "multilabel" and case[4] is not None)
    and not (case[1] == "none" and case[4] is not None)
]


@pytest.mark.parametrize(
    "mode,reduction,alpha,gamma,ignore_index,from_logits,normalized,reduced_threshold,class_weights",
    [
        pytest.param(*case, marks=() if i % 13 == 0 else pytest.mark.slow)
        for i, case in enumerate(CASES)
    ],
)
def test_focal_loss_is_smp_s(
    mode,
    reduction,
    alpha,
    gamma,
    ignore_index,
    from_logits,
    normalized,
    reduced_threshold,
    class_weights,
    x64,
):
    x, y = _inputs(mode, ignore_index, from_logits)
    kwargs = dict(
        mode=mode,
        alpha=alpha,
        gamma=gamma,
        ignore_index=ignore_index,
        from_logits=from_logits,
        reduction=reduction,
        normalized=normalized,
        reduced_threshold=reduced_threshold,
        class_weights=None if class_weights is None else list(class_weights),
    )
    leaf = torch.from_numpy(x).requires_grad_(True)
    expected = _smp_focal(**kwargs)(leaf, torch.from_numpy(y))
    expected.sum().backward()
    ours = compat_smp.FocalLoss(**kwargs)
    value = ours(x, y)
    grad = jax.grad(lambda x: jnp.sum(ours(x, y)))(jnp.asarray(x))
    assert value.shape == tuple(expected.shape)
    np.testing.assert_allclose(value, expected.detach().numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(grad, leaf.grad.numpy(), rtol=1e-7, atol=1e-10)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(mode="multi"), "`mode` must be one of"),
        (dict(mode="binary", class_weights=[1.0]), "not supported with mode='binary'"),
        (dict(mode="multilabel", ignore_index=IGNORE), "not supported with mode='multilabel'"),
        (
            dict(mode="multiclass", reduction="none"),
            r"`reduction` must be one of \('mean', 'sum'\)",
        ),
        (dict(mode="binary", reduction="none", ignore_index=IGNORE), "reduction='none' cannot"),
        (dict(mode="multiclass", class_weights=[1.0, -2.0]), "non-negative"),
        (dict(mode="multiclass", gamma=-1.0), "gamma"),
    ],
)
def test_refused_combinations(kwargs, match):
    with pytest.raises(ValueError, match=match):
        compat_smp.FocalLoss(**kwargs)


def test_inputs_of_the_wrong_shape_name_themselves():
    loss = compat_smp.FocalLoss("multiclass", class_weights=[1.0, 2.0])
    with pytest.raises(ValueError, match=r"`y_true` must be class indices of shape \[2, 4\]"):
        loss(np.zeros((2, 3, 4)), np.zeros((2, 3, 4), int))
    with pytest.raises(
        ValueError, match=r"`class_weights` must hold one weight per class, shape \[3\]; got \[2\]"
    ):
        loss(np.zeros((2, 3, 4)), np.zeros((2, 4), int))


def test_multiclass_label_out_of_range_raises_or_is_nan_under_jit():
    """smp counts a label outside [0, C) as a negative of every class; here it is an error
    (nan under jit), and ignore_index is still allowed."""
    loss = compat_smp.FocalLoss("multiclass", ignore_index=IGNORE)
    logits = np.zeros((1, 3, 4))
    with pytest.raises(ValueError, match=r"class index 3 in `y_true` is out of range; expected"):
        loss(logits, np.array([[0, 1, 3, IGNORE]]))
    assert np.isnan(float(jax.jit(loss)(logits, np.array([[0, 1, 3, IGNORE]]))))
    assert np.isfinite(float(loss(logits, np.array([[0, 1, 2, IGNORE]]))))
