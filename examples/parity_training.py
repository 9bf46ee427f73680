"""Step-by-step training parity: the torch tutorial models and their Flax ports, started from
the same (torch-initialised) weights and fed the same batches, give the same losses.

    python examples/parity_training.py [--steps 8] [--batch-size 16] [--rtol 1e-4]

For each model (the MLP, LeNet-5, the CIFAR-10 CNN) it builds the torch model, copies its
initial weights into the Flax model (Conv OIHW -> HWIO, Linear's transposed weight, NCHW
flatten order), runs K optimizer steps in both (torch.optim.SGD against the optax chain in
examples/common.py; torch's CrossEntropyLoss against jaxloss's cross_entropy), prints the
per-step losses side by side and exits non-zero if any step of any model differs by more than
--rtol (relative, float32). Needs torch (the test extra).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
import torch
from common import (
    MLP,
    Cifar10CNN,
    LeNet5,
    cross_entropy,
    digits,
    load_torch_state,
    make_train_step,
    sgd,
)
from flax import nnx
from mlp import class_weights, random_data
from torch import nn


class _Named(nn.Module):
    """A torch module with named layers and a forward given as a function (the tutorials'
    classes, written compactly)."""

    def __init__(self, forward, **layers):
        super().__init__()
        for name, layer in layers.items():
            setattr(self, name, layer)
        self._forward = forward

    def forward(self, x):
        return self._forward(self, x)


def torch_lenet():
    pool = nn.functional.max_pool2d
    return _Named(
        conv1=nn.Conv2d(1, 6, 5),
        conv2=nn.Conv2d(6, 16, 5),
        fc1=nn.Linear(256, 120),
        fc2=nn.Linear(120, 84),
        fc3=nn.Linear(84, 10),
        forward=lambda m, x: m.fc3(
            torch.relu(
                m.fc2(
                    torch.relu(
                        m.fc1(
                            torch.flatten(
                                pool(torch.relu(m.conv2(pool(torch.relu(m.conv1(x)), 2))), 2), 1
                            )
                        )
                    )
                )
            )
        ),
    )


def torch_cifar_cnn():
    pool = nn.functional.max_pool2d
    return _Named(
        conv1=nn.Conv2d(3, 32, 5, padding=2),
        conv2=nn.Conv2d(32, 32, 5, padding=2),
        conv3=nn.Conv2d(32, 64, 5, padding=2),
        fc1=nn.Linear(1024, 64),
        fc2=nn.Linear(64, 10),
        forward=lambda m, x: m.fc2(
            m.fc1(torch.flatten(pool(m.conv3(pool(m.conv2(pool(m.conv1(x), 2)), 2)), 2), 1))
        ),
    )


def _setups(seed: int):
    """(name, torch model, Flax model class, data (x NHWC or features, y), torch optimizer
    factory, optax transform, class weights)."""
    (mlp_x, mlp_y), _ = random_data(seed)
    weight = np.asarray(class_weights(mlp_y))
    (d28, y28), _ = digits(28, 1, seed=seed)
    (d32, y32), _ = digits(32, 3, seed=seed)
    return [
        (
            "MLP",
            torch_mlp_model(),
            MLP,
            (mlp_x, mlp_y),
            lambda p: torch.optim.SGD(p, lr=0.01, weight_decay=0.001),
            sgd(0.01, weight_decay=0.001),
            weight,
        ),
        (
            "LeNet-5",
            torch_lenet(),
            LeNet5,
            (d28, y28),
            lambda p: torch.optim.SGD(p, lr=0.01, momentum=0.9),
            sgd(0.01, momentum=0.9),
            None,
        ),
        (
            "CIFAR-10 CNN",
            torch_cifar_cnn(),
            Cifar10CNN,
            (d32, y32),
            lambda p: torch.optim.SGD(p, lr=0.01, momentum=0.9),
            sgd(0.01, momentum=0.9),
            None,
        ),
    ]


def torch_mlp_model():
    return _Named(
        fc1=nn.Linear(10, 20),
        fc2=nn.Linear(20, 5),
        forward=lambda m, x: m.fc2(torch.relu(m.fc1(x))),
    )


def run(steps: int = 8, batch_size: int = 16, seed: int = 0, models=None):
    """Returns {model name: (torch losses, jaxloss losses)} for `models` (names; all three by
    default)."""
    torch.manual_seed(seed)
    results = {}
    for name, torch_model, flax_class, (x, y), torch_opt, optax_tx, weight in _setups(seed):
        if models is not None and name not in models:
            continue
        flax_model = flax_class(rngs=nnx.Rngs(seed))
        load_torch_state(flax_model, torch_model.state_dict())
        optimizer = nnx.Optimizer(flax_model, optax_tx, wrt=nnx.Param)
        step_fn = make_train_step(cross_entropy(None if weight is None else weight))
        criterion = nn.CrossEntropyLoss(weight=None if weight is None else torch.tensor(weight))
        opt = torch_opt(torch_model.parameters())
        order = np.random.default_rng(seed).permutation(len(x))
        torch_losses, jax_losses = [], []
        for step in range(steps):
            idx = order[step * batch_size : (step + 1) * batch_size]
            xb, yb = x[idx], y[idx]
            # torch is NCHW; the Flax models are NHWC.
            xt = torch.from_numpy(xb.transpose(0, 3, 1, 2).copy() if xb.ndim == 4 else xb)
            loss = criterion(torch_model(xt), torch.from_numpy(yb.astype(np.int64)))
            opt.zero_grad()
            loss.backward()
            opt.step()
            torch_losses.append(loss.item())
            jax_losses.append(float(step_fn(flax_model, optimizer, xb, yb)))
        results[name] = (np.array(torch_losses), np.array(jax_losses))
    return results


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rtol", type=float, default=1e-4)
    args = p.parse_args(argv)
    results = run(args.steps, args.batch_size, args.seed)
    failed = False
    print(f"{'model':<14}{'step':>5}{'torch loss':>16}{'jaxloss loss':>16}{'rel. gap':>12}")
    for name, (theirs, ours) in results.items():
        gaps = np.abs(ours - theirs) / np.maximum(np.abs(theirs), 1e-12)
        for step, (a, b, gap) in enumerate(zip(theirs, ours, gaps)):
            print(f"{name:<14}{step:>5}{a:16.8f}{b:16.8f}{gap:12.2e}")
        worst = float(gaps.max())
        ok = worst <= args.rtol
        failed |= not ok
        print(
            f"{name}: worst relative gap {worst:.2e} over {len(gaps)} steps "
            f"({'ok' if ok else 'FAIL'}, rtol {args.rtol:g})"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
