"""Sequence criteria: CTC (Connectionist Temporal Classification).

The forward (alpha) and backward (beta) recursions run over the label sequence extended with
blanks. Blank states (even positions of the extended sequence) and label states (odd
positions) are kept as separate arrays, so a step is a few elementwise sums and products with
no gathers. A plain (undifferentiated) call runs alpha only. A ``jax.custom_jvp`` forms the
gradient beside the loss: alpha and beta in *one* ``lax.scan`` over time (alpha walks t =
0..T-1 while beta walks T-1..0), or, when their states for every frame would not stay in
cache, in two passes over chunks of frames that keep them for a chunk only (see
`_class_occupancies`); its tangent is that gradient's inner product with the inputs' tangent,
so forward and reverse mode both work.

Precision: the recursions hold probabilities as a float mantissa beside an exact power-of-two
exponent (see `_scaled_sum`), not as log-probabilities, so no exp or log is in the serial loop
and a state's rounding does not grow with |log alpha|. Against a float64 reference the float32
gradient's error is a few roundings (about 1e-7 relative), 25 to 320 times below optax's
log-space scan in float32 (tests/test_sequence.py, docs/sequence.md).
"""

from __future__ import annotations

import dataclasses
import functools

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


def _shift_left(x, fill):
    """x[..., j+1] at position j (fill at the last position)."""
    pad = jnp.full_like(x[..., :1], fill)  # *_like: keeps x's sharding (Explicit meshes)
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


