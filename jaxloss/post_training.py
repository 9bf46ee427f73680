r"""Post-training statistics of a language model's head: the log-probability of each chosen
token, the entropy of each position's distribution, its logsumexp and its log collision
probability log Σ p² (WPO's), from the hidden states and the head without ever forming the
(N, V) logits (`linear_log_probs`), or from logits a caller already holds
(`token_log_probs`).

Preference optimisation (DPO, IPO, SimPO, KTO), policy gradients (PPO, GRPO) and
distillation need log p(token), not a cross-entropy: this is TRL's selective log-softmax and
entropy, and the per-token log-probabilities that Liger-Kernel's chunked preference and PPO
losses compute, streamed over the vocabulary as the fused cross-entropy head is
(`jaxloss._kernels.token_stats`), with exact gradients for any cotangent on each output.

Conventions, shared by both functions (TRL's and Liger's): the logits are soft-capped first
(Gemma 2's $c\tanh(z/c)$, part of the model), then divided by the temperature:
$z = \mathrm{cap}(x W^\top + b)/T$. Positions that do not count (``ignore_index``, ``where``)
return exactly 0 and get no gradient. Excluded vocabulary entries (``class_mask``,
``valid_vocab_size``) get exactly zero probability, soft-capped or not.
"""

from __future__ import annotations

import functools
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax
from jax.sharding import PartitionSpec as P
from jax.typing import ArrayLike

from ._core import checks
from ._core.class_inputs import class_indices
from ._core.sharding import has_explicit_axes
from ._kernels.chunked_head import DEFAULT_CHUNK_SIZE, HeadArrays
from ._kernels.distillation import PER_CLASS as DISTILL_PER_CLASS
from ._kernels.distillation import (
    DistillArrays,
    Divergence,
    distill_options,
    distill_targets,
    head_distillation,
    logit_distillation_rows,
    reduce_rows,
    token_labels,
)
from ._kernels.token_stats import (
    HeadStatsOptions,
    StatsSettings,
    TokenStats,
    TokenTargets,
    bad_labels_nan,
    head_log_probs,
    inverse_temperature,
    logit_token_stats,
    result_specs,
    results,
    stats_extras,
)
from ._mesh_layouts import run_on_explicit_mesh

# The public functions, in the order their docs page lists them (`TokenStats` and
# `SequenceSums`, the types of their results, are importable from this module).
__all__ = [
    "token_log_probs",
    "linear_log_probs",
    "sequence_sums",
    "sequence_reduce",
    "distillation_loss",
    "linear_distillation_loss",
]


