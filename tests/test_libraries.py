"""jaxloss against the other loss libraries (jaxloss.parity.libraries): every optax.losses
function, every keras.losses loss, and the segmentation losses of MONAI and
segmentation_models_pytorch, each through its jaxloss counterpart, in float32 and float64,
values and gradients. Where a library gives nan or inf on a finite input, the comparison says
so (``expect="reference_not_finite"``) and jaxloss must be finite there."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxloss
from jaxloss.parity import libraries

COMPARISONS = libraries.comparisons()


def _runs():
    """The default tier runs each reference function once, its first configuration in its
    first dtype (float64 with its tight tolerance, or float32 where the reference computes
    only that), and every input where a reference is not finite; --full runs every
    configuration in every dtype."""
    seen = set()
    for c in COMPARISONS:
        for dtype in c.dtypes:
            first = (c.library, c.reference) not in seen
            seen.add((c.library, c.reference))
            # a reference's known failure on finite inputs is always shown
            marks = [] if first or c.expect != "equal" else [pytest.mark.slow]
            yield pytest.param(c, dtype, id=f"{c.id}-{dtype}", marks=marks)


@pytest.mark.parametrize(("comparison", "dtype"), list(_runs()))
def test_against_reference(comparison, dtype):
    result = libraries.run(comparison, dtype)
    assert result.ok, f"{comparison.reference}: {result.detail}"


def test_every_optax_loss_has_a_counterpart():
    compared = {c.reference.split("(")[0] for c in COMPARISONS if c.library == "optax"}
    exported = {f"optax.losses.{n}" for n in dir(optax.losses) if not n.startswith("_")}
    missing = exported - compared - {f"optax.losses.{n}" for n in libraries.OPTAX_LEFT_OUT}
    assert not missing, f"optax losses without a compared counterpart: {sorted(missing)}"


def test_out_of_range_integer_label_raises_or_is_nan():
    """optax reads an out-of-range class index as nan (its gather fills); jaxloss raises with
    concrete inputs and gives nan under jit, never a finite number."""
    logits = jnp.zeros((2, 3))
    labels = jnp.array([0, 3])
    assert np.isnan(optax.losses.softmax_cross_entropy_with_integer_labels(logits, labels)[1])
    with pytest.raises(ValueError, match="out of range"):
        jaxloss.cross_entropy(logits, labels)
    jitted = jax.jit(lambda x, y: jaxloss.cross_entropy(x, y, reduction="none"))
    assert np.isnan(jitted(logits, labels)[1])


def _keras():
    return libraries._keras()


def test_every_keras_loss_has_a_counterpart_with_its_signature():
    import inspect

    from jaxloss.compat import keras as compat_keras

    keras = _keras()
    names = [n for n in dir(keras.losses) if not n.startswith("_")]
    names = [n for n in names if n not in ("Loss", "get", "serialize", "deserialize")]
    compared = {c.reference.removeprefix("keras.losses.") for c in COMPARISONS}
    for name in names:
        theirs = getattr(keras.losses, name)
        ours = getattr(compat_keras, name)
        if inspect.isclass(theirs):
            assert name in compared, f"keras.losses.{name} is not compared"
            expected, actual = inspect.signature(theirs.__init__), inspect.signature(ours.__init__)
        else:
            expected, actual = inspect.signature(theirs), inspect.signature(ours)
        assert [(p.name, p.default) for p in actual.parameters.values()] == [
            (p.name, p.default) for p in expected.parameters.values()
        ], name


@pytest.mark.usefixtures("x64")
def test_a_keras_user_gets_the_same_number_from_the_native_functions():
    """Keras' default reduction, 'sum_over_batch_size', is the mean of the per-sample losses
    (each the mean over the last axis), so without weights it is the native 'mean'; with
    per-sample weights it is the weighted per-sample losses' sum over their count."""
    keras = _keras()
    rng = np.random.default_rng(0)
    p, t = rng.normal(size=(8, 5)), rng.normal(size=(8, 5))
    w = rng.uniform(0.5, 2, 8)
    mse = keras.losses.MeanSquaredError(dtype="float64")
    assert float(mse(t, p)) == pytest.approx(float(jaxloss.mse_loss(p, t)), rel=1e-6)
    per_sample = jnp.mean(jaxloss.mse_loss(p, t, reduction="none"), axis=-1)
    assert float(mse(t, p, sample_weight=w)) == pytest.approx(
        float(jnp.sum(per_sample * w) / per_sample.size), rel=1e-6
    )
    logits = rng.normal(size=(8, 4))
    labels = np.array([0, 1, 2, 3, 0, 0, 2, 1])
    sparse = keras.losses.SparseCategoricalCrossentropy(
        from_logits=True, ignore_class=0, dtype="float64"
    )
    assert float(sparse(labels, logits)) == pytest.approx(
        float(jaxloss.cross_entropy(logits, labels, ignore_index=0)), rel=1e-6
    )


def test_report_prints_every_library(capsys):
    from jaxloss.parity import report

    assert report.main(["--libraries", "--library", "monai", "--match", "MCCLoss"]) == 0
    out = capsys.readouterr().out
    assert "monai.losses.MCCLoss" in out and "0 mismatching" in out


def test_keras_categorical_hinge_takes_a_row_of_zeros_as_keras_does(x64):
    """Keras' own test has an all-zero y_true row: its loss is max(0, 1 + max_c s_c), the
    hinge with the extra zero-score class as the label. A soft row is refused."""
    import keras

    from jaxloss.compat import keras as jaxloss_keras

    y_true = np.array([[0.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    y_pred = np.array([[0.3, 0.2, 0.1], [0.1, 0.9, 0.2], [-0.4, -1.2, -0.3]])
    theirs = np.asarray(keras.losses.categorical_hinge(y_true, y_pred))
    ours = jaxloss_keras.categorical_hinge(y_true, y_pred)
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)
    np.testing.assert_allclose(
        jaxloss_keras.CategoricalHinge()(y_true, y_pred),
        keras.losses.CategoricalHinge()(y_true, y_pred),
        rtol=1e-6,
    )
    with pytest.raises(ValueError, match="one-hot"):
        jaxloss_keras.categorical_hinge(np.array([[0.5, 0.5, 0.0]]), y_pred[:1])


SEGMENTATION_IN_FLOAT64 = [
    pytest.param(c, id=c.id, marks=() if i % 5 == 0 else pytest.mark.slow)
    for i, c in enumerate(c for c in COMPARISONS if c.library in ("monai", "smp"))
    if "float64" in c.dtypes
]


@pytest.mark.parametrize("comparison", SEGMENTATION_IN_FLOAT64)
def test_float32_gradients_are_within_a_few_ulps_of_float64(comparison):
    """jaxloss's float32 gradient, measured against its float64 one: within 8 float32 ulps
    of the largest gradient (MONAI's and smp's own float32 gradients are 1-4 ulps off; the
    soft counts are summed directly, without Σp - TP's cancellation)."""
    args = comparison.draw(np.random.default_rng(0), np.dtype(np.float64))
    narrowed = [a.astype(np.float32) if a.dtype == np.float64 else a for a in args]
    with jax.enable_x64(True):
        _, exact, _ = libraries._vjp_jax(comparison.ours, args, comparison.differentiable, 1)
    _, rounded, _ = libraries._vjp_jax(comparison.ours, narrowed, comparison.differentiable, 1)
    for g64, g32 in zip(exact, rounded):
        scale = np.abs(g64).max()
        error = np.abs(g32 - g64).max()
        assert error <= 8 * np.finfo(np.float32).eps * scale, (error, scale)
