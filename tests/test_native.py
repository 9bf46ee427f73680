"""The native API: class axis, `where` masks, checked mode, and the nn modules against torch's."""

import functools
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import jaxloss
from jaxloss.compat import functional as F
from jaxloss.compat import nn

# float64 comparisons: 64-bit JAX arrays, scoped to each test.
pytestmark = pytest.mark.usefixtures("x64")

rng = np.random.default_rng(3)


def test_class_axis_last_matches_torch_axis_one():
    logits = rng.standard_normal((3, 5, 4))  # torch layout (N, C, d)
    labels = rng.integers(0, 5, (3, 4))
    torch_value = torch.nn.functional.cross_entropy(
        torch.from_numpy(logits), torch.from_numpy(labels)
    )
    native_last = jaxloss.cross_entropy(np.moveaxis(logits, 1, -1), labels)
    native_axis = jaxloss.cross_entropy(logits, labels, axis=1)
    np.testing.assert_allclose(native_last, torch_value.numpy(), rtol=1e-12)
    np.testing.assert_allclose(native_axis, torch_value.numpy(), rtol=1e-12)


def test_where_equals_dropping_the_masked_positions():
    logits = rng.standard_normal((6, 4))
    labels = rng.integers(0, 4, 6)
    keep = np.array([True, False, True, True, False, True])
    weight = np.linspace(0.5, 2.0, 4)
    for reduction in ("mean", "sum"):
        masked = jaxloss.cross_entropy(
            logits,
            labels,
            class_weights=weight,
            where=keep,
            label_smoothing=0.1,
            reduction=reduction,
        )
        dropped = jaxloss.cross_entropy(
            logits[keep],
            labels[keep],
            class_weights=weight,
            label_smoothing=0.1,
            reduction=reduction,
        )
        np.testing.assert_allclose(masked, dropped, rtol=1e-12)
    none = jaxloss.cross_entropy(logits, labels, where=keep, reduction="none")
    assert np.all(np.asarray(none)[~keep] == 0)


@pytest.mark.parametrize(
    "fn,args",
    [
        (jaxloss.mse_loss, (rng.standard_normal((4, 3)), rng.standard_normal((4, 3)))),
        (
            jaxloss.binary_cross_entropy_with_logits,
            (rng.standard_normal((4, 3)), rng.uniform(size=(4, 3))),
        ),
        (jaxloss.kl_div, (np.log(rng.uniform(0.1, 1, (4, 3))), rng.uniform(size=(4, 3)))),
    ],
)
def test_where_mean_counts_only_unmasked_elements(fn, args):
    keep = rng.uniform(size=(4, 3)) < 0.6
    masked = fn(*args, where=keep)
    full = np.asarray(fn(*args, reduction="none"))
    np.testing.assert_allclose(masked, full[keep].mean(), rtol=1e-12)
    # Gradients do not leak into masked elements.
    grad = jax.grad(lambda x: fn(x, *args[1:], where=keep))(jnp.asarray(args[0]))
    assert np.all(np.asarray(grad)[~keep] == 0)


def test_where_must_broadcast_to_the_loss():
    with pytest.raises(ValueError, match="where"):
        jaxloss.mse_loss(np.ones((4, 3)), np.ones((4, 3)), where=np.ones((5,), bool))
    with pytest.raises(TypeError, match="where"):
        jaxloss.mse_loss(np.ones((4, 3)), np.ones((4, 3)), where=np.ones((4, 3)))


def test_out_of_range_label_under_jit_gives_nan_not_a_plausible_number():
    logits = jnp.asarray(rng.standard_normal((2, 3)))
    value = jax.jit(jaxloss.cross_entropy)(logits, jnp.array([0, 9]))
    assert np.isnan(value)


def test_checked_mode_raises_under_jit():
    logits = jnp.asarray(rng.standard_normal((2, 3)))
    loss = jaxloss.checked(lambda x, y: jaxloss.cross_entropy(x, y))
    np.testing.assert_allclose(
        loss(logits, jnp.array([0, 2])), jaxloss.cross_entropy(logits, jnp.array([0, 2]))
    )
    with pytest.raises(ValueError, match="class index 9"):
        loss(logits, jnp.array([0, 9]))
    probs = jaxloss.checked(lambda p, y: jaxloss.binary_cross_entropy(p, y))
    with pytest.raises(ValueError, match="probs"):
        probs(jnp.array([0.5, 1.5]), jnp.array([1.0, 0.0]))


