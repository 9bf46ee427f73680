"""The IoU family: the papers' losses against NumPy references written from their formulas
(values, and gradients against central differences of the references), the identities the
papers state, finite gradients on every degenerate layout, box formats, masks, reductions and
errors. torchvision parity (GIoU, DIoU, CIoU, the pairwise IoUs, the focal loss) is in the
parity suite (tests/test_parity.py); integer boxes against torchvision are here."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxloss
from jaxloss.compat import torchvision as tv_compat

pytestmark = pytest.mark.usefixtures("x64")
EPS = 1e-7


# ----------------------------------------------------------------------------- references


def _geometry(p, t):
    x1, y1, x2, y2 = (p[..., i] for i in range(4))
    g1, h1, g2, h2 = (t[..., i] for i in range(4))
    iw = np.minimum(x2, g2) - np.maximum(x1, g1)
    ih = np.minimum(y2, h2) - np.maximum(y1, h1)
    inter = np.where((iw > 0) & (ih > 0), iw * ih, 0.0)
    w, h, wg, hg = x2 - x1, y2 - y1, g2 - g1, h2 - h1
    union = w * h + wg * hg - inter
    cw = np.maximum(x2, g2) - np.minimum(x1, g1)
    ch = np.maximum(y2, h2) - np.minimum(y1, h1)
    dx = (x1 + x2) / 2 - (g1 + g2) / 2
    dy = (y1 + y2) / 2 - (h1 + h2) / 2
    return dict(
        iou=inter / (union + EPS), union=union, w=w, h=h, wg=wg, hg=hg, cw=cw, ch=ch, dx=dx, dy=dy
    )


def ref_iou(p, t, mode="linear"):
    g = _geometry(p, t)
    return 1 - g["iou"] if mode == "linear" else -np.log(g["iou"] + EPS)


def ref_giou(p, t):
    g = _geometry(p, t)
    c = g["cw"] * g["ch"]
    return 1 - g["iou"] + (c - g["union"]) / (c + EPS)


def _rho(g):
    return (g["dx"] ** 2 + g["dy"] ** 2) / (g["cw"] ** 2 + g["ch"] ** 2 + EPS)


def ref_diou(p, t):
    g = _geometry(p, t)
    return 1 - g["iou"] + _rho(g)


def _v(g):
    return (
        4
        / math.pi**2
        * (np.arctan(g["wg"] / (g["hg"] + EPS)) - np.arctan(g["w"] / (g["h"] + EPS))) ** 2
    )


def ref_ciou(p, t):
    g = _geometry(p, t)
    v = _v(g)
    return 1 - g["iou"] + _rho(g) + v / (1 - g["iou"] + v + EPS) * v


def ref_eiou(p, t):
    g = _geometry(p, t)
    return (
        1
        - g["iou"]
        + _rho(g)
        + (g["w"] - g["wg"]) ** 2 / (g["cw"] ** 2 + EPS)
        + (g["h"] - g["hg"]) ** 2 / (g["ch"] ** 2 + EPS)
    )


def ref_focal_eiou(p, t, gamma=0.5):
    return _geometry(p, t)["iou"] ** gamma * ref_eiou(p, t)


def ref_alpha_iou(p, t, alpha=3.0, base="iou"):
    g = _geometry(p, t)
    loss = 1 - g["iou"] ** alpha
    if base == "giou":
        c = g["cw"] * g["ch"]
        loss = loss + ((c - g["union"]) / (c + EPS)) ** alpha
    if base in ("diou", "ciou"):
        loss = loss + _rho(g) ** alpha
    if base == "ciou":
        v = _v(g)
        loss = loss + (v / (1 - g["iou"] + v + EPS) * v) ** alpha
    return loss


def ref_siou(p, t, theta=4.0):
    """Written with the paper's arcsin form of the angle cost."""
    g = _geometry(p, t)
    sigma = np.sqrt(g["dx"] ** 2 + g["dy"] ** 2)
    x = np.abs(g["dy"]) / np.where(sigma > 0, sigma, 1.0)
    angle = np.where(sigma > 0, 1 - 2 * np.sin(np.arcsin(np.clip(x, 0, 1)) - math.pi / 4) ** 2, 0)
    gamma = 2 - angle
    rho_x = (g["dx"] / (g["cw"] + EPS)) ** 2
    rho_y = (g["dy"] / (g["ch"] + EPS)) ** 2
    distance = (1 - np.exp(-gamma * rho_x)) + (1 - np.exp(-gamma * rho_y))
    omega_w = np.abs(g["w"] - g["wg"]) / (np.maximum(g["w"], g["wg"]) + EPS)
    omega_h = np.abs(g["h"] - g["hg"]) / (np.maximum(g["h"], g["hg"]) + EPS)
    shape = (1 - np.exp(-omega_w)) ** theta + (1 - np.exp(-omega_h)) ** theta
    return 1 - g["iou"] + (distance + shape) / 2


