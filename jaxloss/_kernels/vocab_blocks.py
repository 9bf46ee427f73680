"""Per-class lookups over a vocabulary split across a mesh axis, inside ``shard_map``: each
device holds a block of every per-class table (class weights, a class mask), and a global class
index is looked up where it lives, with one O(N) psum (used by the chunked head and by
`jaxloss.parallel`)."""

from __future__ import annotations

import jax.numpy as jnp

from .softmax_ce import ClassAxis


def block_lookup(index, block, classes: ClassAxis):
    """table[index] of global class indices from this device's block of a per-class table:
    the device holding the class contributes it, one O(N) psum combines them."""
    width = block.shape[0]
    local_index = index - classes.offset(width)
    here = (local_index >= 0) & (local_index < width)
    picked = block[jnp.where(here, local_index, 0)]
    return classes.sum(jnp.where(here, picked, jnp.zeros((), block.dtype)))


def block_label_weights(indices, class_weight, classes: ClassAxis, dtype):
    """w[y] of global labels from this device's block of the class weights (1 without), nan
    where a counted label is out of range (one O(N) psum, only with class weights)."""
    if class_weight is None:
        weights = jnp.ones(indices.safe.shape, dtype)
    else:
        weights = block_lookup(indices.safe, class_weight.astype(dtype), classes)
    return jnp.where(indices.out_of_range, jnp.asarray(jnp.nan, dtype), weights)
