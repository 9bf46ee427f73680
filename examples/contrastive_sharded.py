"""Two towers trained with SigLIP's sigmoid loss on a batch split over 8 CPU devices, the texts
passed around a ring of collective permutes.

    python examples/contrastive_sharded.py [--steps 300] [--batch 256] [--out runs]

The data, embedded: scikit-learn's bundled 8x8 handwritten digits against the English names of
their classes ("zero" ... "nine"). The image tower is an MLP on the 64 pixels; the text tower
embeds a name's letters and their positions and pools them. Both end in 32-dim unit vectors,
and the logit scale and bias are learned (SigLIP's start: scale e^log(10), bias -10). Rows of
the same digit are positives of each other (`group_ids`).

Each step calls `jaxloss.siglip_loss` on arrays whose batch axis is split over an Explicit mesh
of 8 devices: the loss runs itself per device as a bidirectional ring, each device holding its
rows against one block of texts per direction, never the (B, B) logits. It shows a progress
bar, prints the held-out retrieval accuracy (each test image against the ten names) as it
rises, writes a PNG of the loss and the accuracy, and at the end compares the per-device
memory of a step with the gather-everything version. About a minute on 2 cores.
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
from jax import lax
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P
from tqdm import tqdm

import jaxloss

NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
LETTERS = 27  # a-z and padding
LONGEST = max(len(n) for n in NAMES)
EMBEDDING = 32


def spelled(labels: np.ndarray) -> np.ndarray:
    """The class names of `labels` as letter codes, (N, LONGEST), 0 for padding."""
    codes = np.zeros((len(NAMES), LONGEST), np.int32)
    for row, name in enumerate(NAMES):
        codes[row, : len(name)] = [ord(c) - ord("a") + 1 for c in name]
    return codes[labels]


def _unit(x):
    return x * lax.rsqrt(jnp.sum(x * x, axis=-1, keepdims=True) + 1e-12)


class Towers(nnx.Module):
    def __init__(self, *, rngs: nnx.Rngs):
        self.image1 = nnx.Linear(64, 128, rngs=rngs)
        self.image2 = nnx.Linear(128, EMBEDDING, rngs=rngs)
        # One-hot letters times a (LETTERS, 48) table: an embedding lookup that needs no
        # gather along the sharded batch axis.
        self.letters = nnx.Linear(LETTERS, 48, use_bias=False, rngs=rngs)
        self.positions = nnx.Param(0.1 * jax.random.normal(rngs.params(), (LONGEST, 48)))
        self.text1 = nnx.Linear(48, 96, rngs=rngs)
        self.text2 = nnx.Linear(96, EMBEDDING, rngs=rngs)
        self.log_scale = nnx.Param(jnp.log(10.0))
        self.bias = nnx.Param(jnp.asarray(-10.0))

    def images(self, pixels):  # (N, 64) in [0, 1]
        return _unit(self.image2(nnx.gelu(self.image1(pixels))))

    def texts(self, codes):  # (N, LONGEST) letter codes
        present = (codes > 0)[..., None]
        letters = (self.letters(jax.nn.one_hot(codes, LETTERS)) + self.positions[...]) * present
        pooled = jnp.sum(letters, axis=1) / jnp.sum(present, axis=1)
        return _unit(self.text2(nnx.gelu(self.text1(pooled))))


def loss_fn(model, pixels, codes, labels):
    return jaxloss.siglip_loss(
        model.images(pixels), model.texts(codes), jnp.exp(model.log_scale[...]),
        model.bias[...], group_ids=labels,
    )  # fmt: skip


def retrieval_accuracy(model, pixels, labels) -> float:
    """Top-1 accuracy of each image's nearest class name among the ten."""
    names = model.texts(jnp.asarray(spelled(np.arange(10))))
    scores = model.images(jnp.asarray(pixels)) @ names.T
    return float(jnp.mean(jnp.argmax(scores, axis=1) == jnp.asarray(labels)))


