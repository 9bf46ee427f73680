"""torch.nn's loss modules, with torch 2.13's class names and constructor signatures.

Instances hold their options (and ``weight``/``pos_weight`` as JAX arrays) and are called like
torch modules, ``loss(input, target)``; ``forward`` is the same call. Each forwards to
`jaxloss.compat.functional`, which maps onto the native functions. Instances are plain
Python objects: close over them in a jitted function, or pass arrays as arguments.
"""

from __future__ import annotations

import collections
import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from .. import adaptive
from .._core import checks
from .._core.reduction import reduce_loss
from . import functional as F

__all__ = [
    "AdaptiveLogSoftmaxWithLoss",
    "BCELoss",
    "BCEWithLogitsLoss",
    "CTCLoss",
    "CosineEmbeddingLoss",
    "CosineSimilarity",
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
    "from_torch",
    "manual_seed",
]


def _optional_array(value):
    return None if value is None else jnp.asarray(value)


def _to_numpy(value) -> np.ndarray:
    """A torch tensor (any device) or an array-like as a NumPy array."""
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


class _Module:
    """state_dict() / load_state_dict() with exactly the keys torch's module has: its buffers
    (``weight``, ``pos_weight``; absent when None, as torch omits them) and the parameters of
    its Linear layers (``linear.weight``, ``head.bias``, ...)."""

    _buffer_names: tuple[str, ...] = ()

    def _layers(self) -> dict[str, _Linear]:
        return {}

    def state_dict(self) -> dict[str, jax.Array]:
        """The module's buffers and parameters under torch's key names, buffers first."""
        out: dict[str, jax.Array] = {}
        for name in self._buffer_names:
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        for prefix, layer in self._layers().items():
            out[f"{prefix}.weight"] = layer.weight
            if layer.bias is not None:
                out[f"{prefix}.bias"] = layer.bias
        return out

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Loads a torch (or jaxloss) state dict, strictly as torch does: every key must exist
        here with the same shape, and none may be missing. Values keep this module's dtype."""
        ours = self.state_dict()
        missing = [k for k in ours if k not in state_dict]
        unexpected = [k for k in state_dict if k not in ours]
        if missing or unexpected:
            raise ValueError(
                f"{type(self).__name__}.load_state_dict: missing keys {missing}, "
                f"unexpected keys {unexpected}."
            )
        arrays = {key: _to_numpy(value) for key, value in state_dict.items()}
        for key, array in arrays.items():
            if array.shape != tuple(ours[key].shape):
                raise ValueError(
                    f"{type(self).__name__}.load_state_dict: `{key}` has shape "
                    f"{list(array.shape)}, expected {list(ours[key].shape)}."
                )
        layers = self._layers()
        for key, array in arrays.items():
            value = jnp.array(array, ours[key].dtype)
            if key in self._buffer_names:
                setattr(self, key, value)
            else:
                prefix, name = key.rsplit(".", 1)
                setattr(layers[prefix], name, value)


class _Loss(_Module):
    """Base of every loss module: resolves the legacy size_average/reduce into `reduction`."""

    _options: tuple[str, ...] = ()

    def __init__(self, size_average=None, reduce=None, reduction: str = "mean") -> None:
        # Checked by the loss when called, as torch checks it in forward.
        self.reduction: Any = (
            F.legacy_reduction(size_average, reduce, reduction)
            if size_average is not None or reduce is not None
            else reduction
        )

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def forward(self, *args: Any, **kwargs: Any) -> jax.Array:
        raise NotImplementedError  # each loss module defines torch's forward signature

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{name}={getattr(self, name)!r}"
            for name in self._options
            if getattr(self, name) is not None
        )
        return f"{type(self).__name__}({shown})"


class _WeightedLoss(_Loss):
    _buffer_names = ("weight",)

    def __init__(
        self, weight=None, size_average=None, reduce=None, reduction: str = "mean"
    ) -> None:
        super().__init__(size_average, reduce, reduction)
        self.weight = _optional_array(weight)


