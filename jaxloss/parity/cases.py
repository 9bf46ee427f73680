"""Seeded random parity cases: every criterion over torch's whole argument space.

A :class:`Case` is one call of a torch.nn.functional loss: positional arrays (NumPy), options
and which positional arguments to differentiate. :func:`all_cases` draws fresh inputs from a
seed for every combination of options, shape kind (batched, unbatched, K-dimensional) and
regime ('normal' values, or 'hard': logits of +-50 and beyond, probabilities exactly 0 and 1,
zeros in KL targets, every label ignored). The same cases feed the test-suite and the report.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any, Callable, Iterator

import numpy as np

REDUCTIONS = ("none", "mean", "sum")
# Deprecated (size_average, reduce) pairs and the reduction torch derives from each.
LEGACY = ((False, None), (None, False), (True, True), (False, True))


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


def _label(**options: Any) -> str:
    parts = []
    for key, value in options.items():
        if isinstance(value, np.ndarray):
            value = f"array{list(value.shape)}"
        parts.append(f"{key}={value}")
    return ",".join(parts)


class _Draw:
    """Draws inputs of one dtype from one seeded generator."""

    def __init__(self, seed: int, dtype):
        self.rng = np.random.default_rng(seed)
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


def _legacy_cases(criterion, args, grad_argnums, regime):
    """The deprecated size_average/reduce pairs on one input."""
    for size_average, reduce in LEGACY:
        options = dict(size_average=size_average, reduce=reduce)
        yield Case(criterion, args, options, grad_argnums, _label(**options), regime)


def _class_shapes(draw: _Draw):
    """(kind, input shape with classes on axis 1, index-target shape) for torch's layouts."""
    n, c = int(draw.rng.integers(2, 6)), int(draw.rng.integers(2, 7))
    d1, d2 = int(draw.rng.integers(1, 4)), int(draw.rng.integers(2, 4))
    return [
        ("batched", (n, c), (n,)),
        ("unbatched", (c,), ()),
        ("kdim1", (n, c, d1), (n, d1)),
        ("kdim2", (n, c, d1, d2), (n, d1, d2)),
    ]


def _class_weight(draw, c):
    return draw.uniform((c,), 0.1, 2.0)


def cross_entropy_cases(draw: _Draw, regime: str) -> Iterator[Case]:
    for kind, shape, target_shape in _class_shapes(draw):
        c = shape[0] if kind == "unbatched" else shape[1]
        axis = 0 if kind == "unbatched" else 1
        for target_kind, weighted, smoothing in itertools.product(
                ("index", "probability"), (False, True), (0.0, 0.3, 1.0)):
            for reduction in REDUCTIONS:
                logits = draw.normal(shape, 50.0 if regime == "hard" else 2.0)
                weight = _class_weight(draw, c) if weighted else None
                options = dict(reduction=reduction, label_smoothing=smoothing)
                if weight is not None:
                    options["weight"] = weight
                if target_kind == "probability":
                    target = draw.probabilities(shape, axis)
                    if regime == "hard":  # one-hot rows: probabilities exactly 0 and 1
                        target = (target == target.max(axis=axis, keepdims=True)).astype(
                            draw.dtype)
                    yield Case("cross_entropy", (logits, target), options, (0, 1),
                               _label(kind=kind, target="prob", **options), regime)
                    continue
                target = draw.integers(0, c, target_shape)
                # -100 (torch default), a real class, and 255 (the segmentation "void" label).
                for ignore_index in (-100, int(draw.rng.integers(0, c)), 255):
                    labels = target.copy()
                    if regime == "hard":
                        labels[...] = ignore_index  # every label ignored: mean is nan
                    elif labels.ndim:
                        labels.flat[0] = ignore_index
                    yield Case("cross_entropy", (logits, labels),
                               dict(options, ignore_index=ignore_index), (0,),
                               _label(kind=kind, ignore_index=ignore_index, **options), regime)
        if regime == "hard":
            # -inf logits (a vocabulary mask) on classes that are never the label.
            logits = draw.normal(shape, 3.0)
            labels = np.zeros(target_shape, np.int64)
            logits[(slice(None),) * axis + (c - 1,)] = -np.inf
            yield Case("cross_entropy", (logits, labels), dict(reduction="none"), (0,),
                       _label(kind=kind, masked="-inf"), regime)
    logits = draw.normal((4, 3))
    labels = draw.integers(0, 3, (4,))
    yield from _legacy_cases("cross_entropy", (logits, labels), (0,), regime)


