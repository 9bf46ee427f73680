"""Seeded random parity cases: every criterion over torch's whole argument space.

A `Case` is one call of a torch.nn.functional loss: positional arrays (NumPy), options
and which positional arguments to differentiate. Each criterion declares one or more *option
spaces* (``@space``): named options with the values to try, and a function that draws the inputs
for one combination. `cases` takes either every combination (``coverage="full"``) or a
pairwise covering array of them (``coverage="pairwise"``, the default: every value of every
option and every pair of values of any two options), in each regime: 'normal' values, or 'hard'
ones (logits of +-50 and beyond, probabilities exactly 0 and 1, zeros in KL targets, every label
ignored). A case's inputs are drawn from a generator seeded by (seed, criterion, regime, label),
so the same id always names the same inputs, in either coverage and in any selection.
The same cases feed the test-suite and the report.
"""

from __future__ import annotations

import dataclasses
import math
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from .covering import full_product, pairwise

REDUCTIONS = ("none", "mean", "sum")
BOOLS = (False, True)
# Deprecated (size_average, reduce) pairs; torch derives the reduction from each.
LEGACY = ((False, None), (None, False), (True, True), (False, True))
REGIMES = ("normal", "hard")
DTYPES = ("float64", "float32")
COVERAGES = ("pairwise", "full")


@dataclasses.dataclass(frozen=True)
class Distance:
    """A named distance function for triplet_margin_with_distance_loss, built per framework."""

    name: str

    def __repr__(self) -> str:
        return self.name


@dataclasses.dataclass
class Case:
    criterion: str
    args: tuple
    kwargs: dict
    grad_argnums: tuple
    label: str
    regime: str = "normal"
    # Multiplies the absolute tolerance where float32 rounding grows with the problem, not
    # with the inputs: CTC's alpha·beta/p over T frames carries errors of eps·|log p|, and
    # torch's own float32 gradient is that far from float64 at T=400.
    atol_scale: float = 1.0

    def describe(self) -> str:
        return f"{self.criterion}[{self.label}]"

    @property
    def dtype(self) -> np.dtype:
        """The floating dtype of the case's inputs."""
        return next(a.dtype for a in self.args if isinstance(a, np.ndarray) and a.dtype.kind == "f")

    @property
    def id(self) -> str:
        """A pytest id: criterion, dtype, regime and options."""
        return f"{self.criterion}-{self.dtype.name}-{self.regime}-{self.label}"

    @property
    def library(self) -> str:
        """'torch' or 'torchvision': where the reference function lives."""
        return SPACES[self.criterion][0].library


@dataclasses.dataclass(frozen=True)
class Call:
    """What a space's builder returns: the torch call's arguments for one combination."""

    args: tuple
    kwargs: dict
    grad_argnums: tuple
    atol_scale: float = 1.0


Builder = Callable[..., Call]


@dataclasses.dataclass(frozen=True)
class OptionSpace:
    criterion: str
    options: Mapping[str, Sequence[Any]]
    build: Builder
    regimes: tuple[str, ...] = REGIMES
    # Where the reference lives: "torch" (torch.nn.functional, against jaxloss.compat.functional)
    # or "torchvision" (torchvision.ops, against jaxloss.compat.torchvision).
    library: str = "torch"


SPACES: dict[str, list[OptionSpace]] = {}


def space(
    criterion: str,
    *,
    regimes: tuple[str, ...] = REGIMES,
    library: str = "torch",
    **options: Sequence[Any],
):
    """Registers `build(draw, regime, **combination) -> Call` over the given option values."""

    def register(build: Builder) -> Builder:
        SPACES.setdefault(criterion, []).append(
            OptionSpace(criterion, options, build, regimes, library)
        )
        return build

    return register


def _format(value: Any) -> str:
    """Option values as characters that `pytest -k` accepts (word characters, : + - . /)."""
    if isinstance(value, tuple):
        if all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value):
            return "x".join(str(v) for v in value) if value else "scalar"
        return "+".join(_format(v) for v in value)
    if isinstance(value, float) and math.isfinite(value) and value == int(value):
        return f"{value:.1f}"
    return str(value)


def _label(options: Mapping[str, Any]) -> str:
    return "/".join(f"{key}:{_format(value)}" for key, value in options.items())


class _Draw:
    """Draws inputs of one dtype from one seeded generator."""

    def __init__(self, seed: Any, dtype, shape_seed: Any = None):
        self.rng = np.random.default_rng(seed)
        # Sizes come from a generator shared by a criterion's cases in one regime: the cases
        # differ in values and options but reuse the shapes, so jitted kernels compile once.
        self.sizes = np.random.default_rng(seed if shape_seed is None else shape_seed)
        self.dtype = np.dtype(dtype)

    def normal(self, shape, scale=1.0):
        return np.asarray(self.rng.standard_normal(shape) * scale, self.dtype)

    def uniform(self, shape, low=0.0, high=1.0):
        return np.asarray(self.rng.uniform(low, high, shape), self.dtype)

    def probabilities(self, shape, axis):
        logits = self.rng.standard_normal(shape) * 2
        e = np.exp(logits - logits.max(axis=axis, keepdims=True))
        return np.asarray(e / e.sum(axis=axis, keepdims=True), self.dtype)

    def signs(self, shape):
        return np.asarray(np.where(self.rng.random(shape) < 0.5, -1.0, 1.0), self.dtype)

    def integers(self, low, high, shape):
        return np.asarray(self.rng.integers(low, high, shape), np.int64)


def _case_seed(seed: int, *parts: str) -> list[int]:
    return [seed] + [zlib.crc32(part.encode()) for part in parts]


