"""Every custom derivative at its special points.

jaxloss gives many losses derivatives of its own (`with_partials`' closed-form partials, the
softmax cross-entropy kernel's and the chunked head's custom JVPs, the per-token statistics'
and the fused distillation's, the focal loss's
log(1 - p_t), the label pick, sparsemax, the margin losses). A custom derivative can be right
almost everywhere and wrong at the one point training hits on purpose (a zero-initialised head
puts every logit at 0). Here each is checked at 0, ±1, the saturation points (±50, ±1000) and
its ties and boundaries:

- smooth points: the gradient against autodiff of a plain formula (no custom derivative) and
  against a central finite difference, in float64; the Hessian against the plain formula's;
- kinks and ties (a margin met exactly, |x - t| = δ): the gradient torch gives there, since
  jaxloss follows torch's convention at a kink;
- saturation: finite, and equal to the plain formula's where that is finite.

One test id per (function, point). The default tier runs 0, the ties and the kinks; --full
adds ±1 and the saturation points.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import jaxloss

pytestmark = pytest.mark.usefixtures("x64")

SMOOTH = [0.0, 1.0, -1.0]
SATURATED = [50.0, -50.0, 1000.0, -1000.0]


def _points(values):
    """0 in the default tier (a zero-initialised head's point); the rest in --full."""
    return [pytest.param(v, id=f"x={v:g}", marks=[pytest.mark.slow] if v else []) for v in values]


def _check(ours, plain, z, *, hessian=True, finite_difference=True):
    """Gradient (and Hessian) of `ours` at `z` against the plain formula's, and the gradient
    against a central difference of `ours`."""
    # Jitted: one compiled program per derivative, where eager transformations compile
    # every primitive they meet on its own (several times slower here).
    z = jnp.asarray(z, jnp.float64)
    grad = jax.jit(jax.grad(ours))(z)
    assert np.all(np.isfinite(grad)), grad
    expected = jax.jit(jax.grad(plain))(z)
    if np.all(np.isfinite(expected)):
        np.testing.assert_allclose(grad, expected, rtol=1e-9, atol=1e-12)
    if finite_difference and np.all(np.abs(z) < 50):
        h = 1e-6
        at = jax.jit(ours)
        central = [
            (at(z + h * e) - at(z - h * e)) / (2 * h) for e in np.eye(z.size).reshape(-1, *z.shape)
        ]
        np.testing.assert_allclose(grad.reshape(-1), central, rtol=1e-6, atol=1e-8)
    if hessian:
        ours_h = jax.jit(jax.hessian(ours))(z)
        assert np.all(np.isfinite(ours_h)), ours_h
        plain_h = jax.jit(jax.hessian(plain))(z)
        if np.all(np.isfinite(plain_h)):
            np.testing.assert_allclose(ours_h, plain_h, rtol=1e-8, atol=1e-12)


# ------------------------------------------------------- pointwise losses with closed-form partials


@pytest.mark.parametrize("x", _points(SMOOTH + SATURATED))
def test_bce_with_logits_and_pos_weight(x):
    """(1 - y)·x + w·softplus(-x) in (x, y, w): with_partials' partials, mixed ones included."""

    def ours(z):
        return jaxloss.binary_cross_entropy_with_logits(
            z[0], z[1], pos_weight=z[2], reduction="sum"
        )

    def plain(z):  # torch's: the positive term weighted by 1 + (pos_weight - 1)·y
        return (1 - z[1]) * z[0] + (1 + (z[2] - 1) * z[1]) * jax.nn.softplus(-z[0])

    _check(ours, plain, [x, 0.3, 2.0])


@pytest.mark.parametrize("x", _points(SMOOTH + SATURATED))
def test_bce_with_logits(x):
    def ours(z):
        return jaxloss.binary_cross_entropy_with_logits(z[0], z[1], reduction="sum")

    def plain(z):
        return (1 - z[1]) * z[0] + jax.nn.softplus(-z[0])

    _check(ours, plain, [x, 0.3])


@pytest.mark.parametrize("y", [1.0, -1.0])
@pytest.mark.parametrize("x", _points(SMOOTH + SATURATED))
def test_soft_margin(x, y):
    def ours(z):
        return jaxloss.soft_margin_loss(z[0], jnp.asarray(y), reduction="sum")

    def plain(z):
        return jax.nn.softplus(-y * z[0])

    _check(ours, plain, [x])


@pytest.mark.parametrize("x", _points(SMOOTH + [50.0, -50.0]))
def test_kl_div(x):
    def ours(z):
        return jaxloss.kl_div(z[0], z[1], reduction="sum")

    def plain(z):
        return z[1] * (jnp.log(z[1]) - z[0])

    _check(ours, plain, [x, 0.3])


@pytest.mark.parametrize("d", _points(SMOOTH + SATURATED))
def test_mse(d):
    def ours(z):
        return jaxloss.mse_loss(z[0], z[1], reduction="sum")

    def plain(z):
        return (z[0] - z[1]) ** 2

    _check(ours, plain, [0.25 + d, 0.25])


@pytest.mark.parametrize("d", _points([1.0, -1.0, 50.0, -1000.0]))
def test_l1_off_its_kink(d):
    def ours(z):
        return jaxloss.l1_loss(z[0], z[1], reduction="sum")

    def plain(z):
        return jnp.abs(z[0] - z[1])

    _check(ours, plain, [0.25 + d, 0.25])


@pytest.mark.parametrize(
    "x",
    [pytest.param(-2.0, id="x=-2")]  # beyond the threshold, in the default tier beside 0
    + _points(SMOOTH + [0.5] + SATURATED),
)
@pytest.mark.parametrize("name", ["huber_loss", "smooth_l1_loss"])
def test_huber_and_smooth_l1_in_x_t_and_the_threshold(name, x):
    """Huber's and smooth L1's partials (torch's backward) in x, t and a traced δ (β), and
    their own derivatives, against autodiff of the two-branch formula; 0.8 is the threshold,
    so x = ±1 and 0.5 sit on either side of it."""
    option = "delta" if name == "huber_loss" else "beta"

    def ours(z):
        return getattr(jaxloss, name)(z[0], z[1], reduction="sum", **{option: z[2]})

    def plain(z):
        d, threshold = z[0] - z[1], z[2]
        inside = 0.5 * d * d
        if name == "huber_loss":
            return jnp.where(
                jnp.abs(d) < threshold, inside, threshold * (jnp.abs(d) - 0.5 * threshold)
            )
        return jnp.where(jnp.abs(d) < threshold, inside / threshold, jnp.abs(d) - 0.5 * threshold)

    _check(ours, plain, [x, 0.0, 0.8])


@pytest.mark.parametrize("x", _points([0.0, 1.0, -1.0, 50.0, -1000.0]))
def test_poisson_of_log_rates(x):
    def ours(z):
        return jaxloss.poisson_nll_loss(z[0], z[1], reduction="sum")

    def plain(z):
        return jnp.exp(z[0]) - z[1] * z[0]

    _check(ours, plain, [x, 3.0])


@pytest.mark.parametrize("x", _points([0.0, 1.0, 50.0, 1000.0]))
def test_poisson_of_rates(x):
    def ours(z):
        return jaxloss.poisson_nll_loss(z[0], z[1], log_input=False, reduction="sum")

    def plain(z):
        return z[0] - z[1] * jnp.log(z[0] + 1e-8)

    # rates are >= 0: no central difference across the domain's edge at 0
    _check(ours, plain, [x, 3.0], finite_difference=x > 0)


@pytest.mark.parametrize("x", _points(SMOOTH + [50.0, -50.0]))
def test_gaussian_nll(x):
    def ours(z):
        return jaxloss.gaussian_nll_loss(z[0], z[1], z[2], reduction="sum")

    def plain(z):
        return 0.5 * (jnp.log(z[2]) + (z[0] - z[1]) ** 2 / z[2])

    _check(ours, plain, [x, 0.5, 0.7])


@pytest.mark.parametrize("p", [0.5, 0.1, 0.9, 1e-6, 1 - 1e-6])
def test_bce_on_probabilities(p):
    def ours(z):
        return jaxloss.binary_cross_entropy(z[0], z[1], reduction="sum")

    def plain(z):
        return -(z[1] * jnp.log(z[0]) + (1 - z[1]) * jnp.log1p(-z[0]))

    # torch's (p - y)/max(p(1 - p), 1e-12) is the formula's derivative away from 0 and 1; its
    # second derivative is not the formula's (the clamp), so only the gradient is compared
    _check(ours, plain, [p, 0.3], hessian=False, finite_difference=p not in (1e-6, 1 - 1e-6))


# ----------------------------------------------------------------------------- the focal loss


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
@pytest.mark.parametrize("t", [0.0, 1.0, 0.3])
@pytest.mark.parametrize("x", _points(SMOOTH + SATURATED))
def test_sigmoid_focal(x, t, gamma):
    """log(1 - p_t)'s custom JVP and the BCE's softplus pair; the plain formula's own Hessian
    is nan where 1 - p_t underflows, so saturation is compared with optax's, which is finite."""
    import optax

    def ours(z):
        return jaxloss.sigmoid_focal_loss(z[0], z[1], alpha=None, gamma=gamma, reduction="sum")

    def plain(z):
        x, t = z[0], z[1]
        bce = t * jax.nn.softplus(-x) + (1 - t) * jax.nn.softplus(x)
        return (t * jax.nn.sigmoid(-x) + (1 - t) * jax.nn.sigmoid(x)) ** gamma * bce

    if abs(x) < 50:
        # a target of 0 or 1 is the edge of [0, 1]: no central difference across it
        _check(ours, plain, [x, t], finite_difference=t == 0.3)
        return
    # in the logit, the targets constant (as data are): ∂/∂t itself overflows out here
    # ((σ(-x) - σ(x))/(1 - p_t) ~ e^{|x|}), and a zero tangent times it would be nan
    x, t = jnp.float64(x), jnp.float64(t)

    def ours_x(x):
        return jaxloss.sigmoid_focal_loss(x, t, alpha=None, gamma=gamma, reduction="sum")

    def theirs(x):
        return jnp.sum(optax.losses.sigmoid_focal_loss(x, t, alpha=None, gamma=gamma))

    grad, hessian = jax.grad(ours_x)(x), jax.hessian(ours_x)(x)
    assert np.isfinite(grad) and np.isfinite(hessian)
    # out here both are rounding-sized (a few ulps of the O(1) terms they cancel from)
    np.testing.assert_allclose(grad, jax.grad(theirs)(x), rtol=1e-9, atol=1e-14)
    np.testing.assert_allclose(hessian, jax.hessian(theirs)(x), rtol=1e-9, atol=1e-14)


# ------------------------------------------------------------------ the softmax kernels


LOGIT_POINTS = {
    "zeros (a zero-initialised head)": [0.0, 0.0, 0.0],
    "ones": [1.0, -1.0, 0.0],
    "tie at the top": [1.0, 1.0, -1.0],
    "saturated 50": [50.0, -50.0, 0.0],
    "saturated 1000": [1000.0, 0.0, -1000.0],
}


def _logit_points():
    return [
        pytest.param(v, id=k, marks=[] if k.startswith(("zeros", "tie")) else [pytest.mark.slow])
        for k, v in LOGIT_POINTS.items()
    ]


CLASS_WEIGHTS = jnp.array([0.5, 2.0, 1.0])


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("logits", _logit_points())
def test_cross_entropy_kernel(logits, smoothing):
    """The rows kernel's custom JVP (closed-form weights and smoothing) against the textbook
    formula on log_softmax, label 1."""

    def ours(z):
        return jaxloss.cross_entropy(
            z[None], jnp.array([1]), class_weights=CLASS_WEIGHTS, label_smoothing=smoothing
        )

    def plain(z):
        log_p = jax.nn.log_softmax(z)
        q = (1 - smoothing) * jax.nn.one_hot(1, 3) + smoothing / 3
        return -jnp.sum(CLASS_WEIGHTS * q * log_p) / CLASS_WEIGHTS[1]

    _check(ours, plain, logits)


@pytest.mark.parametrize("logits", _logit_points())
def test_nll_label_pick(logits):
    """pick_with_dense_gradient's custom JVP: the gradient of a gather, a zero Hessian."""

    def ours(z):
        return jaxloss.nll_loss(z[None], jnp.array([2]), class_weights=CLASS_WEIGHTS)

    def plain(z):
        return -z[2]

    _check(ours, plain, logits)


@pytest.mark.parametrize("logits", _logit_points())
def test_linear_cross_entropy_chunked_head(logits):
    """The chunked head's custom JVP (both the summed and the per-row forms) against
    cross_entropy of the materialised logits, with hidden states that give these logits."""
    w = jnp.eye(3)

    def ours(z):
        summed = jaxloss.linear_cross_entropy(z[None], w, jnp.array([1]), label_smoothing=0.1)
        rows = jaxloss.linear_cross_entropy(z[None], w, jnp.array([0]), reduction="none")
        return summed + 0.5 * jnp.sum(rows)

    def plain(z):
        log_p = jax.nn.log_softmax(z)
        q = 0.9 * jax.nn.one_hot(1, 3) + 0.1 / 3
        return -jnp.sum(q * log_p) - 0.5 * log_p[0]

    _check(ours, plain, logits)


@pytest.mark.parametrize("logits", _logit_points())
def test_token_statistics_logits_and_head(logits):
    """The per-token statistics' custom JVPs (from logits and from the chunked head): the
    log-probability, the entropy and the logsumexp, each with its own cotangent."""
    w = jnp.eye(3)

    def combined(stats):
        return stats.log_probs[0] + 0.7 * stats.entropy[0] - 0.3 * stats.logsumexp[0]

    def ours(z):
        options = dict(with_entropy=True, with_logsumexp=True)
        from_logits = jaxloss.token_log_probs(z[None], jnp.array([1]), **options)
        from_head = jaxloss.linear_log_probs(z[None], w, jnp.array([2]), **options)
        return combined(from_logits) + 0.5 * combined(from_head)

    def plain(z):
        log_p = jax.nn.log_softmax(z)
        entropy = -jnp.sum(jnp.exp(log_p) * log_p)
        lse = jax.nn.logsumexp(z)
        return (log_p[1] + 0.7 * entropy - 0.3 * lse) + 0.5 * (log_p[2] + 0.7 * entropy - 0.3 * lse)

    _check(ours, plain, logits)


@pytest.mark.parametrize("logits", _logit_points())
def test_fused_distillation_summed_and_per_row(logits):
    """The fused distillation's summed custom JVP ('mean') and its per-row walk ('none'), with
    a hard-label term, against the JSD and the cross-entropy of the logits."""
    w = jnp.eye(3)
    teacher = jnp.array([[0.5, -0.2, 0.1]])

    def ours(z):
        options = dict(beta=0.3, weight_hard=0.4, stop_teacher_gradient=False)
        mean = jaxloss.linear_distillation_loss(z[None], w, teacher, w, jnp.array([1]), **options)
        rows = jaxloss.linear_distillation_loss(
            z[None], w, teacher, w, jnp.array([0]), reduction="none", **options
        )
        return mean + 0.5 * jnp.sum(rows)

    def plain(z):
        log_s, log_t = jax.nn.log_softmax(z), jax.nn.log_softmax(teacher[0])
        log_m = jnp.logaddexp(log_s + jnp.log(0.7), log_t + jnp.log(0.3))
        jsd = 0.3 * jnp.sum(jnp.exp(log_t) * (log_t - log_m)) + 0.7 * jnp.sum(
            jnp.exp(log_s) * (log_s - log_m)
        )
        return (jsd - 0.4 * log_s[1]) + 0.5 * (jsd - 0.4 * log_s[0])

    _check(ours, plain, logits)


@pytest.mark.parametrize("logits", _logit_points())
def test_sparsemax_loss(logits):
    """_sparsemax_fy's custom JVP: gradient sparsemax(s) - t; ties between the top scores
    and at the support's edge included."""

    def ours(z):
        return jaxloss.multiclass_sparsemax_loss(z[None], jnp.array([1]), reduction="sum")

    def plain(z):
        p = jaxloss.sparsemax(jax.lax.stop_gradient(z))
        t = jax.nn.one_hot(1, 3)
        return jnp.sum(p * z - 0.5 * p * p) - jnp.sum(t * z) + 0.5

    # every special point of sparsemax is a tie or the support's edge, where a central
    # difference averages two one-sided derivatives: the plain formula's is the check
    _check(ours, plain, logits, hessian=False, finite_difference=False)


# -------------------------------------------------------- kinks and ties: torch's gradient


def _torch_grad(name, inputs, **kwargs):
    tensors = [
        torch.tensor(a, dtype=torch.float64, requires_grad=i == 0) for i, a in enumerate(inputs)
    ]
    if name in ("multilabel_margin_loss", "multi_margin_loss"):
        tensors[1] = torch.tensor(inputs[1])
    out = getattr(torch.nn.functional, name)(*tensors, **kwargs)
    out.sum().backward()
    return tensors[0].grad.numpy()


KINKS = [
    ("l1_loss", ([0.5, 1.0, -2.0], [0.5, 0.0, -2.0]), {}),
    ("huber_loss", ([1.5, 0.5, -0.5, 2.0], [0.5, 0.5, 0.5, 0.0]), {"delta": 1.0}),
    ("smooth_l1_loss", ([1.5, 0.5, -0.5, 2.0], [0.5, 0.5, 0.5, 0.0]), {"beta": 1.0}),
    ("hinge_embedding_loss", ([1.0, 0.5, 0.0], [-1.0, -1.0, 1.0]), {"margin": 1.0}),
    ("soft_margin_loss", ([0.0, 0.0], [1.0, -1.0]), {}),
    ("multi_margin_loss", ([[1.0, 0.0, 0.5], [0.0, 0.0, 0.0]], [0, 2]), {}),
    ("multilabel_margin_loss", ([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]], [[0, -1, -1], [1, 2, -1]]), {}),
]


