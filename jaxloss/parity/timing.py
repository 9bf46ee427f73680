"""Fair side-by-side timing, shared by the benchmarks and the parity report.

Four things make a comparison on a small, noisy VM honest:

- **torch at its fastest thread count.** On 2-vCPU machines torch's eager kernels often run
  several times faster on one thread than on its default two (its worker threads contend with
  the main one); `fastest_torch_threads` measures every count and keeps the fastest.
- **Each contender in blocks of its own** (`side_by_side`). After each multi-threaded torch
  call its OpenMP workers keep spinning for a while, and a JAX step that follows is slowed
  by them (here CTC 7.6 -> 12.6 ms against 8.8 -> 10.4 ms for optax); and contenders that
  each hold their own copy of the inputs evict each other's from the cache when they
  alternate call by call (a 4 MiB Huber loss took 0.72 ms interleaved with optax and the
  floor, 0.46-0.54 ms alone, while torch's block kept its inputs hot). So each contender's
  rounds run in a block of their own, starting with an untimed call.
- **Blocks taking turns in rotating order**, several times over the run, so that a drift of
  the machine's speed reaches every contender alike and none always follows the same other;
  medians of the rounds are reported. Long steps (seconds) take turns call by call instead
  (`interleaved_times`), where a cache's contents do not matter.
- **The machine beside every figure.** `machine()` names the CPU and its SIMD features (AVX2
  only, AVX-512, native bf16), since a speed choice must hold on all of them. Under
  `benchmarks/avx2_only/run`, which hides AVX-512, AVX-512 BF16 and AMX from the process, the
  record lists the features the process saw and says which were hidden.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable

import numpy as np

_SIMD_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
# Set by benchmarks/avx2_only/hide_cpu_features.c in the process it hides them from (the
# kernel's /proc/cpuinfo still lists them).
_HIDDEN_FEATURES = "JAXLOSS_HIDDEN_CPU_FEATURES"


def huge_pages() -> str:
    """How this process's large arrays get their memory: the kernel's transparent-huge-page
    mode and, from it and glibc's ``glibc.malloc.hugetlb`` tunable (``GLIBC_TUNABLES``), the
    pages malloc's large buffers get, e.g. ``"transparent huge pages: madvise; malloc: 4 KiB
    pages"``.

    It decides large losses' times as much as the CPU does: a jitted step's output is a fresh
    buffer, and touching its pages for the first time is most of the step. Cross-entropy
    forward+backward at float32 4096x32768 on a 2-core AMD EPYC (transparent huge pages on
    madvise) took 209 ms with 4 KiB pages and 89 ms with ``glibc.malloc.hugetlb=1`` (torch
    488 and 171 ms)."""
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as mode_file:
            text = mode_file.read()
        mode = text[text.index("[") + 1 : text.index("]")]
    except (OSError, ValueError):
        mode = "unknown"
    tunables = dict(
        item.split("=", 1)
        for item in os.environ.get("GLIBC_TUNABLES", "").split(":")
        if "=" in item
    )
    return f"transparent huge pages: {mode}; malloc: {_malloc_pages(mode, tunables)}"


def _malloc_pages(mode: str, tunables: dict[str, str]) -> str:
    """The pages of malloc's large buffers under the kernel's THP `mode` and glibc's
    tunables: huge where the kernel gives them to every mapping ("always") or glibc asks for
    them ("madvise" with glibc.malloc.hugetlb=1); none where the kernel never does."""
    hugetlb = tunables.get("glibc.malloc.hugetlb", "0")
    if mode == "never":
        return "4 KiB pages"
    if mode == "always":
        return "transparent huge pages"
    return {"0": "4 KiB pages", "1": "transparent huge pages"}.get(
        hugetlb, f"glibc.malloc.hugetlb={hugetlb}"
    )


def machine_record() -> dict[str, object]:
    """Where a figure was measured: the CPU model, its SIMD features, the core count, the
    jax, jaxlib and torch versions (torch: None when it is not installed) and how large
    arrays get their memory (`huge_pages`). Every benchmark's JSON holds it beside its
    figures. `simd` is what this process sees: under `benchmarks/avx2_only/run` the hidden
    features are left out of it and listed in `hidden_simd`."""
    model, flags = "", set()
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name") and not model:
                    model = line.split(":", 1)[1].strip()
                elif line.startswith("flags") and not flags:
                    flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    hidden = set(filter(None, os.environ.get(_HIDDEN_FEATURES, "").split(",")))
    import jax
    import jaxlib.version

    try:
        import torch

        torch_version = torch.__version__
    except ImportError:
        torch_version = None
    return {
        "cpu": model or platform.processor() or platform.machine() or "unknown CPU",
        "simd": [flag for flag in _SIMD_FLAGS if flag in flags - hidden],
        "hidden_simd": [flag for flag in _SIMD_FLAGS if flag in flags & hidden],
        "cores": os.cpu_count(),
        "jax": jax.__version__,
        "jaxlib": jaxlib.version.__version__,
        "torch": torch_version,
        "memory": huge_pages(),
    }


def synchronous_cpu_dispatch() -> None:
    """Has jax run each CPU program on the calling thread (``jax_cpu_enable_async_dispatch``
    off), for a benchmark's whole process; call it before jax's first computation, since the
    CPU client reads the setting once, when it starts.

    Why: a benchmark waits for every step, so asynchronous dispatch buys it nothing, and
    its hand-off of each program to a worker thread costs a wake-up. For a small step that is
    most of the time, and it varies: a 256x10 cross-entropy step took about 30 or about 94
    µs from one block of calls to the next (float32, fwd+bwd), and synchronously 18.1-18.9 µs
    in every block (p10 and p90 within 1%). Large steps take the same time either way."""
    import jax
    from jax._src import xla_bridge  # jax has no public way to ask whether a backend started

    if xla_bridge.backends_are_initialized():
        raise RuntimeError(
            "synchronous_cpu_dispatch() must run before jax's first computation: the CPU "
            "client has already started, asynchronously"
        )
    jax.config.update("jax_cpu_enable_async_dispatch", False)


def cpu_dispatch() -> str:
    """'synchronous' or 'asynchronous': how jax dispatches CPU programs in this process
    (see `synchronous_cpu_dispatch`)."""
    import jax

    return "asynchronous" if jax.config.values["jax_cpu_enable_async_dispatch"] else "synchronous"


def machine() -> str:
    """The CPU model, its core count, its SIMD features and the library versions, e.g.
    ``"Intel(R) Xeon(R) ... (2 cores; avx2, avx512f, avx512_bf16); jax 0.10.2, jaxlib 0.10.2,
    torch 2.13.0+cpu"``."""
    record = machine_record()
    simd = ", ".join(record["simd"]) or "no AVX2"  # type: ignore[arg-type]
    if record["hidden_simd"]:
        hidden = ", ".join(record["hidden_simd"])  # type: ignore[arg-type]
        simd += f"; {hidden} hidden by benchmarks/avx2_only"
    return (
        f"{record['cpu']} ({record['cores']} cores; {simd}); jax {record['jax']}, "
        f"jaxlib {record['jaxlib']}, torch {record['torch']}; {record['memory']}"
    )