def cases(
    criterion: str,
    *,
    seed: int,
    dtypes: Sequence[Any] = DTYPES,
    regimes: Sequence[str] = REGIMES,
    coverage: str = "pairwise",
) -> list[Case]:
    """The cases of one criterion, inputs drawn from `seed`.

    The dtype and the regime are two more options of each space: ``coverage="full"`` takes
    every combination of everything; ``"pairwise"`` a covering array in which every option
    value also meets each dtype and each regime.
    """
    if coverage not in COVERAGES:
        raise ValueError(f"coverage must be one of {COVERAGES}; got {coverage!r}")
    combine = pairwise if coverage == "pairwise" else full_product
    dtype_names = tuple(np.dtype(d).name for d in dtypes)
    out = []
    for option_space in SPACES[criterion]:
        space_regimes = tuple(r for r in regimes if r in option_space.regimes)
        if not space_regimes or not dtype_names:
            continue
        space_options = dict(option_space.options, dtype=dtype_names, regime=space_regimes)
        for combination in combine(space_options):
            dtype, regime = combination.pop("dtype"), combination.pop("regime")
            label = _label(combination)
            draw = _Draw(
                _case_seed(seed, criterion, regime, label),
                dtype,
                shape_seed=_case_seed(seed, criterion, regime),
            )
            call = option_space.build(draw, regime, **combination)
            out.append(
                Case(
                    criterion,
                    call.args,
                    call.kwargs,
                    call.grad_argnums,
                    label,
                    regime,
                    call.atol_scale,
                )
            )
    return out


def _with_legacy(options: dict, legacy: tuple) -> dict:
    size_average, reduce = legacy
    return dict(options, size_average=size_average, reduce=reduce)


# ----------------------------------------------------------------------------- classification

CLASS_KINDS = ("batched", "unbatched", "kdim1", "kdim2")


def _class_layout(draw: _Draw, kind: str):
    """(input shape with classes on axis 1, index-target shape, C, class axis) of torch's
    layouts: (N, C), unbatched (C,), and K-dimensional (N, C, d1[, d2])."""
    n, c = int(draw.sizes.integers(2, 6)), int(draw.sizes.integers(2, 7))
    d1, d2 = int(draw.sizes.integers(1, 4)), int(draw.sizes.integers(2, 4))
    shape, target = {
        "batched": ((n, c), (n,)),
        "unbatched": ((c,), ()),
        "kdim1": ((n, c, d1), (n, d1)),
        "kdim2": ((n, c, d1, d2), (n, d1, d2)),
    }[kind]
    return shape, target, c, 0 if kind == "unbatched" else 1


def _class_weight(draw, c):
    return draw.uniform((c,), 0.1, 2.0)


# -100 (torch's default), a real class, and 255 (the segmentation "void" label).
IGNORE_INDICES = (-100, "a-class", 255)


def _ignore_value(draw, ignore_index, c):
    return int(draw.rng.integers(0, c)) if ignore_index == "a-class" else ignore_index


@space(
    "cross_entropy",
    target=("index",),
    kind=CLASS_KINDS,
    weighted=BOOLS,
    label_smoothing=(0.0, 0.3, 1.0),
    reduction=REDUCTIONS,
    ignore_index=IGNORE_INDICES,
)
def _cross_entropy_index(
    draw, regime, target, kind, weighted, label_smoothing, reduction, ignore_index
):
    shape, target_shape, c, _ = _class_layout(draw, kind)
    logits = draw.normal(shape, 50.0 if regime == "hard" else 2.0)
    index = _ignore_value(draw, ignore_index, c)
    labels = draw.integers(0, c, target_shape)
    if regime == "hard":
        labels[...] = index  # every label ignored: 'mean' is nan
    elif labels.ndim:
        labels.flat[0] = index
    options = dict(reduction=reduction, label_smoothing=label_smoothing, ignore_index=index)
    if weighted:
        options["weight"] = _class_weight(draw, c)
    return Call((logits, labels), options, (0,))


@space(
    "cross_entropy",
    target=("probability",),
    kind=CLASS_KINDS,
    weighted=BOOLS,
    label_smoothing=(0.0, 0.3, 1.0),
    reduction=REDUCTIONS,
)
def _cross_entropy_probability(draw, regime, target, kind, weighted, label_smoothing, reduction):
    shape, _, c, axis = _class_layout(draw, kind)
    logits = draw.normal(shape, 50.0 if regime == "hard" else 2.0)
    probabilities = draw.probabilities(shape, axis)
    if regime == "hard":  # one-hot rows: probabilities exactly 0 and 1
        probabilities = (probabilities == probabilities.max(axis=axis, keepdims=True)).astype(
            draw.dtype
        )
    options = dict(reduction=reduction, label_smoothing=label_smoothing)
    if weighted:
        options["weight"] = _class_weight(draw, c)
    return Call((logits, probabilities), options, (0, 1))


@space("cross_entropy", regimes=("hard",), masked=("-inf",), kind=CLASS_KINDS)
def _cross_entropy_masked_logits(draw, regime, masked, kind):
    """-inf logits (a vocabulary mask) on a class that is never the label."""
    shape, target_shape, c, axis = _class_layout(draw, kind)
    logits = draw.normal(shape, 3.0)
    logits[(slice(None),) * axis + (c - 1,)] = -np.inf
    return Call((logits, np.zeros(target_shape, np.int64)), dict(reduction="none"), (0,))


@space("cross_entropy", legacy=LEGACY)
def _cross_entropy_legacy(draw, regime, legacy):
    return Call((draw.normal((4, 3)), draw.integers(0, 3, (4,))), _with_legacy({}, legacy), (0,))