def token_log_probs(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    temperature: float = 1.0,
    softcap: float | None = None,
    class_mask: ArrayLike | None = None,
    valid_vocab_size: int | None = None,
    ignore_index: int | None = -100,
    where: ArrayLike | None = None,
    with_entropy: bool = False,
    with_logsumexp: bool = False,
    with_log_sum_sq_probs: bool = False,
) -> jax.Array | TokenStats:
    r"""log p(label) of each position of ``logits (..., V)``, and optionally the entropy, the
    logsumexp and the log collision probability of its distribution: TRL's
    ``selective_log_softmax``, ``entropy_from_logits`` and ``log_sum_sq_probs`` in one pass,

    $$\log p_i = z_{i,y_i} - \log\sum_c e^{z_{ic}},\qquad H_i = \log\sum_c e^{z_{ic}} -
    \sum_c p_{ic} z_{ic},\qquad S_i = \log\sum_c p_{ic}^2,\qquad
    z = \mathrm{cap}(\text{logits})/T.$$

    Its backward pass recomputes the softmax from the logits and the saved logsumexp in one
    elementwise pass: no (N, V) log-softmax is written besides the gradient itself.

    Args:
      logits: float ``(..., V)``.
      labels: integer tokens of ``logits.shape[:-1]``.
      temperature: T > 0 dividing the (soft-capped) logits.
      softcap: c > 0 of Gemma 2's soft-capping, applied before the temperature, or None.
      class_mask: optional boolean ``(V,)``: the vocabulary entries in the softmax; the others
        get probability exactly 0. A counted label on an excluded entry is an error.
      valid_vocab_size: optional K: only the first K entries (a padded vocabulary); give
        this or ``class_mask``.
      ignore_index: a label value whose positions return 0 (None: none).
      where: optional boolean mask of ``labels.shape``: the positions that count.
      with_entropy: also return the entropy.
      with_logsumexp: also return the logsumexp.
      with_log_sum_sq_probs: also return log Σ p² (TRL's ``log_sum_sq_probs``, which
        `jaxloss.wpo_weights` takes).

    Returns:
      ``log_probs`` of ``labels.shape``, or with any ``with_*`` flag a
      ``jaxloss.post_training.TokenStats`` named tuple (``log_probs``, ``entropy``,
      ``logsumexp``, ``log_sum_sq_probs``; None where not asked for). float32 for 16-bit
      logits (the statistics are float32).

    Examples:
      >>> logits = jnp.array([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]])
      >>> jaxloss.token_log_probs(logits, jnp.array([0, 2]))
      Array([-0.24131..., -1.00194...], dtype=float32)
    """
    fn = "token_log_probs"
    z = checks.float_array(fn, "logits", logits)
    y = checks.int_array(fn, "labels", labels)
    if z.ndim < 1:
        raise ValueError(f"{fn}: `logits` must be (..., V); got a scalar.")
    if y.shape != z.shape[:-1]:
        raise ValueError(
            f"{fn}: `labels` must have shape logits.shape[:-1] = {list(z.shape[:-1])}; got "
            f"{list(y.shape)}."
        )
    checks.head_options(fn, 0.0, 0.0, softcap)
    num_classes = z.shape[-1]
    mask = checks.vocabulary_mask(
        fn, class_mask, valid_vocab_size, num_classes, " (V = logits.shape[-1])"
    )
    where = checks.where_mask(fn, where, y.shape, "one value per token")
    indices = class_indices(
        fn, y, num_classes, ignore_index=ignore_index, where=where, class_mask=mask
    )
    compute = jnp.promote_types(z.dtype, jnp.float32)
    targets = TokenTargets(
        indices.safe.reshape(-1),
        indices.valid.reshape(-1),
        mask,
        inverse_temperature(fn, temperature, compute),
    )
    extras = stats_extras(fn, with_entropy, with_logsumexp, with_log_sum_sq_probs)
    settings = StatsSettings(
        softcap=None if softcap is None else float(softcap),
        entropy=extras.entropy,
        sum_sq=extras.log_sum_sq_probs,
    )
    outputs = logit_token_stats(z.reshape(-1, num_classes), targets, settings=settings)
    outputs = bad_labels_nan(outputs, indices)
    return results(outputs, y.shape, extras)


