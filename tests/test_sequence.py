"""Native ctc_loss: JAX conventions (batch-major, lengths or paddings), agreement with optax,
torch's reduction and zero_infinity semantics, masks, jit with traced lengths, long inputs."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch

import jaxloss
from jaxloss.compat import functional as F

# float64 comparisons: 64-bit JAX arrays, scoped to each test.
pytestmark = pytest.mark.usefixtures("x64")

rng = np.random.default_rng(0)
B, T, K, S = 4, 15, 6, 5
LOGITS = rng.standard_normal((B, T, K)) * 2
LABELS = rng.integers(1, K, (B, S))
LABELS[0, 1] = LABELS[0, 0]  # a repeat
INPUT_LENGTHS = np.array([15, 12, 9, 15])
LABEL_LENGTHS = np.array([5, 3, 0, 4])


def _paddings(lengths, width):
    return (np.arange(width)[None, :] >= lengths[:, None]).astype(np.float64)


def _torch_losses(logits, labels, input_lengths, label_lengths, **options):
    x = torch.tensor(logits, requires_grad=True)
    loss = torch.nn.functional.ctc_loss(
        x.log_softmax(-1).transpose(0, 1),
        torch.tensor(labels),
        torch.tensor(input_lengths),
        torch.tensor(label_lengths),
        **options,
    )
    loss.sum().backward()
    return loss.detach().numpy(), x.grad.numpy()


@pytest.mark.slow  # ~6 s; the float32-accuracy test compares with optax by default
def test_matches_optax_values_and_gradients():
    """optax.ctc_loss takes logits and paddings and returns per-sequence losses."""
    logit_pad = _paddings(INPUT_LENGTHS, T)
    label_pad = _paddings(LABEL_LENGTHS, S)
    ours = jax.value_and_grad(
        lambda x: jnp.sum(
            jaxloss.ctc_loss(
                x, LABELS, logit_paddings=logit_pad, label_paddings=label_pad, reduction="none"
            )
        )
    )
    theirs = jax.value_and_grad(
        lambda x: jnp.sum(optax.losses.ctc_loss(x, logit_pad, LABELS, label_pad))
    )
    (v1, g1), (v2, g2) = ours(LOGITS), theirs(LOGITS)
    np.testing.assert_allclose(v1, v2, rtol=1e-9)
    np.testing.assert_allclose(g1, g2, atol=1e-9)


def test_lengths_and_paddings_are_the_same_thing():
    by_lengths = jaxloss.ctc_loss(
        LOGITS, LABELS, input_lengths=INPUT_LENGTHS, label_lengths=LABEL_LENGTHS, reduction="none"
    )
    by_paddings = jaxloss.ctc_loss(
        LOGITS,
        LABELS,
        logit_paddings=_paddings(INPUT_LENGTHS, T) > 0,
        label_paddings=_paddings(LABEL_LENGTHS, S),
        reduction="none",
    )
    np.testing.assert_array_equal(by_lengths, by_paddings)


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_native_matches_torch_on_logits(reduction):
    values, grads = _torch_losses(LOGITS, LABELS, INPUT_LENGTHS, LABEL_LENGTHS, reduction=reduction)
    fn = functools.partial(
        jaxloss.ctc_loss,
        labels=LABELS,
        input_lengths=INPUT_LENGTHS,
        label_lengths=LABEL_LENGTHS,
        reduction=reduction,
    )
    np.testing.assert_allclose(fn(LOGITS), values, rtol=1e-12)
    np.testing.assert_allclose(jax.grad(lambda x: jnp.sum(fn(x)))(LOGITS), grads, atol=1e-12)


# Every way the gradient may be planned (see jaxloss.sequence._plan): the states as a pair of
# arrays or packed, in one pass or in chunks. The thresholds are patched so that this small
# problem takes each; T = 13 gives chunks of 2 frames and one frame of padding, T = 15
# chunks of 3 and none. from_logits alternates (it changes only the emissions).
_PLANS = {"pair": 10**9, "packed": 0, "one pass": 2**62, "chunks": 0}


@pytest.mark.parametrize(
    "layout, passes, steps, from_logits",
    [
        ("pair", "one pass", 15, True),
        ("packed", "one pass", 15, False),
        ("pair", "chunks", 13, False),
        ("packed", "chunks", 13, True),
        ("packed", "chunks", 15, False),
    ],
)
def test_every_plan_matches_torch(layout, passes, steps, from_logits, monkeypatch):
    from jaxloss import sequence

    monkeypatch.setattr(sequence, "_PACKED_FROM_STATES", _PLANS[layout])
    monkeypatch.setattr(sequence, "_CHUNKED_FROM_BYTES", _PLANS[passes])
    plan, (chunks, size) = sequence._plan(jnp.zeros((B, steps, K)), S)
    assert plan.packed == (layout == "packed")
    assert (chunks > 1) == (passes == "chunks")
    assert chunks * size - steps == (1 if passes == "chunks" and steps == 13 else 0)
    logits = LOGITS[:, :steps]
    input_lengths = np.minimum(INPUT_LENGTHS, steps)
    values, grads = _torch_losses(logits, LABELS, input_lengths, LABEL_LENGTHS, reduction="none")
    x = logits if from_logits else np.asarray(jax.nn.log_softmax(logits))

    def loss(x):  # a fresh trace per plan (ctc_loss's own jit caches by shape)
        return sequence._ctc_nll_with_derivatives(
            x, LABELS, input_lengths, LABEL_LENGTHS, 0, False, from_logits
        )

    value, vjp = jax.vjp(jax.jit(loss), x)
    np.testing.assert_allclose(value, values, rtol=1e-12)
    np.testing.assert_allclose(vjp(jnp.ones_like(value))[0], grads, atol=1e-12)


def test_from_logits_false_takes_log_probs_as_they_are():
    log_probs = jax.nn.log_softmax(LOGITS)
    a = jaxloss.ctc_loss(log_probs, LABELS, label_lengths=LABEL_LENGTHS, from_logits=False)
    b = jaxloss.ctc_loss(LOGITS, LABELS, label_lengths=LABEL_LENGTHS)
    np.testing.assert_allclose(a, b, rtol=1e-12)


def test_zero_infinity_zeroes_impossible_rows_and_their_gradient():
    input_lengths = np.array([15, 4, 9, 15])  # row 1 needs at least 3 frames; make it 4 labels
    label_lengths = np.array([5, 5, 0, 4])  # row 1: 5 labels with a repeat in 4 frames
    labels = LABELS.copy()
    labels[1] = [1, 1, 2, 3, 4]
    fn = lambda x, zi: jaxloss.ctc_loss(
        x,
        labels,
        input_lengths=input_lengths,
        label_lengths=label_lengths,
        zero_infinity=zi,
        reduction="none",
    )
    assert np.isinf(fn(LOGITS, False)[1]) and fn(LOGITS, True)[1] == 0
    grad_inf = jax.grad(lambda x: jnp.sum(fn(x, False)))(LOGITS)
    grad_zero = jax.grad(lambda x: jnp.sum(fn(x, True)))(LOGITS)
    assert np.all(np.isnan(grad_inf[1, :4])), "torch gives nan for an impossible alignment"
    assert np.all(grad_zero[1] == 0)
    np.testing.assert_allclose(grad_zero[0], grad_inf[0])


def test_where_drops_sequences_from_the_mean():
    where = np.array([True, False, True, True])
    masked = jaxloss.ctc_loss(
        LOGITS, LABELS, input_lengths=INPUT_LENGTHS, label_lengths=LABEL_LENGTHS, where=where
    )
    kept = jaxloss.ctc_loss(
        LOGITS[where],
        LABELS[where],
        input_lengths=INPUT_LENGTHS[where],
        label_lengths=LABEL_LENGTHS[where],
    )
    np.testing.assert_allclose(masked, kept, rtol=1e-12)


def test_traced_lengths_under_jit_and_invalid_label_gives_nan():
    fn = jax.jit(
        lambda x, y, il, ll: jaxloss.ctc_loss(
            x, y, input_lengths=il, label_lengths=ll, reduction="none"
        )
    )
    eager = jaxloss.ctc_loss(
        LOGITS, LABELS, input_lengths=INPUT_LENGTHS, label_lengths=LABEL_LENGTHS, reduction="none"
    )
    np.testing.assert_allclose(fn(LOGITS, LABELS, INPUT_LENGTHS, LABEL_LENGTHS), eager, rtol=1e-12)
    bad = LABELS.copy()
    bad[2, 0] = 0  # the blank, but past row 2's length (0): ignored
    bad[3, 1] = 0  # the blank inside row 3's labels
    out = fn(LOGITS, bad, INPUT_LENGTHS, LABEL_LENGTHS)
    assert np.isnan(out[3]) and np.all(np.isfinite(out[:3]))
    with pytest.raises(ValueError, match="blank"):
        jaxloss.checked(lambda x, y: jaxloss.ctc_loss(x, y, label_lengths=LABEL_LENGTHS))(
            LOGITS, bad
        )


def test_concatenated_targets_with_traced_lengths_under_jit():
    concatenated = np.concatenate([LABELS[i, :n] for i, n in enumerate(LABEL_LENGTHS)])
    log_probs = np.swapaxes(np.asarray(jax.nn.log_softmax(LOGITS)), 0, 1)
    jitted = jax.jit(lambda lp, il, tl: F.ctc_loss(lp, concatenated, il, tl, reduction="none"))
    padded = F.ctc_loss(log_probs, LABELS, INPUT_LENGTHS, LABEL_LENGTHS, reduction="none")
    np.testing.assert_allclose(jitted(log_probs, INPUT_LENGTHS, LABEL_LENGTHS), padded, rtol=1e-12)


@pytest.mark.slow  # ~3 s; the parity suite runs T=400 by default
def test_long_sequence_matches_torch_in_float64():  # T=1000, S=150
    steps, width = 1000, 150
    logits = rng.standard_normal((2, steps, 20))
    labels = rng.integers(1, 20, (2, width))
    lengths, label_lengths = np.array([steps, 850]), np.array([width, 120])
    values, grads = _torch_losses(logits, labels, lengths, label_lengths, reduction="sum")
    value, grad = jax.value_and_grad(
        lambda x: jaxloss.ctc_loss(
            x, labels, input_lengths=lengths, label_lengths=label_lengths, reduction="sum"
        )
    )(logits)
    np.testing.assert_allclose(value, values, rtol=1e-10)
    np.testing.assert_allclose(grad, grads, atol=1e-9)


@pytest.mark.parametrize(
    "call, words",
    [
        (lambda: jaxloss.ctc_loss(LOGITS[0, 0], LABELS), ["logits", "(B, T, K)"]),
        (lambda: jaxloss.ctc_loss(LOGITS, LABELS[0]), ["labels", "(B, S)"]),
        (lambda: jaxloss.ctc_loss(LOGITS, LABELS.astype(float)), ["labels", "integer"]),
        (lambda: jaxloss.ctc_loss(LOGITS, LABELS, blank=K), ["blank", str(K)]),
        # No frames: torch raises ("must not be empty"), so does ctc_loss.
        (lambda: jaxloss.ctc_loss(LOGITS[:, :0], LABELS), ["logits", "T >= 1", f"[{B}, 0, {K}]"]),
        (lambda: jaxloss.ctc_loss(LOGITS[0, :0], LABELS[0]), ["logits", "T >= 1", f"[0, {K}]"]),
        (
            lambda: jaxloss.ctc_loss(
                LOGITS,
                LABELS,
                input_lengths=INPUT_LENGTHS,
                logit_paddings=_paddings(INPUT_LENGTHS, T),
            ),
            ["not both"],
        ),
        (
            lambda: jaxloss.ctc_loss(
                LOGITS, LABELS, logit_paddings=1 - _paddings(INPUT_LENGTHS, T)
            ),
            ["logit_paddings", "trailing"],
        ),
        (
            lambda: jaxloss.ctc_loss(LOGITS, LABELS, label_paddings=np.zeros((B, S + 1))),
            ["label_paddings", f"[{B}, {S}]"],
        ),
        (
            lambda: jaxloss.ctc_loss(LOGITS, LABELS, label_lengths=np.array([1, 2])),
            ["label_lengths", f"[{B}]"],
        ),
        (lambda: jaxloss.ctc_loss(LOGITS, LABELS, where=np.ones(3, bool)), ["where"]),
    ],
)
def test_native_errors_name_the_argument(call, words):
    with pytest.raises((ValueError, TypeError)) as info:
        call()
    for word in words:
        assert word in str(info.value), f"{word!r} missing from: {info.value}"


# (batch, frames, classes, label width, logit scale). On these draws our float32 gradient's
# error against float64 is 8e-8 to 1.2e-7 (relative, in norm), a few float32 roundings, and
# optax's 2e-6 to 3e-5: its log-space states are rounded at ulp(|log alpha|), which grows with
# the frames, where ours keep a float32 mantissa beside an exact exponent.
_ACCURACY_CASES = {
    "short": (4, 30, 6, 8, 2.0),
    "peaked": (4, 60, 6, 10, 5.0),
    "long": (4, 100, 6, 20, 3.0),
    "wide": (4, 100, 40, 20, 2.0),
    "long_flat": (4, 200, 6, 40, 1.0),
}


@pytest.mark.parametrize(
    "case",
    [c if c == "long_flat" else pytest.param(c, marks=pytest.mark.slow) for c in _ACCURACY_CASES],
)
def test_float32_gradient_accuracy_against_float64(case):
    """The float32 gradient's error against a float64 reference (optax's, autodiff through
    its log-space alpha scan, independent of ours), next to optax's own float32 error on the
    same inputs: ours is smaller on every draw, and within 4e-7.

    Both float32 runs are made with 64-bit types *off*. With them on, optax's recursion is
    silently float64 (its initial states are made with float64 defaults and promote the
    float32 inputs), so its "float32" gradient would be a float64 one rounded at the end.
    """
    batch, frames, classes, width, scale = _ACCURACY_CASES[case]

    def ours(x, labels, input_lengths, label_lengths):
        loss = jaxloss.ctc_loss(
            x, labels, input_lengths=input_lengths, label_lengths=label_lengths, reduction="none"
        )
        return jnp.sum(loss)

    def theirs(x, labels, input_lengths, label_lengths):
        logit_pad = jnp.arange(frames)[None, :] >= input_lengths[:, None]
        label_pad = jnp.arange(width)[None, :] >= label_lengths[:, None]
        return jnp.sum(
            optax.losses.ctc_loss(x, logit_pad.astype(x.dtype), labels, label_pad.astype(x.dtype))
        )

    # Compiled once per case (and per precision mode), run on every draw.
    grad_ours, grad_theirs = jax.jit(jax.grad(ours)), jax.jit(jax.grad(theirs))
    ours_errors, theirs_errors = [], []
    for seed in range(6):
        rng = np.random.default_rng(seed)
        logits = (rng.normal(size=(batch, frames, classes)) * scale).astype(np.float32)
        rest = (
            rng.integers(1, classes, size=(batch, width)).astype(np.int32),
            rng.integers(max(2 * width, frames // 2), frames + 1, size=batch).astype(np.int32),
            rng.integers(1, width + 1, size=batch).astype(np.int32),
        )
        with jax.enable_x64(True):
            reference = np.asarray(grad_theirs(jnp.asarray(logits, jnp.float64), *rest))
            assert reference.dtype == np.float64
        with jax.enable_x64(False):
            for grad, errors in ((grad_ours, ours_errors), (grad_theirs, theirs_errors)):
                result = np.asarray(grad(jnp.asarray(logits), *rest))
                assert result.dtype == np.float32
                difference = result.astype(np.float64) - reference
                errors.append(np.linalg.norm(difference) / np.linalg.norm(reference))
    ours_errors, theirs_errors = np.array(ours_errors), np.array(theirs_errors)
    assert np.all(ours_errors < theirs_errors), (ours_errors, theirs_errors)
    assert np.all(ours_errors < 4e-7), ours_errors
