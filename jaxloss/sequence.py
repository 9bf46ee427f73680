"""Sequence criteria: CTC (Connectionist Temporal Classification).

The forward (alpha) and backward (beta) recursions run over the label sequence extended with
blanks. Blank states (even positions of the extended sequence) and label states (odd
positions) are kept as separate arrays, so a step is a few elementwise sums and products with
no gathers. A ``jax.custom_jvp`` computes alpha and beta together in *one* ``lax.scan`` over
time (alpha walks t = 0..T-1 while beta walks T-1..0), which halves the serial length of
forward+backward compared with autodiff through the alpha scan, and forms the gradient in bulk
afterwards; its tangent is that gradient's inner product with the inputs' tangent, so forward
and reverse mode both work. A plain (undifferentiated) call runs alpha only.

Precision: the recursions hold probabilities as a float mantissa beside an exact power-of-two
exponent (see `_scaled_sum`), not as log-probabilities, so no exp or log is in the serial loop
and a state's rounding does not grow with |log alpha|. Against a float64 reference the float32
gradient's error is a few roundings (about 1e-7 relative), 25 to 320 times below optax's
log-space scan in float32 (tests/test_sequence.py, docs/sequence.md).
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

from ._core import checks, sharding
from ._core.class_inputs import pick_along_axis
from ._core.precision import dtypes
from ._core.reduction import Reduction, finish, reduce_loss

# The public functions, in the order their docs page lists them (jaxloss and the
# page read this list).
__all__ = [
    "ctc_loss",
]

_SCAN_UNROLL = 1  # 2 measured 2.4x slower at (16, 200, 32, 50): wider bodies, the same carry copies


# "log 0" as a large finite number: no -inf special cases (fewer operations in the serial
# loop); a log-probability (or power-of-two exponent) below _IMPOSSIBLE is zero probability.
_LOG_ZERO = -1e30
_IMPOSSIBLE = -1e29


# The emissions' log-probabilities are formed as pairs (whole, fraction): log x = whole +
# fraction, `whole` an integer held in the float dtype and `fraction` in [-1/2, 1/2], so a
# log-prob of -8 is not rounded at ulp(8) (4.8e-7 in float32) but at the fraction's ulp.
#
# The recursions themselves run on probabilities as (mantissa, exponent) pairs, x = m * 2**e:
# `m` a float of order 1 and `e` an integer held in the float dtype, "log 0" for zero. Scaling
# by a power of two is exact, so a step rounds only in its two or three products and sums; no
# exp or log is in the serial loop, and the range is that of `e`, not of the float (a plain
# float32 probability underflows after a few dozen frames). This puts the float32 gradient at
# least at the accuracy of autodiff through a log-space scan, at a fraction of its time.


def _float_layout(dtype):
    """(mantissa bits, exponent bias, same-width integer type) of a float dtype."""
    info = jnp.finfo(dtype)
    return info.nmant, info.maxexp - 1, jnp.int32 if info.bits == 32 else jnp.int64


def _pow2(k):
    """2**k, exactly, for integer-valued float k (0 below the normal range)."""
    nmant, bias, int_type = _float_layout(k.dtype)
    exponent = jnp.clip(k, -bias, bias).astype(int_type)
    return lax.bitcast_convert_type((exponent + bias) << nmant, k.dtype)


def _renormalised(m, e):
    """(m, e) with m moved into [1, 2) exactly (its own exponent moved into e); m > 0. A NaN
    stays NaN, and a zero's exponent stays "log 0"."""
    nmant, bias, int_type = _float_layout(m.dtype)
    bits = lax.bitcast_convert_type(m, int_type)
    own_exponent = ((bits >> nmant) - bias).astype(m.dtype)  # m > 0: no sign bit
    unit = lax.bitcast_convert_type((bits & ((1 << nmant) - 1)) | (bias << nmant), m.dtype)
    unit = jnp.where(m == m, unit, m)  # NaN: its bits would read as a number
    return unit, jnp.maximum(e + own_exponent, _LOG_ZERO)


