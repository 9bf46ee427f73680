"""Shared pieces of the Flax training examples: models, data sets, the training loop.

The models mirror the classic PyTorch tutorials layer for layer. Each flattens its feature maps
in torch's NCHW order, so the weights of the torch original load as they are (see
``load_torch_state``) and the two frameworks compute the same function.
"""

from __future__ import annotations

import argparse
import gzip
import pickle
import struct
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

import jaxloss

# ----------------------------------------------------------------------------- models


class MLP(nnx.Module):
    """Linear(10 -> 20) -> ReLU -> Linear(20 -> 5)."""

    def __init__(self, *, rngs: nnx.Rngs, features: int = 10, hidden: int = 20, classes: int = 5):
        self.fc1 = nnx.Linear(features, hidden, rngs=rngs)
        self.fc2 = nnx.Linear(hidden, classes, rngs=rngs)

    def __call__(self, x):
        return self.fc2(nnx.relu(self.fc1(x)))


def _flatten_like_torch(x):
    """(N, H, W, C) -> (N, C*H*W) in torch's NCHW order, so torch's Linear weights fit."""
    return jnp.transpose(x, (0, 3, 1, 2)).reshape(x.shape[0], -1)


def _pool(x):
    return nnx.max_pool(x, window_shape=(2, 2), strides=(2, 2))


class LeNet5(nnx.Module):
    """conv 1->6 k5, ReLU, pool 2, conv 6->16 k5, ReLU, pool 2, fc 256->120->84->10 (28x28 in)."""

    def __init__(self, *, rngs: nnx.Rngs):
        self.conv1 = nnx.Conv(1, 6, kernel_size=(5, 5), padding="VALID", rngs=rngs)
        self.conv2 = nnx.Conv(6, 16, kernel_size=(5, 5), padding="VALID", rngs=rngs)
        self.fc1 = nnx.Linear(256, 120, rngs=rngs)
        self.fc2 = nnx.Linear(120, 84, rngs=rngs)
        self.fc3 = nnx.Linear(84, 10, rngs=rngs)

    def __call__(self, x):  # (N, 28, 28, 1)
        x = _pool(nnx.relu(self.conv1(x)))
        x = _pool(nnx.relu(self.conv2(x)))
        x = _flatten_like_torch(x)
        return self.fc3(nnx.relu(self.fc2(nnx.relu(self.fc1(x)))))


class Cifar10CNN(nnx.Module):
    """The tutorial's CIFAR-10 net: three conv 5x5 pad 2 (3->32->32->64), each followed by a
    2x2 max-pool, flatten 1024 -> 64 -> 10. Like the tutorial, it has no activations besides
    the pools."""

    def __init__(self, *, rngs: nnx.Rngs):
        self.conv1 = nnx.Conv(3, 32, kernel_size=(5, 5), padding=2, rngs=rngs)
        self.conv2 = nnx.Conv(32, 32, kernel_size=(5, 5), padding=2, rngs=rngs)
        self.conv3 = nnx.Conv(32, 64, kernel_size=(5, 5), padding=2, rngs=rngs)
        self.fc1 = nnx.Linear(1024, 64, rngs=rngs)
        self.fc2 = nnx.Linear(64, 10, rngs=rngs)

    def __call__(self, x):  # (N, 32, 32, 3)
        x = _pool(self.conv3(_pool(self.conv2(_pool(self.conv1(x))))))
        return self.fc2(self.fc1(_flatten_like_torch(x)))


def load_torch_state(model: nnx.Module, state_dict) -> None:
    """Copies a torch state dict (``name.weight`` / ``name.bias``, as NumPy or torch tensors)
    into the Flax model's layers of the same names: Conv OIHW -> HWIO, Linear (out, in) -> (in,
    out). Raises KeyError/ValueError on a missing layer or a shape that does not fit."""
    for key, value in state_dict.items():
        layer_name, kind = key.rsplit(".", 1)
        layer = getattr(model, layer_name)
        # A copy: jnp.asarray may alias host memory, and torch's optimizer updates in place.
        array = np.array(
            value.detach().cpu().numpy() if hasattr(value, "detach") else value, copy=True
        )
        if kind == "weight":
            array = array.transpose(2, 3, 1, 0) if array.ndim == 4 else array.T
            target = layer.kernel
        else:
            target = layer.bias
        if tuple(target[...].shape) != array.shape:
            raise ValueError(
                f"{key}: torch shape {array.shape} (converted) does not fit the "
                f"Flax parameter of shape {tuple(target[...].shape)}."
            )
        target[...] = jnp.array(np.ascontiguousarray(array), target[...].dtype, copy=True)


# ----------------------------------------------------------------------------- data


