"""Distillation of a student's next-token distribution towards a teacher's, per token, from
logits or from two linear heads walked in row chunks (neither head's (N, V) logits exist).

The per-row math is written once (`row_losses`): with p_S = softmax(z_S/T), p_T =
softmax(z_T/T) over the included vocabulary entries,

- forward KL: KL(p_T ‖ p_S), the mass-covering end;
- reverse KL: KL(p_S ‖ p_T), the mode-seeking end;
- generalized Jensen–Shannon with β in (0, 1) (GKD's, as TRL and Liger-Kernel compute it):
  β·KL(p_T ‖ m) + (1 - β)·KL(p_S ‖ m) with m = (1 - β)·p_S + β·p_T; β = 0 is the forward KL
  and β = 1 the reverse KL (their limits inside are 0, so the ends are those KLs, as there);
- cosine (Liger's): β·(1 - cos(z_S, z_T)) of the logit vectors;

plus an optional hard-label term, the cross-entropy of the student's unscaled logits. No T²
factor is applied (TRL's and Liger's convention; multiply the loss by T² for Hinton's).

The chunked walk has two forms. For 'mean' and 'sum' the loss is a sum whose cotangent is one
scalar: the forward walk forms each chunk's two logit blocks once, differentiates them and
turns the logit gradients into dx, dW and db (a custom JVP whose tangent is their inner product
with the inputs' tangents; reverse mode only scales them: 4 matmuls per chunk, as naive JAX
does on the whole logits, 6 with the teacher's gradients). For 'none' the walk is a scan whose
body is checkpointed: reverse mode recomputes each chunk's two logit blocks and differentiates
through them. Either way at most a few (chunk, V) blocks exist at a time, and forward mode and
Hessians work.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from .._core import checks
from .._core.ops import is_symbolic_zero
from .chunked_head import (
    chunk_input_grads,
    chunk_logits,
    head_label_indices,
    row_chunks,
    scan_row_chunks,
    varying_like,
)
from .matmul import MatmulForm, form_for
from .softmax_ce import ClassAxis, Head
from .token_stats import inverse_temperature
from .vocab_blocks import label_in_block, pick_in_block

Divergence = Literal["forward_kl", "reverse_kl", "jsd", "cosine"]


@dataclasses.dataclass(frozen=True)
class DistillSettings:
    """Static configuration of one call (hashable: it keys the compiled kernel)."""

    divergence: str  # "forward_kl", "reverse_kl", "jsd" or "cosine"
    beta: float = 0.5  # the JSD's interpolation, or the cosine term's scale
    weight_soft: float = 1.0
    weight_hard: float = 0.0
    stop_teacher: bool = True
    chunk_size: int = 0  # rows per chunk of the heads (0: the logits version)
    student_matmul: MatmulForm = "native"
    teacher_matmul: MatmulForm = "native"
    classes: ClassAxis | None = None  # a vocabulary split over a mesh axis (in shard_map)


class DistillTargets(NamedTuple):
    """Each row's label (0 where it does not count), whether it counts, the vocabulary mask
    (V,) or None, and 1/T (a scalar, nan for a bad temperature under jit)."""

    labels: jax.Array
    valid: jax.Array
    class_mask: jax.Array | None
    inverse_temperature: jax.Array


def _log_softmax(z, class_mask, classes: ClassAxis | None):
    """log p over the included entries (-inf on the others), and their safe form (0 there),
    whose derivative through the excluded entries is exactly 0. On a split vocabulary `z` is
    this device's block: the row max is one pmax, the normaliser one psum."""
    masked = z if class_mask is None else jnp.where(class_mask, z, -jnp.inf)
    row_max = lax.stop_gradient(jnp.max(masked, axis=-1, keepdims=True))
    if classes is not None:
        row_max = classes.max(row_max)
    shifted = masked - row_max
    total = jnp.sum(jnp.exp(shifted), axis=-1, keepdims=True)
    if classes is not None:
        total = classes.sum(total)
    log_p = shifted - jnp.log(total)
    return log_p, log_p if class_mask is None else jnp.where(class_mask, log_p, 0.0)