# The vector features that decide which kernels XLA, YNNPACK and oneDNN run.
_FEATURE_NAMES = {
    "avx512f": "AVX-512",
    "avx512_bf16": "AVX-512 BF16",
    "amx_bf16": "AMX",
    "amx_tile": "AMX",
}


def _feature_names(flags) -> list[str]:
    return list(dict.fromkeys(_FEATURE_NAMES[f] for f in flags if f in _FEATURE_NAMES))


def cpu_kind(record: dict[str, object]) -> tuple[str, str]:
    """The kind of CPU a machine record describes, as ``(slug, label)``: the vendor's model
    family and the vector features that change which kernels run (AVX2 only, AVX-512, native
    bf16, AMX), e.g. ``("amd-epyc-avx512-bf16", "AMD EPYC; AVX-512, AVX-512 BF16")``. Features
    hidden by `benchmarks/avx2_only/run` make a kind of their own (``...-avx2-runner``)."""
    words = str(record["cpu"]).replace("(R)", "").replace("(TM)", "").split()
    family = " ".join(w for w in words[:2] if w.isalpha() and w.lower() != "processor")
    simd: list[str] = record["simd"]  # type: ignore[assignment]
    hidden: list[str] = record.get("hidden_simd") or []  # type: ignore[assignment]
    shown = _feature_names(simd)
    if hidden:
        label = f"AVX2 only ({', '.join(_feature_names(hidden))} hidden by benchmarks/avx2_only)"
        suffix = ["avx2", "runner"]
    elif shown:
        label = ", ".join(shown)
        suffix = [n.lower().replace("avx-512 ", "").replace("-", "") for n in shown]
    else:
        label = "AVX2 only" if "avx2" in simd else "no AVX2"
        suffix = ["avx2"] if "avx2" in simd else ["no", "avx2"]
    return "-".join(family.lower().split() + suffix), f"{family}; {label}"