def nll_loss_cases(draw: _Draw, regime: str) -> Iterator[Case]:
    for kind, shape, target_shape in _class_shapes(draw):
        c = shape[0] if kind == "unbatched" else shape[1]
        axis = 0 if kind == "unbatched" else 1
        for weighted, reduction in itertools.product((False, True), REDUCTIONS):
            log_probs = np.log(draw.probabilities(shape, axis)).astype(draw.dtype)
            if regime == "hard":
                log_probs = draw.normal(shape, 100.0)  # nll does not require normalised input
            options = dict(reduction=reduction)
            if weighted:
                options["weight"] = _class_weight(draw, c)
            for ignore_index in (-100, int(draw.rng.integers(0, c)), 255):
                labels = draw.integers(0, c, target_shape)
                if regime == "hard":
                    labels[...] = ignore_index
                elif labels.ndim:
                    labels.flat[-1] = ignore_index
                yield Case("nll_loss", (log_probs, labels), dict(options, ignore_index=ignore_index),
                           (0,), _label(kind=kind, ignore_index=ignore_index, **options), regime)
    log_probs = draw.normal((3, 4))
    labels = draw.integers(0, 4, (3,))
    yield from _legacy_cases("nll_loss", (log_probs, labels), (0,), regime)


def kl_div_cases(draw: _Draw, regime: str) -> Iterator[Case]:
    for shape, log_target, reduction in itertools.product(
            ((4, 5), (6,), (2, 3, 4), ()), (False, True),
            ("none", "mean", "sum", "batchmean")):
        log_pred = np.log(draw.probabilities(shape, -1) if shape else draw.uniform(shape, 0.1, 1))
        log_pred = np.asarray(log_pred, draw.dtype)
        target = draw.probabilities(shape, -1) if shape else draw.uniform(shape, 0.1, 1)
        if regime == "hard" and shape:
            target = np.where(draw.rng.random(shape) < 0.3, 0.0, target).astype(draw.dtype)
            target.flat[0] = 1.0
        if log_target:
            # log(0) = -inf is a valid log-target (exp gives 0); exercise it in the hard regime.
            with np.errstate(divide="ignore"):
                target = np.asarray(np.log(target), draw.dtype)
        options = dict(reduction=reduction, log_target=log_target)
        grads = (0, 1) if not (regime == "hard" and log_target) else (0,)
        yield Case("kl_div", (log_pred.astype(draw.dtype), target), options, grads,
                   _label(shape=list(shape), **options), regime)
    x, t = np.log(draw.probabilities((3, 4), -1)), draw.probabilities((3, 4), -1)
    yield from _legacy_cases("kl_div", (x, t), (0, 1), regime)


def _broadcast_weights(draw, shape):
    yield None
    yield draw.uniform(shape, 0.1, 2.0)
    if len(shape) >= 1:
        yield draw.uniform(shape[-1:], 0.1, 2.0)
    if len(shape) >= 2:
        yield draw.uniform(shape[:1] + (1,) * (len(shape) - 1), 0.1, 2.0)