class DataError(ValueError):
    """A data directory or file that is missing or not in the expected format."""


def digits(size: int, channels: int, *, seed: int = 0, test_fraction: float = 0.2):
    """scikit-learn's bundled 8x8 handwritten digits (1797 images, no download), resized to
    `size` x `size` (bilinear) with `channels` copies, scaled to [0, 1], split train/test."""
    from sklearn.datasets import load_digits

    data = load_digits()
    images = (data.images / 16.0).astype(np.float32)[..., None]  # (N, 8, 8, 1)
    images = np.asarray(jax.image.resize(images, (len(images), size, size, 1), "bilinear"))
    images = np.repeat(images, channels, axis=-1)
    labels = data.target.astype(np.int32)
    order = np.random.default_rng(seed).permutation(len(images))
    n_test = int(len(images) * test_fraction)
    test, train = order[:n_test], order[n_test:]
    return (images[train], labels[train]), (images[test], labels[test])


_IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def _find(directory: Path, name: str) -> Path:
    for candidate in (directory / name, directory / (name + ".gz")):
        if candidate.is_file():
            return candidate
    raise DataError(
        f"{directory}: missing {name} (or {name}.gz), one of the standard MNIST "
        f"IDX files: {', '.join(n for pair in _IDX_FILES.values() for n in pair)}."
    )


