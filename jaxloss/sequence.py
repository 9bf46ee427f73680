"""Sequence criteria: CTC (Connectionist Temporal Classification).

The forward (alpha) and backward (beta) recursions run in log space over the label sequence
extended with blanks. Blank states (even positions of the extended sequence) and label states
(odd positions) are kept as separate arrays, so a step is a few elementwise log-sum-exps with no
gathers. A ``jax.custom_jvp`` computes alpha and beta together in *one* ``lax.scan`` over time
(alpha walks t = 0..T-1 while beta walks T-1..0), which halves the serial length of
forward+backward compared with autodiff through the alpha scan, and forms the gradient in bulk
afterwards; its tangent is that gradient's inner product with the inputs' tangent, so forward
and reverse mode both work. A plain (undifferentiated) call runs alpha only.

float32 accuracy: both recursions are shifted by an integer every step (`_rescaled`), so the
stored log-states stay O(1), and each frame's occupancies are normalised to sum to 1, which
cancels the rounding alpha and beta accumulate over time. Against a float64 reference this
brought the float32 gradient's error from 4.7e-6 to 1.7e-7 (relative, in norm) at about 8%
more time; optax's (autodiff through its alpha scan) is 9.6e-8 on the same inputs.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.custom_derivatives import SymbolicZero
from jax.typing import ArrayLike

from . import _checks
from ._precision import dtypes
from ._reduction import Reduction, finish, reduce_loss

_SCAN_UNROLL = 1  # unrolling measured slower on XLA:CPU (it defeats fusion in the loop body)


# "log 0" as a large finite number: the log-sum-exps then need no -inf special cases (fewer
# operations in the serial loop); a log-probability below _IMPOSSIBLE at the end is -inf.
_LOG_ZERO = -1e30
_IMPOSSIBLE = -1e29


def _lse2(a, b):
    m = jnp.maximum(a, b)
    return m + jnp.log(jnp.exp(a - m) + jnp.exp(b - m))


def _lse3(a, b, c):
    m = jnp.maximum(jnp.maximum(a, b), c)
    return m + jnp.log(jnp.exp(a - m) + jnp.exp(b - m) + jnp.exp(c - m))


def _shift_right(x, fill):
    """x[..., j-1] at position j (fill at j = 0)."""
    pad = jnp.full(x.shape[:-1] + (1,), fill, x.dtype)
    return jnp.concatenate([pad, x[..., :-1]], axis=-1)


def _shift_left(x, fill):
    """x[..., j+1] at position j (fill at the last position)."""
    pad = jnp.full(x.shape[:-1] + (1,), fill, x.dtype)
    return jnp.concatenate([x[..., 1:], pad], axis=-1)


def _emissions(log_probs, labels, input_lengths, blank):
    """Time-major emission log-probs: blank (T, B, 1) and each label position (T, B, S).

    Clamped at _LOG_ZERO so that -inf log-probs stay finite in the recursions. Frames past a
    sequence's length emit blank with log-prob 0 and labels never: a beta step from its
    virtual end state then returns that same state, so beta needs no per-step restart, and
    alpha, which is not read past L-1, is unaffected where it matters.
    """
    # Gathering in the batch-major layout, then transposing the result, measured 3x faster
    # than gathering from a transposed copy of the log-probs.
    lp_label = jnp.swapaxes(jnp.take_along_axis(log_probs, labels[:, None, :], axis=2), 0, 1)
    lp_blank = jnp.swapaxes(log_probs[:, :, blank : blank + 1], 0, 1)
    past_end = (jnp.arange(log_probs.shape[1])[:, None] >= input_lengths[None, :])[:, :, None]
    zero = jnp.zeros((), log_probs.dtype)
    lp_blank = jnp.where(past_end, zero, jnp.maximum(lp_blank, _LOG_ZERO))
    lp_label = jnp.where(past_end, _LOG_ZERO, jnp.maximum(lp_label, _LOG_ZERO))
    return lp_blank, lp_label


def _rescaled(states, offset):
    """Shifts log-states by the integer k = floor(max blank state), so that they stay O(1),
    and adds k to the running integer `offset` (B,). The stored states then keep float32's
    relative precision instead of ulp(|log alpha|) (about 4e-6 at |log alpha| = 50), and the
    offsets, being integers, add up exactly. The blanks' max alone sets k (one reduction per
    step in the serial loop): label states are normally within a few units of their blanks,
    and where they are not, only precision is lost, never correctness. Rows with no
    reachable blank state keep k = 0."""
    blank, label = states
    top = jnp.max(blank, axis=1)
    k = jnp.where(top > _IMPOSSIBLE, jnp.floor(top), jnp.zeros((), top.dtype))
    return (blank - k[:, None], label - k[:, None]), offset + k.astype(jnp.int32)


def _recursions(lp_blank, lp_label, labels, label_lengths, *, with_beta) -> Any:
    """Runs alpha (and beta) in one scan over time.

    Returns time-major stacks ``(alpha_blank (T,B,S+1), alpha_label (T,B,S), alpha_offset
    (T,B))`` and, with `with_beta`, ``(beta_blank, beta_label, beta_offset)`` in *reversed*
    time (index i holds t = T-1-i; the consumer reverses them inside its own fusion instead of
    copying). log alpha_t = alpha_blank/label[t] + alpha_offset[t] (an int32) + the emission
    at t, which the alpha stacks leave out (the occupancy alpha·beta/emission then needs no
    subtraction of a large log-probability); log beta_t = beta_blank/label[t] +
    beta_offset[t], emission included (see `_rescaled`). Blank state j is extended position
    2j, label state j is position 2j+1.
    """
    num_steps, batch, width = lp_label.shape
    dtype = lp_label.dtype
    zero = jnp.zeros((), dtype)
    log_zero = jnp.full((), _LOG_ZERO, dtype)
    # A label may also be entered from the label before it, unless the two are equal
    # (then a blank must separate them).
    can_skip = jnp.concatenate(
        [jnp.zeros((batch, min(width, 1)), bool), labels[:, 1:] != labels[:, :-1]], axis=1
    )
    skip_mask = jnp.where(can_skip, zero, log_zero)  # (B, S): 0 where allowed
    skip_next = _shift_left(skip_mask, _LOG_ZERO)  # skip_mask[j+1] at j
    no_label = jnp.full((batch, 1), _LOG_ZERO, dtype)

    def alpha_step_before_emission(alpha):
        a_blank, a_label = alpha
        new_blank = _lse2(a_blank, jnp.concatenate([no_label, a_label], axis=1))
        new_label = _lse3(a_label, a_blank[:, :-1], _shift_right(a_label, _LOG_ZERO) + skip_mask)
        return new_blank, new_label

    def beta_step(beta, emit_blank, emit_label):
        b_blank, b_label = beta
        new_blank = _lse2(b_blank, jnp.concatenate([b_label, no_label], axis=1)) + emit_blank
        new_label = (
            _lse3(b_label, b_blank[:, 1:], _shift_left(b_label, _LOG_ZERO) + skip_next) + emit_label
        )
        return new_blank, new_label

    # Virtual states one step outside the sequence: stepping alpha from "before t=0" gives
    # alpha_0 (blank 0 and label 0 only); stepping beta from "after t=L-1" gives beta_{L-1}
    # (last blank and last label only).
    blank_positions = jnp.arange(width + 1)[None, :]
    no_labels = jnp.full((batch, width), _LOG_ZERO, dtype)
    alpha_start = (
        jnp.where(blank_positions == 0, zero, jnp.broadcast_to(log_zero, (batch, 1))),
        no_labels,
    )
    beta_end = (jnp.where(blank_positions == label_lengths[:, None], zero, log_zero), no_labels)

    def body(carry, step_inputs):
        alpha, alpha_offset, beta, beta_offset = carry
        t, emit_blank, emit_label = step_inputs
        before, alpha_offset = _rescaled(alpha_step_before_emission(alpha), alpha_offset)
        alpha = (before[0] + emit_blank, before[1] + emit_label)
        if not with_beta:
            return (alpha, alpha_offset, beta, beta_offset), (*before, alpha_offset)
        t_back = num_steps - 1 - t
        beta = beta_step(
            beta,
            lax.dynamic_index_in_dim(lp_blank, t_back, keepdims=False),
            lax.dynamic_index_in_dim(lp_label, t_back, keepdims=False),
        )
        beta, beta_offset = _rescaled(beta, beta_offset)
        carry = (alpha, alpha_offset, beta, beta_offset)
        return carry, (*before, alpha_offset, *beta, beta_offset)

    no_offset = jnp.zeros((batch,), jnp.int32)
    start = (alpha_start, no_offset, beta_end, no_offset)
    step_inputs = (jnp.arange(num_steps), lp_blank, lp_label)
    _, stacks = lax.scan(body, start, step_inputs, unroll=_SCAN_UNROLL)
    return stacks


def _nll_from_alpha(
    alpha_blank, alpha_label, alpha_offset, lp_blank, lp_label, input_lengths, label_lengths
):
    """-log p(labels | inputs) per sequence (inf when no alignment exists): alpha at t = L-1
    in the last blank or the last label, with its emission and offset added back."""
    batch = alpha_blank.shape[1]
    rows = jnp.arange(batch)
    t_last = jnp.maximum(input_lengths - 1, 0)
    end_blank = alpha_blank[t_last, rows, label_lengths] + lp_blank[t_last, rows, 0]
    if alpha_label.shape[2]:
        last = jnp.maximum(label_lengths - 1, 0)
        end_label = alpha_label[t_last, rows, last] + lp_label[t_last, rows, last]
        end_label = jnp.where(label_lengths > 0, end_label, _LOG_ZERO)
    else:
        end_label = jnp.full_like(end_blank, _LOG_ZERO)
    log_p = _lse2(end_blank, end_label)
    # No frames at all: the empty labelling has probability 1, any other 0.
    no_frames = input_lengths == 0
    log_p = jnp.where(no_frames, jnp.where(label_lengths == 0, 0.0, _LOG_ZERO), log_p)
    offset = jnp.where(no_frames, 0, alpha_offset[t_last, rows]).astype(log_p.dtype)
    return jnp.where(log_p < _IMPOSSIBLE, jnp.inf, -(log_p + offset))


@functools.partial(jax.custom_jvp, nondiff_argnums=(4, 5, 6))
def _ctc_nll_with_derivatives(
    inputs, labels, input_lengths, label_lengths, blank, zero_infinity, from_logits
):
    log_probs = jax.nn.log_softmax(inputs, axis=-1) if from_logits else inputs
    lp_blank, lp_label = _emissions(log_probs, labels, input_lengths, blank)
    alpha_blank, alpha_label, alpha_offset = _recursions(
        lp_blank, lp_label, labels, label_lengths, with_beta=False
    )
    return _nll_from_alpha(
        alpha_blank, alpha_label, alpha_offset, lp_blank, lp_label, input_lengths, label_lengths
    )


def _ctc_nll_fwd(inputs, labels, input_lengths, label_lengths, blank, zero_infinity, from_logits):
    log_probs = jax.nn.log_softmax(inputs, axis=-1) if from_logits else inputs
    lp_blank, lp_label = _emissions(log_probs, labels, input_lengths, blank)
    stacks = _recursions(lp_blank, lp_label, labels, label_lengths, with_beta=True)
    alpha_blank, alpha_label, alpha_offset = stacks[:3]
    nll = _nll_from_alpha(
        alpha_blank, alpha_label, alpha_offset, lp_blank, lp_label, input_lengths, label_lengths
    )
    return nll, (log_probs, labels, input_lengths, label_lengths, lp_blank, lp_label, stacks, nll)


def _ctc_grad(blank, zero_infinity, from_logits, residuals, nll_cotangent):
    """torch's gradient: exp(lp) - posterior occupancy of each class, for t < L; 0 beyond.

    The occupancy of extended position s at time t is alpha·beta/y·(1/p); summed over the
    positions holding class c it is the gradient of -log p w.r.t. the pre-softmax activations
    (the logits). torch returns it as the gradient w.r.t. `log_probs`, which passes unchanged
    through log_softmax's backward because it sums to zero over the classes; with
    `from_logits` it is therefore returned directly, saving that pass.
    An impossible alignment (nll = inf) gets nan, as in torch, or 0 with `zero_infinity`.
    """
    log_probs, labels, input_lengths, _, _, _, stacks, nll = residuals
    alpha_blank, alpha_label, _, beta_blank_rev, beta_label_rev, _ = stacks
    _, num_steps, num_classes = log_probs.shape
    impossible = jnp.isposinf(nll)
    # Occupancy of each state: alpha·beta/emission, normalised over the states of its frame
    # (they sum to 1 at every t < L). Normalising per frame, not by the final p, cancels the
    # rounding that alpha and beta accumulate over time (common to a frame's states) and the
    # offsets of `_rescaled` alike, so only O(1) float32 numbers are ever added.
    z_blank = alpha_blank + beta_blank_rev[::-1]  # (T, B, S+1); alpha without its emission
    z_label = alpha_label + beta_label_rev[::-1]  # (T, B, S)
    top = jnp.max(z_blank, axis=2, keepdims=True)
    if z_label.shape[2]:
        top = jnp.maximum(top, jnp.max(z_label, axis=2, keepdims=True))
    frame_total = jnp.sum(jnp.exp(z_blank - top), axis=2, keepdims=True) + jnp.sum(
        jnp.exp(z_label - top), axis=2, keepdims=True
    )
    log_norm = top + jnp.log(frame_total)
    occupancy_blank = jnp.sum(jnp.exp(z_blank - log_norm), axis=2)  # (T, B)
    # Positions past a row's label length have beta = "log 0", hence zero occupancy.
    occupancy_label = jnp.exp(z_label - log_norm)

    def per_sequence(occupancy, sequence_labels, blank_occupancy):
        # Scatter-add onto the classes: measured faster than a one-hot matmul.
        per_class = jnp.zeros((num_steps, num_classes), occupancy.dtype)
        per_class = per_class.at[:, sequence_labels].add(occupancy)
        return per_class.at[:, blank].add(blank_occupancy)

    occupancy = jax.vmap(per_sequence, in_axes=(1, 0, 1))(
        occupancy_label, labels, occupancy_blank
    )  # (B, T, K)
    grad = (jnp.exp(log_probs) - occupancy) * nll_cotangent[:, None, None]
    inside = jnp.arange(num_steps)[None, :] < input_lengths[:, None]  # (B, T)
    if zero_infinity:
        grad = jnp.where(impossible[:, None, None], jnp.zeros((), grad.dtype), grad)
    else:
        grad = jnp.where(impossible[:, None, None], jnp.full((), jnp.nan, grad.dtype), grad)
    # A NaN loss (a NaN log-prob on a path) makes its whole sequence's gradient NaN, as in
    # torch, also for the classes the labels never use.
    grad = jnp.where(jnp.isnan(nll)[:, None, None], jnp.full((), jnp.nan, grad.dtype), grad)
    return jnp.where(inside[:, :, None], grad, jnp.zeros((), grad.dtype))


def _ctc_nll_jvp(blank, zero_infinity, from_logits, primals, tangents):
    """The gradient of each sequence's loss is formed in the forward pass (alpha and beta in
    one scan, then the bulk occupancy); the tangent is its inner product with the inputs'
    tangent, which reverse mode transposes into a scaling by the cotangent. So forward mode,
    jacobians and hessians work, and reverse mode does what a hand-written backward would."""
    inputs, labels, input_lengths, label_lengths = primals
    nll, residuals = _ctc_nll_fwd(
        inputs, labels, input_lengths, label_lengths, blank, zero_infinity, from_logits
    )
    grad = _ctc_grad(blank, zero_infinity, from_logits, residuals, jnp.ones_like(nll))
    t_inputs = tangents[0]
    if isinstance(t_inputs, SymbolicZero):
        return nll, jnp.zeros_like(nll)
    return nll, jnp.sum(grad * t_inputs.astype(grad.dtype), axis=(1, 2))


_ctc_nll_with_derivatives.defjvp(_ctc_nll_jvp, symbolic_zeros=True)


@functools.partial(jax.jit, static_argnames=("blank", "zero_infinity", "from_logits"))
def _ctc_nll(
    inputs,
    labels,
    input_lengths,
    label_lengths,
    *,
    blank: int,
    zero_infinity: bool,
    from_logits: bool,
) -> jax.Array:
    """-log p(labels | inputs) per sequence (B,), with the one-scan alpha+beta gradient.

    Jitted so that eager calls compile the scans once per shape (not on every call); inside a
    user's jit it simply inlines.
    """
    return jnp.asarray(
        _ctc_nll_with_derivatives(
            inputs, labels, input_lengths, label_lengths, blank, zero_infinity, from_logits
        )
    )


def _lengths(fn, name, lengths, paddings, padding_name, batch, full):
    """Per-row lengths from `lengths` (B,) or from trailing `paddings` (B, full), 1 = padding."""
    if lengths is not None and paddings is not None:
        raise ValueError(f"{fn}: give `{name}` or `{padding_name}`, not both.")
    if paddings is not None:
        pad = _checks.as_array(fn, padding_name, paddings)
        if pad.shape != (batch, full):
            raise ValueError(
                f"{fn}: `{padding_name}` must have shape [{batch}, {full}]; got {list(pad.shape)}."
            )
        pad = pad.astype(bool) if pad.dtype != bool else pad
        _checks.value_check(
            fn,
            jnp.all(pad[:, 1:] >= pad[:, :-1]),
            f"`{padding_name}` must mark trailing padding (0...0 then 1...1) in every row.",
        )
        return (full - jnp.sum(pad, axis=1)).astype(jnp.int32)
    if lengths is None:
        return jnp.full((batch,), full, jnp.int32)
    lengths = _checks.int_array(fn, name, lengths)
    if lengths.shape != (batch,):
        raise ValueError(
            f"{fn}: `{name}` must hold one length per sequence, shape [{batch}]; "
            f"got {list(lengths.shape)}."
        )
    _checks.value_check(
        fn,
        (lengths >= 0) & (lengths <= full),
        f"every entry of `{name}` must be in [0, {full}]; found {{}}.",
        _checks.first_violation(lengths, (lengths >= 0) & (lengths <= full)),
    )
    return lengths.astype(jnp.int32)


def ctc_loss(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    input_lengths: ArrayLike | None = None,
    label_lengths: ArrayLike | None = None,
    logit_paddings: ArrayLike | None = None,
    label_paddings: ArrayLike | None = None,
    blank: int = 0,
    from_logits: bool = True,
    zero_infinity: bool = False,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> jax.Array:
    r"""Connectionist Temporal Classification loss, $-\log p(\text{labels}\mid x)$.

    $p$ sums, over every alignment of the T frames to the labels (labels in order, each
    repeated, blanks anywhere, a blank required between two equal labels), the product of
    the per-frame probabilities. Computed in log space; exact to torch's ``ctc_loss``.

    Args:
      logits: ``(B, T, K)`` scores, batch-major, or ``(T, K)`` for one sequence. With
        ``from_logits=True`` a log-softmax over K is applied; with ``from_logits=False`` they
        are taken as log-probabilities as they are (torch's convention: its gradient assumes
        they came from a log-softmax).
      labels: ``(B, S)`` integer labels padded to a common S (``(S,)`` unbatched); must not
        contain ``blank``.
      input_lengths: valid frames per sequence ``(B,)``. Default: all T.
      label_lengths: valid labels per sequence ``(B,)``. Default: all S.
      logit_paddings: instead of ``input_lengths``, trailing paddings ``(B, T)`` (1 =
        padding, optax's convention).
      label_paddings: instead of ``label_lengths``, trailing paddings ``(B, S)``.
      blank: the blank class, in ``[0, K)``.
      from_logits: apply a log-softmax over K first (otherwise ``logits`` are taken as
        log-probabilities).
      zero_infinity: give impossible alignments (a loss of inf, e.g. labels needing more
        frames than there are) a loss of 0 and a zero gradient, as torch does.
      where: ``(B,)`` mask of sequences to count.
      reduction: ``'none'``, ``'sum'``, or ``'mean'``, which divides each loss by its label
        length (clamped at 1) and averages over the batch, as torch does.

    Returns:
      ``'none'``: one loss per sequence ``(B,)`` (``()`` unbatched; inf for an impossible
      alignment unless ``zero_infinity``); ``'mean'``/``'sum'``: a scalar.

    Example:
      >>> logits = jax.random.normal(jax.random.key(0), (2, 50, 20))
      >>> labels = jnp.array([[1, 2, 2, 3], [4, 5, 0, 0]])
      >>> loss = jaxloss.ctc_loss(logits, labels, label_lengths=jnp.array([4, 2]))
      >>> loss.shape, bool(loss > 0)
      ((), True)
    """
    fn = "ctc_loss"
    x = _checks.float_array(fn, "logits", logits)
    y = _checks.int_array(fn, "labels", labels)
    _checks.reduction(fn, reduction)
    if x.ndim not in (2, 3):
        raise ValueError(
            f"{fn}: `logits` must be (B, T, K) or unbatched (T, K); got shape {list(x.shape)}."
        )
    unbatched = x.ndim == 2
    if unbatched:
        if y.ndim != 1:
            raise ValueError(
                f"{fn}: with unbatched (T, K) `logits`, `labels` must be (S,); got "
                f"shape {list(y.shape)}."
            )
        x, y = x[None], y[None]
        input_lengths = (
            None
            if input_lengths is None
            else jnp.reshape(_checks.int_array(fn, "input_lengths", input_lengths), (1,))
        )
        label_lengths = (
            None
            if label_lengths is None
            else jnp.reshape(_checks.int_array(fn, "label_lengths", label_lengths), (1,))
        )
        logit_paddings, label_paddings = (
            None if p is None else jnp.reshape(jnp.asarray(p), (1, -1))
            for p in (logit_paddings, label_paddings)
        )
    batch, num_steps, num_classes = x.shape
    if y.ndim != 2 or y.shape[0] != batch:
        raise ValueError(
            f"{fn}: `labels` must be (B, S) = [{batch}, S] padded labels; got "
            f"shape {list(y.shape)}."
        )
    if (
        not isinstance(blank, (int, np.integer))
        or isinstance(blank, bool)
        or not (0 <= blank < num_classes)
    ):
        raise ValueError(
            f"{fn}: `blank` must be a class index in [0, {num_classes}); got {blank!r}."
        )
    width = y.shape[1]
    in_len = _lengths(
        fn, "input_lengths", input_lengths, logit_paddings, "logit_paddings", batch, num_steps
    )
    lab_len = _lengths(
        fn, "label_lengths", label_lengths, label_paddings, "label_paddings", batch, width
    )
    used = jnp.arange(width)[None, :] < lab_len[:, None]
    valid = ~used | ((y >= 0) & (y < num_classes) & (y != blank))
    _checks.value_check(
        fn,
        valid,
        f"every label in `labels` must be a class in [0, {num_classes}) other than "
        f"the blank ({blank}); found {{}}.",
        _checks.first_violation(y, valid),
    )
    where = None if where is None else _checks.where_mask(fn, where, (batch,), "sequences")

    result_dtype, compute = dtypes(x)
    x = x.astype(compute)
    safe_labels = jnp.where(used & valid, y, 0)
    nll = _ctc_nll(
        x,
        safe_labels.astype(jnp.int32),
        in_len,
        lab_len,
        blank=blank,
        zero_infinity=bool(zero_infinity),
        from_logits=bool(from_logits),
    )
    # Under jit an invalid label cannot raise: its sequence's loss is nan, never a number.
    nll = jnp.where(jnp.all(valid, axis=1), nll, jnp.nan)
    if zero_infinity:
        nll = jnp.where(jnp.isposinf(nll), jnp.zeros((), nll.dtype), nll)
    if reduction == "mean":
        nll = nll / jnp.maximum(lab_len, 1).astype(compute)
    loss = reduce_loss(nll, reduction, where=where)
    if unbatched and reduction == "none":
        loss = loss[0]
    return finish(loss, result_dtype)
