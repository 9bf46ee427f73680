"""Fused losses: linear head + cross-entropy without materialising the (N, V) logits.

``linear_cross_entropy(x, w, labels)`` equals ``cross_entropy(x @ w.T + b, labels)`` but walks
the tokens in chunks of ``chunk_size`` rows, so at most a (chunk, V) block of logits exists at a
time. For 'mean' and 'sum' the loss is a sum over rows whose cotangent is one scalar, so the
forward pass of the VJP already forms dx, dW and db for a unit cotangent (three matmuls per
chunk: logits, dx, dW) and the backward pass only scales them; for 'none' the backward
recomputes each chunk's logits (four matmuls). The per-row math (weights, ignore_index, label
smoothing, masks) is the cross-entropy kernel of :mod:`jaxloss._softmax_ce`; this module adds
PaLM's z-loss (λ·logsumexp²) and Gemma 2's logit soft-capping (c·tanh(z/c)).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

from . import _checks
from ._precision import dtypes
from ._reduction import finish, mean_denominator
from ._softmax_ce import forward_rows, logit_grad

DEFAULT_CHUNK_SIZE = 512  # (512, 32768) f32 logits = 64 MiB; measured as fast as 1024


def _matmul(a, b, contract):
    """a·b contracting the given axes, accumulating in float32 (fast bf16 matmuls on CPU)."""
    out = jnp.promote_types(jnp.promote_types(a.dtype, b.dtype), jnp.float32)
    return lax.dot_general(a, b, (contract, ((), ())), preferred_element_type=out)


def _chunk_logits(x, w, b, softcap):
    z = _matmul(x, w, ((1,), (1,)))  # (c, V) = x @ w.T
    if b is not None:
        z = z + b.astype(z.dtype)
    if softcap is not None:
        z = softcap * jnp.tanh(z / softcap)
    return z


def _chunk_forward(x, w, b, labels, valid, label_weight, class_weight, smoothing, config):
    smooth, z_loss, softcap, _ = config
    z = _chunk_logits(x, w, b, softcap)
    loss, (lse, _, _) = forward_rows(z, labels, valid, label_weight, class_weight, smoothing,
                                     smooth)
    if z_loss:
        loss = loss + jnp.where(valid, z_loss * lse * lse, 0.0)
    return z, loss, lse


def _chunk_grad(z, x, w, labels, valid, label_weight, class_weight, smoothing, config, lse,
                cotangent):
    """(dx, dW, db) of Σ_i g_i·loss_i over one chunk."""
    smooth, z_loss, softcap, _ = config
    extra = 2 * z_loss * lse if z_loss else None
    dz = logit_grad(z, labels, valid, label_weight, class_weight, smoothing, smooth, lse,
                    cotangent, extra_prob_scale=extra)
    if softcap is not None:
        dz = dz * (1 - jnp.square(z / softcap))
    dz_in = dz.astype(x.dtype)  # bf16 matmuls take bf16 operands, accumulate in f32
    dx = _matmul(dz_in, w, ((1,), (0,)))                     # (c, D)
    dw = _matmul(dz_in, x, ((0,), (0,)))                     # (V, D)
    return dx, dw, jnp.sum(dz, axis=0)


def _chunks(array, chunk_size):
    return array.reshape((-1, chunk_size) + array.shape[1:])


@functools.partial(jax.custom_vjp, nondiff_argnums=(8, 9, 10))
def _fused_rows(x, w, b, labels, valid, label_weight, class_weight, smoothing, config,
                chunk_size, summed):
    """Row losses (N,) or, with `summed`, their sum; N a multiple of chunk_size."""
    def body(_, chunk):
        xc, yc, vc, lwc = chunk
        return None, _chunk_forward(xc, w, b, yc, vc, lwc, class_weight, smoothing, config)[1]

    _, losses = lax.scan(body, None, (_chunks(x, chunk_size), _chunks(labels, chunk_size),
                                      _chunks(valid, chunk_size), _chunks(label_weight, chunk_size)))
    losses = losses.reshape(-1)
    return jnp.sum(losses) if summed else losses


def _fused_fwd(x, w, b, labels, valid, label_weight, class_weight, smoothing, config, chunk_size,
               summed):
    compute = jnp.promote_types(x.dtype, jnp.float32)
    xs = (_chunks(x, chunk_size), _chunks(labels, chunk_size), _chunks(valid, chunk_size),
          _chunks(label_weight, chunk_size))
    if not summed:
        def body(_, chunk):
            xc, yc, vc, lwc = chunk
            _, loss, lse = _chunk_forward(xc, w, b, yc, vc, lwc, class_weight, smoothing, config)
            return None, (loss, lse)

        _, (losses, lse) = lax.scan(body, None, xs)
        residuals = (x, w, b, labels, valid, label_weight, class_weight, smoothing, lse, None)
        return losses.reshape(-1), residuals

    # Summed: the cotangent is one scalar, so form the gradients for a unit cotangent now.
    def body(carry, chunk):
        dw_total, db_total = carry
        xc, yc, vc, lwc = chunk
        z, loss, lse = _chunk_forward(xc, w, b, yc, vc, lwc, class_weight, smoothing, config)
        dx, dw, db = _chunk_grad(z, xc, w, yc, vc, lwc, class_weight, smoothing, config, lse,
                                 jnp.ones_like(lse))
        return (dw_total + dw, db_total + db), (loss, dx)

    zeros = (jnp.zeros(w.shape, compute), jnp.zeros((w.shape[0],), compute))
    (dw, db), (losses, dx) = lax.scan(body, zeros, xs)
    # Kept in float32; the backward casts the scaled gradients to the inputs' dtypes.
    return jnp.sum(losses), (dx.reshape(x.shape), dw, None if b is None else db)


def _fused_bwd(config, chunk_size, summed, residuals, cotangent):
    if summed:
        dx, dw, db = residuals
        x_dtype, w_dtype, b_dtype = config[3]
        g = cotangent
        return ((g * dx).astype(x_dtype), (g * dw).astype(w_dtype),
                None if db is None else (g * db).astype(b_dtype),
                None, None, None, None, None)
    x, w, b, labels, valid, label_weight, class_weight, smoothing, lse, _ = residuals
    compute = jnp.promote_types(x.dtype, jnp.float32)

    def body(carry, chunk):
        dw_total, db_total = carry
        xc, yc, vc, lwc, lse_c, gc = chunk
        z = _chunk_logits(xc, w, b, config[2])
        dx, dw, db = _chunk_grad(z, xc, w, yc, vc, lwc, class_weight, smoothing, config, lse_c,
                                 gc)
        return (dw_total + dw, db_total + db), dx

    xs = (_chunks(x, chunk_size), _chunks(labels, chunk_size), _chunks(valid, chunk_size),
          _chunks(label_weight, chunk_size), lse, _chunks(cotangent, chunk_size))
    zeros = (jnp.zeros(w.shape, compute), jnp.zeros((w.shape[0],), compute))
    (dw, db), dx = lax.scan(body, zeros, xs)
    return (dx.reshape(x.shape).astype(x.dtype), dw.astype(w.dtype),
            None if b is None else db.astype(b.dtype), None, None, None, None, None)


_fused_rows.defvjp(_fused_fwd, _fused_bwd)
# Jitted so that eager calls compile once per shape; inside a user's jit it simply inlines.
_fused_rows = jax.jit(_fused_rows, static_argnums=(8, 9, 10))


def linear_cross_entropy(x, w, labels, *, bias=None, weight=None, ignore_index=-100,
                         label_smoothing=0.0, z_loss=0.0, softcap=None, where=None,
                         reduction="mean", chunk_size=DEFAULT_CHUNK_SIZE):
    r"""Cross-entropy of a linear head, :math:`\mathrm{CE}(x W^\top + b,\ y)`, without ever
    materialising the (N, V) logits.

    Equal to ``cross_entropy(x @ w.T + bias, labels, weight=..., ignore_index=...,
    label_smoothing=...)`` (same weighting and 'mean' normalisation), computed ``chunk_size``
    rows at a time: extra memory is O(chunk_size · V) besides the gradients. With ``softcap``
    the logits are :math:`c\tanh(z/c)` (Gemma 2); with ``z_loss`` = λ each counted row adds
    :math:`\lambda\,(\log\sum_c e^{z_c})^2` (PaLM), which 'mean' divides like the rest.

    Args:
      x: ``(..., D)`` hidden states (leading axes are tokens).
      w: ``(V, D)`` head weight (torch's Linear layout). bias: optional ``(V,)``.
      labels: integer ``x.shape[:-1]``; ``ignore_index`` rows count for nothing.
      weight: optional ``(V,)`` class weights. label_smoothing: ε in [0, 1].
      where: optional boolean mask of ``x.shape[:-1]``.
      reduction: 'none' | 'mean' | 'sum'.
      chunk_size: rows per chunk (a Python int >= 1).

    bfloat16/float16 inputs run their matmuls in that dtype with float32 accumulation; the
    softmax and the sums are float32; gradients come back in the inputs' dtypes. Gradients flow
    to ``x``, ``w`` and ``bias``; ``weight`` and ``label_smoothing`` are constants here
    (use :func:`cross_entropy` to differentiate them).

    Example:
      >>> x = jax.random.normal(key, (8192, 1024)); w = jax.random.normal(key, (32768, 1024))
      >>> loss = linear_cross_entropy(x, w, labels, chunk_size=1024)
    """
    fn = "linear_cross_entropy"
    x = _checks.float_array(fn, "x", x)
    w = _checks.float_array(fn, "w", w)
    labels = _checks.int_array(fn, "labels", labels)
    _checks.reduction(fn, reduction)
    if x.ndim < 1 or w.ndim != 2 or w.shape[1] != x.shape[-1]:
        raise ValueError(f"{fn}: `w` must be (V, D) with D = x.shape[-1] = "
                         f"{x.shape[-1] if x.ndim else '?'}; got x {list(x.shape)} and w "
                         f"{list(w.shape)}.")
    if labels.shape != x.shape[:-1]:
        raise ValueError(f"{fn}: `labels` must have shape x.shape[:-1] = {list(x.shape[:-1])}; "
                         f"got {list(labels.shape)}.")
    num_classes = w.shape[0]
    if bias is not None:
        bias = _checks.float_array(fn, "bias", bias)
        if bias.shape != (num_classes,):
            raise ValueError(f"{fn}: `bias` must have shape [{num_classes}]; got "
                             f"{list(bias.shape)}.")
    weight = _checks.class_weight(fn, weight, num_classes)
    _checks.python_number(fn, "label_smoothing", label_smoothing, low=0.0, high=1.0)
    _checks.python_number(fn, "z_loss", z_loss, low=0.0)
    if softcap is not None:
        _checks.python_number(fn, "softcap", softcap, low=0.0, low_inclusive=False)
    if not isinstance(chunk_size, int) or isinstance(chunk_size, bool) or chunk_size < 1:
        raise ValueError(f"{fn}: `chunk_size` must be a positive int; got {chunk_size!r}.")
    where = _checks.where_mask(fn, where, labels.shape, "one loss per token")
    result_dtype, compute = dtypes(x, w)

    valid = jnp.ones(labels.shape, bool) if ignore_index is None else labels != ignore_index
    if where is not None:
        valid = valid & where
    in_range = (labels >= 0) & (labels < num_classes)
    _checks.value_check(fn, in_range | ~valid,
                        f"class index {{}} in `labels` is out of range; expected [0, "
                        f"{num_classes}) or ignore_index ({ignore_index}).",
                        _checks.first_violation(labels, in_range | ~valid))
    safe_labels = jnp.where(valid & in_range, labels, 0).astype(jnp.int32)
    # Class weights and ε are constants of this loss: gradients flow to x, w and bias only.
    class_weight = None if weight is None else lax.stop_gradient(weight.astype(compute))
    label_smoothing = lax.stop_gradient(label_smoothing)
    label_weight = (jnp.ones(labels.shape, compute) if class_weight is None
                    else class_weight[safe_labels])
    label_weight = jnp.where(valid & ~in_range, jnp.nan, label_weight)

    rows = x.reshape(-1, x.shape[-1])
    n = rows.shape[0]
    chunk = max(1, min(chunk_size, n))
    padded = -(-n // chunk) * chunk
    pad = padded - n

    def pad_rows(a, value):
        return jnp.pad(a, [(0, pad)] + [(0, 0)] * (a.ndim - 1), constant_values=value) if pad else a

    # Static configuration: smoothing on/off, z-loss λ, soft-cap, and the dtypes the
    # gradients return in.
    config = (_maybe_nonzero(label_smoothing), float(z_loss),
              None if softcap is None else float(softcap),
              (x.dtype, w.dtype, None if bias is None else bias.dtype))
    args = (pad_rows(rows, 0), w, bias, pad_rows(safe_labels.reshape(-1), 0),
            pad_rows(valid.reshape(-1), False), pad_rows(label_weight.reshape(-1), 0),
            class_weight, jnp.asarray(label_smoothing, compute))
    if reduction == "none":
        loss = _fused_rows(*args, config, chunk, False)[:n].reshape(labels.shape)
        return finish(jnp.where(valid, loss, jnp.zeros((), loss.dtype)), result_dtype)
    total = _fused_rows(*args, config, chunk, True)
    if reduction == "sum":
        return finish(total, result_dtype)
    denominator = mean_denominator(labels.shape, compute, where=valid,
                                   normalizer=None if weight is None else label_weight)
    return finish(total / denominator, result_dtype)


def _maybe_nonzero(option):
    return not (_checks.is_concrete(option) and option == 0)


def _check_adaptive(fn, x, head_weight, tail_weights, cutoffs, n_classes, head_bias):
    if x.ndim != 2:
        raise ValueError(f"{fn}: `x` must be (N, in_features); got {list(x.shape)}.")
    boundaries = list(cutoffs) + [n_classes]
    if (not cutoffs or boundaries != sorted(set(boundaries)) or boundaries[0] <= 0
            or any(int(c) != c for c in cutoffs)):
        raise ValueError(f"{fn}: `cutoffs` must be unique positive integers sorted in increasing "
                         f"order, each in [1, n_classes-1] = [1, {n_classes - 1}]; got "
                         f"{list(cutoffs)}.")
    head_size = boundaries[0] + len(cutoffs)
    if head_weight.shape != (head_size, x.shape[1]):
        raise ValueError(f"{fn}: `head_weight` must be (shortlist + clusters, in_features) = "
                         f"[{head_size}, {x.shape[1]}]; got {list(head_weight.shape)}.")
    if head_bias is not None and head_bias.shape != (head_size,):
        raise ValueError(f"{fn}: `head_bias` must have shape [{head_size}]; got "
                         f"{list(head_bias.shape)}.")
    if len(tail_weights) != len(cutoffs):
        raise ValueError(f"{fn}: `tail_weights` needs one (projection, output) pair per cluster "
                         f"({len(cutoffs)}); got {len(tail_weights)}.")
    for i, (projection, output) in enumerate(tail_weights):
        size = boundaries[i + 1] - boundaries[i]
        if (projection.ndim != 2 or projection.shape[1] != x.shape[1] or output.ndim != 2
                or output.shape != (size, projection.shape[0])):
            raise ValueError(
                f"{fn}: cluster {i} needs a projection (hidden, {x.shape[1]}) and an output "
                f"({size}, hidden) weight; got {list(projection.shape)} and "
                f"{list(output.shape)}.")
    return boundaries


def _adaptive_parts(x, head_weight, head_bias, tail_weights):
    """Head log-probs (N, shortlist + clusters) and each cluster's log-probs (N, size_i)."""
    head = _matmul(x, head_weight, ((1,), (1,)))
    if head_bias is not None:
        head = head + head_bias.astype(head.dtype)
    clusters = [jax.nn.log_softmax(_matmul(_matmul(x, p, ((1,), (1,))).astype(x.dtype), o,
                                           ((1,), (1,))), axis=-1)
                for p, o in tail_weights]
    return jax.nn.log_softmax(head, axis=-1), clusters


def adaptive_log_softmax(x, head_weight, tail_weights, *, cutoffs, n_classes, head_bias=None):
    """Full log-probabilities (N, n_classes) of the adaptive softmax (Grave et al. 2017), as
    torch's ``AdaptiveLogSoftmaxWithLoss.log_prob``: the shortlist's log-probs come from the
    head; class c of cluster i gets head[shortlist + i] + log_softmax(cluster i)[c - start_i].

    Weights are in torch's Linear layout: ``head_weight`` (shortlist + clusters, D),
    ``tail_weights`` a sequence of (projection (hidden_i, D), output (size_i, hidden_i)).
    """
    fn = "adaptive_log_softmax"
    x = _checks.float_array(fn, "x", x)
    head_weight = _checks.float_array(fn, "head_weight", head_weight)
    tail_weights = [tuple(_checks.float_array(fn, "tail_weights", a) for a in pair)
                    for pair in tail_weights]
    head_bias = None if head_bias is None else _checks.float_array(fn, "head_bias", head_bias)
    boundaries = _check_adaptive(fn, x, head_weight, tail_weights, cutoffs, n_classes, head_bias)
    head, clusters = _adaptive_parts(x, head_weight, head_bias, tail_weights)
    shortlist = boundaries[0]
    pieces = [head[:, :shortlist]] + [
        cluster + head[:, shortlist + i][:, None] for i, cluster in enumerate(clusters)]
    return jnp.concatenate(pieces, axis=1).astype(dtypes(x)[0])


def adaptive_log_softmax_with_loss(x, labels, head_weight, tail_weights, *, cutoffs, n_classes,
                                   head_bias=None):
    """(output, loss) of torch's ``AdaptiveLogSoftmaxWithLoss``: ``output`` (N,) is each row's
    log-probability of its label, ``loss`` the mean of ``-output``. Every cluster is evaluated
    for every row (static shapes under jit; torch evaluates only the rows that need it), the
    values are the same. A label outside [0, n_classes) raises (concrete inputs) or gives nan.
    """
    fn = "adaptive_log_softmax_with_loss"
    x = _checks.float_array(fn, "x", x)
    labels = _checks.int_array(fn, "labels", labels)
    head_weight = _checks.float_array(fn, "head_weight", head_weight)
    tail_weights = [tuple(_checks.float_array(fn, "tail_weights", a) for a in pair)
                    for pair in tail_weights]
    head_bias = None if head_bias is None else _checks.float_array(fn, "head_bias", head_bias)
    unbatched = labels.ndim == 0
    if unbatched:
        if x.ndim != 1:
            raise ValueError(f"{fn}: a 0-d `labels` needs a 1-d `x`; got {list(x.shape)}.")
        x, labels = x[None], labels[None]
    elif labels.ndim != 1 or x.ndim != 2 or x.shape[0] != labels.shape[0]:
        raise ValueError(f"{fn}: `labels` (N,) needs `x` (N, in_features) with the same N; got "
                         f"x {list(x.shape)} and labels {list(labels.shape)}.")
    boundaries = _check_adaptive(fn, x, head_weight, tail_weights, cutoffs, n_classes, head_bias)
    in_range = (labels >= 0) & (labels < n_classes)
    _checks.value_check(fn, in_range, f"label values must be in [0, {n_classes - 1}]; found {{}}.",
                        _checks.first_violation(labels, in_range))
    head, clusters = _adaptive_parts(x, head_weight, head_bias, tail_weights)
    shortlist = boundaries[0]
    head_index = labels
    output = jnp.zeros(labels.shape, head.dtype)
    for i, cluster in enumerate(clusters):
        low, high = boundaries[i], boundaries[i + 1]
        inside = (labels >= low) & (labels < high)
        local = jnp.take_along_axis(cluster, jnp.clip(labels - low, 0, high - low - 1)[:, None],
                                    axis=1)[:, 0]
        output = output + jnp.where(inside, local, 0.0)
        head_index = jnp.where(inside, shortlist + i, head_index)
    safe_index = jnp.clip(head_index, 0, head.shape[1] - 1)
    output = output + jnp.take_along_axis(head, safe_index[:, None], axis=1)[:, 0]
    output = jnp.where(in_range, output, jnp.nan)
    result_dtype = dtypes(x)[0]
    loss = jnp.mean(-output)
    if unbatched:
        output = output[0]
    return output.astype(result_dtype), loss.astype(result_dtype)