def _scaled_sum(*terms):
    """Σ m·2**e over (m, e) terms, as (m, largest e): relative to the largest exponent every
    term scales by an exact power of two <= 1."""
    top = functools.reduce(jnp.maximum, [e for _, e in terms])
    return sum(m * _pow2(e - top) for m, e in terms), top


def _scaled_times(a, b):
    """The product of two (m, e) values, renormalised."""
    return _renormalised(a[0] * b[0], a[1] + b[1])


def _scaled_from_log(pair):
    """exp of a (whole, fraction) log-value as (m, e): e the nearest power of two, m =
    exp(the remainder) in [0.7, 1.42]; the remainder is formed with ln 2 in two parts (the
    first exact in products with e), so it is accurate to the fraction's precision."""
    whole, fraction = pair
    dtype = whole.dtype
    ln2_high = 0.693359375  # 9 significant bits
    ln2_low = jnp.asarray(np.log(2.0) - ln2_high, dtype)
    e = jnp.round((whole + fraction) * jnp.asarray(1 / np.log(2.0), dtype))
    m = jnp.exp(((whole - e * ln2_high) - e * ln2_low) + fraction)
    zero = whole < _IMPOSSIBLE
    return jnp.where(zero, jnp.ones((), dtype), m), jnp.where(zero, _LOG_ZERO, e)


def _log_of_scaled(value):
    """log(m·2**e) as a float: e·ln 2 in two parts, the exact first one added last."""
    m, e = value
    ln2_low = jnp.asarray(np.log(2.0) - 0.693359375, m.dtype)
    return e * 0.693359375 + (e * ln2_low + jnp.log(m))


def _split(log_values):
    """(whole, fraction) of float log-values, "log 0" for -inf (nan stays in the fraction)."""
    clipped = jnp.maximum(log_values, _LOG_ZERO)
    whole = jnp.round(clipped)
    return whole, clipped - whole