def binary_cross_entropy_cases(draw: _Draw, regime: str) -> Iterator[Case]:
    for shape in ((4, 3), (5,), (2, 3, 2), ()):
        for weight, reduction in itertools.product(list(_broadcast_weights(draw, shape)),
                                                   REDUCTIONS):
            probs = draw.uniform(shape, 0.02, 0.98)
            target = draw.uniform(shape)
            grads = (0, 1)
            if regime == "hard":
                # probabilities exactly 0 and 1 with hard 0/1 targets: the -100 clamp decides.
                probs = draw.rng.choice([0.0, 1.0, 0.5, 1e-30], shape).astype(draw.dtype)
                target = draw.rng.choice([0.0, 1.0], shape).astype(draw.dtype)
                grads = (0,)
            options = dict(reduction=reduction)
            if weight is not None:
                options["weight"] = weight
            yield Case("binary_cross_entropy", (probs, target), options, grads,
                       _label(shape=list(shape), **options), regime)
    probs, target = draw.uniform((3, 2), 0.1, 0.9), draw.uniform((3, 2))
    yield from _legacy_cases("binary_cross_entropy", (probs, target), (0, 1), regime)


def binary_cross_entropy_with_logits_cases(draw: _Draw, regime: str) -> Iterator[Case]:
    for shape in ((4, 3), (5,), (2, 3, 2), ()):
        pos_weights = [None] + ([draw.uniform(shape[-1:], 0.1, 3.0)] if shape else []) + [
            draw.uniform(shape, 0.1, 3.0)]
        for weight, pos_weight, reduction in itertools.product(
                list(_broadcast_weights(draw, shape)), pos_weights, REDUCTIONS):
            logits = draw.normal(shape, 80.0 if regime == "hard" else 2.0)
            target = draw.uniform(shape)
            if regime == "hard":
                target = draw.rng.choice([0.0, 1.0], shape).astype(draw.dtype)
            options = dict(reduction=reduction)
            if weight is not None:
                options["weight"] = weight
            if pos_weight is not None:
                options["pos_weight"] = pos_weight
            yield Case("binary_cross_entropy_with_logits", (logits, target), options, (0, 1),
                       _label(shape=list(shape), **options), regime)
    logits, target = draw.normal((3, 2)), draw.uniform((3, 2))
    yield from _legacy_cases("binary_cross_entropy_with_logits", (logits, target), (0, 1), regime)


def _regression_pairs(draw, regime):
    scale = 50.0 if regime == "hard" else 1.5
    for shape, target_shape in (((4, 3), (4, 3)), ((5,), (5,)), ((2, 3, 2), (2, 3, 2)),
                                ((), ()), ((4, 3), (1, 3))):
        yield shape, draw.normal(shape, scale), draw.normal(target_shape, scale)


def _pointwise_cases(name, draw, regime, option_grid, weighted, legacy=True, int_targets=True):
    for shape, x, t in _regression_pairs(draw, regime):
        for values in itertools.product(*option_grid.values()):
            options = dict(zip(option_grid, values))
            for use_weight in ((False, True) if weighted else (False,)):
                opts = dict(options)
                if use_weight:
                    opts["weight"] = draw.uniform(shape, 0.1, 2.0)
                yield Case(name, (x, t), opts, (0, 1),
                           _label(shape=list(shape), target=list(t.shape), **opts), regime)
    if int_targets:
        x, t = draw.normal((3, 2)), draw.integers(-3, 4, (3, 2))
        first_options = {k: v[0] for k, v in option_grid.items()}
        yield Case(name, (x, t), first_options, (0,), _label(target="int64", **first_options),
                   regime)
    if legacy:
        x, t = draw.normal((3, 2)), draw.normal((3, 2))
        yield from _legacy_cases(name, (x, t), (0, 1), regime)


def l1_loss_cases(draw, regime):
    yield from _pointwise_cases("l1_loss", draw, regime, dict(reduction=REDUCTIONS), True)


def mse_loss_cases(draw, regime):
    yield from _pointwise_cases("mse_loss", draw, regime, dict(reduction=REDUCTIONS), True)


def huber_loss_cases(draw, regime):
    yield from _pointwise_cases("huber_loss", draw, regime,
                                dict(reduction=REDUCTIONS, delta=(1.0, 0.3, 2.5)), True,
                                # torch's huber backward fails on integer targets
                                legacy=False, int_targets=False)