class L1Loss(_Loss):
    _options = ("reduction",)

    def __init__(self, size_average=None, reduce=None, reduction: str = "mean") -> None:
        super().__init__(size_average, reduce, reduction)

    def forward(self, input: ArrayLike, target: ArrayLike) -> jax.Array:
        return F.l1_loss(input, target, reduction=self.reduction)


class MSELoss(_Loss):
    _options = ("reduction",)

    def __init__(self, size_average=None, reduce=None, reduction: str = "mean") -> None:
        super().__init__(size_average, reduce, reduction)

    def forward(self, input: ArrayLike, target: ArrayLike) -> jax.Array:
        return F.mse_loss(input, target, reduction=self.reduction)


class CrossEntropyLoss(_WeightedLoss):
    _options = ("reduction", "ignore_index", "label_smoothing")

    def __init__(
        self,
        weight=None,
        size_average=None,
        ignore_index: int = -100,
        reduce=None,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__(weight, size_average, reduce, reduction)
        self.ignore_index = ignore_index
        self.label_smoothing = label_smoothing

    def forward(self, input: ArrayLike, target: ArrayLike) -> jax.Array:
        return F.cross_entropy(
            input,
            target,
            weight=self.weight,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
            label_smoothing=self.label_smoothing,
        )


class CTCLoss(_Loss):
    _options = ("blank", "reduction", "zero_infinity")

    def __init__(
        self, blank: int = 0, reduction: str = "mean", zero_infinity: bool = False
    ) -> None:
        super().__init__(reduction=reduction)
        self.blank = blank
        self.zero_infinity = zero_infinity

    def forward(
        self,
        log_probs: ArrayLike,
        targets: ArrayLike,
        input_lengths: ArrayLike,
        target_lengths: ArrayLike,
    ) -> jax.Array:
        return F.ctc_loss(
            log_probs,
            targets,
            input_lengths,
            target_lengths,
            self.blank,
            self.reduction,
            self.zero_infinity,
        )


class NLLLoss(_WeightedLoss):
    _options = ("reduction", "ignore_index")

    def __init__(
        self,
        weight=None,
        size_average=None,
        ignore_index: int = -100,
        reduce=None,
        reduction: str = "mean",
    ) -> None:
        super().__init__(weight, size_average, reduce, reduction)
        self.ignore_index = ignore_index

    def forward(self, input: ArrayLike, target: ArrayLike) -> jax.Array:
        return F.nll_loss(
            input,
            target,
            weight=self.weight,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
        )


class PoissonNLLLoss(_Loss):
    _options = ("log_input", "full", "eps", "reduction")

    def __init__(
        self,
        log_input: bool = True,
        full: bool = False,
        size_average=None,
        eps: float = 1e-8,
        reduce=None,
        reduction: str = "mean",
    ) -> None:
        super().__init__(size_average, reduce, reduction)
        self.log_input = log_input
        self.full = full
        self.eps = eps

    def forward(self, log_input: ArrayLike, target: ArrayLike) -> jax.Array:
        return F.poisson_nll_loss(
            log_input,
            target,
            log_input=self.log_input,
            full=self.full,
            eps=self.eps,
            reduction=self.reduction,
        )


class GaussianNLLLoss(_Loss):
    _options = ("full", "eps", "reduction")

    def __init__(self, *, full: bool = False, eps: float = 1e-6, reduction: str = "mean") -> None:
        super().__init__(None, None, reduction)
        self.full = full
        self.eps = eps

    def forward(self, input: ArrayLike, target: ArrayLike, var: ArrayLike) -> jax.Array:
        return F.gaussian_nll_loss(
            input, target, var, full=self.full, eps=self.eps, reduction=self.reduction
        )


class KLDivLoss(_Loss):
    _options = ("reduction", "log_target")

    def __init__(
        self, size_average=None, reduce=None, reduction: str = "mean", log_target: bool = False
    ) -> None:
        super().__init__(size_average, reduce, reduction)
        self.log_target = log_target

    def forward(self, input: ArrayLike, target: ArrayLike) -> jax.Array:
        return F.kl_div(input, target, reduction=self.reduction, log_target=self.log_target)


class BCELoss(_WeightedLoss):
    _options = ("reduction",)

    def __init__(
        self, weight=None, size_average=None, reduce=None, reduction: str = "mean"
    ) -> None:
        super().__init__(weight, size_average, reduce, reduction)

    def forward(self, input: ArrayLike, target: ArrayLike) -> jax.Array:
        return F.binary_cross_entropy(input, target, weight=self.weight, reduction=self.reduction)


class BCEWithLogitsLoss(_Loss):
    _options = ("reduction",)
    _buffer_names = ("weight", "pos_weight")

    def __init__(
        self, weight=None, size_average=None, reduce=None, reduction: str = "mean", pos_weight=None
    ) -> None:
        super().__init__(size_average, reduce, reduction)
        self.weight = _optional_array(weight)
        self.pos_weight = _optional_array(pos_weight)

    def forward(self, input: ArrayLike, target: ArrayLike) -> jax.Array:
        return F.binary_cross_entropy_with_logits(
            input, target, self.weight, pos_weight=self.pos_weight, reduction=self.reduction
        )


class MarginRankingLoss(_Loss):
    _options = ("margin", "reduction")

    def __init__(
        self, margin: float = 0.0, size_average=None, reduce=None, reduction: str = "mean"
    ) -> None:
        super().__init__(size_average, reduce, reduction)
        self.margin = margin

    def forward(self, input1: ArrayLike, input2: ArrayLike, target: ArrayLike) -> jax.Array:
        return F.margin_ranking_loss(
            input1, input2, target, margin=self.margin, reduction=self.reduction
        )


class HingeEmbeddingLoss(_Loss):
    _options = ("margin", "reduction")

    def __init__(
        self, margin: float = 1.0, size_average=None, reduce=None, reduction: str = "mean"
    ) -> None:
        super().__init__(size_average, reduce, reduction)
        self.margin = margin

    def forward(self, input: ArrayLike, target: ArrayLike) -> jax.Array:
        return F.hinge_embedding_loss(input, target, margin=self.margin, reduction=self.reduction)


class MultiLabelMarginLoss(_Loss):
    _options = ("reduction",)

    def __init__(self, size_average=None, reduce=None, reduction: str = "mean") -> None:
        super().__init__(size_average, reduce, reduction)

    def forward(self, input: ArrayLike, target: ArrayLike) -> jax.Array:
        return F.multilabel_margin_loss(input, target, reduction=self.reduction)


class HuberLoss(_Loss):
    _options = ("reduction", "delta")

    def __init__(self, reduction: str = "mean", delta: float = 1.0) -> None:
        super().__init__(reduction=reduction)
        self.delta = delta

    def forward(self, input: ArrayLike, target: ArrayLike) -> jax.Array:
        return F.huber_loss(input, target, reduction=self.reduction, delta=self.delta)


class SmoothL1Loss(_Loss):
    _options = ("reduction", "beta")

    def __init__(
        self, size_average=None, reduce=None, reduction: str = "mean", beta: float = 1.0
    ) -> None:
        super().__init__(size_average, reduce, reduction)
        self.beta = beta

    def forward(self, input: ArrayLike, target: ArrayLike) -> jax.Array:
        return F.smooth_l1_loss(input, target, reduction=self.reduction, beta=self.beta)


class SoftMarginLoss(_Loss):
    _options = ("reduction",)

    def __init__(self, size_average=None, reduce=None, reduction: str = "mean") -> None:
        super().__init__(size_average, reduce, reduction)

    def forward(self, input: ArrayLike, target: ArrayLike) -> jax.Array:
        return F.soft_margin_loss(input, target, reduction=self.reduction)


class MultiLabelSoftMarginLoss(_WeightedLoss):
    _options = ("reduction",)

    def __init__(
        self, weight=None, size_average=None, reduce=None, reduction: str = "mean"
    ) -> None:
        super().__init__(weight, size_average, reduce, reduction)

    def forward(self, input: ArrayLike, target: ArrayLike) -> jax.Array:
        return F.multilabel_soft_margin_loss(
            input, target, weight=self.weight, reduction=self.reduction
        )


class CosineEmbeddingLoss(_Loss):
    _options = ("margin", "reduction")

    def __init__(
        self, margin: float = 0.0, size_average=None, reduce=None, reduction: str = "mean"
    ) -> None:
        super().__init__(size_average, reduce, reduction)
        self.margin = margin

    def forward(self, input1: ArrayLike, input2: ArrayLike, target: ArrayLike) -> jax.Array:
        return F.cosine_embedding_loss(
            input1, input2, target, margin=self.margin, reduction=self.reduction
        )


class MultiMarginLoss(_WeightedLoss):
    _options = ("p", "margin", "reduction")

    def __init__(
        self,
        p: int = 1,
        margin: float = 1.0,
        weight=None,
        size_average=None,
        reduce=None,
        reduction: str = "mean",
    ) -> None:
        super().__init__(weight, size_average, reduce, reduction)
        checks.multi_margin_options("MultiMarginLoss", p, weight)
        self.p = p
        self.margin = margin

    def forward(self, input: ArrayLike, target: ArrayLike) -> jax.Array:
        return F.multi_margin_loss(
            input,
            target,
            p=self.p,
            margin=self.margin,
            weight=self.weight,
            reduction=self.reduction,
        )


class TripletMarginLoss(_Loss):
    _options = ("margin", "p", "eps", "swap", "reduction")

    def __init__(
        self,
        margin: float = 1.0,
        p: float = 2.0,
        eps: float = 1e-6,
        swap: bool = False,
        size_average=None,
        reduce=None,
        reduction: str = "mean",
    ) -> None:
        super().__init__(size_average, reduce, reduction)
        checks.python_number("TripletMarginLoss", "margin", margin, low=0.0, low_inclusive=False)
        self.margin = margin
        self.p = p
        self.eps = eps
        self.swap = swap

    def forward(self, anchor: ArrayLike, positive: ArrayLike, negative: ArrayLike) -> jax.Array:
        return F.triplet_margin_loss(
            anchor,
            positive,
            negative,
            margin=self.margin,
            p=self.p,
            eps=self.eps,
            swap=self.swap,
            reduction=self.reduction,
        )


class TripletMarginWithDistanceLoss(_Loss):
    _options = ("distance_function", "margin", "swap", "reduction")

    def __init__(
        self,
        *,
        distance_function=None,
        margin: float = 1.0,
        swap: bool = False,
        reduction: str = "mean",
    ) -> None:
        super().__init__(None, None, reduction)
        checks.python_number(
            "TripletMarginWithDistanceLoss", "margin", margin, low=0.0, low_inclusive=False
        )
        self.distance_function = (
            distance_function if distance_function is not None else (F.pairwise_distance)
        )
        self.margin = margin
        self.swap = swap

    def forward(self, anchor: ArrayLike, positive: ArrayLike, negative: ArrayLike) -> jax.Array:
        return F.triplet_margin_with_distance_loss(
            anchor,
            positive,
            negative,
            distance_function=self.distance_function,
            margin=self.margin,
            swap=self.swap,
            reduction=self.reduction,
        )


class PairwiseDistance:
    """torch.nn.PairwiseDistance: the default distance of TripletMarginWithDistanceLoss."""

    def __init__(self, p: float = 2.0, eps: float = 1e-6, keepdim: bool = False) -> None:
        self.norm = p
        self.eps = eps
        self.keepdim = keepdim

    def forward(self, x1: ArrayLike, x2: ArrayLike) -> jax.Array:
        return F.pairwise_distance(x1, x2, self.norm, self.eps, self.keepdim)

    __call__ = forward


class CosineSimilarity:
    """torch.nn.CosineSimilarity; ``1 - CosineSimilarity(dim=-1)(u, v)`` is a common triplet
    distance."""

    def __init__(self, dim: int = 1, eps: float = 1e-8) -> None:
        self.dim = dim
        self.eps = eps

    def forward(self, x1: ArrayLike, x2: ArrayLike) -> jax.Array:
        return F.cosine_similarity(x1, x2, self.dim, self.eps)

    __call__ = forward


# torch.nn module -> the functional it calls (for its docstring's Args, Returns and example).
_FUNCTIONAL_OF = {
    "L1Loss": "l1_loss",
    "MSELoss": "mse_loss",
    "CrossEntropyLoss": "cross_entropy",
    "CTCLoss": "ctc_loss",
    "NLLLoss": "nll_loss",
    "PoissonNLLLoss": "poisson_nll_loss",
    "GaussianNLLLoss": "gaussian_nll_loss",
    "KLDivLoss": "kl_div",
    "BCELoss": "binary_cross_entropy",
    "BCEWithLogitsLoss": "binary_cross_entropy_with_logits",
    "MarginRankingLoss": "margin_ranking_loss",
    "HingeEmbeddingLoss": "hinge_embedding_loss",
    "MultiLabelMarginLoss": "multilabel_margin_loss",
    "HuberLoss": "huber_loss",
    "SmoothL1Loss": "smooth_l1_loss",
    "SoftMarginLoss": "soft_margin_loss",
    "MultiLabelSoftMarginLoss": "multilabel_soft_margin_loss",
    "CosineEmbeddingLoss": "cosine_embedding_loss",
    "MultiMarginLoss": "multi_margin_loss",
    "TripletMarginLoss": "triplet_margin_loss",
    "TripletMarginWithDistanceLoss": "triplet_margin_with_distance_loss",
    "PairwiseDistance": "pairwise_distance",
    "CosineSimilarity": "cosine_similarity",
    "LinearCrossEntropyLoss": "linear_cross_entropy",
}
_CONSTRUCTOR_ONLY = {
    "in_features": "the hidden size.",
    "num_classes": "the number of classes C.",
    "out_features": "extra class dimensions (d_1, ..., d_K) of a K-dimensional head.",
    "bias": "give the linear head a bias.",
    "device": "accepted for torch's signature; unused.",
    "dtype": "the parameters' dtype (default float32).",
}


def _class_docstring(name: str, cls: type) -> str:
    """Args from the constructor (torch's names), Returns and an example from the functional."""
    import ast
    import inspect

    functional = _FUNCTIONAL_OF[name]
    lines = [
        f"``torch.nn.{name}`` with torch 2.13's constructor signature; calling it (or its",
        f"``forward``) computes `jaxloss.compat.functional.{functional}`.",
        "",
        "Args:",
    ]
    for parameter in inspect.signature(cls.__init__).parameters:
        if parameter == "self":
            continue
        text = (
            F._SPECIFIC.get((functional, parameter))
            or _CONSTRUCTOR_ONLY.get(parameter)
            or (F._ARGUMENTS["p"] if parameter == "p" else F._ARGUMENTS[parameter])
        )
        lines.append(f"  {parameter}: {text}")
    returns = F._docstring(functional, getattr(F, functional)).split("Returns:\n")[1]
    lines += ["", "Returns:", "  From ``forward``: " + returns.split("\n")[0].strip()]
    if name == "LinearCrossEntropyLoss":  # a module with parameters: its own example
        return "\n".join(
            lines
            + [
                "",
                "Example:",
                "  >>> from jaxloss.compat import nn",
                "  >>> head = nn.LinearCrossEntropyLoss(3, 4, label_smoothing=0.1)",
                "  >>> head.load_state_dict({'linear.weight': np.zeros((4, 3))})",
                "  >>> round(float(head(jnp.ones((2, 3)), jnp.array([0, 3]))), 4)",
                "  1.3863",
            ]
        )
    call, value = F._EXAMPLES[functional]
    parsed = ast.parse(call, mode="eval").body
    while isinstance(parsed, ast.Subscript):  # F.f(...)[0]: the call inside
        parsed = parsed.value
    assert isinstance(parsed, ast.Call)
    # The functional's keyword options become constructor options; its inputs, the call's.
    options = ", ".join(ast.unparse(k) for k in parsed.keywords)
    inputs = ", ".join(ast.unparse(a) for a in parsed.args)
    index = "[0]" if call.endswith("[0]") else ""
    lines += [
        "",
        "Example:",
        "  >>> from jaxloss.compat import nn",
        f"  >>> module = nn.{name}({options})",
        f"  >>> round(float(module({inputs}){index}), 4)",
        f"  {value}",
    ]
    return "\n".join(lines)


def _document(namespace):
    for name in __all__:
        cls = namespace[name]
        if name in _FUNCTIONAL_OF:
            own = (cls.__doc__.strip() + "\n\n") if cls.__doc__ else ""
            cls.__doc__ = own + _class_docstring(name, cls)


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
            _generator.uniform(-bound, bound, (out_features, in_features)), dtype
        )
        self.bias = (
            jnp.asarray(_generator.uniform(-bound, bound, (out_features,)), dtype) if bias else None
        )

    def __repr__(self) -> str:
        return (
            f"Linear(in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None})"
        )


