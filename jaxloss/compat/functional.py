"""torch.nn.functional's loss functions, with torch 2.13's names, argument order and defaults.

Each function maps torch's arguments onto the native jaxloss function: the class axis is 1
(0 for an unbatched input), the deprecated ``size_average``/``reduce`` override ``reduction`` by
torch's rules, and the few shape rules where torch is stricter than the native function are
enforced here so that jaxloss raises wherever torch raises. No loss math lives in this module.
"""

from __future__ import annotations

import functools
import re
import warnings
from collections.abc import Callable
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from .. import classification, embedding, fused, regression, sequence
from .._core import checks
from .._core.reduction import Reduction

__all__ = [
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "cosine_embedding_loss",
    "cosine_similarity",
    "cross_entropy",
    "ctc_loss",
    "gaussian_nll_loss",
    "hinge_embedding_loss",
    "huber_loss",
    "kl_div",
    "l1_loss",
    "linear_cross_entropy",
    "margin_ranking_loss",
    "mse_loss",
    "multi_margin_loss",
    "multilabel_margin_loss",
    "multilabel_soft_margin_loss",
    "nll_loss",
    "pairwise_distance",
    "poisson_nll_loss",
    "smooth_l1_loss",
    "soft_margin_loss",
    "triplet_margin_loss",
    "triplet_margin_with_distance_loss",
]


