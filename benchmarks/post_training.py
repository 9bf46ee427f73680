"""A DPO step and a GRPO step on the fused head: jaxloss against naive JAX (full logits,
log-softmax, gather) and Liger-Kernel's torch chunked losses, side by side in one run. Prints
a table and writes JSON.

    python benchmarks/post_training.py             # the default shape (several minutes)
    python benchmarks/post_training.py --quick     # tiny shapes, to check the code runs (CI)
    python benchmarks/post_training.py --out DIR   # where post_training.json goes

Each step is the policy's forward and backward (w.r.t. its hidden states and head) plus the
reference model's forward: DPO (sigmoid, β = 0.1, sums over the completion tokens) on B/2
pairs, chosen rows first; GRPO ('dapo', β = 0.04, old log-probabilities given) on B
sequences. Best and median ms of interleaved rounds, and XLA's compiled temp size. Liger runs
at torch's fastest thread count, found in the same run, on float32 inputs only. Targets:
jaxloss's temp memory <= 1/8 of naive's and its time <= naive's.

In float32 two floors run beside them: the (N, D) x (D, V) matmuls each method must do and
nothing else. Naive JAX does 4 (the policy's and the reference's logits, dx, dW) and keeps
the policy's (N, V) logits for its backward; the fused head does 5, chunk by chunk, since its
backward recomputes the policy's logits instead of keeping them. Where the matmuls dominate,
the fused step's time over naive's tends to 5/4, whatever the elementwise work costs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import jaxloss
from jaxloss._kernels.chunked_head import DEFAULT_CHUNK_SIZE
from jaxloss.parity.timing import (
    default_results_dir,
    machine,
    print_step_rows,
    time_step_rows,
    write_result,
    xla_temp_bytes,
)

SHAPES = [(16, 256, 1024, 32768)]  # (B sequences, T tokens, D, V): 4096 tokens a step
QUICK_SHAPES = [(4, 8, 16, 50)]
SECTIONS = ("dpo", "grpo")


def _problem(b, t, d, v, dtype):
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((b, t, d)) * 0.5, dtype)
    w = jnp.asarray(rng.standard_normal((v, d)) / np.sqrt(d), dtype)
    ref_x = jnp.asarray(np.asarray(x, np.float32) + 0.1 * rng.standard_normal((b, t, d)), dtype)
    ref_w = jnp.asarray(np.asarray(w, np.float32) + 0.01 * rng.standard_normal((v, d)), dtype)
    ids = rng.integers(0, v, (b, t)).astype(np.int32)
    mask = np.ones((b, t), bool)
    mask[:, : t // 4] = False  # the prompts
    old = jnp.asarray(rng.standard_normal((b, t)) * 0.1 - np.log(v), jnp.float32)
    advantages = jnp.asarray(rng.standard_normal(b), jnp.float32)
    return x, w, ref_x, ref_w, ids, mask, old, advantages


def _naive_token_log_probs(x, w, ids):
    logits = jnp.matmul(x, w.T, preferred_element_type=jnp.float32)
    return jnp.take_along_axis(jax.nn.log_softmax(logits), ids[..., None], -1)[..., 0]


def _matmul_floors(x, w, ref_x, ref_w):
    """The matmuls alone: naive's 4 on whole arrays, the fused head's 5 chunk by chunk (the
    recomputed logits behind an optimization barrier, so that XLA cannot reuse the first)."""
    d = x.shape[-1]
    rows, ref_rows = x.reshape(-1, d), ref_x.reshape(-1, d)
    chunk = min(DEFAULT_CHUNK_SIZE, rows.shape[0])

    def logits(a, b):
        return jnp.matmul(a, b.T, preferred_element_type=jnp.float32)

    def naive(rows, w, ref_rows, ref_w):
        policy = logits(rows, w)  # kept for the backward, as naive JAX keeps it
        return jnp.sum(logits(ref_rows, ref_w)), policy @ w, policy.T @ rows

    def fused(rows, w, ref_rows, ref_w):
        # Each chunk's three logits blocks feed one product or one row sum each, the least
        # that keeps XLA from dropping them (the fused step reads each block at least once).
        def body(dw, chunks):
            xc, rxc = chunks
            forward, reference = logits(xc, w), logits(rxc, ref_w)
            recomputed = logits(jax.lax.optimization_barrier(xc), w)
            return dw + forward.T @ xc, (jnp.sum(reference, -1), recomputed @ w)

        split = (rows.reshape(-1, chunk, d), ref_rows.reshape(-1, chunk, d))
        dw, (sums, dx) = jax.lax.scan(body, jnp.zeros(w.shape, jnp.float32), split)
        return sums, dx, dw

    args = (rows, w, ref_rows, ref_w)
    floors = {
        "floor: naive's 4 matmuls": jax.jit(naive),
        "floor: fused's 5 matmuls": jax.jit(fused),
    }
    steps = {name: lambda f=f: jax.block_until_ready(f(*args)) for name, f in floors.items()}
    return steps, {name: xla_temp_bytes(f, *args) for name, f in floors.items()}


def _contenders(section, b, t, d, v, dtype):
    import torch

    x, w, ref_x, ref_w, ids, mask, old, advantages = _problem(b, t, d, v, dtype)
    half = b // 2

    def fused_log_probs(x, w):
        return jaxloss.linear_log_probs(x, w, ids)

    def naive_log_probs(x, w):
        return _naive_token_log_probs(x, w, ids)

    def dpo(token_log_probs):
        def loss(x, w):
            policy = jnp.sum(jnp.where(mask, token_log_probs(x, w), 0), axis=-1)
            ref = jax.lax.stop_gradient(
                jnp.sum(jnp.where(mask, token_log_probs(ref_x, ref_w), 0), axis=-1)
            )
            return jaxloss.dpo_loss(
                policy[:half], policy[half:], ref[:half], ref[half:], beta=0.1
            ).loss

        return loss

    def grpo(token_log_probs):
        def loss(x, w):
            ref = jax.lax.stop_gradient(token_log_probs(ref_x, ref_w))
            return jaxloss.policy_loss(
                token_log_probs(x, w), advantages, mask, old, ref, loss_type="dapo", beta=0.04
            ).loss

        return loss

    make = dpo if section == "dpo" else grpo
    # jaxloss's DPO takes the sums from sequence_sums (the same sums, written once there)
    if section == "dpo":

        def jaxloss_dpo(x, w):
            sums, _ = jaxloss.sequence_sums(fused_log_probs(x, w), where=mask)
            ref_sums, _ = jaxloss.sequence_sums(fused_log_probs(ref_x, ref_w), where=mask)
            ref_sums = jax.lax.stop_gradient(ref_sums)
            return jaxloss.dpo_loss(
                sums[:half], sums[half:], ref_sums[:half], ref_sums[half:], beta=0.1
            ).loss

        losses = {"jaxloss": jaxloss_dpo, "naive JAX": make(naive_log_probs)}
    else:
        losses = {"jaxloss": make(fused_log_probs), "naive JAX": make(naive_log_probs)}
    steps, temps = {}, {}
    for name, loss in losses.items():
        step = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))
        steps[name] = lambda step=step: jax.block_until_ready(step(x, w))
        temps[name] = xla_temp_bytes(step, x, w)
    if dtype == jnp.float32 and (b * t) % min(DEFAULT_CHUNK_SIZE, b * t) == 0:
        floor_steps, floor_temps = _matmul_floors(x, w, ref_x, ref_w)
        steps.update(floor_steps)
        temps.update(floor_temps)
    if dtype == jnp.float32:
        from jaxloss.parity.references import liger_chunked_loss

        liger = liger_chunked_loss()
        xt, wt, rxt, rwt = (torch.tensor(np.asarray(a)) for a in (x, w, ref_x, ref_w))
        target = torch.tensor(np.where(mask, ids, -100).astype(np.int64))

        def liger_step():
            xl, wl = xt.detach().requires_grad_(True), wt.detach().requires_grad_(True)
            if section == "dpo":
                loss, _ = liger.LigerFusedLinearDPOFunction.apply(
                    xl, wl, target, None, rxt, rwt, None, -100, 0.1, False, False, True, False,
                    half,
                )  # fmt: skip
            else:
                loss, _ = liger.LigerFusedLinearGRPOFunction.apply(
                    xl, wl, torch.tensor(ids.astype(np.int64)),
                    torch.tensor(mask.astype(np.float32)), torch.tensor(np.asarray(advantages)),
                    None, None, torch.tensor(np.asarray(old)), rxt, rwt, None, 0.04, 0.2, 0.2,
                    "dapo", None, "token", 1.0, 1.05, 1.0, False, True, b,
                )  # fmt: skip
            loss.backward()
            return xl.grad, wl.grad

        steps["Liger (torch)"] = liger_step
        temps["Liger (torch)"] = None
    return steps, temps


def bench(shapes, dtypes, repeats):
    rows = []
    for section in SECTIONS:
        for shape in shapes:
            for dtype in dtypes:
                steps, temps = _contenders(section, *shape, dtype)
                b, t, d, v = shape
                name = jnp.dtype(dtype).name
                rows += time_step_rows(section, (b * t, d, v), name, steps, temps, repeats)
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="tiny shapes, 1 repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=default_results_dir(), help="default: per CPU kind")
    args = parser.parse_args(argv)
    shapes, repeats = (QUICK_SHAPES, 1) if args.quick else (SHAPES, args.repeats)
    print(f"float32 and bfloat16; {repeats} rounds\non {machine()}", flush=True)
    rows = bench(shapes, [jnp.float32, jnp.bfloat16], repeats)
    print_step_rows(rows)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_result(out / "post_training.json", rows=rows)
    print(f"\nwrote {out / 'post_training.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