@dataclasses.dataclass
class LinearCrossEntropyOptions:
    """torch.nn.LinearCrossEntropyOptions. jaxloss always runs chunked; it honours
    ``batch_chunk_size`` (rows per chunk) and accepts the other fields for compatibility."""

    allow_retain_graph: bool = False
    batch_chunk_size: int | None = None
    chunking_method: str | None = "auto"
    acc_policy: Literal["accurate", "balanced", "compact", "auto"] = "auto"
    acc_dtype: object = None


class LinearCrossEntropyLoss(_WeightedLoss):
    """torch.nn.LinearCrossEntropyLoss: a Linear head (``self.linear``) and cross-entropy,
    computed by `jaxloss.linear_cross_entropy` without materialising the logits."""

    _options = ("num_classes", "out_features", "reduction", "ignore_index", "label_smoothing")

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        *,
        out_features: tuple = (),
        bias: bool = False,
        device=None,
        dtype=None,
        reduction: str = "mean",
        weight=None,
        ignore_index=None,
        label_smoothing: float = 0.0,
        options=None,
    ) -> None:
        checks.class_weight("LinearCrossEntropyLoss", weight, num_classes, name="weight")
        checks.python_number(
            "LinearCrossEntropyLoss", "label_smoothing", label_smoothing, low=0.0, high=1.0
        )
        super().__init__(weight, None, None, reduction)
        self.num_classes = num_classes
        self.out_features = tuple(out_features)
        self.ignore_index = ignore_index
        self.label_smoothing = label_smoothing
        self.options = options
        # Flat storage, reshaped in forward, as torch stores it.
        self.linear = _Linear(
            in_features, math.prod(self.out_features, start=num_classes), bias, dtype
        )

    def _layers(self):
        return {"linear": self.linear}

    def forward(self, input: ArrayLike, target: ArrayLike) -> jax.Array:
        weight = self.linear.weight.reshape(
            (self.num_classes, *self.out_features, self.linear.in_features)
        )
        bias = (
            None
            if self.linear.bias is None
            else self.linear.bias.reshape((self.num_classes, *self.out_features))
        )
        return F.linear_cross_entropy(
            input,
            weight,
            target,
            linear_bias=bias,
            weight=self.weight,
            reduction=self.reduction,
            ignore_index=self.ignore_index,
            label_smoothing=self.label_smoothing,
            options=self.options,
        )