def ref_wise(p, t, mean, version=3, momentum=0.01, gamma=0.5, alpha=1.9, delta=3.0):
    """Returns (per-box loss, new mean)."""
    g = _geometry(p, t)
    l_iou = 1 - g["iou"]
    new_mean = (1 - momentum) * mean + momentum * l_iou.mean()
    r = np.exp((g["dx"] ** 2 + g["dy"] ** 2) / (g["cw"] ** 2 + g["ch"] ** 2 + EPS))
    loss = r * l_iou
    beta = l_iou / new_mean
    if version == 2:
        loss = beta**gamma * loss
    elif version == 3:
        loss = beta / (delta * alpha ** (beta - delta)) * loss
    return loss, new_mean


def _boxes(rng, n, spread=4.0):
    corner = rng.uniform(0, 10, (n, 2))
    return np.concatenate([corner, corner + rng.uniform(0.5, spread, (n, 2))], 1)


def _draw(seed=0, n=7):
    rng = np.random.default_rng(seed)
    target = _boxes(rng, n)
    prediction = target + rng.normal(0, 1.0, (n, 4))
    prediction[:, 2:] = np.maximum(prediction[:, 2:], prediction[:, :2] + 0.1)
    return prediction, target


# (native call with reduction='none', NumPy reference)
LOSSES = {
    "iou_linear": (lambda p, t: jaxloss.iou_loss(p, t, reduction="none"), ref_iou),
    "iou_log": (
        lambda p, t: jaxloss.iou_loss(p, t, mode="log", reduction="none"),
        lambda p, t: ref_iou(p, t, "log"),
    ),
    "giou": (lambda p, t: jaxloss.generalized_box_iou_loss(p, t, reduction="none"), ref_giou),
    "diou": (lambda p, t: jaxloss.distance_box_iou_loss(p, t, reduction="none"), ref_diou),
    "ciou": (lambda p, t: jaxloss.complete_box_iou_loss(p, t, reduction="none"), ref_ciou),
    "eiou": (lambda p, t: jaxloss.eiou_loss(p, t, reduction="none"), ref_eiou),
    "focal_eiou": (lambda p, t: jaxloss.focal_eiou_loss(p, t, reduction="none"), ref_focal_eiou),
    "siou": (lambda p, t: jaxloss.siou_loss(p, t, reduction="none"), ref_siou),
    "siou_theta2": (
        lambda p, t: jaxloss.siou_loss(p, t, theta=2.0, reduction="none"),
        lambda p, t: ref_siou(p, t, 2.0),
    ),
    **{
        f"alpha_{base}": (
            lambda p, t, base=base: jaxloss.alpha_iou_loss(p, t, base=base, reduction="none"),
            lambda p, t, base=base: ref_alpha_iou(p, t, 3.0, base),
        )
        for base in ("iou", "giou", "diou", "ciou")
    },
    "alpha_diou_half": (
        lambda p, t: jaxloss.alpha_iou_loss(p, t, alpha=0.5, base="diou", reduction="none"),
        lambda p, t: ref_alpha_iou(p, t, 0.5, "diou"),
    ),
    **{
        f"wise_v{v}": (
            lambda p, t, v=v: jaxloss.wise_iou_loss(p, t, 0.7, version=v, reduction="none")[0],
            lambda p, t, v=v: ref_wise(p, t, 0.7, version=v)[0],
        )
        for v in (1, 2, 3)
    },
}