def _normalised(whole, fraction):
    """Moves the integer part of `fraction` into `whole` (exact), keeping "log 0" bounded."""
    carry = jnp.round(fraction)
    return jnp.maximum(whole + carry, _LOG_ZERO), fraction - carry


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
    """Time-major emission probabilities as (m, e) values: blank (T, B, 1) and each label
    position (T, B, S), from the inputs and their `_log_softmax_shift` (or None).

    Frames past a sequence's length emit blank with probability 1 and labels never, so past
    L-1 only the last blank stays possible and holds p: `_occupancies` then starts every row
    at frame T-1, and alpha, read at L-1 for the loss, is unaffected.
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
        _scaled_from_log((jnp.swapaxes(whole, 0, 1), jnp.swapaxes(fraction, 0, 1)))
        for whole, fraction in (lp_blank, lp_label)
    )


def _recursions(emit_blank, emit_label, labels, label_lengths, *, with_beta) -> tuple[Any, Any]:
    """Runs alpha (and beta) in one scan over time, on (m, e) probabilities.

    Returns alpha after the last frame T-1 as ``(blank, label)`` values of (B, S+1) and
    (B, S): past a row's last frame L-1 its labels cannot be emitted (see `_emissions`), so
    its last blank gathers what its last blank and last label held at L-1, all of p, and
    keeps it (so p is read from the final carry, with no per-step bookkeeping); and, with
    `with_beta`, the time-major stacks ``(alpha, beta)``: alpha's (T, B, ...) holding the
    states *before* frame t's emission (so the occupancy alpha·beta/emission is a product),
    beta's including it and in *reversed* time (index i holds t = T-1-i; the consumer
    reverses them inside its own fusion instead of copying).
    Blank state j is extended position 2j, label state j is position 2j+1.
    """
    num_steps, _, width = emit_label[0].shape
    dtype = emit_label[0].dtype
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
    skip = jnp.where(can_skip, zero, log_zero)  # (B, S): an exponent, 0 where allowed
    skip_next = _shift_left(skip, _LOG_ZERO)  # skip[j+1] at j
    no_state = (jnp.ones_like(emit_blank[0][0]), jnp.full_like(emit_blank[1][0], _LOG_ZERO))

    def joined(*parts):
        return tuple(jnp.concatenate(halves, axis=1) for halves in zip(*parts))

    def alpha_step_before_emission(alpha):
        a_blank, a_label = alpha
        new_blank = _scaled_sum(a_blank, joined(no_state, a_label))
        skipped = (_shift_right(a_label[0], 1), _shift_right(a_label[1], _LOG_ZERO) + skip)
        new_label = _scaled_sum(a_label, (a_blank[0][:, :-1], a_blank[1][:, :-1]), skipped)
        return new_blank, new_label

    def beta_step(beta, blank_t, label_t):
        b_blank, b_label = beta
        new_blank = _scaled_sum(b_blank, joined(b_label, no_state))
        skipped = (_shift_left(b_label[0], 1), _shift_left(b_label[1], _LOG_ZERO) + skip_next)
        new_label = _scaled_sum(b_label, (b_blank[0][:, 1:], b_blank[1][:, 1:]), skipped)
        return _scaled_times(new_blank, blank_t), _scaled_times(new_label, label_t)

    # Virtual states one step outside the sequence: stepping alpha from "before t=0" gives
    # alpha_0 (blank 0 and label 0 only); stepping beta from "after t=T-1" gives beta_{T-1}
    # (last blank and last label only; past a row's L only its last blank is possible, see
    # `_emissions`, so beta reaches L-1 as if it had started there).
    positions = jnp.arange(width + 1)[None, :]

    def only_at(position):
        at = positions == position[:, None]
        return (jnp.ones_like(at, dtype), jnp.where(at, zero, log_zero))

    no_labels = (jnp.ones_like(skip), jnp.full_like(skip, _LOG_ZERO))
    alpha_start = (only_at(jnp.zeros_like(label_lengths)), no_labels)
    beta_end = (only_at(label_lengths), no_labels)

    def body(carry, step_inputs):
        alpha, beta = carry
        t, blank_t, label_t = step_inputs
        before = alpha_step_before_emission(alpha)
        alpha = (_scaled_times(before[0], blank_t), _scaled_times(before[1], label_t))
        if not with_beta:
            return (alpha, beta), None
        t_back = num_steps - 1 - t
        beta = beta_step(
            beta,
            tuple(part[t_back] for part in emit_blank),
            tuple(part[t_back] for part in emit_label),
        )
        return (alpha, beta), (before, beta)

    step_inputs = (jnp.arange(num_steps), emit_blank, emit_label)
    (end, _), stacks = lax.scan(body, (alpha_start, beta_end), step_inputs, unroll=_SCAN_UNROLL)
    return end, stacks


def _occupancies(alpha, beta_reversed):
    """Posterior occupancy of every state at every frame, (T, B, S+1) and (T, B, S):
    alpha·beta/emission, normalised over the states of its frame (they sum to 1 at every
    t < L) rather than divided by p, which cancels the rounding common to a frame's states.
    Relative to the frame's largest exponent every state scales by an exact power of two."""
    (blank_m, blank_e), (label_m, label_e) = (
        (a[0] * b[0][::-1], a[1] + b[1][::-1]) for a, b in zip(alpha, beta_reversed)
    )
    top = jnp.max(blank_e, axis=2, keepdims=True)
    if label_e.shape[2]:
        top = jnp.maximum(top, jnp.max(label_e, axis=2, keepdims=True))
    # Positions past a row's label length have beta = 0, hence zero weight.
    blank_weight = blank_m * _pow2(blank_e - top)
    label_weight = label_m * _pow2(label_e - top)
    frame_total = jnp.sum(blank_weight, axis=2, keepdims=True) + jnp.sum(
        label_weight, axis=2, keepdims=True
    )
    return blank_weight / frame_total, label_weight / frame_total