def smooth_l1_loss_cases(draw, regime):
    yield from _pointwise_cases("smooth_l1_loss", draw, regime,
                                dict(reduction=REDUCTIONS, beta=(1.0, 0.0, 0.4, 3.0)), False)


def poisson_nll_loss_cases(draw: _Draw, regime: str) -> Iterator[Case]:
    for shape, log_input, full, eps, reduction in itertools.product(
            ((4, 3), (5,), ()), (True, False), (False, True), (1e-8, 0.5), REDUCTIONS):
        counts = draw.rng.poisson(2.0, shape).astype(draw.dtype)
        if regime == "hard" and shape:
            counts.flat[0] = 0.0
            counts.flat[-1] = 1.0
        if log_input:
            x = draw.normal(shape, 4.0 if regime == "hard" else 1.0)
        else:
            x = draw.uniform(shape, 0.0 if regime == "hard" else 0.05, 4.0)
        options = dict(log_input=log_input, full=full, eps=eps, reduction=reduction)
        yield Case("poisson_nll_loss", (x, counts), options, (0, 1),
                   _label(shape=list(shape), **options), regime)
    counts = np.asarray(draw.rng.poisson(2.0, (3, 2)), np.int64)
    yield Case("poisson_nll_loss", (draw.normal((3, 2)), counts), {}, (0,),
               _label(target="int64"), regime)
    x, t = draw.normal((3, 2)), draw.rng.poisson(2.0, (3, 2)).astype(draw.dtype)
    yield from _legacy_cases("poisson_nll_loss", (x, t), (0, 1), regime)


def gaussian_nll_loss_cases(draw: _Draw, regime: str) -> Iterator[Case]:
    n, d = 4, 3
    var_shapes = [("full", (n, d)), ("one-short", (n,)), ("column", (n, 1)), ("row", (1, d)),
                  ("float", None)]
    for (var_kind, var_shape), full, eps, reduction in itertools.product(
            var_shapes, (False, True), (1e-6, 0.1), REDUCTIONS):
        x, t = draw.normal((n, d)), draw.normal((n, d))
        if var_shape is None:
            var = float(draw.rng.uniform(0.05, 2.0)) if regime == "normal" else 0.0
            args, grads = (x, t, var), (0, 1)
        else:
            var = draw.uniform(var_shape, 0.05, 2.0)
            if regime == "hard":  # variances at and below eps are clamped, gradient passes
                var.flat[0] = 0.0
                var.flat[-1] = eps / 10
            args, grads = (x, t, var), (0, 1, 2)
        options = dict(full=full, eps=eps, reduction=reduction)
        yield Case("gaussian_nll_loss", args, options, grads,
                   _label(var=var_kind, **options), regime)
    for shape, var_shape in (((5,), (5,)), ((5,), ()), ((2, 3, 4), (2, 3)),
                             ((2, 3, 4), (2, 1, 4))):
        x, t, var = draw.normal(shape), draw.normal(shape), draw.uniform(var_shape, 0.1, 1.0)
        yield Case("gaussian_nll_loss", (x, t, var), dict(), (0, 1, 2),
                   _label(shape=list(shape), var=list(var_shape)), regime)


def margin_ranking_loss_cases(draw: _Draw, regime: str) -> Iterator[Case]:
    for shape, margin, reduction in itertools.product(((6,), ()), (0, 0.5, -0.2), REDUCTIONS):
        scale = 50.0 if regime == "hard" else 1.0
        x1, x2, y = draw.normal(shape, scale), draw.normal(shape, scale), draw.signs(shape)
        options = dict(margin=margin, reduction=reduction)
        yield Case("margin_ranking_loss", (x1, x2, y), options, (0, 1, 2),
                   _label(shape=list(shape), **options), regime)
    x1, x2, y = draw.normal((4,)), draw.normal((4,)), draw.signs((4,))
    yield from _legacy_cases("margin_ranking_loss", (x1, x2, y), (0, 1, 2), regime)


