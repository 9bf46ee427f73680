"""LeNet-5 trained with jaxloss's cross-entropy, in Flax (nnx) with optax SGD + momentum.

    python examples/mnist_lenet.py                      # embedded digits, no download
    python examples/mnist_lenet.py --data-dir ~/mnist   # the four MNIST IDX files (.gz or not)

Without --data-dir it trains on scikit-learn's bundled 8x8 handwritten digits, resized to
28x28 (1437 training and 360 held-out images) - real digits, but not MNIST.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import DataError, LeNet5, cross_entropy, digits, mnist, parser, sgd, train
from flax import nnx


def main(argv=None) -> dict:
    args = parser(__doc__.splitlines()[0], epochs=20, batch_size=32, lr=0.01).parse_args(argv)
    if args.data_dir:
        train_data, test_data = mnist(args.data_dir)
        print(
            f"data: MNIST from {args.data_dir} ({len(train_data[0])} train, "
            f"{len(test_data[0])} test images)"
        )
    else:
        train_data, test_data = digits(28, 1, seed=args.seed)
        print(
            f"data: embedded scikit-learn 8x8 digits resized to 28x28 ({len(train_data[0])} "
            f"train, {len(test_data[0])} held-out images; not MNIST - pass --data-dir for it)"
        )
    model = LeNet5(rngs=nnx.Rngs(args.seed))
    optimizer = nnx.Optimizer(model, sgd(args.lr, momentum=0.9), wrt=nnx.Param)
    return train(model, optimizer, cross_entropy(), train_data, test_data, args, name="lenet5")


if __name__ == "__main__":
    try:
        main()
    except DataError as err:
        sys.exit(f"error: {err}")
