"""torch.nn's loss modules, with torch 2.13's class names and constructor signatures.

Instances hold their options (and ``weight``/``pos_weight`` as JAX arrays) and are called like
torch modules, ``loss(input, target)``; ``forward`` is the same call. Each forwards to
:mod:`jaxloss.compat.functional`, which maps onto the native functions. Instances are plain
Python objects: close over them in a jitted function, or pass arrays as arguments.
"""

from __future__ import annotations

import collections
import dataclasses
import math
from typing import Literal

import jax.numpy as jnp
import numpy as np

from .. import fused
from . import functional as F

__all__ = [
    "AdaptiveLogSoftmaxWithLoss",
    "BCELoss",
    "BCEWithLogitsLoss",
    "CosineEmbeddingLoss",
    "CosineSimilarity",
    "CTCLoss",
    "CrossEntropyLoss",
    "GaussianNLLLoss",
    "HingeEmbeddingLoss",
    "HuberLoss",
    "KLDivLoss",
    "L1Loss",
    "LinearCrossEntropyLoss",
    "LinearCrossEntropyOptions",
    "MSELoss",
    "MarginRankingLoss",
    "MultiLabelMarginLoss",
    "MultiLabelSoftMarginLoss",
    "MultiMarginLoss",
    "NLLLoss",
    "PairwiseDistance",
    "PoissonNLLLoss",
    "SmoothL1Loss",
    "SoftMarginLoss",
    "TripletMarginLoss",
    "TripletMarginWithDistanceLoss",
    "manual_seed",
]


def _optional_array(value):
    return None if value is None else jnp.asarray(value)


class _Loss:
    """Base of every loss module: resolves the legacy size_average/reduce into `reduction`."""

    _options: tuple[str, ...] = ()

    def __init__(self, size_average=None, reduce=None, reduction: str = "mean") -> None:
        if size_average is not None or reduce is not None:
            self.reduction = F.legacy_reduction(size_average, reduce, reduction)
        else:
            self.reduction = reduction

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._options
                          if getattr(self, name) is not None)
        return f"{type(self).__name__}({shown})"


class _WeightedLoss(_Loss):
    def __init__(self, weight=None, size_average=None, reduce=None,
                 reduction: str = "mean") -> None:
        super().__init__(size_average, reduce, reduction)
        self.weight = _optional_array(weight)


class L1Loss(_Loss):
    _options = ("reduction",)

    def __init__(self, size_average=None, reduce=None, reduction: str = "mean") -> None:
        super().__init__(size_average, reduce, reduction)

    def forward(self, input, target):
        return F.l1_loss(input, target, reduction=self.reduction)


class MSELoss(_Loss):
    _options = ("reduction",)

    def __init__(self, size_average=None, reduce=None, reduction: str = "mean") -> None:
        super().__init__(size_average, reduce, reduction)

    def forward(self, input, target):
        return F.mse_loss(input, target, reduction=self.reduction)


class CrossEntropyLoss(_WeightedLoss):
    _options = ("reduction", "ignore_index", "label_smoothing")

    def __init__(self, weight=None, size_average=None, ignore_index: int = -100, reduce=None,
                 reduction: str = "mean", label_smoothing: float = 0.0) -> None:
        super().__init__(weight, size_average, reduce, reduction)
        self.ignore_index = ignore_index
        self.label_smoothing = label_smoothing

    def forward(self, input, target):
        return F.cross_entropy(input, target, weight=self.weight, ignore_index=self.ignore_index,
                               reduction=self.reduction, label_smoothing=self.label_smoothing)


class CTCLoss(_Loss):
    _options = ("blank", "reduction", "zero_infinity")

    def __init__(self, blank: int = 0, reduction: str = "mean", zero_infinity: bool = False) -> None:
        super().__init__(reduction=reduction)
        self.blank = blank
        self.zero_infinity = zero_infinity

    def forward(self, log_probs, targets, input_lengths, target_lengths):
        return F.ctc_loss(log_probs, targets, input_lengths, target_lengths, self.blank,
                          self.reduction, self.zero_infinity)


class NLLLoss(_WeightedLoss):
    _options = ("reduction", "ignore_index")

    def __init__(self, weight=None, size_average=None, ignore_index: int = -100, reduce=None,
                 reduction: str = "mean") -> None:
        super().__init__(weight, size_average, reduce, reduction)
        self.ignore_index = ignore_index

    def forward(self, input, target):
        return F.nll_loss(input, target, weight=self.weight, ignore_index=self.ignore_index,
                          reduction=self.reduction)