@space(
    "nll_loss", kind=CLASS_KINDS, weighted=BOOLS, reduction=REDUCTIONS, ignore_index=IGNORE_INDICES
)
def _nll_loss(draw, regime, kind, weighted, reduction, ignore_index):
    shape, target_shape, c, axis = _class_layout(draw, kind)
    if regime == "hard":
        log_probs = draw.normal(shape, 100.0)  # nll does not require normalised input
    else:
        log_probs = np.log(draw.probabilities(shape, axis)).astype(draw.dtype)
    index = _ignore_value(draw, ignore_index, c)
    labels = draw.integers(0, c, target_shape)
    if regime == "hard":
        labels[...] = index
    elif labels.ndim:
        labels.flat[-1] = index
    options = dict(reduction=reduction, ignore_index=index)
    if weighted:
        options["weight"] = _class_weight(draw, c)
    return Call((log_probs, labels), options, (0,))


@space("nll_loss", legacy=LEGACY)
def _nll_loss_legacy(draw, regime, legacy):
    return Call((draw.normal((3, 4)), draw.integers(0, 4, (3,))), _with_legacy({}, legacy), (0,))


@space(
    "kl_div",
    shape=((4, 5), (6,), (2, 3, 4), ()),
    log_target=BOOLS,
    reduction=("none", "mean", "sum", "batchmean"),
)
def _kl_div(draw, regime, shape, log_target, reduction):
    def distribution():
        return draw.probabilities(shape, -1) if shape else draw.uniform(shape, 0.1, 1)

    log_predictions = np.asarray(np.log(distribution()), draw.dtype)  # 0-d stays an array
    target = distribution()
    if regime == "hard" and shape:
        target = np.where(draw.rng.random(shape) < 0.3, 0.0, target).astype(draw.dtype)
        target.flat[0] = 1.0
    if log_target:
        # log(0) = -inf is a valid log-target (exp gives 0); the hard regime exercises it.
        with np.errstate(divide="ignore"):
            target = np.asarray(np.log(target), draw.dtype)
    grads = (0,) if (regime == "hard" and log_target) else (0, 1)
    return Call((log_predictions, target), dict(reduction=reduction, log_target=log_target), grads)


@space("kl_div", legacy=LEGACY)
def _kl_div_legacy(draw, regime, legacy):
    x, t = np.log(draw.probabilities((3, 4), -1)), draw.probabilities((3, 4), -1)
    return Call((x, t), _with_legacy({}, legacy), (0, 1))


def _broadcast_weight(draw, shape, kind):
    """A weight of the input's shape, of its last axis, or of its first axis (then ones)."""
    return {
        "full": lambda: draw.uniform(shape, 0.1, 2.0),
        "last-axis": lambda: draw.uniform(shape[-1:], 0.1, 2.0),
        "first-axis": lambda: draw.uniform(shape[:1] + (1,) * (len(shape) - 1), 0.1, 2.0),
    }[kind]()


def _weight_kinds(shape):
    return (
        (None, "full")
        + (("last-axis",) if len(shape) >= 1 else ())
        + (("first-axis",) if len(shape) >= 2 else ())
    )


# Spaces are split by rank where the weights that apply depend on it.
for _shapes in (((4, 3), (2, 3, 2)), ((5,),), ((),)):

    @space(
        "binary_cross_entropy",
        shape=_shapes,
        weight=_weight_kinds(_shapes[0]),
        reduction=REDUCTIONS,
    )
    def _binary_cross_entropy(draw, regime, shape, weight, reduction):
        probs, target, grads = draw.uniform(shape, 0.02, 0.98), draw.uniform(shape), (0, 1)
        if regime == "hard":
            # probabilities exactly 0 and 1 with hard 0/1 targets: the -100 clamp decides.
            probs = draw.rng.choice([0.0, 1.0, 0.5, 1e-30], shape).astype(draw.dtype)
            target = draw.rng.choice([0.0, 1.0], shape).astype(draw.dtype)
            grads = (0,)
        options: dict[str, Any] = dict(reduction=reduction)
        if weight is not None:
            options["weight"] = _broadcast_weight(draw, shape, weight)
        return Call((probs, target), options, grads)

    @space(
        "binary_cross_entropy_with_logits",
        shape=_shapes,
        weight=_weight_kinds(_shapes[0]),
        pos_weight=(None, "full") + (("last-axis",) if _shapes[0] else ()),
        reduction=REDUCTIONS,
    )
    def _binary_cross_entropy_with_logits(draw, regime, shape, weight, pos_weight, reduction):
        logits = draw.normal(shape, 80.0 if regime == "hard" else 2.0)
        target = draw.uniform(shape)
        if regime == "hard":
            target = draw.rng.choice([0.0, 1.0], shape).astype(draw.dtype)
        options: dict[str, Any] = dict(reduction=reduction)
        if weight is not None:
            options["weight"] = _broadcast_weight(draw, shape, weight)
        if pos_weight is not None:
            options["pos_weight"] = np.asarray(
                _broadcast_weight(draw, shape, pos_weight) * 1.5, draw.dtype
            )
        return Call((logits, target), options, (0, 1))


@space("binary_cross_entropy", legacy=LEGACY)
def _binary_cross_entropy_legacy(draw, regime, legacy):
    return Call(
        (draw.uniform((3, 2), 0.1, 0.9), draw.uniform((3, 2))), _with_legacy({}, legacy), (0, 1)
    )


@space("binary_cross_entropy_with_logits", legacy=LEGACY)
def _binary_cross_entropy_with_logits_legacy(draw, regime, legacy):
    return Call((draw.normal((3, 2)), draw.uniform((3, 2))), _with_legacy({}, legacy), (0, 1))