def test_options_are_hashable_for_jit_partial():
    loss = jax.jit(
        functools.partial(
            jaxloss.cross_entropy, reduction="sum", label_smoothing=0.1, ignore_index=0
        )
    )
    logits = rng.standard_normal((4, 3))
    labels = np.array([0, 1, 2, 1])
    np.testing.assert_allclose(
        loss(logits, labels),
        F.cross_entropy(logits, labels, reduction="sum", label_smoothing=0.1, ignore_index=0),
        rtol=1e-12,
    )


@pytest.mark.parametrize(
    "size_average,reduce,expected",
    [
        (None, None, "mean"),
        (True, None, "mean"),
        (False, None, "sum"),
        (None, False, "none"),
        (False, False, "none"),
        (True, True, "mean"),
        (False, True, "sum"),
    ],
)
def test_legacy_reduction_rules(size_average, reduce, expected):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = nn.L1Loss(size_average=size_average, reduce=reduce, reduction="mean").reduction
        theirs = torch.nn.L1Loss(size_average=size_average, reduce=reduce).reduction
    assert ours == theirs == expected


def _module_pairs():
    x = rng.standard_normal((4, 5))
    p = rng.uniform(0.05, 0.95, (4, 5))
    idx = rng.integers(0, 5, 4)
    s = np.where(rng.uniform(size=4) < 0.5, -1.0, 1.0)
    w = rng.uniform(0.5, 2.0, 5)
    mlm = np.array([[1, 3, -1, 0, 0], [0, -1, 2, 2, 2], [4, 3, 2, 1, 0], [-1, 0, 0, 0, 0]])
    return [
        ("L1Loss", {}, (x, p)),
        ("MSELoss", {"reduction": "sum"}, (x, p)),
        ("CrossEntropyLoss", {"weight": w, "label_smoothing": 0.2, "ignore_index": 1}, (x, idx)),
        ("NLLLoss", {"weight": w}, (x, idx)),
        ("PoissonNLLLoss", {"log_input": False, "full": True}, (p, np.round(p * 4))),
        ("GaussianNLLLoss", {"full": True}, (x, p, p)),
        ("KLDivLoss", {"reduction": "batchmean"}, (np.log(p), p)),
        ("BCELoss", {"weight": w}, (p, np.round(p))),
        ("BCEWithLogitsLoss", {"weight": w, "pos_weight": w}, (x, p)),
        ("MarginRankingLoss", {"margin": 0.3}, (x[:, 0], x[:, 1], s)),
        ("HingeEmbeddingLoss", {"margin": 0.5}, (x, np.sign(x))),
        ("MultiLabelMarginLoss", {}, (x, mlm)),
        ("HuberLoss", {"delta": 0.4}, (x, p)),
        ("SmoothL1Loss", {"beta": 0.3}, (x, p)),
        ("SoftMarginLoss", {}, (x, np.sign(x))),
        ("MultiLabelSoftMarginLoss", {"weight": w}, (x, np.round(p))),
        ("CosineEmbeddingLoss", {"margin": 0.2}, (x, p, s)),
        ("MultiMarginLoss", {"p": 2, "margin": 0.7, "weight": w}, (x, idx)),
        ("TripletMarginLoss", {"margin": 0.5, "p": 1, "swap": True}, (x, p, x[::-1].copy())),
        ("TripletMarginWithDistanceLoss", {"swap": True}, (x, p, x[::-1].copy())),
    ]


@pytest.mark.parametrize(
    "name,options,inputs", _module_pairs(), ids=[m[0] for m in _module_pairs()]
)
def test_modules_match_torch_modules(name, options, inputs):
    to_t = lambda v: torch.from_numpy(np.asarray(v)) if isinstance(v, np.ndarray) else v
    theirs = getattr(torch.nn, name)(**{k: to_t(v) for k, v in options.items()})
    ours = getattr(nn, name)(**options)
    expected = theirs(*map(to_t, inputs)).numpy()
    np.testing.assert_allclose(ours(*inputs), expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ours.forward(*inputs), expected, rtol=1e-10, atol=1e-12)
    assert ours.reduction == theirs.reduction
    assert name in repr(ours)