def _torch_names(**native_to_torch):
    """Errors from the native function name its arguments (`logits`, `labels`, ...); re-raise
    them with torch's argument names (`input`, `target`, ...) so compat users see their own."""
    pattern = re.compile(r"`(" + "|".join(map(re.escape, native_to_torch)) + r")([` ])")

    def rename(text: str) -> str:
        return pattern.sub(lambda m: f"`{native_to_torch[m.group(1)]}{m.group(2)}", text)

    def decorate(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            try:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    result = fn(*args, **kwargs)
            except (ValueError, TypeError) as err:
                message = rename(str(err))
                if message == str(err):
                    raise
                raise type(err)(message) from None
            # Warnings (e.g. broadcasting targets) are re-issued in torch's names, at the
            # caller's line.
            for caught_warning in caught:
                warnings.warn(
                    rename(str(caught_warning.message)), caught_warning.category, stacklevel=2
                )
            return result

        return wrapper

    return decorate


_REGRESSION = dict(predictions="input", targets="target", weights="weight")
_CLASSES = dict(
    logits="input",
    log_probs="input",
    scores="input",
    probs="input",
    labels="target",
    distances="input",
    log_predictions="input",
    targets="target",
    class_weights="weight",
    weights="weight",
    log_targets="log_target",
)
_PAIRS = dict(
    scores1="input1", scores2="input2", embeddings1="input1", embeddings2="input2", labels="target"
)


def legacy_reduction(size_average: bool | None, reduce: bool | None, reduction: Any) -> Any:
    """torch's rule: if either deprecated flag is given, it decides the reduction (each defaults
    to True): both true -> 'mean', reduce only -> 'sum', reduce=False -> 'none'."""
    if size_average is None and reduce is None:
        return reduction
    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    if size_average and reduce:
        chosen = "mean"
    elif reduce:
        chosen = "sum"
    else:
        chosen = "none"
    warnings.warn(
        f"size_average and reduce args will be deprecated, please use reduction='{chosen}' "
        "instead.",
        UserWarning,
        stacklevel=3,
    )
    return chosen


def _class_axis(input):
    """torch puts classes on dim 1, or dim 0 for an unbatched (C,) input."""
    return 1 if jnp.ndim(input) >= 2 else -1


def _vector_or_matrix(fn, input, target):
    """torch's margin kernels take a vector (C,) or a matrix (N, C), and a 0-d input as one
    class; returns (input, target) as the native functions want them."""
    x = checks.float_array(fn, "input", input)
    y = checks.as_array(fn, "target", target)
    if x.ndim == 0:
        x, y = x[None], (y[None] if fn == "multilabel_margin_loss" and y.ndim == 0 else y)
    if x.ndim not in (1, 2) or x.shape[-1] == 0:
        raise ValueError(
            f"{fn}: `input` must be a non-empty vector (C,) or matrix (N, C); got shape "
            f"{list(x.shape)}."
        )
    return x, y


@_torch_names(**_REGRESSION)
def l1_loss(
    input: ArrayLike,
    target: ArrayLike,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: Reduction = "mean",
    weight: ArrayLike | None = None,
) -> jax.Array:
    reduction = legacy_reduction(size_average, reduce, reduction)
    return regression.l1_loss(input, target, weights=weight, reduction=reduction)


@_torch_names(**_REGRESSION)
def mse_loss(
    input: ArrayLike,
    target: ArrayLike,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: Reduction = "mean",
    weight: ArrayLike | None = None,
) -> jax.Array:
    reduction = legacy_reduction(size_average, reduce, reduction)
    return regression.mse_loss(input, target, weights=weight, reduction=reduction)


@_torch_names(**_CLASSES)
def cross_entropy(
    input: ArrayLike,
    target: ArrayLike,
    weight: ArrayLike | None = None,
    size_average: bool | None = None,
    ignore_index: int = -100,
    reduce: bool | None = None,
    reduction: Reduction = "mean",
    label_smoothing: float = 0.0,
) -> jax.Array:
    reduction = legacy_reduction(size_average, reduce, reduction)
    return classification.cross_entropy(
        input,
        target,
        axis=_class_axis(input),
        class_weights=weight,
        ignore_index=ignore_index,
        label_smoothing=label_smoothing,
        reduction=reduction,
    )


@_torch_names(**_CLASSES)
def nll_loss(
    input: ArrayLike,
    target: ArrayLike,
    weight: ArrayLike | None = None,
    size_average: bool | None = None,
    ignore_index: int = -100,
    reduce: bool | None = None,
    reduction: Reduction = "mean",
) -> jax.Array:
    reduction = legacy_reduction(size_average, reduce, reduction)
    return classification.nll_loss(
        input,
        target,
        axis=_class_axis(input),
        class_weights=weight,
        ignore_index=ignore_index,
        reduction=reduction,
    )


@_torch_names(**_REGRESSION)
def poisson_nll_loss(
    input: ArrayLike,
    target: ArrayLike,
    log_input: bool = True,
    full: bool = False,
    size_average: bool | None = None,
    eps: float = 1e-8,
    reduce: bool | None = None,
    reduction: Reduction = "mean",
) -> jax.Array:
    reduction = legacy_reduction(size_average, reduce, reduction)
    return regression.poisson_nll_loss(
        input, target, log_input=log_input, full=full, eps=eps, reduction=reduction
    )


@_torch_names(**_REGRESSION)
def gaussian_nll_loss(
    input: ArrayLike,
    target: ArrayLike,
    var: ArrayLike | float,
    full: bool = False,
    eps: float = 1e-6,
    reduction: Reduction = "mean",
) -> jax.Array:
    return regression.gaussian_nll_loss(input, target, var, full=full, eps=eps, reduction=reduction)


@_torch_names(**_CLASSES)
def kl_div(
    input: ArrayLike,
    target: ArrayLike,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: Literal["none", "mean", "sum", "batchmean"] = "mean",
    log_target: bool = False,
) -> jax.Array:
    if size_average is None and reduce is None and reduction == "mean":
        warnings.warn(
            "reduction: 'mean' divides the total loss by both the batch size and the support "
            "size. 'batchmean' divides only by the batch size, and aligns with the KL div math "
            "definition.",
            UserWarning,
            stacklevel=2,
        )
    reduction = legacy_reduction(size_average, reduce, reduction)
    return classification.kl_div(input, target, log_targets=log_target, reduction=reduction)


@_torch_names(**_CLASSES)
def binary_cross_entropy(
    input: ArrayLike,
    target: ArrayLike,
    weight: ArrayLike | None = None,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: Reduction = "mean",
) -> jax.Array:
    reduction = legacy_reduction(size_average, reduce, reduction)
    return classification.binary_cross_entropy(input, target, weights=weight, reduction=reduction)


@_torch_names(**_CLASSES)
def binary_cross_entropy_with_logits(
    input: ArrayLike,
    target: ArrayLike,
    weight: ArrayLike | None = None,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: Reduction = "mean",
    pos_weight: ArrayLike | None = None,
) -> jax.Array:
    reduction = legacy_reduction(size_average, reduce, reduction)
    return classification.binary_cross_entropy_with_logits(
        input, target, weights=weight, pos_weight=pos_weight, reduction=reduction
    )


@_torch_names(**_PAIRS)
def margin_ranking_loss(
    input1: ArrayLike,
    input2: ArrayLike,
    target: ArrayLike,
    margin: float = 0,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: Reduction = "mean",
) -> jax.Array:
    reduction = legacy_reduction(size_average, reduce, reduction)
    if not jnp.ndim(input1) == jnp.ndim(input2) == jnp.ndim(target):
        raise ValueError(
            "margin_ranking_loss: `input1`, `input2` and `target` must have the same number of "
            f"dimensions; got shapes {list(jnp.shape(input1))}, {list(jnp.shape(input2))} and "
            f"{list(jnp.shape(target))}."
        )
    return embedding.margin_ranking_loss(input1, input2, target, margin=margin, reduction=reduction)


@_torch_names(**_CLASSES)
def hinge_embedding_loss(
    input: ArrayLike,
    target: ArrayLike,
    margin: float = 1.0,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: Reduction = "mean",
) -> jax.Array:
    reduction = legacy_reduction(size_average, reduce, reduction)
    return embedding.hinge_embedding_loss(input, target, margin=margin, reduction=reduction)


@_torch_names(**_CLASSES)
def multilabel_margin_loss(
    input: ArrayLike,
    target: ArrayLike,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: Reduction = "mean",
) -> jax.Array:
    reduction = legacy_reduction(size_average, reduce, reduction)
    input, target = _vector_or_matrix("multilabel_margin_loss", input, target)
    return classification.multilabel_margin_loss(input, target, reduction=reduction)


@_torch_names(**_REGRESSION)
def huber_loss(
    input: ArrayLike,
    target: ArrayLike,
    reduction: Reduction = "mean",
    delta: float = 1.0,
    weight: ArrayLike | None = None,
) -> jax.Array:
    return regression.huber_loss(input, target, delta=delta, weights=weight, reduction=reduction)


@_torch_names(**_REGRESSION)
def smooth_l1_loss(
    input: ArrayLike,
    target: ArrayLike,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: Reduction = "mean",
    beta: float = 1.0,
) -> jax.Array:
    reduction = legacy_reduction(size_average, reduce, reduction)
    return regression.smooth_l1_loss(input, target, beta=beta, reduction=reduction)


@_torch_names(**_CLASSES)
def soft_margin_loss(
    input: ArrayLike,
    target: ArrayLike,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: Reduction = "mean",
) -> jax.Array:
    reduction = legacy_reduction(size_average, reduce, reduction)
    return classification.soft_margin_loss(input, target, reduction=reduction)


@_torch_names(**_CLASSES)
def multilabel_soft_margin_loss(
    input: ArrayLike,
    target: ArrayLike,
    weight: ArrayLike | None = None,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: Reduction = "mean",
) -> jax.Array:
    reduction = legacy_reduction(size_average, reduce, reduction)
    return classification.multilabel_soft_margin_loss(
        input, target, axis=-1, weights=weight, reduction=reduction
    )


@_torch_names(**_PAIRS)
def cosine_embedding_loss(
    input1: ArrayLike,
    input2: ArrayLike,
    target: ArrayLike,
    margin: float = 0,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: Reduction = "mean",
) -> jax.Array:
    reduction = legacy_reduction(size_average, reduce, reduction)
    target_ndim = jnp.ndim(target)
    if target_ndim not in (0, 1):
        raise ValueError(
            "cosine_embedding_loss: `target` must be 0-D or 1-D (one label per pair); got shape "
            f"{list(jnp.shape(target))}."
        )
    expected = target_ndim + 1
    if jnp.ndim(input1) != expected or jnp.ndim(input2) != expected:
        raise ValueError(
            f"cosine_embedding_loss: a {target_ndim}-D `target` expects {expected}-D inputs; got "
            f"shapes {list(jnp.shape(input1))} and {list(jnp.shape(input2))}."
        )
    return embedding.cosine_embedding_loss(
        input1, input2, target, margin=margin, reduction=reduction
    )


@_torch_names(**_CLASSES)
def multi_margin_loss(
    input: ArrayLike,
    target: ArrayLike,
    p: int = 1,
    margin: float = 1.0,
    weight: ArrayLike | None = None,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: Reduction = "mean",
) -> jax.Array:
    reduction = legacy_reduction(size_average, reduce, reduction)
    input, target = _vector_or_matrix("multi_margin_loss", input, target)
    if input.ndim == 1 and target.shape == (1,):
        input = input[None]  # a (C,) input with a (1,) target is a batch of one, as in torch
    return classification.multi_margin_loss(
        input,
        target,
        axis=_class_axis(input),
        p=p,
        margin=margin,
        class_weights=weight,
        reduction=reduction,
    )


def pairwise_distance(
    x1: ArrayLike, x2: ArrayLike, p: float = 2.0, eps: float = 1e-6, keepdim: bool = False
) -> jax.Array:
    return embedding.pairwise_distance(x1, x2, p=p, eps=eps, keepdims=keepdim)


def cosine_similarity(x1: ArrayLike, x2: ArrayLike, dim: int = 1, eps: float = 1e-8) -> jax.Array:
    return embedding.cosine_similarity(x1, x2, axis=dim, eps=eps)


def triplet_margin_loss(
    anchor: ArrayLike,
    positive: ArrayLike,
    negative: ArrayLike,
    margin: float = 1.0,
    p: float = 2,
    eps: float = 1e-6,
    swap: bool = False,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: Reduction = "mean",
) -> jax.Array:
    reduction = legacy_reduction(size_average, reduce, reduction)
    return embedding.triplet_margin_loss(
        anchor, positive, negative, margin=margin, p=p, eps=eps, swap=swap, reduction=reduction
    )


def triplet_margin_with_distance_loss(
    anchor: ArrayLike,
    positive: ArrayLike,
    negative: ArrayLike,
    *,
    distance_function: Callable[[jax.Array, jax.Array], jax.Array] | None = None,
    margin: float = 1.0,
    swap: bool = False,
    reduction: Reduction = "mean",
) -> jax.Array:
    return embedding.triplet_margin_with_distance_loss(
        anchor,
        positive,
        negative,
        distance_function=distance_function,
        margin=margin,
        swap=swap,
        reduction=reduction,
    )


_CTC = dict(logits="log_probs", labels="targets", label_lengths="target_lengths")


def _ctc_lengths(name, lengths):
    """torch takes lengths as tensors or as tuples/lists of ints."""
    if isinstance(lengths, (tuple, list)):
        if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in lengths):
            raise TypeError(
                f"ctc_loss: `{name}` given as a sequence must hold ints; got {lengths!r}."
            )
        return jnp.asarray(lengths, jnp.int32).reshape(len(lengths))
    array = checks.as_array("ctc_loss", name, lengths)
    if not jnp.issubdtype(array.dtype, jnp.integer):
        raise TypeError(f"ctc_loss: `{name}` must be integral; got dtype {array.dtype}.")
    return array


