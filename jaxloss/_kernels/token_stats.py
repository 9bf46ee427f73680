"""Per-token statistics of a softmax over the vocabulary, for post-training: the log-probability
of each token's label, the entropy of its distribution, its logsumexp and the log of its
collision probability log Σ p² (WPO's weights), from logits or from a linear head walked in row
chunks (never an (N, V) array), with exact derivatives.

For logits z_i = cap(x_i Wᵀ + b) / T of row i (cap: Gemma 2's c·tanh(·/c), T the temperature)
over the included vocabulary entries, with p = softmax(z):

    lse_i = log Σ_c e^{z_ic},   logp_i = z_{i,y_i} - lse_i,   H_i = lse_i - Σ_c p_ic z_ic,
    S_i = log Σ_c p_ic² = log Σ_c e^{2 z_ic} - 2 lse_i

and for a tangent ż of the logits (ż = ẋ Wᵀ + x Ẇᵀ + ḃ through the cap and 1/T):

    d lse = Σ_c p_c ż_c,   d logp = ż_y - Σ_c p_c ż_c,   d H = -Σ_c p_c (z_c - E_p z) ż_c,
    d S = 2 (Σ_c q_c ż_c - Σ_c p_c ż_c)   with q = p² / Σ p².

The JVP computes these per row, in a checkpointed walk over the chunks; reverse mode transposes
it into, per chunk, the logits recomputed once and dz = g_logp ([c = y] - p) + g_lse p - g_H p
(z - E_p z) + 2 g_S (q - p) turned into dx, dW and db by three matmuls (Liger's and TRL's
recompute-in-backward scheme). The statistics are shifted by the row max, so the entropy is
formed from Σ e^{z - m}(z - m) without the cancellation of lse - E z at large logits.

Inside ``shard_map`` the head may be one device's block of a vocabulary split over a mesh axis
(`ClassAxis`): the row max is one pmax and the three sums one psum of O(N) values.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from .._core import checks
from .._core.ops import is_symbolic_zero, row_sum
from .chunked_head import (
    HeadArrays,
    chunk_logits,
    head_label_indices,
    row_chunks,
    scan_row_chunks,
)
from .matmul import MatmulForm, form_for, matmul
from .softmax_ce import ClassAxis, Head, capped
from .vocab_blocks import label_in_block, pick_in_block


class TokenTargets(NamedTuple):
    """Each row's label and the vocabulary's options (a pytree of constants).

    labels: (N,) int32, safe to gather (0 where the row does not count).
    valid: (N,) bool: rows that count; the others give exactly 0 and no gradient.
    class_mask: bool (V,) (this device's block on a split vocabulary), or None.
    inverse_temperature: 1/T, a scalar (nan for a bad temperature under jit).
    """

    labels: jax.Array
    valid: jax.Array
    class_mask: jax.Array | None
    inverse_temperature: jax.Array


@dataclasses.dataclass(frozen=True)
class StatsSettings:
    """Static configuration of one call (hashable: it keys the compiled kernel)."""

    softcap: float | None = None
    entropy: bool = False  # form the entropy (one more sum per row)
    sum_sq: bool = False  # form log Σ p² (one more sum per row)
    classes: ClassAxis | None = None  # a vocabulary split over a mesh axis
    chunk_size: int = 0  # rows per chunk of the linear head (0: the logits version)
    matmul: MatmulForm = "native"


class RowStats(NamedTuple):
    """Per row (N,): the statistics of every row (rows that do not count included; `_outputs`
    zeroes them), and E_p z, which the entropy's derivative needs."""

    log_prob: jax.Array
    entropy: jax.Array
    lse: jax.Array
    log_sum_sq: jax.Array
    mean_logit: jax.Array


def _scaled(raw, targets: TokenTargets, settings: StatsSettings):
    """The logits the softmax sees, cap(raw)/T, in float32 (or wider)."""
    compute = jnp.promote_types(raw.dtype, jnp.float32)
    z = capped(raw.astype(compute), Head(smooth=False, softcap=settings.softcap))
    return z * targets.inverse_temperature.astype(compute)


def _scaled_tangent(raw, z_dot_raw, targets: TokenTargets, settings: StatsSettings):
    """ż through the cap and 1/T (linear in ż_raw)."""
    compute = jnp.promote_types(raw.dtype, jnp.float32)
    factor = targets.inverse_temperature.astype(compute)
    if settings.softcap is not None:
        capped_raw = capped(raw.astype(compute), Head(smooth=False, softcap=settings.softcap))
        factor = factor * (1 - jnp.square(capped_raw / settings.softcap))
    return z_dot_raw.astype(compute) * factor


def _included(z, class_mask, fill):
    return z if class_mask is None else jnp.where(class_mask, z, jnp.asarray(fill, z.dtype))


def row_stats(z, targets: TokenTargets, settings: StatsSettings) -> RowStats:
    """The statistics of the scaled logits `z` (N, V), float32 or wider; on a split
    vocabulary `z` is this device's block and the statistics are the global ones."""
    classes = settings.classes
    masked = _included(z, targets.class_mask, -jnp.inf)
    row_max = jnp.max(masked, axis=-1)
    if classes is not None:
        row_max = classes.max(row_max)
    # A row with every entry excluded has no distribution: nan, as torch's log_softmax gives.
    shift = jnp.where(jnp.isneginf(row_max), jnp.zeros((), z.dtype), row_max)
    centred = masked - shift[:, None]
    weights = jnp.exp(centred)
    label, here = label_in_block(targets.labels, z.shape[-1], classes)
    # Each sum ends its fusion (`row_sum`): with the log and the rest after it in
    # the same YNNPACK fusion, XLA:CPU wrote e^{z-m} out first (token_log_probs' step at
    # 65536x1000 float32: 1.7x the time).
    parts = [row_sum(weights), pick_in_block(z, label, here)]
    if settings.entropy:  # Σ e^{z-m}(z-m); excluded entries add exactly 0
        parts.append(row_sum(weights * _included(centred, targets.class_mask, 0)))
    if settings.sum_sq:  # Σ e^{2(z-m)}; excluded entries add exactly 0
        parts.append(row_sum(jnp.square(weights)))
    sums = jnp.stack(parts, axis=-1)
    if classes is not None:
        sums = classes.sum(sums)
    log_total = jnp.log(sums[:, 0])
    lse = jnp.where(jnp.isneginf(row_max), jnp.nan, shift + log_total)
    log_prob = sums[:, 1] - lse
    zeros = jnp.zeros_like(lse)
    if settings.entropy:
        centred_mean = sums[:, 2] / sums[:, 0]
        entropy, mean_logit = log_total - centred_mean, shift + centred_mean
    else:
        entropy = mean_logit = zeros
    log_sum_sq = zeros
    if settings.sum_sq:  # the shift cancels: log Σ e^{2(z-m)} - 2 log Σ e^{z-m}
        log_sum_sq = jnp.where(jnp.isneginf(row_max), jnp.nan, jnp.log(sums[:, -1]) - 2 * log_total)
    return RowStats(log_prob, entropy, lse, log_sum_sq, mean_logit)


def row_tangents(z, z_dot, targets: TokenTargets, stats: RowStats, settings: StatsSettings):
    """(d logp, d H, d lse, d log Σp²) per row for the tangent `z_dot` of the scaled logits
    `z`: linear in `z_dot`, whose transpose is the backward pass described in the module's
    docs."""
    classes = settings.classes
    valid = targets.valid
    # p and z - E z are exactly 0 on excluded entries and on rows that do not count (whose
    # hidden states may hold anything), so that no nan or inf reaches dW through them.
    counted = valid[:, None] if targets.class_mask is None else valid[:, None] & targets.class_mask
    zero = jnp.zeros((), z.dtype)
    p = jnp.where(counted, jnp.exp(z - stats.lse[:, None]), zero)
    p_dot = p * z_dot
    label, here = label_in_block(targets.labels, z.shape[-1], classes)
    parts = [jnp.sum(p_dot, axis=-1), pick_in_block(z_dot, label, here)]
    if settings.entropy:
        spread = jnp.where(counted, z - stats.mean_logit[:, None], zero)
        parts.append(-jnp.sum(p_dot * spread, axis=-1))
    if settings.sum_sq:  # Σ p² ż, divided by Σ p² = e^S per row below
        parts.append(jnp.sum(p * p_dot, axis=-1))
    sums = jnp.stack(parts, axis=-1)
    if classes is not None:  # reverse mode transposes this psum into nothing
        sums = classes.sum(sums)
    zero = jnp.zeros((), sums.dtype)
    t_lse = jnp.where(valid, sums[:, 0], zero)
    t_log_prob = jnp.where(valid, sums[:, 1] - sums[:, 0], zero)
    t_entropy = jnp.where(valid, sums[:, 2], zero) if settings.entropy else jnp.zeros_like(t_lse)
    t_log_sum_sq = jnp.zeros_like(t_lse)
    if settings.sum_sq:
        mean_under_q = sums[:, -1] * jnp.exp(-stats.log_sum_sq)
        t_log_sum_sq = jnp.where(valid, 2 * (mean_under_q - sums[:, 0]), zero)
    return t_log_prob, t_entropy, t_lse, t_log_sum_sq


def _outputs(stats: RowStats, valid):
    """(log p(label), entropy, lse, log Σp²), exactly 0 on rows that do not count."""
    zero = jnp.zeros((), stats.lse.dtype)
    rows = (stats.log_prob, stats.entropy, stats.lse, stats.log_sum_sq)
    return tuple(jnp.where(valid, s, zero) for s in rows)


# ------------------------------------------------------------------------------ from logits


@functools.partial(jax.custom_jvp, nondiff_argnums=(2,))
def _logit_stats(logits, targets: TokenTargets, settings: StatsSettings):
    stats = row_stats(_scaled(logits, targets, settings), targets, settings)
    return _outputs(stats, targets.valid)


def _logit_stats_jvp(settings, primals, tangents):
    logits, targets = primals
    t_logits = tangents[0]
    stats = row_stats(_scaled(logits, targets, settings), targets, settings)
    outputs = _outputs(stats, targets.valid)
    if is_symbolic_zero(t_logits):
        return outputs, tuple(jnp.zeros_like(o) for o in outputs)

    # Checkpointed: reverse mode recomputes p from the logits and lse in one elementwise pass
    # (the gradient is the only (N, V) array written), not a saved log-softmax.
    @jax.checkpoint
    def tangent(logits, t_logits, stats):
        z = _scaled(logits, targets, settings)
        z_dot = _scaled_tangent(logits, t_logits, targets, settings)
        return row_tangents(z, z_dot, targets, stats, settings)

    return outputs, tangent(logits, t_logits, stats)


_logit_stats.defjvp(_logit_stats_jvp, symbolic_zeros=True)


@functools.partial(jax.jit, static_argnames=("settings",))
def logit_token_stats(logits, targets: TokenTargets, *, settings: StatsSettings):
    """(log p(label), entropy, logsumexp, log Σp²), each (N,), of logits (N, V)."""
    return _logit_stats(logits, targets, settings)


# ----------------------------------------------------------------------- from a linear head


def _target_rows(targets: TokenTargets) -> tuple:
    return (targets.labels, targets.valid)


def _chunk_targets(targets: TokenTargets, labels, valid) -> TokenTargets:
    return targets._replace(labels=labels, valid=valid)


def _walk_stats(x, w, b, targets: TokenTargets, settings: StatsSettings) -> RowStats:
    """The forward walk: every chunk's logits formed once, reduced to its rows' statistics."""
    head = Head(smooth=False)  # the raw logits; the cap and 1/T are applied in `_scaled`

    def body(_, chunk):
        xc, labels, valid = chunk
        raw = chunk_logits(xc, w, b, head, settings.matmul)
        return None, row_stats(
            _scaled(raw, targets, settings), _chunk_targets(targets, labels, valid), settings
        )

    _, stats = scan_row_chunks(body, None, (x, *_target_rows(targets)), settings.chunk_size)
    return RowStats(*(s.reshape(-1) for s in stats))


def _walk_tangents(x, w, b, targets, stats: RowStats, settings: StatsSettings, t_x, t_w, t_b):
    """The per-row tangents, chunk by chunk; the body is checkpointed, so reverse mode
    recomputes each chunk's logits and forms dx, dW, db with three matmuls per chunk."""
    head = Head(smooth=False)
    form = settings.matmul
    no_t_x = jnp.zeros((x.shape[0], 0), x.dtype)

    @jax.checkpoint
    def body(_, chunk):
        xc, labels, valid, t_xc, *stat_rows = chunk
        chunk_targets = _chunk_targets(targets, labels, valid)
        raw = chunk_logits(xc, w, b, head, form)
        compute = raw.dtype
        z_dot = jnp.zeros(raw.shape, compute)
        if not is_symbolic_zero(t_x):
            z_dot = z_dot + matmul(t_xc, w, ((1,), (1,)), form)
        if not is_symbolic_zero(t_w):
            z_dot = z_dot + matmul(xc, t_w, ((1,), (1,)), form)
        if b is not None and not is_symbolic_zero(t_b):
            z_dot = z_dot + t_b.astype(compute)
        z = _scaled(raw, chunk_targets, settings)
        z_dot = _scaled_tangent(raw, z_dot, chunk_targets, settings)
        return None, row_tangents(z, z_dot, chunk_targets, RowStats(*stat_rows), settings)

    rows = (x, *_target_rows(targets), no_t_x if is_symbolic_zero(t_x) else t_x, *stats)
    _, tangents = scan_row_chunks(body, None, rows, settings.chunk_size)
    return tuple(t.reshape(-1) for t in tangents)


@functools.partial(jax.custom_jvp, nondiff_argnums=(4,))
def _head_stats(x, w, b, targets: TokenTargets, settings: StatsSettings):
    return _outputs(_walk_stats(x, w, b, targets, settings), targets.valid)


def _head_stats_jvp(settings, primals, tangents):
    x, w, b, targets = primals
    t_x, t_w, t_b = tangents[:3]
    stats = _walk_stats(x, w, b, targets, settings)
    outputs = _outputs(stats, targets.valid)
    if is_symbolic_zero(t_x) and is_symbolic_zero(t_w) and (b is None or is_symbolic_zero(t_b)):
        return outputs, tuple(jnp.zeros_like(o) for o in outputs)
    return outputs, _walk_tangents(x, w, b, targets, stats, settings, t_x, t_w, t_b)


_head_stats.defjvp(_head_stats_jvp, symbolic_zeros=True)


@functools.partial(jax.jit, static_argnames=("settings",))
def head_token_stats(x, w, b, targets: TokenTargets, *, settings: StatsSettings):
    """(log p(label), entropy, logsumexp, log Σp²), each (N,), of the head x (N, D) @ w (V, D)ᵀ + b;
    N a multiple of `settings.chunk_size`."""
    return _head_stats(x, w, b, targets, settings)


# ------------------------------------------------------------ the statistics of checked inputs


class TokenStats(NamedTuple):
    """Per-token statistics, each of the labels' shape (float32 for 16-bit inputs):
    ``log_probs`` log p(label); ``entropy`` H(p); ``logsumexp`` the log normaliser of the
    scaled logits; ``log_sum_sq_probs`` log Σ p², the log collision probability (TRL's
    ``log_sum_sq_probs``, for WPO's weights). Each but ``log_probs`` is None unless asked
    for."""

    log_probs: jax.Array
    entropy: jax.Array | None = None
    logsumexp: jax.Array | None = None
    log_sum_sq_probs: jax.Array | None = None


class Extras(NamedTuple):
    """Which statistics besides the log-probabilities a call returns (static flags)."""

    entropy: bool = False
    logsumexp: bool = False
    log_sum_sq_probs: bool = False


def inverse_temperature(fn, temperature, dtype):
    """1/T as a constant scalar; a T <= 0 raises when concrete and gives nan under jit."""
    checks.python_number(fn, "temperature", temperature, low=0.0, low_inclusive=False)
    t = lax.stop_gradient(jnp.asarray(temperature, dtype))
    checks.value_check(fn, t > 0, "`temperature` must be > 0; got {}.", t)
    return jnp.where(t > 0, 1 / t, jnp.nan)


def stats_extras(fn, entropy, logsumexp, log_sum_sq_probs) -> Extras:
    """The checked ``with_*`` flags of a call."""
    flags = (
        ("with_entropy", entropy),
        ("with_logsumexp", logsumexp),
        ("with_log_sum_sq_probs", log_sum_sq_probs),
    )
    return Extras(*(checks.python_bool(fn, name, flag) for name, flag in flags))


def results(outputs, labels_shape, extras: Extras):
    """The log-probabilities alone, or a TokenStats of those asked for (others None)."""
    log_probs, *others = (o.reshape(labels_shape) for o in outputs)
    if not any(extras):
        return log_probs
    return TokenStats(log_probs, *(o if asked else None for o, asked in zip(others, extras)))


def result_specs(spec, extras: Extras) -> Any:
    """The output specs of `results` when every statistic has the sharding `spec`."""
    if not any(extras):
        return spec
    return TokenStats(spec, *(spec if asked else None for asked in extras))


class HeadStatsOptions(NamedTuple):
    """The options of a head's statistics, checked."""

    temperature: Any
    softcap: float | None
    ignore_index: int | None
    extras: Extras
    chunk_size: int


def bad_labels_nan(outputs, indices):
    """nan where a counted label is out of range or excluded (the error under jit)."""
    bad = indices.out_of_range.reshape(-1)
    return tuple(jnp.where(bad, jnp.nan, o) for o in outputs)


def head_log_probs(
    fn: str,
    x: jax.Array,
    w: jax.Array,
    labels: jax.Array,
    arrays: HeadArrays,
    options: HeadStatsOptions,
    *,
    classes: ClassAxis | None = None,
    num_classes: int | None = None,
    batch_axis_name: Any = None,
) -> jax.Array | TokenStats:
    """The statistics of a linear head from checked arguments, on one device; with `classes`,
    `w`, `bias` and `class_mask` are this device's blocks of a vocabulary split over a mesh
    axis (`num_classes` its true size). `batch_axis_name` is unused: nothing is reduced over
    the tokens."""
    del batch_axis_name
    compute = jnp.promote_types(jnp.result_type(x, w), jnp.float32)
    indices = head_label_indices(
        fn,
        labels,
        w.shape[0],
        options.ignore_index,
        arrays.where,
        arrays.class_mask,
        classes,
        num_classes,
    )
    # A position that does not count takes no part: its hidden state (which may hold
    # anything, nan included) is zeroed, so that 0·nan never reaches dW through the matmuls.
    rows = jnp.where(indices.valid.reshape(-1, 1), x.reshape(-1, x.shape[-1]), 0)
    n = rows.shape[0]
    chunk, pad_rows = row_chunks(n, options.chunk_size)
    targets = TokenTargets(
        pad_rows(indices.safe.reshape(-1), 0),
        pad_rows(indices.valid.reshape(-1), False),
        arrays.class_mask,
        inverse_temperature(fn, options.temperature, compute),
    )
    settings = StatsSettings(
        softcap=None if options.softcap is None else float(options.softcap),
        entropy=options.extras.entropy,
        sum_sq=options.extras.log_sum_sq_probs,
        classes=classes,
        chunk_size=chunk,
        matmul=form_for(jnp.result_type(x, w), chunk, x.shape[-1], w.shape[0]),
    )
    outputs = head_token_stats(pad_rows(rows, 0), w, arrays.bias, targets, settings=settings)
    outputs = bad_labels_nan(tuple(o[:n] for o in outputs), indices)
    return results(outputs, labels.shape, options.extras)