def _step_temp(mesh, batch, method) -> int:
    """XLA temp bytes per device of the loss's value and gradient at `batch` pairs of
    EMBEDDING-dim embeddings: the ring that training uses (`jaxloss.siglip_loss` on the
    sharded batch), or every text gathered to every device."""
    rows = NamedSharding(mesh, P("batch", None))
    spec = jax.ShapeDtypeStruct((batch, EMBEDDING), jnp.float32, sharding=rows)
    scalar = jax.ShapeDtypeStruct((), jnp.float32, sharding=NamedSharding(mesh, P()))

    def per_device(i, t, s, b):
        loss = jaxloss.parallel.siglip_loss(i, t, s, b, axis_name="batch", method="gather")
        return lax.pmean(loss, "batch")

    def loss(i, t, s, b):
        if method == "ring":
            return jaxloss.siglip_loss(i, t, s, b)
        return jax.shard_map(
            per_device, mesh=mesh, in_specs=(P("batch"), P("batch"), P(), P()), out_specs=P()
        )(i, t, s, b)

    step = jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2, 3)))
    return int(
        step.lower(spec, spec, scalar, scalar).compile().memory_analysis().temp_size_in_bytes
    )


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch", type=int, default=256, help="pairs per step (8 devices)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs", help="where contrastive_sharded.png goes")
    args = parser.parse_args(argv)

    from sklearn.datasets import load_digits

    digits = load_digits()
    pixels = (digits.data / 16.0).astype(np.float32)
    labels = digits.target.astype(np.int32)
    order = np.random.default_rng(args.seed).permutation(len(labels))
    test, train = order[:360], order[360:]

    mesh = jax.make_mesh((8,), ("batch",), axis_types=(AxisType.Explicit,))
    rows = NamedSharding(mesh, P("batch"))
    rng = np.random.default_rng(args.seed)
    history = {"loss": [], "step": [], "accuracy": []}
    with jax.set_mesh(mesh):
        model = Towers(rngs=nnx.Rngs(args.seed))
        optimizer = nnx.Optimizer(model, optax.adam(3e-3), wrt=nnx.Param)

        @nnx.jit
        def train_step(model, optimizer, pixels, codes, labels):
            loss, grads = nnx.value_and_grad(loss_fn)(model, pixels, codes, labels)
            optimizer.update(model, grads)
            return loss

        for step in (bar := tqdm(range(args.steps), desc="SigLIP ring", leave=False)):
            pick = train[rng.integers(0, len(train), size=args.batch)]
            batch = [jax.device_put(a, rows) for a in (pixels[pick], spelled(labels[pick]),
                                                       labels[pick])]  # fmt: skip
            loss = float(train_step(model, optimizer, *batch))
            history["loss"].append(loss)
            if step % 25 == 0 or step == args.steps - 1:
                accuracy = retrieval_accuracy(model, pixels[test], labels[test])
                history["step"].append(step)
                history["accuracy"].append(accuracy)
                bar.write(f"step {step:4d}  loss {loss:.4f}  held-out retrieval accuracy "
                          f"{accuracy:.3f}")  # fmt: skip
            bar.set_postfix(loss=f"{loss:.4f}")

    memory = {
        batch: {method: _step_temp(mesh, batch, method) for method in ("ring", "gather")}
        for batch in (args.batch, 8192)
    }
    for batch, temps in memory.items():
        print(
            f"step temp memory per device at B = {batch}: ring {temps['ring'] / 2**10:.0f} KiB, "
            f"gather-everything {temps['gather'] / 2**10:.0f} KiB"
        )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    _plot(history, out / "contrastive_sharded.png")
    print(f"wrote {out / 'contrastive_sharded.png'}")
    history["memory"] = memory
    return history


def _plot(history, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    axes[0].plot(history["loss"])
    axes[0].set(
        title="SigLIP loss (ring over 8 devices)", xlabel="step", ylabel="loss", yscale="log"
    )
    axes[1].plot(history["step"], history["accuracy"], marker="o")
    axes[1].set(title="held-out retrieval accuracy (image -> name)", xlabel="step", ylim=(0, 1))
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


if __name__ == "__main__":
    main()