@space(
    "multilabel_soft_margin_loss", shape=((5,),), weight=(None, "last-axis"), reduction=REDUCTIONS
)
@space(
    "multilabel_soft_margin_loss",
    shape=((4, 3), (2, 3, 4)),
    weight=(None, "last-axis", "per-sample"),
    reduction=REDUCTIONS,
)
def _multilabel_soft_margin_loss(draw, regime, shape, weight, reduction):
    x = draw.normal(shape, 60.0 if regime == "hard" else 1.0)
    y = draw.rng.choice([0.0, 1.0], shape).astype(draw.dtype)
    options: dict[str, Any] = dict(reduction=reduction)
    if weight == "last-axis":
        options["weight"] = draw.uniform(shape[-1:], 0.1, 2.0)
    elif weight == "per-sample":
        options["weight"] = draw.uniform(shape[:-1] + (1,), 0.1, 2.0)
    return Call((x, y), options, (0, 1))


@space("multilabel_soft_margin_loss", legacy=LEGACY)
def _multilabel_soft_margin_loss_legacy(draw, regime, legacy):
    return Call((draw.normal((3, 2)), draw.uniform((3, 2))), _with_legacy({}, legacy), (0, 1))


@space(
    "multi_margin_loss",
    shape=((5, 4), (6,)),
    p=(1, 2),
    margin=(1.0, 0.3),
    weighted=BOOLS,
    reduction=REDUCTIONS,
)
def _multi_margin_loss(draw, regime, shape, p, margin, weighted, reduction):
    c = shape[-1]
    x = draw.normal(shape, 20.0 if regime == "hard" else 1.0)
    y = draw.integers(0, c, shape[:-1])
    options: dict[str, Any] = dict(p=p, margin=margin, reduction=reduction)
    if weighted:
        options["weight"] = _class_weight(draw, c)
    return Call((x, y), options, (0,))


@space("multi_margin_loss", legacy=LEGACY)
def _multi_margin_loss_legacy(draw, regime, legacy):
    return Call((draw.normal((3, 4)), draw.integers(0, 4, (3,))), _with_legacy({}, legacy), (0,))


def _multilabel_targets(draw, shape):
    """Rows of target classes, each list ended by -1 (or full), with junk after the -1."""
    c = shape[-1]
    rows = []
    for _ in range(int(np.prod(shape[:-1]))):
        k = int(draw.rng.integers(0, c + 1))
        row = np.concatenate([draw.rng.permutation(c)[:k], draw.integers(-1, c, (c - k,))])
        if k < c:
            row[k] = -1
        rows.append(row)
    return np.asarray(rows, np.int64).reshape(shape)


@space("multilabel_margin_loss", shape=((4, 5), (6,), (3, 2)), reduction=REDUCTIONS)
def _multilabel_margin_loss(draw, regime, shape, reduction):
    x = draw.normal(shape, 30.0 if regime == "hard" else 1.0)
    return Call((x, _multilabel_targets(draw, shape)), dict(reduction=reduction), (0,))


@space("multilabel_margin_loss", legacy=LEGACY)
def _multilabel_margin_loss_legacy(draw, regime, legacy):
    x, y = draw.normal((3, 4)), _multilabel_targets(draw, (3, 4))
    return Call((x, y), _with_legacy({}, legacy), (0,))


@space("soft_margin_loss", shape=((4, 3), (5,), ()), reduction=REDUCTIONS)
def _soft_margin_loss(draw, regime, shape, reduction):
    # |y·x| up to 50: beyond ~88 torch's log1p(exp(.)) overflows in float32 (we stay finite).
    x = draw.uniform(shape, -50, 50) if regime == "hard" else draw.normal(shape)
    # torch does not differentiate soft_margin_loss with respect to its target.
    return Call((x, draw.signs(shape)), dict(reduction=reduction), (0,))


@space("soft_margin_loss", legacy=LEGACY)
def _soft_margin_loss_legacy(draw, regime, legacy):
    return Call((draw.normal((3, 2)), draw.signs((3, 2))), _with_legacy({}, legacy), (0,))


# ----------------------------------------------------------------------------- regression

# (input shape, target shape): equal shapes of each rank, and a broadcast target.
REGRESSION_SHAPES = (
    ((4, 3), (4, 3)),
    ((5,), (5,)),
    ((2, 3, 2), (2, 3, 2)),
    ((), ()),
    ((4, 3), (1, 3)),
)


def _pointwise_space(criterion, *, weighted, legacy=True, int_targets=True, **options):
    """A regression criterion's spaces: shapes x options (x weight), integer targets, legacy."""

    @space(criterion, shapes=REGRESSION_SHAPES, weighted=BOOLS if weighted else (False,), **options)
    def build(draw, regime, shapes, weighted, **chosen):
        scale = 50.0 if regime == "hard" else 1.5
        x, t = draw.normal(shapes[0], scale), draw.normal(shapes[1], scale)
        if weighted:
            chosen["weight"] = draw.uniform(shapes[0], 0.1, 2.0)
        return Call((x, t), chosen, (0, 1))

    first = {name: values[0] for name, values in options.items()}
    if int_targets:

        @space(criterion, target=("int64",))
        def build_int(draw, regime, target):
            return Call((draw.normal((3, 2)), draw.integers(-3, 4, (3, 2))), dict(first), (0,))

    if legacy:

        @space(criterion, legacy=LEGACY)
        def build_legacy(draw, regime, legacy):
            return Call(
                (draw.normal((3, 2)), draw.normal((3, 2))), _with_legacy({}, legacy), (0, 1)
            )


_pointwise_space("l1_loss", weighted=True, reduction=REDUCTIONS)
_pointwise_space("mse_loss", weighted=True, reduction=REDUCTIONS)
# torch's huber backward fails on integer targets.
_pointwise_space(
    "huber_loss",
    weighted=True,
    legacy=False,
    int_targets=False,
    reduction=REDUCTIONS,
    delta=(1.0, 0.3, 2.5),
)
_pointwise_space("smooth_l1_loss", weighted=False, reduction=REDUCTIONS, beta=(1.0, 0.0, 0.4, 3.0))


