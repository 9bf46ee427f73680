"""The classic CIFAR-10 CNN trained with jaxloss's cross-entropy, in Flax (nnx) with optax SGD.

    python examples/cifar10_cnn.py                          # embedded digits, no download
    python examples/cifar10_cnn.py --data-dir ~/cifar10    # data_batch_1..5 + test_batch

Without --data-dir it trains on scikit-learn's bundled 8x8 handwritten digits resized to
32x32x3 - a stand-in that needs no download, not CIFAR-10.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Cifar10CNN, DataError, cifar10, cross_entropy, digits, parser, sgd, train
from flax import nnx


def main(argv=None) -> dict:
    args = parser(__doc__.splitlines()[0], epochs=10, batch_size=64, lr=0.01).parse_args(argv)
    if args.data_dir:
        train_data, test_data = cifar10(args.data_dir)
        print(
            f"data: CIFAR-10 from {args.data_dir} ({len(train_data[0])} train, "
            f"{len(test_data[0])} test images)"
        )
    else:
        train_data, test_data = digits(32, 3, seed=args.seed)
        print(
            f"data: embedded scikit-learn 8x8 digits resized to 32x32x3 ({len(train_data[0])} "
            f"train, {len(test_data[0])} held-out images; not CIFAR-10 - pass --data-dir)"
        )
    model = Cifar10CNN(rngs=nnx.Rngs(args.seed))
    optimizer = nnx.Optimizer(model, sgd(args.lr, momentum=0.9), wrt=nnx.Param)
    return train(model, optimizer, cross_entropy(), train_data, test_data, args, name="cifar10_cnn")


if __name__ == "__main__":
    try:
        main()
    except DataError as err:
        sys.exit(f"error: {err}")