def test_module_inside_jit():
    loss = nn.CrossEntropyLoss(weight=np.linspace(1, 2, 3), label_smoothing=0.1)
    logits, labels = rng.standard_normal((4, 3)), np.array([0, 1, 2, 0])
    np.testing.assert_allclose(
        jax.jit(lambda a, b: loss(a, b))(logits, labels), loss(logits, labels), rtol=1e-12
    )


def test_numeric_options_may_be_traced():
    """jax.jit over a compat function traces its numeric keyword options too."""
    logits, labels = rng.standard_normal((4, 3)), np.array([0, 1, 2, 0])
    np.testing.assert_allclose(
        jax.jit(F.cross_entropy)(logits, labels, label_smoothing=0.2, ignore_index=1),
        F.cross_entropy(logits, labels, label_smoothing=0.2, ignore_index=1),
        rtol=1e-12,
    )
    x, y = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    for fn, option in ((F.huber_loss, "delta"), (F.smooth_l1_loss, "beta")):
        np.testing.assert_allclose(
            jax.jit(fn)(x, y, **{option: 0.5}), fn(x, y, **{option: 0.5}), rtol=1e-12
        )
    np.testing.assert_allclose(
        jax.jit(F.triplet_margin_loss)(x, y, x[::-1], margin=0.5),
        F.triplet_margin_loss(x, y, x[::-1], margin=0.5),
        rtol=1e-12,
    )


def test_quickstart_example_runs_and_styles_agree():
    import runpy
    from pathlib import Path

    module = runpy.run_path(str(Path(__file__).parents[1] / "examples" / "quickstart.py"))
    native, compat = module["main"]()
    np.testing.assert_allclose(native, compat, rtol=1e-12)


@pytest.mark.parametrize("fn", [jaxloss.cross_entropy, jaxloss.nll_loss, jaxloss.multi_margin_loss])
def test_where_masked_positions_may_hold_any_label(fn):
    """Padding positions masked by `where` may carry junk labels without raising or leaking nan."""
    scores = jnp.asarray(rng.standard_normal((3, 4)))
    labels = jnp.array([1, 99, 2])
    keep = jnp.array([True, False, True])
    masked = fn(scores, labels, where=keep)
    np.testing.assert_allclose(masked, fn(scores[keep], labels[keep]), rtol=1e-12)
    grad = jax.grad(lambda s: fn(s, labels, where=keep))(scores)
    assert np.all(np.isfinite(grad)) and np.all(np.asarray(grad)[1] == 0)


@pytest.mark.parametrize("dim", [1, 0, -1])
def test_cosine_similarity_matches_torch(dim):
    x1, x2 = rng.standard_normal((4, 5)), rng.standard_normal((1, 5))
    x1[0] = 1e-10  # below eps: torch clamps each norm separately
    expected = torch.nn.functional.cosine_similarity(
        torch.from_numpy(x1), torch.from_numpy(x2), dim=dim
    )
    np.testing.assert_allclose(
        F.cosine_similarity(x1, x2, dim=dim), expected.numpy(), rtol=1e-12, atol=1e-15
    )
    np.testing.assert_allclose(
        nn.CosineSimilarity(dim=dim)(x1, x2), expected.numpy(), rtol=1e-12, atol=1e-15
    )


@pytest.mark.parametrize("x1,x2,dim", [(2.0, -3.0, 0), (0.5, 4.0, -1), (0.0, 1.0, 0)])
def test_cosine_similarity_of_scalars_is_torchs(x1, x2, dim):
    """torch reads two scalars as one-element vectors: the product of their signs (0 at 0)."""
    expected = torch.nn.functional.cosine_similarity(torch.tensor(x1), torch.tensor(x2), dim=dim)
    ours = F.cosine_similarity(np.float64(x1), np.float64(x2), dim=dim)
    assert ours.shape == () and float(ours) == float(expected)