def _row_sum(values, classes: ClassAxis | None):
    """Σ over the vocabulary per row (a psum of the blocks' sums on a split vocabulary)."""
    total = jnp.sum(values, axis=-1)
    return total if classes is None else classes.sum(total)


def _kl(log_p, safe_log_p, safe_log_q, classes):
    """KL(p ‖ q) per row, Σ p (log p - log q), over the included entries."""
    return _row_sum(jnp.exp(log_p) * (safe_log_p - safe_log_q), classes)


def _divergence(z_s, z_t, class_mask, settings: DistillSettings):
    """The soft term per row of scaled logits z_s, z_t (N, V), float32 or wider."""
    classes = settings.classes
    if settings.divergence == "cosine":
        if class_mask is not None:
            z_s, z_t = jnp.where(class_mask, z_s, 0.0), jnp.where(class_mask, z_t, 0.0)
        sums = _row_sum(jnp.stack([z_s * z_s, z_t * z_t, z_s * z_t], axis=0), classes)
        cosine = sums[2] / jnp.maximum(jnp.sqrt(sums[0] * sums[1]), 1e-8)
        return settings.beta * (1 - cosine)
    log_s, safe_s = _log_softmax(z_s, class_mask, classes)
    log_t, safe_t = _log_softmax(z_t, class_mask, classes)
    beta = settings.beta if settings.divergence == "jsd" else None
    if settings.divergence == "forward_kl" or beta == 0.0:
        return _kl(log_t, safe_t, safe_s, classes)
    if settings.divergence == "reverse_kl" or beta == 1.0:
        return _kl(log_s, safe_s, safe_t, classes)
    assert beta is not None
    # from the safe logs: an excluded entry (-inf in both) would give logaddexp a nan slope
    log_m = jnp.logaddexp(safe_s + math.log1p(-beta), safe_t + math.log(beta))
    safe_m = log_m if class_mask is None else jnp.where(class_mask, log_m, 0.0)
    return beta * _kl(log_t, safe_t, safe_m, classes) + (1 - beta) * _kl(
        log_s, safe_s, safe_m, classes
    )


def row_losses(raw_s, raw_t, targets: DistillTargets, settings: DistillSettings):
    """weight_soft · divergence + weight_hard · CE per row (N,) of raw logits (N, V) (on a
    split vocabulary, this device's blocks; the losses are the global ones); exactly 0 on rows
    that do not count."""
    compute = jnp.promote_types(jnp.promote_types(raw_s.dtype, raw_t.dtype), jnp.float32)
    raw_s, raw_t = raw_s.astype(compute), raw_t.astype(compute)
    if settings.stop_teacher:
        raw_t = lax.stop_gradient(raw_t)
    inverse_t = targets.inverse_temperature.astype(compute)
    loss = jnp.zeros(raw_s.shape[:1], compute)
    if settings.weight_soft:
        soft = _divergence(raw_s * inverse_t, raw_t * inverse_t, targets.class_mask, settings)
        loss = loss + settings.weight_soft * soft
    if settings.weight_hard:  # the student's unscaled logits, as Liger's hard term
        _, safe = _log_softmax(raw_s, targets.class_mask, settings.classes)
        label, here = label_in_block(targets.labels, raw_s.shape[-1], settings.classes)
        picked = pick_in_block(safe, label, here)
        if settings.classes is not None:
            picked = settings.classes.sum(picked)
        loss = loss - settings.weight_hard * picked
    return jnp.where(targets.valid, loss, jnp.zeros((), compute))


@functools.partial(jax.jit, static_argnames=("settings",))
def logit_distillation_rows(logits_s, logits_t, targets: DistillTargets, *, settings):
    """Per-row losses (N,) of student and teacher logits (N, V)."""
    return row_losses(logits_s, logits_t, targets, settings)


@functools.partial(jax.jit, static_argnames=("settings",))
def head_distillation_rows(x_s, w_s, b_s, x_t, w_t, b_t, targets: DistillTargets, *, settings):
    """Per-row losses (N,) of the heads x_s @ w_sᵀ + b_s and x_t @ w_tᵀ + b_t, walked
    `settings.chunk_size` rows at a time (N a multiple of it)."""
    raw = Head(smooth=False)

    @jax.checkpoint
    def body(_, chunk):
        xs, xt, labels, valid = chunk
        z_s = chunk_logits(xs, w_s, b_s, raw, settings.student_matmul)
        z_t = chunk_logits(xt, w_t, b_t, raw, settings.teacher_matmul)
        chunk_targets = targets._replace(labels=labels, valid=valid)
        return None, row_losses(z_s, z_t, chunk_targets, settings)

    rows = (x_s, x_t, targets.labels, targets.valid)
    _, losses = scan_row_chunks(body, None, rows, settings.chunk_size)
    return losses.reshape(-1)