def _end_states(states, label_lengths):
    """The two states a labelling may end in, last blank and last label, as (B,) (m, e)
    values (zero for the label of an empty labelling)."""
    blank_states, label_states = states
    end_blank = tuple(pick_along_axis(part, label_lengths, 1) for part in blank_states)
    if label_states[0].shape[1]:
        last = jnp.maximum(label_lengths - 1, 0)
        m, e = (pick_along_axis(part, last, 1) for part in label_states)
        end_label = (m, jnp.where(label_lengths > 0, e, _LOG_ZERO))
    else:
        end_label = (jnp.ones_like(end_blank[0]), jnp.full_like(end_blank[1], _LOG_ZERO))
    return end_blank, end_label


def _nll_from_alpha(end, input_lengths, label_lengths):
    """-log p(labels | inputs) per sequence (inf when no alignment exists), from alpha after
    the last frame: its last blank and its last label (which holds mass only when the row
    has all T frames)."""
    p = _scaled_sum(*_end_states(end, label_lengths))
    # No frames at all: the empty labelling has probability 1, any other 0.
    no_frames = input_lengths == 0
    m = jnp.where(no_frames, 1.0, p[0])
    e = jnp.where(no_frames, jnp.where(label_lengths == 0, 0.0, _LOG_ZERO), p[1])
    return jnp.where(e < _IMPOSSIBLE, jnp.inf, 0.0 - _log_of_scaled((m, e)))  # 0, not -0


@functools.partial(jax.custom_jvp, nondiff_argnums=(4, 5, 6))
def _ctc_nll_with_derivatives(
    inputs, labels, input_lengths, label_lengths, blank, zero_infinity, from_logits
):
    shift = _log_softmax_shift(inputs) if from_logits else None
    emit_blank, emit_label = _emissions(inputs, shift, labels, input_lengths, blank)
    end, _ = _recursions(emit_blank, emit_label, labels, label_lengths, with_beta=False)
    return _nll_from_alpha(end, input_lengths, label_lengths)


def _ctc_nll_and_grad(
    inputs, labels, input_lengths, label_lengths, blank, zero_infinity, from_logits
):
    """-log p per sequence (B,) and its gradient w.r.t. `inputs` (B, T, K), torch's:
    exp(lp) - the posterior occupancy of each class, for t < L; 0 beyond.

    Summed over the states holding class c, the occupancy is the gradient of -log p w.r.t.
    the pre-softmax activations (the logits). torch returns it as the gradient w.r.t.
    `log_probs`, which passes unchanged through log_softmax's backward because it sums to
    zero over the classes; with `from_logits` it is therefore returned directly, saving that
    pass. An impossible alignment (nll = inf) gets nan, as in torch, or 0 with
    `zero_infinity`.
    """
    _, num_steps, num_classes = inputs.shape
    shift = _log_softmax_shift(inputs) if from_logits else None
    emit_blank, emit_label = _emissions(inputs, shift, labels, input_lengths, blank)
    end, (alpha, beta) = _recursions(emit_blank, emit_label, labels, label_lengths, with_beta=True)
    nll = _nll_from_alpha(end, input_lengths, label_lengths)
    occupancy_blank, occupancy_label = _occupancies(alpha, beta)  # (T, B, S+1), (T, B, S)
    occupancy_blank = jnp.sum(occupancy_blank, axis=2)  # all blank states hold one class

    def per_sequence(occupancy, sequence_labels, blank_occupancy):
        # Scatter-add onto the classes: measured faster than a one-hot matmul.
        per_class = jnp.zeros((num_steps, num_classes), occupancy.dtype)
        per_class = per_class.at[:, sequence_labels].add(occupancy)
        return per_class.at[:, blank].add(blank_occupancy)

    occupancy = jax.vmap(per_sequence, in_axes=(1, 0, 1))(
        occupancy_label, labels, occupancy_blank
    )  # (B, T, K)
    probabilities = jnp.exp(jax.nn.log_softmax(inputs, axis=-1) if from_logits else inputs)
    grad = probabilities - occupancy
    impossible = jnp.isposinf(nll)
    fill = jnp.zeros((), grad.dtype) if zero_infinity else jnp.full((), jnp.nan, grad.dtype)
    grad = jnp.where(impossible[:, None, None], fill, grad)
    # A NaN loss (a NaN log-prob on a path) makes its whole sequence's gradient NaN, as in
    # torch, also for the classes the labels never use.
    grad = jnp.where(jnp.isnan(nll)[:, None, None], jnp.full((), jnp.nan, grad.dtype), grad)
    inside = jnp.arange(num_steps)[None, :] < input_lengths[:, None]  # (B, T)
    return nll, jnp.where(inside[:, :, None], grad, jnp.zeros((), grad.dtype))


