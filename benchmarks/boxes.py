"""Box regression losses, forward+backward w.r.t. the predicted boxes on 1M matched pairs:
jaxloss (jitted) against torchvision.ops (eager torch at its fastest thread count), measured in
the same run (each contender in blocks of its own rounds, medians; see jaxloss.parity.timing).

    python benchmarks/boxes.py            # 1,048,576 boxes, float32
    python benchmarks/boxes.py --quick    # 4096 boxes, 2 rounds (CI)

torchvision has GIoU, DIoU and CIoU; the papers' losses without a torchvision counterpart
(EIoU, SIoU, Wise-IoU v3, alpha-CIoU) are timed too, for their cost next to CIoU's.
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np

import jaxloss
from jaxloss.compat import torchvision as tv_compat
from jaxloss.parity.references import torchvision_ops
from jaxloss.parity.timing import (
    default_results_dir,
    fastest_torch_threads,
    machine,
    side_by_side,
    write_result,
)

TORCHVISION = ("generalized_box_iou_loss", "distance_box_iou_loss", "complete_box_iou_loss")
PAPERS = {
    "eiou_loss": jaxloss.eiou_loss,
    "siou_loss": jaxloss.siou_loss,
    "wise_iou_loss (v3)": lambda p, t: jaxloss.wise_iou_loss(p, t, 0.5)[0],
    "alpha_iou_loss (ciou)": lambda p, t: jaxloss.alpha_iou_loss(p, t, base="ciou"),
}


def _boxes(rng, count):
    corner = rng.uniform(0, 100, (count, 2)).astype(np.float32)
    target = np.concatenate([corner, corner + rng.uniform(1, 30, (count, 2)).astype(np.float32)], 1)
    prediction = target + rng.normal(0, 5, target.shape).astype(np.float32)
    prediction[:, 2:] = np.maximum(prediction[:, 2:], prediction[:, :2] + 0.5)
    return prediction, target


def _jax_step(loss, prediction, target):
    p, t = jnp.asarray(prediction), jnp.asarray(target)
    step = jax.jit(jax.value_and_grad(lambda p, t: jnp.mean(loss(p, t))))
    return lambda: jax.block_until_ready(step(p, t))


def _torch_step(name, prediction, target):
    import torch

    function = getattr(torchvision_ops(), name)
    p, t = torch.from_numpy(prediction), torch.from_numpy(target)

    def step():
        leaf = p.detach().requires_grad_(True)
        loss = function(leaf, t, reduction="mean")
        loss.backward()
        return loss.item(), leaf.grad

    return step


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="4096 boxes, 2 rounds")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument(
        "--out", default=default_results_dir(), help="folder of boxes.json (default: per CPU kind)"
    )
    args = parser.parse_args(argv)
    count, repeats = (4096, 2) if args.quick else (1 << 20, args.repeats)
    prediction, target = _boxes(np.random.default_rng(0), count)
    print(
        f"box losses, forward+backward w.r.t. the predictions, {count:,} float32 pairs, "
        f"'mean', median of {repeats} rounds (ms)\non {machine()}"
    )
    print(
        f"{'loss':<28}{'jaxloss':>10}{'torchvision':>13}{'ratio':>8}   value: jaxloss / torchvision"
    )
    rows = []
    for name in TORCHVISION:
        ours = _jax_step(getattr(tv_compat, name), prediction, target)
        theirs = _torch_step(name, prediction, target)
        threads = fastest_torch_threads(theirs, repeats=2 if args.quick else 5)
        medians = side_by_side({"jaxloss": ours}, {"torchvision": theirs}, repeats)
        values = float(ours()[0]), theirs()[0]
        rows.append(dict(loss=name, torch_threads=threads, ms=medians, values=values))
        print(
            f"{name:<28}{medians['jaxloss']:10.2f}{medians['torchvision']:13.2f}"
            f"{medians['jaxloss'] / medians['torchvision']:8.2f}   "
            f"{values[0]:.7g} / {values[1]:.7g}  (torch threads: {threads})",
            flush=True,
        )
    for name, loss in PAPERS.items():
        ours = _jax_step(loss, prediction, target)
        medians = side_by_side({"jaxloss": ours}, {}, repeats)
        rows.append(dict(loss=name, ms=medians, values=(float(ours()[0]),)))
        print(f"{name:<28}{medians['jaxloss']:10.2f}{'-':>13}{'-':>8}   {float(ours()[0]):.7g}")
    print("ratio = jaxloss / torchvision; < 1 means jaxloss is faster.")
    write_result(f"{args.out}/boxes.json", pairs=count, rows=rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