def _walk_with_gradients(heads, targets: DistillTargets, settings: DistillSettings):
    """Σ of the per-row losses and its gradients for a unit cotangent, in one walk: each
    chunk's two logit blocks are formed once, differentiated, and turned into dx, dW and db
    by the chunk's matmuls (`chunk_input_grads`), so no block is recomputed (the 'mean'/'sum'
    path: its cotangent is one scalar). `heads` is (x_s, w_s, b_s, x_t, w_t, b_t); the
    teacher's gradients only without `stop_teacher`. Returns the total, the per-row x
    gradients and the accumulated (dW, db) of each head that takes gradients: over a split
    vocabulary this device's blocks, dx partial."""
    x_s, w_s, b_s, x_t, w_t, b_t = heads
    raw = Head(smooth=False)
    learn_teacher = not settings.stop_teacher
    compute = jnp.promote_types(jnp.result_type(x_s, w_s), jnp.float32)
    learned: list[tuple[Any, Any, Any, MatmulForm]] = [(x_s, w_s, b_s, settings.student_matmul)]
    if learn_teacher:
        learned.append((x_t, w_t, b_t, settings.teacher_matmul))

    def body(carry, chunk):
        xs, xt, labels, valid = chunk
        chunk_targets = targets._replace(labels=labels, valid=valid)
        z_s = chunk_logits(xs, w_s, b_s, raw, settings.student_matmul)
        z_t = chunk_logits(xt, w_t, b_t, raw, settings.teacher_matmul)
        total, pullback = jax.vjp(
            lambda z_s, z_t: jnp.sum(row_losses(z_s, z_t, chunk_targets, settings)), z_s, z_t
        )
        dz = pullback(jnp.ones_like(total))
        carry_total, sums = carry
        new_sums, row_grads = [], []
        for (_, w, b, form), x_chunk, dz_head, (dw_sum, db_sum) in zip(learned, (xs, xt), dz, sums):
            dx, dw, db = chunk_input_grads(dz_head, x_chunk, w, form)
            db_sum = None if b is None else db_sum + db.astype(compute)
            new_sums.append((dw_sum + dw.astype(compute), db_sum))
            row_grads.append(dx)
        return (carry_total + total, tuple(new_sums)), tuple(row_grads)

    # typed as the rows are: varying over the token axes (not the vocabulary's, whose sums
    # the rows already hold)
    total = varying_like(jnp.zeros((), compute), (x_s, x_t, targets.labels, targets.valid))
    sums = tuple(
        varying_like(
            (jnp.zeros(w.shape, compute), None if b is None else jnp.zeros(b.shape, compute)),
            (x, w, b, targets),
        )
        for x, w, b, _ in learned
    )
    rows = (x_s, x_t, targets.labels, targets.valid)
    (total, sums), row_grads = scan_row_chunks(body, (total, sums), rows, settings.chunk_size)
    row_grads = tuple(g.reshape((-1,) + g.shape[2:]) for g in row_grads)
    return total, row_grads, sums


def _inner(a, t):
    """Σ a·t in the precision of `a` (float32 or wider)."""
    return jnp.sum(a * t.astype(a.dtype))


@functools.partial(jax.custom_jvp, nondiff_argnums=(7,))
def _summed_losses(x_s, w_s, b_s, x_t, w_t, b_t, targets, settings: DistillSettings):
    rows = head_distillation_rows(x_s, w_s, b_s, x_t, w_t, b_t, targets, settings=settings)
    return jnp.sum(rows)