def hinge_embedding_loss_cases(draw: _Draw, regime: str) -> Iterator[Case]:
    for shape, margin, reduction in itertools.product(((4, 3), (5,), ()), (1.0, 0.5, 2.0),
                                                      REDUCTIONS):
        x = draw.normal(shape, 20.0 if regime == "hard" else 1.0)
        y = draw.signs(shape)
        if regime == "hard" and shape:
            y.flat[0] = 0.0  # neither 1 nor -1: torch applies both terms
        options = dict(margin=margin, reduction=reduction)
        yield Case("hinge_embedding_loss", (x, y), options, (0,),
                   _label(shape=list(shape), **options), regime)
    x, y = draw.normal((3, 2)), draw.signs((3, 2))
    yield from _legacy_cases("hinge_embedding_loss", (x, y), (0,), regime)


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


def multilabel_margin_loss_cases(draw: _Draw, regime: str) -> Iterator[Case]:
    for shape, reduction in itertools.product(((4, 5), (6,), (3, 2)), REDUCTIONS):
        x = draw.normal(shape, 30.0 if regime == "hard" else 1.0)
        y = _multilabel_targets(draw, shape)
        options = dict(reduction=reduction)
        yield Case("multilabel_margin_loss", (x, y), options, (0,),
                   _label(shape=list(shape), **options), regime)
    x, y = draw.normal((3, 4)), _multilabel_targets(draw, (3, 4))
    yield from _legacy_cases("multilabel_margin_loss", (x, y), (0,), regime)


def soft_margin_loss_cases(draw: _Draw, regime: str) -> Iterator[Case]:
    for shape, reduction in itertools.product(((4, 3), (5,), ()), REDUCTIONS):
        # |y·x| up to 50: beyond ~88 torch's log1p(exp(.)) overflows in float32 (we stay finite).
        x = draw.uniform(shape, -50, 50) if regime == "hard" else draw.normal(shape)
        y = draw.signs(shape)
        options = dict(reduction=reduction)
        # torch does not differentiate soft_margin_loss with respect to its target.
        yield Case("soft_margin_loss", (x, y), options, (0,),
                   _label(shape=list(shape), **options), regime)
    x, y = draw.normal((3, 2)), draw.signs((3, 2))
    yield from _legacy_cases("soft_margin_loss", (x, y), (0,), regime)


def multilabel_soft_margin_loss_cases(draw: _Draw, regime: str) -> Iterator[Case]:
    for shape in ((4, 3), (5,), (2, 3, 4)):
        weights = [None, draw.uniform(shape[-1:], 0.1, 2.0)]
        if len(shape) >= 2:
            weights.append(draw.uniform(shape[:-1] + (1,), 0.1, 2.0))
        for weight, reduction in itertools.product(weights, REDUCTIONS):
            x = draw.normal(shape, 60.0 if regime == "hard" else 1.0)
            y = draw.rng.choice([0.0, 1.0], shape).astype(draw.dtype)
            options = dict(reduction=reduction)
            if weight is not None:
                options["weight"] = weight
            yield Case("multilabel_soft_margin_loss", (x, y), options, (0, 1),
                       _label(shape=list(shape), **options), regime)
    x, y = draw.normal((3, 2)), draw.uniform((3, 2))
    yield from _legacy_cases("multilabel_soft_margin_loss", (x, y), (0, 1), regime)


def cosine_embedding_loss_cases(draw: _Draw, regime: str) -> Iterator[Case]:
    for (shape, target_shape), margin, reduction in itertools.product(
            (((5, 4), (5,)), ((3,), ())), (0, 0.3, -0.5), REDUCTIONS):
        x1, x2 = draw.normal(shape), draw.normal(shape)
        y = draw.signs(target_shape)
        if regime == "hard" and target_shape:
            x2[0] = x1[0]           # identical pair: cosine 1
            x1[1] = 0.0             # zero vector: torch's epsilon keeps it finite
            y.flat[-1] = 0.0        # neither 1 nor -1: contributes 0
        options = dict(margin=margin, reduction=reduction)
        yield Case("cosine_embedding_loss", (x1, x2, y), options, (0, 1),
                   _label(shape=list(shape), **options), regime)
    x1, x2, y = draw.normal((3, 4)), draw.normal((3, 4)), draw.signs((3,))
    yield from _legacy_cases("cosine_embedding_loss", (x1, x2, y), (0, 1), regime)


