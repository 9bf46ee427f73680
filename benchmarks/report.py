"""Writes benchmarks/README.md from the figures in benchmarks/results/<CPU kind>/*.json.

    python benchmarks/report.py           # regenerate benchmarks/README.md
    python benchmarks/report.py --check   # exit 1 if it is not what the JSON gives (tested)

No figure in benchmarks/README.md is typed by hand: each table is rendered from one JSON file,
which records the machine it was measured on. Every CPU kind that has results gets its own
table per benchmark, so figures from an AVX2-only EPYC and from a Xeon with AMX stand side by
side instead of the latest run replacing the others.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
README = HERE / "README.md"
sys.path.insert(0, str(HERE.parent))

from jaxloss.parity.timing import cpu_kind  # noqa: E402


def _ms(value) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" if value < 10 else f"{value:.1f}" if value < 1000 else f"{value:.0f}"


def _ratio(a, b) -> str:
    return "-" if a is None or b is None else f"{a / b:.2f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _criteria(data) -> list[str]:
    header = ["criterion", "jaxloss", "torch", "/torch", "torch threads", "optax", "/optax"]
    header += ["floor", "/floor"]
    rows = []
    for row in data["rows"]:
        ms = row["ms"]
        ours = ms["jaxloss"]
        threads = str(row.get("torch_threads", "-"))
        rows.append(
            [f"`{row['criterion']}`", _ms(ours), _ms(ms.get("torch"))]
            + [_ratio(ours, ms.get("torch")), threads, _ms(ms.get("optax"))]
            + [_ratio(ours, ms.get("optax")), _ms(ms.get("floor")), _ratio(ours, ms.get("floor"))]
        )
    intro = f"n = {data['n']}, c = {data['c']}, float32; forward+backward, ms (medians)."
    return [intro + _dispatch(data), "", *_table(header, rows)]


def _dispatch(data) -> str:
    """How the run dispatched jax's CPU programs, for a table's caption ('' where the JSON
    predates the record: those runs dispatched asynchronously, jax's default)."""
    return f" jax's CPU dispatch: {data['cpu_dispatch']}." if data.get("cpu_dispatch") else ""


def _ctc(data) -> list[str]:
    header = ["(B, T, C, S)", "jaxloss", "optax", "torch", "/optax", "/torch", "torch threads"]
    rows = []
    for row in data["rows"]:
        ms = row["ms"]
        rows.append(
            [f"({', '.join(map(str, row['shape']))})", _ms(ms["jaxloss"]), _ms(ms["optax"])]
            + [_ms(ms["torch"]), _ratio(ms["jaxloss"], ms["optax"])]
            + [_ratio(ms["jaxloss"], ms["torch"]), str(row["torch_threads"])]
        )
    return ["forward+backward w.r.t. the logits, float32, ms (medians).", "", *_table(header, rows)]


_CE_CONTENDERS = ["jaxloss", "jaxloss+options", "optax", "torch", "naive", "floor", "floor, 1 exp"]


# What the CE floor was before its definition was recorded beside the figures.
_OLD_CE_FLOOR = "one read of the logits and one fresh (N, C) array written (x * 2)"


def _cross_entropy(data) -> list[str]:
    by_case: dict[tuple, dict[str, float]] = {}
    for row in data["cross_entropy"]:
        case = (tuple(row["shape"]), row["dtype"])
        by_case.setdefault(case, {})[row["contender"]] = row["median_ms"]
    header = ["CE fwd+bwd", *_CE_CONTENDERS, "jaxloss/floor", "jaxloss/optax"]
    rows = []
    for (shape, dtype), ms in by_case.items():
        rows.append(
            [f"{'×'.join(map(str, shape))} {dtype}"]
            + [_ms(ms.get(c)) for c in _CE_CONTENDERS]
            + [_ratio(ms.get("jaxloss"), ms.get("floor"))]
            + [_ratio(ms.get("jaxloss"), ms.get("optax"))]
        )
    floor = data.get("floor", _OLD_CE_FLOOR)
    caption = f"Cross-entropy, integer labels, 'mean', ms (medians). Floor: {floor}."
    lines = [caption + _dispatch(data), ""]
    lines += _table(header, rows)
    fused = data.get("linear_cross_entropy", [])
    if fused:
        fused_rows = [
            [
                f"{'×'.join(map(str, row['shape']))} {row['dtype']}",
                row["contender"] + (f" [{row['matmul_form']}]" if row.get("matmul_form") else ""),
                _ms(row["best_ms"]),
                _ms(row["median_ms"]),
                "-" if row["xla_temp_bytes"] is None else f"{row['xla_temp_bytes'] / 2**20:.0f}",
                f"{row['ratio_to_naive']:.2f}",
            ]
            for row in fused
        ]
        lines += ["", "Fused linear cross-entropy (N, D, V), forward+backward w.r.t. x and W:", ""]
        lines += _table(
            ["shape", "contender", "best ms", "median ms", "XLA temp MiB", "/naive"], fused_rows
        )
    if "copy_gbps" in data:
        lines += ["", f"A large memory copy ran at {data['copy_gbps']:.1f} GB/s in the same run."]
    return lines


def _head_steps(data, intro) -> list[str]:
    rows = [
        [
            row["section"].replace("_", " "),
            f"{'×'.join(map(str, row['shape']))} {row['dtype']}",
            row["contender"],
            _ms(row["best_ms"]),
            _ms(row["median_ms"]),
            f"{row['ratio_to_naive']:.2f}",
            "-" if row["xla_temp_bytes"] is None else f"{row['xla_temp_bytes'] / 2**20:.0f}",
            "-"
            if row["temp_fraction_of_naive"] is None
            else f"{row['temp_fraction_of_naive']:.3f}",
        ]
        for row in data["rows"]
    ]
    header = ["", "N×D×V", "contender", "best ms", "median ms", "/naive", "XLA temp MiB"]
    header.append("of naive")
    return [intro, "", *_table(header, rows)]


def _log_probs(data) -> list[str]:
    return _head_steps(
        data,
        "Forward+backward w.r.t. the student's x and W; log-probabilities with a random "
        "cotangent, distillation the JSD (β = 0.5), 'mean'.",
    )


def _post_training(data) -> list[str]:
    return _head_steps(
        data,
        "One step: the policy's forward and backward w.r.t. its x and W, and the reference's "
        "forward. DPO: sigmoid, β = 0.1, on N/(2T) pairs of T = 256 tokens; GRPO: 'dapo', "
        "β = 0.04, old log-probabilities given. N is the step's tokens. The float32 floors are "
        "the N×D×V matmuls alone: naive JAX's 4 (policy and reference logits, dx, dW) and the "
        "fused head's 5 (its backward recomputes the policy's logits), so where matmuls "
        "dominate the fused step's time over naive's cannot drop below their ratio.",
    )


def _boxes(data) -> list[str]:
    rows = [
        [
            f"`{row['loss']}`",
            _ms(row["ms"]["jaxloss"]),
            _ms(row["ms"].get("torchvision")),
            _ratio(row["ms"]["jaxloss"], row["ms"].get("torchvision")),
        ]
        for row in data["rows"]
    ]
    intro = f"{data['pairs']:,} float32 box pairs, forward+backward, ms (medians)."
    return [intro, "", *_table(["loss", "jaxloss", "torchvision", "ratio"], rows)]


def _sharded(data) -> list[str]:
    rows = [
        [
            row["layout"],
            _ms(row["ms"]),
            _ms(row["unsharded_ms"]),
            f"{row['temp_mib']:.0f}",
            ", ".join(f"{kind} {size / 2**10:.1f} KiB" for kind, size in row["collectives"]),
        ]
        for row in data["rows"]
    ]
    shape = data["shape"]
    intro = (
        f"N = {shape['tokens']}, V = {shape['vocab']}, D = {shape['width']}, chunks of "
        f"{shape['chunk']}, mesh (data 2, model 4) of 8 CPU devices."
    )
    header = ["layout", "ms", "unsharded ms", "temp MiB per device", "collectives per device"]
    return [intro, "", *_table(header, rows)]


def _contrastive(data) -> list[str]:
    def mib(value):
        return "-" if value is None else f"{value:.0f}"

    rows = [
        [
            row["step"],
            _ms(row["ms"]),
            _ms(row["single_device_ms"]),
            _ratio(row["ms"], row["single_device_ms"]),
            mib(row["temp_mib"]),
            mib(row["single_device_temp_mib"]),
            "×".join(str(d) for d in row["largest_array"]),
            ", ".join(f"{kind} {size / 2**20:.1f} MiB" for kind, size in row["collectives"]),
        ]
        for row in data["rows"]
    ]
    shape = data["shape"]
    per_device = shape["batch"] // shape["devices"]
    intro = (
        f"B = {shape['batch']} pairs ({per_device} per device), D = {shape['width']}, float32, "
        f"{shape['devices']} CPU devices; value and gradient of both towers, scale and bias. "
        f"SigLIP's ring forward moves (n-1)·(B/n)·D·4 = "
        f"{data['ring_forward_formula_bytes'] / 2**20:.1f} MiB per device; the HLO's collective "
        f"permutes: {data['ring_forward_permute_bytes'] / 2**20:.1f} MiB."
    )
    header = ["step", "ms", "1-device ms", "ratio", "temp MiB per device", "1-device temp MiB",
              "largest array", "collectives per step (result sizes, per device)"]  # fmt: skip
    return [intro, "", *_table(header, rows)]


# Each benchmark: its title, the command that measures it, what it measures, its renderer.
BENCHMARKS: dict[str, tuple[str, str, str, Callable[[dict], list[str]]]] = {
    "criteria": (
        "Every criterion",
        "benchmarks/criteria.py",
        "Forward+backward of each criterion, jitted jaxloss against torch eager (at its "
        "fastest thread count) and optax where optax has the same loss; each elementwise "
        "criterion also against a floor: one fused pass with the same reads, the same written "
        "gradient and the same transcendentals (nll_loss: the least XLA program for its work, "
        "a gather, a mean and a one-hot gradient). Ratios < 1: jaxloss is faster. Rows within "
        "about 10–15% of 1 are within this machine's noise; judge them over several runs.",
        _criteria,
    ),
    "cross_entropy": (
        "Cross-entropy and the fused linear head",
        "benchmarks/cross_entropy.py",
        "Cross-entropy forward+backward against optax, torch, naive JAX and a floor measured in "
        "the same rounds (each table says which); "
        "'jaxloss+options' adds ignore_index, class weights and label smoothing, which optax "
        "lacks. The fused linear cross-entropy against the naive head (logits materialised) "
        "and torch's chunked loss; in bf16 with each form of its 16-bit matmuls forced.",
        _cross_entropy,
    ),
    "ctc": (
        "CTC",
        "benchmarks/ctc.py",
        "CTC forward+backward against optax.losses.ctc_loss and torch's ctc_loss, on the "
        "same float32 logits and ragged lengths.",
        _ctc,
    ),
    "log_probs": (
        "Per-token log-probabilities and fused distillation",
        "benchmarks/log_probs.py",
        "jaxloss.linear_log_probs and jaxloss.linear_distillation_loss against naive JAX (full "
        "logits, log-softmax) and Liger-Kernel's torch chunked path (float32), time and XLA "
        "temp memory.",
        _log_probs,
    ),
    "post_training": (
        "Post-training steps: DPO and GRPO on the fused head",
        "benchmarks/post_training.py",
        "A DPO step and a GRPO step (jaxloss.linear_log_probs, then dpo_loss or policy_loss) "
        "against naive JAX (full logits) and Liger-Kernel's torch chunked losses (float32), "
        "time and XLA temp memory.",
        _post_training,
    ),
    "boxes": (
        "Box regression losses",
        "benchmarks/boxes.py",
        "The IoU losses against torchvision.ops; the papers' losses without a torchvision "
        "counterpart are timed for their cost.",
        _boxes,
    ),
    "sharded": (
        "Sharded losses",
        "benchmarks/sharded.py",
        "The vocab-parallel and fused losses on 8 CPU devices: bytes moved by collectives "
        "(read from the compiled HLO), temp memory per device, and time against the "
        "unsharded loss. The 8 devices share 2 cores, so times show overheads; the bytes and "
        "memory are what carry over to GPU and TPU meshes.",
        _sharded,
    ),
    "contrastive": (
        "Contrastive losses across devices",
        "benchmarks/contrastive.py",
        "CLIP and SigLIP on a batch split over 8 CPU devices: SigLIP's ring and gather, CLIP's "
        "local rows and whole matrix, against the single-device loss on the global batch; "
        "bytes moved by collectives and the largest array per device (from the compiled HLO), "
        "XLA temp memory per device, time. The 8 devices share 2 cores, so times show "
        "overheads; the bytes and memory are what carry over to GPU and TPU meshes.",
        _contrastive,
    ),
}

_HEAD = """# Benchmarks

<!-- Generated by benchmarks/report.py from benchmarks/results/*/*.json: do not edit. -->

Every figure below is read from `benchmarks/results/<CPU kind>/<benchmark>.json`, which holds
the machine it came from (CPU model, SIMD features, cores, jax, jaxlib and torch versions).
Ratios are jaxloss / other, measured side by side in one run: each contender runs in blocks
of its own rounds, the blocks taking turns through the run, and medians are reported (steps
of seconds take turns call by call); torch runs at its fastest thread count, found in the
same run (`jaxloss/parity/timing.py`). Compare ratios, not
absolute times, across tables: the machines differ in clock and memory bandwidth.

Large losses' times depend on the memory pages as much as on the CPU. A jitted step returns
its gradient in a fresh buffer, and touching that buffer's 4 KiB pages for the first time is
most of a large step here. Results say which pages they were measured with, from
2026-12-07 on. On Linux with glibc 2.35 or newer, `GLIBC_TUNABLES=glibc.malloc.hugetlb=1`
(set before Python starts) gives malloc's large buffers transparent huge pages where the
kernel's mode is `madvise`. Cross-entropy forward+backward at float32 4096×32768 on the
2-core AMD EPYC (AVX-512) then took:

| contender | 4 KiB pages, ms | huge pages, ms |
|---|---|---|
| jaxloss | 209 | 89 |
| optax | 231 | 80 |
| torch (2 threads) | 488 | 171 |

The AMD EPYC machines of the tables below run with transparent huge pages on `madvise` and
glibc's default malloc, that is with 4 KiB pages (seen on 2026-12-07).

Small steps' times depend on how jax dispatches them. By default jax hands each CPU program
to a worker thread and returns at once; a caller that waits for every step then pays the
thread's wake-up. A float32 cross-entropy step at 256×10 took about 30 or about 94 µs by
turns that way, and 18 µs, steadily, with `jax.config.update("jax_cpu_enable_async_dispatch",
False)` set before jax's first computation. `benchmarks/criteria.py` and
`benchmarks/cross_entropy.py` run that way (`synchronous_cpu_dispatch`), and their tables
say so; the other benchmarks keep jax's default. A training loop that does not wait for each
step can overlap the hand-off with the next step's Python; a benchmark that waits for each
step would count it, and torch's eager calls, which run on the calling thread, have none.

Run a benchmark (each takes `--quick` for a smoke run and `--out DIR`; by default it writes
to the folder of this machine's CPU kind), then regenerate this page:

```bash
.venv/bin/python benchmarks/criteria.py
.venv/bin/python benchmarks/cross_entropy.py
.venv/bin/python benchmarks/ctc.py
.venv/bin/python benchmarks/boxes.py
.venv/bin/python benchmarks/log_probs.py
.venv/bin/python benchmarks/post_training.py
.venv/bin/python benchmarks/sharded.py
.venv/bin/python benchmarks/contrastive.py
.venv/bin/python benchmarks/report.py
```

`benchmarks/avx2_only/run COMMAND` runs any of them as on an AVX2-only CPU: it hides AVX-512,
AVX-512 BF16 and AMX from the process (Linux CPUID faulting; XLA's code generator, YNNPACK's
matmuls and torch's oneDNN all take their AVX2 kernels). It needs a C compiler and the
`cpuid_fault` CPU flag. Memory and clock stay the host's, so its tables stand in for an
AVX2-only machine; they do not replace one.
"""


def _machine_line(machine: dict) -> str:
    simd = ", ".join(machine["simd"])
    hidden = machine.get("hidden_simd") or []
    return (
        f"{machine['cpu']}, {machine['cores']} cores; SIMD seen: {simd}"
        + (f"; hidden: {', '.join(hidden)}" if hidden else "")
        + f"; jax {machine['jax']}, jaxlib {machine['jaxlib']}, torch {machine['torch']}"
        # Recorded from 2026-12-07 on; older results do not say.
        + (f"; {machine['memory']}." if machine.get("memory") else ".")
    )


def render(results: Path = RESULTS) -> str:
    lines = [_HEAD.rstrip("\n")]
    found = {}
    for path in sorted(results.glob("*/*.json")):
        found.setdefault(path.stem, []).append(path)
    unknown = sorted(set(found) - set(BENCHMARKS))
    if unknown:
        raise ValueError(f"results with no renderer in benchmarks/report.py: {unknown}")
    for name, (title, command, what, renderer) in BENCHMARKS.items():
        if name not in found:
            continue
        lines += ["", f"## {title}", "", f"`{command}`. {what}"]
        for path in found[name]:
            data = json.loads(path.read_text())
            _, label = cpu_kind(data["machine"])
            relative = path.relative_to(results.parent).as_posix()
            lines += ["", f"### {label}", "", f"{_machine_line(data['machine'])} (`{relative}`)"]
            lines += ["", *renderer(data)]
            chart = path.with_suffix(".png")
            if chart.exists():
                image = chart.relative_to(results.parent).as_posix()
                lines += ["", f"![{title}, {label}]({image})"]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="fail if README.md is stale")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if not README.exists() or README.read_text() != text:
            print(f"{README} is not what the JSON gives: run python benchmarks/report.py")
            return 1
        return 0
    README.write_text(text)
    print(f"wrote {README}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
