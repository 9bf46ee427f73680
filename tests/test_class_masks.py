"""Class masks (`class_mask`, `valid_vocab_size`): classes left out of the softmax.

Checked three ways: a padded vocabulary with its padding excluded gives exactly the loss and
gradients of the unpadded one; optax's `where` (which masks classes) gives the same numbers
where both apply; a naive masked log-softmax written here from the definition gives the same
numbers everywhere else (smoothing, class weights, per-row masks, K-dimensional inputs).
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxloss

N, C, K = 10, 9, 6  # rows, padded classes, real classes
rng = np.random.default_rng(11)
LOGITS = rng.normal(size=(N, C)) * 2
LABELS = rng.integers(0, K, size=N)
WEIGHT = rng.uniform(0.5, 2.0, size=C)
PAD = np.arange(C) < K
# One mask per row; each row keeps its label and at least two classes.
ROW_MASK = rng.uniform(size=(N, C)) < 0.5
ROW_MASK[np.arange(N), LABELS] = True
ROW_MASK[:, (LABELS + 1) % C] = True
TOL = {"float64": 1e-12, "float32": 2e-6}


def _naive_masked(logits, labels, mask, *, weight=None, smoothing=0.0):
    """From the definition: log-softmax over the included classes, the smoothed target spread
    over them, weights summed over them; per-row losses (weighted by w_y like torch)."""
    mask = jnp.broadcast_to(mask, logits.shape)
    log_probs = jax.nn.log_softmax(jnp.where(mask, logits, -jnp.inf), axis=-1)
    log_probs = jnp.where(mask, log_probs, 0.0)
    w = jnp.ones(logits.shape[-1], logits.dtype) if weight is None else weight
    one_hot = jax.nn.one_hot(labels, logits.shape[-1], dtype=logits.dtype)
    uniform = (mask / jnp.sum(mask, axis=-1, keepdims=True)).astype(logits.dtype)
    nll = -jnp.sum(one_hot * log_probs, axis=-1) * w[labels]
    smooth = -jnp.sum(uniform * w * log_probs, axis=-1)
    return (1 - smoothing) * nll + smoothing * smooth


def _close(a, b, dtype):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=TOL[dtype], atol=TOL[dtype])


@pytest.fixture(params=["float64", "float32"])
def dtype(request, x64):
    return request.param


@pytest.mark.parametrize(
    "weighted,smoothing",
    [(False, 0.0), (True, 0.3)]
    + [pytest.param(*combo, marks=pytest.mark.slow) for combo in [(True, 0.0), (False, 0.3)]],
)
def test_padded_vocabulary_equals_unpadded(dtype, smoothing, weighted):
    logits = jnp.asarray(LOGITS, dtype)
    weight = jnp.asarray(WEIGHT, dtype) if weighted else None
    mask = jnp.asarray(PAD)

    def padded(x, w):
        return jaxloss.cross_entropy(
            x, LABELS, class_weights=w, label_smoothing=smoothing, class_mask=mask
        )

    def unpadded(x, w):
        return jaxloss.cross_entropy(x, LABELS, class_weights=w, label_smoothing=smoothing)

    args = (logits, weight)
    short = (logits[:, :K], None if weight is None else weight[:K])
    argnums = (0, 1) if weighted else (0,)
    _close(padded(*args), unpadded(*short), dtype)
    grads = jax.grad(padded, argnums=argnums)(*args)
    short_grads = jax.grad(unpadded, argnums=argnums)(*short)
    for grad, short_grad in zip(grads, short_grads):
        _close(grad[..., :K], short_grad, dtype)
        assert np.all(np.asarray(grad[..., K:]) == 0)


@pytest.mark.parametrize(
    "dtype,reduction",
    [("float64", "none"), ("float32", "mean")]
    + [
        pytest.param(*c, marks=pytest.mark.slow) for c in [("float64", "mean"), ("float32", "none")]
    ],
)
def test_fused_padded_vocabulary_equals_unpadded(dtype, reduction, x64):
    x = jnp.asarray(rng.normal(size=(N, 5)), dtype)
    w = jnp.asarray(rng.normal(size=(C, 5)), dtype)
    b = jnp.asarray(rng.normal(size=C), dtype)
    options = dict(label_smoothing=0.1, z_loss=1e-3, softcap=4.0, chunk_size=4)
    options["reduction"] = reduction

    def by_size(x, w, b):
        loss = jaxloss.linear_cross_entropy(x, w, LABELS, bias=b, valid_vocab_size=K, **options)
        return jnp.sum(loss)

    def by_mask(x, w, b):
        loss = jaxloss.linear_cross_entropy(
            x, w, LABELS, bias=b, class_mask=jnp.asarray(PAD), **options
        )
        return jnp.sum(loss)

    def unpadded(x, w, b):
        return jnp.sum(jaxloss.linear_cross_entropy(x, w[:K], LABELS, bias=b[:K], **options))

    for masked in (by_size, by_mask):
        _close(masked(x, w, b), unpadded(x, w, b), dtype)
        grads = jax.grad(masked, argnums=(0, 1, 2))(x, w, b)
        short = jax.grad(unpadded, argnums=(0, 1, 2))(x, w, b)
        for grad, expected in zip(grads, short):  # unpadded slices w, b: zero beyond K
            _close(grad, expected, dtype)
        assert np.all(np.asarray(grads[1][K:]) == 0) and np.all(np.asarray(grads[2][K:]) == 0)


# --full: the cross-entropy half is compared in the default tier by tests/test_libraries.py
# (optax's softmax cross-entropies with `where` over classes, per-row masks).
@pytest.mark.slow
@pytest.mark.parametrize("mask_kind", ["shared", "per_row"])
def test_matches_optax_where(dtype, mask_kind):
    """optax's `where` on softmax_cross_entropy(_with_integer_labels) masks classes."""
    logits = jnp.asarray(LOGITS, dtype)
    mask = jnp.asarray(PAD if mask_kind == "shared" else ROW_MASK)
    full = jnp.broadcast_to(mask, logits.shape)
    ours = jaxloss.cross_entropy(logits, LABELS, class_mask=mask, reduction="none")
    theirs = optax.softmax_cross_entropy_with_integer_labels(logits, LABELS, where=full)
    _close(ours, theirs, dtype)
    targets = jax.nn.softmax(jnp.where(full, jnp.asarray(rng.normal(size=(N, C)), dtype), -jnp.inf))
    ours = jaxloss.cross_entropy(logits, targets, class_mask=mask, reduction="none")
    _close(ours, optax.softmax_cross_entropy(logits, targets, where=full), dtype)

    def grad_of(loss_fn):
        return jax.grad(lambda x: jnp.sum(loss_fn(x)))(logits)

    _close(
        grad_of(lambda x: jaxloss.cross_entropy(x, targets, class_mask=mask, reduction="none")),
        grad_of(lambda x: optax.softmax_cross_entropy(x, targets, where=full)),
        dtype,
    )
    log_q = jnp.log(targets)
    log_p = jax.nn.log_softmax(jnp.where(full, logits, -jnp.inf))
    kl = jaxloss.kl_div(log_p, targets, class_mask=mask, reduction="none").sum(-1)
    _close(kl, optax.losses.kl_divergence(log_p, targets, where=full), dtype)
    kl_log = jaxloss.kl_div(log_p, log_q, log_targets=True, class_mask=mask, reduction="none")
    _close(
        kl_log.sum(-1), optax.losses.kl_divergence_with_log_targets(log_p, log_q, where=full), dtype
    )


