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

import jax.numpy as jnp
import numpy as np

from .. import _checks, classification, embedding, fused, regression, sequence

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

    def decorate(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except (ValueError, TypeError) as err:
                message = pattern.sub(lambda m: f"`{native_to_torch[m.group(1)]}{m.group(2)}",
                                      str(err))
                if message == str(err):
                    raise
                raise type(err)(message) from None
        return wrapper
    return decorate


_REGRESSION = dict(predictions="input", targets="target")
_CLASSES = dict(logits="input", log_probs="input", scores="input", probs="input",
                labels="target", distances="input", log_predictions="input", targets="target")
_PAIRS = dict(scores1="input1", scores2="input2", embeddings1="input1", embeddings2="input2",
              labels="target")


def legacy_reduction(size_average, reduce, reduction):
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
        "instead.", UserWarning, stacklevel=3)
    return chosen


def _class_axis(input):
    """torch puts classes on dim 1, or dim 0 for an unbatched (C,) input."""
    return 1 if jnp.ndim(input) >= 2 else -1


def _require_vector_or_matrix(fn, input):
    ndim = jnp.ndim(input)
    if ndim not in (1, 2) or (ndim == 2 and jnp.shape(input)[1] == 0) or (
            ndim == 1 and jnp.shape(input)[0] == 0):
        raise ValueError(
            f"{fn}: `input` must be a non-empty vector (C,) or matrix (N, C); got shape "
            f"{list(jnp.shape(input))}.")


@_torch_names(**_REGRESSION)
def l1_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None):
    reduction = legacy_reduction(size_average, reduce, reduction)
    return regression.l1_loss(input, target, weight=weight, reduction=reduction)


@_torch_names(**_REGRESSION)
def mse_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None):
    reduction = legacy_reduction(size_average, reduce, reduction)
    return regression.mse_loss(input, target, weight=weight, reduction=reduction)


@_torch_names(**_CLASSES)
def cross_entropy(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,
                  reduction="mean", label_smoothing=0.0):
    reduction = legacy_reduction(size_average, reduce, reduction)
    return classification.cross_entropy(
        input, target, axis=_class_axis(input), weight=weight, ignore_index=ignore_index,
        label_smoothing=label_smoothing, reduction=reduction)


@_torch_names(**_CLASSES)
def nll_loss(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,
             reduction="mean"):
    reduction = legacy_reduction(size_average, reduce, reduction)
    return classification.nll_loss(
        input, target, axis=_class_axis(input), weight=weight, ignore_index=ignore_index,
        reduction=reduction)


@_torch_names(**_REGRESSION)
def poisson_nll_loss(input, target, log_input=True, full=False, size_average=None, eps=1e-8,
                     reduce=None, reduction="mean"):
    reduction = legacy_reduction(size_average, reduce, reduction)
    return regression.poisson_nll_loss(input, target, log_input=log_input, full=full, eps=eps,
                                       reduction=reduction)


@_torch_names(**_REGRESSION)
def gaussian_nll_loss(input, target, var, full=False, eps=1e-6, reduction="mean"):
    return regression.gaussian_nll_loss(input, target, var, full=full, eps=eps,
                                        reduction=reduction)


@_torch_names(**_CLASSES)
def kl_div(input, target, size_average=None, reduce=None, reduction="mean", log_target=False):
    if size_average is None and reduce is None and reduction == "mean":
        warnings.warn(
            "reduction: 'mean' divides the total loss by both the batch size and the support "
            "size. 'batchmean' divides only by the batch size, and aligns with the KL div math "
            "definition.", UserWarning, stacklevel=2)
    reduction = legacy_reduction(size_average, reduce, reduction)
    return classification.kl_div(input, target, log_target=log_target, reduction=reduction)


@_torch_names(**_CLASSES)
def binary_cross_entropy(input, target, weight=None, size_average=None, reduce=None,
                         reduction="mean"):
    reduction = legacy_reduction(size_average, reduce, reduction)
    return classification.binary_cross_entropy(input, target, weight=weight,
                                               reduction=reduction)