class PoissonNLLLoss(_Loss):
    _options = ("log_input", "full", "eps", "reduction")

    def __init__(self, log_input: bool = True, full: bool = False, size_average=None,
                 eps: float = 1e-8, reduce=None, reduction: str = "mean") -> None:
        super().__init__(size_average, reduce, reduction)
        self.log_input = log_input
        self.full = full
        self.eps = eps

    def forward(self, log_input, target):
        return F.poisson_nll_loss(log_input, target, log_input=self.log_input, full=self.full,
                                  eps=self.eps, reduction=self.reduction)


class GaussianNLLLoss(_Loss):
    _options = ("full", "eps", "reduction")

    def __init__(self, *, full: bool = False, eps: float = 1e-6,
                 reduction: str = "mean") -> None:
        super().__init__(None, None, reduction)
        self.full = full
        self.eps = eps

    def forward(self, input, target, var):
        return F.gaussian_nll_loss(input, target, var, full=self.full, eps=self.eps,
                                   reduction=self.reduction)


class KLDivLoss(_Loss):
    _options = ("reduction", "log_target")

    def __init__(self, size_average=None, reduce=None, reduction: str = "mean",
                 log_target: bool = False) -> None:
        super().__init__(size_average, reduce, reduction)
        self.log_target = log_target

    def forward(self, input, target):
        return F.kl_div(input, target, reduction=self.reduction, log_target=self.log_target)


class BCELoss(_WeightedLoss):
    _options = ("reduction",)

    def __init__(self, weight=None, size_average=None, reduce=None,
                 reduction: str = "mean") -> None:
        super().__init__(weight, size_average, reduce, reduction)

    def forward(self, input, target):
        return F.binary_cross_entropy(input, target, weight=self.weight, reduction=self.reduction)


class BCEWithLogitsLoss(_Loss):
    _options = ("reduction",)

    def __init__(self, weight=None, size_average=None, reduce=None, reduction: str = "mean",
                 pos_weight=None) -> None:
        super().__init__(size_average, reduce, reduction)
        self.weight = _optional_array(weight)
        self.pos_weight = _optional_array(pos_weight)

    def forward(self, input, target):
        return F.binary_cross_entropy_with_logits(input, target, self.weight,
                                                  pos_weight=self.pos_weight,
                                                  reduction=self.reduction)


class MarginRankingLoss(_Loss):
    _options = ("margin", "reduction")

    def __init__(self, margin: float = 0.0, size_average=None, reduce=None,
                 reduction: str = "mean") -> None:
        super().__init__(size_average, reduce, reduction)
        self.margin = margin

    def forward(self, input1, input2, target):
        return F.margin_ranking_loss(input1, input2, target, margin=self.margin,
                                     reduction=self.reduction)


class HingeEmbeddingLoss(_Loss):
    _options = ("margin", "reduction")

    def __init__(self, margin: float = 1.0, size_average=None, reduce=None,
                 reduction: str = "mean") -> None:
        super().__init__(size_average, reduce, reduction)
        self.margin = margin

    def forward(self, input, target):
        return F.hinge_embedding_loss(input, target, margin=self.margin, reduction=self.reduction)


class MultiLabelMarginLoss(_Loss):
    _options = ("reduction",)

    def __init__(self, size_average=None, reduce=None, reduction: str = "mean") -> None:
        super().__init__(size_average, reduce, reduction)

    def forward(self, input, target):
        return F.multilabel_margin_loss(input, target, reduction=self.reduction)


class HuberLoss(_Loss):
    _options = ("reduction", "delta")

    def __init__(self, reduction: str = "mean", delta: float = 1.0) -> None:
        super().__init__(reduction=reduction)
        self.delta = delta

    def forward(self, input, target):
        return F.huber_loss(input, target, reduction=self.reduction, delta=self.delta)


class SmoothL1Loss(_Loss):
    _options = ("reduction", "beta")

    def __init__(self, size_average=None, reduce=None, reduction: str = "mean",
                 beta: float = 1.0) -> None:
        super().__init__(size_average, reduce, reduction)
        self.beta = beta

    def forward(self, input, target):
        return F.smooth_l1_loss(input, target, reduction=self.reduction, beta=self.beta)