@space(
    "poisson_nll_loss",
    shape=((4, 3), (5,), ()),
    log_input=BOOLS,
    full=BOOLS,
    eps=(1e-8, 0.5),
    reduction=REDUCTIONS,
)
def _poisson_nll_loss(draw, regime, shape, log_input, full, eps, reduction):
    counts = draw.rng.poisson(2.0, shape).astype(draw.dtype)
    if regime == "hard" and shape:
        counts.flat[0] = 0.0
        counts.flat[-1] = 1.0
    if log_input:
        x = draw.normal(shape, 4.0 if regime == "hard" else 1.0)
    else:
        x = draw.uniform(shape, 0.0 if regime == "hard" else 0.05, 4.0)
    return Call(
        (x, counts), dict(log_input=log_input, full=full, eps=eps, reduction=reduction), (0, 1)
    )


@space("poisson_nll_loss", target=("int64",))
def _poisson_nll_loss_int(draw, regime, target):
    counts = np.asarray(draw.rng.poisson(2.0, (3, 2)), np.int64)
    return Call((draw.normal((3, 2)), counts), {}, (0,))


@space("poisson_nll_loss", legacy=LEGACY)
def _poisson_nll_loss_legacy(draw, regime, legacy):
    x, t = draw.normal((3, 2)), draw.rng.poisson(2.0, (3, 2)).astype(draw.dtype)
    return Call((x, t), _with_legacy({}, legacy), (0, 1))


@space(
    "gaussian_nll_loss",
    var=("full", "one-short", "column", "row", "float"),
    full=BOOLS,
    eps=(1e-6, 0.1),
    reduction=REDUCTIONS,
)
def _gaussian_nll_loss(draw, regime, var, full, eps, reduction):
    n, d = 4, 3
    x, t = draw.normal((n, d)), draw.normal((n, d))
    options = dict(full=full, eps=eps, reduction=reduction)
    if var == "float":
        variance = float(draw.rng.uniform(0.05, 2.0)) if regime == "normal" else 0.0
        return Call((x, t, variance), options, (0, 1))
    shape = {"full": (n, d), "one-short": (n,), "column": (n, 1), "row": (1, d)}[var]
    variance = draw.uniform(shape, 0.05, 2.0)
    if regime == "hard":  # variances at and below eps are clamped; the gradient passes
        variance.flat[0] = 0.0
        variance.flat[-1] = eps / 10
    return Call((x, t, variance), options, (0, 1, 2))


@space(
    "gaussian_nll_loss",
    shapes=(((5,), (5,)), ((5,), ()), ((2, 3, 4), (2, 3)), ((2, 3, 4), (2, 1, 4))),
)
def _gaussian_nll_loss_shapes(draw, regime, shapes):
    shape, var_shape = shapes
    x, t, var = draw.normal(shape), draw.normal(shape), draw.uniform(var_shape, 0.1, 1.0)
    return Call((x, t, var), {}, (0, 1, 2))


# ----------------------------------------------------------------------------- embedding


@space("margin_ranking_loss", shape=((6,), ()), margin=(0, 0.5, -0.2), reduction=REDUCTIONS)
def _margin_ranking_loss(draw, regime, shape, margin, reduction):
    scale = 50.0 if regime == "hard" else 1.0
    x1, x2, y = draw.normal(shape, scale), draw.normal(shape, scale), draw.signs(shape)
    return Call((x1, x2, y), dict(margin=margin, reduction=reduction), (0, 1, 2))


@space("margin_ranking_loss", legacy=LEGACY)
def _margin_ranking_loss_legacy(draw, regime, legacy):
    x1, x2, y = draw.normal((4,)), draw.normal((4,)), draw.signs((4,))
    return Call((x1, x2, y), _with_legacy({}, legacy), (0, 1, 2))


@space(
    "hinge_embedding_loss", shape=((4, 3), (5,), ()), margin=(1.0, 0.5, 2.0), reduction=REDUCTIONS
)
def _hinge_embedding_loss(draw, regime, shape, margin, reduction):
    x = draw.normal(shape, 20.0 if regime == "hard" else 1.0)
    y = draw.signs(shape)
    if regime == "hard" and shape:
        y.flat[0] = 0.0  # neither 1 nor -1: torch applies both terms
    return Call((x, y), dict(margin=margin, reduction=reduction), (0,))


@space("hinge_embedding_loss", legacy=LEGACY)
def _hinge_embedding_loss_legacy(draw, regime, legacy):
    return Call((draw.normal((3, 2)), draw.signs((3, 2))), _with_legacy({}, legacy), (0,))


@space(
    "cosine_embedding_loss",
    shapes=(((5, 4), (5,)), ((3,), ())),
    margin=(0, 0.3, -0.5),
    reduction=REDUCTIONS,
)
def _cosine_embedding_loss(draw, regime, shapes, margin, reduction):
    shape, target_shape = shapes
    x1, x2, y = draw.normal(shape), draw.normal(shape), draw.signs(target_shape)
    if regime == "hard" and target_shape:
        x2[0] = x1[0]  # identical pair: cosine 1
        x1[1] = 0.0  # zero vector: torch's epsilon keeps it finite
        y.flat[-1] = 0.0  # neither 1 nor -1: contributes 0
    return Call((x1, x2, y), dict(margin=margin, reduction=reduction), (0, 1))


@space("cosine_embedding_loss", legacy=LEGACY)
def _cosine_embedding_loss_legacy(draw, regime, legacy):
    x1, x2, y = draw.normal((3, 4)), draw.normal((3, 4)), draw.signs((3,))
    return Call((x1, x2, y), _with_legacy({}, legacy), (0, 1))


