"""A tiny language-model head trained on a (2, 4) data x model mesh of CPU devices.

    python examples/lm_head_sharded.py [--steps 30]

Embedding -> tanh projection -> linear head -> fused cross-entropy (`linear_cross_entropy`),
predicting the next token of sequences drawn from a fixed random bigram table (so there is
something to learn). Tokens are split over 'data' and the head's vocabulary over 'model'
(tensor parallel): the fused loss runs per device with O(chunk) statistics across 'model'
and never forms the (N, V) logits anywhere. The same model is trained in step on one device
with the unsharded loss, and each step prints both losses. At the end it prints each
compiled step's temp memory per device (`memory_analysis`) against the naive head, which
forms the logits and calls `cross_entropy` on one device.
"""

from __future__ import annotations

import argparse

import jax

try:  # before jax starts its CPU backend (a test process may have started it with 8 already)
    jax.config.update("jax_num_cpu_devices", 8)
except RuntimeError:
    pass

import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

import jaxloss

VOCAB, WIDTH, TOKENS = 1024, 64, 512  # the head is (VOCAB, WIDTH); TOKENS per step


def bigram_batches(seed: int, steps: int):
    """(previous, next) token pairs from a fixed random bigram table with peaked rows."""
    rng = np.random.default_rng(seed)
    table = rng.gumbel(size=(VOCAB, VOCAB)) * 3.0
    table = np.exp(table - table.max(1, keepdims=True))
    table /= table.sum(1, keepdims=True)
    cumulative = np.cumsum(table, axis=1)
    for _ in range(steps):
        previous = rng.integers(0, VOCAB, size=TOKENS)
        draws = rng.uniform(size=(TOKENS, 1))
        following = np.minimum((cumulative[previous] < draws).sum(1), VOCAB - 1)
        yield previous.astype(np.int32), following.astype(np.int32)


def init(seed: int):
    keys = jax.random.split(jax.random.key(seed), 3)
    return {
        "embed": jax.random.normal(keys[0], (VOCAB, WIDTH)) * 0.1,
        "proj": jax.random.normal(keys[1], (WIDTH, WIDTH)) / np.sqrt(WIDTH),
        "head": jax.random.normal(keys[2], (VOCAB, WIDTH)) * 0.02,
        "bias": jnp.zeros((VOCAB,)),
    }


def embed(table, ids):
    """table[ids]; on a mesh the rows come out sharded like the ids (a gather of sharded ids
    needs its output sharding spelled out on Explicit meshes)."""
    sharding = jax.typeof(ids).sharding
    if getattr(sharding, "mesh", None) is not None and sharding.mesh.axis_names:
        return table.at[ids].get(out_sharding=sharding)
    return table[ids]


def hidden(params, previous):
    return jnp.tanh(embed(params["embed"], previous) @ params["proj"])


def fused_loss(params, previous, following):
    return jaxloss.linear_cross_entropy(
        hidden(params, previous), params["head"], following, bias=params["bias"], chunk_size=128
    )


def naive_loss(params, previous, following):
    logits = hidden(params, previous) @ params["head"].T + params["bias"]
    return jaxloss.cross_entropy(logits, following)


def make_step(loss_fn, optimizer):
    @jax.jit
    def step(params, state, previous, following):
        loss, grads = jax.value_and_grad(loss_fn)(params, previous, following)
        updates, state = optimizer.update(grads, state, params)
        return optax.apply_updates(params, updates), state, loss

    return step


def temp_bytes(step, *args) -> int:
    return step.lower(*args).compile().memory_analysis().temp_size_in_bytes


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    mesh = jax.make_mesh((2, 4), ("data", "model"))
    # Tokens over 'data'; the head, its bias and the embedding's rows over 'model'.
    specs = {"embed": P(), "proj": P(), "head": P("model"), "bias": P("model")}
    optimizer = optax.adam(3e-3)
    single = init(args.seed)
    sharded = {k: jax.device_put(v, NamedSharding(mesh, specs[k])) for k, v in single.items()}
    single_state, sharded_state = optimizer.init(single), optimizer.init(sharded)
    step = make_step(fused_loss, optimizer)
    tokens = NamedSharding(mesh, P("data"))

    print(f"mesh {dict(mesh.shape)}, head ({VOCAB}, {WIDTH}), {TOKENS} tokens per step")
    print(f"{'step':>4}  {'sharded loss':>12}  {'one device':>12}")
    for i, (previous, following) in enumerate(bigram_batches(args.seed, args.steps)):
        sharded, sharded_state, loss = step(
            sharded,
            sharded_state,
            jax.device_put(previous, tokens),
            jax.device_put(following, tokens),
        )
        single, single_state, reference = step(single, single_state, previous, following)
        print(f"{i:>4}  {float(loss):12.6f}  {float(reference):12.6f}", flush=True)

    previous, following = next(bigram_batches(args.seed + 1, 1))
    sharded_temp = temp_bytes(
        step,
        sharded,
        sharded_state,
        jax.device_put(previous, tokens),
        jax.device_put(following, tokens),
    )
    naive_temp = temp_bytes(
        make_step(naive_loss, optimizer), single, single_state, previous, following
    )
    print(
        f"temp memory per device: sharded fused head {sharded_temp / 2**20:.2f} MiB, "
        f"naive unsharded head {naive_temp / 2**20:.2f} MiB "
        f"({naive_temp / max(sharded_temp, 1):.1f}x)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