class SoftMarginLoss(_Loss):
    _options = ("reduction",)

    def __init__(self, size_average=None, reduce=None, reduction: str = "mean") -> None:
        super().__init__(size_average, reduce, reduction)

    def forward(self, input, target):
        return F.soft_margin_loss(input, target, reduction=self.reduction)


class MultiLabelSoftMarginLoss(_WeightedLoss):
    _options = ("reduction",)

    def __init__(self, weight=None, size_average=None, reduce=None,
                 reduction: str = "mean") -> None:
        super().__init__(weight, size_average, reduce, reduction)

    def forward(self, input, target):
        return F.multilabel_soft_margin_loss(input, target, weight=self.weight,
                                             reduction=self.reduction)


class CosineEmbeddingLoss(_Loss):
    _options = ("margin", "reduction")

    def __init__(self, margin: float = 0.0, size_average=None, reduce=None,
                 reduction: str = "mean") -> None:
        super().__init__(size_average, reduce, reduction)
        self.margin = margin

    def forward(self, input1, input2, target):
        return F.cosine_embedding_loss(input1, input2, target, margin=self.margin,
                                       reduction=self.reduction)


class MultiMarginLoss(_WeightedLoss):
    _options = ("p", "margin", "reduction")

    def __init__(self, p: int = 1, margin: float = 1.0, weight=None, size_average=None,
                 reduce=None, reduction: str = "mean") -> None:
        super().__init__(weight, size_average, reduce, reduction)
        if p not in (1, 2):
            raise ValueError(f"MultiMarginLoss: `p` must be 1 or 2; got {p!r}.")
        if weight is not None and jnp.ndim(weight) != 1:
            raise ValueError(f"MultiMarginLoss: `weight` must be one-dimensional; got shape "
                             f"{list(jnp.shape(weight))}.")
        self.p = p
        self.margin = margin

    def forward(self, input, target):
        return F.multi_margin_loss(input, target, p=self.p, margin=self.margin,
                                   weight=self.weight, reduction=self.reduction)


class TripletMarginLoss(_Loss):
    _options = ("margin", "p", "eps", "swap", "reduction")

    def __init__(self, margin: float = 1.0, p: float = 2.0, eps: float = 1e-6, swap: bool = False,
                 size_average=None, reduce=None, reduction: str = "mean") -> None:
        super().__init__(size_average, reduce, reduction)
        if margin <= 0:
            raise ValueError(
                f"TripletMarginLoss: `margin` must be greater than 0; got {margin!r}.")
        self.margin = margin
        self.p = p
        self.eps = eps
        self.swap = swap

    def forward(self, anchor, positive, negative):
        return F.triplet_margin_loss(anchor, positive, negative, margin=self.margin, p=self.p,
                                     eps=self.eps, swap=self.swap, reduction=self.reduction)


class TripletMarginWithDistanceLoss(_Loss):
    _options = ("distance_function", "margin", "swap", "reduction")

    def __init__(self, *, distance_function=None, margin: float = 1.0, swap: bool = False,
                 reduction: str = "mean") -> None:
        super().__init__(None, None, reduction)
        if margin <= 0:
            raise ValueError(f"TripletMarginWithDistanceLoss: `margin` must be greater than 0; "
                             f"got {margin!r}.")
        self.distance_function = distance_function if distance_function is not None else (
            F.pairwise_distance)
        self.margin = margin
        self.swap = swap

    def forward(self, anchor, positive, negative):
        return F.triplet_margin_with_distance_loss(
            anchor, positive, negative, distance_function=self.distance_function,
            margin=self.margin, swap=self.swap, reduction=self.reduction)


class PairwiseDistance:
    """torch.nn.PairwiseDistance: the default distance of TripletMarginWithDistanceLoss."""

    def __init__(self, p: float = 2.0, eps: float = 1e-6, keepdim: bool = False) -> None:
        self.norm = p
        self.eps = eps
        self.keepdim = keepdim

    def forward(self, x1, x2):
        return F.pairwise_distance(x1, x2, self.norm, self.eps, self.keepdim)

    __call__ = forward


class CosineSimilarity:
    """torch.nn.CosineSimilarity; ``1 - CosineSimilarity(dim=-1)(u, v)`` is a common triplet
    distance."""

    def __init__(self, dim: int = 1, eps: float = 1e-8) -> None:
        self.dim = dim
        self.eps = eps

    def forward(self, x1, x2):
        return F.cosine_similarity(x1, x2, self.dim, self.eps)

    __call__ = forward


