"""Small elementwise helpers whose gradients follow torch's at the kinks."""

from __future__ import annotations

import jax.numpy as jnp


def hinge(z):
    """max(z, 0) with torch's clamp_min gradient: 1 where z >= 0 (ties pass the gradient);
    NaN stays NaN, as in torch (a hidden NaN would hide a diverging run)."""
    return jnp.where(z < 0, jnp.zeros((), z.dtype), z)


def strict_hinge(z):
    """max(z, 0) with a zero gradient at z == 0, as torch's margin kernels test `z > 0` (so a
    NaN counts for nothing there, and here)."""
    return jnp.where(z > 0, z, jnp.zeros((), z.dtype))
