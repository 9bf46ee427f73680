"""Cross-entropy and fused linear cross-entropy: jaxloss against optax, torch, naive JAX and
jax-cce, side by side in one run. Prints tables and writes JSON and a PNG chart.

    python benchmarks/cross_entropy.py             # the shapes of the issue (a few minutes)
    python benchmarks/cross_entropy.py --quick     # tiny shapes, to check the code runs (CI)
    python benchmarks/cross_entropy.py --out DIR   # where cross_entropy.json/.png go

Cross-entropy: forward+backward w.r.t. the logits, integer labels, 'mean'; median ms of
rounds (at least --repeats, about 0.4 s of each contender) in blocks per contender (torch
at its fastest thread count), ratio to jaxloss and to the floor (the logits read twice, two
exponentials per logit and one fresh (N, C) array written: exp(x - log Σ exp(x)), measured
in the same rounds; also the earlier floor with one exponential per logit,
exp(x - rowmax)), effective GB/s against the lower bound of reading the logits once and
writing the gradient once (2·itemsize·N·C bytes), a large memory copy measured in the same
run, and peak memory (XLA's compiled temp size; process peak RSS growth). "jaxloss+options"
switches on ignore_index, class weights and label smoothing (optax has none of them).
Fused linear CE: forward+backward w.r.t. x and W, time (best of interleaved rounds) and memory; in
bfloat16 also with each form of its 16-bit matmuls fixed ("jaxloss (native)", "jaxloss
(float32)"), beside the form the one-time measurement chose for "jaxloss" [in brackets].
"""

from __future__ import annotations

import argparse
import functools
import os
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import jaxloss
import jaxloss.fused
from jaxloss._kernels.matmul import form_for
from jaxloss.parity.timing import (
    cpu_dispatch,
    default_results_dir,
    fastest_torch_threads,
    interleaved_times,
    machine,
    rounds_for,
    side_by_side,
    synchronous_cpu_dispatch,
    write_result,
    xla_temp_bytes,
)

CE_FLOOR = (
    "the logits read twice, two exponentials per logit (one for the row's normaliser, one for "
    "the gradient) and one fresh (N, C) array written, exp(x - log Σ exp(x)), in a program "
    "that takes the step's arguments and returns a scalar (Σ labels) beside the array; "
    "'floor, 1 exp' is exp(x - rowmax), the earlier floor"
)
CE_SHAPES = [(4096, 32768), (65536, 1000), (256, 10)]
FUSED_SHAPE = (8192, 1024, 32768)
QUICK_CE_SHAPES = [(64, 100), (256, 10)]
QUICK_FUSED_SHAPE = (64, 16, 50)


def _peak_rss_growth(fn):
    """Runs fn once; returns the growth of the process's peak RSS in bytes (Linux), or None."""
    status = Path("/proc/self/status")
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
        before = _status_kb(status, "VmRSS")
        fn()
        return 1024 * (_status_kb(status, "VmHWM") - before)
    except OSError:
        fn()
        return None


def _status_kb(path, key):
    for line in path.read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise OSError(key)


def _timed(fn, repeats):
    fn()  # compile / warm up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times)), 1e3 * float(np.min(times))