@pytest.mark.parametrize("name, inputs, options", KINKS, ids=[f"{k[0]}-at-its-kink" for k in KINKS])
def test_gradient_at_a_kink_or_tie_is_torch_s(name, inputs, options):
    """At a margin met exactly (or |x - t| = δ) the derivative has no single value; jaxloss
    gives torch's, through the compat layer and the native function it maps onto."""
    from jaxloss.compat import functional as F

    first = np.asarray(inputs[0], np.float64)
    rest = [np.asarray(a) for a in inputs[1:]]

    def ours(x):
        return jnp.sum(getattr(F, name)(x, *rest, **options))

    grad = jax.grad(ours)(jnp.asarray(first))
    np.testing.assert_allclose(grad, _torch_grad(name, [first, *rest], **options), rtol=1e-12)


@pytest.mark.parametrize("name, option", [("huber_loss", "delta"), ("smooth_l1_loss", "beta")])
def test_second_derivative_of_huber_and_smooth_l1_at_the_kink_is_torch_s(name, option):
    """torch's double backward: 1 (Huber) or 1/β (smooth L1) where |x - t| < δ, 0 from it
    on, |x - t| = δ included; jaxloss's partials differentiate to the same Hessian."""
    threshold = 1.0 if name == "huber_loss" else 0.5
    t = np.array([0.5, 0.5, 0.5, 0.0, 0.0])
    x = t + threshold * np.array([1.0, 0.0, -1.0, 4.0, 0.75])  # |x - t| = δ at the first, third
    options = {option: threshold}
    hessian = jax.jit(
        jax.hessian(lambda a: getattr(jaxloss, name)(a, jnp.asarray(t), reduction="sum", **options))
    )(jnp.asarray(x))
    leaf = torch.tensor(x, requires_grad=True)
    loss = getattr(torch.nn.functional, name)(leaf, torch.tensor(t), reduction="sum", **options)
    (grad,) = torch.autograd.grad(loss, leaf, create_graph=True)
    rows = [torch.autograd.grad(grad[i], leaf, retain_graph=True)[0] for i in range(len(x))]
    np.testing.assert_allclose(hessian, torch.stack(rows).numpy(), rtol=1e-12)