TRIPLET_SHAPES = (((5, 4),) * 3, ((3,),) * 3, ((2, 3, 4),) * 3, ((5, 4), (1, 4), (5, 4)))


@space(
    "triplet_margin_loss",
    shapes=TRIPLET_SHAPES,
    margin=(1.0, 0.2),
    p=(2, 1, 3.0, float("inf")),
    eps=(1e-6, 0.1),
    swap=BOOLS,
    reduction=REDUCTIONS,
)
def _triplet_margin_loss(draw, regime, shapes, margin, p, eps, swap, reduction):
    scale = 20.0 if regime == "hard" else 1.0
    a, pos, neg = (draw.normal(s, scale) for s in shapes)
    return Call(
        (a, pos, neg), dict(margin=margin, p=p, eps=eps, swap=swap, reduction=reduction), (0, 1, 2)
    )


@space("triplet_margin_loss", legacy=LEGACY)
def _triplet_margin_loss_legacy(draw, regime, legacy):
    a, pos, neg = draw.normal((3, 4)), draw.normal((3, 4)), draw.normal((3, 4))
    return Call((a, pos, neg), _with_legacy({}, legacy), (0, 1, 2))


DISTANCES = (
    None,
    Distance("cosine"),
    Distance("l1"),
    Distance("squared_euclidean"),
    Distance("pairwise_module"),
)


@space(
    "triplet_margin_with_distance_loss",
    shapes=TRIPLET_SHAPES[:3],
    distance_function=DISTANCES,
    margin=(1.0, 0.3),
    swap=BOOLS,
    reduction=REDUCTIONS,
)
def _triplet_margin_with_distance_loss(
    draw, regime, shapes, distance_function, margin, swap, reduction
):
    scale = 20.0 if regime == "hard" else 1.0
    a, pos, neg = (draw.normal(s, scale) for s in shapes)
    options = dict(
        distance_function=distance_function, margin=margin, swap=swap, reduction=reduction
    )
    return Call((a, pos, neg), options, (0, 1, 2))


# ----------------------------------------------------------------------------- sequence


def _ctc_targets(draw, batch, classes, width, blank, lengths):
    """Padded (N, S) targets without the blank; row 0 repeats a label (a blank must separate
    the two), padding past each length holds arbitrary classes."""
    choices = np.array([c for c in range(classes) if c != blank])
    targets = choices[draw.integers(0, len(choices), (batch, width))]
    if width >= 2 and lengths[0] >= 2:
        targets[0, 1] = targets[0, 0]
    return targets.astype(np.int64)


def _ctc_log_probs(draw, regime, shape):
    logits = draw.normal(shape, 50.0 if regime == "hard" else 1.5)
    if regime == "hard" and shape[-1] > 3:
        logits[..., 3] = draw.normal(shape[:-1], 3.0)  # torch does not require normalised
        return logits  # log-probs; neither does jaxloss
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return (shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))).astype(draw.dtype)


CTC_CLASSES = 6
# Target layout and the blank it is tried with (0, the last class, a middle class).
CTC_LAYOUTS = (("padded", 0), ("concatenated", CTC_CLASSES - 1), ("tuple-lengths", 2))


@space("ctc_loss", layout=CTC_LAYOUTS, reduction=REDUCTIONS, zero_infinity=BOOLS)
def _ctc_loss(draw, regime, layout, reduction, zero_infinity):
    (layout, blank), steps, batch, width = layout, 12, 4, 5
    input_lengths = draw.integers(8, steps + 1, (batch,))
    input_lengths[0] = steps
    target_lengths = draw.integers(1, width + 1, (batch,))
    target_lengths[-1] = 0  # an empty target
    target_lengths[0] = width
    targets = _ctc_targets(draw, batch, CTC_CLASSES, width, blank, target_lengths)
    if layout == "concatenated":
        targets = np.concatenate([targets[i, :n] for i, n in enumerate(target_lengths)])
    lengths: tuple = (input_lengths, target_lengths)
    if layout == "tuple-lengths":
        lengths = tuple(tuple(int(v) for v in a) for a in lengths)
    options = dict(blank=blank, reduction=reduction, zero_infinity=zero_infinity)
    log_probs = _ctc_log_probs(draw, regime, (steps, batch, CTC_CLASSES))
    return Call((log_probs, targets, *lengths), options, (0,))


@space("ctc_loss", layout=("tight-or-impossible",), reduction=REDUCTIONS, zero_infinity=BOOLS)
def _ctc_loss_alignments(draw, regime, layout, reduction, zero_infinity):
    """As many frames as labels (one path), a repeat that needs one frame more than it has, a
    target longer than its input, and a normal row."""
    targets = _ctc_targets(draw, 4, CTC_CLASSES, 4, 0, np.full(4, 4))
    targets[0] = [1, 2, 3, 4]
    targets[1] = [1, 1, 2, 3]
    lengths = (np.array([4, 4, 3, 10]), np.array([4, 4, 4, 3]))
    log_probs = _ctc_log_probs(draw, regime, (10, 4, CTC_CLASSES))
    return Call(
        (log_probs, targets, *lengths), dict(reduction=reduction, zero_infinity=zero_infinity), (0,)
    )


def _ctc_unbatched(draw, regime, steps, width, reduction):
    target = _ctc_targets(draw, 1, CTC_CLASSES, width, 0, np.array([width]))[0]
    log_probs = _ctc_log_probs(draw, regime, (steps, CTC_CLASSES))
    return Call(
        (log_probs, target, np.array(steps), np.array(width)),
        dict(reduction=reduction),
        (0,),
        atol_scale=float(steps) if steps > 100 else 1.0,
    )


