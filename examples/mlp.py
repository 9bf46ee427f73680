"""The classic small MLP with class weights and L2 (torch's SGD weight_decay), in Flax + jaxloss.

    python examples/mlp.py

Linear(10 -> 20) -> ReLU -> Linear(20 -> 5), cross-entropy with per-class weights (the rare
classes weigh more), SGD with learning rate 0.01 and weight decay 0.001 exactly as torch's
``optim.SGD(weight_decay=...)`` applies it. Data, as in the tutorial, are random: 10 Gaussian
features, labels from a fixed random linear teacher with imbalanced classes (so there is
something to learn and the class weights matter); 20% are held out.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import jax.numpy as jnp
import numpy as np
from common import MLP, cross_entropy, parser, sgd, train
from flax import nnx


def random_data(seed: int, n: int = 1000, features: int = 10, classes: int = 5):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, features)).astype(np.float32)
    teacher = rng.standard_normal((features, classes))
    bias = np.log([0.4, 0.3, 0.15, 0.1, 0.05])  # imbalanced classes
    y = np.argmax(x @ teacher + bias + rng.gumbel(size=(n, classes)), axis=1).astype(np.int32)
    split = int(0.8 * n)
    return (x[:split], y[:split]), (x[split:], y[split:])


def class_weights(labels, classes: int = 5):
    """Inverse class frequency, normalised to mean 1."""
    counts = np.bincount(labels, minlength=classes).astype(np.float32)
    weights = counts.sum() / np.maximum(counts, 1) / classes
    return jnp.asarray(weights / weights.mean())


def main(argv=None) -> dict:
    args = parser(__doc__.splitlines()[0], epochs=30, batch_size=32, lr=0.01).parse_args(argv)
    if args.data_dir:
        sys.exit("error: mlp.py trains on random data; it takes no --data-dir")
    train_data, test_data = random_data(args.seed)
    weight = class_weights(train_data[1])
    print(
        f"data: random (seed {args.seed}): {len(train_data[0])} train, {len(test_data[0])} "
        f"held-out; class weights {np.round(np.asarray(weight), 2).tolist()}"
    )
    model = MLP(rngs=nnx.Rngs(args.seed))
    optimizer = nnx.Optimizer(model, sgd(args.lr, weight_decay=0.001), wrt=nnx.Param)
    return train(model, optimizer, cross_entropy(weight), train_data, test_data, args, name="mlp")


if __name__ == "__main__":
    main()
