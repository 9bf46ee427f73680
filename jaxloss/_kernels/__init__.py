"""The kernel floor: the numerical cores several families run on.

- `softmax_ce`: the per-row softmax cross-entropy (closed-form weights, smoothing, masks,
  z-loss, soft-cap) with its custom JVP; cross-entropy, the fused head and the vocab-parallel
  loss all reduce to it.
- `chunked_head`: a linear head walked in row chunks without its (N, V) logits.
- `matmul`: how 16-bit matmuls run (native or upcast), measured per CPU.
- `vocab_blocks`: per-class lookups over a vocabulary split across a mesh axis.
"""