def _copy_gbps(nbytes, repeats):
    """Read+write bandwidth of a large copy into a reused buffer, for reference."""
    a = np.ones(nbytes // 4, np.float32)
    b = np.empty_like(a)
    ms, _ = _timed(lambda: np.copyto(b, a), repeats)
    return 2 * a.nbytes / (ms * 1e-3) / 1e9


def _ce_contenders(n, c, dtype):
    import optax
    import torch

    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((n, c)) * 2, dtype)
    y = jnp.asarray(rng.integers(0, c, n), jnp.int32)
    y_ignored = y.at[::16].set(-100)
    weight = jnp.asarray(rng.uniform(0.5, 2.0, c), jnp.float32)

    # Labels and weights are arguments of the jitted step, as in a training step (closed-over
    # constants would let XLA fold them into the program).
    losses = {
        "jaxloss": (lambda x, y, w: jaxloss.cross_entropy(x, y), y),
        "jaxloss+options": (
            lambda x, y, w: jaxloss.cross_entropy(x, y, class_weights=w, label_smoothing=0.1),
            y_ignored,
        ),
        "optax": (
            lambda x, y, w: optax.losses.softmax_cross_entropy_with_integer_labels(x, y).mean(),
            y,
        ),
        "naive": (
            lambda x, y, w: -jnp.mean(jnp.sum(jax.nn.log_softmax(x) * jax.nn.one_hot(y, c), -1)),
            y,
        ),
    }
    steps, temps = {}, {}
    for name, (loss, labels) in losses.items():
        step = jax.jit(
            jax.value_and_grad(lambda x, y, w, loss=loss: loss(x, y, w).astype(jnp.float32))
        )
        steps[name] = lambda step=step, labels=labels: jax.block_until_ready(
            step(x, labels, weight)
        )
        temps[name] = xla_temp_bytes(step, x, labels, weight)
    torch_dtype = torch.bfloat16 if dtype == jnp.bfloat16 else torch.float32
    xt = torch.tensor(np.asarray(x, np.float32)).to(torch_dtype)
    yt = torch.tensor(np.asarray(y, np.int64))

    def torch_step():
        leaf = xt.detach().requires_grad_(True)
        loss = torch.nn.functional.cross_entropy(leaf, yt)
        loss.backward()
        return leaf.grad

    steps["torch"] = torch_step
    temps["torch"] = None

    # The floor: what every forward+backward must do, in float32 as the loss computes. It
    # reads the logits twice (a row's sum of exponentials is needed before any of its
    # gradients), writes one fresh (N, C) array (a jitted step's output is a new buffer each
    # call), and takes two exponentials per logit: one in the row's sum, one in the gradient
    # (keeping the first would write and read an (N, C) array more). The earlier floor kept
    # one exponential per logit, exp(x - rowmax), which no cross-entropy can match. Each
    # takes the step's arguments and returns a scalar beside the array, as a step does: at
    # 256x10 a program with a second argument and result took 1.3x the time of one with a
    # single one (14.4 against 10.9 µs, float32, synchronous dispatch).
    def two_pass_softmax(x):
        z = x.astype(jnp.float32)
        return jnp.exp(z - jnp.log(jnp.sum(jnp.exp(z), axis=-1, keepdims=True))).astype(x.dtype)

    def shifted_exp(x):
        return jnp.exp((x - jnp.max(x, axis=-1, keepdims=True)).astype(jnp.float32)).astype(x.dtype)

    for name, kernel in (("floor", two_pass_softmax), ("floor, 1 exp", shifted_exp)):
        floor = jax.jit(lambda x, y, w, kernel=kernel: (jnp.sum(y).astype(jnp.float32), kernel(x)))
        steps[name] = lambda floor=floor: jax.block_until_ready(floor(x, y, weight))
        temps[name] = xla_temp_bytes(floor, x, y, weight)
    return steps, temps


def bench_cross_entropy(shapes, dtypes, repeats, copy_gbps, max_rounds=2000):
    rows = []
    for dtype in dtypes:
        for n, c in shapes:
            steps, temps = _ce_contenders(n, c, dtype)
            itemsize = jnp.dtype(dtype).itemsize
            bound = 2 * itemsize * n * c
            threads = fastest_torch_threads(steps["torch"])
            jax_steps = {name: step for name, step in steps.items() if name != "torch"}
            # At least `repeats` rounds, and about 0.4 s of each contender: 7 calls of a
            # 30 us step gave medians 2x apart from run to run.
            rounds = rounds_for(steps.values(), repeats, maximum=max(repeats, max_rounds))
            medians = side_by_side(jax_steps, {"torch": steps["torch"]}, rounds)
            for name, step in steps.items():
                rows.append(
                    dict(
                        section="cross_entropy",
                        shape=[n, c],
                        dtype=jnp.dtype(dtype).name,
                        contender=name,
                        median_ms=medians[name],
                        ratio_to_jaxloss=medians[name] / medians["jaxloss"],
                        ratio_to_floor=medians[name] / medians["floor"],
                        torch_threads=threads,
                        effective_gbps=bound / (medians[name] * 1e-3) / 1e9,
                        fraction_of_copy=bound / (medians[name] * 1e-3) / 1e9 / copy_gbps,
                        xla_temp_bytes=temps[name],
                        peak_rss_growth_bytes=_peak_rss_growth(step),
                    )
                )
    return rows


def _fused_in_form(x, w, *, y, form):
    """The fused loss with its 16-bit matmul form fixed (read when the step is traced)."""
    previous = os.environ.get("JAXLOSS_MATMUL_16BIT")
    os.environ["JAXLOSS_MATMUL_16BIT"] = form
    try:
        return jaxloss.linear_cross_entropy(x, w, y)
    finally:
        if previous is None:
            del os.environ["JAXLOSS_MATMUL_16BIT"]
        else:
            os.environ["JAXLOSS_MATMUL_16BIT"] = previous