def _document(namespace):
    for name in __all__:
        cls = namespace[name]
        if not cls.__doc__:
            cls.__doc__ = (f"torch.nn.{name} with torch 2.13's constructor signature; "
                           "``loss(input, target)`` calls :mod:`jaxloss.compat.functional`.")


# ----------------------------------------------------------------------------- with parameters
# Modules that own weights (a linear head) initialise them as torch.nn.Linear does (uniform in
# ±1/sqrt(fan_in)), from a generator that manual_seed() resets, and load torch state dicts.

_generator = np.random.default_rng()


def manual_seed(seed: int) -> None:
    """Seeds the generator that initialises the parameters of compat modules (as
    torch.manual_seed does for torch's)."""
    global _generator
    _generator = np.random.default_rng(seed)


class _Linear:
    """The parameters of a torch.nn.Linear: ``weight`` (out, in) and optional ``bias``."""

    def __init__(self, in_features: int, out_features: int, bias: bool, dtype=None) -> None:
        self.in_features, self.out_features = in_features, out_features
        bound = 1.0 / math.sqrt(in_features) if in_features > 0 else 0.0
        dtype = jnp.float32 if dtype is None else dtype
        self.weight = jnp.asarray(
            _generator.uniform(-bound, bound, (out_features, in_features)), dtype)
        self.bias = (jnp.asarray(_generator.uniform(-bound, bound, (out_features,)), dtype)
                     if bias else None)

    def __repr__(self) -> str:
        return (f"Linear(in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None})")


class _HasParameters:
    """state_dict() / load_state_dict() over named _Linear layers, with torch's key names."""

    def _layers(self) -> dict:
        raise NotImplementedError

    def state_dict(self) -> dict:
        out = {}
        for prefix, layer in self._layers().items():
            out[f"{prefix}.weight"] = layer.weight
            if layer.bias is not None:
                out[f"{prefix}.bias"] = layer.bias
        return out

    def load_state_dict(self, state_dict) -> None:
        """Loads a torch (or jaxloss) state dict: every key must exist here with its shape."""
        ours = self.state_dict()
        missing = sorted(set(ours) - set(state_dict))
        unexpected = sorted(set(state_dict) - set(ours))
        if missing or unexpected:
            raise ValueError(f"{type(self).__name__}.load_state_dict: missing keys {missing}, "
                             f"unexpected keys {unexpected}.")
        layers = self._layers()
        for key, value in state_dict.items():
            array = np.asarray(value.detach().cpu().numpy() if hasattr(value, "detach")
                               else value)
            if array.shape != tuple(ours[key].shape):
                raise ValueError(f"{type(self).__name__}.load_state_dict: {key} has shape "
                                 f"{list(array.shape)}, expected {list(ours[key].shape)}.")
            prefix, name = key.rsplit(".", 1)
            setattr(layers[prefix], name, jnp.array(array, ours[key].dtype))


@dataclasses.dataclass
class LinearCrossEntropyOptions:
    """torch.nn.LinearCrossEntropyOptions. jaxloss always runs chunked; it honours
    ``batch_chunk_size`` (rows per chunk) and accepts the other fields for compatibility."""

    allow_retain_graph: bool = False
    batch_chunk_size: int | None = None
    chunking_method: str | None = "auto"
    acc_policy: Literal["accurate", "balanced", "compact", "auto"] = "auto"
    acc_dtype: object = None


class LinearCrossEntropyLoss(_WeightedLoss, _HasParameters):
    """torch.nn.LinearCrossEntropyLoss: a Linear head (``self.linear``) and cross-entropy,
    computed by :func:`jaxloss.linear_cross_entropy` without materialising the logits."""

    _options = ("num_classes", "out_features", "reduction", "ignore_index", "label_smoothing")

    def __init__(self, in_features: int, num_classes: int, *, out_features: tuple = (),
                 bias: bool = False, device=None, dtype=None, reduction: str = "mean",
                 weight=None, ignore_index=None, label_smoothing: float = 0.0,
                 options=None) -> None:
        if weight is not None and tuple(jnp.shape(weight)) != (num_classes,):
            raise ValueError(f"LinearCrossEntropyLoss: expected weight shape ({num_classes},), "
                             f"got {tuple(jnp.shape(weight))}.")
        if label_smoothing < 0 or label_smoothing > 1.0:
            raise ValueError("LinearCrossEntropyLoss: expected label_smoothing to be in range "
                             f"[0, 1], got {label_smoothing}.")
        super().__init__(weight, None, None, reduction)
        self.num_classes = num_classes
        self.out_features = tuple(out_features)
        self.ignore_index = ignore_index
        self.label_smoothing = label_smoothing
        self.options = options
        # Flat storage, reshaped in forward, as torch stores it.
        self.linear = _Linear(in_features, math.prod(self.out_features, start=num_classes), bias,
                              dtype)

    def _layers(self):
        return {"linear": self.linear}

    def forward(self, input, target):
        weight = self.linear.weight.reshape(
            (self.num_classes, *self.out_features, self.linear.in_features))
        bias = (None if self.linear.bias is None
                else self.linear.bias.reshape((self.num_classes, *self.out_features)))
        return F.linear_cross_entropy(input, weight, target, linear_bias=bias, weight=self.weight,
                                      reduction=self.reduction, ignore_index=self.ignore_index,
                                      label_smoothing=self.label_smoothing, options=self.options)


