"""Sequence criteria: CTC (Connectionist Temporal Classification).

The forward (alpha) and backward (beta) recursions run in log space over the label sequence
extended with blanks. Blank states (even positions of the extended sequence) and label states
(odd positions) are kept as separate arrays, so a step is a few elementwise log-sum-exps with no
gathers. A ``jax.custom_jvp`` computes alpha and beta together in *one* ``lax.scan`` over time
(alpha walks t = 0..T-1 while beta walks T-1..0), which halves the serial length of
forward+backward compared with autodiff through the alpha scan, and forms the gradient in bulk
afterwards; its tangent is that gradient's inner product with the inputs' tangent, so forward
and reverse mode both work. A plain (undifferentiated) call runs alpha only.

float32 accuracy: log-values in the recursions are (whole, fraction) pairs, the whole part
an integer added exactly (see `_split`), and each frame's occupancies are normalised to sum to
1, which cancels the rounding common to a frame's states. Against a float64 reference the
float32 gradient's error is within about 1.3x of optax's (autodiff through its alpha scan),
from 2x to 11x before, for about a quarter more time (tests/test_sequence.py, the README).
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

from . import _checks, _sharding
from ._labels import pick_along_axis
from ._precision import dtypes
from ._reduction import Reduction, finish, reduce_loss

_SCAN_UNROLL = 1  # unrolling measured slower on XLA:CPU (it defeats fusion in the loop body)


# "log 0" as a large finite number: the log-sum-exps then need no -inf special cases (fewer
# operations in the serial loop); a log-probability below _IMPOSSIBLE at the end is -inf.
_LOG_ZERO = -1e30
_IMPOSSIBLE = -1e29


# Log-probabilities in the recursions are pairs (whole, fraction): log x = whole + fraction,
# `whole` an integer (held in the float dtype, so "log 0" needs no special case) and
# `fraction` O(1), in [-1/2, 1/2] once normalised. A plain float log-value far from 0 is
# rounded at ulp(|log x|), a relative error of about 1e-6 in x at |log x| = 30 in float32; in
# the pair every operation rounds only the O(1) fraction, and the whole parts add and
# subtract exactly. This is what brings the float32 gradient to about the accuracy of autodiff
# through a log-space scan while alpha and beta still share one scan.


def _split(log_values):
    """(whole, fraction) of float log-values, "log 0" for -inf (nan stays in the fraction)."""
    clipped = jnp.maximum(log_values, _LOG_ZERO)
    whole = jnp.round(clipped)
    return whole, clipped - whole


def _normalised(whole, fraction):
    """Moves the integer part of `fraction` into `whole` (exact), keeping "log 0" bounded."""
    carry = jnp.round(fraction)
    return jnp.maximum(whole + carry, _LOG_ZERO), fraction - carry


def _log_sum(*terms):
    """log Σ exp over (whole, fraction) terms, as (largest whole part, unnormalised fraction).
    Relative to the largest whole part the top term's exponent is its O(1) fraction and the
    others' are below it plus 1, so no further max is needed."""
    top = functools.reduce(jnp.maximum, [whole for whole, _ in terms])
    total = sum(jnp.exp((whole - top) + fraction) for whole, fraction in terms)
    return top, jnp.log(total)


def _plus(a, b):
    """The product of two probabilities: log values (whole, fraction) added, normalised."""
    return _normalised(a[0] + b[0], a[1] + b[1])


def _shift_right(x, fill):
    """x[..., j-1] at position j (fill at j = 0)."""
    pad = jnp.full_like(x[..., :1], fill)  # *_like: keeps x's sharding (Explicit meshes)
    return jnp.concatenate([pad, x[..., :-1]], axis=-1)


def _shift_left(x, fill):
    """x[..., j+1] at position j (fill at the last position)."""
    pad = jnp.full_like(x[..., :1], fill)
    return jnp.concatenate([x[..., 1:], pad], axis=-1)


