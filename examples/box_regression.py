"""Box regression with the IoU losses side by side: GIoU, DIoU, CIoU, EIoU, SIoU and Wise-IoU.

Each loss fits the same free boxes to the same random targets with Adam, from the same start
(most pairs far apart, none overlapping much), in one jitted `lax.scan` per loss. It writes a
PNG of the mean IoU against the step for each loss and prints each loss's final mean IoU and
the steps it took to reach a mean IoU of 0.5 and 0.9.

    python examples/box_regression.py                   # 300 steps, 512 boxes
    python examples/box_regression.py --steps 50 --out /tmp/boxes.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxloss


def _boxes(params):
    """Free parameters (cx, cy, log w, log h) -> valid xyxy boxes."""
    centre, log_size = params[:, :2], params[:, 2:]
    half = jnp.exp(log_size) / 2
    return jnp.concatenate([centre - half, centre + half], axis=1)


def _problem(key, count):
    k1, k2, k3, k4 = jax.random.split(key, 4)
    target_centre = jax.random.uniform(k1, (count, 2), minval=0.0, maxval=10.0)
    target_size = jax.random.uniform(k2, (count, 2), minval=0.5, maxval=3.0)
    targets = jnp.concatenate([target_centre - target_size / 2, target_centre + target_size / 2], 1)
    # Starts: centres shifted by 1-4 sizes in a random direction, sizes off by up to 3x.
    angle = jax.random.uniform(k3, (count,), maxval=2 * np.pi)
    shift = jax.random.uniform(k4, (count,), minval=1.0, maxval=4.0)[:, None] * target_size
    centre = target_centre + shift * jnp.stack([jnp.cos(angle), jnp.sin(angle)], 1)
    log_size = jnp.log(target_size) + jax.random.uniform(k4, (count, 2), minval=-1.1, maxval=1.1)
    return targets, jnp.concatenate([centre, log_size], 1)


def _mean_iou(params, targets):
    return jnp.mean(jnp.diagonal(jaxloss.box_iou(_boxes(params), targets)))


LOSSES = {
    "GIoU": jaxloss.generalized_box_iou_loss,
    "DIoU": jaxloss.distance_box_iou_loss,
    "CIoU": jaxloss.complete_box_iou_loss,
    "EIoU": jaxloss.eiou_loss,
    "SIoU": jaxloss.siou_loss,
    "Wise-IoU v3": None,  # carries its running mean, below
}


def fit(name, targets, start, steps, learning_rate=0.05):
    """(mean IoU after each step, final boxes) of one loss."""
    optimizer = optax.adam(learning_rate)

    def loss_and_mean(params, running_mean):
        boxes = _boxes(params)
        if name == "Wise-IoU v3":
            # momentum 1 - 0.05**(1/steps): the authors' rule with n·t = the whole run
            momentum = 1 - 0.05 ** (1 / steps)
            return jaxloss.wise_iou_loss(boxes, targets, running_mean, momentum=momentum)
        return LOSSES[name](boxes, targets), running_mean

    def step(carry, _):
        params, opt_state, running_mean = carry
        (_, running_mean), grads = jax.value_and_grad(loss_and_mean, has_aux=True)(
            params, running_mean
        )
        updates, opt_state = optimizer.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        return (params, opt_state, running_mean), _mean_iou(params, targets)

    @jax.jit
    def run(params):
        carry = (params, optimizer.init(params), jnp.asarray(1.0))
        (params, _, _), history = jax.lax.scan(step, carry, None, length=steps)
        return history, _boxes(params)

    return run(start)


def _first_step_reaching(history, level):
    reached = np.nonzero(np.asarray(history) >= level)[0]
    return int(reached[0]) + 1 if reached.size else None


def _plot(histories, path, count):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, history in histories.items():
        ax.plot(np.arange(1, len(history) + 1), history, label=name)
    ax.set_xlabel("step (Adam, lr 0.05)")
    ax.set_ylabel(f"mean IoU over {count} boxes")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title("Fitting boxes to random targets")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--boxes", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("box_regression.png"))
    args = parser.parse_args(argv)
    targets, start = _problem(jax.random.key(args.seed), args.boxes)
    initial = float(_mean_iou(start, targets))
    print(f"{args.boxes} boxes, {args.steps} steps; mean IoU at the start {initial:.3f}")
    print(f"{'loss':<14}{'final mean IoU':>16}{'steps to 0.5':>14}{'steps to 0.9':>14}")
    histories, finals = {}, {}
    for name in LOSSES:
        history, _ = fit(name, targets, start, args.steps)
        histories[name] = np.asarray(history)
        finals[name] = float(history[-1])
        to_half, to_most = (_first_step_reaching(history, level) for level in (0.5, 0.9))
        print(
            f"{name:<14}{finals[name]:>16.4f}{to_half if to_half else '-':>14}"
            f"{to_most if to_most else '-':>14}",
            flush=True,
        )
    _plot(histories, args.out, args.boxes)
    print(f"wrote {args.out}")
    return finals


if __name__ == "__main__":
    main()