_ASMoutput = collections.namedtuple("_ASMoutput", ["output", "loss"])


class AdaptiveLogSoftmaxWithLoss(_Module):
    """torch.nn.AdaptiveLogSoftmaxWithLoss (Grave et al., efficient softmax approximation):
    a head over the shortlist and one entry per cluster, and per cluster a two-layer tail.

    Parameters are JAX arrays initialised as torch does (``head``, ``tail[i] = (Linear(in,
    in // div_value**(i+1)), Linear(that, cluster size))``) and load from a torch state dict
    (``head.weight``, ``head.bias``, ``tail.{i}.0.weight``, ``tail.{i}.1.weight``).
    ``forward`` returns ``(output, loss)``; ``log_prob`` and ``predict`` as in torch. The math
    is `jaxloss.adaptive_softmax_loss` and `jaxloss.adaptive_log_softmax`.

    Args:
      in_features: the hidden size D.
      n_classes: the number of classes.
      cutoffs: the first class of each tail cluster, increasing, in [1, n_classes - 1].
      div_value: each cluster's projection is D // div_value**(i + 1) wide.
      head_bias: give the head a bias.
      device: accepted for torch's signature; unused.
      dtype: the parameters' dtype (default float32).

    ``forward`` returns ``(output, loss)``: each row's log-probability of its target, ``(N,)``
    (``()`` unbatched), and the mean of ``-output``.

    Examples:
      >>> from jaxloss.compat import nn
      >>> nn.manual_seed(0)
      >>> adaptive = nn.AdaptiveLogSoftmaxWithLoss(8, 10, cutoffs=[4])
      >>> output, loss = adaptive(jnp.ones((3, 8)), jnp.array([0, 5, 9]))
      >>> output.shape, bool(jnp.isclose(loss, -output.mean()))
      ((3,), True)
    """

    def __init__(
        self,
        in_features: int,
        n_classes: int,
        cutoffs: Sequence[int],
        div_value: float = 4.0,
        head_bias: bool = False,
        device: Any = None,
        dtype: jax.typing.DTypeLike | None = None,
    ) -> None:
        cutoffs = list(cutoffs)
        if len(cutoffs) == 0:
            raise ValueError("cutoffs should be a sequence of length larger than 0")
        if (
            cutoffs != sorted(cutoffs)
            or min(cutoffs) <= 0
            or max(cutoffs) > n_classes - 1
            or len(set(cutoffs)) != len(cutoffs)
            or any(int(c) != c for c in cutoffs)
        ):
            raise ValueError(
                "cutoffs should be a sequence of unique, positive integers sorted "
                "in an increasing order, where each value is between 1 and "
                f"n_classes-1; got {cutoffs} with n_classes={n_classes}"
            )
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
            self.tail.append(
                (_Linear(in_features, hidden, False, dtype), _Linear(hidden, size, False, dtype))
            )

    def _layers(self):
        layers = {"head": self.head}
        for i, (projection, output) in enumerate(self.tail):
            layers[f"tail.{i}.0"] = projection
            layers[f"tail.{i}.1"] = output
        return layers

    def _weights(self) -> dict[str, Any]:
        return dict(
            head_weight=self.head.weight,
            tail_weights=[(p.weight, o.weight) for p, o in self.tail],
            cutoffs=self.cutoffs[:-1],
            head_bias=self.head.bias,
        )

    def __call__(self, input, target):
        return self.forward(input, target)

    def forward(self, input_: ArrayLike, target_: ArrayLike) -> _ASMoutput:
        """(output, loss): each row's log-probability of its target, and the mean of
        -output."""
        nll = adaptive.adaptive_softmax_loss(input_, target_, reduction="none", **self._weights())
        # torch's loss is the plain mean of -output: the shared reduction, not new math.
        return _ASMoutput(-nll, reduce_loss(nll, "mean"))

    def log_prob(self, input):
        return adaptive.adaptive_log_softmax(input, **self._weights())

    def predict(self, input):
        return jnp.argmax(self.log_prob(input), axis=1)

    def __repr__(self) -> str:
        return (
            f"AdaptiveLogSoftmaxWithLoss(in_features={self.in_features}, "
            f"n_classes={self.n_classes}, cutoffs={self.cutoffs[:-1]}, "
            f"div_value={self.div_value}, head_bias={self.head_bias})"
        )