def _log_softmax_shift(inputs):
    """log Σ_k exp(inputs[..., k]) as a (whole, fraction) pair (B, T, 1): subtracted from
    the inputs' own pairs it gives the log-softmax with the fraction's precision, where a
    plain float32 log-prob of -8 is rounded at 4.8e-7."""
    top = jnp.max(inputs, axis=2, keepdims=True)
    top_whole, top_fraction = _split(top)
    log_total = jnp.log(jnp.sum(jnp.exp(inputs - top), axis=2, keepdims=True))
    return _normalised(top_whole, top_fraction + log_total)


def _log_softmax(scores, shift):
    """The log-softmax of `scores` as a pair, given their rows' `_log_softmax_shift` (None:
    the scores are log-probabilities already)."""
    if shift is None:
        return _split(scores)
    whole, fraction = _split(scores)
    return _normalised(whole - shift[0], fraction - shift[1])


def _emissions(inputs, shift, labels, input_lengths, blank):
    """Time-major emission log-probs as (whole, fraction) pairs: blank (T, B, 1) and each label
    position (T, B, S), from the inputs and their `_log_softmax_shift` (or None).

    Frames past a sequence's length emit blank with log-prob 0 and labels never: a beta step
    from its virtual end state then returns that same state, so beta needs no per-step
    restart, and alpha, which is not read past L-1, is unaffected where it matters.
    """
    # Gathering in the batch-major layout, then transposing the result, measured 3x faster
    # than gathering from a transposed copy.
    label_scores = jnp.take_along_axis(inputs, labels[:, None, :], axis=2)
    blank_scores = inputs[:, :, blank : blank + 1]
    lp_label, lp_blank = _log_softmax(label_scores, shift), _log_softmax(blank_scores, shift)
    past_end = (jnp.arange(inputs.shape[1])[None, :] >= input_lengths[:, None])[:, :, None]
    zero = jnp.zeros((), inputs.dtype)
    lp_blank = (jnp.where(past_end, zero, lp_blank[0]), jnp.where(past_end, zero, lp_blank[1]))
    lp_label = (jnp.where(past_end, _LOG_ZERO, lp_label[0]), lp_label[1])
    return tuple(
        (jnp.swapaxes(whole, 0, 1), jnp.swapaxes(fraction, 0, 1))
        for whole, fraction in (lp_blank, lp_label)
    )


def _at(pair, index):
    return pair[0][index], pair[1][index]


