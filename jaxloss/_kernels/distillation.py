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

The chunked walk is a scan whose body is checkpointed: reverse mode recomputes each chunk's
two logit blocks and differentiates through them, so the backward pass holds a few (chunk, V)
blocks at a time and forward mode and Hessians come from JAX's own rules.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from .._core.class_inputs import pick_along_axis
from .chunked_head import chunk_logits, scan_row_chunks
from .matmul import MatmulForm
from .softmax_ce import Head


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


class DistillTargets(NamedTuple):
    """Each row's label (0 where it does not count), whether it counts, the vocabulary mask
    (V,) or None, and 1/T (a scalar, nan for a bad temperature under jit)."""

    labels: jax.Array
    valid: jax.Array
    class_mask: jax.Array | None
    inverse_temperature: jax.Array


def _log_softmax(z, class_mask):
    """log p over the included entries (-inf on the others), and their safe form (0 there),
    whose derivative through the excluded entries is exactly 0."""
    if class_mask is None:
        log_p = jax.nn.log_softmax(z, axis=-1)
        return log_p, log_p
    log_p = jax.nn.log_softmax(jnp.where(class_mask, z, -jnp.inf), axis=-1)
    return log_p, jnp.where(class_mask, log_p, 0.0)


def _kl(log_p, safe_log_p, safe_log_q):
    """KL(p ‖ q) per row, Σ p (log p - log q), over the included entries."""
    return jnp.sum(jnp.exp(log_p) * (safe_log_p - safe_log_q), axis=-1)


def _divergence(z_s, z_t, class_mask, settings: DistillSettings):
    """The soft term per row of scaled logits z_s, z_t (N, V), float32 or wider."""
    if settings.divergence == "cosine":
        if class_mask is not None:
            z_s, z_t = jnp.where(class_mask, z_s, 0.0), jnp.where(class_mask, z_t, 0.0)
        norm = jnp.sqrt(jnp.sum(z_s * z_s, axis=-1) * jnp.sum(z_t * z_t, axis=-1))
        cosine = jnp.sum(z_s * z_t, axis=-1) / jnp.maximum(norm, 1e-8)
        return settings.beta * (1 - cosine)
    log_s, safe_s = _log_softmax(z_s, class_mask)
    log_t, safe_t = _log_softmax(z_t, class_mask)
    beta = settings.beta if settings.divergence == "jsd" else None
    if settings.divergence == "forward_kl" or beta == 0.0:
        return _kl(log_t, safe_t, safe_s)
    if settings.divergence == "reverse_kl" or beta == 1.0:
        return _kl(log_s, safe_s, safe_t)
    assert beta is not None
    # from the safe logs: an excluded entry (-inf in both) would give logaddexp a nan slope
    log_m = jnp.logaddexp(safe_s + math.log1p(-beta), safe_t + math.log(beta))
    safe_m = log_m if class_mask is None else jnp.where(class_mask, log_m, 0.0)
    return beta * _kl(log_t, safe_t, safe_m) + (1 - beta) * _kl(log_s, safe_s, safe_m)


def row_losses(raw_s, raw_t, targets: DistillTargets, settings: DistillSettings):
    """weight_soft · divergence + weight_hard · CE per row (N,) of raw logits (N, V); exactly 0
    on rows that do not count."""
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
        _, safe = _log_softmax(raw_s, targets.class_mask)
        loss = loss - settings.weight_hard * pick_along_axis(safe, targets.labels, -1)
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