# The (detached) quantities the native functions take without gradient, where a reference
# written in NumPy differentiates everything: CIoU's α and Wise-IoU's R denominator and focus.
NO_GRADIENT_CHECK = {"ciou", "alpha_ciou", "wise_v1", "wise_v2", "wise_v3"}
# Compiled once per loss (op-by-op dispatch compiles every primitive of every new shape).
LOSSES = {name: (jax.jit(ours), reference) for name, (ours, reference) in LOSSES.items()}


# SIoU's angle cost is written 2|dx dy| / (dx² + dy² + eps) and the reference in the paper's
# arcsin form without eps: they agree to eps / (dx² + dy²).
RTOL = {"siou": 1e-7, "siou_theta2": 1e-7}


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_values_match_the_formula_reference(name):
    ours, reference = LOSSES[name]
    for seed in range(3):
        p, t = _draw(seed)
        np.testing.assert_allclose(
            np.asarray(ours(p, t)), reference(p, t), rtol=RTOL.get(name, 1e-10), atol=1e-12
        )
        # float32 within a few roundings of the float64 reference
        got = np.asarray(ours(p.astype(np.float32), t.astype(np.float32)))
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, reference(p, t), rtol=2e-5, atol=2e-6)


# Each cell compiles its loss's gradient; the default tier checks one loss of each kind.
DEFAULT_GRADIENT_CHECKS = {"giou", "eiou", "siou", "alpha_diou_half", "focal_eiou"}


def _tiered(names, default):
    return [n if n in default else pytest.param(n, marks=pytest.mark.slow) for n in sorted(names)]


@pytest.mark.parametrize("name", _tiered(set(LOSSES) - NO_GRADIENT_CHECK, DEFAULT_GRADIENT_CHECKS))
def test_gradients_match_central_differences_of_the_reference(name):
    ours, reference = LOSSES[name]
    p, t = _draw(5)
    weights = np.random.default_rng(1).uniform(0.5, 1.5, len(p))
    grad = np.asarray(jax.jit(jax.grad(lambda p: jnp.sum(ours(p, t) * weights)))(p))
    numeric = np.zeros_like(p)
    step = 1e-6
    for index in np.ndindex(p.shape):
        up, down = p.copy(), p.copy()
        up[index] += step
        down[index] -= step
        numeric[index] = np.sum((reference(up, t) - reference(down, t)) * weights) / (2 * step)
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-6)


def test_detached_factors_have_no_gradient():
    """CIoU's α (paper and torchvision) and Wise-IoU's R denominator and focusing factors
    (paper) are constants to the gradient: checked against references that freeze them."""
    p, t = _draw(3)
    g0 = _geometry(p, t)
    v0 = _v(g0)
    alpha0 = v0 / (1 - g0["iou"] + v0 + EPS)
    diagonal0 = g0["cw"] ** 2 + g0["ch"] ** 2 + EPS
    l_iou0 = 1 - g0["iou"]
    mean0 = (1 - 0.01) * 0.7 + 0.01 * l_iou0.mean()
    beta0 = l_iou0 / mean0
    frozen = {
        "ciou": lambda q: ref_diou(q, t) + alpha0 * _v(_geometry(q, t)),
        "wise_v1": lambda q: (
            np.exp((_geometry(q, t)["dx"] ** 2 + _geometry(q, t)["dy"] ** 2) / diagonal0)
            * (1 - _geometry(q, t)["iou"])
        ),
    }
    frozen["wise_v3"] = lambda q: beta0 / (3.0 * 1.9 ** (beta0 - 3.0)) * frozen["wise_v1"](q)
    for name, reference in frozen.items():
        ours = LOSSES[name][0]
        grad = np.asarray(jax.grad(lambda q, ours=ours: jnp.sum(ours(q, t)))(jnp.asarray(p)))
        numeric = np.zeros_like(p)
        for index in np.ndindex(p.shape):
            up, down = p.copy(), p.copy()
            up[index] += 1e-6
            down[index] -= 1e-6
            numeric[index] = np.sum(reference(up) - reference(down)) / 2e-6
        np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-6, err_msg=name)


