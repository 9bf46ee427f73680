"""SFT then DPO of a tiny Flax NNX causal language model on a (2, 4) data x model mesh.

    python examples/dpo_sharded.py [--sft-steps 150] [--dpo-steps 120] [--out runs]

The task, embedded: a prompt of three terms of an arithmetic progression modulo 32 (a, a + d,
a + 2d); the right completion continues it for three more terms, a wrong one is off by one.
SFT trains on both kinds of completion (half and half), so the model continues either way.
DPO then trains on (right, wrong) pairs against a frozen copy of the SFT model, the
reference: the implicit reward margin and the preference accuracy rise.

Every loss runs on the fused head (`jaxloss.linear_cross_entropy` for SFT,
`jaxloss.linear_log_probs`, `sequence_sums` and `dpo_loss` for DPO): the (tokens, vocabulary)
logits are never formed. The batch is split over 'data' and the head's vocabulary over
'model' of an Explicit mesh of 8 CPU devices. It shows a progress bar, writes a PNG of the
curves, and prints the DPO step's temp memory per device against the naive head (full logits,
log-softmax, gather) on one device. About a minute on 2 cores.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import jax

try:  # before jax starts its CPU backend (a test process may have started it with 8 already)
    jax.config.update("jax_num_cpu_devices", 8)
except RuntimeError:
    pass

import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
from tqdm import tqdm

import jaxloss

VOCAB, WIDTH, PROMPT, COMPLETION = 32, 64, 3, 3
LENGTH = PROMPT + COMPLETION


class TinyLM(nnx.Module):
    """Token and position embeddings, one causal self-attention block and an MLP, then the
    head (VOCAB, WIDTH) in torch's layout, whose vocabulary rows the mesh splits."""

    def __init__(self, *, rngs: nnx.Rngs):
        normal = jax.nn.initializers.normal(0.1)
        self.tokens = nnx.Param(normal(rngs.params(), (VOCAB, WIDTH)))
        self.positions = nnx.Param(normal(rngs.params(), (LENGTH, WIDTH)))
        self.qkv = nnx.Linear(WIDTH, 3 * WIDTH, rngs=rngs)
        self.up = nnx.Linear(WIDTH, 4 * WIDTH, rngs=rngs)
        self.down = nnx.Linear(4 * WIDTH, WIDTH, rngs=rngs)
        self.head = nnx.Param(jax.nn.initializers.normal(0.02)(rngs.params(), (VOCAB, WIDTH)))

    def hidden(self, ids):
        """(B, T) token ids -> (B, T, WIDTH) hidden states (each position sees its past)."""
        rows = _embed(self.tokens[...], ids)
        x = rows + self.positions[...][: ids.shape[1]]
        q, k, v = jnp.split(self.qkv(_rms(x)), 3, axis=-1)
        scores = jnp.einsum("btd,bsd->bts", q, k) / np.sqrt(WIDTH)
        causal = jnp.tril(jnp.ones((ids.shape[1], ids.shape[1]), bool))
        x = x + jnp.einsum("bts,bsd->btd", jax.nn.softmax(jnp.where(causal, scores, -1e9)), v)
        return x + self.down(jax.nn.gelu(self.up(_rms(x))))


def _embed(table, ids):
    """table[ids]; on a mesh the rows come out split like the ids (a gather of sharded ids
    spells its output sharding out on Explicit meshes)."""
    sharding = jax.typeof(ids).sharding
    if getattr(sharding, "mesh", None) is None or not sharding.mesh.axis_names:
        return table[ids]
    out = NamedSharding(sharding.mesh, P(*sharding.spec, None))
    return table.at[ids].get(out_sharding=out)


def _rms(x):
    return x * jax.lax.rsqrt(jnp.mean(x * x, axis=-1, keepdims=True) + 1e-6)