def _unconcatenate(targets, target_lengths):
    """torch's concatenated 1-D targets (sum(target_lengths),) as padded (N, S) labels."""
    total = targets.shape[0]
    if checks.is_concrete(target_lengths):
        expected = int(np.sum(np.asarray(target_lengths)))
        if expected != total:
            raise ValueError(
                f"ctc_loss: concatenated 1-D `targets` must hold sum(target_lengths) = "
                f"{expected} labels; got {total}."
            )
        width = int(np.max(np.asarray(target_lengths), initial=0))
    else:
        width = total
    offsets = jnp.cumsum(target_lengths) - target_lengths
    index = jnp.clip(offsets[:, None] + jnp.arange(width)[None, :], 0, max(total - 1, 0))
    return targets[index] if total else jnp.zeros((target_lengths.shape[0], 0), targets.dtype)


@_torch_names(**_CTC)
def ctc_loss(
    log_probs: ArrayLike,
    targets: ArrayLike,
    input_lengths: ArrayLike,
    target_lengths: ArrayLike,
    blank: int = 0,
    reduction: Reduction = "mean",
    zero_infinity: bool = False,
) -> jax.Array:
    """torch.nn.functional.ctc_loss: `log_probs` (T, N, C) or unbatched (T, C); `targets`
    padded (N, S) or concatenated (sum(target_lengths),); lengths as tensors or tuples.

    The gradient w.r.t. `log_probs` is torch's (it assumes they came from a log_softmax).
    Computed by `jaxloss.ctc_loss`, whose docstring gives the formula.
    """
    lp = checks.float_array("ctc_loss", "log_probs", log_probs)
    if lp.ndim not in (2, 3):
        raise ValueError(
            f"ctc_loss: `log_probs` must be (T, N, C) or unbatched (T, C); got "
            f"shape {list(lp.shape)}."
        )
    y = checks.as_array("ctc_loss", "targets", targets)
    if jnp.issubdtype(y.dtype, jnp.floating):
        y = y.astype(jnp.int32)  # torch accepts float targets and truncates them
    input_lengths = _ctc_lengths("input_lengths", input_lengths)
    target_lengths = _ctc_lengths("target_lengths", target_lengths)
    if lp.ndim == 2:  # unbatched: one sequence, lengths of one element or 0-d
        if y.ndim == 2 and y.shape[0] == 1:
            y = y[0]
        if input_lengths.size != 1 or target_lengths.size != 1:
            raise ValueError(
                "ctc_loss: unbatched `log_probs` (T, C) take one input length and "
                f"one target length; got {input_lengths.size} and "
                f"{target_lengths.size}."
            )
        return sequence.ctc_loss(
            lp,
            y,
            input_lengths=input_lengths.reshape(()),
            label_lengths=target_lengths.reshape(()),
            blank=blank,
            from_logits=False,
            zero_infinity=zero_infinity,
            reduction=reduction,
        )
    batch = lp.shape[1]
    for name, lengths in (("input_lengths", input_lengths), ("target_lengths", target_lengths)):
        if lengths.shape != (batch,):
            raise ValueError(
                f"ctc_loss: `{name}` must be of size batch_size ({batch}); got "
                f"shape {list(lengths.shape)}."
            )
    if y.ndim == 1:
        y = _unconcatenate(y, target_lengths)
    return sequence.ctc_loss(
        jnp.swapaxes(lp, 0, 1),
        y,
        input_lengths=input_lengths,
        label_lengths=target_lengths,
        blank=blank,
        from_logits=False,
        zero_infinity=zero_infinity,
        reduction=reduction,
    )


