"""The fused linear head: cross-entropy of ``x @ w.T + b`` without materialising the (N, V)
logits.

``linear_cross_entropy(x, w, labels)`` equals ``cross_entropy(x @ w.T + b, labels)`` but walks
the tokens in chunks of ``chunk_size`` rows, so at most a (chunk, V) block of logits exists at
a time (the kernel: `jaxloss._kernels.chunked_head`). This module checks the arguments and, on an
Explicit mesh, runs the kernel per device in the layout the shardings describe
(`jaxloss._mesh_layouts`). PaLM's z-loss (λ·logsumexp²) and Gemma 2's logit soft-capping
(c·tanh(z/c)) are options. The adaptive softmax, the other way to avoid a full (N, V) softmax,
is `jaxloss.adaptive`.
"""

from __future__ import annotations

import functools
from typing import Any

from jax.sharding import PartitionSpec as P
from jax.typing import ArrayLike

from ._core import checks
from ._core.renames import renamed_keywords
from ._core.sharding import has_explicit_axes
from ._kernels.chunked_head import (
    DEFAULT_CHUNK_SIZE,
    HeadArrays,
    HeadOptions,
    HeadReduction,
    LossOrSumAndCount,
    head_loss,
)
from ._mesh_layouts import run_on_explicit_mesh

__all__ = ["linear_cross_entropy"]


@renamed_keywords(weight="class_weights")
def linear_cross_entropy(
    x: ArrayLike,
    w: ArrayLike,
    labels: ArrayLike,
    *,
    bias: ArrayLike | None = None,
    class_weights: ArrayLike | None = None,
    ignore_index: int | None = -100,
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
    softcap: float | None = None,
    class_mask: ArrayLike | None = None,
    valid_vocab_size: int | None = None,
    where: ArrayLike | None = None,
    reduction: HeadReduction = "mean",
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> LossOrSumAndCount:
    r"""Cross-entropy of a linear head, $\mathrm{CE}(x W^\top + b,\ y)$, without ever
    materialising the (N, V) logits.

    Equal to ``cross_entropy(x @ w.T + bias, labels, class_weights=..., ignore_index=...,
    label_smoothing=...)`` (same weighting and 'mean' normalisation), computed ``chunk_size``
    rows at a time: extra memory is O(chunk_size · V) besides the gradients. With ``softcap``
    the logits are $c\tanh(z/c)$ (Gemma 2); with ``z_loss`` = λ each counted row adds
    $\lambda\,(\log\sum_c e^{z_c})^2$ (PaLM), which 'mean' divides like the rest.

    Args:
      x: ``(..., D)`` hidden states (leading axes are tokens).
      w: ``(V, D)`` head weight (torch's Linear layout).
      labels: integer classes of ``x.shape[:-1]``; ``ignore_index`` rows count for nothing.
      bias: optional ``(V,)`` head bias.
      class_weights: optional ``(V,)`` class weights.
      ignore_index: label value that is ignored; ``None`` ignores nothing.
      label_smoothing: ε in [0, 1].
      z_loss: λ >= 0 of PaLM's z-loss.
      softcap: c > 0 of Gemma 2's logit soft-capping, or None.
      class_mask: optional boolean ``(V,)`` mask of the vocabulary entries that take part
        (as `cross_entropy`'s ``class_mask``, one mask for every token): the loss is exactly
        the loss over the included entries alone, and excluded rows of ``w`` get zero
        gradient. A counted label on an excluded entry is an error (nan under ``jit``).
      valid_vocab_size: optional int K: only the first K vocabulary entries take part, the
        usual case of a head padded to a multiple of 128 (the same as ``class_mask =
        arange(V) < K``; give one or the other).
      where: optional boolean mask of ``x.shape[:-1]``.
      reduction: ``'none'``, ``'mean'``, ``'sum'``, or ``'sum_and_count'``: the pair
        (Σ w·loss, Σ w) whose ratio is ``'mean'``, for accumulating a mean over
        micro-batches.
      chunk_size: rows per chunk (a Python int >= 1).

    Returns:
      ``'none'``: one loss per token, ``x.shape[:-1]``; ``'mean'``/``'sum'``: a scalar;
      ``'sum_and_count'``: two scalars.

    Sharded inputs: on an Explicit mesh the loss runs per device under ``shard_map`` in the
    layout the shardings describe (x's leading axes: tokens, data parallel; w's first axis:
    the vocabulary, tensor parallel, or FSDP when that axis is a token axis), with the
    values and gradients of the unsharded call and gradients sharded like their inputs; see
    `jaxloss.parallel.linear_cross_entropy`. On Auto meshes XLA's partitioner decides.

    bfloat16/float16 inputs run their matmuls in that dtype with float32 accumulation, or,
    on a CPU where that is slower (no native bf16 arithmetic), as float32 matmuls: measured
    once per shape and cached (``JAXLOSS_MATMUL_16BIT=native|float32`` fixes it; see
    ``jaxloss/matmul.py``). The softmax and the sums are float32; gradients come back in the
    inputs' dtypes. Gradients flow
    to ``x``, ``w`` and ``bias``; ``class_weights`` and ``label_smoothing`` are constants here
    (use `cross_entropy` to differentiate them).

    Examples:
      >>> x = jax.random.normal(jax.random.key(0), (1000, 64))
      >>> w = jax.random.normal(jax.random.key(1), (5000, 64)) * 0.1
      >>> labels = jax.random.randint(jax.random.key(2), (1000,), 0, 5000)
      >>> fused = jaxloss.linear_cross_entropy(x, w, labels, chunk_size=256)
      >>> naive = jaxloss.cross_entropy(x @ w.T, labels)
      >>> bool(jnp.allclose(fused, naive, rtol=1e-5))
      True
    """
    fn = "linear_cross_entropy"
    x, w, labels = checks.linear_head(fn, x, w, labels, reduction, chunk_size)
    num_classes = w.shape[0]
    bias = checks.head_bias(fn, bias, num_classes)
    checks.head_options(fn, label_smoothing, z_loss, softcap)
    arrays = HeadArrays(
        bias=bias,
        weight=checks.class_weight(fn, class_weights, num_classes),
        class_mask=checks.vocabulary_mask(fn, class_mask, valid_vocab_size, num_classes),
        where=checks.where_mask(fn, where, labels.shape, "one loss per token"),
    )
    options = HeadOptions(
        ignore_index=ignore_index,
        label_smoothing=label_smoothing,
        z_loss=z_loss,
        softcap=softcap,
        reduction=reduction,
        chunk_size=chunk_size,
    )
    per_device = functools.partial(head_loss, fn, options=options)
    if has_explicit_axes(x) or has_explicit_axes(w):
        return run_on_explicit_mesh(
            fn, per_device, x, w, labels, arrays, functools.partial(_out_spec, reduction)
        )
    return per_device(x, w, labels, arrays)


def _out_spec(reduction: str, token_spec: tuple) -> Any:
    """The output spec of the loss whose tokens are split as `token_spec`."""
    if reduction == "none":
        return P(*token_spec)
    return (P(), P()) if reduction == "sum_and_count" else P()