@space("ctc_loss", layout=("unbatched",), steps=(9,), reduction=REDUCTIONS)
def _ctc_loss_unbatched(draw, regime, layout, steps, reduction):
    return _ctc_unbatched(draw, regime, steps, 3, reduction)


@space("ctc_loss", regimes=("normal",), layout=("unbatched",), steps=(400,), reduction=REDUCTIONS)
def _ctc_loss_long(draw, regime, layout, steps, reduction):
    return _ctc_unbatched(draw, regime, steps, 60, reduction)


# ----------------------------------------------------------------------------- detection
# torchvision.ops' box losses, box IoUs and focal loss (against jaxloss.compat.torchvision).

BOX_LAYOUTS = ("random", "identical", "nested", "touching", "disjoint", "zero-area")
BOX_SHAPES = ("n", "batched", "single")


def _random_boxes(draw, shape, scale):
    corner = draw.uniform(shape + (2,), 0.0, 10.0) * scale
    size = draw.uniform(shape + (2,), 0.5, 6.0) * scale
    return np.concatenate([corner, corner + size], axis=-1)


def _box_pair(draw, regime, layout, shape):
    """Predictions and targets (shape + (4,)) in one of the layouts; the hard regime puts
    them at coordinates near 1e5 with sizes near 1e3 (large coordinates, float32 rounding)."""
    scale = 100.0 if regime == "hard" else 1.0
    target = _random_boxes(draw, shape, scale)
    prediction = _random_boxes(draw, shape, scale)
    width, height = target[..., 2] - target[..., 0], target[..., 3] - target[..., 1]
    if layout == "identical":
        prediction = target.copy()
    elif layout == "nested":
        inset = draw.uniform(shape + (4,), 0.05, 0.4) * np.stack([width, height] * 2, -1)
        prediction = target + inset * np.array([1, 1, -1, -1])
    elif layout == "touching":  # sharing an edge (x2 of one = x1 of the other)
        prediction = target.copy()
        prediction[..., 0] = target[..., 2]
        prediction[..., 2] = target[..., 2] + width
    elif layout == "disjoint":
        prediction = target + np.stack([width, height] * 2, -1) * 1.5
    elif layout == "zero-area":  # zero width in one coordinate, zero height in another
        prediction[..., 2] = prediction[..., 0]
        if prediction.ndim > 1 and prediction.shape[-2] > 1:
            prediction[..., 1, 2] = prediction[..., 1, 0] + 1.0
            prediction[..., 1, 3] = prediction[..., 1, 1]
    offset = 1e5 if regime == "hard" else 0.0
    return (np.asarray(prediction + offset, draw.dtype), np.asarray(target + offset, draw.dtype))


def _box_shape(draw, shape):
    n = int(draw.sizes.integers(2, 6))
    return {"n": (n,), "batched": (2, n), "single": ()}[shape]


for _loss in ("generalized_box_iou_loss", "distance_box_iou_loss", "complete_box_iou_loss"):

    @space(
        _loss,
        library="torchvision",
        layout=BOX_LAYOUTS,
        shape=BOX_SHAPES,
        eps=(1e-7, 1e-3),
        reduction=REDUCTIONS,
    )
    def _box_loss(draw, regime, layout, shape, eps, reduction):
        boxes = _box_pair(draw, regime, layout, _box_shape(draw, shape))
        return Call(boxes, dict(reduction=reduction, eps=eps), (0, 1))


def _batched(layout):
    """Half the layouts are drawn with a leading batch axis, (2, N, 4) against (2, M, 4)."""
    return BOX_LAYOUTS.index(layout) % 2 == 1


def _pairwise_boxes(draw, regime, layout, batched):
    n, m = int(draw.sizes.integers(1, 5)), int(draw.sizes.integers(2, 5))
    lead = (2,) if batched else ()
    first, _ = _box_pair(draw, regime, layout, lead + (n,))
    second, _ = _box_pair(draw, regime, "random", lead + (m,))
    second[..., 0, :] = first[..., 0, :]  # one identical pair
    return first, second


@space("box_iou", library="torchvision", layout=BOX_LAYOUTS, fmt=("xyxy", "xywh", "cxcywh"))
def _box_iou(draw, regime, layout, fmt):
    first, second = _pairwise_boxes(draw, regime, layout, _batched(layout))
    if fmt != "xyxy":  # the same boxes written in `fmt`

        def written(b):
            w, h = b[..., 2] - b[..., 0], b[..., 3] - b[..., 1]
            if fmt == "xywh":
                return np.stack([b[..., 0], b[..., 1], w, h], -1)
            return np.stack([b[..., 0] + w / 2, b[..., 1] + h / 2, w, h], -1)

        first, second = written(first), written(second)
    return Call((first, second), dict(fmt=fmt), (0, 1))


for _pairwise in ("generalized_box_iou", "distance_box_iou", "complete_box_iou"):

    @space(_pairwise, library="torchvision", layout=BOX_LAYOUTS)
    def _pairwise_iou(draw, regime, layout):
        return Call(_pairwise_boxes(draw, regime, layout, _batched(layout)), {}, (0, 1))


FOCAL_SHAPES = ("n", "nc", "ncd")


def _focal_inputs(draw, regime, shape):
    n, c = int(draw.sizes.integers(2, 6)), int(draw.sizes.integers(2, 5))
    dims = {"n": (n,), "nc": (n, c), "ncd": (n, c, 3)}[shape]
    inputs = draw.normal(dims, 50.0 if regime == "hard" else 2.0)
    targets = np.round(draw.uniform(dims)) if regime == "hard" else draw.uniform(dims)
    if regime == "normal":
        targets.flat[0], targets.flat[-1] = 0.0, 1.0
    return inputs, np.asarray(targets, draw.dtype)