def _recursions(
    lp_blank, lp_label, labels, input_lengths, label_lengths, *, with_beta
) -> tuple[Any, Any]:
    """Runs alpha (and beta) in one scan over time, on (whole, fraction) log-values.

    Returns alpha at each row's last frame t = L-1, emission included, as ``(blank, label)``
    pairs of (B, S+1) and (B, S) arrays (kept in the carry as the scan passes that frame, so
    nothing is gathered from a stack), and, with `with_beta`, the time-major stacks ``(alpha,
    beta)``: alpha's (T, B, ...) holding the states *before* frame t's emission (the occupancy
    alpha·beta/emission then needs no subtraction of a log-probability), beta's including it
    and in *reversed* time (index i holds t = T-1-i; the consumer reverses them inside its own
    fusion instead of copying).
    Blank state j is extended position 2j, label state j is position 2j+1.
    """
    num_steps, _, width = lp_label[0].shape
    dtype = lp_label[0].dtype
    zero = jnp.zeros((), dtype)
    log_zero = jnp.full((), _LOG_ZERO, dtype)
    # A label may also be entered from the label before it, unless the two are equal
    # (then a blank must separate them).
    # Constants shaped like the batch are made *_like a batch array, so that they carry its
    # sharding (Explicit meshes reject mixing a replicated constant with a sharded array).
    can_skip = jnp.concatenate(
        [jnp.zeros_like(labels[:, : min(width, 1)], bool), labels[:, 1:] != labels[:, :-1]],
        axis=1,
    )
    skip_mask = jnp.where(can_skip, zero, log_zero)  # (B, S): 0 where allowed
    skip_next = _shift_left(skip_mask, _LOG_ZERO)  # skip_mask[j+1] at j
    first_blank = lp_blank[0][0]  # (B, 1)
    no_state = (jnp.full_like(first_blank, _LOG_ZERO), jnp.zeros_like(first_blank))

    def joined(a, b):
        return jnp.concatenate([a[0], b[0]], axis=1), jnp.concatenate([a[1], b[1]], axis=1)

    def alpha_step_before_emission(alpha):
        a_blank, a_label = alpha
        new_blank = _log_sum(a_blank, joined(no_state, a_label))
        skipped = (_shift_right(a_label[0], _LOG_ZERO) + skip_mask, _shift_right(a_label[1], 0))
        new_label = _log_sum(a_label, (a_blank[0][:, :-1], a_blank[1][:, :-1]), skipped)
        return new_blank, new_label

    def beta_step(beta, emit_blank, emit_label):
        b_blank, b_label = beta
        new_blank = _log_sum(b_blank, joined(b_label, no_state))
        skipped = (_shift_left(b_label[0], _LOG_ZERO) + skip_next, _shift_left(b_label[1], 0))
        new_label = _log_sum(b_label, (b_blank[0][:, 1:], b_blank[1][:, 1:]), skipped)
        return _plus(new_blank, emit_blank), _plus(new_label, emit_label)

    # Virtual states one step outside the sequence: stepping alpha from "before t=0" gives
    # alpha_0 (blank 0 and label 0 only); stepping beta from "after t=L-1" gives beta_{L-1}
    # (last blank and last label only).
    blank_positions = jnp.arange(width + 1)[None, :]
    first_position = jnp.zeros_like(label_lengths)[:, None]
    start_blank = jnp.where(blank_positions == first_position, zero, log_zero)
    no_blanks = jnp.zeros_like(start_blank)
    no_labels = (jnp.full_like(skip_mask, _LOG_ZERO), jnp.zeros_like(skip_mask))
    alpha_start = ((start_blank, no_blanks), no_labels)
    beta_end = (
        (jnp.where(blank_positions == label_lengths[:, None], zero, log_zero), no_blanks),
        no_labels,
    )

    last_frame = jnp.maximum(input_lengths - 1, 0)[:, None]  # (B, 1)

    def body(carry, step_inputs):
        alpha, beta, end = carry
        t, emit_blank, emit_label = step_inputs
        before = alpha_step_before_emission(alpha)
        alpha = (_plus(before[0], emit_blank), _plus(before[1], emit_label))
        at_end = t == last_frame
        end = jax.tree.map(lambda new, old: jnp.where(at_end, new, old), alpha, end)
        if not with_beta:
            return (alpha, beta, end), None
        t_back = num_steps - 1 - t
        beta = beta_step(beta, _at(lp_blank, t_back), _at(lp_label, t_back))
        return (alpha, beta, end), (before, beta)

    step_inputs = (jnp.arange(num_steps), lp_blank, lp_label)
    start = (alpha_start, beta_end, alpha_start)
    (_, _, end), stacks = lax.scan(body, start, step_inputs, unroll=_SCAN_UNROLL)
    return end, stacks


def _nll_from_alpha(end, input_lengths, label_lengths):
    """-log p(labels | inputs) per sequence (inf when no alignment exists), from alpha at
    each row's last frame: its last blank or its last label."""
    end_blank_states, end_label_states = end
    end_blank = tuple(pick_along_axis(part, label_lengths, 1) for part in end_blank_states)
    if end_label_states[0].shape[1]:
        last = jnp.maximum(label_lengths - 1, 0)
        whole, fraction = (pick_along_axis(part, last, 1) for part in end_label_states)
        end_label = (jnp.where(label_lengths > 0, whole, _LOG_ZERO), fraction)
    else:
        end_label = (jnp.full_like(end_blank[0], _LOG_ZERO), end_blank[1])
    whole, fraction = _normalised(*_log_sum(end_blank, end_label))
    # No frames at all: the empty labelling has probability 1, any other 0.
    no_frames = input_lengths == 0
    whole = jnp.where(no_frames, jnp.where(label_lengths == 0, 0.0, _LOG_ZERO), whole)
    fraction = jnp.where(no_frames, 0.0, fraction)
    return jnp.where(whole < _IMPOSSIBLE, jnp.inf, 0.0 - (whole + fraction))  # 0, not -0