# ----------------------------------------------------------------------------- identities


def _degenerate_layouts():
    t = np.array([[1.0, 2.0, 4.0, 6.0]] * 6)
    p = np.array(
        [
            [1.0, 2.0, 4.0, 6.0],  # identical
            [2.0, 3.0, 3.0, 5.0],  # nested
            [4.0, 2.0, 7.0, 6.0],  # touching
            [9.0, 9.0, 10.0, 12.0],  # disjoint
            [2.0, 3.0, 2.0, 5.0],  # zero width
            [2.0, 3.0, 5.0, 3.0],  # zero height
        ]
    )
    return p, t


@pytest.mark.parametrize("name", _tiered(LOSSES, DEFAULT_GRADIENT_CHECKS | {"ciou", "wise_v3"}))
def test_prediction_equal_to_target_gives_zero_with_finite_gradients(name):
    ours, _ = LOSSES[name]
    _, t = _draw(2)
    loss = np.asarray(ours(t, t))
    np.testing.assert_allclose(loss, 0.0, atol=1e-6)
    grad = jax.grad(lambda p: jnp.sum(ours(p, t)))(jnp.asarray(t))
    assert np.all(np.isfinite(grad))


DEFAULT_DEGENERATE = {"giou", "ciou", "eiou", "siou", "alpha_diou_half", "wise_v3", "iou_log"}


@pytest.mark.parametrize("name", _tiered(LOSSES, DEFAULT_DEGENERATE))
def test_gradients_are_finite_on_degenerate_boxes(name, full_tier):
    ours, _ = LOSSES[name]

    @jax.jit
    def value_and_gradients(p, t):
        def total(p, t):
            return jnp.sum(ours(p, t))

        # against the layouts' targets, and with the boxes swapped (zero-size targets)
        return ours(p, t), jax.grad(total)(p, t), jax.grad(total, argnums=1)(t[::-1], p[::-1])

    p, t = _degenerate_layouts()
    for dtype in (np.float64, np.float32) if full_tier else (np.float64,):
        for result in value_and_gradients(p.astype(dtype), t.astype(dtype)):
            assert np.all(np.isfinite(result)), result


@pytest.mark.parametrize(
    "base,plain",
    [
        ("iou", jaxloss.iou_loss),
        ("giou", jaxloss.generalized_box_iou_loss),
        ("diou", jaxloss.distance_box_iou_loss),
        ("ciou", jaxloss.complete_box_iou_loss),
    ],
)
def test_alpha_one_is_the_base_loss(base, plain):
    p, t = _draw(4)
    np.testing.assert_allclose(
        jaxloss.alpha_iou_loss(p, t, alpha=1.0, base=base, reduction="none"),
        plain(p, t, reduction="none"),
        rtol=1e-12,
    )


def test_focal_eiou_with_gamma_zero_is_eiou_and_wise_v1_is_r_times_iou_loss():
    p, t = _draw(6)
    np.testing.assert_allclose(
        jaxloss.focal_eiou_loss(p, t, gamma=0.0, reduction="none"),
        jaxloss.eiou_loss(p, t, reduction="none"),
        rtol=1e-12,
    )
    g = _geometry(p, t)
    r = np.exp((g["dx"] ** 2 + g["dy"] ** 2) / (g["cw"] ** 2 + g["ch"] ** 2 + EPS))
    loss, _ = jaxloss.wise_iou_loss(p, t, version=1, reduction="none")
    np.testing.assert_allclose(loss, r * np.asarray(jaxloss.iou_loss(p, t, reduction="none")))


SYMMETRIC = ["iou_linear", "iou_log", "giou", "diou", "ciou", "eiou", "siou", "wise_v1"]


@pytest.mark.parametrize("name", SYMMETRIC)
def test_symmetric_losses_are_symmetric(name):
    ours, _ = LOSSES[name]
    p, t = _draw(7)
    np.testing.assert_allclose(ours(p, t), ours(t, p), rtol=1e-12, atol=1e-15)
    # mirrored about a vertical axis, the pair keeps its loss
    mirror = np.array([-1.0, 1.0, -1.0, 1.0])
    pm, tm = (p * mirror)[:, [2, 1, 0, 3]], (t * mirror)[:, [2, 1, 0, 3]]
    np.testing.assert_allclose(ours(pm, tm), ours(p, t), rtol=1e-10, atol=1e-13)


