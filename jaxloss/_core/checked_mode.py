"""Checked mode: value checks (class indices in range, probabilities in [0, 1], ...) inside jit."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
from jax.experimental import checkify

from .checks import checking_enabled


def checked(
    fn: Callable[..., Any], *, errors: Any = checkify.user_checks, jit: bool = True
) -> Callable[..., Any]:
    """Wraps `fn` so jaxloss's value checks run on traced inputs and raise ``ValueError``.

    Outside checked mode, jaxloss checks values only when inputs are concrete; under ``jax.jit``
    a bad value gives a nan loss instead (e.g. an out-of-range class index). ``checked(fn)``
    traces `fn` with the checks switched on, functionalises them with
    ``jax.experimental.checkify`` and raises after the call when one fails.

    Args:
      fn: the plain (un-jitted) function calling jaxloss criteria.
      errors: checkify's error sets to enable, e.g.
        ``checkify.user_checks | checkify.nan_checks``.
      jit: compile the checked function (``checked`` calls ``jax.jit`` itself).

    Returns:
      A function with `fn`'s signature and result that raises ``ValueError`` with the failed
      check's message.

    Examples:
      >>> safe_loss = jaxloss.checked(lambda x, y: jaxloss.cross_entropy(x, y))
      >>> logits = jnp.zeros((1, 3))
      >>> round(float(safe_loss(logits, jnp.array([2]))), 4)
      1.0986
      >>> safe_loss(logits, jnp.array([7]))
      Traceback (most recent call last):
      ValueError: cross_entropy: class index 7 in `labels` is out of range; expected [0, 3) ...
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