_LINEAR = dict(
    x="input", w="linear_weight", labels="target", bias="linear_bias", class_weights="weight"
)


@_torch_names(**_LINEAR)
def linear_cross_entropy(
    input: ArrayLike,
    linear_weight: ArrayLike,
    target: ArrayLike,
    *,
    linear_bias: ArrayLike | None = None,
    weight: ArrayLike | None = None,
    reduction: Reduction = "mean",
    ignore_index: int | None = None,
    label_smoothing: float = 0.0,
    options: Any = None,
) -> jax.Array:
    """torch.nn.functional.linear_cross_entropy: ``cross_entropy(linear(input, linear_weight,
    linear_bias), target, ...)`` with ``ignore_index=None`` meaning -100.

    Class-index targets with a (C, in_features) weight run chunked through
    `jaxloss.linear_cross_entropy` (the (N, C) logits are never built), in chunks of
    ``options.batch_chunk_size`` rows when given. Class-probability targets and K-dimensional
    weights (C, d_1, ..., d_K, in_features) take torch's reference path: the logits, then
    `cross_entropy`.
    """
    x = checks.float_array("linear_cross_entropy", "input", input)
    w = checks.float_array("linear_cross_entropy", "linear_weight", linear_weight)
    y = checks.as_array("linear_cross_entropy", "target", target)
    ignore_index = -100 if ignore_index is None else ignore_index
    if w.ndim < 2 or x.ndim not in (1, 2) or w.shape[-1] != x.shape[-1]:
        raise ValueError(
            "linear_cross_entropy: `input` must be (in_features,) or (N, in_features) and "
            "`linear_weight` (C, in_features) or (C, d_1, ..., d_K, in_features) with the same "
            f"in_features; got input {list(x.shape)} and linear_weight {list(w.shape)}."
        )
    if w.ndim > 2 and x.ndim == 1:
        raise ValueError(
            f"linear_cross_entropy: a K-dimensional loss (`linear_weight` of shape "
            f"{list(w.shape)}) requires a batched `input` (N, {w.shape[-1]}); got an unbatched "
            f"input of shape {list(x.shape)}."
        )
    if w.ndim > 2 or jnp.issubdtype(y.dtype, jnp.floating):
        # torch's reference path: materialise the logits, classes on axis 1.
        logits = jnp.einsum("...i,ci->...c", x, w.reshape(-1, w.shape[-1]))
        if x.ndim == 2:
            logits = logits.reshape((x.shape[0],) + w.shape[:-1])
        else:
            logits = logits.reshape(w.shape[:-1])
        if linear_bias is not None:
            logits = logits + jnp.asarray(linear_bias)
        return cross_entropy(
            logits,
            y,
            weight=weight,
            ignore_index=ignore_index,
            reduction=reduction,
            label_smoothing=label_smoothing,
        )
    chunk = getattr(options, "batch_chunk_size", None) if options is not None else None
    # torch's reductions ('none', 'mean', 'sum') return one array, never a (sum, count) pair
    return fused.linear_cross_entropy(  # type: ignore[return-value]
        x,
        w,
        y,
        bias=linear_bias,
        class_weights=weight,
        ignore_index=ignore_index,
        label_smoothing=label_smoothing,
        reduction=reduction,
        chunk_size=fused.DEFAULT_CHUNK_SIZE if chunk is None else chunk,
    )


