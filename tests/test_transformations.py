"""JAX transformations of every criterion.

- Every native function under every transformation, one test per (function, transformation),
  in float64 and float32: forward mode agrees with reverse mode (jvp's tangent = <grad, t>,
  jacfwd = grad, linearize = jvp), hessian = jacrev(jacrev), jit and checkify equal the plain
  call, nested vmap equals a loop. The compat layer, which maps arguments onto these, is
  checked in forward mode against its own gradients too.
- On the parity cases: jit equals eager (values and gradients).
- Batched: vmap over a leading axis equals a loop, with finite gradients.
- Precision: 16-bit inputs accumulate in float32 and come back in their own dtype.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxloss
from jaxloss.parity.cases import CRITERIA, cases
from jaxloss.parity.compare import jaxloss_function


def _combined(stats):
    """One per-token value from every output of the post-training statistics, so that each
    output's derivative is exercised."""
    return stats.log_probs + 0.5 * stats.entropy + 0.25 * stats.logsumexp


def _native_calls():
    """(name, per-sample loss of its first input, inputs): small, so hessians stay cheap."""
    n, c, d = 3, 4, 3
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(n, c))
    labels = np.array([0, 3, 1])
    probs = 1 / (1 + np.exp(-logits))
    x, y, z = (rng.normal(size=(n, d)) for _ in range(3))
    signs = np.array([1.0, -1.0, 1.0])
    w = np.linspace(0.5, 2.0, c)
    hidden, head = rng.normal(size=(n, d)), rng.normal(size=(5, d))
    tails = [(rng.normal(size=(2, d)), rng.normal(size=(3, 2)))]
    row_mask = np.array([[1, 0, 1, 1], [0, 1, 1, 1], [1, 1, 0, 0]], bool)  # keeps each label
    corners = rng.uniform(0, 5, (n, 2))
    target_boxes = np.concatenate([corners, corners + rng.uniform(1, 3, (n, 2))], 1)
    boxes = target_boxes + rng.normal(0, 0.3, (n, 4))
    segment = rng.normal(size=(2, 5, c))  # two images of five pixels, channel-last
    pixels = np.array([[0, 1, 2, 3, 1], [3, 3, 0, 2, 1]])
    p = functools.partial
    return [
        (
            "cross_entropy",
            p(jaxloss.cross_entropy, class_weights=w, label_smoothing=0.2),
            (logits, labels),
        ),
        (
            "cross_entropy_probs",
            jaxloss.cross_entropy,
            (logits, probs / probs.sum(-1, keepdims=True)),
        ),
        (
            "cross_entropy_class_mask",
            p(jaxloss.cross_entropy, class_weights=w, label_smoothing=0.2, class_mask=row_mask),
            (logits, labels),
        ),
        ("nll_loss", p(jaxloss.nll_loss, class_weights=w), (logits - 2.0, labels)),
        (
            "kl_div_class_mask",
            p(jaxloss.kl_div, reduction="mean", class_mask=row_mask),
            (np.log(probs), probs * row_mask),
        ),
        ("kl_div", p(jaxloss.kl_div, reduction="batchmean"), (np.log(probs), probs / 2)),
        ("binary_cross_entropy", jaxloss.binary_cross_entropy, (probs, np.round(probs))),
        (
            "binary_cross_entropy_with_logits",
            p(jaxloss.binary_cross_entropy_with_logits, pos_weight=w),
            (logits, np.round(probs)),
        ),
        ("soft_margin_loss", jaxloss.soft_margin_loss, (logits[:, 0], signs)),
        (
            "multilabel_soft_margin_loss",
            jaxloss.multilabel_soft_margin_loss,
            (logits, np.round(probs)),
        ),
        ("multi_margin_loss", p(jaxloss.multi_margin_loss, p=2), (logits, labels)),
        (
            "multilabel_margin_loss",
            jaxloss.multilabel_margin_loss,
            (logits, np.array([[0, 2, -1, 1], [3, -1, 0, 0], [1, 0, 2, -1]])),
        ),
        ("l1_loss", jaxloss.l1_loss, (x, y)),
        ("mse_loss", jaxloss.mse_loss, (x, y)),
        ("huber_loss", p(jaxloss.huber_loss, delta=0.5), (x, y)),
        ("smooth_l1_loss", p(jaxloss.smooth_l1_loss, beta=0.5), (x, y)),
        ("poisson_nll_loss", p(jaxloss.poisson_nll_loss, full=True), (x, np.abs(np.round(y * 3)))),
        ("gaussian_nll_loss", jaxloss.gaussian_nll_loss, (x, y, np.exp(z))),
        ("margin_ranking_loss", jaxloss.margin_ranking_loss, (x[:, 0], y[:, 0], signs)),
        ("hinge_embedding_loss", jaxloss.hinge_embedding_loss, (np.abs(x[:, 0]), signs)),
        ("cosine_embedding_loss", jaxloss.cosine_embedding_loss, (x, y, signs)),
        ("triplet_margin_loss", p(jaxloss.triplet_margin_loss, swap=True), (x, y, z)),
        ("triplet_margin_with_distance_loss", jaxloss.triplet_margin_with_distance_loss, (x, y, z)),
        ("pairwise_distance", jaxloss.pairwise_distance, (x, y)),
        ("cosine_similarity", jaxloss.cosine_similarity, (x, y)),
        ("ctc_loss", jaxloss.ctc_loss, (rng.normal(size=(2, 6, c)), np.array([[1, 2], [3, 3]]))),
        (
            "linear_cross_entropy",
            p(jaxloss.linear_cross_entropy, chunk_size=2),
            (hidden, head, np.array([0, 4, 2])),
        ),
        (
            "linear_cross_entropy_vocab",
            p(jaxloss.linear_cross_entropy, chunk_size=2, valid_vocab_size=4, label_smoothing=0.1),
            (hidden, head, np.array([0, 3, 2])),
        ),
        (
            "linear_cross_entropy_none",
            p(jaxloss.linear_cross_entropy, chunk_size=2, reduction="none", softcap=5.0),
            (hidden, head, np.array([0, 4, 2])),
        ),
        (
            "token_log_probs",
            lambda z, y: _combined(
                jaxloss.token_log_probs(
                    z, y, temperature=0.7, softcap=5.0, with_entropy=True, with_logsumexp=True
                )
            ),
            (logits, labels),
        ),
        (
            "linear_log_probs",
            lambda h, w, y: _combined(
                jaxloss.linear_log_probs(
                    h, w, y, chunk_size=2, softcap=5.0, with_entropy=True, with_logsumexp=True
                )
            ),
            (hidden, head, np.array([0, 4, 2])),
        ),
        (
            "linear_log_probs_head",
            lambda w, h, y: _combined(
                jaxloss.linear_log_probs(
                    h,
                    w,
                    y,
                    bias=np.arange(5.0) / 5,
                    chunk_size=2,
                    with_entropy=True,
                    with_logsumexp=True,
                )
            ),
            (head, hidden, np.array([0, 4, 2])),
        ),
        (
            "distillation_loss",
            lambda z, t, y: jaxloss.distillation_loss(
                z, t, y, beta=0.3, temperature=1.5, weight_hard=0.5, reduction="none"
            ),
            (logits, logits[::-1], labels),
        ),
        (
            "linear_distillation_loss",
            lambda h, w, t, y: jaxloss.linear_distillation_loss(
                h, w, t, head, y, divergence="reverse_kl", chunk_size=2, reduction="none"
            ),
            (hidden, head, hidden[::-1], np.array([0, 4, 2])),
        ),
        (
            "sequence_reduce",
            p(
                jaxloss.sequence_reduce,
                reduction="mean",
                segment_ids=np.array([[1, 1, 2], [0, 1, 1], [2, 2, 0]]),
                num_segments=2,
            ),
            (x,),
        ),
        (
            "dpo_loss",
            lambda pc, pr, rc, rr: (
                jaxloss.dpo_loss(
                    pc,
                    pr,
                    rc,
                    rr,
                    loss_type=("sigmoid", "ipo", "discopop", "sft"),
                    chosen_lengths=np.array([3.0, 4.0, 2.0]),
                    rejected_lengths=np.array([2, 5, 1]),
                    f_divergence="js_divergence",
                    reduction="none",
                ).loss
            ),
            (-2 * probs[:, 0], -3 * probs[:, 1], -2 * probs[:, 2], -3 * probs[:, 3]),
        ),
        (
            "cpo_loss",
            lambda pc, pr: (
                jaxloss.cpo_loss(
                    pc,
                    pr,
                    loss_type="simpo",
                    alphapo_alpha=0.2,
                    label_smoothing=0.1,
                    chosen_lengths=np.array([3.0, 4.0, 2.0]),
                    rejected_lengths=np.array([2, 5, 1]),
                    reduction="none",
                ).loss
            ),
            (-2 * probs[:, 0], -3 * probs[:, 1]),
        ),
        (
            "orpo_loss",
            lambda pc, pr: jaxloss.orpo_loss(pc, pr, np.array([3, 4, 2]), np.array([2, 5, 1])).loss,
            (-2 * probs[:, 0], -3 * probs[:, 1]),
        ),
        (
            "kto_loss",
            lambda lp, kl: (
                jaxloss.kto_loss(
                    lp,
                    np.array([True, False, True]),
                    -lp[::-1],
                    kl_policy_logps=kl,
                    kl_ref_logps=kl[::-1] - 1.0,
                    desirable_weight=1.5,
                    reduction="none",
                ).loss
            ),
            (-2 * probs[:, 0], -3 * probs[:, 1]),
        ),
        (
            "policy_loss",
            lambda lp, old: (
                jaxloss.policy_loss(
                    lp,
                    np.array([1.0, -0.5, 0.3]),
                    row_mask,
                    old,
                    lp[::-1],
                    loss_type="sapo",
                    beta=0.05,
                ).loss
            ),
            (np.log(probs), np.log(probs[::-1])),
        ),
        (
            "length_desensitized_logps",
            lambda c, r: jnp.stack(
                jaxloss.length_desensitized_logps(c, r, row_mask, row_mask[::-1], ld_alpha=0.4)
            ),
            (np.log(probs), np.log(probs[::-1])),
        ),
        (  # constants: every derivative is exactly 0
            "wpo_weights",
            lambda lp, sq: jaxloss.wpo_weights(lp, sq, row_mask),
            (np.log(probs), np.log(probs[::-1])),
        ),
        (
            "adaptive_softmax_loss",
            lambda h, y: jaxloss.adaptive_softmax_loss(h, y, head[:3], tails, cutoffs=[2]),
            (hidden, np.array([0, 4, 2])),
        ),
        ("iou_loss", p(jaxloss.iou_loss, mode="log"), (boxes, target_boxes)),
        ("generalized_box_iou_loss", jaxloss.generalized_box_iou_loss, (boxes, target_boxes)),
        ("distance_box_iou_loss", jaxloss.distance_box_iou_loss, (boxes, target_boxes)),
        ("complete_box_iou_loss", jaxloss.complete_box_iou_loss, (boxes, target_boxes)),
        ("eiou_loss", jaxloss.eiou_loss, (boxes, target_boxes)),
        ("focal_eiou_loss", jaxloss.focal_eiou_loss, (boxes, target_boxes)),
        ("alpha_iou_loss", p(jaxloss.alpha_iou_loss, base="ciou"), (boxes, target_boxes)),
        ("siou_loss", jaxloss.siou_loss, (boxes, target_boxes)),
        (
            "wise_iou_loss",
            lambda b, t: jaxloss.wise_iou_loss(b, t, 0.8, version=3)[0],
            (boxes, target_boxes),
        ),
        ("box_iou", jaxloss.box_iou, (boxes, target_boxes)),
        ("complete_box_iou", jaxloss.complete_box_iou, (boxes, target_boxes)),
        (
            "sigmoid_focal_loss",
            p(jaxloss.sigmoid_focal_loss, label_smoothing=0.1),
            (logits, probs),
        ),
        (
            "sigmoid_focal_loss_fractional",
            p(jaxloss.sigmoid_focal_loss, gamma=0.5),
            (logits, probs),
        ),
        (
            "softmax_focal_loss",
            p(
                jaxloss.softmax_focal_loss,
                class_weights=w,
                label_smoothing=0.2,
                class_mask=row_mask,
            ),
            (logits, labels),
        ),
        (
            "poly1_cross_entropy",
            p(jaxloss.poly1_cross_entropy, class_weights=w, label_smoothing=0.2),
            (logits, labels),
        ),
        ("z_loss", jaxloss.z_loss, (logits,)),
        (
            "generalized_cross_entropy",
            p(jaxloss.generalized_cross_entropy, q=0.6, class_weights=w),
            (logits, labels),
        ),
        (
            "softmax_focal_loss_probabilities",
            p(jaxloss.softmax_focal_loss, gamma=1.5, label_smoothing=0.1),
            (logits, probs / probs.sum(-1, keepdims=True)),
        ),
        (
            "kl_divergence",
            p(jaxloss.kl_divergence, generalized=True),
            (np.log(probs), probs * row_mask),
        ),
        ("hinge_loss", p(jaxloss.hinge_loss, squared=True), (x, np.sign(y))),
        ("multiclass_hinge_loss", jaxloss.multiclass_hinge_loss, (logits, labels)),
        ("sparsemax", jaxloss.sparsemax, (logits,)),
        ("sparsemax_loss", jaxloss.sparsemax_loss, (logits, np.round(probs))),
        ("multiclass_sparsemax_loss", jaxloss.multiclass_sparsemax_loss, (logits, labels)),
        (
            "fenchel_young_loss",
            jaxloss.make_fenchel_young_loss(jax.nn.logsumexp),
            (logits, probs / probs.sum(-1, keepdims=True)),
        ),
        ("log_cosh_loss", jaxloss.log_cosh_loss, (x, y)),
        ("mape_loss", jaxloss.mape_loss, (x, y)),
        ("msle_loss", jaxloss.msle_loss, (np.abs(x), np.abs(y))),
        ("ntxent_loss", p(jaxloss.ntxent_loss, temperature=0.5), (x, np.array([0, 0, 1]))),
        ("circle_loss", p(jaxloss.circle_loss, gamma=8.0), (x, np.array([0, 0, 1]))),
        ("ranking_softmax_loss", jaxloss.ranking_softmax_loss, (logits, np.round(probs * 2))),
        ("dice_loss", p(jaxloss.dice_loss, class_weights=w), (segment, pixels)),
        ("jaccard_loss", jaxloss.jaccard_loss, (segment, pixels)),
        ("tversky_loss", p(jaxloss.tversky_loss, gamma=0.75), (segment, pixels)),
        ("generalized_dice_loss", jaxloss.generalized_dice_loss, (segment, pixels)),
        ("mcc_loss", jaxloss.mcc_loss, (segment, pixels)),
        ("dice_ce_loss", p(jaxloss.dice_ce_loss, class_weights=w), (segment, pixels)),
        ("dice_focal_loss", jaxloss.dice_focal_loss, (segment, pixels)),
        (
            "asymmetric_unified_focal_loss",
            jaxloss.asymmetric_unified_focal_loss,
            (segment, pixels),
        ),
        ("lovasz_hinge_loss", jaxloss.lovasz_hinge_loss, (segment[..., 0], pixels % 2)),
        ("lovasz_softmax_loss", jaxloss.lovasz_softmax_loss, (segment, pixels)),
        (
            "adaptive_log_softmax",
            lambda h: jaxloss.adaptive_log_softmax(h, head[:3], tails, cutoffs=[2]),
            (hidden,),
        ),
    ]


