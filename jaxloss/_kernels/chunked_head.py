"""The chunked linear-head kernel: per-row losses of ``x @ w.T + b`` walked ``chunk_size`` rows at
a time, so at most a (chunk, V) block of logits exists, with exact derivatives.

Two layers:

- **The chunk walk** (`scan_row_chunks`, `chunk_logits`, `chunk_input_grads`): a scan over row
  chunks that forms each chunk's (capped) logits once, and the three matmuls that turn a
  chunk's logit gradient into dx, dW and db. Any per-row statistic of the head's softmax (the
  cross-entropy here; selected-token log-probabilities and entropies next) is a body for it.
- **The cross-entropy on it** (`head_loss`): for 'mean' and 'sum' the loss is a sum whose
  cotangent is one scalar, so the forward pass of the JVP already forms dx, dW and db for a
  unit cotangent and reverse mode only scales them; for 'none' the tangent is a checkpointed
  chunk walk that reverse mode turns into the same matmuls per chunk. The per-row math
  (weights, ignore_index, smoothing, masks, z-loss, soft-cap) is the softmax-CE kernel's
  (`jaxloss._kernels.softmax_ce`).

Inside ``shard_map`` the head may be one device's block of a vocabulary split over a mesh axis
(`ClassAxis`); the walk is the same, with O(chunk) statistics combined across the axis.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from .._core import checks
from .._core.class_inputs import ClassIndices, class_indices
from .._core.ops import is_symbolic_zero
from .._core.precision import dtypes
from .._core.reduction import finish, mean_denominator, reduce_summed
from .matmul import MatmulForm, form_for, matmul
from .softmax_ce import (
    ClassAxis,
    Head,
    RowTargets,
    capped,
    global_counts,
    head_forward,
    head_logit_grad,
)
from .vocab_blocks import block_label_weights, block_lookup

DEFAULT_CHUNK_SIZE = 512  # (512, 32768) f32 logits = 64 MiB; measured as fast as 1024

HeadReduction = Literal["none", "mean", "sum", "sum_and_count"]
# What a head loss returns: the loss ('none', 'mean', 'sum') or the pair (Σ w·loss, Σ w).
LossOrSumAndCount = jax.Array | tuple[jax.Array, jax.Array]


# ----------------------------------------------------------------------------- the chunk walk


def chunk_logits(x, w, b, head: Head, form: MatmulForm = "native"):
    """The capped logits of one chunk, (c, V) = cap(x @ w.T + b)."""
    z = matmul(x, w, ((1,), (1,)), form)
    if b is not None:
        z = z + b.astype(z.dtype)
    return capped(z, head)


def chunk_input_grads(dz, x, w, form: MatmulForm):
    """(dx, dW, db) of a chunk from its logit gradient dz (c, V): dx partial over a split
    vocabulary, dW and db this chunk's contribution."""
    # native 16-bit matmuls take 16-bit operands (accumulating in f32); the float32 form
    # keeps dz as it is
    dz_in = dz if form == "float32" else dz.astype(x.dtype)
    dx = matmul(dz_in, w, ((1,), (0,)), form)  # (c, D)
    dw = matmul(dz_in, x, ((0,), (0,)), form)  # (V, D)
    return dx, dw, jnp.sum(dz, axis=0)


def varying_like(values, inputs):
    """`values` typed as varying over every manual mesh axis any of `inputs` varies over
    (inside shard_map, a scan's accumulator must start with the type its sums will have);
    unchanged elsewhere."""
    axes = set()
    for leaf in jax.tree.leaves(inputs):
        manual = getattr(jax.typeof(leaf), "manual_axis_type", None)
        axes |= set(getattr(manual, "varying", ()) or ())
    if not axes:
        return values
    return jax.tree.map(lambda v: lax.pcast(v, tuple(sorted(axes)), to="varying"), values)