def sequences(rng, count, right):
    """`count` prompts with their right (or off-by-one) completions, (count, LENGTH) ids."""
    start = rng.integers(0, VOCAB, count)[:, None]
    step = rng.integers(1, 5, count)[:, None]
    ids = (start + step * np.arange(LENGTH)) % VOCAB
    wrong = np.where(right, 0, 1)[..., None] if np.ndim(right) else (0 if right else 1)
    ids[:, PROMPT:] = (ids[:, PROMPT:] + wrong) % VOCAB
    return ids.astype(np.int32)


def targets(ids):
    """Next-token labels of each position: the completion's tokens; the rest -100."""
    labels = np.full(ids.shape, -100, np.int32)
    labels[:, PROMPT - 1 : -1] = ids[:, PROMPT:]
    return labels


def sft_loss(model, ids, labels):
    return jaxloss.linear_cross_entropy(model.hidden(ids), model.head[...], labels, chunk_size=64)


def sequence_log_probs(model, ids, labels, head=None):
    """Each row's completion log-probability (the sum over its tokens) and token count."""
    weight = model.head[...] if head is None else head
    log_probs = jaxloss.linear_log_probs(model.hidden(ids), weight, labels, chunk_size=64)
    return jaxloss.sequence_sums(log_probs, where=labels != -100)


def dpo_loss(model, reference, ids, labels, beta):
    """Rows alternate chosen, rejected (so each data shard holds whole pairs)."""
    policy, counts = sequence_log_probs(model, ids, labels)
    ref, _ = sequence_log_probs(reference, ids, labels)
    out = jaxloss.dpo_loss(
        policy[0::2], policy[1::2], jax.lax.stop_gradient(ref[0::2]),
        jax.lax.stop_gradient(ref[1::2]), beta=beta, chosen_lengths=counts[0::2],
        rejected_lengths=counts[1::2],
    )  # fmt: skip
    return out.loss, out.metrics


def naive_dpo_loss(model, reference, ids, labels, beta):
    """The same loss from full logits: what every stack builds without a fused head."""

    def sums(m):
        logits = m.hidden(ids) @ m.head[...].T
        picked = jnp.take_along_axis(
            jax.nn.log_softmax(logits), jnp.maximum(labels, 0)[..., None], -1
        )[..., 0]
        return jnp.sum(jnp.where(labels != -100, picked, 0), axis=-1)

    policy, ref = sums(model), jax.lax.stop_gradient(sums(reference))
    margin = (policy[0::2] - ref[0::2]) - (policy[1::2] - ref[1::2])
    return jnp.mean(-jax.nn.log_sigmoid(beta * margin))


