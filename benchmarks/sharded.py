"""Sharded losses on 8 CPU devices: bytes moved by collectives (read from the compiled HLO),
per-device temp memory, and time against the unsharded loss, measured side by side.

    python benchmarks/sharded.py            # N=4096 tokens, V=16384, D=128
    python benchmarks/sharded.py --quick    # tiny shapes, to check the code runs (CI)

Layouts, on a (2, 4) data x model mesh:

- vocab-parallel CE: `jaxloss.parallel.cross_entropy` under shard_map, logits (N, V) split
  P('data', 'model'); the HLO's bytes are set against the 12·N-byte formula (row max, Σ exp and
  the label's logit, 4 bytes each per local token, over the model axis).
- fused, data parallel: `linear_cross_entropy` on x split over 'data', the head replicated.
- fused, tensor parallel: x split over 'data', the head's vocabulary over 'model'.
- fused, FSDP: x and the head's vocabulary both over 'data'.

The 8 "devices" are threads of a 2-core CPU here, so the sharded times measure overheads, not
speed-ups; bytes and memory are what carry over to GPU and TPU meshes.
"""

from __future__ import annotations

import argparse
import time

import jax

try:  # before jax starts its CPU backend (a test process may have started it with 8 already)
    jax.config.update("jax_num_cpu_devices", 8)
except RuntimeError:
    pass

import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

import jaxloss
from jaxloss.parity.hlo import collectives
from jaxloss.parity.timing import default_results_dir, machine, write_result


def collectives_of(hlo: str) -> list[tuple[str, int]]:
    """[(kind, bytes per step)] of a compiled program's collectives; one inside a while loop's
    body counts once per trip (XLA's known trip count)."""
    return [(c.kind, c.bytes * c.executions) for c in collectives(hlo)]


def median_ms(step, args, repeats):
    jax.block_until_ready(step(*args))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(step(*args))
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))


def summarise(found):
    by_kind: dict[str, list[int]] = {}
    for kind, size in found:
        by_kind.setdefault(kind, []).append(size)
    return ", ".join(f"{len(v)} {k} {sum(v) / 2**10:.1f} KiB" for k, v in sorted(by_kind.items()))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="tiny shapes, 2 repeats")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--out",
        default=default_results_dir(),
        help="folder of sharded.json (default: per CPU kind)",
    )
    args = parser.parse_args(argv)
    tokens, vocab, width, chunk = (64, 256, 16, 16) if args.quick else (4096, 16384, 128, 512)
    repeats = 2 if args.quick else args.repeats
    mesh = jax.make_mesh((2, 4), ("data", "model"))
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(tokens, width)), jnp.float32)
    w = jnp.asarray(rng.normal(size=(vocab, width)) * 0.05, jnp.float32)
    labels = jnp.asarray(rng.integers(0, vocab, size=tokens), jnp.int32)
    put = lambda a, spec: jax.device_put(a, NamedSharding(mesh, spec))
    print(f"8 CPU devices on {machine()}")
    print(f"N={tokens} tokens, V={vocab}, D={width}, chunk {chunk}, mesh (data 2, model 4)")
    print(
        f"{'layout':<26}{'ms':>9}{'unsharded ms':>14}{'ratio':>7}{'temp MiB':>10}"
        f"{'naive MiB':>11}   collectives per step (bytes per device)"
    )

    rows = []

    def row(name, step, step_args, reference, ref_args, found, naive_temp=None):
        ms, ref_ms = median_ms(step, step_args, repeats), median_ms(reference, ref_args, repeats)
        temp = step.lower(*step_args).compile().memory_analysis().temp_size_in_bytes / 2**20
        rows.append(dict(layout=name, ms=ms, unsharded_ms=ref_ms, temp_mib=temp, collectives=found))
        naive = "" if naive_temp is None else f"{naive_temp / 2**20:11.1f}"
        print(
            f"{name:<26}{ms:9.1f}{ref_ms:14.1f}{ms / ref_ms:7.2f}{temp:10.1f}{naive:>11}   "
            f"{summarise(found)}",
            flush=True,
        )

    # Vocab-parallel CE on given logits.
    logits = x @ w.T

    def parallel_ce(z, y):
        return jax.shard_map(
            lambda z, y: jaxloss.parallel.cross_entropy(
                z, y, axis_name="model", batch_axis_name="data"
            ),
            mesh=mesh,
            in_specs=(P("data", "model"), P("data")),
            out_specs=P(),
        )(z, y)

    ce_step = jax.jit(jax.value_and_grad(parallel_ce))
    ce_args = (put(logits, P("data", "model")), put(labels, P("data")))
    hlo = ce_step.lower(*ce_args).compile().as_text()
    found = collectives_of(hlo)
    model_axis = [s for k, s in found if k == "all-reduce"]
    row(
        "vocab-parallel CE",
        ce_step,
        ce_args,
        jax.jit(jax.value_and_grad(jaxloss.cross_entropy)),
        (logits, labels),
        found,
    )
    formula = 12 * tokens // 2
    print(
        f"  12·N formula over 'model': {formula / 2**10:.1f} KiB per device (N = {tokens // 2} "
        f"local tokens); measured all-reduces {sum(model_axis) / 2**10:.1f} KiB"
    )

    def fused(x, w, y):
        return jaxloss.linear_cross_entropy(x, w, y, chunk_size=chunk)

    def naive(x, w, y):
        return jaxloss.cross_entropy(x @ w.T, y)

    naive_step = jax.jit(jax.value_and_grad(naive, argnums=(0, 1)))
    naive_temp = naive_step.lower(x, w, labels).compile().memory_analysis().temp_size_in_bytes
    unsharded = jax.jit(jax.value_and_grad(fused, argnums=(0, 1)))
    for name, x_spec, w_spec in [
        ("fused, data parallel", P("data"), P()),
        ("fused, tensor parallel", P("data"), P("model")),
        ("fused, FSDP", P("data"), P("data")),
    ]:
        step = jax.jit(jax.value_and_grad(fused, argnums=(0, 1)))
        step_args = (put(x, x_spec), put(w, w_spec), put(labels, P("data")))
        hlo = step.lower(*step_args).compile().as_text()
        found = collectives_of(hlo)
        row(name, step, step_args, unsharded, (x, w, labels), found, naive_temp)
    print(
        "ratio = sharded / unsharded time; temp = XLA temp memory per device; collective "
        "bytes = each result's size per device, times the trips of the chunk loop it sits in."
    )
    shape = dict(tokens=tokens, vocab=vocab, width=width, chunk=chunk)
    write_result(f"{args.out}/sharded.json", shape=shape, rows=rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