def _pairs_then_rest(*options):
    """Every pair of the options' values in the default tier, the rest under --full."""
    pairs = {
        ("shared", False, 0.0),
        ("shared", True, 0.25),
        ("per_row", False, 0.25),
        ("per_row", True, 0.0),
    }
    return [
        combo if combo in pairs else pytest.param(*combo, marks=pytest.mark.slow)
        for combo in options
    ]


@pytest.mark.parametrize(
    "mask_kind,weighted,smoothing",
    _pairs_then_rest(
        *[(m, w, e) for m in ("shared", "per_row") for w in (False, True) for e in (0.0, 0.25)]
    ),
)
def test_matches_naive_masked_log_softmax(dtype, smoothing, weighted, mask_kind):
    logits = jnp.asarray(LOGITS, dtype)
    weight = jnp.asarray(WEIGHT, dtype) if weighted else None
    mask = jnp.asarray(PAD if mask_kind == "shared" else ROW_MASK)

    def ours(x):
        return jaxloss.cross_entropy(
            x,
            LABELS,
            class_weights=weight,
            label_smoothing=smoothing,
            class_mask=mask,
            reduction="none",
        )

    def naive(x):
        return _naive_masked(x, LABELS, mask, weight=weight, smoothing=smoothing)

    _close(ours(logits), naive(logits), dtype)
    t = jnp.asarray(rng.normal(size=logits.shape), dtype)
    _close(jax.jvp(ours, (logits,), (t,))[1], jax.jvp(naive, (logits,), (t,))[1], dtype)
    cotangent = jnp.asarray(rng.normal(size=(N,)), logits.dtype)
    _close(jax.vjp(ours, logits)[1](cotangent)[0], jax.vjp(naive, logits)[1](cotangent)[0], dtype)
    if weighted:  # the class weights' gradient, through the same definition

        def ours_w(w):
            return jnp.sum(
                jaxloss.cross_entropy(
                    logits,
                    LABELS,
                    class_weights=w,
                    label_smoothing=smoothing,
                    class_mask=mask,
                    reduction="none",
                )
            )

        def naive_w(w):
            return jnp.sum(_naive_masked(logits, LABELS, mask, weight=w, smoothing=smoothing))

        _close(jax.grad(ours_w)(weight), jax.grad(naive_w)(weight), dtype)


