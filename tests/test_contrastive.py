"""CLIP's and SigLIP's losses on one device (jaxloss.clip_loss, jaxloss.siglip_loss) against
open_clip 3.3.0's ``ClipLoss`` and ``SigLipLoss`` (its ``loss.py``, loaded without the
package's ``__init__``): values and the gradients of both towers, the scale and the bias, in
float64 and float32, with and without normalisation, and at a large scale on unnormalised
features. Several positives per row (`group_ids`) and padded rows (`where`) against NumPy
references, the reductions, jit and vmap, and the errors."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import jaxloss
from jaxloss.parity.references import open_clip_losses

B, D = 6, 5
LOSSES = {"clip": jaxloss.clip_loss, "siglip": jaxloss.siglip_loss}


def _towers(seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(B, D)) * scale, rng.normal(size=(B, D)) * scale


def _open_clip(kind, image, text, scale, bias, normalize):
    """open_clip's loss and the gradients of (image, text, scale, bias), in float64."""
    losses = open_clip_losses()
    args = [torch.tensor(np.asarray(a, np.float64), requires_grad=True)
            for a in (image, text, scale, 0.0 if bias is None else bias)]  # fmt: skip
    image_t, text_t, scale_t, bias_t = args
    if normalize:
        image_t = torch.nn.functional.normalize(image_t, dim=-1)
        text_t = torch.nn.functional.normalize(text_t, dim=-1)
    module = losses.ClipLoss() if kind == "clip" else losses.SigLipLoss()
    loss = module(image_t, text_t, scale_t, None if bias is None and kind == "clip" else bias_t)
    loss.backward()
    grads = [np.zeros(()) if a.grad is None else a.grad.numpy() for a in args]
    return loss.item(), grads


@pytest.mark.parametrize(
    "kind, dtype, with_bias, normalize",
    [
        pytest.param(
            kind, dtype, with_bias, normalize,
            id=f"{kind}-{dtype}-{'bias' if with_bias else 'no_bias'}-"
            + ("normalized" if normalize else "raw"),
            # The default tier: each dtype with both (bias, normalize) pairs that differ in
            # both; --full adds the other two.
            marks=() if with_bias == normalize else pytest.mark.slow,
        )
        for kind in ("clip", "siglip")
        for dtype in ("float64", "float32")
        for with_bias in (False, True)
        for normalize in (False, True)
    ],
)  # fmt: skip
def test_matches_open_clip(kind, dtype, with_bias, normalize, x64):
    image, text = _towers(1)
    scale, bias = 2.5, (-1.5 if with_bias else None)
    want, want_grads = _open_clip(kind, image, text, scale, bias, normalize)
    cast = jnp.float64 if dtype == "float64" else jnp.float32
    args = [jnp.asarray(a, cast) for a in (image, text, scale, 0.0 if bias is None else bias)]

    def loss(image, text, scale, bias_value):
        return LOSSES[kind](image, text, scale, bias_value if with_bias else None,
                            normalize=normalize)  # fmt: skip

    value, grads = jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2, 3)))(*args)
    assert value.dtype == cast
    rtol, atol = (1e-12, 1e-12) if dtype == "float64" else (2e-5, 2e-6)
    np.testing.assert_allclose(value, want, rtol=rtol)
    for got, expected in zip(grads[: 4 if with_bias else 3], want_grads):
        np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol)


@pytest.mark.parametrize("kind", ["clip", "siglip"])
def test_stable_at_a_large_scale_on_unnormalised_features(kind, x64):
    """A scale of 100 on features of norm about 20: logits of several thousand."""
    image, text = _towers(2, scale=8.0)
    want, want_grads = _open_clip(kind, image, text, 100.0, -10.0, normalize=False)
    args = [jnp.asarray(a, jnp.float32) for a in (image, text, 100.0, -10.0)]
    value, grads = jax.value_and_grad(LOSSES[kind], argnums=(0, 1, 2, 3))(*args)
    assert np.isfinite(value) and all(np.isfinite(g).all() for g in grads)
    np.testing.assert_allclose(value, want, rtol=1e-5)
    for got, expected in zip(grads, want_grads):
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-3 * np.abs(expected).max())


def _reference_rows(kind, image, text, scale, bias, groups, valid):
    """Per-row losses with several positives per row and padded rows, in NumPy: CLIP's target
    of row i spread evenly over its group's rows, SigLIP's pairs within a group positive."""
    z = scale * image @ text.T + bias
    positive = groups[:, None] == groups[None, :]
    keep = valid[:, None] & valid[None, :]
    if kind == "siglip":
        pair = np.logaddexp(0.0, z) - np.where(positive, z, 0.0)
        return np.where(valid, np.sum(np.where(keep, pair, 0.0), axis=1), 0.0)
    rows = []
    for logits in (z, z.T):
        masked = np.where(valid[None, :], logits, -np.inf)
        top = masked.max(axis=1, keepdims=True)
        lse = np.log(np.sum(np.exp(masked - top), axis=1)) + top[:, 0]
        target = positive & valid[None, :]
        rows.append(lse - np.sum(np.where(target, logits, 0), 1) / np.maximum(target.sum(1), 1))
    return np.where(valid, 0.5 * (rows[0] + rows[1]), 0.0)


