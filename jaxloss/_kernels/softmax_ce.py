"""The cross-entropy hot path: softmax cross-entropy of rows against class indices, with class
weights, label smoothing and masked rows, as a ``jax.custom_jvp`` whose tangent reverse mode
transposes into the closed-form backward below (one elementwise pass, nothing saved but the
logits and the per-row logsumexp).

Per row i (label y, validity v, class weights w, W = Σ_c w_c, smoothing ε, C classes):

    loss_i = v · [ (1-ε)·w_y·(lse - x_y) + (ε/C)·(W·lse - Σ_c w_c x_c) ]
    dloss_i/dx_c = v · [ ((1-ε)·w_y + ε·W/C)·p_c - (1-ε)·w_y·[c = y] - (ε/C)·w_c ]

so neither a one-hot nor a smoothed target is ever built: the forward reads the logits for the
row max and for Σ exp (plus Σ w_c x_c when smoothing), keeps only the per-row logsumexp, and the
backward writes the gradient in one elementwise pass (the [c = y] term is then, on CPU with
more than 64 classes, one in-place scatter of N values, and otherwise an iota compare fused
into the pass; see `LogitGrad`). No (N, C) array besides the gradient exists. 16-bit logits are
read as they are and accumulated in float32; the gradient comes back in their dtype.

With a class mask m (classes left out of the softmax), every sum over c runs over the included
classes only: lse is the logsumexp of the included logits, C becomes K_i = Σ_c m_c and W becomes
W_i = Σ_c m_c w_c, so smoothing spreads ε over the included classes. The loss then equals the
unmasked loss on the included classes alone (a padded vocabulary costs nothing), and excluded
classes get an exact zero gradient whatever their logits hold (nan and inf included).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from .._core.class_inputs import is_index, lookup, pick_along_axis
from .._core.ops import is_symbolic_zero, row_sum
from .._core.sharding import explicitly_sharded


def _shifted_logsumexp(xc):
    row_max = jnp.max(xc, axis=-1)
    # A row of -inf (every class masked) gives nan, as torch's log_softmax does.
    shift = jnp.where(jnp.isneginf(row_max), jnp.zeros((), xc.dtype), row_max)
    # Ended at the sum (`row_sum`): with the log after it in its fusion, XLA:CPU wrote
    # e^{x-m} out first (float32 65536x1000: the fallback's step took 1.6x).
    lse = shift + jnp.log(row_sum(jnp.exp(xc - shift[:, None])))
    return jnp.where(jnp.isneginf(row_max), jnp.nan, lse)


def _logsumexp_rows(x, compute, class_mask):
    """Row logsumexp over the included classes, in `compute` (float32 or wider), in one read
    of the logits `x` when the plain sum is safe.

    Σ exp(x) without the max shift is as accurate as the shifted sum whenever it neither
    overflows nor underflows; it is safe when every row's sum is finite and at least
    C·tiny/eps (then terms lost to underflow weigh less than one ulp of the sum). That holds
    for ordinary logits and skips the separate pass for the row max (and XLA's slow fused
    shift-exp-sum on short rows, measured 116 ms against 19 ms at 65536x1000). Any row outside
    it (logits beyond about ±80 in float32, nan) sends the batch through the shifted path.

    The upcast and the mask are applied inside each branch, not before the ``cond``: an
    operand of the ``cond`` is a whole array in memory, so an upcast (or masked) copy handed
    to it would be written out and read back (bf16 CE fwd+bwd at 4096x32768: 458 ms with
    that copy, 276 ms without it and the gather's in `forward_rows`).
    """

    def included(x):
        return _excluding(x.astype(compute), class_mask, -jnp.inf)

    if x.size < 65536:  # below ~64K elements the passes cost less than the cond: always shift
        return _shifted_logsumexp(included(x))
    info = jnp.finfo(compute)
    num_classes = x.shape[-1]
    plain = jnp.sum(jnp.exp(included(x)), axis=-1)
    floor = num_classes * float(info.tiny) / float(info.eps)
    safe = jnp.all(jnp.isfinite(plain) & (plain >= floor))

    def shifted(x):
        return _shifted_logsumexp(included(x))

    return lax.cond(safe, lambda _: jnp.log(plain), shifted, x)


@dataclasses.dataclass(frozen=True)
class ClassAxis:
    """The class axis split over mesh axis `name` (inside ``shard_map``), in equal contiguous
    blocks: the device at index i of `name` holds classes [i·c, (i+1)·c) of `size`, where c
    is its local width. Static (it keys the compiled kernel)."""

    name: str | tuple[str, ...]
    size: int  # the global number of classes

    def offset(self, local_width: int) -> jax.Array:
        return lax.axis_index(self.name) * local_width

    def sum(self, x):
        return lax.psum(x, self.name)

    def max(self, x):
        return lax.pmax(x, self.name)


def _excluding(xc, class_mask, fill):
    """The logits with excluded classes replaced by `fill` (-inf leaves them out of a
    logsumexp, 0 out of a sum); unchanged without a mask."""
    if class_mask is None:
        return xc
    return jnp.where(class_mask, xc, jnp.asarray(fill, xc.dtype))


def _row_stats(x, smoothing_weights, class_mask):
    """Per-row logsumexp (float32 or wider) over the included classes and, when smoothing,
    Σ_c m_c w_c x_c."""
    compute = jnp.promote_types(x.dtype, jnp.float32)
    lse = _logsumexp_rows(x, compute, class_mask) if x.shape[0] else jnp.zeros((0,), compute)
    smooth_dot = None
    if smoothing_weights is not None:
        # Its own read of the logits: a barrier keeps XLA from sharing the upcast of 16-bit
        # logits with the logsumexp's (it would write the float32 copy out), and a weighted
        # sum rather than a matmul fuses the upcast into the reduction. The barrier holds a
        # second value so that CSE does not merge it with the label gather's barrier of the
        # same logits: merged, the upcast stayed outside this reduction and was written out.
        source = (
            lax.optimization_barrier((x, jnp.zeros((), compute)))[0] if x.dtype != compute else x
        )
        summed = _excluding(source.astype(compute), class_mask, 0)
        if smoothing_weights == "uniform":
            smooth_dot = jnp.sum(summed, axis=-1)
        else:
            # Ended at the sum: with the loss's arithmetic in its fusion, XLA:CPU wrote the
            # weighted (N, C) product out (bf16 at 65536x1000: the step took 2x).
            smooth_dot = row_sum(summed * smoothing_weights.astype(compute))
    return lse, smooth_dot


class RowTargets(NamedTuple):
    """Each row's target for the kernel (a pytree; gradients reach the float fields).

    labels: (N,) int32 class indices, safe to gather (0 where a row does not count).
    valid: (N,) bool, rows that count; the others give exactly 0.
    label_weight: (N,) w_y (1 without class weights; nan marks an out-of-range label).
    class_weight: (C,) class weights, or None.
    smoothing: ε, a scalar array (may be traced).
    class_mask: bool (C,) (every row) or (N, C), the classes in the softmax; None: all.
    """

    labels: jax.Array
    valid: jax.Array
    label_weight: jax.Array
    class_weight: jax.Array | None
    smoothing: jax.Array
    class_mask: jax.Array | None = None


class RowStats(NamedTuple):
    """What the forward pass keeps per row: logsumexp, -log p_y and, when smoothing, its term
    and the K and W it used (global ones on a split class axis, so that the backward pass
    needs no collective)."""

    lse: jax.Array
    nll: jax.Array
    smooth_term: jax.Array | None
    class_count: jax.Array | None = None
    total_weight: jax.Array | None = None


def _per_class(targets: RowTargets, num_classes, dtype):
    """m_c·w_c: the class weights (1 without), 0 on excluded classes; (C,) or (N, C)."""
    weights = (
        jnp.ones((num_classes,), dtype)
        if targets.class_weight is None
        else targets.class_weight.astype(dtype)
    )
    return _excluding(weights, targets.class_mask, 0)


def _class_count(targets: RowTargets, num_classes, dtype):
    """K: the number of classes in each row's softmax (a scalar or (N,))."""
    if targets.class_mask is None:
        return jnp.asarray(num_classes, dtype)
    return jnp.sum(targets.class_mask, axis=-1).astype(dtype)


def _total_weight(targets: RowTargets, num_classes, dtype):
    """W = Σ_c m_c w_c (a scalar or (N,))."""
    if targets.class_mask is None and targets.class_weight is None:
        return jnp.asarray(num_classes, dtype)
    return jnp.sum(_per_class(targets, num_classes, dtype), axis=-1)


def _sharded_row_stats(logits, targets: RowTargets, weights_spec, classes: ClassAxis):
    """`_row_stats`, the label's logit, K and W of local (N, C/k) logits on a split class
    axis: one pmax (the row max) and one psum of the stacked per-row sums (Σ exp, the label's
    logit, Σ w·x when smoothing; K and W when a mask or weights make them vary) cross devices,
    O(N) each."""
    compute = jnp.promote_types(logits.dtype, jnp.float32)
    xc = logits.astype(compute)
    local_width = logits.shape[-1]
    included = _excluding(xc, targets.class_mask, -jnp.inf)
    row_max = classes.max(jnp.max(included, axis=-1))
    shift = jnp.where(jnp.isneginf(row_max), jnp.zeros((), compute), row_max)
    parts = [jnp.sum(jnp.exp(included - shift[:, None]), axis=-1)]
    local_label = targets.labels - classes.offset(local_width)
    here = (local_label >= 0) & (local_label < local_width)
    picked = pick_along_axis(xc, jnp.where(here, local_label, 0), -1)
    parts.append(jnp.where(here, picked, jnp.zeros((), compute)))
    # K and W: V itself without a mask or weights; else local sums (scalars with a (C,) mask,
    # per row with an (N, C) one), reduced in the same psum as the per-row sums.
    count = total = None
    local_sums = {}
    if weights_spec is not None:
        summed = _excluding(xc, targets.class_mask, 0)
        uniform = isinstance(weights_spec, str)
        parts.append(jnp.sum(summed, axis=-1) if uniform else summed @ weights_spec.astype(compute))
        count = total = jnp.asarray(classes.size, compute)
        if targets.class_mask is not None:
            local_sums["count"] = _class_count(targets, local_width, compute)
        if targets.class_mask is not None or targets.class_weight is not None:
            local_sums["total"] = _total_weight(targets, local_width, compute)
    sums, global_sums = classes.sum((jnp.stack(parts, axis=-1), local_sums))
    count, total = global_sums.get("count", count), global_sums.get("total", total)
    lse = jnp.where(jnp.isneginf(row_max), jnp.nan, shift + jnp.log(sums[:, 0]))
    smooth_dot = None if weights_spec is None else sums[:, 2]
    return lse, sums[:, 1], smooth_dot, count, total


def forward_rows(logits, targets: RowTargets, *, smooth: bool, classes: ClassAxis | None = None):
    """Unreduced loss (N,) of logits (N, C) and its RowStats. `smooth` is static: False when
    ε is known to be 0 (the smoothing terms are then not computed at all). With `classes`,
    the logits are one device's block of a class axis split over a mesh axis (see
    `ClassAxis`); every statistic, and so the loss, is the global one."""
    weights_spec = None
    if smooth:
        weights_spec = "uniform" if targets.class_weight is None else targets.class_weight
    if classes is None:
        num_classes = logits.shape[-1]
        lse, smooth_dot = _row_stats(logits, weights_spec, targets.class_mask)
        compute = lse.dtype
        # 16-bit logits: the barrier keeps XLA from upcasting all the logits for this gather
        # (sharing the upcast of the logsumexp pass, which it would then write out whole).
        narrow = logits.dtype != compute
        source = lax.optimization_barrier(logits) if narrow else logits
        picked = pick_along_axis(source, targets.labels, -1).astype(compute)
        count = total = None
        if smooth_dot is not None:
            count = _class_count(targets, num_classes, compute)
            total = _total_weight(targets, num_classes, compute)
    else:
        lse, picked, smooth_dot, count, total = _sharded_row_stats(
            logits, targets, weights_spec, classes
        )
        compute = lse.dtype
    nll = lse - picked
    loss = targets.label_weight.astype(compute) * nll
    smooth_term = None
    if smooth_dot is not None:  # smoothing on
        assert count is not None and total is not None
        eps = targets.smoothing.astype(compute)
        smooth_term = (total * lse - smooth_dot) / count
        loss = (1 - eps) * loss + eps * smooth_term
    # Rows that do not count give exactly 0, whatever their logits hold.
    loss = jnp.where(targets.valid, loss, jnp.zeros((), compute))
    return loss, RowStats(lse, nll, smooth_term, count, total)


# Up to this many classes, the label's gradient term is an iota compare on CPU too (see
# `logit_grad`).
_COMPARE_MAX_CLASSES = 64


@dataclasses.dataclass(frozen=True)
class LogitGrad:
    """d(Σ_i g_i·loss_i)/d logits, in float32 (or wider), in two parts: `dense` (N, C) holds
    every term but the label's, and `at_label` (N,) is subtracted at [i, label_i] (`label`
    indexes this block of classes; `at_label` is 0 where the label lies elsewhere or is
    excluded).

    Kept apart for logits already in the compute dtype on CPU, with more than 64 classes
    (`scatter_label`): the label's term is then one in-place scatter of N values onto `dense`
    (in reverse mode XLA folds the transposed gather into it), where an iota compare over all
    (N, C) elements cost about 45 ms of 370 at 4096x32768. Fewer classes (the scatter's cost
    per row is then the larger), 16-bit logits (so that their gradient is rounded to 16 bits
    once, after the label's term), a class axis split over an Explicit mesh (a scatter has no
    sharding rule there) and GPUs and TPUs combine both in one elementwise pass instead.
    """

    dense: jax.Array
    at_label: jax.Array
    label: jax.Array
    scatter_label: bool

    def whole(self) -> jax.Array:
        """The (N, C) gradient."""
        if not self.scatter_label:
            is_label = is_index(self.dense.shape, self.label, 1)
            zero = jnp.zeros((), self.dense.dtype)
            return self.dense - jnp.where(is_label, self.at_label[:, None], zero)
        rows = jnp.arange(self.label.shape[0], dtype=self.label.dtype)
        return self.dense.at[rows, self.label].add(
            -self.at_label, mode="promise_in_bounds", indices_are_sorted=True, unique_indices=True
        )

    def dot(self, tangent: jax.Array) -> jax.Array:
        """Σ_c grad_ic·tangent_ic per row (N,)."""
        compute = self.dense.dtype
        if not self.scatter_label:
            return jnp.sum(self.whole() * tangent.astype(compute), axis=-1)
        at_label = pick_along_axis(tangent, self.label, -1).astype(compute)
        return jnp.sum(self.dense * tangent.astype(compute), axis=-1) - self.at_label * at_label

    def times(self, factor: jax.Array) -> LogitGrad:
        """The gradient multiplied elementwise by an (N, C) factor."""
        at_label = self.at_label * pick_along_axis(factor, self.label, -1)
        return dataclasses.replace(self, dense=self.dense * factor, at_label=at_label)


def logit_grad(
    logits,
    targets: RowTargets,
    lse,
    cotangent,
    *,
    smooth: bool,
    extra_prob_scale=None,
    classes: ClassAxis | None = None,
    class_count=None,
    total_weight=None,
) -> LogitGrad:
    """d(Σ_i g_i·loss_i)/d logits, in float32 (or wider): one elementwise pass (see
    `LogitGrad`).

    `extra_prob_scale` (N,) adds a multiple of p_c per row (the fused loss's z-loss term).
    With `classes` the logits are a local block (see `ClassAxis`) and, when smoothing, the
    global `class_count` and `total_weight` of the forward pass (RowStats) must be given: no
    collective is needed here.
    """
    compute = lse.dtype
    num_classes = logits.shape[-1]
    w_y = targets.label_weight.astype(compute)
    g = jnp.where(targets.valid, cotangent.astype(compute), jnp.zeros((), compute))
    if smooth:
        if class_count is None or total_weight is None:
            assert classes is None, "a split class axis needs the forward pass's K and W"
            class_count = _class_count(targets, num_classes, compute)
            total_weight = _total_weight(targets, num_classes, compute)
        eps = targets.smoothing.astype(compute)
        hit = g * (1 - eps) * w_y  # coefficient of [c = y]
        spread = g * eps / class_count  # coefficient of w_c
        scale = hit + spread * total_weight
    else:
        hit = scale = g * w_y
    if extra_prob_scale is not None:
        scale = scale + g * extra_prob_scale
    included = _excluding(logits.astype(compute), targets.class_mask, -jnp.inf)
    dense = scale[:, None] * jnp.exp(included - lse[:, None])
    if smooth:
        per_class = jnp.broadcast_to(_per_class(targets, num_classes, compute), logits.shape)
        dense = dense - spread[:, None] * per_class
    # Exact zeros on excluded classes, also in rows whose lse is nan (every class excluded).
    dense = _excluding(dense, targets.class_mask, 0)
    label = targets.labels
    if classes is not None:
        label = label - classes.offset(num_classes)
        here = (label >= 0) & (label < num_classes)
        label = jnp.where(here, label, 0)
        hit = jnp.where(here, hit, jnp.zeros((), compute))
    if targets.class_mask is not None:
        mask = targets.class_mask
        included_label = (
            lookup(mask, label) if mask.ndim == 1 else pick_along_axis(mask, label, -1)
        ).astype(bool)
        hit = jnp.where(included_label, hit, jnp.zeros((), compute))
    # The scatter is measured on XLA:CPU only; on GPUs and TPUs the compare costs nothing in
    # a memory-bound pass, and a scatter is a kernel of its own. XLA:CPU's scatter costs tens
    # of ns per row, the compare about 1 ns per logit or less: up to 64 classes the compare
    # is the cheaper (float32 forward+backward with the compare, against the scatter:
    # 4096x32 0.39-0.64x the time, 65536x64 0.78-0.81x, 4096x256 1.02-1.13x).
    scatter_label = (
        logits.dtype == compute
        and num_classes > _COMPARE_MAX_CLASSES
        and not explicitly_sharded(logits, 1)
        and jax.default_backend() == "cpu"
    )
    return LogitGrad(dense, hit, label, scatter_label)


@dataclasses.dataclass(frozen=True)
class Head:
    """Static options of the rows kernel beyond the targets: smoothing on (False when ε is
    known to be 0), PaLM's z-loss λ·lse² (0: off), Gemma 2's soft-cap c·tanh(z/c) of the
    logits (None: off), and a class axis split over a mesh axis (None: whole)."""

    smooth: bool
    z_loss: float = 0.0
    softcap: float | None = None
    classes: ClassAxis | None = None


def capped(logits, head: Head):
    """The logits the softmax sees: soft-capped when `head.softcap` is set."""
    if head.softcap is None:
        return logits
    return head.softcap * jnp.tanh(logits / head.softcap)


def head_forward(z, targets: RowTargets, head: Head):
    """Row losses (N,) of capped logits `z` and their RowStats, z-loss included."""
    loss, stats = forward_rows(z, targets, smooth=head.smooth, classes=head.classes)
    if head.z_loss:
        z_term = head.z_loss * stats.lse * stats.lse
        loss = loss + jnp.where(targets.valid, z_term, jnp.zeros((), loss.dtype))
    return loss, stats


def global_counts(targets: RowTargets, local_width: int, head: Head):
    """(K, W) of a class mask and weights shared by every row, over the whole (possibly
    split) class axis, for `head_logit_grad`'s `counts`; (None, None) without smoothing.
    Computed once per call, so a chunked backward needs no collective."""
    if not head.smooth:
        return None, None
    compute = jnp.promote_types(targets.label_weight.dtype, jnp.float32)
    counts = (
        _class_count(targets, local_width, compute),
        _total_weight(targets, local_width, compute),
    )
    if head.classes is None:
        return counts
    size = jnp.asarray(head.classes.size, compute)
    count = size if targets.class_mask is None else head.classes.sum(counts[0])
    if targets.class_mask is None and targets.class_weight is None:
        return count, size
    return count, head.classes.sum(counts[1])


def head_logit_grad(
    z, targets: RowTargets, lse, cotangent, head: Head, counts=(None, None)
) -> LogitGrad:
    """d(Σ_i g_i·loss_i)/d logits before the soft-cap, from the capped logits `z`; `counts`
    are the forward pass's (K, W) (needed when smoothing over a split class axis)."""
    extra = 2 * head.z_loss * lse if head.z_loss else None
    dz = logit_grad(
        z,
        targets,
        lse,
        cotangent,
        smooth=head.smooth,
        extra_prob_scale=extra,
        classes=head.classes,
        class_count=counts[0],
        total_weight=counts[1],
    )
    if head.softcap is not None:
        dz = dz.times(1 - jnp.square(z / head.softcap))
    return dz


def _logit_tangent(logits, targets: RowTargets, stats: RowStats, t_logits, head: Head):
    """Σ_c (dloss_i/dx_ic)·t_ic: linear in t_logits. Checkpointed by the caller, so reverse
    mode (which transposes it) recomputes dloss/dx from the logits and the logsumexp in one
    elementwise pass, as a hand-written backward would, instead of saving an (N, C) array."""
    counts = (stats.class_count, stats.total_weight)
    ones = jnp.ones_like(stats.lse)
    grad = head_logit_grad(capped(logits, head), targets, stats.lse, ones, head, counts)
    tangent = grad.dot(t_logits)
    # Over a split class axis the sum runs over every block; reverse mode transposes this
    # psum into nothing (each block's cotangent is local).
    return tangent if head.classes is None else head.classes.sum(tangent)


def _weight_tangent(z, targets: RowTargets, stats: RowStats, t_targets: RowTargets, head: Head):
    """The loss's tangent from label_weight, class_weight and ε (linear in their tangents);
    its transpose gives their exact cotangents (XLA drops what is unused). `z`: the capped
    logits."""
    smooth = head.smooth
    compute = stats.lse.dtype
    out = jnp.zeros(stats.lse.shape, compute)
    eps = targets.smoothing.astype(compute)
    if not is_symbolic_zero(t_targets.label_weight):
        hit = stats.nll * ((1 - eps) if smooth else 1)
        out = out + hit * t_targets.label_weight.astype(compute)
    if smooth and not is_symbolic_zero(t_targets.smoothing):
        smooth_term = stats.smooth_term
        assert smooth_term is not None, "smoothing on: forward_rows kept its term"
        term = smooth_term - targets.label_weight.astype(compute) * stats.nll
        out = out + term * t_targets.smoothing.astype(compute)
    t_class = t_targets.class_weight
    # Without smoothing (ε known to be 0) class weights enter only through label_weight.
    if smooth and targets.class_weight is not None and not is_symbolic_zero(t_class):
        assert t_class is not None and stats.class_count is not None
        # d/dw_c of (ε/K)(W·lse_i - Σ_c m_c w_c x_ic) = (ε/K)·m_c·(lse_i - x_ic).
        t_w = _excluding(t_class.astype(compute), targets.class_mask, 0)
        x_included = _excluding(z.astype(compute), targets.class_mask, 0)
        dot = jnp.sum(x_included * t_w, axis=-1) if t_w.ndim == 2 else x_included @ t_w
        t_total = jnp.sum(t_w, axis=-1)
        if head.classes is not None:  # sums over a split class axis
            dot, t_total = head.classes.sum(dot), head.classes.sum(t_total)
        out = out + eps / stats.class_count * (stats.lse * t_total - dot)
    # Rows that do not count contribute exactly 0 (their lse may be nan: all excluded).
    return jnp.where(targets.valid, out, jnp.zeros((), compute))


@functools.partial(jax.custom_jvp, nondiff_argnums=(2,))
def _rows_with_derivatives(logits, targets: RowTargets, head: Head):
    return head_forward(capped(logits, head), targets, head)[0]


def _rows_jvp(head, primals, tangents):
    """Forward mode for every transformation (jvp, jacfwd, hessian, linearize); reverse mode
    transposes this tangent into the closed-form backward (same XLA program, same speed)."""
    logits, targets = primals
    t_logits, t_targets = tangents
    z = capped(logits, head)
    loss, stats = head_forward(z, targets, head)
    tangent = jnp.zeros_like(loss)
    if not is_symbolic_zero(t_logits):
        tangent = tangent + jax.checkpoint(_logit_tangent, static_argnums=(4,))(
            logits, targets, stats, t_logits, head
        )
    return loss, tangent + _weight_tangent(z, targets, stats, t_targets, head)


_rows_with_derivatives.defjvp(_rows_jvp, symbolic_zeros=True)


@functools.partial(jax.jit, static_argnames=("head",))
def softmax_cross_entropy_rows(logits: jax.Array, targets: RowTargets, *, head: Head) -> jax.Array:
    """Unreduced loss (N,) of logits (N, C) against `targets`, with the closed-form gradient.

    Jitted so that eager (un-jitted) calls compile once per shape instead of being re-traced
    and dispatched op by op on every call; inside a user's jit (or shard_map) it simply
    inlines.
    """
    return _rows_with_derivatives(logits, targets, head)