@space(
    "sigmoid_focal_loss",
    library="torchvision",
    shape=FOCAL_SHAPES,
    alpha=(0.25, -1, 0.0, 1.0),
    gamma=(0.0, 2.0, 3.0),
    reduction=REDUCTIONS,
)
def _sigmoid_focal(draw, regime, shape, alpha, gamma, reduction):
    inputs, targets = _focal_inputs(draw, regime, shape)
    return Call((inputs, targets), dict(alpha=alpha, gamma=gamma, reduction=reduction), (0, 1))


# γ < 1 only on unsaturated logits: at a saturated one torch's gradient is nan (0**(γ-1) * 0)
# and jaxloss's the exact, finite limit (tests/test_focal.py checks that regime).
@space(
    "sigmoid_focal_loss",
    regimes=("normal",),
    library="torchvision",
    shape=FOCAL_SHAPES,
    alpha=(0.25, -1),
    gamma=(0.5,),
    reduction=REDUCTIONS,
)
def _sigmoid_focal_fractional(draw, regime, shape, alpha, gamma, reduction):
    return _sigmoid_focal(draw, regime, shape, alpha, gamma, reduction)


# ----------------------------------------------------------------------------- registry

# torch.nn.functional's criteria, torchvision.ops' functions, and both.
CRITERIA: tuple[str, ...] = tuple(c for c in SPACES if SPACES[c][0].library == "torch")
TORCHVISION_CRITERIA: tuple[str, ...] = tuple(
    c for c in SPACES if SPACES[c][0].library == "torchvision"
)
ALL_CRITERIA: tuple[str, ...] = CRITERIA + TORCHVISION_CRITERIA

# torch.nn module name for each functional criterion (for the report).
MODULE_NAMES = {
    "l1_loss": "L1Loss",
    "mse_loss": "MSELoss",
    "cross_entropy": "CrossEntropyLoss",
    "nll_loss": "NLLLoss",
    "poisson_nll_loss": "PoissonNLLLoss",
    "gaussian_nll_loss": "GaussianNLLLoss",
    "kl_div": "KLDivLoss",
    "binary_cross_entropy": "BCELoss",
    "binary_cross_entropy_with_logits": "BCEWithLogitsLoss",
    "margin_ranking_loss": "MarginRankingLoss",
    "hinge_embedding_loss": "HingeEmbeddingLoss",
    "multilabel_margin_loss": "MultiLabelMarginLoss",
    "huber_loss": "HuberLoss",
    "smooth_l1_loss": "SmoothL1Loss",
    "soft_margin_loss": "SoftMarginLoss",
    "multilabel_soft_margin_loss": "MultiLabelSoftMarginLoss",
    "cosine_embedding_loss": "CosineEmbeddingLoss",
    "multi_margin_loss": "MultiMarginLoss",
    "triplet_margin_loss": "TripletMarginLoss",
    "triplet_margin_with_distance_loss": "TripletMarginWithDistanceLoss",
    "ctc_loss": "CTCLoss",
}


def display_name(criterion: str) -> str:
    """torch.nn's module name of a criterion, or torchvision.ops' function name."""
    if criterion in MODULE_NAMES:
        return MODULE_NAMES[criterion]
    return f"torchvision.ops.{criterion}"


def all_cases(
    *, seed: int, coverage: str = "pairwise", criteria: Sequence[str] = ALL_CRITERIA
) -> Iterator[Case]:
    for criterion in criteria:
        yield from cases(criterion, seed=seed, coverage=coverage)


def edge_cases(*, seed: int, dtype: Any) -> list[Case]:
    """Broadcasting between inputs (torch broadcasts these, with a warning) and empty batches
    (torch: 'mean' over nothing is nan, 'sum' is 0)."""
    draw = _Draw(_case_seed(seed, "edge"), dtype)
    probs = draw.uniform((1, 3), 0.05, 1.0)
    many = draw.uniform((4, 3), 0.05, 1.0)
    return [
        Case("kl_div", (np.log(many), probs), dict(reduction="batchmean"), (0, 1), "bcast-target"),
        Case("kl_div", (np.log(probs), many), dict(reduction="batchmean"), (0, 1), "bcast-input"),
        Case("mse_loss", (draw.normal((1, 3)), draw.normal((4, 3))), {}, (0, 1), "bcast-input"),
        Case(
            "l1_loss",
            (draw.normal((4, 1)), draw.normal((1, 3))),
            dict(reduction="none"),
            (0, 1),
            "bcast-both",
        ),
        Case(
            "smooth_l1_loss",
            (draw.normal((4, 1)), draw.normal((1, 3))),
            dict(reduction="sum", beta=0.5),
            (0, 1),
            "bcast-both",
        ),
        Case(
            "gaussian_nll_loss",
            (draw.normal((4, 3)), draw.normal((1, 3)), draw.uniform((4, 1), 0.1, 1.0)),
            {},
            (0, 1, 2),
            "bcast-target",
        ),
        Case(
            "margin_ranking_loss",
            (draw.normal((4,)), draw.normal((1,)), draw.signs((4,))),
            {},
            (0, 1),
            "bcast",
        ),
        Case(
            "hinge_embedding_loss",
            (draw.normal((4, 3)), -np.ones(3, draw.dtype)),
            {},
            (0,),
            "bcast-target",
        ),
        Case("cross_entropy", (draw.normal((0, 3)), np.zeros(0, np.int64)), {}, (0,), "empty-mean"),
        Case(
            "cross_entropy",
            (draw.normal((0, 3)), np.zeros(0, np.int64)),
            dict(reduction="sum"),
            (0,),
            "empty-sum",
        ),
        Case("l1_loss", (draw.normal((0, 3)), draw.normal((0, 3))), {}, (0,), "empty-mean"),
    ]
