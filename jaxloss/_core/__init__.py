"""The shared floor: helpers every family uses, with no loss math of their own.

- `checks`: argument checks whose errors name the argument, the expectation and what arrived;
  `checked_mode`: `jaxloss.checked`, the value checks under ``jax.jit``.
- `class_inputs`: class indices and probabilities: label kinds, ``ignore_index``, ranges.
- `reduction`: none / mean / sum / batchmean, weighted means and ``where`` masks.
- `precision`: compute and result dtypes (16-bit in, float32 inside).
- `sharding`: reading an input's sharding on an Explicit mesh.
- `ops`: elementwise pieces with torch's gradients at their kinks, closed-form partials.
"""