def test_cosine_similarity_rejects_a_bad_axis():
    with pytest.raises(ValueError, match="axis"):
        F.cosine_similarity(np.float64(1.0), np.float64(2.0), dim=1)  # torch: out of range
    with pytest.raises(ValueError, match="axis"):
        F.cosine_similarity(np.ones((2, 3)), np.ones((2, 3)), dim=2)


def test_with_partials_derivatives_are_the_given_partials_to_second_order():
    """The helper behind the pointwise losses' own derivative pass: first derivatives are the
    given partials (in forward and reverse mode), second ones differentiate them, an argument
    without a tangent leaves its partial unevaluated, and a missing partial is an error."""
    from jaxloss._core.ops import with_partials

    evaluated = []

    def partial_t(x, t):
        evaluated.append("t")
        return 2 * (t - x)

    squared = with_partials(lambda x, t: (x - t) ** 2, lambda x, t: 2 * (x - t), partial_t)
    x, t = jnp.array([0.5, -1.0, 2.0]), jnp.array([1.0, 1.0, -1.0])
    np.testing.assert_allclose(jax.grad(lambda a: jnp.sum(squared(a, t)))(x), 2 * (x - t))
    assert evaluated == []  # no tangent in t: its partial never ran
    _, tangent = jax.jvp(squared, (x, t), (jnp.ones(3), jnp.ones(3)))
    np.testing.assert_allclose(tangent, np.zeros(3))
    hessian = jax.hessian(lambda a: jnp.sum(squared(a, t)))(x)
    np.testing.assert_allclose(hessian, 2 * np.eye(3))
    with pytest.raises(TypeError, match="1 partials for 2 arguments"):
        jax.grad(lambda a: jnp.sum(with_partials(lambda x, t: x * t, lambda x, t: t)(a, t)))(x)


@pytest.mark.parametrize("dtype", ["bfloat16", "float32", "float64"])
def test_reduction_result_is_the_identity_in_value_and_tangent(dtype, x64):
    """The clamp that ends XLA:CPU's fusion of a reduction changes nothing: NaN, ±inf, -0 and
    every finite value come back bit for bit (jitted and vmapped), and its tangent, forward
    (jitted) and reverse, is the incoming one, also at ±inf and NaN where a clamp's own is
    0."""
    from jaxloss._core.ops import reduction_result

    values = jnp.array([jnp.nan, jnp.inf, -jnp.inf, -0.0, 0.0, 1e-30, -3.5, 1e30], dtype)
    same = jax.jit(jax.vmap(reduction_result))(values)
    np.testing.assert_array_equal(
        np.asarray(same).view(np.uint8), np.asarray(values).view(np.uint8)
    )
    tangents = jnp.arange(1.0, 9.0, dtype=dtype)
    _, pushed = jax.jit(lambda v, t: jax.jvp(reduction_result, (v,), (t,)))(values, tangents)
    np.testing.assert_array_equal(pushed, tangents)
    pulled = jax.grad(lambda v: jnp.sum(reduction_result(v) * tangents))(values)
    np.testing.assert_array_equal(pulled, tangents)


@pytest.mark.parametrize(
    "shape, parts",
    [
        ((3, 64), 8),
        ((5, 100), 5),  # the most parts that divide the width, each at least 8 wide
        ((2, 3, 40), 5),
        ((4, 127), 1),  # a prime width: summed plainly
        ((6, 12), 1),  # too narrow to split
        ((1000,), 1),  # 1-D: its one axis is the batch
        ((4, 0), 1),
        ((0, 64), 8),
    ],
)
def test_total_in_parts_is_the_sum_in_value_and_tangent(shape, parts, x64):
    """`total_in_parts` (the sum of branched and masked losses) folds the last axis onto
    `parts` parts and is the plain sum to rounding in float64, jitted and vmapped; its tangent
    is the plain sum's, so every element's gradient is 1. NaN and inf reach the total."""
    from jaxloss._core import reduction

    assert reduction._parts(shape) == parts
    loss = jnp.asarray(rng.standard_normal(shape) * 10)
    total = jax.jit(reduction.total_in_parts)(loss)
    np.testing.assert_allclose(total, np.sum(np.asarray(loss)), rtol=1e-13, atol=1e-12)
    batched = jax.jit(jax.vmap(reduction.total_in_parts))(jnp.stack([loss, 2 * loss]))
    np.testing.assert_allclose(batched, [total, 2 * total], rtol=1e-13, atol=1e-12)
    np.testing.assert_array_equal(jax.jit(jax.grad(reduction.total_in_parts))(loss), np.ones(shape))
    tangent = jnp.asarray(rng.standard_normal(shape))
    _, pushed = jax.jit(lambda v, t: jax.jvp(reduction.total_in_parts, (v,), (t,)))(loss, tangent)
    np.testing.assert_allclose(pushed, np.sum(np.asarray(tangent)), rtol=1e-13, atol=1e-12)
    if loss.size:
        with_nan = loss.reshape(-1).at[-1].set(jnp.nan).reshape(shape)
        assert np.isnan(reduction.total_in_parts(with_nan))
        with_inf = loss.reshape(-1).at[0].set(jnp.inf).reshape(shape)
        assert reduction.total_in_parts(with_inf) == np.inf