@pytest.mark.parametrize("kind", ["clip", "siglip"])
def test_group_ids_and_where_match_the_reference(kind, x64):
    image, text = _towers(3)
    groups = np.array([0, 1, 0, 2, 1, 3])
    valid = np.array([True, True, False, True, True, True])
    want = _reference_rows(kind, image, text, 1.7, -0.5, groups, valid)
    got = LOSSES[kind](image, text, 1.7, -0.5, group_ids=groups, where=valid, reduction="none")
    np.testing.assert_allclose(got, want, rtol=1e-12)
    mean = LOSSES[kind](image, text, 1.7, -0.5, group_ids=groups, where=valid)
    np.testing.assert_allclose(mean, want.sum() / valid.sum(), rtol=1e-12)
    # Distinct ids are the default pairing.
    np.testing.assert_allclose(
        LOSSES[kind](image, text, 1.7, -0.5, group_ids=np.arange(B) * 3),
        LOSSES[kind](image, text, 1.7, -0.5),
        rtol=1e-14,
    )


@pytest.mark.parametrize("kind", ["clip", "siglip"])
def test_where_is_the_loss_of_the_kept_rows(kind, x64):
    """Masked rows take no part: the loss and gradients equal those of the batch without them,
    and the masked rows' gradients are exactly zero (also with normalisation of zero rows)."""
    image, text = _towers(4)
    image[2] = text[2] = 0.0  # padding
    keep = np.array([True, True, False, True, True, True])

    def masked(i, t, s):
        return LOSSES[kind](i, t, s, -0.3, normalize=True, where=jnp.asarray(keep))

    def kept(i, t, s):
        return LOSSES[kind](i[keep], t[keep], s, -0.3, normalize=True)

    value, grads = jax.jit(jax.value_and_grad(masked, argnums=(0, 1, 2)))(image, text, 2.0)
    want, want_grads = jax.jit(jax.value_and_grad(kept, argnums=(0, 1, 2)))(image, text, 2.0)
    np.testing.assert_allclose(value, want, rtol=1e-13)
    for got, expected in zip(grads, want_grads):
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-15)
    assert np.all(grads[0][2] == 0) and np.all(grads[1][2] == 0)


@pytest.mark.parametrize("kind", ["clip", "siglip"])
def test_reductions_jit_and_vmap(kind):
    image, text = (jnp.asarray(a, jnp.float32) for a in _towers(5))
    loss = LOSSES[kind]
    rows = loss(image, text, 3.0, -1.0, reduction="none")
    assert rows.shape == (B,)
    np.testing.assert_allclose(loss(image, text, 3.0, -1.0, reduction="sum"), rows.sum(), rtol=1e-6)
    np.testing.assert_allclose(loss(image, text, 3.0, -1.0), rows.mean(), rtol=1e-6)
    np.testing.assert_allclose(jax.jit(loss)(image, text, 3.0, -1.0), rows.mean(), rtol=1e-6)
    stacked = jnp.stack([image, image[::-1]]), jnp.stack([text, text[::-1]])
    batched = jax.vmap(lambda i, t: loss(i, t, 3.0, -1.0))(*stacked)
    np.testing.assert_allclose(batched[1], loss(image[::-1], text[::-1], 3.0, -1.0), rtol=1e-6)
    low = loss(image.astype(jnp.bfloat16), text.astype(jnp.bfloat16), 3.0, -1.0)
    assert low.dtype == jnp.bfloat16
    np.testing.assert_allclose(np.float32(low), rows.mean(), rtol=2e-2)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (
            dict(image_embeddings=np.zeros((B, D, 1))),
            ValueError,
            "`image_embeddings` must be a (B, D) batch of embeddings; got shape [6, 5, 1]",
        ),
        (
            dict(text_embeddings=np.zeros((B + 1, D))),
            ValueError,
            "`text_embeddings` must have the same shape as `image_embeddings` [6, 5]; got [7, 5]",
        ),
        (
            dict(image_embeddings=np.zeros((B, D), np.int32)),
            TypeError,
            "`image_embeddings` must be a floating-point array",
        ),
        (dict(scale=np.ones(2)), ValueError, "`scale` must be a scalar"),
        (dict(bias=np.ones((1,))), ValueError, "`bias` must be a scalar"),
        (
            dict(group_ids=np.zeros(B - 1, int)),
            ValueError,
            "`group_ids` must give one integer per pair row, shape [6]; got [5]",
        ),
        (dict(group_ids=np.zeros(B)), TypeError, "`group_ids` must hold integer"),
        (dict(where=np.ones(B, int)), TypeError, "`where` must be a boolean mask"),
        (
            dict(where=np.ones((B, B), bool)),
            ValueError,
            "`where` must broadcast to the shape of the batch of pair rows [6]; got [6, 6]",
        ),
        (dict(normalize=1), TypeError, "`normalize` must be True or False; got 1"),
        (dict(eps=-1.0), ValueError, "`eps` must be >= 0.0"),
        (dict(reduction="batchmean"), ValueError, "`reduction` must be one of"),
    ],
)
@pytest.mark.parametrize("kind", ["clip", "siglip"])
def test_bad_input_is_named(kind, kwargs, error, message):
    args = dict(image_embeddings=np.zeros((B, D)), text_embeddings=np.zeros((B, D)), scale=1.0)
    args.update(kwargs)
    with pytest.raises(error, match=re.escape(f"{kind}_loss: {message}")):
        LOSSES[kind](**args)