def _ctc_nll_jvp(blank, zero_infinity, from_logits, primals, tangents):
    """The gradient of each sequence's loss is formed in the forward pass (alpha and beta in
    one scan, then the bulk occupancy); the tangent is its inner product with the inputs'
    tangent, which reverse mode transposes into a scaling by the cotangent. So forward mode,
    jacobians and hessians work, and reverse mode does what a hand-written backward would."""
    inputs, labels, input_lengths, label_lengths = primals
    nll, grad = _ctc_nll_and_grad(
        inputs, labels, input_lengths, label_lengths, blank, zero_infinity, from_logits
    )
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
        pad = checks.as_array(fn, padding_name, paddings)
        if pad.shape != (batch, full):
            raise ValueError(
                f"{fn}: `{padding_name}` must have shape [{batch}, {full}]; got {list(pad.shape)}."
            )
        pad = pad.astype(bool) if pad.dtype != bool else pad
        checks.value_check(
            fn,
            jnp.all(pad[:, 1:] >= pad[:, :-1]),
            f"`{padding_name}` must mark trailing padding (0...0 then 1...1) in every row.",
        )
        return (full - jnp.sum(pad, axis=1)).astype(jnp.int32)
    if lengths is None:
        return jnp.full((batch,), full, jnp.int32)
    lengths = checks.int_array(fn, name, lengths)
    if lengths.shape != (batch,):
        raise ValueError(
            f"{fn}: `{name}` must hold one length per sequence, shape [{batch}]; "
            f"got {list(lengths.shape)}."
        )
    checks.value_check(
        fn,
        (lengths >= 0) & (lengths <= full),
        f"every entry of `{name}` must be in [0, {full}]; found {{}}.",
        checks.first_violation(lengths, (lengths >= 0) & (lengths <= full)),
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

    Examples:
      >>> logits = jax.random.normal(jax.random.key(0), (2, 50, 20))
      >>> labels = jnp.array([[1, 2, 2, 3], [4, 5, 0, 0]])
      >>> loss = jaxloss.ctc_loss(logits, labels, label_lengths=jnp.array([4, 2]))
      >>> loss.shape, bool(loss > 0)
      ((), True)
    """
    fn = "ctc_loss"
    x = checks.float_array(fn, "logits", logits)
    y = checks.int_array(fn, "labels", labels)
    checks.reduction(fn, reduction)
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
            else jnp.reshape(checks.int_array(fn, "input_lengths", input_lengths), (1,))
        )
        label_lengths = (
            None
            if label_lengths is None
            else jnp.reshape(checks.int_array(fn, "label_lengths", label_lengths), (1,))
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
    checks.value_check(
        fn,
        valid,
        f"every label in `labels` must be a class in [0, {num_classes}) other than "
        f"the blank ({blank}); found {{}}.",
        checks.first_violation(y, valid),
    )
    where = None if where is None else checks.where_mask(fn, where, (batch,), "sequences")

    result_dtype, compute = dtypes(x)
    x = x.astype(compute)
    safe_labels = jnp.where(used & valid, y, 0).astype(jnp.int32)
    safe_labels, in_len, lab_len = sharding.batch_like(x, safe_labels, in_len, lab_len)
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
