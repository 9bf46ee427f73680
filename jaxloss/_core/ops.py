"""Small elementwise helpers whose gradients follow torch's at the kinks (and stay finite
where a power below 1 has an infinite slope), `with_partials`, which gives an elementwise
loss its own derivative pass, and `reduction_result`, which ends XLA:CPU's fusion of a
reduction."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax.custom_derivatives import SymbolicZero


def hinge(z):
    """max(z, 0) with torch's clamp_min gradient: 1 where z >= 0 (ties pass the gradient);
    NaN stays NaN, as in torch (a hidden NaN would hide a diverging run)."""
    return jnp.where(z < 0, jnp.zeros((), z.dtype), z)


def strict_hinge(z):
    """max(z, 0) with a zero gradient at z == 0, as torch's margin kernels test `z > 0` (so a
    NaN counts for nothing there, and here)."""
    return jnp.where(z > 0, z, jnp.zeros((), z.dtype))


def fusible_softplus(z):
    """softplus(z) = log(1 + e^z) as max(z, 0) + log1p(e^-|z|): jax.nn.softplus's value, in
    ops that XLA:CPU fuses into a reduction (logaddexp's select is not; the loss would be
    written out and read back). For values whose derivatives `with_partials` gives."""
    return jnp.maximum(z, 0) + jnp.log1p(jnp.exp(-jnp.abs(z)))


def unit_rows(x, eps):
    """x / max(‖x‖, eps) along the last axis (torch's ``F.normalize``), written as x ·
    rsqrt(max(Σx², eps²)) so that a zero row (padding) has a finite, zero gradient where the
    norm's own gradient would be 0/0."""
    squares = jnp.sum(x * x, axis=-1, keepdims=True)
    return x * jax.lax.rsqrt(jnp.maximum(squares, eps * eps))


def power_of_nonnegative(x, exponent):
    """x ** exponent for x >= 0, with a zero gradient at x = 0, where a power below 1 has an
    infinite slope (the value there is 0, or 1 for the exponent 0)."""
    if isinstance(exponent, (int, float)) and exponent == 1:
        return x
    positive = x > 0
    safe = jnp.where(positive, x, jnp.ones((), x.dtype))
    at_zero = jnp.where(jnp.asarray(exponent) == 0, 1, 0).astype(x.dtype)  # 0**0 = 1
    return jnp.where(positive, safe**exponent, at_zero)


def with_partials(value: Callable, *partials: Callable) -> Callable:
    """`value(*args)`, an elementwise loss, whose derivative in `args[i]` is `partials[i](*args)`
    (a closed form, e.g. torch's backward formula), as a custom JVP.

    Why: autodiff of a loss like ``(1 - y) x - log σ(x)`` shares its intermediates (the exp,
    the log) between the loss and its gradient, so XLA writes them to memory and reads them
    back in a third and fourth pass. Here the partials are evaluated on the inputs passed
    through an optimization barrier, which XLA cannot merge with the value's ops, so a mean's
    forward+backward is two passes: one reduction that reads the inputs, and one fused loop
    that reads them again and writes the gradient (BCE with logits: 2x faster on CPU).
    Write the value in ops the reduction fuses: `fusible_softplus`, and ``x - x * y`` rather
    than ``(1 - y) * x``, whose broadcast 1 XLA:CPU writes out as a whole array.

    Forward mode, reverse mode and higher orders work: the partials are plain jnp, so they
    differentiate in turn. A partial is only evaluated when its argument has a tangent.
    """
    if not partials:
        raise ValueError("with_partials: give one partial derivative per argument.")
    function = jax.custom_jvp(value)

    def jvp(primals, tangents):
        if len(primals) != len(partials):
            raise TypeError(
                f"with_partials: {len(partials)} partials for {len(primals)} arguments."
            )
        loss = function(*primals)
        live = [i for i, t in enumerate(tangents) if not isinstance(t, SymbolicZero)]
        tangent = jnp.zeros_like(loss)
        if live:
            fresh = jax.lax.optimization_barrier(tuple(primals))
            for i in live:
                tangent = tangent + partials[i](*fresh) * tangents[i]
        return loss, tangent

    function.defjvp(jvp, symbolic_zeros=True)
    return function


def is_symbolic_zero(tangent) -> bool:
    """A tangent known to be zero without looking at values: absent, or JAX's symbolic zero
    (custom JVP rules skip its terms)."""
    return tangent is None or isinstance(tangent, SymbolicZero)


@jax.custom_jvp
def reduction_result(x):
    """x unchanged, marked as a reduction's result for XLA:CPU: a clamp to [-inf, inf] (NaN,
    ±inf and -0 pass through), which ends the YNNPACK fusion that holds the reduction.

    Why: XLA:CPU (jaxlib 0.10) gives a row reduction, with the elementwise ops feeding it and
    following it, to one YNNPACK fusion. Holding ops after the reduction, the fusion can
    write the reduction's whole (N, C) input to memory first: Σ_c w_c x_c of bf16 logits
    at 65536x1000, followed by the loss's arithmetic, took 84 ms that way against 8 ms
    alone. A clamp is not a YNNPACK op, so the fusion ends at the reduction and the ops after
    it join XLA's own loop. Its tangent is the identity (the clamp's own would be 0 at ±inf
    and NaN)."""
    return jax.lax.clamp(jnp.asarray(-jnp.inf, x.dtype), x, jnp.asarray(jnp.inf, x.dtype))


@reduction_result.defjvp
def _reduction_result_jvp(primals, tangents):
    return reduction_result(primals[0]), tangents[0]


def row_sum(x):
    """Σ over the last axis, as its own fusion's result (`reduction_result`)."""
    return reduction_result(jnp.sum(x, axis=-1))
