"""Checked mode: value checks (class indices in range, probabilities in [0, 1], ...) inside jit."""

from __future__ import annotations

import functools

import jax
from jax.experimental import checkify

from ._checks import checking_enabled


def checked(fn, *, errors=checkify.user_checks, jit=True):
    """Wraps `fn` so jaxloss's value checks run on traced inputs and raise ``ValueError``.

    Outside checked mode, jaxloss checks values only when inputs are concrete; under ``jax.jit``
    a bad value gives a nan loss instead (e.g. an out-of-range class index). ``checked(fn)``
    traces `fn` with the checks switched on, functionalises them with
    ``jax.experimental.checkify`` and raises after the call when one fails.

    Pass the plain (un-jitted) function: ``checked`` compiles it itself when ``jit=True``.
    ``errors`` may add checkify's own sets, e.g. ``checkify.user_checks | checkify.nan_checks``.

    Example:
      >>> safe_loss = jaxloss.checked(lambda x, y: jaxloss.cross_entropy(x, y))
      >>> safe_loss(logits, jnp.array([7]))   # raises: class index 7 ... out of range
    """

    @functools.wraps(fn)
    def traced_with_checks(*args, **kwargs):
        with checking_enabled():
            return fn(*args, **kwargs)

    functionalised = checkify.checkify(traced_with_checks, errors=errors)
    if jit:
        functionalised = jax.jit(functionalised)

    @functools.wraps(fn)
    def run(*args, **kwargs):
        error, out = functionalised(*args, **kwargs)
        message = error.get()
        if message is not None:
            raise ValueError(message)
        return out

    return run
