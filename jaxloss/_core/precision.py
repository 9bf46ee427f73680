"""Low precision in, float32 accumulation inside, input dtype out (as torch does for bf16/f16)."""

from __future__ import annotations

import jax.numpy as jnp


def dtypes(*arrays):
    """Returns (result_dtype, compute_dtype) for the floating inputs among `arrays`.

    Callers pass the data (predictions and float targets), not weights: the result dtype is
    JAX's promotion of the data, and weights are cast to the compute dtype. 16-bit floats are
    computed in float32 so sums and logsumexps do not lose precision, then cast back.
    """
    floats = [a.dtype for a in arrays if a is not None and jnp.issubdtype(a.dtype, jnp.floating)]
    result = jnp.result_type(*floats) if floats else jnp.dtype(jnp.float32)
    compute = jnp.promote_types(result, jnp.float32)
    return result, compute


def upcast(x, compute):
    """Casts an optional array (a weight) to the compute dtype."""
    return None if x is None else x.astype(compute)
