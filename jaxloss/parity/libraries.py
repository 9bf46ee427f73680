"""Comparisons of jaxloss with the other loss libraries: optax, Keras (JAX backend), MONAI
and segmentation_models_pytorch.

Each `Comparison` names one reference function and the jaxloss call that is its
counterpart, with the arguments mapped one to one, and draws its inputs from a seed. Values
and gradients (a vector-Jacobian product with a random positive cotangent, so elementwise
outputs are checked element by element) are compared in float32 and float64, on random inputs
and, where a library has a known failure, on the input that shows it (``expect``):

- ``"equal"``: both agree to the tolerance, nan for nan;
- ``"reference_not_finite"``: the reference gives nan or inf on this finite input, jaxloss
  a finite answer, and where the reference is finite the two agree.

The tests (``tests/test_libraries.py``) run every comparison; ``./dev parity --libraries``
prints the worst error of each.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np

import jaxloss

from .compare import TOLERANCES, array_errors


@dataclasses.dataclass(frozen=True)
class Comparison:
    """One reference function against its jaxloss counterpart.

    ``draw(rng, dtype)`` returns the arguments (NumPy arrays); ``ours`` and ``theirs`` take
    them as JAX arrays (``backend="jax"``) or ``theirs`` as torch tensors (``"torch"``) and
    return one array each. ``differentiable`` indexes the arguments whose gradients are
    compared.
    """

    library: str
    reference: str
    name: str
    ours: Callable
    theirs: Callable
    draw: Callable[[np.random.Generator, np.dtype], Sequence[np.ndarray]]
    differentiable: tuple[int, ...] = (0,)
    expect: str = "equal"
    backend: str = "jax"
    atol_scale: float = 1.0
    note: str = ""
    # The dtypes the reference computes in (segmentation_models_pytorch's Lovász casts to
    # float32 internally and cannot run in float64), and a reference that rounds to float32
    # inside even for float64 inputs (MONAI's class weights and focal term): compared there
    # at float32's tolerance.
    dtypes: tuple[str, ...] = ("float64", "float32")
    float32_inside: bool = False

    @property
    def id(self) -> str:
        return f"{self.library}:{self.name}"


@dataclasses.dataclass
class Result:
    comparison: Comparison
    dtype: np.dtype
    value_error: float
    grad_error: float
    ok: bool
    detail: str = ""


def _vjp_jax(fn, args, differentiable, cotangent_seed):
    """The value and the vector-Jacobian product, as one jitted program (eager dispatch of
    each operation compiles it on its own, several times slower for these small inputs)."""
    args = [jnp.asarray(a) for a in args]

    def partial_fn(*diff):
        full = list(args)
        for i, d in zip(differentiable, diff):
            full[i] = d
        return fn(*full)

    primals = [args[i] for i in differentiable]
    shape = jax.eval_shape(partial_fn, *primals)
    rng = np.random.default_rng(cotangent_seed)
    cotangent = jnp.asarray(rng.uniform(0.5, 1.5, shape.shape), shape.dtype)

    @jax.jit
    def value_and_vjp(primals, cotangent):
        value, pullback = jax.vjp(partial_fn, *primals)
        return value, pullback(cotangent)

    value, grads = value_and_vjp(primals, cotangent)
    return np.asarray(value), [np.asarray(g) for g in grads], np.asarray(cotangent)


def _vjp_torch(fn, args, differentiable, cotangent):
    import torch

    tensors = [torch.from_numpy(np.array(a)) for a in args]
    for i in differentiable:
        tensors[i].requires_grad_(True)
    value = fn(*tensors)
    grads = torch.autograd.grad(
        value,
        [tensors[i] for i in differentiable],
        torch.from_numpy(np.array(cotangent)).to(value.dtype),
    )
    return value.detach().numpy(), [g.numpy() for g in grads]


def run(comparison: Comparison, dtype, seed: int = 0) -> Result:
    """Draws the inputs in `dtype` and compares values and gradients."""
    dtype = np.dtype(dtype)
    rng = np.random.default_rng(seed)
    args = comparison.draw(rng, dtype)
    diff = comparison.differentiable
    with jax.enable_x64(dtype == np.float64):
        ours, our_grads, cotangent = _vjp_jax(comparison.ours, args, diff, seed + 1)
        if comparison.backend == "jax":
            theirs, their_grads, _ = _vjp_jax(comparison.theirs, args, diff, seed + 1)
        else:
            theirs, their_grads = _vjp_torch(comparison.theirs, args, diff, cotangent)
    tol = dict(TOLERANCES[np.dtype(np.float32) if comparison.float32_inside else dtype])
    magnitudes = [np.abs(a).max(initial=0.0) for a in args if a.dtype.kind == "f"]
    tol["atol"] *= max([1.0] + [float(m) for m in magnitudes if np.isfinite(m)])
    tol["atol"] *= comparison.atol_scale
    detail = []
    if comparison.expect == "reference_not_finite":
        bad = ~np.isfinite(theirs)
        if not bad.any() and all(np.all(np.isfinite(g)) for g in their_grads):
            detail.append("the reference was expected to give nan/inf here but did not")
        if not np.all(np.isfinite(ours)) or not all(np.all(np.isfinite(g)) for g in our_grads):
            detail.append("jaxloss is not finite")
        theirs = np.where(bad, ours, theirs)  # compare where the reference is finite
        their_grads = [np.where(np.isfinite(g), g, o) for g, o in zip(their_grads, our_grads)]
    value_error, _, value_ok = array_errors(theirs, ours, **tol)
    if not value_ok:
        detail.append(f"value reference={theirs!r} jaxloss={ours!r}")
    grad_error, grads_ok = 0.0, True
    for g_ref, g_ours in zip(their_grads, our_grads):
        error, _, ok = array_errors(g_ref, g_ours, **tol)
        grad_error = max(grad_error, error)
        grads_ok = grads_ok and ok
    if not grads_ok:
        detail.append(f"gradient error {grad_error:.3g}")
    return Result(comparison, dtype, value_error, grad_error, not detail, "; ".join(detail))


# ---------------------------------------------------------------------------- input draws


def _normal(shape, scale=1.0):
    def draw(rng, dtype):
        return [rng.normal(0, scale, shape).astype(dtype)]

    return draw


def _with(*draws):
    """Concatenates the arguments of several draws."""

    def draw(rng, dtype):
        return [a for d in draws for a in d(rng, dtype)]

    return draw


def _uniform(shape, low, high):
    return lambda rng, dtype: [rng.uniform(low, high, shape).astype(dtype)]


def _signs(shape):
    return lambda rng, dtype: [rng.choice([-1.0, 1.0], shape).astype(dtype)]


def _bits(shape):
    return lambda rng, dtype: [rng.integers(0, 2, shape).astype(dtype)]


def _classes(shape, num_classes):
    return lambda rng, dtype: [rng.integers(0, num_classes, shape).astype(np.int32)]


def _simplex(shape, zeros=0.0):
    """Class probabilities along the last axis; a fraction `zeros` of them exactly 0."""

    def draw(rng, dtype):
        p = rng.gamma(1.0, 1.0, shape)
        if zeros:
            p = np.where(rng.uniform(size=shape) < zeros, 0.0, p)
            p[..., 0] += 1e-3
        return [(p / p.sum(-1, keepdims=True)).astype(dtype)]

    return draw


def _log_simplex(shape):
    def draw(rng, dtype):
        x = rng.normal(0, 1.5, shape)
        return [(x - np.log(np.exp(x).sum(-1, keepdims=True))).astype(dtype)]

    return draw


def _fixed(*arrays):
    return lambda rng, dtype: [
        np.asarray(a, dtype if np.asarray(a).dtype.kind == "f" else np.asarray(a).dtype)
        for a in arrays
    ]


# --------------------------------------------------------------------------------- optax


def _logsumexp(scores):
    return jax.nn.logsumexp(scores)


def _optax_comparisons() -> list[Comparison]:
    import optax.losses as ol

    n, c = 12, 7

    def comparison(reference, name, ours, theirs, draw, **kw):
        return Comparison("optax", f"optax.losses.{reference}", name, ours, theirs, draw, **kw)

    def one_hot(y, dtype):
        return jax.nn.one_hot(y, c, dtype=dtype)

    def ctc_draw(rng, dtype):
        b, t, k, s = 3, 14, 5, 4
        logits = rng.normal(0, 1, (b, t, k)).astype(dtype)
        input_lengths = np.array([14, 11, 9])
        label_lengths = np.array([4, 2, 3])
        labels = rng.integers(1, k, (b, s)).astype(np.int32)
        logit_paddings = (np.arange(t)[None] >= input_lengths[:, None]).astype(dtype)
        label_paddings = (np.arange(s)[None] >= label_lengths[:, None]).astype(dtype)
        return [logits, logit_paddings, labels, label_paddings]

    def ctc_ours(logits, logit_paddings, labels, label_paddings):
        return jaxloss.ctc_loss(
            logits,
            labels,
            logit_paddings=logit_paddings,
            label_paddings=label_paddings,
            reduction="none",
        )

    def kl_zero_targets(rng, dtype):
        log_p = _log_simplex((n, c))(rng, dtype)[0]
        log_p[:3, 1] = -np.inf  # a class the model rules out, where the target has no mass
        t = _simplex((n, c), zeros=0.3)(rng, dtype)[0]
        t[:3, 1] = 0.0
        return [log_p, t]

    def log_targets_with_inf(rng, dtype):
        log_p = _log_simplex((n, c))(rng, dtype)[0]
        t = _simplex((n, c), zeros=0.3)(rng, dtype)[0]
        with np.errstate(divide="ignore"):
            return [log_p, np.log(t).astype(dtype)]

    def where_classes(rng, dtype):
        x = rng.normal(0, 2, (n, c)).astype(dtype)
        mask = rng.uniform(size=(n, c)) < 0.7
        mask[:, 0] = True
        t = rng.gamma(1.0, 1.0, (n, c)) * mask
        return [x, (t / t.sum(-1, keepdims=True)).astype(dtype), mask]

    def where_classes_labels(rng, dtype):
        x, _, mask = where_classes(rng, dtype)
        labels = np.argmax(np.where(mask, x, -np.inf), axis=-1).astype(np.int32)
        return [x, labels, mask]

    triplet = _with(_normal((n, 5)), _normal((n, 5)), _normal((n, 5)))
    return [
        comparison(
            "sigmoid_binary_cross_entropy",
            "sigmoid_binary_cross_entropy",
            lambda x, t: jaxloss.binary_cross_entropy_with_logits(x, t, reduction="none"),
            ol.sigmoid_binary_cross_entropy,
            _with(_normal((n, c), 3.0), _uniform((n, c), 0, 1)),
            differentiable=(0, 1),
        ),
        comparison(
            "hinge_loss",
            "hinge_loss",
            lambda s, t: jaxloss.hinge_loss(s, t, reduction="none"),
            ol.hinge_loss,
            _with(_normal((n, c), 2.0), _signs((n, c))),
        ),
        comparison(
            "perceptron_loss",
            "perceptron_loss",
            lambda s, t: jaxloss.hinge_loss(s, t, margin=0.0, reduction="none"),
            ol.perceptron_loss,
            _with(_normal((n, c), 2.0), _signs((n, c))),
        ),
        comparison(
            "sparsemax_loss",
            "sparsemax_loss",
            lambda x, t: jaxloss.sparsemax_loss(x, t, reduction="none"),
            ol.sparsemax_loss,
            _with(_normal((n, c), 2.0), _bits((n, c))),
        ),
        comparison(
            "multiclass_sparsemax_loss",
            "multiclass_sparsemax_loss",
            lambda s, y: jaxloss.multiclass_sparsemax_loss(s, y, reduction="none"),
            ol.multiclass_sparsemax_loss,
            _with(_normal((n, c), 2.0), _classes((n,), c)),
        ),
        comparison(
            "multiclass_hinge_loss",
            "multiclass_hinge_loss",
            lambda s, y: jaxloss.multiclass_hinge_loss(s, y, reduction="none"),
            ol.multiclass_hinge_loss,
            _with(_normal((n, c), 2.0), _classes((n,), c)),
        ),
        comparison(
            "multiclass_perceptron_loss",
            "multiclass_perceptron_loss",
            lambda s, y: jaxloss.multiclass_hinge_loss(s, y, margin=0.0, reduction="none"),
            ol.multiclass_perceptron_loss,
            _with(_normal((n, c), 2.0), _classes((n,), c)),
        ),
        comparison(
            "make_fenchel_young_loss",
            "make_fenchel_young_loss(logsumexp)",
            lambda s, t: jaxloss.make_fenchel_young_loss(jax.nn.logsumexp)(s, t, reduction="none"),
            ol.make_fenchel_young_loss(_logsumexp),  # pyright: ignore[reportArgumentType]
            _with(_normal((n, c), 2.0), _simplex((n, c))),
            differentiable=(0, 1),
        ),
        comparison(
            "softmax_cross_entropy",
            "softmax_cross_entropy",
            lambda x, t: jaxloss.cross_entropy(x, t, reduction="none"),
            ol.softmax_cross_entropy,
            _with(_normal((n, c), 3.0), _simplex((n, c))),
            differentiable=(0, 1),
        ),
        comparison(
            "softmax_cross_entropy",
            "softmax_cross_entropy(where=classes)",
            lambda x, t, m: jaxloss.cross_entropy(x, t, class_mask=m, reduction="none"),
            lambda x, t, m: ol.softmax_cross_entropy(x, t, where=m),
            where_classes,
        ),
        comparison(
            "softmax_cross_entropy_with_integer_labels",
            "softmax_cross_entropy_with_integer_labels(where=classes)",
            lambda x, y, m: jaxloss.cross_entropy(x, y, class_mask=m, reduction="none"),
            lambda x, y, m: ol.softmax_cross_entropy_with_integer_labels(x, y, where=m),
            where_classes_labels,
        ),
        comparison(
            "safe_softmax_cross_entropy",
            "safe_softmax_cross_entropy(-inf logits)",
            lambda x, t: jaxloss.cross_entropy(x, t, reduction="none"),
            ol.safe_softmax_cross_entropy,
            lambda rng, dtype: [
                np.where(np.arange(c) < 2, -np.inf, rng.normal(0, 2, (n, c))).astype(dtype),
                _simplex((n, c))(rng, dtype)[0] * (np.arange(c) >= 2).astype(dtype),
            ],
        ),
        comparison(
            "softmax_cross_entropy_with_integer_labels",
            "softmax_cross_entropy_with_integer_labels",
            lambda x, y: jaxloss.cross_entropy(x, y, reduction="none"),
            ol.softmax_cross_entropy_with_integer_labels,
            _with(_normal((n, c), 3.0), _classes((n,), c)),
        ),
        comparison(
            "softmax_cross_entropy_with_integer_labels",
            "softmax_cross_entropy_with_integer_labels(axis=1)",
            lambda x, y: jaxloss.cross_entropy(x, y, axis=1, reduction="none"),
            lambda x, y: ol.softmax_cross_entropy_with_integer_labels(x, y, axis=1),
            _with(_normal((4, c, 3), 3.0), _classes((4, 3), c)),
        ),
        comparison(
            "poly_loss_cross_entropy",
            "poly_loss_cross_entropy",
            lambda x, t: jaxloss.poly1_cross_entropy(x, t, epsilon=2.0, reduction="none"),
            ol.poly_loss_cross_entropy,
            _with(_normal((n, c), 3.0), _simplex((n, c))),
        ),
        comparison(
            "poly_loss_cross_entropy",
            "poly_loss_cross_entropy(one-hot, epsilon=-0.5)",
            lambda x, y: jaxloss.poly1_cross_entropy(x, y, epsilon=-0.5, reduction="none"),
            lambda x, y: ol.poly_loss_cross_entropy(x, one_hot(y, x.dtype), epsilon=-0.5),
            _with(_normal((n, c), 3.0), _classes((n,), c)),
        ),
        comparison(
            "kl_divergence",
            "kl_divergence",
            lambda x, t: jaxloss.kl_divergence(x, t, reduction="none"),
            ol.kl_divergence,
            _with(_log_simplex((n, c)), _simplex((n, c), zeros=0.3)),
            differentiable=(0,),
        ),
        comparison(
            "kl_divergence",
            "kl_divergence(zero targets, -inf predictions)",
            lambda x, t: jaxloss.kl_divergence(x, t, reduction="none"),
            ol.kl_divergence,
            kl_zero_targets,
            expect="reference_not_finite",
        ),
        comparison(
            "kl_divergence_with_log_targets",
            "kl_divergence_with_log_targets",
            lambda x, t: jaxloss.kl_divergence(x, t, log_targets=True, reduction="none"),
            ol.kl_divergence_with_log_targets,
            _with(_log_simplex((n, c)), _log_simplex((n, c))),
            differentiable=(0, 1),
        ),
        comparison(
            "kl_divergence_with_log_targets",
            "kl_divergence_with_log_targets(-inf log targets)",
            lambda x, t: jaxloss.kl_divergence(x, t, log_targets=True, reduction="none"),
            ol.kl_divergence_with_log_targets,
            log_targets_with_inf,
            expect="reference_not_finite",
        ),
        comparison(
            "generalized_kl_divergence",
            "generalized_kl_divergence",
            lambda x, t: jaxloss.kl_divergence(x, t, generalized=True, reduction="none"),
            ol.generalized_kl_divergence,
            _with(_normal((n, c)), _uniform((n, c), 0, 3)),
        ),
        comparison(
            "convex_kl_divergence",
            "convex_kl_divergence",
            lambda x, t: jaxloss.kl_divergence(x, t, generalized=True, reduction="none"),
            ol.convex_kl_divergence,
            _with(_normal((n, c)), _uniform((n, c), 0, 3)),
        ),
        comparison(
            "sigmoid_focal_loss",
            "sigmoid_focal_loss",
            lambda x, t: jaxloss.sigmoid_focal_loss(x, t, alpha=0.25, gamma=2.0, reduction="none"),
            lambda x, t: ol.sigmoid_focal_loss(x, t, alpha=0.25, gamma=2.0),
            _with(_normal((n, c), 3.0), _bits((n, c))),
        ),
        comparison(
            "sigmoid_focal_loss",
            "sigmoid_focal_loss(gamma=0.5, |logits|=1000)",
            lambda x, t: jaxloss.sigmoid_focal_loss(x, t, alpha=None, gamma=0.5, reduction="none"),
            lambda x, t: ol.sigmoid_focal_loss(x, t, gamma=0.5),
            _fixed(
                [[1000.0, -1000.0, 3.0, 1000.0], [-1000.0, 1000.0, -2.0, -1000.0]],
                [[1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 0.0, 1.0]],
            ),
            note="finite in optax 0.2.8 as well (earlier releases gave nan here)",
        ),
        comparison(
            "ctc_loss",
            "ctc_loss",
            ctc_ours,
            ol.ctc_loss,
            ctc_draw,
            atol_scale=10.0,
            note="optax's log_epsilon=-1e5 floor is at most e^-1e5 away",
        ),
        comparison(
            "triplet_margin_loss",
            "triplet_margin_loss(eps=0)",
            lambda a, p, m: jaxloss.triplet_margin_loss(a, p, m, eps=0.0, reduction="none"),
            lambda a, p, m: ol.triplet_margin_loss(a, p, m, eps=0.0),
            triplet,
            differentiable=(0, 1, 2),
        ),
        comparison(
            "ntxent",
            "ntxent",
            lambda e, y: jaxloss.ntxent_loss(e, y, temperature=0.07),
            lambda e, y: ol.ntxent(e, y, temperature=0.07),
            _with(_normal((n, 6)), lambda rng, dtype: [np.arange(n, dtype=np.int32) % 4]),
        ),
        comparison(
            "ranking_softmax_loss",
            "ranking_softmax_loss",
            lambda s, r: jaxloss.ranking_softmax_loss(s, r),
            ol.ranking_softmax_loss,
            _with(_normal((4, 9)), _classes((4, 9), 3)),
        ),
        comparison(
            "ranking_softmax_loss",
            "ranking_softmax_loss(where, weights)",
            lambda s, r, m, w: jaxloss.ranking_softmax_loss(s, r, where=m, weights=w),
            lambda s, r, m, w: ol.ranking_softmax_loss(s, r, where=m, weights=w),
            _with(
                _normal((4, 9)),
                _classes((4, 9), 3),
                lambda rng, dtype: [np.arange(9)[None] < np.array([[9], [5], [1], [7]])],
                _uniform((4, 9), 0.5, 2),
            ),
        ),
        comparison(
            "cosine_similarity",
            "cosine_similarity(epsilon=1e-4)",
            lambda u, v: jaxloss.cosine_similarity(u, v, eps=1e-2),
            lambda u, v: ol.cosine_similarity(u, v, epsilon=1e-4),
            lambda rng, dtype: [
                (rng.normal(0, 1, (n, 5)) * np.where(np.arange(n) < 3, 1e-3, 1)[:, None]).astype(
                    dtype
                ),
                rng.normal(0, 1, (n, 5)).astype(dtype),
            ],
            differentiable=(0, 1),
            note="optax clips the squared norm at epsilon: jaxloss's eps is its square root",
        ),
        comparison(
            "cosine_distance",
            "cosine_distance",
            lambda u, v: 1 - jaxloss.cosine_similarity(u, v, eps=0.0),
            ol.cosine_distance,
            _with(_normal((n, 5)), _normal((n, 5))),
            differentiable=(0, 1),
        ),
        comparison(
            "huber_loss",
            "huber_loss(delta=0.7)",
            lambda x, t: jaxloss.huber_loss(x, t, delta=0.7, reduction="none"),
            lambda x, t: ol.huber_loss(x, t, delta=0.7),
            _with(_normal((n, c), 2.0), _normal((n, c))),
            differentiable=(0, 1),
        ),
        comparison(
            "l2_loss",
            "l2_loss",
            lambda x, t: 0.5 * jaxloss.mse_loss(x, t, reduction="none"),
            ol.l2_loss,
            _with(_normal((n, c), 2.0), _normal((n, c))),
            differentiable=(0, 1),
        ),
        comparison(
            "squared_error",
            "squared_error",
            lambda x, t: jaxloss.mse_loss(x, t, reduction="none"),
            ol.squared_error,
            _with(_normal((n, c), 2.0), _normal((n, c))),
            differentiable=(0, 1),
        ),
        comparison(
            "log_cosh",
            "log_cosh",
            lambda x, t: jaxloss.log_cosh_loss(x, t, reduction="none"),
            ol.log_cosh,
            _with(_normal((n, c), 5.0), _normal((n, c))),
            differentiable=(0, 1),
        ),
        comparison(
            "smooth_labels",
            "smooth_labels",
            lambda t: jaxloss.smooth_labels(t, 0.1),
            lambda t: ol.smooth_labels(t, 0.1),
            _simplex((n, c)),
        ),
    ]


# -------------------------------------------------------------------------- segmentation

# (N, H, W, C): every class occurs in every sample, so that the references' conventions for
# absent classes (segmentation_models_pytorch zeroes them) do not enter unless a draw says so.
_SEG = (2, 5, 4, 3)


def _seg_logits(rng, dtype, shape=_SEG):
    return [rng.normal(0, 2, shape).astype(dtype)]


def _seg_labels(rng, dtype, shape=_SEG, ignore=None, absent=False):
    n, h, w, c = shape
    labels = rng.integers(0, c, (n, h, w))
    for k in range(c):  # each class somewhere in each sample
        labels[:, k % h, (k // h) % w] = k
    if absent:
        labels[0][labels[0] == c - 1] = 0  # the last class absent from sample 0
    if ignore is not None:
        labels[:, -1, -1] = ignore
        labels[0, 1, 2] = ignore
    return [labels.astype(np.int32)]


def _seg_multilabel(rng, dtype, shape=_SEG):
    return [(rng.uniform(size=shape) < 0.4).astype(dtype)]


def _seg_soft(rng, dtype, shape=_SEG):
    return _simplex(shape)(rng, dtype)


def _channels_first(x):
    import torch

    return torch.movedim(x, -1, 1)


def _monai_comparisons() -> list[Comparison]:
    import monai.losses.dice as ml_dice
    import monai.losses.mcc_loss as ml_mcc
    import monai.losses.tversky as ml_tversky
    import torch

    def comparison(reference, name, ours, theirs, draw, **kw):
        return Comparison(
            "monai", f"monai.losses.{reference}", name, ours, theirs, draw, backend="torch", **kw
        )

    def labels_first(y):
        return y[:, None].long()

    n = _SEG[0]
    weights = np.array([0.5, 2.0, 1.0])
    ignore = 255

    def generalized(weighting: Literal["square", "simple", "uniform"], batch: bool):
        return comparison(
            "GeneralizedDiceLoss",
            f"GeneralizedDiceLoss(w_type={weighting}{', batch' if batch else ''})",
            lambda x, y: jnp.reshape(
                jaxloss.generalized_dice_loss(
                    x, y, weighting=weighting, batch=batch, reduction="none"
                ),
                (-1,),
            ),
            lambda x, y: ml_dice.GeneralizedDiceLoss(
                softmax=True, to_onehot_y=True, w_type=weighting, batch=batch, reduction="none"
            )(_channels_first(x), labels_first(y)).reshape(-1),
            _with(_seg_logits, lambda rng, dtype: _seg_labels(rng, dtype, absent=True)),
            float32_inside=weighting != "uniform",
            note="MONAI computes the class weights in float32",
        )

    return [
        comparison(
            "DiceLoss",
            "DiceLoss(softmax, to_onehot_y)",
            lambda x, y: jaxloss.dice_loss(x, y, reduction="none"),
            lambda x, y: ml_dice.DiceLoss(softmax=True, to_onehot_y=True, reduction="none")(
                _channels_first(x), labels_first(y)
            ).reshape(n, -1),
            _with(_seg_logits, _seg_labels),
        ),
        comparison(
            "DiceLoss",
            "DiceLoss(squared_pred, no background, batch, smooth 0.5/1)",
            lambda x, y: jaxloss.dice_loss(
                x,
                y,
                squared=True,
                include_background=False,
                batch=True,
                smooth_numerator=0.5,
                smooth_denominator=1.0,
                reduction="none",
            ),
            lambda x, y: ml_dice.DiceLoss(
                softmax=True,
                to_onehot_y=True,
                squared_pred=True,
                include_background=False,
                batch=True,
                smooth_nr=0.5,
                smooth_dr=1.0,
                reduction="none",
            )(_channels_first(x), labels_first(y)).reshape(-1),
            _with(_seg_logits, _seg_labels),
            float32_inside=True,
            note="MONAI's one-hot targets are float32, and squared_pred takes their norm there",
        ),
        comparison(
            "DiceLoss",
            "DiceLoss(sigmoid, multi-label, weight, sum)",
            lambda x, t: jaxloss.dice_loss(
                x, t, activation="sigmoid", class_weights=weights, reduction="sum"
            ),
            lambda x, t: ml_dice.DiceLoss(
                sigmoid=True, weight=torch.from_numpy(weights), reduction="sum"
            )(_channels_first(x), _channels_first(t)),
            _with(_seg_logits, _seg_multilabel),
        ),
        comparison(
            "DiceLoss",
            "DiceLoss(ignore_index=255)",
            lambda x, y: jaxloss.dice_loss(x, y, ignore_index=ignore, reduction="none"),
            lambda x, y: ml_dice.DiceLoss(
                softmax=True, to_onehot_y=True, ignore_index=ignore, reduction="none"
            )(_channels_first(x), labels_first(y)).reshape(n, -1),
            _with(_seg_logits, lambda rng, dtype: _seg_labels(rng, dtype, ignore=ignore)),
        ),
        comparison(
            "DiceLoss",
            "DiceLoss(jaccard)",
            lambda x, y: jaxloss.jaccard_loss(
                x, y, smooth_numerator=0.5e-5, smooth_denominator=0.5e-5, reduction="none"
            ),
            lambda x, y: ml_dice.DiceLoss(
                softmax=True, to_onehot_y=True, jaccard=True, reduction="none"
            )(_channels_first(x), labels_first(y)).reshape(n, -1),
            _with(_seg_logits, _seg_labels),
        ),
        comparison(
            "DiceLoss",
            "DiceLoss(soft_label, probabilities)",
            lambda p, t: jaxloss.dice_loss(
                p, t, activation="none", soft_labels=True, reduction="none"
            ),
            lambda p, t: ml_dice.DiceLoss(soft_label=True, reduction="none")(
                _channels_first(p), _channels_first(t)
            ).reshape(n, -1),
            _with(_seg_soft, _seg_soft),
            differentiable=(0, 1),
        ),
        generalized("square", False),
        generalized("simple", False),
        generalized("uniform", False),
        generalized("square", True),
        comparison(
            "TverskyLoss",
            "TverskyLoss(alpha=0.3, beta=0.7)",
            lambda x, y: jaxloss.tversky_loss(x, y, alpha=0.3, beta=0.7, reduction="none"),
            lambda x, y: ml_tversky.TverskyLoss(
                softmax=True, to_onehot_y=True, alpha=0.3, beta=0.7, reduction="none"
            )(_channels_first(x), labels_first(y)).reshape(n, -1),
            _with(_seg_logits, _seg_labels),
        ),
        comparison(
            "MCCLoss",
            "MCCLoss(sigmoid, multi-label)",
            lambda x, t: jaxloss.mcc_loss(x, t, activation="sigmoid", reduction="none"),
            lambda x, t: ml_mcc.MCCLoss(sigmoid=True, reduction="none")(
                _channels_first(x), _channels_first(t)
            ).reshape(n, -1),
            _with(_seg_logits, _seg_multilabel),
        ),
        comparison(
            "DiceCELoss",
            "DiceCELoss(weight, label_smoothing, lambdas)",
            lambda x, y: jaxloss.dice_ce_loss(
                x, y, class_weights=weights, label_smoothing=0.1, lambda_dice=0.7, lambda_ce=1.3
            ),
            lambda x, y: ml_dice.DiceCELoss(
                softmax=True,
                to_onehot_y=True,
                weight=torch.from_numpy(weights).to(x.dtype),
                label_smoothing=0.1,
                lambda_dice=0.7,
                lambda_ce=1.3,
            )(_channels_first(x), labels_first(y)),
            _with(_seg_logits, _seg_labels),
        ),
        comparison(
            "DiceFocalLoss",
            "DiceFocalLoss(softmax Dice, its sigmoid focal, alpha)",
            lambda x, y: jaxloss.dice_focal_loss(
                x, y, focal="sigmoid", gamma=1.5, alpha=0.25, lambda_focal=0.5
            ),
            lambda x, y: ml_dice.DiceFocalLoss(
                softmax=True, to_onehot_y=True, gamma=1.5, alpha=0.25, lambda_focal=0.5
            )(_channels_first(x), labels_first(y)),
            _with(_seg_logits, _seg_labels),
            float32_inside=True,
            note="MONAI's FocalLoss casts its inputs to float32",
        ),
        comparison(
            "DiceFocalLoss",
            "DiceFocalLoss(include_background=False: class 0 out of both terms)",
            lambda x, y: jaxloss.dice_focal_loss(
                x, y, focal="sigmoid", gamma=2.0, include_background=False
            ),
            lambda x, y: ml_dice.DiceFocalLoss(
                softmax=True, to_onehot_y=True, gamma=2.0, include_background=False
            )(_channels_first(x), labels_first(y)),
            _with(_seg_logits, _seg_labels),
            float32_inside=True,
            note="MONAI's FocalLoss casts its inputs to float32",
        ),
    ]


def _smp_comparisons() -> list[Comparison]:
    from .references import smp_losses

    smp = smp_losses()

    def comparison(reference, name, ours, theirs, draw, **kw):
        if reference == "LovaszLoss":  # its _lovasz_grad casts to float32: no float64 run
            kw.setdefault("dtypes", ("float32",))
            kw.setdefault("note", "float32 only (smp casts inside); float64 in test_segmentation")
        return Comparison(
            "smp",
            f"segmentation_models_pytorch.losses.{reference}",
            name,
            ours,
            theirs,
            draw,
            backend="torch",
            **kw,
        )

    weights = np.array([0.5, 2.0, 1.0])
    ignore = 255
    binary_shape = _SEG[:3] + (1,)

    def binary_targets(rng, dtype):
        return _seg_multilabel(rng, dtype, binary_shape)

    def binary_logits(rng, dtype):
        return _seg_logits(rng, dtype, binary_shape)

    def lovasz_binary(per_image, ignore_index=None):
        def theirs(x, t):
            loss = smp.LovaszLoss(smp.BINARY_MODE, per_image=per_image, ignore_index=ignore_index)
            return loss(_channels_first(x), _channels_first(t))

        return theirs

    def binary_targets_with_ignore(rng, dtype):
        t = binary_targets(rng, dtype)[0]
        t[:, -1, -1] = ignore
        return [t]

    return [
        comparison(
            "DiceLoss",
            "DiceLoss(multiclass)",
            lambda x, y: jaxloss.dice_loss(
                x, y, batch=True, smooth_numerator=0.0, smooth_denominator=0.0
            ),
            lambda x, y: smp.DiceLoss(smp.MULTICLASS_MODE)(_channels_first(x), y.long()),
            _with(_seg_logits, _seg_labels),
        ),
        comparison(
            "DiceLoss",
            "DiceLoss(multiclass, smooth=1, log_loss, ignore_index=255)",
            lambda x, y: jaxloss.dice_loss(
                x,
                y,
                batch=True,
                smooth_numerator=2.0,
                smooth_denominator=2.0,
                log=True,
                ignore_index=ignore,
            ),
            lambda x, y: smp.DiceLoss(
                smp.MULTICLASS_MODE, smooth=1.0, log_loss=True, ignore_index=ignore
            )(_channels_first(x), y.long()),
            _with(_seg_logits, lambda rng, dtype: _seg_labels(rng, dtype, ignore=ignore)),
        ),
        comparison(
            "DiceLoss",
            "DiceLoss(multilabel, class_weights)",
            lambda x, t: (
                jaxloss.dice_loss(
                    x,
                    t,
                    activation="sigmoid",
                    batch=True,
                    smooth_numerator=0.0,
                    smooth_denominator=0.0,
                    class_weights=weights,
                    reduction="sum",
                )
                / weights.sum()
            ),
            lambda x, t: smp.DiceLoss(smp.MULTILABEL_MODE, class_weights=list(weights))(
                _channels_first(x), _channels_first(t)
            ),
            _with(_seg_logits, _seg_multilabel),
        ),
        comparison(
            "DiceLoss",
            "DiceLoss(binary)",
            lambda x, t: jaxloss.dice_loss(
                x, t, activation="sigmoid", batch=True, smooth_numerator=0, smooth_denominator=0
            ),
            lambda x, t: smp.DiceLoss(smp.BINARY_MODE)(_channels_first(x), _channels_first(t)),
            _with(binary_logits, binary_targets),
        ),
        comparison(
            "JaccardLoss",
            "JaccardLoss(multiclass, smooth=0.5)",
            lambda x, y: jaxloss.jaccard_loss(
                x, y, batch=True, smooth_numerator=0.5, smooth_denominator=0.5
            ),
            lambda x, y: smp.JaccardLoss(smp.MULTICLASS_MODE, smooth=0.5)(
                _channels_first(x), y.long()
            ),
            _with(_seg_logits, _seg_labels),
        ),
        comparison(
            "TverskyLoss",
            "TverskyLoss(multiclass, alpha=0.3, beta=0.7)",
            lambda x, y: jaxloss.tversky_loss(
                x, y, alpha=0.3, beta=0.7, batch=True, smooth_numerator=0, smooth_denominator=0
            ),
            lambda x, y: smp.TverskyLoss(smp.MULTICLASS_MODE, alpha=0.3, beta=0.7)(
                _channels_first(x), y.long()
            ),
            _with(_seg_logits, _seg_labels),
        ),
        comparison(
            "TverskyLoss",
            "TverskyLoss(binary, focal gamma=0.75)",
            lambda x, t: jaxloss.tversky_loss(
                x,
                t,
                alpha=0.7,
                beta=0.3,
                gamma=0.75,
                activation="sigmoid",
                batch=True,
                smooth_numerator=0,
                smooth_denominator=0,
            ),
            lambda x, t: smp.TverskyLoss(smp.BINARY_MODE, alpha=0.7, beta=0.3, gamma=0.75)(
                _channels_first(x), _channels_first(t)
            ),
            _with(binary_logits, binary_targets),
        ),
        comparison(
            "LovaszLoss",
            "LovaszLoss(binary, per_image)",
            lambda x, t: jaxloss.lovasz_hinge_loss(x, t, per_image=True),
            lovasz_binary(True),
            _with(binary_logits, binary_targets),
        ),
        comparison(
            "LovaszLoss",
            "LovaszLoss(binary, batch)",
            lambda x, t: jaxloss.lovasz_hinge_loss(x, t, per_image=False),
            lovasz_binary(False),
            _with(binary_logits, binary_targets),
        ),
        comparison(
            "LovaszLoss",
            "LovaszLoss(binary, per_image, ignore_index=255)",
            lambda x, t: jaxloss.lovasz_hinge_loss(x, t, per_image=True, ignore_index=ignore),
            lovasz_binary(True, ignore),
            _with(binary_logits, binary_targets_with_ignore),
        ),
        comparison(
            "LovaszLoss",
            "LovaszLoss(multiclass)",
            lambda x, y: jaxloss.lovasz_softmax_loss(x, y),
            lambda x, y: smp.LovaszLoss(smp.MULTICLASS_MODE)(_channels_first(x), y.long()),
            _with(_seg_logits, _seg_labels),
        ),
        comparison(
            "LovaszLoss",
            "LovaszLoss(multiclass, per_image, ignore_index=255)",
            lambda x, y: jaxloss.lovasz_softmax_loss(x, y, per_image=True, ignore_index=ignore),
            lambda x, y: smp.LovaszLoss(smp.MULTICLASS_MODE, per_image=True, ignore_index=ignore)(
                _channels_first(x), y.long()
            ),
            _with(
                _seg_logits, lambda rng, dtype: _seg_labels(rng, dtype, ignore=ignore, absent=True)
            ),
        ),
        comparison(
            "MCCLoss",
            "MCCLoss",
            lambda p, t: jaxloss.mcc_loss(
                p,
                t,
                activation="none",
                batch=True,
                count_eps=1e-5,
                smooth_numerator=0.0,
                smooth_denominator=0.0,
            ),
            lambda p, t: smp.MCCLoss()(_channels_first(p), _channels_first(t)),
            _with(lambda rng, dtype: _uniform(binary_shape, 0, 1)(rng, dtype), binary_targets),
        ),
    ]


def _optax_segmentation_comparisons() -> list[Comparison]:
    import optax.losses as ol

    def comparison(reference, name, ours, theirs, draw, **kw):
        return Comparison("optax", f"optax.losses.{reference}", name, ours, theirs, draw, **kw)

    c = _SEG[-1]
    weights = np.array([0.5, 2.0, 1.0])

    def one_hot(y, x):
        return jax.nn.one_hot(y, c, dtype=x.dtype)

    def generalized_ours(x, y):
        # optax's "generalized" Dice: per-class Dice losses weighted by the inverse squared
        # class frequency of the batch (normalised to mean 1), not Sudre et al.'s ratio of sums
        per_class = jaxloss.dice_loss(
            x,
            y,
            smooth_numerator=2.0,
            smooth_denominator=2.0,
            class_weights=jaxloss.class_frequency_weights(y, num_classes=c),
            reduction="none",
        )
        return jnp.mean(per_class)

    return [
        comparison(
            "dice_loss",
            "dice_loss",
            lambda x, y: jnp.mean(
                jaxloss.dice_loss(
                    x, y, smooth_numerator=2.0, smooth_denominator=2.0, reduction="none"
                ),
                axis=-1,
            ),
            lambda x, y: ol.dice_loss(x, one_hot(y, x)),
            _with(_seg_logits, _seg_labels),
        ),
        comparison(
            "dice_loss",
            "dice_loss(alpha, beta, class_weights, ignore_background, sum)",
            lambda x, y: jnp.sum(
                jaxloss.tversky_loss(
                    x,
                    y,
                    alpha=0.3,
                    beta=0.7,
                    smooth_numerator=0.5,
                    smooth_denominator=0.5,
                    class_weights=weights,
                    include_background=False,
                    reduction="none",
                ),
                axis=-1,
            ),
            lambda x, y: ol.dice_loss(
                x,
                one_hot(y, x),
                alpha=0.3,
                beta=0.7,
                smooth=0.5,
                class_weights=jnp.asarray(weights, x.dtype),
                ignore_background=True,
                reduction="sum",
            ),
            _with(_seg_logits, _seg_labels),
        ),
        comparison(
            "binary_dice_loss",
            "binary_dice_loss",
            lambda x, t: jaxloss.dice_loss(
                x[..., None],
                t[..., None],
                activation="sigmoid",
                smooth_numerator=2.0,
                smooth_denominator=2.0,
                reduction="none",
            )[:, 0],
            ol.binary_dice_loss,
            lambda rng, dtype: [
                rng.normal(0, 2, _SEG[:3]).astype(dtype),
                (rng.uniform(size=_SEG[:3]) < 0.4).astype(dtype),
            ],
        ),
        comparison(
            "multiclass_generalized_dice_loss",
            "multiclass_generalized_dice_loss",
            generalized_ours,
            lambda x, y: ol.multiclass_generalized_dice_loss(x, one_hot(y, x)),
            _with(_seg_logits, _seg_labels),
        ),
    ]


# ---------------------------------------------------------------------------------- keras


def _keras():
    """keras with its JAX backend (the backend is chosen when keras is first imported)."""
    import os

    os.environ.setdefault("KERAS_BACKEND", "jax")
    import keras

    if keras.backend.backend() != "jax":
        raise RuntimeError(
            f"keras was imported with the {keras.backend.backend()!r} backend; the comparisons "
            "need KERAS_BACKEND=jax set before keras is first imported."
        )
    return keras


def _keras_comparisons() -> list[Comparison]:
    keras = _keras()
    from ..compat import keras as ours

    kl = keras.losses
    n, c = 12, 5

    # Keras' JAX backend takes its means (ops.mean) in float32 also for float64 inputs (its
    # float64 MSE is 8e-7 off an exact one), and its CTC runs in float32: those compare at
    # float32's tolerance, the others at float64's.
    float32_inside = {
        "MeanSquaredError",
        "mean_squared_error",
        "MeanAbsoluteError",
        "MeanAbsolutePercentageError",
        "MeanSquaredLogarithmicError",
        "Huber",
        "LogCosh",
        "Poisson",
        "Hinge",
        "hinge",
        "SquaredHinge",
        "BinaryCrossentropy",
        "BinaryFocalCrossentropy",
        "CTC",
    }

    def comparison(name, label, ours_fn, theirs_fn, draw, **kw):
        """Drawn arguments are (y_pred, y_true, [sample_weight]); the gradient is y_pred's."""
        inside = name in float32_inside
        return Comparison(
            "keras",
            f"keras.losses.{name}",
            label,
            ours_fn,
            theirs_fn,
            draw,
            float32_inside=inside,
            note="Keras takes this loss's means in float32, also for float64" if inside else "",
            **kw,
        )

    def function(name, draw, label=None, **options):
        return comparison(
            name,
            label or name,
            lambda p, t: getattr(ours, name)(t, p, **options),
            lambda p, t: getattr(kl, name)(t, p, **options),
            draw,
        )

    def loss_class(name, draw, label=None, weighted=True, batch=n, **options):
        """The class with its default reduction, and (a sample weight drawn last) the others."""

        def pair(reduction):
            def call(module, p, t, w=None):
                loss = getattr(module, name)(reduction=reduction, dtype=str(p.dtype), **options)
                return loss(t, p, sample_weight=w)

            return (
                lambda *args: call(ours, *args),
                lambda *args: call(kl, *args),
            )

        made = [comparison(name, label or name, *pair("sum_over_batch_size"), draw)]
        if weighted:
            weights = _uniform((batch,), 0.2, 2.0)
            for reduction in ("sum", "mean_with_sample_weight", None):
                made.append(
                    comparison(
                        name,
                        f"{label or name}(reduction={reduction}, sample_weight)",
                        *pair(reduction),
                        _with(draw, weights),
                    )
                )
        return made

    regression = _with(_normal((n, c), 2.0), _normal((n, c)))
    positive = _with(_uniform((n, c), 0.1, 3.0), _uniform((n, c), 0.0, 3.0))
    probabilities = _with(_simplex((n, c)), _simplex((n, c), zeros=0.3))
    logits_onehot = _with(
        _normal((n, c), 2.0), lambda rng, dtype: [np.eye(c, dtype=dtype)[rng.integers(0, c, n)]]
    )
    probs_onehot = _with(
        _simplex((n, c)), lambda rng, dtype: [np.eye(c, dtype=dtype)[rng.integers(0, c, n)]]
    )
    logits_soft = _with(_normal((n, c), 2.0), _simplex((n, c)))
    logits_sparse = _with(_normal((n, c), 2.0), _classes((n,), c))
    probs_sparse = _with(_simplex((n, c)), _classes((n,), c))
    binary_logits = _with(_normal((n, c), 2.0), _bits((n, c)))
    binary_probs = _with(_uniform((n, c), 0.01, 0.99), _bits((n, c)))
    scores_signs = _with(_normal((n, c), 2.0), _signs((n, c)))

    def embeddings(rng, dtype):
        e = rng.normal(0, 1, (n, 6))
        return [(e / np.linalg.norm(e, axis=1, keepdims=True)).astype(dtype)]

    def ctc_draw(rng, dtype):
        logits = rng.normal(0, 1, (3, 12, 6)).astype(dtype)
        labels = np.zeros((3, 4), np.int32)
        for row, length in enumerate((4, 2, 3)):
            labels[row, :length] = rng.integers(1, 6, length)
        return [logits, labels]

    def masks(rng, dtype):
        shape = (2, 6, 5, 2)
        return [
            rng.uniform(0, 1, shape).astype(dtype),
            (rng.uniform(size=shape) < 0.4).astype(dtype),
        ]

    def sparse_ignore(rng, dtype):
        x, y = logits_sparse(rng, dtype)
        y[:3] = 0
        return [x, y]

    made = [
        *loss_class("MeanSquaredError", regression),
        function("mean_squared_error", regression),
        *loss_class("MeanAbsoluteError", regression, weighted=False),
        *loss_class("MeanAbsolutePercentageError", positive, weighted=False),
        *loss_class("MeanSquaredLogarithmicError", positive, weighted=False),
        *loss_class("Huber", regression, weighted=False, delta=0.7),
        *loss_class("LogCosh", regression, weighted=False),
        *loss_class("Poisson", positive, weighted=False),
        *loss_class("KLDivergence", probabilities, weighted=False),
        *loss_class("CosineSimilarity", regression, weighted=False),
        *loss_class("Hinge", binary_logits, weighted=False),
        function("hinge", scores_signs, label="hinge(±1 labels)"),
        *loss_class("SquaredHinge", binary_logits, weighted=False),
        *loss_class("CategoricalHinge", logits_onehot, weighted=False),
        *loss_class("BinaryCrossentropy", binary_probs, weighted=False),
        *loss_class(
            "BinaryCrossentropy",
            binary_logits,
            label="BinaryCrossentropy(from_logits, label_smoothing)",
            from_logits=True,
            label_smoothing=0.1,
        ),
        *loss_class("BinaryFocalCrossentropy", binary_probs, weighted=False),
        *loss_class(
            "BinaryFocalCrossentropy",
            binary_logits,
            label="BinaryFocalCrossentropy(class balancing, from_logits, smoothing)",
            weighted=False,
            apply_class_balancing=True,
            alpha=0.3,
            gamma=1.5,
            from_logits=True,
            label_smoothing=0.1,
        ),
        *loss_class("CategoricalCrossentropy", probs_onehot, weighted=False),
        *loss_class(
            "CategoricalCrossentropy",
            logits_soft,
            label="CategoricalCrossentropy(from_logits, label_smoothing)",
            weighted=False,
            from_logits=True,
            label_smoothing=0.2,
        ),
        *loss_class("CategoricalFocalCrossentropy", probs_onehot, weighted=False),
        *loss_class(
            "CategoricalFocalCrossentropy",
            logits_soft,
            label="CategoricalFocalCrossentropy(from_logits, alpha, gamma, smoothing)",
            weighted=False,
            from_logits=True,
            alpha=0.4,
            gamma=1.5,
            label_smoothing=0.1,
        ),
        *loss_class("SparseCategoricalCrossentropy", probs_sparse, weighted=False),
        *loss_class(
            "SparseCategoricalCrossentropy",
            sparse_ignore,
            label="SparseCategoricalCrossentropy(from_logits, ignore_class=0)",
            from_logits=True,
            ignore_class=0,
        ),
        *loss_class("CategoricalGeneralizedCrossEntropy", probs_sparse, weighted=False, q=0.7),
        *loss_class("Circle", _with(embeddings, _classes((n,), 3)), gamma=16.0, margin=0.3),
        *loss_class("CTC", ctc_draw, batch=3),
        *loss_class("Dice", masks, weighted=False),
        *loss_class("Dice", masks, label="Dice(axis=(1, 2))", weighted=False, axis=(1, 2)),
        *loss_class("Tversky", masks, weighted=False, alpha=0.3, beta=0.7),
        *loss_class(
            "Tversky", masks, label="Tversky(axis=(1, 2, 3))", weighted=False, axis=(1, 2, 3)
        ),
    ]
    return made


# optax.losses exports without a compared counterpart, and why.
OPTAX_LEFT_OUT = {
    "ctc_loss_with_forward_probs": (
        "its extra outputs are optax's own lattice (log-alpha of its blank and label states, "
        "floored at log_epsilon, in its padding convention); its loss is `ctc_loss`, compared"
    ),
}


@functools.cache
def comparisons() -> tuple[Comparison, ...]:
    """Every comparison of every reference library."""
    return tuple(
        _optax_comparisons()
        + _optax_segmentation_comparisons()
        + _keras_comparisons()
        + _monai_comparisons()
        + _smp_comparisons()
    )


def libraries() -> list[str]:
    return sorted({c.library for c in comparisons()})