def shard(mesh, model):
    """The model's parameters placed on the mesh: the head's vocabulary rows over 'model',
    everything else whole on every device."""
    state = nnx.state(model)
    specs = jax.tree_util.tree_map_with_path(
        lambda path, _: P("model", None) if "head" in jax.tree_util.keystr(path) else P(), state
    )
    placed = jax.tree.map(lambda a, s: jax.device_put(a, NamedSharding(mesh, s)), state, specs)
    nnx.update(model, placed)
    return model


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sft-steps", type=int, default=150)
    parser.add_argument("--dpo-steps", type=int, default=120)
    parser.add_argument("--pairs", type=int, default=64, help="preference pairs per DPO step")
    parser.add_argument("--beta", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs", help="where dpo_sharded.png goes")
    args = parser.parse_args(argv)

    mesh = jax.make_mesh((2, 4), ("data", "model"))
    rows = NamedSharding(mesh, P("data"))
    rng = np.random.default_rng(args.seed)
    with jax.set_mesh(mesh):
        model = shard(mesh, TinyLM(rngs=nnx.Rngs(args.seed)))
        history = {"sft loss": [], "dpo loss": [], "reward margin": [], "accuracy": []}

        sft_optimizer = nnx.Optimizer(model, optax.adam(3e-3), wrt=nnx.Param)

        @nnx.jit
        def sft_step(model, optimizer, ids, labels):
            loss, grads = nnx.value_and_grad(sft_loss)(model, ids, labels)
            optimizer.update(model, grads)
            return loss

        for _ in (bar := tqdm(range(args.sft_steps), desc="SFT", leave=False)):
            ids = sequences(rng, 2 * args.pairs, rng.uniform(size=2 * args.pairs) < 0.5)
            loss = sft_step(model, sft_optimizer, jax.device_put(ids, rows),
                            jax.device_put(targets(ids), rows))  # fmt: skip
            history["sft loss"].append(float(loss))
            bar.set_postfix(loss=f"{float(loss):.3f}")

        reference = nnx.clone(model)  # frozen: never updated, never differentiated
        dpo_optimizer = nnx.Optimizer(model, optax.adam(1e-3), wrt=nnx.Param)

        @nnx.jit
        def dpo_step(model, optimizer, reference, ids, labels):
            (loss, metrics), grads = nnx.value_and_grad(dpo_loss, has_aux=True)(
                model, reference, ids, labels, args.beta
            )
            optimizer.update(model, grads)
            return loss, metrics

        def pair_batch():
            right = sequences(rng, args.pairs, True)
            wrong = right.copy()
            wrong[:, PROMPT:] = (wrong[:, PROMPT:] + 1) % VOCAB
            ids = np.stack([right, wrong], axis=1).reshape(2 * args.pairs, LENGTH)
            return jax.device_put(ids, rows), jax.device_put(targets(ids), rows)

        for _ in (bar := tqdm(range(args.dpo_steps), desc="DPO", leave=False)):
            loss, metrics = dpo_step(model, dpo_optimizer, reference, *pair_batch())
            history["dpo loss"].append(float(loss))
            history["reward margin"].append(float(metrics.reward_margin))
            history["accuracy"].append(float(metrics.reward_accuracy))
            bar.set_postfix(loss=f"{float(loss):.3f}", margin=f"{float(metrics.reward_margin):.2f}",
                            accuracy=f"{float(metrics.reward_accuracy):.2f}")  # fmt: skip

        ids, labels = pair_batch()
        fused_temp = (
            jax.jit(lambda m, r: nnx.grad(lambda m: dpo_loss(m, r, ids, labels, args.beta)[0])(m))
            .lower(model, reference).compile().memory_analysis().temp_size_in_bytes
        )  # fmt: skip
    whole = [np.asarray(ids), np.asarray(labels)]
    one_device = nnx.clone(model)
    nnx.update(one_device, jax.tree.map(np.asarray, nnx.state(one_device)))
    naive_temp = (
        jax.jit(lambda m, r: nnx.grad(lambda m: naive_dpo_loss(m, r, *whole, args.beta))(m))
        .lower(one_device, nnx.clone(one_device)).compile().memory_analysis().temp_size_in_bytes
    )  # fmt: skip

    for name in ("sft loss", "dpo loss", "reward margin", "accuracy"):
        values = history[name]
        if values:
            print(f"{name:>14}: first {values[0]:8.4f}   last {values[-1]:8.4f}")
    print(
        f"DPO step temp memory per device: fused head on the mesh {fused_temp / 2**10:.1f} KiB, "
        f"naive head on one device {naive_temp / 2**10:.1f} KiB"
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    _plot(history, out / "dpo_sharded.png")
    print(f"wrote {out / 'dpo_sharded.png'}")
    history["fused_temp_bytes"], history["naive_temp_bytes"] = fused_temp, naive_temp
    return history


def _plot(history, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    axes[0].plot(history["sft loss"])
    axes[0].set(title="SFT (fused cross-entropy)", xlabel="step", ylabel="loss")
    axes[1].plot(history["dpo loss"])
    axes[1].set(title="DPO loss", xlabel="step")
    axes[2].plot(history["reward margin"], label="reward margin")
    axes[2].plot(history["accuracy"], label="preference accuracy")
    axes[2].set(title="DPO rewards (frozen SFT reference)", xlabel="step")
    axes[2].legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


if __name__ == "__main__":
    main()