def multi_margin_loss_cases(draw: _Draw, regime: str) -> Iterator[Case]:
    for shape, p, margin, weighted, reduction in itertools.product(
            ((5, 4), (6,)), (1, 2), (1.0, 0.3), (False, True), REDUCTIONS):
        c = shape[-1]
        x = draw.normal(shape, 20.0 if regime == "hard" else 1.0)
        y = draw.integers(0, c, shape[:-1])
        options = dict(p=p, margin=margin, reduction=reduction)
        if weighted:
            options["weight"] = _class_weight(draw, c)
        yield Case("multi_margin_loss", (x, y), options, (0,),
                   _label(shape=list(shape), **options), regime)
    x, y = draw.normal((3, 4)), draw.integers(0, 4, (3,))
    yield from _legacy_cases("multi_margin_loss", (x, y), (0,), regime)


def _triplet_shapes():
    return (((5, 4),) * 3, ((3,),) * 3, ((2, 3, 4),) * 3, ((5, 4), (1, 4), (5, 4)))


def triplet_margin_loss_cases(draw: _Draw, regime: str) -> Iterator[Case]:
    for shapes, margin, p, swap, reduction in itertools.product(
            _triplet_shapes(), (1.0, 0.2), (2, 1, 3.0, float("inf")), (False, True), REDUCTIONS):
        scale = 20.0 if regime == "hard" else 1.0
        a, pos, neg = (draw.normal(s, scale) for s in shapes)
        eps = float(draw.rng.choice([1e-6, 0.1]))
        options = dict(margin=margin, p=p, eps=eps, swap=swap, reduction=reduction)
        yield Case("triplet_margin_loss", (a, pos, neg), options, (0, 1, 2),
                   _label(shapes=[list(s) for s in shapes], **options), regime)
    a, pos, neg = draw.normal((3, 4)), draw.normal((3, 4)), draw.normal((3, 4))
    yield from _legacy_cases("triplet_margin_loss", (a, pos, neg), (0, 1, 2), regime)


DISTANCES = (None, Distance("cosine"), Distance("l1"), Distance("squared_euclidean"),
             Distance("pairwise_module"))


def triplet_margin_with_distance_loss_cases(draw: _Draw, regime: str) -> Iterator[Case]:
    for shapes, distance, margin, swap, reduction in itertools.product(
            _triplet_shapes()[:3], DISTANCES, (1.0, 0.3), (False, True), REDUCTIONS):
        scale = 20.0 if regime == "hard" else 1.0
        a, pos, neg = (draw.normal(s, scale) for s in shapes)
        options = dict(distance_function=distance, margin=margin, swap=swap, reduction=reduction)
        yield Case("triplet_margin_with_distance_loss", (a, pos, neg), options, (0, 1, 2),
                   _label(shapes=[list(s) for s in shapes], **options), regime)


def _ctc_targets(draw, batch, classes, width, blank, lengths):
    """Padded (N, S) targets without the blank; row 0 repeats a label (a blank must separate
    the two), padding past each length holds arbitrary classes."""
    choices = np.array([c for c in range(classes) if c != blank])
    targets = choices[draw.integers(0, len(choices), (batch, width))]
    if width >= 2 and lengths[0] >= 2:
        targets[0, 1] = targets[0, 0]
    return targets.astype(np.int64)