def test_siou_angle_cost_equals_the_papers_arcsin_form_and_distance_terms_are_bounded():
    p, t = _draw(8, n=50)
    np.testing.assert_allclose(jaxloss.siou_loss(p, t, reduction="none"), ref_siou(p, t))
    g = _geometry(p, t)
    # the paper's sign: each distance term 1 - exp(-(2 - Λ) ρ) lies in [0, 1)
    loss = np.asarray(jaxloss.siou_loss(p, t, reduction="none"))
    assert np.all(loss >= 1 - g["iou"] - 1e-12)
    assert np.all(loss < 1 - g["iou"] + 2.0)


def test_wise_iou_running_mean_is_pure_and_updates_as_the_authors_code():
    p, t = _draw(9)
    mean = 1.0
    step = jax.jit(lambda p, mean: jaxloss.wise_iou_loss(p, t, mean, momentum=0.1))
    for _ in range(3):
        loss, new_mean = step(p, mean)
        expected_loss, expected_mean = ref_wise(p, t, mean, version=3, momentum=0.1)
        np.testing.assert_allclose(new_mean, expected_mean, rtol=1e-12)
        np.testing.assert_allclose(loss, expected_loss.mean(), rtol=1e-12)
        mean = new_mean
    assert jax.grad(lambda m: jaxloss.wise_iou_loss(p, t, m)[0])(0.5) == 0.0  # no gradient
    # masked boxes take no part in the mean either
    where = np.arange(len(p)) < 3
    _, masked_mean = jaxloss.wise_iou_loss(p, t, 1.0, where=where, momentum=0.5)
    _, first_mean = jaxloss.wise_iou_loss(p[:3], t[:3], 1.0, momentum=0.5)
    np.testing.assert_allclose(masked_mean, first_mean, rtol=1e-12)


# ----------------------------------------------------------------------------- conventions


def _as_format(boxes, box_format):
    x1, y1, x2, y2 = boxes.T
    if box_format == "xywh":
        return np.stack([x1, y1, x2 - x1, y2 - y1], 1)
    if box_format == "cxcywh":
        return np.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], 1)
    return boxes


@pytest.mark.parametrize("box_format", ["xywh", "cxcywh"])
def test_box_formats_give_the_xyxy_values(box_format):
    p, t = _draw(10)
    pf, tf = _as_format(p, box_format), _as_format(t, box_format)
    for fn in (
        jaxloss.iou_loss,
        jaxloss.generalized_box_iou_loss,
        jaxloss.complete_box_iou_loss,
        jaxloss.eiou_loss,
        jaxloss.siou_loss,
        jaxloss.alpha_iou_loss,
    ):
        np.testing.assert_allclose(
            fn(pf, tf, box_format=box_format, reduction="none"),
            fn(p, t, reduction="none"),
            rtol=1e-10,
            atol=1e-12,
        )
    for fn in (jaxloss.box_iou, jaxloss.generalized_box_iou, jaxloss.complete_box_iou):
        np.testing.assert_allclose(
            fn(pf, tf, box_format=box_format), fn(p, t), rtol=1e-10, atol=1e-12
        )
    np.testing.assert_allclose(jaxloss.box_convert(pf, box_format, "xyxy"), p, atol=1e-12)
    np.testing.assert_allclose(jaxloss.box_convert(p, "xyxy", box_format), pf, atol=1e-12)
    np.testing.assert_allclose(jaxloss.box_area(pf, box_format=box_format), jaxloss.box_area(p))