def default_results_dir() -> str:
    """Where a benchmark writes its JSON unless told: ``benchmarks/results/<CPU kind>``, so
    figures from different kinds of CPU sit side by side (`benchmarks/report.py` renders each
    kind's table)."""
    return f"benchmarks/results/{cpu_kind(machine_record())[0]}"


def write_result(path, **figures) -> None:
    """Writes a benchmark's figures as JSON at `path`, with `machine_record()` beside them."""
    import json
    from pathlib import Path

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"machine": machine_record(), **figures}, indent=1))


def interleaved_times(
    steps: dict[str, Callable[[], object]], repeats: int, first_round: int = 0
) -> dict[str, list[float]]:
    """Seconds of each step over `repeats` rounds, the steps taking turns in an order that
    rotates every round (no warm-up: run each step once first)."""
    names = list(steps)
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(first_round, first_round + repeats):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            start = time.perf_counter()
            steps[name]()
            times[name].append(time.perf_counter() - start)
    return times


def rounds_for(steps, minimum: int, budget_s: float = 0.4, maximum: int = 400) -> int:
    """Enough rounds that each of the `steps` runs for about `budget_s`, between `minimum`
    and `maximum`: a median of 7 or 15 calls of a step of a few microseconds moves by 20% or
    more from run to run here. Runs each step twice (compile, warm-up, one timed call)."""
    slowest = 0.0
    for step in steps:
        step()
        start = time.perf_counter()
        step()
        slowest = max(slowest, time.perf_counter() - start)
    return int(min(max(minimum, budget_s / max(slowest, 1e-6)), maximum))