CALLS = {name: (fn, inputs) for name, fn, inputs in _native_calls()}
TRANSFORMATIONS = [
    "jit",
    "grad",
    "value_and_grad",
    "vmap_nested",
    "jvp",
    "jacfwd",
    "jacrev",
    "hessian",
    "linearize",
    "checkify",
]


def _prepared(name, dtype):
    fn, inputs = CALLS[name]
    arrays = [
        jnp.asarray(a, dtype) if np.asarray(a).dtype.kind == "f" else jnp.asarray(a) for a in inputs
    ]

    def scalar(first):
        return jnp.sum(fn(first, *arrays[1:]))

    return fn, arrays, scalar


def _check(name, transformation, dtype, rtol):
    fn, arrays, f = _prepared(name, dtype)
    x = arrays[0]
    t = jnp.asarray(np.random.default_rng(1).normal(size=x.shape), dtype)
    close = functools.partial(np.testing.assert_allclose, rtol=rtol, atol=rtol)
    if transformation == "jit":
        close(jax.jit(f)(x), f(x))
    elif transformation == "grad":
        assert np.all(np.isfinite(jax.grad(f)(x)))
    elif transformation == "value_and_grad":
        value, grad = jax.value_and_grad(f)(x)
        close(value, f(x))
        close(grad, jax.grad(f)(x))
    elif transformation == "vmap_nested":
        stacked = [jnp.stack([jnp.stack([a, a]), jnp.stack([a, a])]) for a in arrays]
        batched = jax.vmap(jax.vmap(fn))(*stacked)
        close(batched, jnp.broadcast_to(fn(*arrays), batched.shape))
    elif transformation == "jvp":
        close(jax.jvp(f, (x,), (t,))[1], jnp.vdot(jax.grad(f)(x), t))
    elif transformation == "jacfwd":
        close(jax.jacfwd(f)(x), jax.grad(f)(x))
    elif transformation == "jacrev":
        out = fn(*arrays)
        jac = jax.jacrev(lambda a: fn(a, *arrays[1:]))(x)
        assert jac.shape == out.shape + x.shape
        close(jnp.tensordot(jnp.ones(out.shape, dtype), jac, axes=out.ndim), jax.grad(f)(x))
    elif transformation == "hessian":
        close(jax.hessian(f)(x), jax.jacrev(jax.jacrev(f))(x))
    elif transformation == "linearize":
        value, linear = jax.linearize(f, x)
        close(value, f(x))
        close(linear(t), jax.jvp(f, (x,), (t,))[1])
    elif transformation == "checkify":
        close(jaxloss.checked(f)(x), f(x))