def _emissions(inputs, shift, labels, input_lengths, blank, layout):
    """Time-major emission probabilities as (m, e) values in the `layout`: blank (T, B, 1)
    and each label position (T, B, S), from the inputs and their `_log_softmax_shift` (or
    None).

    Frames past a sequence's length emit blank with probability 1 and labels never, so past
    L-1 only the last blank stays possible and holds p: beta then starts every row at frame
    T-1 (see `_starts`), and alpha, read at L-1 for the loss, is unaffected.
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
        layout.pack(_scaled_from_log((jnp.swapaxes(whole, 0, 1), jnp.swapaxes(fraction, 0, 1))))
        for whole, fraction in (lp_blank, lp_label)
    )


@dataclasses.dataclass(frozen=True)
class _Layout:
    """How the recursions hold a state's (m, e): as the pair of float arrays, or `packed`
    as one complex array m + e·i (complex64 for float32).

    Packed, a step forms each kind of state's mantissas and exponents in one kernel
    instead of two (which form their shared sum twice) and writes one array; XLA:CPU's
    cost model also runs the packed kernel on two threads where it runs the pair's on one.
    That pays for large steps and costs for small ones, where starting the second thread
    costs more than its share of the work (see `_PACKED_FROM_STATES`).
    """

    packed: bool

    def pack(self, value):
        return lax.complex(*value) if self.packed else tuple(value)

    def unpack(self, state):
        return (jnp.real(state), jnp.imag(state)) if self.packed else state

    def at(self, state, index):
        """The states at `index` (of the arrays' axes)."""
        return jax.tree.map(lambda part: part[index], state)

    def joined(self, first, second):
        """States joined along the state (last) axis."""
        return jax.tree.map(lambda a, b: jnp.concatenate([a, b], axis=-1), first, second)

    def zero(self, blank):
        """A zero probability shaped like the `blank` states (never empty: S+1 of them)
        with one state on the last axis."""
        like = self.unpack(blank)[0][..., :1]
        return self.pack((jnp.ones_like(like), jnp.full_like(like, _LOG_ZERO)))


def _alpha_transitions(alpha, skip, layout):
    """alpha's sums into every state of a frame, before its emission, as (m, e) values of
    the blank and the label states: a blank from itself and the label before it; a label
    from itself, the blank before it and, where `skip` allows, the label before it.
    `alpha` holds the states after the previous frame, with any leading axes."""
    blank, label = alpha
    label_before = layout.joined(layout.zero(blank), label)  # label j-1 at j
    into_blank = _scaled_sum(layout.unpack(blank), layout.unpack(label_before))
    m, e = layout.unpack(layout.at(label_before, (..., slice(None, -1))))
    into_label = _scaled_sum(
        layout.unpack(label),
        layout.unpack(layout.at(blank, (..., slice(None, -1)))),
        (m, e + skip),
    )
    return into_blank, into_label


def _beta_transitions(beta, skip_next, layout):
    """beta's sums, the mirror of `_alpha_transitions`: a blank from itself and the label
    after it; a label from itself, the blank after it and, where `skip_next` allows, the
    label after it."""
    blank, label = beta
    label_after = layout.joined(label, layout.zero(blank))  # label j at blank j
    into_blank = _scaled_sum(layout.unpack(blank), layout.unpack(label_after))
    m, e = layout.unpack(layout.at(label_after, (..., slice(1, None))))
    into_label = _scaled_sum(
        layout.unpack(label),
        layout.unpack(layout.at(blank, (..., slice(1, None)))),
        (m, e + skip_next),
    )
    return into_blank, into_label


def _emitted(states, emissions, layout):
    """(m, e) states times the frame's emission probabilities, in the layout."""
    return tuple(
        layout.pack(_scaled_times(state, layout.unpack(emission)))
        for state, emission in zip(states, emissions)
    )


def _skip_exponents(labels, dtype):
    """(skip, skip_next), (B, S) exponents: 0 where a label state may be entered from the
    label before it (alpha) or after it (beta), "log 0" where the two labels are equal (a
    blank must separate them)."""
    width = labels.shape[1]
    # Constants shaped like the batch are made *_like a batch array, so that they carry its
    # sharding (Explicit meshes reject mixing a replicated constant with a sharded array).
    can_skip = jnp.concatenate(
        [jnp.zeros_like(labels[:, : min(width, 1)], bool), labels[:, 1:] != labels[:, :-1]],
        axis=1,
    )
    skip = jnp.where(can_skip, jnp.zeros((), dtype), jnp.full((), _LOG_ZERO, dtype))
    return skip, _shift_left(skip, _LOG_ZERO)


def _starts(labels, label_lengths, dtype, layout):
    """The virtual states one step outside the sequence: stepping alpha from "before
    t=0" gives alpha_0 (blank 0 and label 0 only); stepping beta from "after the last
    frame" gives beta there (last blank and last label only; past a row's L only its last
    blank is possible, see `_emissions`, so beta reaches L-1 as if it had started there)."""
    positions = jnp.arange(labels.shape[1] + 1)[None, :]

    def only_at(position):
        at = positions == position[:, None]
        exponent = jnp.where(at, jnp.zeros((), dtype), jnp.full((), _LOG_ZERO, dtype))
        return layout.pack((jnp.ones_like(exponent), exponent))

    # *_like a batch array: constants shaped like the batch then carry its sharding
    # (Explicit meshes reject mixing a replicated constant with a sharded array).
    no_labels = layout.pack(
        (jnp.ones_like(labels, dtype), jnp.full_like(labels, _LOG_ZERO, dtype=dtype))
    )
    alpha_start = (only_at(jnp.zeros_like(label_lengths)), no_labels)
    beta_end = (only_at(label_lengths), no_labels)
    return alpha_start, beta_end


def _alpha(inputs, shift, labels, input_lengths, label_lengths, blank):
    """alpha after the last frame, ``(blank, label)`` (m, e) values of (B, S+1) and (B, S),
    by one scan over time. Past a row's last frame L-1 its labels cannot be emitted (see
    `_emissions`), so its last blank gathers what its last blank and last label held at
    L-1, all of p, and keeps it: p is read from the final carry, with no per-step
    bookkeeping. Blank state j is extended position 2j, label state j is position 2j+1."""
    layout, _ = _plan(inputs, labels.shape[1])
    emissions = _emissions(inputs, shift, labels, input_lengths, blank, layout)
    skip, _ = _skip_exponents(labels, inputs.dtype)
    alpha_start, _ = _starts(labels, label_lengths, inputs.dtype, layout)

    def step(alpha, frame_emissions):
        return _emitted(_alpha_transitions(alpha, skip, layout), frame_emissions, layout), None

    end, _ = lax.scan(step, alpha_start, emissions, unroll=_SCAN_UNROLL)
    return tuple(layout.unpack(state) for state in end)


# Where the layout and the passes change (see `_plan`), from float32 gradients of 8 shapes,
# (16, 200, 32, 50) to (64, 500, 100, 100) as (B, T, K, S), on a 2-core AMD EPYC: packed took
# 1.3x the pair's time at 816 states per frame, the same at 1632 in one chunk, 0.8x at
# 1616 in chunks and from 3264 on; chunks took 1.1 to 1.4x the one pass's time with 8 and
# 10 MB of states, 0.6 to 0.7x from 20 MB on.
_PACKED_FROM_STATES = 1024  # B·(S+1)
_CHUNKED_FROM_BYTES = 16 << 20  # alpha's and beta's states for every frame


def _plan(inputs, width):
    """(layout, (chunks, frames per chunk)) for (B, T, K) `inputs` and S = `width`.

    Packed (see `_Layout`) from `_PACKED_FROM_STATES` states per frame. The gradient runs
    in one chunk while alpha's and beta's states for every frame take less than
    `_CHUNKED_FROM_BYTES`; beyond, in about sqrt(T) chunks of about sqrt(T) frames, the
    fewest padding frames first (see `_class_occupancies`)."""
    batch, num_steps, _ = inputs.shape
    layout = _Layout(packed=batch * (width + 1) >= _PACKED_FROM_STATES)
    state_bytes = 2 * batch * (2 * width + 1) * 2 * inputs.dtype.itemsize  # alpha, beta: (m, e)
    if num_steps * state_bytes < _CHUNKED_FROM_BYTES:
        return layout, (1, num_steps)
    root = max(round(num_steps**0.5), 1)
    candidates = range(max(root // 2, 1), 2 * root + 1)
    size = min(candidates, key=lambda k: (-num_steps % k, abs(k - root)))
    return layout, (-(-num_steps // size), size)


def _chunk_emissions(inputs, shift, labels, input_lengths, blank, first, size, layout):
    """Time-major emissions (see `_emissions`) of frames first, ..., first+size-1:
    blank (size, B, 1) and labels (size, B, S). Frames at or past T (the last chunk's
    padding) emit as frames past a row's length do: blank with probability 1, labels
    never, which leaves alpha's readout and beta's start unchanged."""
    if size == inputs.shape[1]:  # one chunk
        return _emissions(inputs, shift, labels, input_lengths, blank, layout)
    frames = jnp.minimum(first + jnp.arange(size), inputs.shape[1] - 1)
    rows = jnp.take(inputs, frames, axis=1)
    rows_shift = None if shift is None else tuple(jnp.take(s, frames, axis=1) for s in shift)
    return _emissions(rows, rows_shift, labels, input_lengths - first, blank, layout)


def _class_occupancies(inputs, shift, labels, input_lengths, label_lengths, blank):
    """alpha after the last frame (as `_alpha`) and the posterior occupancy of each class
    at every frame, time-major (T, B, K): the sum of the occupancies of its states.

    In one chunk (see `_plan`), one scan runs alpha forward and beta backward together,
    keeping both for every frame, then forms the occupancies. In several, two passes over
    the chunks keep neither for every frame: the first runs beta back to the start and
    keeps only its state as each chunk's last frame will enter it; the second runs alpha
    forward and, at each chunk, beta again from that chunk's kept state beside it, keeping
    both for the chunk only, and forms the chunk's occupancies from its own emissions.
    Writing alpha, beta and the emissions out for every frame (at (64, 500, 100, 100), over
    100 MB of (m, e) pairs, eight times the inputs) took most of the gradient's time, more
    than the second beta costs: about 105 ms against 60 on a 2-core AMD EPYC.
    """
    batch, num_steps, num_classes = inputs.shape
    dtype = inputs.dtype
    layout, (chunks, size) = _plan(inputs, labels.shape[1])
    skip, skip_next = _skip_exponents(labels, dtype)
    alpha_start, beta_end = _starts(labels, label_lengths, dtype, layout)

    def emissions(first):
        return _chunk_emissions(inputs, shift, labels, input_lengths, blank, first, size, layout)

    def beta_step(beta, frame_emissions):
        return _emitted(_beta_transitions(beta, skip_next, layout), frame_emissions, layout)

    def beta_chunk(beta, first):
        # Kept: beta as the chunk's last frame will enter it.
        end, _ = lax.scan(
            lambda b, e: (beta_step(b, e), None), beta, emissions(first), reverse=True
        )
        return end, beta

    def chunk_occupancies(alpha, chunk):
        beta, first = chunk
        chunk_emissions = emissions(first)

        def step(carry, k):
            alpha, beta = carry
            into_alpha = _alpha_transitions(alpha, skip, layout)
            new_alpha = _emitted(into_alpha, layout.at(chunk_emissions, k), layout)
            new_beta = beta_step(beta, layout.at(chunk_emissions, size - 1 - k))
            return (new_alpha, new_beta), (tuple(map(layout.pack, into_alpha)), new_beta)

        (alpha, _), (into_alpha, beta_reversed) = lax.scan(
            step, (alpha, beta), jnp.arange(size), unroll=_SCAN_UNROLL
        )
        blank_states, label_states = _frame_occupancies(
            tuple(map(layout.unpack, into_alpha)), tuple(map(layout.unpack, beta_reversed))
        )

        def per_sequence(occupancy, sequence_labels, blank_occupancy):
            # Scatter-add onto the classes: measured faster than a one-hot matmul.
            per_class = jnp.zeros((size, num_classes), occupancy.dtype)
            per_class = per_class.at[:, sequence_labels].add(occupancy)
            return per_class.at[:, blank].add(blank_occupancy)

        per_class = jax.vmap(per_sequence, in_axes=(1, 0, 1), out_axes=1)(
            label_states,
            labels,
            jnp.sum(blank_states, axis=2),  # one class: the blank
        )
        return alpha, per_class

    if chunks == 1:  # beta enters the only chunk from the virtual end
        end, per_class = chunk_occupancies(alpha_start, (beta_end, 0))
    else:
        firsts = jnp.arange(chunks) * size
        _, beta_entering = lax.scan(beta_chunk, beta_end, firsts, reverse=True)
        end, per_class = lax.scan(chunk_occupancies, alpha_start, (beta_entering, firsts))
        per_class = per_class.reshape(chunks * size, batch, num_classes)[:num_steps]
    return tuple(layout.unpack(state) for state in end), per_class


def _frame_occupancies(into_alpha, beta_reversed):
    """Posterior occupancy of every state at each of a chunk's frames, (k, B, S+1) and
    (k, B, S): alpha's sums into the frame (before its emission) times beta (after it),
    the chunk's frames reversed in beta, normalised over the states of its frame (they sum
    to 1 at every t < L) rather than divided by p, which cancels the rounding common to a
    frame's states. Relative to the frame's largest exponent every state scales by an exact
    power of two."""
    (blank_m, blank_e), (label_m, label_e) = (
        (a[0] * b[0][::-1], a[1] + b[1][::-1]) for a, b in zip(into_alpha, beta_reversed)
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
    end = _alpha(inputs, shift, labels, input_lengths, label_lengths, blank)
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
    num_steps = inputs.shape[1]
    shift = _log_softmax_shift(inputs) if from_logits else None
    end, occupancy = _class_occupancies(
        inputs, shift, labels, input_lengths, label_lengths, blank
    )  # (T, B, K)
    nll = _nll_from_alpha(end, input_lengths, label_lengths)
    probabilities = jnp.exp(inputs if shift is None else (inputs - shift[0]) - shift[1])
    grad = probabilities - jnp.swapaxes(occupancy, 0, 1)
    impossible = jnp.isposinf(nll)
    fill = jnp.zeros((), grad.dtype) if zero_infinity else jnp.full((), jnp.nan, grad.dtype)
    grad = jnp.where(impossible[:, None, None], fill, grad)
    # A NaN loss (a NaN log-prob on a path) makes its whole sequence's gradient NaN, as in
    # torch, also for the classes the labels never use.
    grad = jnp.where(jnp.isnan(nll)[:, None, None], jnp.full((), jnp.nan, grad.dtype), grad)
    inside = jnp.arange(num_steps)[None, :] < input_lengths[:, None]  # (B, T)
    return nll, jnp.where(inside[:, :, None], grad, jnp.zeros((), grad.dtype))


def _ctc_nll_jvp(blank, zero_infinity, from_logits, primals, tangents):
    """The gradient of each sequence's loss is formed in the forward pass (alpha, beta and
    the occupancies: `_class_occupancies`); the tangent is its inner product with the
    inputs' tangent, which reverse mode transposes into a scaling by the cotangent. So
    forward mode, jacobians and hessians work, and reverse mode does what a hand-written
    backward would."""
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
    if num_steps == 0:
        raise ValueError(
            f"{fn}: `logits` must hold at least one frame (T >= 1), as torch requires; got "
            f"shape {list(x.shape[int(unbatched) :])}."
        )
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