def scan_row_chunks(
    body: Callable[[Any, tuple], tuple[Any, Any]],
    carry: Any,
    rows: tuple,
    chunk_size: int,
    *,
    varying_with: Any = (),
) -> tuple[Any, Any]:
    """``lax.scan(body, carry, rows)`` over chunks of ``chunk_size`` rows: each of `rows` (a
    multiple of the chunk size long) is split into (N / chunk, chunk, ...) and the body gets
    one chunk of each. The carry (accumulated dW, db, ...) is typed as varying like
    `varying_with` inside shard_map."""
    # the leading size spelt out: a row of width 0 (an absent tangent) cannot infer a -1
    chunked = tuple(a.reshape((a.shape[0] // chunk_size, chunk_size) + a.shape[1:]) for a in rows)
    return lax.scan(body, varying_like(carry, varying_with), chunked)


# ----------------------------------------------------------------------- cross-entropy on it


@dataclasses.dataclass(frozen=True)
class ChunkSettings:
    """Static configuration of one chunked call (hashable: it keys the compiled kernel)."""

    head: Head  # smoothing on, z-loss, soft-cap, split vocabulary (the rows kernel's options)
    chunk_size: int  # rows per chunk; N is padded to a multiple of it
    summed: bool  # the loss is Σ rows ('mean'/'sum'), not per row ('none')
    matmul: MatmulForm = "native"  # 16-bit operands: native or float32 (jaxloss._kernels.matmul)


class _Walked(NamedTuple):
    """What one walk over the chunks returns (dx, dw, db only with a cotangent)."""

    losses: Any  # (N,) per-row losses
    lse: Any  # (N / chunk, chunk) logsumexps
    dx: Any  # (N, D)
    dw: Any  # (V, D)
    db: Any  # (V,)


def _target_rows(targets: RowTargets) -> tuple:
    return (targets.labels, targets.valid, targets.label_weight)


def _chunk_targets(targets: RowTargets, labels, valid, label_weight) -> RowTargets:
    return targets._replace(labels=labels, valid=valid, label_weight=label_weight)


def _walk_losses(x, w, b, targets: RowTargets, settings: ChunkSettings, *, cotangent=None):
    """One walk over the row chunks: the forward pass of every call of the loss.

    Without `cotangent`: per-row losses and logsumexps. With a per-row `cotangent`: also dx
    (N, D) and the accumulated dW, db of Σ g·loss; each chunk's logits are formed once and
    used for both.
    """
    compute = jnp.promote_types(x.dtype, jnp.float32)
    counts = global_counts(targets, w.shape[0], settings.head)
    grads = cotangent is not None

    def body(carry, chunk):
        xc, *target_rows = chunk[:4]
        chunk_targets = _chunk_targets(targets, *target_rows)
        z = chunk_logits(xc, w, b, settings.head, settings.matmul)
        loss, stats = head_forward(z, chunk_targets, settings.head)
        if not grads:
            return carry, (loss, stats.lse)
        g = chunk[4]
        dz = head_logit_grad(z, chunk_targets, stats.lse, g, settings.head, counts).whole()
        dx, dw, db = chunk_input_grads(dz, xc, w, settings.matmul)
        return (carry[0] + dw, carry[1] + db), (loss, stats.lse, dx)

    rows = (x, *_target_rows(targets)) + ((cotangent,) if grads else ())
    zeros = None
    if grads:
        zeros = (jnp.zeros(w.shape, compute), jnp.zeros((w.shape[0],), compute))
    totals, outputs = scan_row_chunks(
        body, zeros, rows, settings.chunk_size, varying_with=(x, w, b, targets, cotangent)
    )
    outputs = tuple(outputs)  # (losses, lse[, dx])
    dx = outputs[-1].reshape(x.shape) if grads else None
    dw, db = (totals[0], totals[1]) if grads else (None, None)
    return _Walked(outputs[0].reshape(-1), outputs[1], dx, dw, db)


def _row_tangents(x, w, b, targets: RowTargets, settings: ChunkSettings, lse, t_x, t_w, t_b):
    """Per-row tangents (N,) of the 'none' loss: Σ_c dloss_i/dz_ic · ż_ic with
    ż = ẋ Wᵀ + x Ẇᵀ + ḃ, chunk by chunk. The scan body is checkpointed, so reverse mode (which
    transposes it) recomputes each chunk's logits instead of saving an (N, V) array, and forms
    dx, dW, db with the same three matmuls per chunk a hand-written backward would."""
    size = settings.chunk_size
    compute = jnp.promote_types(x.dtype, jnp.float32)
    counts = global_counts(targets, w.shape[0], settings.head)
    no_t_x = jnp.zeros((x.shape[0], 0), x.dtype)

    @jax.checkpoint
    def body(_, chunk):
        xc, yc, vc, lwc, lse_c, t_xc = chunk
        chunk_targets = _chunk_targets(targets, yc, vc, lwc)
        z = chunk_logits(xc, w, b, settings.head, settings.matmul)
        ones = jnp.ones_like(lse_c)
        dz = head_logit_grad(z, chunk_targets, lse_c, ones, settings.head, counts)
        z_dot = jnp.zeros(z.shape, compute)
        if not is_symbolic_zero(t_x):
            z_dot = z_dot + matmul(t_xc, w, ((1,), (1,)), settings.matmul)
        if not is_symbolic_zero(t_w):
            z_dot = z_dot + matmul(xc, t_w, ((1,), (1,)), settings.matmul)
        if b is not None and not is_symbolic_zero(t_b):
            z_dot = z_dot + t_b.astype(compute)
        return None, dz.dot(z_dot)

    rows = (x, *_target_rows(targets), lse.reshape(-1), no_t_x if is_symbolic_zero(t_x) else t_x)
    _, tangents = scan_row_chunks(body, None, rows, size)
    tangents = tangents.reshape(-1)
    classes = settings.head.classes
    # Over a split vocabulary each device's sum covers its block (reverse mode: no psum).
    return tangents if classes is None else classes.sum(tangents)


def _inner(a, t):
    """Σ a·t in the precision of `a` (float32 or wider)."""
    return jnp.sum(a * t.astype(a.dtype))


@functools.partial(jax.custom_jvp, nondiff_argnums=(4,))
def _losses_with_derivatives(x, w, b, targets: RowTargets, settings: ChunkSettings):
    losses = _walk_losses(x, w, b, targets, settings).losses
    return jnp.sum(losses) if settings.summed else losses


def _losses_jvp(settings, primals, tangents):
    """Forward mode for the chunked loss; reverse mode transposes it.

    Summed ('mean'/'sum'): the gradients of the sum for a unit cotangent are formed in the
    forward pass (three matmuls per chunk) and the tangent is their inner product with the
    inputs' tangents, so reverse mode only scales them. Per row ('none'): the chunked tangent
    of `_row_tangents`.
    """
    x, w, b, targets = primals
    t_x, t_w, t_b = tangents[:3]
    if not settings.summed:
        walked = _walk_losses(x, w, b, targets, settings)
        if is_symbolic_zero(t_x) and is_symbolic_zero(t_w) and (b is None or is_symbolic_zero(t_b)):
            return walked.losses, jnp.zeros_like(walked.losses)
        return walked.losses, _row_tangents(x, w, b, targets, settings, walked.lse, t_x, t_w, t_b)
    unit = jnp.ones(targets.labels.shape, jnp.promote_types(x.dtype, jnp.float32))
    walked = _walk_losses(x, w, b, targets, settings, cotangent=unit)
    total = jnp.sum(walked.losses)
    tangent = jnp.zeros_like(total)
    if not is_symbolic_zero(t_x):
        tangent = tangent + _inner(walked.dx, t_x)
    if not is_symbolic_zero(t_w):
        tangent = tangent + _inner(walked.dw, t_w)
    if b is not None and not is_symbolic_zero(t_b):
        tangent = tangent + _inner(walked.db, t_b)
    classes = settings.head.classes
    # Over a split vocabulary dx is partial and dW, db are blocks: the tangent sums every
    # device's part, a psum that reverse mode transposes into the one psum of dx.
    return total, tangent if classes is None else classes.sum(tangent)


_losses_with_derivatives.defjvp(_losses_jvp, symbolic_zeros=True)


@functools.partial(jax.jit, static_argnames=("settings",))
def _chunked_losses(x, w, b, targets: RowTargets, *, settings: ChunkSettings):
    """Row losses (N,) or, with `settings.summed`, their sum; N a multiple of the chunk size.

    Jitted so that eager calls compile once per shape; inside a user's jit it simply inlines.
    """
    return _losses_with_derivatives(x, w, b, targets, settings)


# ------------------------------------------------------------------ the loss of checked inputs


class HeadArrays(NamedTuple):
    """The optional arrays of a head loss: per-class ``(V,)`` (or, over a split vocabulary,
    this device's block) and per-token ``where`` (``labels.shape``)."""

    bias: jax.Array | None = None
    weight: jax.Array | None = None
    class_mask: jax.Array | None = None
    where: jax.Array | None = None


@dataclasses.dataclass(frozen=True)
class HeadOptions:
    """The scalar options of a head loss, checked (`label_smoothing` may be traced)."""

    ignore_index: int | None = -100
    label_smoothing: Any = 0.0
    z_loss: float = 0.0
    softcap: float | None = None
    reduction: HeadReduction = "mean"
    chunk_size: int = DEFAULT_CHUNK_SIZE


def head_label_indices(
    fn, labels, local_width, ignore_index, where, class_mask, classes, num_classes
) -> ClassIndices:
    """The labels of a linear head checked against its vocabulary: the whole head's
    (`local_width` entries, `class_mask` (V,)), or with `classes` a vocabulary of `num_classes`
    split over a mesh axis, `class_mask` this device's block (one O(N) psum looks a label's
    entry up where it lives; a counted label on an excluded entry is as bad as one out of
    range)."""
    if classes is None:
        return class_indices(
            fn, labels, local_width, ignore_index=ignore_index, where=where, class_mask=class_mask
        )
    assert num_classes is not None
    indices = class_indices(fn, labels, num_classes, ignore_index=ignore_index, where=where)
    if class_mask is None:
        return indices
    included = block_lookup(indices.safe, class_mask.astype(jnp.float32), classes) > 0
    bad = indices.valid & ~indices.out_of_range & ~included
    return dataclasses.replace(
        indices, safe=jnp.where(bad, 0, indices.safe), out_of_range=indices.out_of_range | bad
    )


def row_chunks(n: int, chunk_size: int) -> tuple[int, Callable]:
    """The chunk of a walk over `n` rows (at most `chunk_size`, at least 1) and the function
    that pads an array's rows to a multiple of it with a given value."""
    chunk = max(1, min(chunk_size, n))
    pad = -(-n // chunk) * chunk - n

    def pad_rows(a, value):
        return jnp.pad(a, [(0, pad)] + [(0, 0)] * (a.ndim - 1), constant_values=value) if pad else a

    return chunk, pad_rows


def head_loss(
    fn: str,
    x: jax.Array,
    w: jax.Array,
    labels: jax.Array,
    arrays: HeadArrays,
    options: HeadOptions,
    *,
    classes: ClassAxis | None = None,
    num_classes: int | None = None,
    batch_axis_name: Any = None,
) -> LossOrSumAndCount:
    """The cross-entropy of a linear head from checked arguments, on one device. With
    `classes`, `w` and the per-class arrays are this device's blocks of a vocabulary split over
    a mesh axis (inside shard_map; `num_classes` its true size), and with `batch_axis_name`
    the reductions run over every token shard."""
    result_dtype, compute = dtypes(x, w)
    local_width = w.shape[0]
    weight, class_mask = arrays.weight, arrays.class_mask
    # Class weights and ε are constants of this loss: gradients flow to x, w and bias.
    class_weight = None if weight is None else lax.stop_gradient(weight.astype(compute))
    indices = head_label_indices(
        fn,
        labels,
        local_width,
        options.ignore_index,
        arrays.where,
        class_mask,
        classes,
        num_classes,
    )
    if classes is None:
        label_weight = indices.label_weights(class_weight, compute)
    else:
        label_weight = block_label_weights(indices, class_weight, classes, compute)

    rows = x.reshape(-1, x.shape[-1])
    chunk, pad_rows = row_chunks(rows.shape[0], options.chunk_size)

    settings = ChunkSettings(
        head=Head(
            smooth=not checks.known_zero(options.label_smoothing),
            z_loss=float(options.z_loss),
            softcap=None if options.softcap is None else float(options.softcap),
            classes=classes,
        ),
        chunk_size=chunk,
        summed=options.reduction != "none",
        matmul=form_for(jnp.result_type(x, w), chunk, x.shape[-1], local_width),
    )
    targets = RowTargets(
        pad_rows(indices.safe.reshape(-1), 0),
        pad_rows(indices.valid.reshape(-1), False),
        pad_rows(label_weight.reshape(-1), 0),
        class_weight,
        lax.stop_gradient(jnp.asarray(options.label_smoothing, compute)),
        class_mask,
    )
    out = _chunked_losses(pad_rows(rows, 0), w, arrays.bias, targets, settings=settings)
    if options.reduction == "none":
        loss = out[: rows.shape[0]].reshape(labels.shape)
        return finish(jnp.where(indices.valid, loss, jnp.zeros((), loss.dtype)), result_dtype)
    count = mean_denominator(
        labels.shape,
        compute,
        where=indices.valid,
        normalizer=None if weight is None else label_weight,
    )
    return reduce_summed(
        out, count, options.reduction, result_dtype, batch_axis_name=batch_axis_name
    )