def ctc_loss_cases(draw: _Draw, regime: str) -> Iterator[Case]:
    scale = 50.0 if regime == "hard" else 1.5

    def log_probs(shape):
        logits = draw.normal(shape, scale)
        if regime == "hard" and shape[-1] > 3:
            logits[..., 3] = draw.normal(shape[:-1], 3.0)  # torch does not require normalised
            return logits                                   # log-probs; neither does jaxloss
        shifted = logits - logits.max(axis=-1, keepdims=True)
        return (shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))).astype(draw.dtype)

    steps, batch, classes, width = 12, 4, 6, 5
    for layout, blank in (("padded", 0), ("concatenated", classes - 1), ("tuple-lengths", 2)):
        input_lengths = draw.integers(8, steps + 1, (batch,))
        input_lengths[0] = steps
        target_lengths = draw.integers(1, width + 1, (batch,))
        target_lengths[-1] = 0                     # an empty target
        target_lengths[0] = width
        targets = _ctc_targets(draw, batch, classes, width, blank, target_lengths)
        if layout == "concatenated":
            targets = np.concatenate([targets[i, :n] for i, n in enumerate(target_lengths)])
        lengths = (input_lengths, target_lengths)
        if layout == "tuple-lengths":
            lengths = tuple(tuple(int(v) for v in a) for a in lengths)
        for reduction, zero_infinity in itertools.product(REDUCTIONS, (False, True)):
            options = dict(blank=blank, reduction=reduction, zero_infinity=zero_infinity)
            yield Case("ctc_loss", (log_probs((steps, batch, classes)), targets, *lengths),
                       options, (0,), _label(layout=layout, **options), regime)
    # Tight and impossible alignments: as many frames as labels (one path), a repeat that
    # needs one frame more than it has, a target longer than its input, and a normal row.
    targets = _ctc_targets(draw, 4, classes, 4, 0, np.full(4, 4))
    targets[0] = [1, 2, 3, 4]
    targets[1] = [1, 1, 2, 3]
    input_lengths = np.array([4, 4, 3, 10])
    target_lengths = np.array([4, 4, 4, 3])
    for reduction, zero_infinity in itertools.product(REDUCTIONS, (False, True)):
        options = dict(reduction=reduction, zero_infinity=zero_infinity)
        yield Case("ctc_loss", (log_probs((10, 4, classes)), targets, input_lengths,
                                target_lengths), options, (0,),
                   _label(layout="tight/impossible", **options), regime)
    # Unbatched (T, C) with 0-d lengths, and (normal regime) a long sequence.
    for steps, width in ((9, 3), (400, 60)) if regime == "normal" else ((9, 3),):
        target = _ctc_targets(draw, 1, classes, width, 0, np.array([width]))[0]
        for reduction in REDUCTIONS:
            yield Case("ctc_loss", (log_probs((steps, classes)), target, np.array(steps),
                                    np.array(width)), dict(reduction=reduction), (0,),
                       _label(layout=f"unbatched T={steps}", reduction=reduction), regime,
                       atol_scale=float(steps) if steps > 100 else 1.0)


CASE_BUILDERS: dict[str, Callable[[_Draw, str], Iterator[Case]]] = {
    "l1_loss": l1_loss_cases,
    "mse_loss": mse_loss_cases,
    "cross_entropy": cross_entropy_cases,
    "nll_loss": nll_loss_cases,
    "poisson_nll_loss": poisson_nll_loss_cases,
    "gaussian_nll_loss": gaussian_nll_loss_cases,
    "kl_div": kl_div_cases,
    "binary_cross_entropy": binary_cross_entropy_cases,
    "binary_cross_entropy_with_logits": binary_cross_entropy_with_logits_cases,
    "margin_ranking_loss": margin_ranking_loss_cases,
    "hinge_embedding_loss": hinge_embedding_loss_cases,
    "multilabel_margin_loss": multilabel_margin_loss_cases,
    "huber_loss": huber_loss_cases,
    "smooth_l1_loss": smooth_l1_loss_cases,
    "soft_margin_loss": soft_margin_loss_cases,
    "multilabel_soft_margin_loss": multilabel_soft_margin_loss_cases,
    "cosine_embedding_loss": cosine_embedding_loss_cases,
    "multi_margin_loss": multi_margin_loss_cases,
    "triplet_margin_loss": triplet_margin_loss_cases,
    "triplet_margin_with_distance_loss": triplet_margin_with_distance_loss_cases,
    "ctc_loss": ctc_loss_cases,
}