# ----------------------------------------------------------------------------- from torch


def _torch_dtype(tensor) -> Any:
    return jnp.dtype(str(tensor.dtype).removeprefix("torch."))


def _constructor_options(cls, module, overrides: dict) -> dict:
    """cls's constructor arguments read off a torch module of the same name."""
    import inspect

    skip = {"self", "size_average", "reduce", "device"}
    options = {}
    for name, parameter in inspect.signature(cls.__init__).parameters.items():
        if name in skip or parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        if name in overrides:
            options[name] = overrides[name]
        elif name in ("weight", "pos_weight"):
            buffer = getattr(module, name, None)
            options[name] = None if buffer is None else _to_numpy(buffer)
        elif hasattr(module, name) and not callable(getattr(module, name)):
            options[name] = getattr(module, name)
    return options


def _special_options(module, name: str, overrides: dict) -> dict:
    """The constructor options torch stores under other names or as submodules."""
    import torch

    if name == "PairwiseDistance":
        return {"p": module.norm}
    if name == "AdaptiveLogSoftmaxWithLoss":
        return {"cutoffs": list(module.cutoffs[:-1]), "dtype": _torch_dtype(module.head.weight)}
    if name == "LinearCrossEntropyLoss":
        options = module.options
        if options is not None:
            options = LinearCrossEntropyOptions(
                **{
                    f.name: getattr(options, f.name)
                    for f in dataclasses.fields(LinearCrossEntropyOptions)
                }
            )
        return {
            "in_features": module.linear.in_features,
            "bias": module.linear.bias is not None,
            "dtype": _torch_dtype(module.linear.weight),
            "options": options,
        }
    if name == "TripletMarginWithDistanceLoss" and "distance_function" not in overrides:
        distance = module.distance_function
        if isinstance(distance, torch.nn.PairwiseDistance):
            return {"distance_function": from_torch(distance)}
        raise TypeError(
            "from_torch: TripletMarginWithDistanceLoss's distance_function is a torch callable "
            f"({distance!r}), which cannot be translated; pass a JAX one, e.g. "
            "from_torch(module, distance_function=lambda u, v: 1 - F.cosine_similarity(u, v, "
            "dim=-1))."
        )
    return {}