def _summed_losses_jvp(settings: DistillSettings, primals, tangents):
    """The summed loss's gradients are formed in the forward walk (`_walk_with_gradients`)
    and its tangent is their inner product with the inputs' tangents, so reverse mode only
    scales them (Liger's scheme, with forward mode kept)."""
    heads, targets = primals[:6], primals[6]
    total, row_grads, sums = _walk_with_gradients(heads, targets, settings)
    tangent_heads = [tangents[:3]]
    if not settings.stop_teacher:
        tangent_heads.append(tangents[3:6])
    tangent = jnp.zeros_like(total)
    for dx, (dw, db), (t_x, t_w, t_b) in zip(row_grads, sums, tangent_heads):
        for grad, t in ((dx, t_x), (dw, t_w), (db, t_b)):
            if grad is not None and not is_symbolic_zero(t):
                tangent = tangent + _inner(grad, t)
    classes = settings.classes
    # Over a split vocabulary dx is partial and dW, db are blocks: the tangent sums every
    # device's part, a psum that reverse mode transposes into the one psum of dx.
    return total, tangent if classes is None else classes.sum(tangent)


_summed_losses.defjvp(_summed_losses_jvp, symbolic_zeros=True)


@functools.partial(jax.jit, static_argnames=("settings",))
def head_distillation_sum(x_s, w_s, b_s, x_t, w_t, b_t, targets: DistillTargets, *, settings):
    """Σ of the per-row losses of the two heads (`head_distillation_rows`), whose gradients
    come from one walk that differentiates each chunk as it forms it."""
    return _summed_losses(x_s, w_s, b_s, x_t, w_t, b_t, targets, settings)


# ------------------------------------------------------------ the losses of checked inputs


class DistillArrays(NamedTuple):
    """The teacher and the optional arrays of a fused call: ``w_teacher``, the biases and
    ``class_mask`` follow the vocabulary (`PER_CLASS`; over a split vocabulary, this device's
    blocks), ``x_teacher`` and ``where`` the tokens."""

    x_teacher: jax.Array
    w_teacher: jax.Array
    bias: jax.Array | None = None
    bias_teacher: jax.Array | None = None
    class_mask: jax.Array | None = None
    where: jax.Array | None = None


PER_CLASS = ("w_teacher", "bias", "bias_teacher", "class_mask")


class DistillOptions(NamedTuple):
    """The options of one call, checked: the divergence's static settings (the chunking and the
    vocabulary split are filled in per device) and the per-token ones."""

    settings: DistillSettings
    temperature: Any
    ignore_index: int | None
    reduction: str
    chunk_size: int = 0


def distill_options(
    fn,
    divergence,
    beta,
    temperature,
    weight_soft,
    weight_hard,
    stop_teacher_gradient,
    ignore_index,
    reduction,
    labels,
    chunk_size=0,
) -> DistillOptions:
    """The options of a distillation call, checked (errors name `fn`'s arguments)."""
    if divergence not in ("forward_kl", "reverse_kl", "jsd", "cosine"):
        raise ValueError(
            f"{fn}: `divergence` must be 'forward_kl', 'reverse_kl', 'jsd' or 'cosine'; got "
            f"{divergence!r}."
        )
    if divergence == "jsd":
        checks.python_number(fn, "beta", beta, low=0.0, high=1.0)
    elif divergence == "cosine":
        checks.python_number(fn, "beta", beta, low=0.0)
    for name, value in (("weight_soft", weight_soft), ("weight_hard", weight_hard)):
        checks.python_number(fn, name, value, low=0.0)
    checks.reduction(fn, reduction)
    if weight_hard and labels is None:
        raise ValueError(f"{fn}: `weight_hard` > 0 needs the hard `labels`.")
    checks.python_number(fn, "temperature", temperature, low=0.0, low_inclusive=False)
    settings = DistillSettings(
        divergence, float(beta), float(weight_soft), float(weight_hard), stop_teacher_gradient
    )
    return DistillOptions(settings, temperature, ignore_index, reduction, chunk_size)


def token_labels(fn, labels, tokens_shape):
    """Integer labels of the tokens' shape, checked."""
    y = checks.int_array(fn, "labels", labels)
    if y.shape != tuple(tokens_shape):
        raise ValueError(
            f"{fn}: `labels` must have the tokens' shape {list(tokens_shape)}; got {list(y.shape)}."
        )
    return y