@functools.partial(jax.custom_jvp, nondiff_argnums=(4, 5, 6))
def _ctc_nll_with_derivatives(
    inputs, labels, input_lengths, label_lengths, blank, zero_infinity, from_logits
):
    shift = _log_softmax_shift(inputs) if from_logits else None
    lp_blank, lp_label = _emissions(inputs, shift, labels, input_lengths, blank)
    end, _ = _recursions(lp_blank, lp_label, labels, input_lengths, label_lengths, with_beta=False)
    return _nll_from_alpha(end, input_lengths, label_lengths)


def _ctc_nll_fwd(inputs, labels, input_lengths, label_lengths, blank, zero_infinity, from_logits):
    shift = _log_softmax_shift(inputs) if from_logits else None
    lp_blank, lp_label = _emissions(inputs, shift, labels, input_lengths, blank)
    end, (alpha, beta) = _recursions(
        lp_blank, lp_label, labels, input_lengths, label_lengths, with_beta=True
    )
    nll = _nll_from_alpha(end, input_lengths, label_lengths)
    probabilities = jnp.exp(jax.nn.log_softmax(inputs, axis=-1) if from_logits else inputs)
    return nll, (probabilities, labels, input_lengths, alpha, beta, nll)


def _ctc_grad(blank, zero_infinity, from_logits, residuals, nll_cotangent):
    """torch's gradient: exp(lp) - posterior occupancy of each class, for t < L; 0 beyond.

    The occupancy of extended position s at time t is alpha·beta/y·(1/p); summed over the
    positions holding class c it is the gradient of -log p w.r.t. the pre-softmax activations
    (the logits). torch returns it as the gradient w.r.t. `log_probs`, which passes unchanged
    through log_softmax's backward because it sums to zero over the classes; with
    `from_logits` it is therefore returned directly, saving that pass.
    An impossible alignment (nll = inf) gets nan, as in torch, or 0 with `zero_infinity`.
    """
    probabilities, labels, input_lengths, alpha, beta_reversed, nll = residuals
    _, num_steps, num_classes = probabilities.shape
    impossible = jnp.isposinf(nll)
    # Occupancy of each state: alpha·beta/emission, normalised over the states of its frame
    # (they sum to 1 at every t < L) rather than divided by the final p, which cancels the
    # rounding common to a frame's states. The whole parts add exactly; relative to the
    # frame's largest, every exponent is O(1) for the states that matter.
    (blank_whole, blank_fraction), (label_whole, label_fraction) = (
        (a[0] + b[0][::-1], a[1] + b[1][::-1]) for a, b in zip(alpha, beta_reversed)
    )  # (T, B, S+1) and (T, B, S)
    top = jnp.max(blank_whole, axis=2, keepdims=True)
    if label_whole.shape[2]:
        top = jnp.maximum(top, jnp.max(label_whole, axis=2, keepdims=True))
    blank_weight = jnp.sum(jnp.exp((blank_whole - top) + blank_fraction), axis=2)  # (T, B)
    # Positions past a row's label length have beta = "log 0", hence zero weight.
    label_weight = jnp.exp((label_whole - top) + label_fraction)
    frame_total = blank_weight + jnp.sum(label_weight, axis=2)
    occupancy_blank = blank_weight / frame_total
    occupancy_label = label_weight / frame_total[:, :, None]

    def per_sequence(occupancy, sequence_labels, blank_occupancy):
        # Scatter-add onto the classes: measured faster than a one-hot matmul.
        per_class = jnp.zeros((num_steps, num_classes), occupancy.dtype)
        per_class = per_class.at[:, sequence_labels].add(occupancy)
        return per_class.at[:, blank].add(blank_occupancy)

    occupancy = jax.vmap(per_sequence, in_axes=(1, 0, 1))(
        occupancy_label, labels, occupancy_blank
    )  # (B, T, K)
    grad = (probabilities - occupancy) * nll_cotangent[:, None, None]
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
    safe_labels = jnp.where(used & valid, y, 0).astype(jnp.int32)
    safe_labels, in_len, lab_len = _sharding.batch_like(x, safe_labels, in_len, lab_len)
    nll = _ctc_nll(
        x,
        safe_labels,
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
