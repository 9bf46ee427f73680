"""Per-class lookups over a vocabulary split across a mesh axis, inside ``shard_map``: each
device holds a block of every per-class table (class weights, a class mask), and a global class
index is looked up where it lives, with one O(N) psum (used by the chunked head and by
`jaxloss.parallel`)."""

from __future__ import annotations

import jax.numpy as jnp

from .._core.class_inputs import pick_along_axis
from .softmax_ce import ClassAxis


def label_in_block(labels, width, classes: ClassAxis | None):
    """Each global label's index in this device's block of `width` entries, and whether it
    lies there (None: the vocabulary is whole, every label is here)."""
    if classes is None:
        return labels, None
    local = labels - classes.offset(width)
    here = (local >= 0) & (local < width)
    return jnp.where(here, local, 0), here


def pick_in_block(values, labels, here):
    """values[i, labels[i]] of the rows whose label lies in this block, 0 elsewhere (summed over
    the blocks, it is the global pick)."""
    picked = pick_along_axis(values, labels, -1)
    return picked if here is None else jnp.where(here, picked, jnp.zeros((), picked.dtype))


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