# torch.nn module name for each functional criterion (for the report).
MODULE_NAMES = {
    "l1_loss": "L1Loss", "mse_loss": "MSELoss", "cross_entropy": "CrossEntropyLoss",
    "nll_loss": "NLLLoss", "poisson_nll_loss": "PoissonNLLLoss",
    "gaussian_nll_loss": "GaussianNLLLoss", "kl_div": "KLDivLoss",
    "binary_cross_entropy": "BCELoss", "binary_cross_entropy_with_logits": "BCEWithLogitsLoss",
    "margin_ranking_loss": "MarginRankingLoss", "hinge_embedding_loss": "HingeEmbeddingLoss",
    "multilabel_margin_loss": "MultiLabelMarginLoss", "huber_loss": "HuberLoss",
    "smooth_l1_loss": "SmoothL1Loss", "soft_margin_loss": "SoftMarginLoss",
    "multilabel_soft_margin_loss": "MultiLabelSoftMarginLoss",
    "cosine_embedding_loss": "CosineEmbeddingLoss", "multi_margin_loss": "MultiMarginLoss",
    "triplet_margin_loss": "TripletMarginLoss",
    "triplet_margin_with_distance_loss": "TripletMarginWithDistanceLoss",
    "ctc_loss": "CTCLoss",
}


def cases(criterion: str, *, seed: int, dtype, regimes=("normal", "hard")) -> list[Case]:
    """Every case of one criterion, drawn from `seed`, in `dtype`."""
    out = []
    for index, regime in enumerate(regimes):
        draw = _Draw(seed * 1000 + index, dtype)
        out.extend(CASE_BUILDERS[criterion](draw, regime))
    return out


def edge_cases(*, seed: int, dtype) -> list[Case]:
    """Broadcasting between inputs (torch broadcasts these, with a warning) and empty batches
    (torch: 'mean' over nothing is nan, 'sum' is 0)."""
    draw = _Draw(seed * 1000 + 7, dtype)
    probs = draw.uniform((1, 3), 0.05, 1.0)
    many = draw.uniform((4, 3), 0.05, 1.0)
    return [
        Case("kl_div", (np.log(many), probs), dict(reduction="batchmean"), (0, 1), "bcast-target"),
        Case("kl_div", (np.log(probs), many), dict(reduction="batchmean"), (0, 1), "bcast-input"),
        Case("mse_loss", (draw.normal((1, 3)), draw.normal((4, 3))), {}, (0, 1), "bcast-input"),
        Case("l1_loss", (draw.normal((4, 1)), draw.normal((1, 3))), dict(reduction="none"), (0, 1),
             "bcast-both"),
        Case("smooth_l1_loss", (draw.normal((4, 1)), draw.normal((1, 3))),
             dict(reduction="sum", beta=0.5), (0, 1), "bcast-both"),
        Case("gaussian_nll_loss", (draw.normal((4, 3)), draw.normal((1, 3)),
                                   draw.uniform((4, 1), 0.1, 1.0)), {}, (0, 1, 2), "bcast-target"),
        Case("margin_ranking_loss", (draw.normal((4,)), draw.normal((1,)), draw.signs((4,))), {},
             (0, 1), "bcast"),
        Case("hinge_embedding_loss", (draw.normal((4, 3)), -np.ones(3, draw.dtype)), {}, (0,),
             "bcast-target"),
        Case("cross_entropy", (draw.normal((0, 3)), np.zeros(0, np.int64)), {}, (0,), "empty-mean"),
        Case("cross_entropy", (draw.normal((0, 3)), np.zeros(0, np.int64)),
             dict(reduction="sum"), (0,), "empty-sum"),
        Case("l1_loss", (draw.normal((0, 3)), draw.normal((0, 3))), {}, (0,), "empty-mean"),
    ]