def read_idx(path: Path, expected_dims: int) -> np.ndarray:
    """Reads an IDX file of unsigned bytes (gzipped or not): magic 0x0000 08 `dims`, then
    `dims` big-endian uint32 sizes, then the data."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except OSError as err:
        raise DataError(f"{path}: cannot read it ({err}).") from None
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] != 0x08 or raw[3] != expected_dims:
        raise DataError(
            f"{path}: not an IDX file of unsigned bytes with {expected_dims} "
            f"dimension(s): expected magic 00 00 08 {expected_dims:02x}, got "
            f"{raw[:4].hex(' ') or 'an empty file'}."
        )
    header = 4 + 4 * expected_dims
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header.")
    shape = struct.unpack(f">{expected_dims}I", raw[4:header])
    size = int(np.prod(shape))
    if len(raw) - header != size:
        raise DataError(
            f"{path}: IDX header says {shape} = {size} bytes of data, the file has "
            f"{len(raw) - header}."
        )
    return np.frombuffer(raw, np.uint8, offset=header).reshape(shape)


def mnist(data_dir) -> tuple:
    """MNIST from a directory of the four standard IDX files: ((train x, y), (test x, y)) with
    images (N, 28, 28, 1) in [0, 1]."""
    directory = Path(data_dir)
    if not directory.is_dir():
        raise DataError(
            f"--data-dir {directory}: no such directory (expected the four MNIST IDX files in it)."
        )
    out = []
    for split in ("train", "test"):
        image_file, label_file = (_find(directory, name) for name in _IDX_FILES[split])
        images, labels = read_idx(image_file, 3), read_idx(label_file, 1)
        if len(images) != len(labels):
            raise DataError(
                f"{image_file} holds {len(images)} images but {label_file} {len(labels)} labels."
            )
        if images.shape[1:] != (28, 28):
            raise DataError(f"{image_file}: expected 28x28 images, got {images.shape[1:]}.")
        out.append(((images / 255.0).astype(np.float32)[..., None], labels.astype(np.int32)))
    return tuple(out)


def _cifar_batch(path: Path):
    try:
        with open(path, "rb") as f:
            batch = pickle.load(f, encoding="bytes")
    except FileNotFoundError:
        raise DataError(
            f"missing {path}: the CIFAR-10 python version has data_batch_1..5 and test_batch."
        ) from None
    except Exception as err:
        raise DataError(f"{path}: not a CIFAR-10 python pickle batch ({err}).") from None
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise DataError(
            f"{path}: expected a dict with b'data' and b'labels'; got "
            f"{sorted(batch) if isinstance(batch, dict) else type(batch).__name__}."
        )
    data = np.asarray(batch[b"data"], np.uint8)
    labels = np.asarray(batch[b"labels"], np.int32)
    if data.ndim != 2 or data.shape[1] != 3072 or len(data) != len(labels):
        raise DataError(
            f"{path}: expected data (N, 3072) and N labels; got data "
            f"{data.shape} and {len(labels)} labels."
        )
    # Rows are 1024 red, 1024 green, 1024 blue values of a 32x32 image (CHW).
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return (images / 255.0).astype(np.float32), labels


def cifar10(data_dir) -> tuple:
    """CIFAR-10 from the standard python pickle batches (in `data_dir` or in its
    cifar-10-batches-py folder): ((train x, y), (test x, y)), images (N, 32, 32, 3) in [0, 1]."""
    directory = Path(data_dir)
    if not directory.is_dir():
        raise DataError(
            f"--data-dir {directory}: no such directory (expected the CIFAR-10 "
            "python batches in it)."
        )
    if (directory / "cifar-10-batches-py").is_dir():
        directory = directory / "cifar-10-batches-py"
    train = [_cifar_batch(directory / f"data_batch_{i}") for i in range(1, 6)]
    test = _cifar_batch(directory / "test_batch")
    return ((np.concatenate([x for x, _ in train]), np.concatenate([y for _, y in train])), test)


# ----------------------------------------------------------------------------- training


def parser(description: str, *, epochs: int, batch_size: int, lr: float) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--epochs", type=int, default=epochs)
    p.add_argument(
        "--steps",
        type=int,
        default=None,
        help="stop after this many optimizer steps (overrides --epochs)",
    )
    p.add_argument("--batch-size", type=int, default=batch_size)
    p.add_argument("--lr", type=float, default=lr)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--data-dir",
        default=None,
        help="directory of the real data set; default: the embedded digits",
    )
    p.add_argument("--out", default="runs", help="where the loss/accuracy plot goes")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def sgd(lr: float, *, momentum: float = 0.0, weight_decay: float = 0.0):
    """torch.optim.SGD: weight decay added to the gradient before momentum, as torch does."""
    return optax.chain(
        optax.add_decayed_weights(weight_decay), optax.sgd(lr, momentum=momentum or None)
    )


def make_train_step(loss_fn):
    """A jitted step: loss_fn(logits, labels) -> scalar; returns the batch loss."""

    @nnx.jit
    def train_step(model, optimizer, images, labels):
        def objective(model):
            return loss_fn(model(images), labels)

        loss, grads = nnx.value_and_grad(objective)(model)
        optimizer.update(model, grads)
        return loss

    return train_step


@nnx.jit
def _predict(model, images):
    return jnp.argmax(model(images), axis=-1)


def accuracy(model, images, labels, batch_size: int = 1000) -> float:
    hits = sum(
        int(jnp.sum(_predict(model, images[i : i + batch_size]) == labels[i : i + batch_size]))
        for i in range(0, len(images), batch_size)
    )
    return hits / max(len(images), 1)


def train(model, optimizer, loss_fn, train_data, test_data, args, *, name: str) -> dict:
    """Shuffled mini-batch training with a tqdm bar (running loss); evaluates held-out
    accuracy after every epoch, prints it, saves the curves as PNG in args.out."""
    from tqdm import tqdm

    images, labels = train_data
    steps_per_epoch = max(len(images) // args.batch_size, 1)
    total = args.steps if args.steps is not None else args.epochs * steps_per_epoch
    rng = np.random.default_rng(args.seed)
    step_fn = make_train_step(loss_fn)
    history = {"step": [], "loss": [], "epoch_step": [], "test_accuracy": []}
    start = time.perf_counter()
    bar = tqdm(total=total, desc=name, unit="step", disable=args.no_progress)
    step, running = 0, None
    while step < total:
        order = rng.permutation(len(images))
        for b in range(steps_per_epoch):
            if step == total:
                break
            idx = order[b * args.batch_size : (b + 1) * args.batch_size]
            loss = float(step_fn(model, optimizer, images[idx], labels[idx]))
            running = loss if running is None else 0.9 * running + 0.1 * loss
            history["step"].append(step)
            history["loss"].append(loss)
            step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{running:.4f}")
        history["epoch_step"].append(step)
        history["test_accuracy"].append(accuracy(model, *test_data))
        bar.write(
            f"epoch {len(history['epoch_step'])}: loss {running:.4f}, "
            f"test accuracy {100 * history['test_accuracy'][-1]:.1f}%"
        )
    bar.close()
    history["seconds"] = time.perf_counter() - start
    print(f"test accuracy: {100 * history['test_accuracy'][-1]:.1f}%")
    history["plot"] = str(plot(history, Path(args.out), name))
    print(f"trained {step} steps in {history['seconds']:.1f} s; curves saved to {history['plot']}")
    return history


def plot(history: dict, out: Path, name: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot(history["step"], history["loss"], lw=0.8)
    left.set(title=f"{name}: training loss", xlabel="step", ylabel="cross-entropy")
    right.plot(history["epoch_step"], [100 * a for a in history["test_accuracy"]], marker="o")
    right.set(title="held-out accuracy", xlabel="step", ylabel="%")
    fig.tight_layout()
    path = out / f"{name}.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def cross_entropy(weight=None):
    """The examples' criterion: jaxloss's cross-entropy (torch's CrossEntropyLoss)."""
    return lambda logits, labels: jaxloss.cross_entropy(logits, labels, class_weights=weight)