@_torch_names(**_CLASSES)
def binary_cross_entropy_with_logits(input, target, weight=None, size_average=None, reduce=None,
                                     reduction="mean", pos_weight=None):
    reduction = legacy_reduction(size_average, reduce, reduction)
    return classification.binary_cross_entropy_with_logits(
        input, target, weight=weight, pos_weight=pos_weight, reduction=reduction)


@_torch_names(**_PAIRS)
def margin_ranking_loss(input1, input2, target, margin=0, size_average=None, reduce=None,
                        reduction="mean"):
    reduction = legacy_reduction(size_average, reduce, reduction)
    if not jnp.ndim(input1) == jnp.ndim(input2) == jnp.ndim(target):
        raise ValueError(
            "margin_ranking_loss: `input1`, `input2` and `target` must have the same number of "
            f"dimensions; got shapes {list(jnp.shape(input1))}, {list(jnp.shape(input2))} and "
            f"{list(jnp.shape(target))}.")
    return embedding.margin_ranking_loss(input1, input2, target, margin=margin,
                                         reduction=reduction)


@_torch_names(**_CLASSES)
def hinge_embedding_loss(input, target, margin=1.0, size_average=None, reduce=None,
                         reduction="mean"):
    reduction = legacy_reduction(size_average, reduce, reduction)
    return embedding.hinge_embedding_loss(input, target, margin=margin, reduction=reduction)


@_torch_names(**_CLASSES)
def multilabel_margin_loss(input, target, size_average=None, reduce=None, reduction="mean"):
    reduction = legacy_reduction(size_average, reduce, reduction)
    _require_vector_or_matrix("multilabel_margin_loss", input)
    return classification.multilabel_margin_loss(input, target, reduction=reduction)


@_torch_names(**_REGRESSION)
def huber_loss(input, target, reduction="mean", delta=1.0, weight=None):
    return regression.huber_loss(input, target, delta=delta, weight=weight, reduction=reduction)


@_torch_names(**_REGRESSION)
def smooth_l1_loss(input, target, size_average=None, reduce=None, reduction="mean", beta=1.0):
    reduction = legacy_reduction(size_average, reduce, reduction)
    return regression.smooth_l1_loss(input, target, beta=beta, reduction=reduction)


@_torch_names(**_CLASSES)
def soft_margin_loss(input, target, size_average=None, reduce=None, reduction="mean"):
    reduction = legacy_reduction(size_average, reduce, reduction)
    return classification.soft_margin_loss(input, target, reduction=reduction)


@_torch_names(**_CLASSES)
def multilabel_soft_margin_loss(input, target, weight=None, size_average=None, reduce=None,
                                reduction="mean"):
    reduction = legacy_reduction(size_average, reduce, reduction)
    return classification.multilabel_soft_margin_loss(input, target, axis=-1, weight=weight,
                                                      reduction=reduction)


@_torch_names(**_PAIRS)
def cosine_embedding_loss(input1, input2, target, margin=0, size_average=None, reduce=None,
                          reduction="mean"):
    reduction = legacy_reduction(size_average, reduce, reduction)
    target_ndim = jnp.ndim(target)
    if target_ndim not in (0, 1):
        raise ValueError(
            "cosine_embedding_loss: `target` must be 0-D or 1-D (one label per pair); got shape "
            f"{list(jnp.shape(target))}.")
    expected = target_ndim + 1
    if jnp.ndim(input1) != expected or jnp.ndim(input2) != expected:
        raise ValueError(
            f"cosine_embedding_loss: a {target_ndim}-D `target` expects {expected}-D inputs; got "
            f"shapes {list(jnp.shape(input1))} and {list(jnp.shape(input2))}.")
    return embedding.cosine_embedding_loss(input1, input2, target, margin=margin,
                                           reduction=reduction)


@_torch_names(**_CLASSES)
def multi_margin_loss(input, target, p=1, margin=1.0, weight=None, size_average=None,
                      reduce=None, reduction="mean"):
    reduction = legacy_reduction(size_average, reduce, reduction)
    _require_vector_or_matrix("multi_margin_loss", input)
    if weight is not None and jnp.ndim(weight) != 1:
        raise ValueError(f"multi_margin_loss: `weight` must be one-dimensional; got shape "
                         f"{list(jnp.shape(weight))}.")
    return classification.multi_margin_loss(input, target, axis=_class_axis(input), p=p,
                                            margin=margin, weight=weight, reduction=reduction)