def test_total_in_parts_folds_a_16_bit_loss_in_float32():
    """Each row's first part is 256 and the rest 1: bfloat16 (8 significant bits) rounds
    256 + 1 back to 256, so folding in bfloat16 would lose 2.7% of the total; in float32 the
    total is the plain sum's (which also accumulates in float32) to bfloat16's rounding."""
    from jaxloss._core import reduction

    loss = jnp.ones((4, 64), jnp.bfloat16).at[:, :8].set(256)
    total = reduction.total_in_parts(loss)
    assert total.dtype == jnp.bfloat16
    np.testing.assert_allclose(float(total), 4 * (8 * 256 + 56), rtol=4e-3)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_kl_div_at_edge_targets_is_the_xlogy_formula(dtype, x64):
    """Values and both inputs' gradients equal torch's xlogy(t, t) - t·x at targets of 0, the
    smallest normal, 2^24 times it (where log(t + tiny) becomes log t exactly), 1 and a
    negative one (nan), and at a log-prediction of -inf (nan beside t = 0, inf beside t > 0)."""
    tiny = float(np.finfo(dtype).tiny)
    t = np.array([0.0, tiny, 2.0**24 * tiny, 1e-3, 0.5, 1.0, -0.25, 0.0, 0.5], dtype)
    x = np.array([-1.0, -2.0, -3.0, -0.5, -0.7, 0.0, -1.0, -np.inf, -np.inf], dtype)
    value, (grad_x, grad_t) = jax.vmap(
        jax.value_and_grad(lambda a, b: jaxloss.kl_div(a, b, reduction="sum"), argnums=(0, 1))
    )(jnp.asarray(x), jnp.asarray(t))
    xt, tt = (torch.tensor(a, requires_grad=True) for a in (x, t))
    expected = torch.special.xlogy(tt, tt) - tt * xt
    expected.sum().backward()
    # below 2^24·tiny the term may differ by up to tiny (see jaxloss.classification._kl_value)
    np.testing.assert_allclose(value, expected.detach().numpy(), rtol=1e-6, atol=tiny)
    np.testing.assert_allclose(grad_x, xt.grad.numpy(), rtol=1e-6, atol=0)
    np.testing.assert_allclose(grad_t, tt.grad.numpy(), rtol=1e-6, atol=0)


def test_zero_embeddings_have_finite_gradients():
    """An all-zero embedding is normalised without a 0/0 in its gradient (x / max(‖x‖, eps)
    gave nan there): masked out of NT-Xent it gets exactly zero gradient; in circle loss, whose
    `where` masks anchors only, it stays a reference with a finite gradient."""
    e = jnp.array([[1.0, 0.0], [0.9, 0.1], [0.0, 0.0], [0.1, 0.9]])
    labels, where = jnp.array([0, 0, 1, 1]), jnp.array([True, True, False, True])
    grad = jax.jit(jax.grad(lambda e: jaxloss.ntxent_loss(e, labels, where=where)))(e)
    assert np.all(np.isfinite(grad)) and np.all(grad[2] == 0), grad
    grad = jax.jit(jax.grad(lambda e: jaxloss.circle_loss(e, labels, where=where)))(e)
    assert np.all(np.isfinite(grad)), grad