# Each cell compiles several programs (the matrix takes ~3 minutes on 2 cores), so the default
# tier runs forward mode of the kernels with custom derivatives, where it broke first; --full
# runs every cell.
DEFAULT_TIER = {
    ("cross_entropy", "jvp"),
    ("cross_entropy_class_mask", "jvp"),
    ("binary_cross_entropy", "jvp"),
    ("linear_cross_entropy", "jvp"),
    ("linear_cross_entropy_none", "jvp"),
    ("linear_log_probs", "jvp"),
    ("linear_log_probs_head", "hessian"),
    ("linear_distillation_loss", "jvp"),
    ("ctc_loss", "jvp"),
    ("multiclass_sparsemax_loss", "jvp"),
}


@pytest.mark.parametrize(
    "name,transformation",
    [
        (n, t) if (n, t) in DEFAULT_TIER else pytest.param(n, t, marks=pytest.mark.slow)
        for n in CALLS
        for t in TRANSFORMATIONS
    ],
)
def test_native_function_under_transformation(name, transformation, full_tier):
    with jax.enable_x64(True):
        _check(name, transformation, jnp.float64, 1e-9)
    if full_tier:  # float32 too in --full (the default tier checks float64)
        _check(name, transformation, jnp.float32, 2e-4)


@pytest.mark.slow
@pytest.mark.parametrize("criterion", CRITERIA)
def test_compat_function_forward_mode_matches_reverse_mode(criterion):
    """The compat layer (torch's signatures) in forward mode, on a parity case, in float64."""
    with jax.enable_x64(True):
        case = cases(criterion, seed=2, dtypes=("float64",), regimes=("normal",))[0]
        call, primals = jaxloss_function(case)

        def f(first):
            return jnp.sum(call(first, *primals[1:]))

        t = jnp.asarray(np.random.default_rng(3).normal(size=primals[0].shape))
        np.testing.assert_allclose(
            jax.jvp(f, (primals[0],), (t,))[1],
            jnp.vdot(jax.grad(f)(primals[0]), t),
            rtol=1e-9,
            atol=1e-12,
        )
        np.testing.assert_allclose(
            jax.jacfwd(f)(primals[0]), jax.grad(f)(primals[0]), rtol=1e-9, atol=1e-12
        )


# ------------------------------------------------- jit, vmap and 16-bit inputs, per criterion

# The default tier (bound by compile time) runs these checks on the criteria
# with their own kernels or custom derivatives, and one of each simpler kind; --full on all.
CRITERIA_DEFAULT_TIER = {
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
        if name_of(p) in CRITERIA_DEFAULT_TIER
        else pytest.param(*p if isinstance(p, tuple) else (p,), marks=pytest.mark.slow)
        for p in params
    ]


@pytest.mark.parametrize("criterion", _tiered(sorted(CRITERIA)))
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
        if c[0] == "ctc_loss" or c[0] not in CRITERIA_DEFAULT_TIER
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