def test_margin_ranking_at_its_kink_is_torch_s():
    from jaxloss.compat import functional as F

    x1 = np.array([1.0, 0.0, 2.0])
    x2 = np.array([1.0, 1.0, 1.0])
    y = np.array([1.0, -1.0, -1.0])  # the first and the third meet their margin exactly
    grad = jax.grad(lambda a: jnp.sum(F.margin_ranking_loss(a, x2, y, margin=1.0)))(x1)
    t1 = torch.tensor(x1, requires_grad=True)
    torch.nn.functional.margin_ranking_loss(
        t1, torch.tensor(x2), torch.tensor(y), margin=1.0, reduction="mean"
    ).sum().backward()
    np.testing.assert_allclose(grad, t1.grad.numpy(), rtol=1e-12)


def test_ctc_at_uniform_logits_equals_the_log_space_recursion():
    """CTC's custom JVP (the mantissa-and-exponent recursion) at all-zero logits, where every
    alignment ties, against optax's log-space CTC by autodiff."""
    import optax

    logits = jnp.zeros((1, 6, 4))
    labels = jnp.array([[1, 2, 2]])

    def ours(x):
        return jnp.sum(jaxloss.ctc_loss(x, labels, reduction="sum"))

    def plain(x):
        return jnp.sum(optax.ctc_loss(x, jnp.zeros((1, 6)), labels, jnp.zeros((1, 3))))

    np.testing.assert_allclose(ours(logits), plain(logits), rtol=1e-12)
    np.testing.assert_allclose(
        jax.grad(ours)(logits), jax.grad(plain)(logits), rtol=1e-9, atol=1e-12
    )