# ----------------------------------------------------------------------------- docstrings
# The compat functions share torch's argument names, so their Args sections come from one
# glossary (with per-function wording where an argument means something else), their Returns
# from the output shape of each, and each gets a small runnable example.

_ARGUMENTS = {
    "input": "the predictions, in torch's layout (classes on axis 1; ``(C,)`` unbatched).",
    "target": "the targets, as torch takes them for this loss.",
    "input1": "the first input of each pair.",
    "input2": "the second input of each pair.",
    "weight": "optional weights, as torch's (per class, or per element).",
    "pos_weight": "optional weight of the positive term, broadcastable to ``input``.",
    "size_average": "deprecated; with ``reduce``, overrides ``reduction`` by torch's rule.",
    "reduce": "deprecated; with ``size_average``, overrides ``reduction`` by torch's rule.",
    "reduction": "``'none'``, ``'mean'`` or ``'sum'``.",
    "ignore_index": "the target value that is ignored.",
    "label_smoothing": "ε in [0, 1].",
    "margin": "the margin.",
    "p": "the norm's order.",
    "eps": "ε, as torch's.",
    "swap": "use min(d(a, n), d(p, n)) as the negative distance.",
    "log_input": "``input`` holds log-rates.",
    "full": "add the constant (Stirling) term.",
    "log_target": "``target`` holds log-probabilities.",
    "delta": "δ > 0, where the loss turns linear.",
    "beta": "β >= 0, where the loss turns linear.",
    "var": "the variances (a float or an array, as torch takes them).",
    "x1": "the first points.",
    "x2": "the second points.",
    "dim": "the vector axis.",
    "keepdim": "keep the reduced axis.",
    "anchor": "anchor embeddings ``(N, D)`` or ``(D,)``.",
    "positive": "positive embeddings.",
    "negative": "negative embeddings.",
    "distance_function": "``d(u, v)``, default `pairwise_distance`.",
    "log_probs": "``(T, N, C)`` or unbatched ``(T, C)`` log-probabilities.",
    "targets": "padded ``(N, S)`` or concatenated ``(sum(target_lengths),)`` labels.",
    "input_lengths": "``(N,)`` frames per sequence (a tensor, tuple or list).",
    "target_lengths": "``(N,)`` labels per sequence (a tensor, tuple or list).",
    "blank": "the blank class.",
    "zero_infinity": "give impossible alignments a loss and gradient of 0.",
    "linear_weight": "``(C, in_features)`` or ``(C, d_1, ..., d_K, in_features)``.",
    "linear_bias": "optional bias of the linear head.",
    "options": "a `jaxloss.compat.nn.LinearCrossEntropyOptions` (``batch_chunk_size``).",
}
_SPECIFIC = {
    ("multi_margin_loss", "p"): "1 or 2.",
    ("multi_margin_loss", "weight"): "optional ``(C,)`` class weights.",
    ("cross_entropy", "weight"): "optional ``(C,)`` class weights.",
    ("nll_loss", "weight"): "optional ``(C,)`` class weights.",
    ("linear_cross_entropy", "weight"): "optional ``(C,)`` class weights.",
    ("linear_cross_entropy", "ignore_index"): "the ignored target; None means -100.",
    ("cross_entropy", "target"): "class indices ``(N, d_1, ...)`` or probabilities of "
    "``input``'s shape.",
    ("nll_loss", "input"): "log-probabilities ``(N, C, d_1, ...)`` or ``(C,)``.",
    ("nll_loss", "target"): "class indices ``(N, d_1, ...)``.",
    ("multilabel_margin_loss", "target"): "target classes per sample, ended by -1.",
    ("multi_margin_loss", "target"): "class indices ``(N,)``.",
    ("linear_cross_entropy", "input"): "``(N, in_features)`` or ``(in_features,)``.",
    ("linear_cross_entropy", "target"): "class indices ``(N,)`` (or probabilities).",
}
_PER_SAMPLE = "one loss per sample"
_RETURNS = {
    "cross_entropy": "one loss per position (``input.shape`` without axis 1)",
    "nll_loss": "one loss per position (``input.shape`` without axis 1)",
    "multi_margin_loss": _PER_SAMPLE,
    "multilabel_margin_loss": _PER_SAMPLE,
    "multilabel_soft_margin_loss": _PER_SAMPLE,
    "cosine_embedding_loss": "one loss per pair",
    "triplet_margin_loss": "one loss per triplet",
    "triplet_margin_with_distance_loss": "one loss per triplet",
    "ctc_loss": "one loss per sequence ``(N,)``",
    "linear_cross_entropy": "one loss per row ``(N,)``",
}
_NOT_A_LOSS = {
    "pairwise_distance": "the distances, ``x1``'s batch shape (``keepdim`` keeps the last axis).",
    "cosine_similarity": "the similarities, the broadcast shape without ``dim``.",
}
_EXAMPLES = {
    "l1_loss": ("F.l1_loss(jnp.array([1.0, 2.0]), jnp.array([1.5, 2.0]))", "0.25"),
    "mse_loss": ("F.mse_loss(jnp.array([1.0, 2.0]), jnp.array([1.5, 2.0]))", "0.125"),
    "cross_entropy": ("F.cross_entropy(jnp.zeros((2, 4)), jnp.array([0, 3]))", "1.3863"),
    "nll_loss": ("F.nll_loss(jnp.log(jnp.full((2, 4), 0.25)), jnp.array([0, 3]))", "1.3863"),
    "poisson_nll_loss": ("F.poisson_nll_loss(jnp.zeros(2), jnp.array([1.0, 3.0]))", "1.0"),
    "gaussian_nll_loss": ("F.gaussian_nll_loss(jnp.zeros(2), jnp.ones(2), jnp.ones(2))", "0.5"),
    "kl_div": (
        "F.kl_div(jnp.log(jnp.array([[0.5, 0.5]])), jnp.array([[0.5, 0.5]]), "
        "reduction='batchmean')",
        "0.0",
    ),
    "binary_cross_entropy": (
        "F.binary_cross_entropy(jnp.array([0.5]), jnp.array([1.0]))",
        "0.6931",
    ),
    "binary_cross_entropy_with_logits": (
        "F.binary_cross_entropy_with_logits(jnp.zeros(3), jnp.ones(3))",
        "0.6931",
    ),
    "margin_ranking_loss": (
        "F.margin_ranking_loss(jnp.array([0.2]), jnp.array([0.5]), jnp.array([1.0]))",
        "0.3",
    ),
    "hinge_embedding_loss": (
        "F.hinge_embedding_loss(jnp.array([0.25]), jnp.array([-1.0]))",
        "0.75",
    ),
    "multilabel_margin_loss": (
        "F.multilabel_margin_loss(jnp.array([[0.0, 1.0]]), jnp.array([[1, -1]]))",
        "0.0",
    ),
    "huber_loss": ("F.huber_loss(jnp.array([0.0]), jnp.array([3.0]))", "2.5"),
    "smooth_l1_loss": ("F.smooth_l1_loss(jnp.array([0.0]), jnp.array([0.5]))", "0.125"),
    "soft_margin_loss": ("F.soft_margin_loss(jnp.zeros(2), jnp.ones(2))", "0.6931"),
    "multilabel_soft_margin_loss": (
        "F.multilabel_soft_margin_loss(jnp.zeros((1, 2)), jnp.array([[1.0, 0.0]]))",
        "0.6931",
    ),
    "cosine_embedding_loss": (
        "F.cosine_embedding_loss(jnp.ones((1, 2)), jnp.ones((1, 2)), jnp.array([-1.0]))",
        "1.0",
    ),
    "multi_margin_loss": ("F.multi_margin_loss(jnp.array([[0.0, 0.0]]), jnp.array([1]))", "0.5"),
    "pairwise_distance": (
        "F.pairwise_distance(jnp.zeros((1, 2)), jnp.array([[3.0, 4.0]]), eps=0.0)[0]",
        "5.0",
    ),
    "cosine_similarity": (
        "F.cosine_similarity(jnp.array([[1.0, 0.0]]), jnp.array([[2.0, 0.0]]))[0]",
        "1.0",
    ),
    "triplet_margin_loss": (
        "F.triplet_margin_loss(jnp.zeros((1, 2)), jnp.zeros((1, 2)), "
        "jnp.ones((1, 2)) * 3, eps=0.0)",
        "0.0",
    ),
    "triplet_margin_with_distance_loss": (
        "F.triplet_margin_with_distance_loss(jnp.zeros((1, 2)), jnp.zeros((1, 2)), "
        "jnp.ones((1, 2)) * 3)",
        "0.0",
    ),
    "ctc_loss": (
        "F.ctc_loss(jnp.log(jnp.full((1, 1, 2), 0.5)), jnp.array([[1]]), (1,), (1,))",
        "0.6931",
    ),
    "linear_cross_entropy": (
        "F.linear_cross_entropy(jnp.ones((2, 3)), jnp.zeros((4, 3)), jnp.array([0, 3]))",
        "1.3863",
    ),
}