_ASMoutput = collections.namedtuple("_ASMoutput", ["output", "loss"])


class AdaptiveLogSoftmaxWithLoss(_HasParameters):
    """torch.nn.AdaptiveLogSoftmaxWithLoss (Grave et al., efficient softmax approximation):
    a head over the shortlist and one entry per cluster, and per cluster a two-layer tail.

    Parameters are JAX arrays initialised as torch does (``head``, ``tail[i] = (Linear(in,
    in // div_value**(i+1)), Linear(that, cluster size))``) and load from a torch state dict
    (``head.weight``, ``head.bias``, ``tail.{i}.0.weight``, ``tail.{i}.1.weight``).
    ``forward`` returns ``(output, loss)``; ``log_prob`` and ``predict`` as in torch. The math
    is :func:`jaxloss.fused.adaptive_log_softmax_with_loss`.
    """

    def __init__(self, in_features: int, n_classes: int, cutoffs, div_value: float = 4.0,
                 head_bias: bool = False, device=None, dtype=None) -> None:
        cutoffs = list(cutoffs)
        if len(cutoffs) == 0:
            raise ValueError("cutoffs should be a sequence of length larger than 0")
        if (cutoffs != sorted(cutoffs) or min(cutoffs) <= 0 or max(cutoffs) > n_classes - 1
                or len(set(cutoffs)) != len(cutoffs) or any(int(c) != c for c in cutoffs)):
            raise ValueError("cutoffs should be a sequence of unique, positive integers sorted "
                             "in an increasing order, where each value is between 1 and "
                             f"n_classes-1; got {cutoffs} with n_classes={n_classes}")
        self.in_features = in_features
        self.n_classes = n_classes
        self.cutoffs = cutoffs + [n_classes]
        self.div_value = div_value
        self.head_bias = head_bias
        self.shortlist_size = self.cutoffs[0]
        self.n_clusters = len(self.cutoffs) - 1
        self.head_size = self.shortlist_size + self.n_clusters
        self.head = _Linear(in_features, self.head_size, head_bias, dtype)
        self.tail = []
        for i in range(self.n_clusters):
            hidden = int(in_features // (div_value ** (i + 1)))
            size = self.cutoffs[i + 1] - self.cutoffs[i]
            self.tail.append((_Linear(in_features, hidden, False, dtype),
                              _Linear(hidden, size, False, dtype)))

    def _layers(self):
        layers = {"head": self.head}
        for i, (projection, output) in enumerate(self.tail):
            layers[f"tail.{i}.0"] = projection
            layers[f"tail.{i}.1"] = output
        return layers

    def _weights(self):
        return dict(head_weight=self.head.weight,
                    tail_weights=[(p.weight, o.weight) for p, o in self.tail],
                    cutoffs=self.cutoffs[:-1], n_classes=self.n_classes,
                    head_bias=self.head.bias)

    def __call__(self, input, target):
        return self.forward(input, target)

    def forward(self, input_, target_):
        output, loss = fused.adaptive_log_softmax_with_loss(input_, target_, **self._weights())
        return _ASMoutput(output, loss)

    def log_prob(self, input):
        return fused.adaptive_log_softmax(input, **self._weights())

    def predict(self, input):
        return jnp.argmax(self.log_prob(input), axis=1)

    def __repr__(self) -> str:
        return (f"AdaptiveLogSoftmaxWithLoss(in_features={self.in_features}, "
                f"n_classes={self.n_classes}, cutoffs={self.cutoffs[:-1]}, "
                f"div_value={self.div_value}, head_bias={self.head_bias})")


_document(globals())