def distill_targets(
    fn, tokens_shape, labels, where, options: DistillOptions, class_mask, dtype, **vocabulary
):
    """(DistillTargets of the flat rows, which counted labels are bad) of checked per-token
    arguments; `vocabulary` is `head_label_indices`' (local_width, classes, num_classes)."""
    if labels is None:
        valid = jnp.ones(tokens_shape, bool) if where is None else where
        safe, bad = jnp.zeros(tokens_shape, jnp.int32), jnp.zeros(tokens_shape, bool)
    else:
        indices = head_label_indices(
            fn,
            labels,
            vocabulary["local_width"],
            options.ignore_index,
            where,
            class_mask,
            vocabulary.get("classes"),
            vocabulary.get("num_classes"),
        )
        valid, safe, bad = indices.valid, indices.safe, indices.out_of_range
    targets = DistillTargets(
        safe.reshape(-1),
        valid.reshape(-1),
        class_mask,
        inverse_temperature(fn, options.temperature, jnp.promote_types(dtype, jnp.float32)),
    )
    return targets, bad.reshape(-1)


def reduce_rows(rows, valid, bad, tokens_shape, reduction, batch_axis_name=None):
    """The per-token losses (or, for 'mean' and 'sum', already their sum) reduced; nan where
    a counted label is bad (the error under jit). 'mean' divides by the number of counted
    tokens (at least 1), as TRL and Liger do; with `batch_axis_name` (inside shard_map) the
    sum and the count are global ones."""
    if reduction == "none":
        return jnp.where(bad, jnp.nan, rows).reshape(tokens_shape)
    total = jnp.where(jnp.any(bad), jnp.nan, jnp.sum(rows))
    count = jnp.sum(valid).astype(total.dtype)
    if batch_axis_name is not None:
        total, count = lax.psum((total, count), batch_axis_name)
    return total if reduction == "sum" else total / jnp.maximum(count, 1)


def head_distillation(
    fn: str,
    x: jax.Array,
    w: jax.Array,
    labels: jax.Array | None,
    arrays: DistillArrays,
    options: DistillOptions,
    *,
    classes: ClassAxis | None = None,
    num_classes: int | None = None,
    batch_axis_name: Any = None,
) -> jax.Array:
    """The distillation loss of the student head (x, w) and the teacher head in `arrays`, from
    checked arguments, on one device: with `classes` both heads' weights, biases and
    `class_mask` are this device's blocks of a vocabulary split over a mesh axis
    (`num_classes` its true size), and with `batch_axis_name` 'mean' and 'sum' run over every
    token shard."""
    tokens = x.shape[:-1]
    targets, bad = distill_targets(
        fn,
        tokens,
        labels,
        arrays.where,
        options,
        arrays.class_mask,
        jnp.result_type(x, w),
        local_width=w.shape[0],
        classes=classes,
        num_classes=num_classes,
    )
    n = math.prod(tokens)
    chunk, pad_rows = row_chunks(n, options.chunk_size)
    # rows that do not count are zeroed (their hidden states may hold anything) and padded
    counted = targets.valid[:, None]
    x_t, w_t = arrays.x_teacher, arrays.w_teacher
    rows_s = pad_rows(jnp.where(counted, x.reshape(n, -1), 0), 0)
    rows_t = pad_rows(jnp.where(counted, x_t.reshape(n, -1), 0), 0)
    padded = targets._replace(
        labels=pad_rows(targets.labels, 0), valid=pad_rows(targets.valid, False)
    )
    local_width = w.shape[0]
    settings = dataclasses.replace(
        options.settings,
        chunk_size=chunk,
        student_matmul=form_for(jnp.result_type(x, w), chunk, x.shape[-1], local_width),
        teacher_matmul=form_for(jnp.result_type(x_t, w_t), chunk, x_t.shape[-1], local_width),
        classes=classes,
    )
    heads = (rows_s, w, arrays.bias, rows_t, w_t, arrays.bias_teacher)
    if options.reduction == "none":
        rows = head_distillation_rows(*heads, padded, settings=settings)[:n]
        return reduce_rows(rows, targets.valid, bad, tokens, "none")
    total = head_distillation_sum(*heads, padded, settings=settings)
    return reduce_rows(total, targets.valid, bad, tokens, options.reduction, batch_axis_name)
