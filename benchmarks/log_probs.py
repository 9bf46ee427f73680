"""Per-token log-probabilities and fused distillation from linear heads: jaxloss against naive
JAX (full logits, log-softmax, gather) and Liger-Kernel's torch chunked path, side by side in
one run. Prints a table and writes JSON.

    python benchmarks/log_probs.py             # the issue's shapes (several minutes)
    python benchmarks/log_probs.py --quick     # tiny shapes, to check the code runs (CI)
    python benchmarks/log_probs.py --out DIR   # where log_probs.json goes
    python benchmarks/log_probs.py --only distillation   # rerun one section, keeping the
                                               # other's rows of this CPU kind's results

Forward+backward w.r.t. the student's x and W (a random cotangent on the log-probabilities;
the distillation loss is the JSD with β = 0.5, 'mean'), best and median ms of interleaved
rounds, and XLA's compiled temp size (the memory a step needs besides its inputs and
outputs). Liger runs at torch's fastest thread count, found in the same run, and its float32
inputs only (its bf16 CPU matmuls are not a fair comparison). Targets: jaxloss's temp memory
<= 1/8 of naive's and its time <= naive's.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import jaxloss
from jaxloss.parity.timing import (
    default_results_dir,
    machine,
    machine_record,
    print_step_rows,
    time_step_rows,
    write_result,
    xla_temp_bytes,
)

SHAPES = [(8192, 1024, 32768), (2048, 1024, 131072)]  # (N, D, V): the second, a large vocab
QUICK_SHAPES = [(64, 16, 50)]


def _naive_log_probs(x, w, y):
    logits = jnp.matmul(x, w.T, preferred_element_type=jnp.float32)
    return jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], -1)[:, 0]


def _naive_jsd(x_s, w_s, x_t, w_t, beta=0.5):
    log_s = jax.nn.log_softmax(jnp.matmul(x_s, w_s.T, preferred_element_type=jnp.float32))
    log_t = jax.lax.stop_gradient(
        jax.nn.log_softmax(jnp.matmul(x_t, w_t.T, preferred_element_type=jnp.float32))
    )
    log_m = jnp.logaddexp(log_s + np.log1p(-beta), log_t + np.log(beta))
    kl_t = jnp.sum(jnp.exp(log_t) * (log_t - log_m), -1)
    kl_s = jnp.sum(jnp.exp(log_s) * (log_s - log_m), -1)
    return jnp.mean(beta * kl_t + (1 - beta) * kl_s)


def _problem(n, d, v, dtype):
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((n, d)) * 0.5, dtype)
    w = jnp.asarray(rng.standard_normal((v, d)) / np.sqrt(d), dtype)
    x_t = jnp.asarray(rng.standard_normal((n, d)) * 0.5, dtype)
    w_t = jnp.asarray(rng.standard_normal((v, d)) / np.sqrt(d), dtype)
    y = jnp.asarray(rng.integers(0, v, n), jnp.int32)
    g = jnp.asarray(rng.standard_normal(n), jnp.float32)
    return x, w, x_t, w_t, y, g


def _contenders(section, n, d, v, dtype):
    import torch

    x, w, x_t, w_t, y, g = _problem(n, d, v, dtype)
    if section == "log_probs":
        losses = {
            "jaxloss": lambda x, w: jnp.sum(jaxloss.linear_log_probs(x, w, y) * g),
            "naive JAX": lambda x, w: jnp.sum(_naive_log_probs(x, w, y) * g),
        }
    else:
        losses = {
            "jaxloss": lambda x, w: jaxloss.linear_distillation_loss(x, w, x_t, w_t, y),
            "naive JAX": lambda x, w: _naive_jsd(x, w, x_t, w_t),
        }
    steps, temps = {}, {}
    for name, loss in losses.items():
        step = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))
        steps[name] = lambda step=step: jax.block_until_ready(step(x, w))
        temps[name] = xla_temp_bytes(step, x, w)
    if dtype == jnp.float32:
        from jaxloss.parity.references import liger_chunked_loss

        liger = liger_chunked_loss()
        xt, wt = (torch.tensor(np.asarray(a)) for a in (x, w))
        xtt, wtt = (torch.tensor(np.asarray(a)) for a in (x_t, w_t))
        yt, gt = torch.tensor(np.asarray(y, np.int64)), torch.tensor(np.asarray(g))

        def liger_step():
            xl, wl = xt.detach().requires_grad_(True), wt.detach().requires_grad_(True)
            if section == "log_probs":
                out = liger._ChunkedSelectiveLogProbFunction.apply(xl, wl, yt, None, 1.0, 4096)
                (out * gt).sum().backward()
            else:
                liger.LigerFusedLinearJSDFunction.apply(
                    xl, wl, xtt, wtt, yt, None, None, 0.0, 1.0, 0.5, -100, 1.0, False, 1024
                ).backward()
            return xl.grad, wl.grad

        steps["Liger (torch)"] = liger_step
        temps["Liger (torch)"] = None
    return steps, temps


SECTIONS = ("log_probs", "distillation")


def bench(shapes, dtypes, repeats, sections=SECTIONS):
    rows = []
    for section in sections:
        for shape in shapes:
            for dtype in dtypes:
                steps, temps = _contenders(section, *shape, dtype)
                name = jnp.dtype(dtype).name
                rows += time_step_rows(section, shape, name, steps, temps, repeats)
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="tiny shapes, 1 repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=default_results_dir(), help="default: per CPU kind")
    parser.add_argument(
        "--only",
        choices=SECTIONS,
        help="run one section; the other section's rows are kept from the existing results",
    )
    args = parser.parse_args(argv)
    shapes, repeats = (QUICK_SHAPES, 1) if args.quick else (SHAPES, args.repeats)
    print(f"float32 and bfloat16; {repeats} rounds\non {machine()}", flush=True)
    out = Path(args.out)
    sections = (args.only,) if args.only else SECTIONS
    kept = []
    if args.only:
        previous = json.loads((out / "log_probs.json").read_text())
        if previous["machine"] != machine_record():
            raise SystemExit(
                f"--only keeps rows measured on {previous['machine']}, but this is "
                f"{machine_record()}: run every section here."
            )
        kept = [row for row in previous["rows"] if row["section"] != args.only]
    rows = bench(shapes, [jnp.float32, jnp.bfloat16], repeats, sections)
    print_step_rows(rows)
    rows = sorted(kept + rows, key=lambda row: SECTIONS.index(row["section"]))
    out.mkdir(parents=True, exist_ok=True)
    write_result(out / "log_probs.json", rows=rows)
    print(f"\nwrote {out / 'log_probs.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
