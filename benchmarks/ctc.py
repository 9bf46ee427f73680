"""CTC forward+backward (w.r.t. the logits): jaxloss vs optax.losses.ctc_loss vs torch's
ctc_loss, measured side by side in one run, each in blocks of its own rounds (medians).

    python benchmarks/ctc.py            # (B=16, T=200, C=32, S=50) and (B=64, T=500, C=100, S=100)
    python benchmarks/ctc.py --quick    # tiny shapes, to check the code runs (CI)

torch runs at its fastest thread count, measured in the same run, in its own block of rounds
(see jaxloss.parity.timing). Every contender gets the
same float32 logits and the same ragged lengths (inputs 80-100% of T,
labels 50-100% of S), computes a log-softmax and the summed CTC loss, and returns the gradient
w.r.t. the logits; torch gets its own (T, B, C) layout.
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np

import jaxloss
from jaxloss.parity.timing import (
    default_results_dir,
    fastest_torch_threads,
    machine,
    side_by_side,
    write_result,
)

SHAPES = [(16, 200, 32, 50), (64, 500, 100, 100)]
QUICK_SHAPES = [(2, 12, 5, 4)]


def _problem(rng, batch, steps, classes, width):
    logits = rng.standard_normal((batch, steps, classes)).astype(np.float32)
    labels = rng.integers(1, classes, (batch, width)).astype(np.int32)
    input_lengths = rng.integers(int(0.8 * steps), steps + 1, batch).astype(np.int32)
    label_lengths = rng.integers(max(width // 2, 1), width + 1, batch).astype(np.int32)
    return logits, labels, input_lengths, label_lengths


def _contenders(logits, labels, input_lengths, label_lengths):
    import optax
    import torch

    steps, width = logits.shape[1], labels.shape[1]
    x, y = jnp.asarray(logits), jnp.asarray(labels)
    il, ll = jnp.asarray(input_lengths), jnp.asarray(label_lengths)
    logit_pad = (jnp.arange(steps)[None, :] >= il[:, None]).astype(jnp.float32)
    label_pad = (jnp.arange(width)[None, :] >= ll[:, None]).astype(jnp.float32)

    ours = jax.jit(
        jax.value_and_grad(
            lambda x: jaxloss.ctc_loss(x, y, input_lengths=il, label_lengths=ll, reduction="sum")
        )
    )
    theirs = jax.jit(
        jax.value_and_grad(lambda x: jnp.sum(optax.losses.ctc_loss(x, logit_pad, y, label_pad)))
    )

    x_t = torch.from_numpy(np.ascontiguousarray(logits.transpose(1, 0, 2)))
    y_t = torch.from_numpy(labels.astype(np.int64))
    il_t, ll_t = (
        torch.from_numpy(input_lengths.astype(np.int64)),
        torch.from_numpy(label_lengths.astype(np.int64)),
    )

    def torch_step():
        leaf = x_t.detach().requires_grad_(True)
        loss = torch.nn.functional.ctc_loss(leaf.log_softmax(2), y_t, il_t, ll_t, reduction="sum")
        loss.backward()
        return loss.item(), leaf.grad

    return {
        "jaxloss": lambda: jax.block_until_ready(ours(x)),
        "optax": lambda: jax.block_until_ready(theirs(x)),
        "torch": torch_step,
    }


def _agreement(steps):
    """Loss values of the three contenders, to show they compute the same thing."""
    ours, optax_out, (torch_loss, _) = steps["jaxloss"](), steps["optax"](), steps["torch"]()
    return float(ours[0]), float(optax_out[0]), torch_loss


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="tiny shapes, 2 repeats")
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument(
        "--out", default=default_results_dir(), help="folder of ctc.json (default: per CPU kind)"
    )
    args = parser.parse_args(argv)
    shapes, repeats = (QUICK_SHAPES, 2) if args.quick else (SHAPES, args.repeats)
    rng = np.random.default_rng(0)
    print(
        f"CTC forward+backward w.r.t. logits, float32, median of {repeats} rounds "
        f"(ms)\non {machine()}"
    )
    threads, rows = {}, []
    print(
        f"{'B, T, C, S':<22}{'jaxloss':>10}{'optax':>10}{'torch':>10}"
        f"{'ours/optax':>12}{'ours/torch':>12}   loss: jaxloss / optax / torch"
    )
    for shape in shapes:
        steps = _contenders(*_problem(rng, *shape))
        threads[shape] = fastest_torch_threads(steps["torch"], repeats=3 if args.quick else 7)
        medians = side_by_side(
            {k: steps[k] for k in ("jaxloss", "optax")}, {"torch": steps["torch"]}, repeats
        )
        values = _agreement(steps)
        rows.append(dict(shape=shape, torch_threads=threads[shape], ms=medians, losses=values))
        print(
            f"{shape!s:<22}{medians['jaxloss']:10.2f}{medians['optax']:10.2f}"
            f"{medians['torch']:10.2f}{medians['jaxloss'] / medians['optax']:12.2f}"
            f"{medians['jaxloss'] / medians['torch']:12.2f}   "
            + " / ".join(f"{v:.6g}" for v in values),
            flush=True,
        )
    print(
        "ratio = jaxloss / other; < 1 means jaxloss is faster. torch threads (its fastest "
        "count, measured here): " + ", ".join(f"{s}: {n}" for s, n in threads.items())
    )
    write_result(f"{args.out}/ctc.json", rows=rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