def _fused_contenders(n, d, v, dtype):
    import optax
    import torch

    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((n, d)) * 0.5, dtype)
    w = jnp.asarray(rng.standard_normal((v, d)) / np.sqrt(d), dtype)
    y = jnp.asarray(rng.integers(0, v, n), jnp.int32)

    def naive(x, w):
        logits = jnp.matmul(x, w.T, preferred_element_type=jnp.float32)
        return optax.losses.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    losses = {"jaxloss": lambda x, w: jaxloss.linear_cross_entropy(x, w, y), "naive": naive}
    if jnp.dtype(dtype).itemsize == 2:
        # both forms of the 16-bit matmuls, whichever the measurement chose for "jaxloss"
        for form in ("native", "float32"):
            losses[f"jaxloss ({form})"] = functools.partial(_fused_in_form, y=y, form=form)
    # (Labels are closed over here: the (N, V) work dwarfs anything XLA could fold.)
    try:
        import jax_cce

        losses["jax-cce"] = lambda x, w: jax_cce.linear_cross_entropy(x, w, y)
    except ImportError:
        pass
    steps, temps = {}, {}
    for name, loss in losses.items():
        step = jax.jit(
            jax.value_and_grad(
                lambda x, w, loss=loss: loss(x, w).astype(jnp.float32), argnums=(0, 1)
            )
        )
        steps[name] = lambda step=step: jax.block_until_ready(step(x, w))
        temps[name] = xla_temp_bytes(step, x, w)
    torch_dtype = torch.bfloat16 if dtype == jnp.bfloat16 else torch.float32
    xt = torch.tensor(np.asarray(x, np.float32)).to(torch_dtype)
    wt = torch.tensor(np.asarray(w, np.float32)).to(torch_dtype)
    yt = torch.tensor(np.asarray(y, np.int64))
    options = torch.nn.LinearCrossEntropyOptions()

    def torch_step():
        xl, wl = xt.detach().requires_grad_(True), wt.detach().requires_grad_(True)
        torch.nn.functional.linear_cross_entropy(xl, wl, yt, options=options).backward()
        return xl.grad, wl.grad

    steps["torch (chunked)"] = torch_step
    temps["torch (chunked)"] = None
    return steps, temps


def bench_fused(shape, dtypes, repeats):
    rows = []
    for dtype in dtypes:
        steps, temps = _fused_contenders(*shape, dtype)
        threads = fastest_torch_threads(steps["torch (chunked)"], repeats=1)
        rss = {name: _peak_rss_growth(step) for name, step in steps.items()}  # also warm-ups
        # Interleaved rounds: a slow phase of the machine (seconds long) reaches every
        # contender of a round, not only the one it happened to run beside.
        times = interleaved_times(steps, repeats)
        best = {name: 1e3 * min(seconds) for name, seconds in times.items()}
        for name in steps:
            rows.append(
                dict(
                    section="linear_cross_entropy",
                    shape=list(shape),
                    dtype=jnp.dtype(dtype).name,
                    contender=name,
                    best_ms=best[name],
                    median_ms=1e3 * float(np.median(times[name])),
                    torch_threads=threads if name.startswith("torch") else None,
                    xla_temp_bytes=temps[name],
                    peak_rss_growth_bytes=rss[name],
                )
            )
        n, d, v = shape
        chosen = form_for(dtype, min(n, jaxloss.fused.DEFAULT_CHUNK_SIZE), d, v)
        for row in rows:
            if row["dtype"] == jnp.dtype(dtype).name:
                row["ratio_to_jaxloss"] = row["best_ms"] / best["jaxloss"]
                row["ratio_to_naive"] = row["best_ms"] / best["naive"]
                if row["contender"] == "jaxloss" and jnp.dtype(dtype).itemsize == 2:
                    row["matmul_form"] = chosen
    return rows


def _mib(value):
    return "-" if value is None else f"{value / 2**20:.0f}"


def _print(ce_rows, fused_rows, copy_gbps):
    print(f"memory copy (reused buffer, read+write): {copy_gbps:.1f} GB/s")
    print(
        f"\ncross-entropy fwd+bwd ({'N, C':>13}) {'dtype':>9} {'contender':>16} {'median ms':>10} "
        f"{'/jaxloss':>8} {'/floor':>7} {'GB/s':>6} {'of copy':>7} {'XLA MiB':>8} {'RSS MiB':>8}"
    )
    for r in ce_rows:
        print(
            f"{'':22}{tuple(r['shape'])!s:>14} {r['dtype']:>9} {r['contender']:>16} "
            f"{r['median_ms']:10.1f} {r['ratio_to_jaxloss']:8.2f} {r['ratio_to_floor']:7.2f} "
            f"{r['effective_gbps']:6.1f} "
            f"{r['fraction_of_copy']:7.2f} {_mib(r['xla_temp_bytes']):>8} "
            f"{_mib(r['peak_rss_growth_bytes']):>8}"
        )
    print(
        f"\nfused linear CE fwd+bwd ({'N, D, V':>17}) {'dtype':>9} {'contender':>16} "
        f"{'best ms':>10} {'/jaxloss':>8} {'/naive':>7} {'XLA MiB':>8} {'RSS MiB':>8}"
    )
    for r in fused_rows:
        name = r["contender"] + (f" [{r['matmul_form']}]" if "matmul_form" in r else "")
        print(
            f"{'':24}{tuple(r['shape'])!s:>18} {r['dtype']:>9} {name:>16} "
            f"{r['best_ms']:10.1f} {r['ratio_to_jaxloss']:8.2f} {r['ratio_to_naive']:7.2f} "
            f"{_mib(r['xla_temp_bytes']):>8} {_mib(r['peak_rss_growth_bytes']):>8}"
        )