def test_k_dimensional_inputs_with_class_axis_1(x64):
    """(N, C, H, W) logits with classes on axis 1: per-position masks and a (C,) mask."""
    logits = jnp.asarray(rng.normal(size=(2, C, 3, 4)))
    labels = jnp.asarray(rng.integers(0, K, size=(2, 3, 4)))
    per_position = jnp.asarray(rng.uniform(size=(2, C, 3, 4)) < 0.5)
    per_position = per_position | (jnp.arange(C)[None, :, None, None] == labels[:, None])
    for mask in (jnp.asarray(PAD), per_position, jnp.asarray(PAD)[None, :, None, None]):
        ours = jaxloss.cross_entropy(
            logits, labels, axis=1, class_mask=mask, label_smoothing=0.2, reduction="none"
        )
        last = jnp.moveaxis(logits, 1, -1)
        mask_last = jnp.moveaxis(
            jnp.broadcast_to(mask.reshape((1, C, 1, 1)) if mask.ndim == 1 else mask, logits.shape),
            1,
            -1,
        )
        naive = _naive_masked(last, labels, mask_last, smoothing=0.2)
        _close(ours, naive, "float64")


def test_excluded_logits_may_hold_anything(x64):
    """nan and inf in excluded classes change nothing and get exactly zero gradient."""
    garbage = jnp.asarray(LOGITS).at[:, K:].set(jnp.array([jnp.nan, jnp.inf, -jnp.inf]))
    mask = jnp.asarray(PAD)
    for smoothing in (0.0, 0.2):

        def loss(x, smoothing=smoothing):
            return jaxloss.cross_entropy(
                x,
                LABELS,
                class_weights=jnp.asarray(WEIGHT),
                label_smoothing=smoothing,
                class_mask=mask,
            )

        clean = jaxloss.cross_entropy(
            jnp.asarray(LOGITS[:, :K]),
            LABELS,
            class_weights=jnp.asarray(WEIGHT[:K]),
            label_smoothing=smoothing,
        )
        _close(loss(garbage), clean, "float64")
        grad = jax.grad(loss)(garbage)
        assert np.all(np.isfinite(grad)) and np.all(np.asarray(grad[:, K:]) == 0)
    probs = jax.nn.softmax(jnp.asarray(LOGITS[:, :K]))
    targets = jnp.pad(probs, ((0, 0), (0, C - K)))
    value, grad = jax.value_and_grad(lambda x: jaxloss.cross_entropy(x, targets, class_mask=mask))(
        garbage
    )
    assert np.isfinite(value) and np.all(np.asarray(grad[:, K:]) == 0)