def interleaved_medians(steps: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median milliseconds of each step over `repeats` rounds, the steps taking turns in an
    order that rotates every round. Each step runs once first (compile, warm-up)."""
    if repeats < 1:
        raise ValueError(f"interleaved_medians: `repeats` must be >= 1; got {repeats}.")
    for step in steps.values():
        step()
    times = interleaved_times(steps, repeats)
    return {name: 1e3 * float(np.median(t)) for name, t in times.items()}


def side_by_side(
    jax_steps: dict[str, Callable[[], object]],
    torch_steps: dict[str, Callable[[], object]],
    repeats: int,
    blocks: int = 4,
) -> dict[str, float]:
    """Median milliseconds of every step (the torch steps already at their fastest thread
    count), each timed in blocks of its own rounds, the steps' blocks taking turns (`blocks`
    turns, in an order that rotates every turn), so that a drift of the machine's speed
    during the run reaches every step alike. Each block starts with one untimed call (torch's
    spinning workers from the block before have settled by its end).

    A step's block holds only that step, so every step runs with its own inputs in the
    cache: interleaving several JAX steps, each holding its own copy of the inputs, had
    evicted them between calls while torch's block kept its inputs hot (a 4 MiB Huber loss
    measured 0.72 ms that way, 0.46-0.54 ms in blocks of its own)."""
    if repeats < 1:
        raise ValueError(f"side_by_side: `repeats` must be >= 1; got {repeats}.")
    steps = {**jax_steps, **torch_steps}
    times: dict[str, list[float]] = {name: [] for name in steps}
    blocks = max(1, min(blocks, repeats))
    names = list(steps)
    done = 0
    for block in range(blocks):
        size = (repeats * (block + 1)) // blocks - done
        shift = block % len(names)
        for name in names[shift:] + names[:shift]:
            steps[name]()
            times[name].extend(interleaved_times({name: steps[name]}, size)[name])
        done += size
    return {name: 1e3 * float(np.median(t)) for name, t in times.items()}


def fastest_torch_threads(step: Callable[[], object], repeats: int = 5) -> int:
    """Sets torch to the thread count, from 1 to its default, at which `step` is fastest
    (median of `repeats`, interleaved), and returns that count."""
    import torch

    default = torch.get_num_threads()
    counts = sorted({1, max(default, 1)})

    def at(count):
        def run():
            torch.set_num_threads(count)
            step()

        return run

    medians = interleaved_medians({str(n): at(n) for n in counts}, repeats)
    best = min(counts, key=lambda n: medians[str(n)])
    torch.set_num_threads(best)
    return best


def xla_temp_bytes(jitted, *args) -> int | None:
    """XLA's compiled temp size of a jitted function on `args` (the memory a step needs
    besides its inputs and outputs), or None where the backend does not report it."""
    try:
        return int(jitted.lower(*args).compile().memory_analysis().temp_size_in_bytes)
    except Exception:
        return None


def print_step_rows(rows) -> None:
    """The table of a head benchmark's rows (`benchmarks/log_probs.py`,
    `benchmarks/post_training.py`): section, shape, dtype, contender, best and median ms, the
    ratio to naive JAX's time, XLA temp MiB and its fraction of naive's."""

    def mib(value):
        return "-" if value is None else f"{value / 2**20:.0f}"

    print(
        f"\n{'section':>12} {'N, D, V':>20} {'dtype':>9} {'contender':>14} {'best ms':>9} "
        f"{'median ms':>10} {'/naive':>7} {'XLA MiB':>8} {'of naive':>8}"
    )
    for r in rows:
        fraction = r["temp_fraction_of_naive"]
        print(
            f"{r['section']:>12} {tuple(r['shape'])!s:>20} {r['dtype']:>9} {r['contender']:>14} "
            f"{r['best_ms']:9.1f} {r['median_ms']:10.1f} {r['ratio_to_naive']:7.2f} "
            f"{mib(r['xla_temp_bytes']):>8} {'-' if fraction is None else f'{fraction:.3f}':>8}"
        )


def time_step_rows(section, shape, dtype_name, steps, temps, repeats) -> list[dict]:
    """One row per contender of a head benchmark (`benchmarks/log_probs.py`,
    `benchmarks/post_training.py`): its steps warmed up and timed in interleaved rounds (the
    ``"Liger (torch)"`` step at torch's fastest thread count), best and median ms, the ratio
    to ``"naive JAX"``'s time and its XLA temp size against naive's."""
    import numpy as np

    threads = None
    if "Liger (torch)" in steps:
        threads = fastest_torch_threads(steps["Liger (torch)"], repeats=1)
    for step in steps.values():
        step()  # compile, warm up
    times = interleaved_times(steps, repeats)
    best = {name: 1e3 * min(seconds) for name, seconds in times.items()}
    rows = []
    for name in steps:
        temp, naive_temp = temps[name], temps["naive JAX"]
        rows.append(
            dict(
                section=section,
                shape=list(shape),
                dtype=dtype_name,
                contender=name,
                best_ms=best[name],
                median_ms=1e3 * float(np.median(times[name])),
                ratio_to_naive=best[name] / best["naive JAX"],
                xla_temp_bytes=temp,
                temp_fraction_of_naive=(
                    None if temp is None or not naive_temp else temp / naive_temp
                ),
                torch_threads=threads if name.startswith("Liger") else None,
            )
        )
    return rows
