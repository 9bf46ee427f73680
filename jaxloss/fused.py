"""Fused losses: linear head + cross-entropy without materialising the (N, V) logits.

``linear_cross_entropy(x, w, labels)`` equals ``cross_entropy(x @ w.T + b, labels)`` but walks
the tokens in chunks of ``chunk_size`` rows, so at most a (chunk, V) block of logits exists at a
time. For 'mean' and 'sum' the loss is a sum over rows whose cotangent is one scalar, so the
forward pass of the VJP already forms dx, dW and db for a unit cotangent (three matmuls per
chunk: logits, dx, dW) and the backward pass only scales them; for 'none' the backward
recomputes each chunk's logits (four matmuls). The per-row math (weights, ignore_index, label
smoothing, masks) is the cross-entropy kernel of `jaxloss._softmax_ce`; this module adds
PaLM's z-loss (λ·logsumexp²) and Gemma 2's logit soft-capping (c·tanh(z/c)). The adaptive
softmax, the other way to avoid a full (N, V) softmax, is `jaxloss.adaptive`.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax
from jax.typing import ArrayLike

from . import _checks
from ._labels import class_indices
from ._precision import dtypes
from ._reduction import Reduction, finish, mean_denominator
from ._softmax_ce import RowTargets, forward_rows, logit_grad

DEFAULT_CHUNK_SIZE = 512  # (512, 32768) f32 logits = 64 MiB; measured as fast as 1024


def _matmul(a, b, contract):
    """a·b contracting the given axes, accumulating in float32 (fast bf16 matmuls on CPU)."""
    out = jnp.promote_types(jnp.promote_types(a.dtype, b.dtype), jnp.float32)
    return lax.dot_general(a, b, (contract, ((), ())), preferred_element_type=out)


def _chunk_logits(x, w, b, softcap):
    z = _matmul(x, w, ((1,), (1,)))  # (c, V) = x @ w.T
    if b is not None:
        z = z + b.astype(z.dtype)
    if softcap is not None:
        z = softcap * jnp.tanh(z / softcap)
    return z


@dataclasses.dataclass(frozen=True)
class FusedSettings:
    """Static configuration of one fused call (hashable: it keys the compiled kernel)."""

    smooth: bool  # False when ε is known to be 0 (no smoothing terms at all)
    z_loss: float  # PaLM's λ (0: off)
    softcap: float | None  # Gemma 2's c (None: off)
    chunk_size: int  # rows per chunk; N is padded to a multiple of it
    summed: bool  # the loss is Σ rows ('mean'/'sum'), not per row ('none')
    grad_dtypes: tuple  # the dtypes of x, w and bias, which their gradients take


def _chunk_forward(x, w, b, targets: RowTargets, settings: FusedSettings):
    z = _chunk_logits(x, w, b, settings.softcap)
    loss, stats = forward_rows(z, targets, smooth=settings.smooth)
    if settings.z_loss:
        loss = loss + jnp.where(targets.valid, settings.z_loss * stats.lse * stats.lse, 0.0)
    return z, loss, stats.lse


def _chunk_grad(z, x, w, targets: RowTargets, settings: FusedSettings, lse, cotangent):
    """(dx, dW, db) of Σ_i g_i·loss_i over one chunk."""
    extra = 2 * settings.z_loss * lse if settings.z_loss else None
    dz = logit_grad(z, targets, lse, cotangent, smooth=settings.smooth, extra_prob_scale=extra)
    if settings.softcap is not None:
        dz = dz * (1 - jnp.square(z / settings.softcap))
    dz_in = dz.astype(x.dtype)  # bf16 matmuls take bf16 operands, accumulate in f32
    dx = _matmul(dz_in, w, ((1,), (0,)))  # (c, D)
    dw = _matmul(dz_in, x, ((0,), (0,)))  # (V, D)
    return dx, dw, jnp.sum(dz, axis=0)


def _chunks(array, chunk_size):
    return array.reshape((-1, chunk_size) + array.shape[1:])


class ChunkPass(NamedTuple):
    """What one walk over the chunks returns; a field is None when the walk did not form it."""

    losses: Any  # (N,) per-row losses (not with a given `lse`)
    lse: Any  # (N / chunk, chunk) logsumexps (not with a given `lse`)
    dx: Any  # (N, D), with a cotangent
    dw: Any  # (V, D), with a cotangent
    db: Any  # (V,), with a cotangent


def _walk_chunks(
    x, w, b, targets: RowTargets, settings: FusedSettings, *, cotangent=None, lse=None
) -> ChunkPass:
    """One scan over the row chunks: the one loop every pass of the fused loss runs.

    Without `cotangent`: per-row losses and logsumexps. With a per-row `cotangent`: also
    dx (N, D) and the accumulated dW, db of Σ g·loss; each chunk's logits are formed once and
    used for both. Given the forward's `lse`, the losses are not recomputed (backward of
    'none').
    """
    size = settings.chunk_size
    compute = jnp.promote_types(x.dtype, jnp.float32)
    per_row = [_chunks(a, size) for a in (x, targets.labels, targets.valid, targets.label_weight)]
    if cotangent is not None:
        per_row.append(_chunks(cotangent, size))
    if lse is not None:
        per_row.append(lse)  # already chunked: (N / chunk, chunk)

    def body(carry, chunk):
        xc, yc, vc, lwc, *rest = chunk
        chunk_targets = RowTargets(yc, vc, lwc, targets.class_weight, targets.smoothing)
        if lse is None:
            z, loss, lse_c = _chunk_forward(xc, w, b, chunk_targets, settings)
            outputs = (loss, lse_c)
        else:
            z, lse_c, outputs = _chunk_logits(xc, w, b, settings.softcap), rest[-1], ()
        if cotangent is None:
            return carry, outputs
        dx, dw, db = _chunk_grad(z, xc, w, chunk_targets, settings, lse_c, rest[0])
        return (carry[0] + dw, carry[1] + db), outputs + (dx,)

    grads = cotangent is not None
    zeros = (jnp.zeros(w.shape, compute), jnp.zeros((w.shape[0],), compute)) if grads else None
    totals, outputs = lax.scan(body, zeros, tuple(per_row))
    losses, lse_out = (outputs[0].reshape(-1), outputs[1]) if lse is None else (None, None)
    dx = outputs[-1].reshape(x.shape) if grads else None
    dw, db = (totals[0], totals[1]) if totals is not None else (None, None)
    return ChunkPass(losses, lse_out, dx, dw, db)


@functools.partial(jax.custom_vjp, nondiff_argnums=(4,))
def _fused_with_vjp(x, w, b, targets: RowTargets, settings: FusedSettings):
    losses = _walk_chunks(x, w, b, targets, settings).losses
    return jnp.sum(losses) if settings.summed else losses


def _fused_fwd(x, w, b, targets, settings):
    if not settings.summed:
        losses, lse, _, _, _ = _walk_chunks(x, w, b, targets, settings)
        return losses, (x, w, b, targets, lse)
    # Summed: the cotangent is one scalar, so form the gradients for a unit cotangent now
    # (three matmuls per chunk) and let the backward pass only scale them.
    unit = jnp.ones(targets.labels.shape, jnp.promote_types(x.dtype, jnp.float32))
    losses, _, dx, dw, db = _walk_chunks(x, w, b, targets, settings, cotangent=unit)
    # Kept in float32; the backward casts the scaled gradients to the inputs' dtypes.
    return jnp.sum(losses), (dx, dw, None if b is None else db)


def _fused_bwd(settings, residuals, cotangent):
    x_dtype, w_dtype, b_dtype = settings.grad_dtypes
    if settings.summed:
        dx, dw, db = residuals
        dx, dw = cotangent * dx, cotangent * dw
        db = None if db is None else cotangent * db
    else:
        x, w, b, targets, lse = residuals
        walked = _walk_chunks(x, w, b, targets, settings, cotangent=cotangent, lse=lse)
        dx, dw, db = walked.dx, walked.dw, walked.db
    return (
        dx.astype(x_dtype),
        dw.astype(w_dtype),
        None if db is None or b_dtype is None else db.astype(b_dtype),
        None,
    )


_fused_with_vjp.defvjp(_fused_fwd, _fused_bwd)


@functools.partial(jax.jit, static_argnames=("settings",))
def _fused_rows(x, w, b, targets: RowTargets, *, settings: FusedSettings):
    """Row losses (N,) or, with `settings.summed`, their sum; N a multiple of the chunk size.

    Jitted so that eager calls compile once per shape; inside a user's jit it simply inlines.
    """
    return _fused_with_vjp(x, w, b, targets, settings)


def linear_cross_entropy(
    x: ArrayLike,
    w: ArrayLike,
    labels: ArrayLike,
    *,
    bias: ArrayLike | None = None,
    weight: ArrayLike | None = None,
    ignore_index: int | None = -100,
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
    softcap: float | None = None,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> jax.Array:
    r"""Cross-entropy of a linear head, $\mathrm{CE}(x W^\top + b,\ y)$, without ever
    materialising the (N, V) logits.

    Equal to ``cross_entropy(x @ w.T + bias, labels, weight=..., ignore_index=...,
    label_smoothing=...)`` (same weighting and 'mean' normalisation), computed ``chunk_size``
    rows at a time: extra memory is O(chunk_size · V) besides the gradients. With ``softcap``
    the logits are $c\tanh(z/c)$ (Gemma 2); with ``z_loss`` = λ each counted row adds
    $\lambda\,(\log\sum_c e^{z_c})^2$ (PaLM), which 'mean' divides like the rest.

    Args:
      x: ``(..., D)`` hidden states (leading axes are tokens).
      w: ``(V, D)`` head weight (torch's Linear layout).
      labels: integer classes of ``x.shape[:-1]``; ``ignore_index`` rows count for nothing.
      bias: optional ``(V,)`` head bias.
      weight: optional ``(V,)`` class weights.
      ignore_index: label value that is ignored; ``None`` ignores nothing.
      label_smoothing: ε in [0, 1].
      z_loss: λ >= 0 of PaLM's z-loss.
      softcap: c > 0 of Gemma 2's logit soft-capping, or None.
      where: optional boolean mask of ``x.shape[:-1]``.
      reduction: ``'none'``, ``'mean'`` or ``'sum'``.
      chunk_size: rows per chunk (a Python int >= 1).

    Returns:
      ``'none'``: one loss per token, ``x.shape[:-1]``; ``'mean'``/``'sum'``: a scalar.

    bfloat16/float16 inputs run their matmuls in that dtype with float32 accumulation; the
    softmax and the sums are float32; gradients come back in the inputs' dtypes. Gradients flow
    to ``x``, ``w`` and ``bias``; ``weight`` and ``label_smoothing`` are constants here
    (use `cross_entropy` to differentiate them).

    Example:
      >>> x = jax.random.normal(jax.random.key(0), (1000, 64))
      >>> w = jax.random.normal(jax.random.key(1), (5000, 64)) * 0.1
      >>> labels = jax.random.randint(jax.random.key(2), (1000,), 0, 5000)
      >>> fused = jaxloss.linear_cross_entropy(x, w, labels, chunk_size=256)
      >>> naive = jaxloss.cross_entropy(x @ w.T, labels)
      >>> bool(jnp.allclose(fused, naive, rtol=1e-5))
      True
    """
    fn = "linear_cross_entropy"
    x = _checks.float_array(fn, "x", x)
    w = _checks.float_array(fn, "w", w)
    labels = _checks.int_array(fn, "labels", labels)
    _checks.reduction(fn, reduction)
    if x.ndim < 1 or w.ndim != 2 or w.shape[1] != x.shape[-1]:
        raise ValueError(
            f"{fn}: `w` must be (V, D) with D = x.shape[-1] = "
            f"{x.shape[-1] if x.ndim else '?'}; got x {list(x.shape)} and w "
            f"{list(w.shape)}."
        )
    if labels.shape != x.shape[:-1]:
        raise ValueError(
            f"{fn}: `labels` must have shape x.shape[:-1] = {list(x.shape[:-1])}; "
            f"got {list(labels.shape)}."
        )
    num_classes = w.shape[0]
    if bias is not None:
        bias = _checks.float_array(fn, "bias", bias)
        if bias.shape != (num_classes,):
            raise ValueError(
                f"{fn}: `bias` must have shape [{num_classes}]; got {list(bias.shape)}."
            )
    weight = _checks.class_weight(fn, weight, num_classes)
    _checks.python_number(fn, "label_smoothing", label_smoothing, low=0.0, high=1.0)
    _checks.python_number(fn, "z_loss", z_loss, low=0.0)
    if softcap is not None:
        _checks.python_number(fn, "softcap", softcap, low=0.0, low_inclusive=False)
    if not isinstance(chunk_size, int) or isinstance(chunk_size, bool) or chunk_size < 1:
        raise ValueError(f"{fn}: `chunk_size` must be a positive int; got {chunk_size!r}.")
    where = _checks.where_mask(fn, where, labels.shape, "one loss per token")
    result_dtype, compute = dtypes(x, w)

    indices = class_indices(fn, labels, num_classes, ignore_index=ignore_index, where=where)
    # Class weights and ε are constants of this loss: gradients flow to x, w and bias only.
    class_weight = None if weight is None else lax.stop_gradient(weight.astype(compute))
    label_weight = indices.label_weights(class_weight, compute)

    rows = x.reshape(-1, x.shape[-1])
    n = rows.shape[0]
    chunk = max(1, min(chunk_size, n))
    pad = -(-n // chunk) * chunk - n

    def pad_rows(a, value):
        return jnp.pad(a, [(0, pad)] + [(0, 0)] * (a.ndim - 1), constant_values=value) if pad else a

    settings = FusedSettings(
        smooth=not _checks.known_zero(label_smoothing),
        z_loss=float(z_loss),
        softcap=None if softcap is None else float(softcap),
        chunk_size=chunk,
        summed=reduction != "none",
        grad_dtypes=(x.dtype, w.dtype, None if bias is None else bias.dtype),
    )
    targets = RowTargets(
        pad_rows(indices.safe.reshape(-1), 0),
        pad_rows(indices.valid.reshape(-1), False),
        pad_rows(label_weight.reshape(-1), 0),
        class_weight,
        lax.stop_gradient(jnp.asarray(label_smoothing, compute)),
    )
    out = _fused_rows(pad_rows(rows, 0), w, bias, targets, settings=settings)
    if reduction == "none":
        loss = out[:n].reshape(labels.shape)
        return finish(jnp.where(indices.valid, loss, jnp.zeros((), loss.dtype)), result_dtype)
    if reduction == "sum":
        return finish(out, result_dtype)
    denominator = mean_denominator(
        labels.shape,
        compute,
        where=indices.valid,
        normalizer=None if weight is None else label_weight,
    )
    return finish(out / denominator, result_dtype)