def test_reductions_where_and_empty_inputs():
    p, t = _draw(11)
    per_box = np.asarray(jaxloss.eiou_loss(p, t, reduction="none"))
    np.testing.assert_allclose(jaxloss.eiou_loss(p, t), per_box.mean())
    np.testing.assert_allclose(jaxloss.eiou_loss(p, t, reduction="sum"), per_box.sum())
    where = np.arange(len(p)) % 2 == 0
    np.testing.assert_allclose(jaxloss.eiou_loss(p, t, where=where), per_box[where].mean())
    masked = np.asarray(jaxloss.eiou_loss(p, t, where=where, reduction="none"))
    np.testing.assert_array_equal(masked[~where], 0.0)
    # 'mean' of no boxes is 0 (torchvision's convention), with a zero gradient
    none = np.zeros(len(p), bool)
    assert float(jaxloss.eiou_loss(p, t, where=none)) == 0.0
    assert float(jaxloss.siou_loss(np.zeros((0, 4)), np.zeros((0, 4)))) == 0.0
    assert (
        float(tv_compat.generalized_box_iou_loss(np.zeros((0, 4)), np.zeros((0, 4)), "mean")) == 0
    )
    # batched boxes reduce over every leading axis
    batched = jaxloss.eiou_loss(p.reshape(1, -1, 4), t.reshape(1, -1, 4), reduction="none")
    assert batched.shape == (1, len(p))


def test_integer_boxes_are_upcast_as_torchvision_does():
    import torch

    from jaxloss.parity.references import torchvision_ops

    tv = torchvision_ops()
    rng = np.random.default_rng(12)
    a = rng.integers(0, 20, (5, 2))
    b = rng.integers(0, 20, (5, 2))
    p = np.concatenate([a, a + rng.integers(1, 9, (5, 2))], 1)
    t = np.concatenate([b, b + rng.integers(1, 9, (5, 2))], 1)
    for name in ("generalized_box_iou_loss", "distance_box_iou_loss", "complete_box_iou_loss"):
        theirs = getattr(tv, name)(torch.from_numpy(p), torch.from_numpy(t)).numpy()
        ours = np.asarray(getattr(tv_compat, name)(p, t))
        assert ours.dtype == theirs.dtype == np.float32, name
        np.testing.assert_allclose(ours, theirs, rtol=1e-6, err_msg=name)
    for name in ("box_iou", "generalized_box_iou", "distance_box_iou", "complete_box_iou"):
        theirs = getattr(tv, name)(torch.from_numpy(p), torch.from_numpy(t)).numpy()
        ours = np.asarray(getattr(tv_compat, name)(p, t))
        assert ours.dtype == theirs.dtype, name
        np.testing.assert_allclose(ours, theirs, rtol=1e-6, err_msg=name)


@pytest.mark.parametrize("dtype", ["int16", "uint8", "int32", "float16", "float32", "float64"])
def test_box_dtypes_compute_as_torchvision_does(dtype):
    """Integers narrower than 32 bits are widened and 16-bit floats computed in float32 before
    any product of coordinates (an int16 or float16 area of a 400x300 box overflows); the
    result dtypes are torchvision's. Unsigned boxes are the one deliberate difference:
    torchvision subtracts uint8 corners before widening them, so a disjoint pair wraps around
    (its IoU comes out -2.06); jaxloss widens first and matches torchvision on the same boxes
    as int32."""
    import torch

    from jaxloss.parity.references import torchvision_ops

    tv = torchvision_ops()
    p = np.array([[0, 0, 100, 100], [0, 0, 200, 150], [10, 20, 250, 240]]).astype(dtype)
    t = np.array([[200, 200, 250, 250], [0, 0, 200, 150], [30, 10, 240, 250]]).astype(dtype)
    reference = "int32" if dtype == "uint8" else dtype
    torch_p, torch_t = (torch.from_numpy(a.astype(reference)) for a in (p, t))
    for name in ("box_iou", "generalized_box_iou", "distance_box_iou", "complete_box_iou"):
        theirs = getattr(tv, name)(torch_p, torch_t).numpy()
        ours = np.asarray(getattr(tv_compat, name)(p, t))
        assert ours.dtype == theirs.dtype, (name, ours.dtype, theirs.dtype)
        np.testing.assert_allclose(ours, theirs, rtol=1e-6, err_msg=name)
    for name in ("generalized_box_iou_loss", "distance_box_iou_loss", "complete_box_iou_loss"):
        theirs = getattr(tv, name)(torch_p, torch_t).numpy()
        ours = np.asarray(getattr(tv_compat, name)(p, t))
        assert ours.dtype == theirs.dtype, (name, ours.dtype, theirs.dtype)
        np.testing.assert_allclose(ours, theirs, rtol=1e-6, err_msg=name)
    side = (250, 200) if dtype == "uint8" else (400, 300)  # an area past int16's, float16's max
    big = np.array([[0, 0, *side]]).astype(dtype)
    area = jaxloss.box_area(big)
    assert area.dtype == tv.box_area(torch.from_numpy(big.astype(reference))).numpy().dtype
    assert float(area[0]) == side[0] * side[1]
    np.testing.assert_allclose(jaxloss.box_iou(big, big), 1.0)