def _docstring(name, fn) -> str:
    import inspect

    lines = [
        f"``torch.nn.functional.{name}`` with torch 2.13's signature, defaults and "
        f"semantics (class axis 1);",
        f"computed by `jaxloss.{name}`, whose docstring gives the formula and the conventions.",
        "",
        "Args:",
    ]
    for parameter in inspect.signature(fn).parameters:
        text = _SPECIFIC.get((name, parameter), _ARGUMENTS[parameter])
        lines.append(f"  {parameter}: {text}")
    lines += ["", "Returns:"]
    if name in _NOT_A_LOSS:
        lines.append(f"  {_NOT_A_LOSS[name]}")
    else:
        per = _RETURNS.get(name, "the elementwise loss, in the broadcast shape of the inputs")
        lines.append(f"  ``'none'``: {per}; ``'mean'``/``'sum'``: a scalar.")
    call, value = _EXAMPLES[name]
    lines += [
        "",
        "Example:",
        "  >>> from jaxloss.compat import functional as F",
        f"  >>> round(float({call}), 4)",
        f"  {value}",
    ]
    return "\n".join(lines)


def _document(namespace):
    for name in __all__:
        fn = namespace[name]
        fn.__doc__ = ((fn.__doc__.strip() + "\n\n") if fn.__doc__ else "") + _docstring(name, fn)


_document(globals())