def test_rows_with_every_class_excluded_count_for_nothing_when_masked(x64):
    mask = jnp.asarray(ROW_MASK).at[0].set(False)
    where = jnp.arange(N) != 0
    loss, grad = jax.value_and_grad(
        lambda x: jaxloss.cross_entropy(
            x,
            LABELS,
            class_mask=mask,
            where=where,
            label_smoothing=0.1,
            class_weights=jnp.asarray(WEIGHT),
        )
    )(jnp.asarray(LOGITS))
    expected = _naive_masked(
        jnp.asarray(LOGITS), LABELS, mask, weight=jnp.asarray(WEIGHT), smoothing=0.1
    )[1:]
    _close(loss, jnp.sum(expected) / jnp.sum(jnp.asarray(WEIGHT)[LABELS[1:]]), "float64")
    assert np.all(np.isfinite(grad)) and np.all(np.asarray(grad[0]) == 0)


def test_label_on_an_excluded_class():
    """An error with concrete inputs, nan under jit, an error again in checked mode."""
    bad = LABELS.copy()
    bad[3] = K  # excluded by PAD
    mask = jnp.asarray(PAD)
    logits = jnp.asarray(LOGITS, jnp.float32)
    for call in (
        lambda y: jaxloss.cross_entropy(logits, y, class_mask=mask, reduction="none"),
        lambda y: jaxloss.nll_loss(
            jax.nn.log_softmax(logits), y, class_mask=mask, reduction="none"
        ),
        lambda y: jaxloss.linear_cross_entropy(
            logits, jnp.eye(C), y, valid_vocab_size=K, reduction="none"
        ),
    ):
        with pytest.raises(ValueError, match="excludes"):
            call(bad)
        under_jit = np.asarray(jax.jit(call)(bad))
        assert np.isnan(under_jit[3]) and np.all(np.isfinite(np.delete(under_jit, 3)))
        with pytest.raises(Exception, match="excludes"):
            jaxloss.checked(call)(bad)
    # ignored and masked-out positions may hold any label
    ignored = bad.copy()
    ignored[3] = -100
    assert np.isfinite(float(jaxloss.cross_entropy(logits, ignored, class_mask=mask)))
    where = np.arange(N) != 3
    assert np.isfinite(float(jaxloss.cross_entropy(logits, bad, class_mask=mask, where=where)))
    # probability targets with mass on an excluded class
    targets = jax.nn.softmax(logits)
    with pytest.raises(ValueError, match="excludes"):
        jaxloss.cross_entropy(logits, targets, class_mask=mask)
    with pytest.raises(ValueError, match="excludes"):
        jaxloss.kl_div(jnp.log(targets), targets, class_mask=mask)
    under_jit = jax.jit(lambda t: jaxloss.kl_div(jnp.log(t), t, class_mask=mask))(targets)
    assert np.isnan(float(under_jit))


@pytest.mark.parametrize(
    "call, words",
    [
        (
            lambda: jaxloss.cross_entropy(LOGITS, LABELS, class_mask=PAD.astype(int)),
            ["class_mask", "boolean"],
        ),
        (lambda: jaxloss.cross_entropy(LOGITS, LABELS, class_mask=PAD[:4]), ["class_mask", "[9]"]),
        (lambda: jaxloss.kl_div(LOGITS, LOGITS, class_mask=PAD[:4]), ["class_mask"]),
        (
            lambda: jaxloss.linear_cross_entropy(LOGITS, np.eye(C), LABELS, class_mask=ROW_MASK),
            ["class_mask", "[9]"],
        ),
        (
            lambda: jaxloss.linear_cross_entropy(LOGITS, np.eye(C), LABELS, valid_vocab_size=0),
            ["valid_vocab_size", "[1, 9]"],
        ),
        (
            lambda: jaxloss.linear_cross_entropy(
                LOGITS, np.eye(C), LABELS, valid_vocab_size=K, class_mask=PAD
            ),
            ["not both"],
        ),
    ],
)
def test_bad_class_masks_are_named(call, words):
    with pytest.raises((TypeError, ValueError)) as info:
        call()
    for word in words:
        assert word in str(info.value)