def pairwise_distance(x1, x2, p=2.0, eps=1e-6, keepdim=False):
    return embedding.pairwise_distance(x1, x2, p=p, eps=eps, keepdims=keepdim)


def cosine_similarity(x1, x2, dim=1, eps=1e-8):
    return embedding.cosine_similarity(x1, x2, axis=dim, eps=eps)


def triplet_margin_loss(anchor, positive, negative, margin=1.0, p=2, eps=1e-6, swap=False,
                        size_average=None, reduce=None, reduction="mean"):
    reduction = legacy_reduction(size_average, reduce, reduction)
    return embedding.triplet_margin_loss(anchor, positive, negative, margin=margin, p=p, eps=eps,
                                         swap=swap, reduction=reduction)


def triplet_margin_with_distance_loss(anchor, positive, negative, *, distance_function=None,
                                      margin=1.0, swap=False, reduction="mean"):
    return embedding.triplet_margin_with_distance_loss(
        anchor, positive, negative, distance_function=distance_function, margin=margin,
        swap=swap, reduction=reduction)


_CTC = dict(logits="log_probs", labels="targets", label_lengths="target_lengths")


def _ctc_lengths(name, lengths):
    """torch takes lengths as tensors or as tuples/lists of ints."""
    if isinstance(lengths, (tuple, list)):
        if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in lengths):
            raise TypeError(f"ctc_loss: `{name}` given as a sequence must hold ints; got "
                            f"{lengths!r}.")
        return jnp.asarray(lengths, jnp.int32).reshape(len(lengths))
    array = _checks.as_array("ctc_loss", name, lengths)
    if not jnp.issubdtype(array.dtype, jnp.integer):
        raise TypeError(f"ctc_loss: `{name}` must be integral; got dtype {array.dtype}.")
    return array


def _unconcatenate(targets, target_lengths):
    """torch's concatenated 1-D targets (sum(target_lengths),) as padded (N, S) labels."""
    total = targets.shape[0]
    if _checks.is_concrete(target_lengths):
        expected = int(np.sum(np.asarray(target_lengths)))
        if expected != total:
            raise ValueError(
                f"ctc_loss: concatenated 1-D `targets` must hold sum(target_lengths) = "
                f"{expected} labels; got {total}.")
        width = int(np.max(np.asarray(target_lengths), initial=0))
    else:
        width = total
    offsets = jnp.cumsum(target_lengths) - target_lengths
    index = jnp.clip(offsets[:, None] + jnp.arange(width)[None, :], 0, max(total - 1, 0))
    return targets[index] if total else jnp.zeros((target_lengths.shape[0], 0), targets.dtype)


@_torch_names(**_CTC)
def ctc_loss(log_probs, targets, input_lengths, target_lengths, blank=0, reduction="mean",
             zero_infinity=False):
    """torch.nn.functional.ctc_loss: `log_probs` (T, N, C) or unbatched (T, C); `targets`
    padded (N, S) or concatenated (sum(target_lengths),); lengths as tensors or tuples.

    The gradient w.r.t. `log_probs` is torch's (it assumes they came from a log_softmax).
    Computed by :func:`jaxloss.ctc_loss`, whose docstring gives the formula.
    """
    lp = _checks.float_array("ctc_loss", "log_probs", log_probs)
    if lp.ndim not in (2, 3):
        raise ValueError(f"ctc_loss: `log_probs` must be (T, N, C) or unbatched (T, C); got "
                         f"shape {list(lp.shape)}.")
    y = _checks.as_array("ctc_loss", "targets", targets)
    if jnp.issubdtype(y.dtype, jnp.floating):
        y = y.astype(jnp.int32)  # torch accepts float targets and truncates them
    input_lengths = _ctc_lengths("input_lengths", input_lengths)
    target_lengths = _ctc_lengths("target_lengths", target_lengths)
    if lp.ndim == 2:  # unbatched: one sequence, lengths of one element or 0-d
        if y.ndim == 2 and y.shape[0] == 1:
            y = y[0]
        if input_lengths.size != 1 or target_lengths.size != 1:
            raise ValueError("ctc_loss: unbatched `log_probs` (T, C) take one input length and "
                             f"one target length; got {input_lengths.size} and "
                             f"{target_lengths.size}.")
        return sequence.ctc_loss(lp, y, input_lengths=input_lengths.reshape(()),
                                 label_lengths=target_lengths.reshape(()), blank=blank,
                                 from_logits=False, zero_infinity=zero_infinity,
                                 reduction=reduction)
    batch = lp.shape[1]
    for name, lengths in (("input_lengths", input_lengths), ("target_lengths", target_lengths)):
        if lengths.shape != (batch,):
            raise ValueError(f"ctc_loss: `{name}` must be of size batch_size ({batch}); got "
                             f"shape {list(lengths.shape)}.")
    if y.ndim == 1:
        y = _unconcatenate(y, target_lengths)
    return sequence.ctc_loss(jnp.swapaxes(lp, 0, 1), y, input_lengths=input_lengths,
                             label_lengths=target_lengths, blank=blank, from_logits=False,
                             zero_infinity=zero_infinity, reduction=reduction)