def _chart(ce_rows, fused_rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = sorted({(tuple(r["shape"]), r["dtype"]) for r in ce_rows})
    contenders = sorted({r["contender"] for r in ce_rows})
    fig, (left, right) = plt.subplots(1, 2, figsize=(14, 5))
    width = 0.8 / len(contenders)
    for k, name in enumerate(contenders):
        values = [
            next(
                (
                    r["ratio_to_jaxloss"]
                    for r in ce_rows
                    if (tuple(r["shape"]), r["dtype"]) == g and r["contender"] == name
                ),
                np.nan,
            )
            for g in groups
        ]
        left.bar(np.arange(len(groups)) + k * width, values, width, label=name)
    left.set_xticks(
        np.arange(len(groups)) + 0.4 - width / 2,
        [f"{g[0][0]}x{g[0][1]}\n{g[1]}" for g in groups],
        fontsize=8,
    )
    left.axhline(1.0, color="k", lw=0.5)
    left.set(title="cross-entropy fwd+bwd: time / jaxloss", ylabel="ratio")
    left.legend(fontsize=8)
    fused_groups = sorted({r["dtype"] for r in fused_rows})
    fused_names = sorted({r["contender"] for r in fused_rows})
    width = 0.8 / max(len(fused_names), 1)
    for k, name in enumerate(fused_names):
        values = [
            next(
                (
                    r["best_ms"] / 1e3
                    for r in fused_rows
                    if r["dtype"] == g and r["contender"] == name
                ),
                np.nan,
            )
            for g in fused_groups
        ]
        right.bar(np.arange(len(fused_groups)) + k * width, values, width, label=name)
    right.set_xticks(np.arange(len(fused_groups)) + 0.4 - width / 2, fused_groups)
    shape = fused_rows[0]["shape"] if fused_rows else ""
    right.set(title=f"fused linear CE fwd+bwd {tuple(shape)}", ylabel="seconds")
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="tiny shapes, 2 repeats")
    parser.add_argument(
        "--repeats", type=int, default=7, help="the fewest CE rounds (more for small shapes)"
    )
    parser.add_argument("--fused-repeats", type=int, default=3)
    parser.add_argument("--out", default=default_results_dir(), help="default: per CPU kind")
    args = parser.parse_args(argv)
    if args.quick:
        ce_shapes, fused_shape, repeats, fused_repeats = QUICK_CE_SHAPES, QUICK_FUSED_SHAPE, 2, 1
    else:
        ce_shapes, fused_shape = CE_SHAPES, FUSED_SHAPE
        repeats, fused_repeats = args.repeats, args.fused_repeats
    dtypes = [jnp.float32, jnp.bfloat16]
    copy_gbps = _copy_gbps(min(2**29, 8 * max(n * c for n, c in ce_shapes)), repeats)
    print(
        f"float32 and bfloat16; {repeats} repeats (CE), {fused_repeats} (fused); "
        f"{cpu_dispatch()} CPU dispatch\non {machine()}",
        flush=True,
    )
    ce_rows = bench_cross_entropy(
        ce_shapes, dtypes, repeats, copy_gbps, max_rounds=repeats if args.quick else 2000
    )
    fused_rows = bench_fused(fused_shape, dtypes, fused_repeats)
    _print(ce_rows, fused_rows, copy_gbps)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_result(
        out / "cross_entropy.json",
        floor=CE_FLOOR,
        cpu_dispatch=cpu_dispatch(),
        copy_gbps=copy_gbps,
        cross_entropy=ce_rows,
        linear_cross_entropy=fused_rows,
    )
    _chart(ce_rows, fused_rows, out / "cross_entropy.png")
    print(f"\nwrote {out / 'cross_entropy.json'} and {out / 'cross_entropy.png'}")
    return 0


if __name__ == "__main__":
    synchronous_cpu_dispatch()
    raise SystemExit(main())