def linear_log_probs(
    x: ArrayLike,
    w: ArrayLike,
    labels: ArrayLike,
    *,
    bias: ArrayLike | None = None,
    temperature: float = 1.0,
    softcap: float | None = None,
    class_mask: ArrayLike | None = None,
    valid_vocab_size: int | None = None,
    ignore_index: int | None = -100,
    where: ArrayLike | None = None,
    with_entropy: bool = False,
    with_logsumexp: bool = False,
    with_log_sum_sq_probs: bool = False,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> jax.Array | TokenStats:
    r"""`token_log_probs` of the linear head ``x @ w.T + bias`` without ever forming its
    (N, V) logits: the tokens are walked ``chunk_size`` rows at a time, so at most a
    (chunk, V) block of logits exists, and the backward pass recomputes each chunk's logits
    and forms dx, dW and db from them (three matmuls per chunk).

    Exact gradients for ``x``, ``w`` and ``bias`` with any cotangent on each output (the
    log-probabilities, the entropy, the logsumexp); forward mode, ``jit``, ``vmap`` and
    Hessian-vector products work as for the rest of the library. 16-bit inputs run their
    matmuls in that dtype with float32 accumulation (see `jaxloss.linear_cross_entropy`) and
    their statistics in float32.

    Sharded inputs: on an Explicit mesh it runs per device in the layout the shardings
    describe, as `jaxloss.linear_cross_entropy` does (tokens split, the vocabulary split with
    one O(N) reduction per statistic, both, or FSDP); inside ``shard_map`` use
    `jaxloss.parallel.linear_log_probs`.

    Args:
      x: ``(..., D)`` hidden states (leading axes are tokens).
      w: ``(V, D)`` head weight (torch's Linear layout).
      labels: integer tokens of ``x.shape[:-1]``.
      bias: optional ``(V,)`` head bias.
      temperature: T > 0 dividing the (soft-capped) logits.
      softcap: c > 0 of Gemma 2's soft-capping, applied before the temperature, or None.
      class_mask: optional boolean ``(V,)``: the vocabulary entries in the softmax.
      valid_vocab_size: optional K: only the first K entries (a head padded to a multiple of
        128); give this or ``class_mask``.
      ignore_index: a label value whose positions return 0 (None: none).
      where: optional boolean mask of ``labels.shape``.
      with_entropy: also return the entropy.
      with_logsumexp: also return the logsumexp.
      with_log_sum_sq_probs: also return log Σ p² (TRL's ``log_sum_sq_probs``, which
        `jaxloss.wpo_weights` takes).
      chunk_size: rows per chunk (a Python int >= 1).

    Returns:
      As `token_log_probs`.

    Examples:
      >>> x = jax.random.normal(jax.random.key(0), (6, 16))
      >>> w = jax.random.normal(jax.random.key(1), (50, 16)) * 0.1
      >>> labels = jnp.array([3, 7, 0, 49, 12, -100])
      >>> fused = jaxloss.linear_log_probs(x, w, labels, chunk_size=4)
      >>> bool(jnp.allclose(fused, jaxloss.token_log_probs(x @ w.T, labels), atol=1e-6))
      True
    """
    fn = "linear_log_probs"
    x, w, y = checks.linear_head(fn, x, w, labels, "none", chunk_size)
    num_classes = w.shape[0]
    bias = checks.head_bias(fn, bias, num_classes)
    checks.head_options(fn, 0.0, 0.0, softcap)
    arrays = HeadArrays(
        bias=bias,
        class_mask=checks.vocabulary_mask(fn, class_mask, valid_vocab_size, num_classes),
        where=checks.where_mask(fn, where, y.shape, "one value per token"),
    )
    extras = stats_extras(fn, with_entropy, with_logsumexp, with_log_sum_sq_probs)
    options = HeadStatsOptions(temperature, softcap, ignore_index, extras, chunk_size)
    per_device = functools.partial(head_log_probs, fn, options=options)
    if has_explicit_axes(x) or has_explicit_axes(w):

        def out_spec(token_spec) -> Any:
            return result_specs(P(*token_spec), extras)

        return run_on_explicit_mesh(fn, per_device, x, w, y, arrays, out_spec)
    return per_device(x, w, y, arrays)


# ------------------------------------------------------------------- per-sequence reductions


class SequenceSums(NamedTuple):
    """Per sequence: ``sums`` of the values over its counted tokens and ``counts`` of those
    tokens (float, the values' dtype)."""

    sums: jax.Array
    counts: jax.Array


def _segments(fn, segment_ids, num_segments, shape):
    """Checked packed-sequence ids of `shape` (0: padding, 1..S: the sequences of a row, each
    one contiguous run): each token's membership (..., T, S) and, per row and sequence, whether
    it is well formed (..., S) (a sequence split into several runs, or an id outside [0, S],
    is not: an error when concrete, nan under jit)."""
    ids = checks.int_array(fn, "segment_ids", segment_ids)
    if ids.shape != tuple(shape):
        raise ValueError(
            f"{fn}: `segment_ids` must have the values' shape {list(shape)}; got {list(ids.shape)}."
        )
    if not isinstance(num_segments, int) or isinstance(num_segments, bool) or num_segments < 1:
        raise ValueError(
            f"{fn}: with `segment_ids`, `num_segments` (the most sequences a row holds, a "
            f"Python int >= 1, for static shapes) is required; got {num_segments!r}."
        )
    in_range = (ids >= 0) & (ids <= num_segments)
    checks.value_check(
        fn,
        in_range,
        f"`segment_ids` must be in [0, {num_segments}] (0 is padding); found {{}}.",
        checks.first_violation(ids, in_range),
    )
    # A sequence is one contiguous run when its last position - its first + 1 is its number
    # of tokens (reductions only: no shifted copy, which a token axis split over a mesh
    # cannot slice).
    segment = jnp.arange(1, num_segments + 1, dtype=ids.dtype)
    member = ids[..., None] == segment  # (..., T, S)
    position = jnp.arange(ids.shape[-1], dtype=jnp.int32)[:, None]
    first = jnp.min(jnp.where(member, position, ids.shape[-1]), axis=-2)
    last = jnp.max(jnp.where(member, position, -1), axis=-2)
    tokens = jnp.sum(member, axis=-2, dtype=jnp.int32)
    contiguous = (tokens == 0) | (last - first + 1 == tokens)
    checks.value_check(
        fn,
        contiguous,
        "each sequence of `segment_ids` must be one contiguous run of tokens; sequence {} "
        "of a row is split.",
        checks.first_violation(jnp.broadcast_to(segment, contiguous.shape), contiguous),
    )
    well_formed = contiguous & jnp.all(in_range, axis=-1, keepdims=True)
    return member, well_formed


def sequence_sums(
    values: ArrayLike,
    *,
    where: ArrayLike | None = None,
    segment_ids: ArrayLike | None = None,
    num_segments: int | None = None,
    axis_name: Any = None,
) -> SequenceSums:
    r"""Per-sequence sums of per-token values (log-probabilities, losses, KL terms) and token
    counts, over padded or packed batches, with static shapes.

    - Padded: ``values (..., T)``, one sequence per row, ``where`` marks its tokens; the
      result is ``(...,)``.
    - Packed (MaxText's, Tunix's and Levanter's layout): ``segment_ids (..., T)`` number the
      sequences of each row 1..S (0 is padding), each one contiguous run of tokens; the
      result is ``(..., S)`` with ``S = num_segments``, and a sequence absent from a row sums
      to 0 over 0 tokens. ``where`` further masks tokens (a prompt, say).

    Sums run over the whole token axis: on an Explicit mesh that splits the tokens, XLA sums
    across the shards; inside ``shard_map`` with the tokens split over a mesh axis, give it as
    ``axis_name`` and the sums and counts are psummed, so every device has the global ones.

    Args:
      values: float ``(..., T)`` per-token values.
      where: optional boolean ``(..., T)``: the tokens that count.
      segment_ids: optional integer ``(..., T)``: packed sequences' ids (0: padding).
      num_segments: with ``segment_ids``, S: the most sequences a row holds (a Python int).
      axis_name: inside ``shard_map``, the mesh axis (or axes) the tokens are split over.

    Returns:
      `SequenceSums` ``(sums, counts)``, each ``(...,)`` or ``(..., S)``. A row whose
      ``segment_ids`` are malformed raises when concrete and gives nan under ``jit``.

    Examples:
      >>> log_probs = jnp.array([[-1.0, -2.0, -0.5, 0.0]])
      >>> packed = jnp.array([[1, 1, 2, 0]])  # two sequences, then padding
      >>> sums, counts = jaxloss.sequence_sums(log_probs, segment_ids=packed, num_segments=2)
      >>> sums, counts
      (Array([[-3. , -0.5]], dtype=float32), Array([[2., 1.]], dtype=float32))
    """
    fn = "sequence_sums"
    x = checks.float_array(fn, "values", values)
    if x.ndim < 1:
        raise ValueError(f"{fn}: `values` must be (..., T) per-token values; got a scalar.")
    mask = checks.where_mask(fn, where, x.shape, "one value per token")
    counted = jnp.ones(x.shape, bool) if mask is None else mask
    if segment_ids is None:
        if num_segments is not None:
            raise ValueError(f"{fn}: `num_segments` is for packed sequences (`segment_ids`).")
        zero = jnp.zeros((), x.dtype)
        sums = jnp.sum(jnp.where(counted, x, zero), axis=-1)
        counts = jnp.sum(counted, axis=-1).astype(x.dtype)
    else:
        member, well_formed = _segments(fn, segment_ids, num_segments, x.shape)
        member = member & counted[..., None]
        zero = jnp.zeros((), x.dtype)
        sums = jnp.sum(jnp.where(member, x[..., None], zero), axis=-2)
        counts = jnp.sum(member, axis=-2).astype(x.dtype)
        sums = jnp.where(well_formed, sums, jnp.nan)
    if axis_name is not None:
        sums, counts = lax.psum((sums, counts), axis_name)
    return SequenceSums(sums, counts)


SequenceReduction = Literal["sum", "mean", "fixed"]


def sequence_reduce(
    values: ArrayLike,
    *,
    reduction: SequenceReduction = "sum",
    normalizer: float | None = None,
    where: ArrayLike | None = None,
    segment_ids: ArrayLike | None = None,
    num_segments: int | None = None,
    axis_name: Any = None,
) -> jax.Array:
    r"""One value per sequence from per-token values (`sequence_sums`' layouts):

    - ``"sum"``: $\sum_t v_t$ (DPO's sequence log-probability);
    - ``"mean"``: $\frac{1}{|y|}\sum_t v_t$, the length-normalised form (SimPO's average
      log-probability, IPO's, GRPO's per-sequence mean); a sequence without tokens gives 0;
    - ``"fixed"``: $\frac{1}{L}\sum_t v_t$ with a constant ``normalizer`` L (Dr. GRPO's
      maximum completion length), the same for every sequence.

    The token counts are the global ones on a split token axis (see `sequence_sums`), so a
    sharded mean is never a mean of per-shard means.

    Args:
      values: float ``(..., T)`` per-token values.
      reduction: ``"sum"``, ``"mean"`` or ``"fixed"``.
      normalizer: L > 0 for ``"fixed"`` (only there).
      where: optional boolean ``(..., T)``: the tokens that count.
      segment_ids: optional integer ``(..., T)``: packed sequences' ids (0: padding).
      num_segments: with ``segment_ids``, the most sequences a row holds.
      axis_name: inside ``shard_map``, the mesh axis the tokens are split over.

    Returns:
      ``(...,)``, or ``(..., S)`` with ``segment_ids``.

    Examples:
      >>> log_probs = jnp.array([[-1.0, -2.0, -0.5, 0.0]])
      >>> mask = jnp.array([[True, True, True, False]])
      >>> jaxloss.sequence_reduce(log_probs, reduction="mean", where=mask)
      Array([-1.1666666], dtype=float32)
    """
    fn = "sequence_reduce"
    if reduction not in ("sum", "mean", "fixed"):
        raise ValueError(f"{fn}: `reduction` must be 'sum', 'mean' or 'fixed'; got {reduction!r}.")
    if (reduction == "fixed") != (normalizer is not None):
        raise ValueError(
            f"{fn}: `normalizer` is required with reduction='fixed' and only there; got "
            f"reduction={reduction!r}, normalizer={normalizer!r}."
        )
    if normalizer is not None:
        checks.python_number(fn, "normalizer", normalizer, low=0.0, low_inclusive=False)
    sums, counts = sequence_sums(
        values,
        where=where,
        segment_ids=segment_ids,
        num_segments=num_segments,
        axis_name=axis_name,
    )
    if reduction == "sum":
        return sums
    if reduction == "fixed":
        return sums / jnp.asarray(normalizer, sums.dtype)
    return sums / jnp.maximum(counts, 1)  # no tokens: a sum of 0 over 0 tokens is 0


# ------------------------------------------------------------------------------ distillation

DistillReduction = Literal["none", "mean", "sum"]


def distillation_loss(
    student_logits: ArrayLike,
    teacher_logits: ArrayLike,
    labels: ArrayLike | None = None,
    *,
    divergence: Divergence = "jsd",
    beta: float = 0.5,
    temperature: float = 1.0,
    weight_soft: float = 1.0,
    weight_hard: float = 0.0,
    ignore_index: int | None = -100,
    where: ArrayLike | None = None,
    class_mask: ArrayLike | None = None,
    valid_vocab_size: int | None = None,
    stop_teacher_gradient: bool = True,
    reduction: DistillReduction = "mean",
) -> jax.Array:
    r"""Distillation of a student's next-token distribution towards a teacher's, per token,
    from their logits ``(..., V)``: ``weight_soft`` times a divergence of
    $p_S = \mathrm{softmax}(z_S/T)$ from $p_T = \mathrm{softmax}(z_T/T)$, plus
    ``weight_hard`` times the cross-entropy of the student's unscaled logits against
    ``labels``:

    - ``"forward_kl"``: $\mathrm{KL}(p_T\,\|\,p_S)$ (mass-covering);
    - ``"reverse_kl"``: $\mathrm{KL}(p_S\,\|\,p_T)$ (mode-seeking);
    - ``"jsd"``: the generalized Jensen–Shannon divergence of GKD, TRL and Liger-Kernel,
      $\beta\,\mathrm{KL}(p_T\|m) + (1-\beta)\,\mathrm{KL}(p_S\|m)$ with
      $m = (1-\beta)p_S + \beta p_T$; ``beta=0`` is the forward KL and ``beta=1`` the reverse
      KL (the formula's own limits there are 0, so the ends are those KLs, as in TRL);
    - ``"cosine"``: Liger's $\beta\,(1 - \cos(z_S, z_T))$ of the logit vectors.

    No $T^2$ factor is applied (TRL's and Liger's convention; multiply by $T^2$ for Hinton's).
    The teacher's gradient is stopped unless ``stop_teacher_gradient=False``.

    Args:
      student_logits: float ``(..., V)``.
      teacher_logits: float ``(..., V)``, the student's shape.
      labels: optional integer tokens of the leading shape: positions equal to
        ``ignore_index`` do not count, and the hard term's targets.
      divergence: ``"forward_kl"``, ``"reverse_kl"``, ``"jsd"`` or ``"cosine"``.
      beta: β in [0, 1] of ``"jsd"``; the scale (>= 0) of ``"cosine"``.
      temperature: T > 0 dividing both logits in the soft term.
      weight_soft: the soft term's weight >= 0.
      weight_hard: the hard term's weight >= 0 (needs ``labels``).
      ignore_index: the label value of positions that do not count.
      where: optional boolean mask of the positions that count.
      class_mask: optional boolean ``(V,)``: the vocabulary entries in both softmaxes.
      valid_vocab_size: optional K: only the first K entries (give this or ``class_mask``).
      stop_teacher_gradient: no gradient to the teacher's logits (the default).
      reduction: ``'none'`` (per position), ``'mean'`` (over the positions that count, as
        TRL's ``batchmean`` and Liger) or ``'sum'``.

    Returns:
      A scalar, or with ``'none'`` the leading shape; float32 for 16-bit logits.

    Examples:
      >>> student = jnp.array([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]])
      >>> teacher = jnp.array([[1.5, 1.0, -2.0], [0.0, 0.5, 0.4]])
      >>> jaxloss.distillation_loss(student, teacher, divergence="forward_kl", reduction="none")
      Array([0.10996..., 0.01245...], dtype=float32)
    """
    fn = "distillation_loss"
    z_s = checks.float_array(fn, "student_logits", student_logits)
    z_t = checks.float_array(fn, "teacher_logits", teacher_logits)
    checks.shapes_equal(fn, "student_logits", z_s, "teacher_logits", z_t)
    if z_s.ndim < 1:
        raise ValueError(f"{fn}: `student_logits` must be (..., V); got a scalar.")
    options = distill_options(
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
    )
    num_classes = z_s.shape[-1]
    mask = checks.vocabulary_mask(
        fn, class_mask, valid_vocab_size, num_classes, " (V = student_logits.shape[-1])"
    )
    tokens = z_s.shape[:-1]
    where = checks.where_mask(fn, where, tokens, "one value per token")
    y = None if labels is None else token_labels(fn, labels, tokens)
    targets, bad = distill_targets(
        fn, tokens, y, where, options, mask, z_s.dtype, local_width=num_classes
    )
    rows = logit_distillation_rows(
        z_s.reshape(-1, num_classes),
        z_t.reshape(-1, num_classes),
        targets,
        settings=options.settings,
    )
    return reduce_rows(rows, targets.valid, bad, tokens, reduction)


def linear_distillation_loss(
    x_student: ArrayLike,
    w_student: ArrayLike,
    x_teacher: ArrayLike,
    w_teacher: ArrayLike,
    labels: ArrayLike | None = None,
    *,
    bias_student: ArrayLike | None = None,
    bias_teacher: ArrayLike | None = None,
    divergence: Divergence = "jsd",
    beta: float = 0.5,
    temperature: float = 1.0,
    weight_soft: float = 1.0,
    weight_hard: float = 0.0,
    ignore_index: int | None = -100,
    where: ArrayLike | None = None,
    class_mask: ArrayLike | None = None,
    valid_vocab_size: int | None = None,
    stop_teacher_gradient: bool = True,
    reduction: DistillReduction = "mean",
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> jax.Array:
    r"""`distillation_loss` of two linear heads, student ``x_student @ w_student.T +
    bias_student`` and teacher ``x_teacher @ w_teacher.T + bias_teacher``, without ever forming
    either's (N, V) logits: the tokens are walked ``chunk_size`` rows at a time (Liger-Kernel's
    ``LigerFusedLinearJSDLoss`` and cosine loss, for every divergence here). For 'mean' and
    'sum' the walk forms each chunk's gradients as it forms its logits, so nothing is
    recomputed; for 'none' the backward pass recomputes each chunk's two logit blocks.

    The two heads share the vocabulary V and may have different hidden sizes. Gradients flow
    to the student's ``x``, ``w`` and bias, and with ``stop_teacher_gradient=False`` to the
    teacher's as well; forward mode and Hessians work. 16-bit inputs run their matmuls in that
    dtype with float32 accumulation and the divergence in float32.

    Sharded inputs: on an Explicit mesh it runs per device in the layout the student's
    shardings describe, as `jaxloss.linear_log_probs` does (tokens split, the vocabulary split,
    both, or FSDP; 'mean' over the global count); inside ``shard_map`` use
    `jaxloss.parallel.linear_distillation_loss`.

    Args:
      x_student: ``(..., D_s)`` student hidden states.
      w_student: ``(V, D_s)`` student head.
      x_teacher: ``(..., D_t)`` teacher hidden states, the same tokens.
      w_teacher: ``(V, D_t)`` teacher head.
      labels: optional integer tokens of ``x_student.shape[:-1]`` (as in
        `distillation_loss`).
      bias_student: optional ``(V,)``.
      bias_teacher: optional ``(V,)``.
      divergence: as in `distillation_loss`.
      beta: as in `distillation_loss`.
      temperature: as in `distillation_loss`.
      weight_soft: as in `distillation_loss`.
      weight_hard: as in `distillation_loss`.
      ignore_index: as in `distillation_loss`.
      where: as in `distillation_loss`.
      class_mask: as in `distillation_loss`.
      valid_vocab_size: as in `distillation_loss`.
      stop_teacher_gradient: as in `distillation_loss`.
      reduction: as in `distillation_loss`.
      chunk_size: rows per chunk (a Python int >= 1).

    Returns:
      As `distillation_loss`.

    Examples:
      >>> x_s = jax.random.normal(jax.random.key(0), (6, 8))
      >>> w_s = jax.random.normal(jax.random.key(1), (50, 8)) * 0.3
      >>> x_t = jax.random.normal(jax.random.key(2), (6, 16))
      >>> w_t = jax.random.normal(jax.random.key(3), (50, 16)) * 0.3
      >>> fused = jaxloss.linear_distillation_loss(x_s, w_s, x_t, w_t, chunk_size=4)
      >>> naive = jaxloss.distillation_loss(x_s @ w_s.T, x_t @ w_t.T)
      >>> bool(jnp.allclose(fused, naive, rtol=1e-5))
      True
    """
    fn = "linear_distillation_loss"
    x_s, w_s, x_t, w_t = checks.two_heads(
        fn, x_student, w_student, x_teacher, w_teacher, chunk_size
    )
    options = distill_options(
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
        chunk_size,
    )
    num_classes = w_s.shape[0]
    tokens = x_s.shape[:-1]
    arrays = DistillArrays(
        x_teacher=x_t,
        w_teacher=w_t,
        bias=checks.head_bias(fn, bias_student, num_classes),
        bias_teacher=checks.head_bias(fn, bias_teacher, num_classes),
        class_mask=checks.vocabulary_mask(fn, class_mask, valid_vocab_size, num_classes),
        where=checks.where_mask(fn, where, tokens, "one value per token"),
    )
    y = None if labels is None else token_labels(fn, labels, tokens)
    per_device = functools.partial(head_distillation, fn, options=options)
    if any(has_explicit_axes(a) for a in (x_s, w_s, y, *arrays) if a is not None):
        out_spec = (lambda token_spec: P(*token_spec)) if reduction == "none" else (lambda _: P())
        return run_on_explicit_mesh(
            fn, per_device, x_s, w_s, y, arrays, out_spec, per_class=DISTILL_PER_CLASS
        )
    return per_device(x_s, w_s, y, arrays)