def test_pairwise_functions_take_leading_batch_axes():
    rng = np.random.default_rng(13)
    a, b = _boxes(rng, 6).reshape(2, 3, 4), _boxes(rng, 8).reshape(2, 4, 4)
    distance = jax.jit(jaxloss.distance_box_iou)
    out = distance(a, b)
    assert out.shape == (2, 3, 4)
    np.testing.assert_allclose(out[1], distance(a[1], b[1]))
    np.testing.assert_allclose(np.diagonal(jax.jit(jaxloss.box_iou)(a[0], a[0])), 1.0, rtol=1e-12)


@pytest.mark.parametrize(
    "call,words",
    [
        (lambda: jaxloss.iou_loss(np.zeros((2, 3)), np.zeros((2, 3))), ["predictions", "(..., 4)"]),
        (lambda: jaxloss.iou_loss(np.zeros((2, 4)), np.zeros((3, 4))), ["targets", "[3, 4]"]),
        (lambda: jaxloss.iou_loss(np.zeros((2, 4)), np.zeros((2, 4)), mode="sq"), ["mode"]),
        (
            lambda: jaxloss.eiou_loss(np.zeros((2, 4)), np.zeros((2, 4)), box_format="yxyx"),
            ["box_format", "cxcywh"],
        ),
        (lambda: jaxloss.siou_loss(np.zeros((2, 4)), np.zeros((2, 4)), theta=0), ["theta"]),
        (lambda: jaxloss.alpha_iou_loss(np.zeros((2, 4)), np.zeros((2, 4)), base="x"), ["base"]),
        (lambda: jaxloss.alpha_iou_loss(np.zeros((2, 4)), np.zeros((2, 4)), alpha=-1), ["alpha"]),
        (lambda: jaxloss.focal_eiou_loss(np.zeros((2, 4)), np.zeros((2, 4)), gamma=-1), ["gamma"]),
        (lambda: jaxloss.wise_iou_loss(np.zeros((2, 4)), np.zeros((2, 4)), version=4), ["version"]),
        (
            lambda: jaxloss.wise_iou_loss(np.zeros((2, 4)), np.zeros((2, 4)), momentum=1.5),
            ["momentum"],
        ),
        (
            lambda: jaxloss.wise_iou_loss(np.zeros((2, 4)), np.zeros((2, 4)), np.ones(2)),
            ["running_mean", "scalar"],
        ),
        (
            lambda: jaxloss.generalized_box_iou_loss(
                np.zeros((2, 4)), np.zeros((2, 4)), where=np.ones(3, bool)
            ),
            ["where"],
        ),
        (lambda: jaxloss.box_iou(np.zeros((2, 4)), np.zeros((3, 3))), ["boxes2", "(..., N, 4)"]),
        (lambda: jaxloss.box_iou(np.zeros((2, 2, 4)), np.zeros((3, 2, 4))), ["leading"]),
        (lambda: jaxloss.box_convert(np.zeros((2, 4)), "xyxy", "polar"), ["out_fmt"]),
        (lambda: tv_compat.sigmoid_focal_loss(np.zeros(2), np.zeros(2), alpha=2.0), ["alpha"]),
        (
            lambda: tv_compat.generalized_box_iou_loss(np.zeros((2, 4)), np.zeros((2, 4)), "avg"),
            ["reduction"],
        ),
    ],
)
def test_errors_name_the_argument(call, words):
    with pytest.raises((ValueError, TypeError)) as info:
        call()
    for word in words:
        assert word in str(info.value), f"{word!r} missing from: {info.value}"