def from_torch(module: Any, **overrides: Any) -> Any:
    """The jaxloss.compat.nn module equivalent to a torch loss (or distance) module instance.

    Constructor options are read off the torch module (``reduction``, ``ignore_index``,
    ``label_smoothing``, margins, ...), then its buffers and parameters are loaded from its
    ``state_dict()``, so ``weight``, ``pos_weight`` and the weights of a linear or adaptive
    head are the torch module's own. ``overrides`` set constructor options that cannot be read
    off torch's module (a JAX ``distance_function``).

    Check the port on your own inputs with `jaxloss.parity.check_port`.

    Args:
      module: a ``torch.nn`` loss module, ``PairwiseDistance`` or ``CosineSimilarity``.
      **overrides: constructor options to use instead of the torch module's.

    Returns:
      An instance of the jaxloss class of the same name.

    Raises:
      TypeError: for a module jaxloss has no counterpart of, or a torch distance function.

    Examples:
      >>> import torch
      >>> from jaxloss.compat import nn
      >>> ported = nn.from_torch(torch.nn.CrossEntropyLoss(weight=torch.ones(3),
      ...                                                  label_smoothing=0.1))
      >>> ported, sorted(ported.state_dict())
      (CrossEntropyLoss(reduction='mean', ignore_index=-100, label_smoothing=0.1), ['weight'])
    """
    name = type(module).__name__
    cls = globals().get(name)
    if name not in __all__ or not isinstance(cls, type):
        supported = sorted(
            n
            for n in __all__
            if isinstance(globals()[n], type) and n != "LinearCrossEntropyOptions"
        )
        raise TypeError(
            f"from_torch: no jaxloss counterpart of {name}; supported: {', '.join(supported)}."
        )
    options = _constructor_options(cls, module, overrides)
    options.update(_special_options(module, name, overrides))
    ours = cls(**options)
    if isinstance(ours, _Module):
        ours.load_state_dict(module.state_dict())
    return ours


_document(globals())