_LINEAR = dict(x="input", w="linear_weight", labels="target", bias="linear_bias")


@_torch_names(**_LINEAR)
def linear_cross_entropy(input, linear_weight, target, *, linear_bias=None, weight=None,
                         reduction="mean", ignore_index=None, label_smoothing=0.0, options=None):
    """torch.nn.functional.linear_cross_entropy: ``cross_entropy(linear(input, linear_weight,
    linear_bias), target, ...)`` with ``ignore_index=None`` meaning -100.

    Class-index targets with a (C, in_features) weight run chunked through
    :func:`jaxloss.linear_cross_entropy` (the (N, C) logits are never built), in chunks of
    ``options.batch_chunk_size`` rows when given. Class-probability targets and K-dimensional
    weights (C, d_1, ..., d_K, in_features) take torch's reference path: the logits, then
    :func:`cross_entropy`.
    """
    x = _checks.float_array("linear_cross_entropy", "input", input)
    w = _checks.float_array("linear_cross_entropy", "linear_weight", linear_weight)
    y = _checks.as_array("linear_cross_entropy", "target", target)
    ignore_index = -100 if ignore_index is None else ignore_index
    if w.ndim < 2 or x.ndim not in (1, 2) or w.shape[-1] != x.shape[-1]:
        raise ValueError(
            "linear_cross_entropy: `input` must be (in_features,) or (N, in_features) and "
            "`linear_weight` (C, in_features) or (C, d_1, ..., d_K, in_features) with the same "
            f"in_features; got input {list(x.shape)} and linear_weight {list(w.shape)}.")
    if w.ndim > 2 or jnp.issubdtype(y.dtype, jnp.floating):
        # torch's reference path: materialise the logits, classes on axis 1.
        logits = jnp.einsum("...i,ci->...c", x, w.reshape(-1, w.shape[-1]))
        if x.ndim == 2:
            logits = logits.reshape((x.shape[0],) + w.shape[:-1])
        else:
            logits = logits.reshape(w.shape[:-1])
        if linear_bias is not None:
            logits = logits + jnp.asarray(linear_bias)
        return cross_entropy(logits, y, weight=weight, ignore_index=ignore_index,
                             reduction=reduction, label_smoothing=label_smoothing)
    chunk = getattr(options, "batch_chunk_size", None) if options is not None else None
    return fused.linear_cross_entropy(
        x, w, y, bias=linear_bias, weight=weight, ignore_index=ignore_index,
        label_smoothing=label_smoothing, reduction=reduction,
        chunk_size=fused.DEFAULT_CHUNK_SIZE if chunk is None else chunk)


def _document(namespace):
    for name in __all__:
        fn = namespace[name]
        if not fn.__doc__:
            fn.__doc__ = (f"torch.nn.functional.{name} with torch 2.13's signature and semantics "
                          f"(class axis 1); computed by :func:`jaxloss.{name}`, whose docstring "
                          "gives the formula.")


_document(globals())
