"""The benchmark command keeps working (timings are printed, never asserted)."""

import json
import runpy
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from jaxloss.parity.cases import CRITERIA


def _run(name, tmp_path, *args):
    """Runs benchmarks/<name>.py in quick mode, writing into tmp_path; returns its JSON, which
    must say where it ran."""
    module = runpy.run_path(str(Path(__file__).parents[1] / "benchmarks" / f"{name}.py"))
    assert module["main"](["--quick", "--out", str(tmp_path), *args]) == 0
    results = json.loads((tmp_path / f"{name}.json").read_text())
    machine = results["machine"]
    assert machine["cpu"] and machine["cores"] >= 1 and isinstance(machine["simd"], list)
    assert machine["jax"] and machine["jaxlib"] and machine["torch"]
    return results


@pytest.mark.slow  # ~9 s: every criterion compiles; the CTC and boxes quick modes run by default
def test_criteria_benchmark_quick_mode_prints_every_criterion(tmp_path, capsys):
    results = _run("criteria", tmp_path)
    printed = capsys.readouterr().out
    for criterion in CRITERIA:
        assert criterion in printed
    assert "optax" in printed
    rows = {row["criterion"]: row["ms"] for row in results["rows"]}
    assert set(CRITERIA) <= set(rows)
    assert {"jaxloss", "torch", "optax", "floor"} <= set(rows["binary_cross_entropy_with_logits"])
    assert {"jaxloss", "torch", "floor"} <= set(rows["nll_loss"])


def test_ctc_benchmark_quick_mode_prints_all_three_contenders(tmp_path, capsys):
    results = _run("ctc", tmp_path)
    assert {"jaxloss", "optax", "torch"} <= set(results["rows"][0]["ms"])
    printed = capsys.readouterr().out
    for word in ("jaxloss", "optax", "torch", "(2, 12, 5, 4)"):
        assert word in printed


@pytest.mark.slow  # ~9 s of compiles; the CTC and boxes quick modes run by default
def test_cross_entropy_benchmark_quick_mode_writes_json_and_png(tmp_path, capsys):
    results = _run("cross_entropy", tmp_path)
    printed = capsys.readouterr().out
    for word in ("jaxloss+options", "optax", "torch", "naive", "fused linear CE", "GB/s"):
        assert word in printed
    contenders = {r["contender"] for r in results["cross_entropy"]}
    assert {"jaxloss", "jaxloss+options", "optax", "naive", "torch"} <= contenders
    assert {r["dtype"] for r in results["linear_cross_entropy"]} == {"float32", "bfloat16"}
    assert (tmp_path / "cross_entropy.png").stat().st_size > 0


@pytest.mark.slow  # ~4 s of 8-device compiles; tests/test_parallel.py checks the same HLO
def test_sharded_benchmark_quick_mode_prints_every_layout(tmp_path, capsys):
    results = _run("sharded", tmp_path)
    assert len(results["rows"]) == 4
    printed = capsys.readouterr().out
    for word in ("vocab-parallel CE", "data parallel", "tensor parallel", "FSDP", "12·N"):
        assert word in printed
    assert "all-reduce" in printed and "reduce-scatter" in printed


def test_contrastive_benchmark_quick_mode_reads_the_rings_collectives(tmp_path, capsys):
    results = _run("contrastive", tmp_path)
    steps = {row["step"]: row for row in results["rows"]}
    assert set(steps) == {
        "SigLIP, ring",
        "SigLIP, gather",
        "CLIP, local rows",
        "CLIP, whole matrix",
    }
    assert results["ring_forward_permute_bytes"] == results["ring_forward_formula_bytes"] > 0
    ring = dict(steps["SigLIP, ring"]["collectives"])
    assert "all-gather" not in ring and ring["collective-permute"] > 0
    local = results["shape"]["batch"] // results["shape"]["devices"]
    assert steps["SigLIP, ring"]["largest_array"] == [local, local]
    assert "SigLIP, ring" in capsys.readouterr().out


def test_log_probs_benchmark_quick_mode_times_every_contender(tmp_path, capsys):
    results = _run("log_probs", tmp_path)
    contenders = {(r["section"], r["dtype"], r["contender"]) for r in results["rows"]}
    for section in ("log_probs", "distillation"):
        assert (section, "float32", "Liger (torch)") in contenders
        assert (section, "bfloat16", "jaxloss") in contenders
    assert all(r["xla_temp_bytes"] is not None for r in results["rows"] if r["dtype"] == "bfloat16")
    assert "Liger (torch)" in capsys.readouterr().out


@pytest.mark.slow  # ~4 s of compiles; the log_probs quick mode covers the shared table code
def test_post_training_benchmark_quick_mode_times_every_contender(tmp_path, capsys):
    results = _run("post_training", tmp_path)
    contenders = {(r["section"], r["dtype"], r["contender"]) for r in results["rows"]}
    for section in ("dpo", "grpo"):
        for contender in ("jaxloss", "naive JAX", "Liger (torch)"):
            assert (section, "float32", contender) in contenders
        assert (section, "bfloat16", "jaxloss") in contenders
    assert all(r["xla_temp_bytes"] is not None for r in results["rows"] if r["dtype"] == "bfloat16")
    assert "grpo" in capsys.readouterr().out


def test_boxes_benchmark_quick_mode_prints_every_loss_against_torchvision(tmp_path, capsys):
    results = _run("boxes", tmp_path)
    assert "torchvision" in results["rows"][0]["ms"]
    printed = capsys.readouterr().out
    for word in ("generalized_box_iou_loss", "complete_box_iou_loss", "siou_loss", "torchvision"):
        assert word in printed


def test_side_by_side_times_each_step_in_blocks_of_its_own():
    """Every step runs every round (plus one untimed call per block) in blocks of only its
    own calls, the blocks taking turns in a rotating order; bad round counts raise."""
    import itertools

    from jaxloss.parity.timing import side_by_side

    order = []
    steps = {name: (lambda name=name: order.append(name)) for name in ("a", "b", "torch")}
    medians = side_by_side({"a": steps["a"], "b": steps["b"]}, {"torch": steps["torch"]}, 8)
    assert set(medians) == {"a", "b", "torch"} and all(m >= 0 for m in medians.values())
    assert order.count("a") == order.count("b") == order.count("torch") == 8 + 4
    runs = [(name, len(list(run))) for name, run in itertools.groupby(order)]
    assert [length for _, length in runs] == [3] * 12  # 4 turns x 3 steps, 1 + 2 calls each
    turns = [[name for name, _ in runs[i : i + 3]] for i in range(0, 12, 3)]
    assert turns == [["a", "b", "torch"], ["b", "torch", "a"], ["torch", "a", "b"],
                     ["a", "b", "torch"]]  # fmt: skip
    with pytest.raises(ValueError, match="repeats"):
        side_by_side({"a": steps["a"]}, {}, 0)


def test_rounds_for_gives_a_fast_step_enough_rounds_within_the_bounds():
    """About `budget_s` of the slowest step, never fewer than `minimum` nor more than
    `maximum`; each step runs twice to be measured."""
    import time

    from jaxloss.parity.timing import rounds_for

    calls = []
    fast = lambda: calls.append("fast")
    slow = lambda: (calls.append("slow"), time.sleep(0.02))
    assert rounds_for([fast], 7, budget_s=10.0, maximum=2000) == 2000  # unless a call took 5 ms
    assert 7 <= rounds_for([fast, slow], 7, budget_s=0.4, maximum=2000) <= 0.4 / 0.02
    assert rounds_for([slow], 7, budget_s=0.01, maximum=2000) == 7
    assert calls.count("slow") == 4 and calls.count("fast") == 4


def test_the_machine_record_says_which_memory_pages_large_arrays_get(monkeypatch):
    """The kernel's transparent-huge-page mode and glibc's malloc tunable, read from the
    environment, decide the pages; the benchmarks README shows them beside the machine."""
    from benchmarks.report import _machine_line
    from jaxloss.parity.timing import _malloc_pages, huge_pages, machine_record

    huge = {"glibc.malloc.hugetlb": "1"}
    assert _malloc_pages("madvise", {}) == "4 KiB pages"
    assert _malloc_pages("madvise", huge) == "transparent huge pages"
    assert _malloc_pages("always", {}) == "transparent huge pages"
    assert _malloc_pages("never", huge) == "4 KiB pages"
    assert _malloc_pages("madvise", {"glibc.malloc.hugetlb": "2"}) == "glibc.malloc.hugetlb=2"
    mode = huge_pages().split(";")[0].removeprefix("transparent huge pages: ")
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1")
    assert huge_pages().endswith(f"; malloc: {_malloc_pages(mode, huge)}")
    monkeypatch.delenv("GLIBC_TUNABLES")
    assert huge_pages().endswith(f"; malloc: {_malloc_pages(mode, {})}")
    record = machine_record()
    assert record["memory"] == huge_pages()
    assert _machine_line(record).endswith(f"; {record['memory']}.")
    older = _machine_line({**record, "memory": None})  # results from before it was recorded
    assert older.endswith(f"torch {record['torch']}.")


def test_synchronous_dispatch_takes_effect_before_jax_starts_and_the_table_says_so():
    """`synchronous_cpu_dispatch` (which benchmarks/criteria.py and cross_entropy.py call first)
    turns jax's asynchronous CPU dispatch off in a fresh process and refuses once jax has
    started, when it could no longer take effect; the criteria and CE tables' captions say
    which dispatch their run had."""
    code = (
        "from jaxloss.parity.timing import cpu_dispatch, synchronous_cpu_dispatch\n"
        "print(cpu_dispatch()); synchronous_cpu_dispatch()\n"
        "import jax.numpy as jnp; jnp.ones(2).block_until_ready(); print(cpu_dispatch())\n"
        "synchronous_cpu_dispatch()\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.stdout.split() == ["asynchronous", "synchronous"]
    assert "must run before jax's first computation" in run.stderr
    report = runpy.run_path(str(Path(__file__).parents[1] / "benchmarks" / "report.py"))
    row = {"shape": [256, 10], "dtype": "float32", "contender": "jaxloss", "median_ms": 0.02}
    caption = report["_cross_entropy"]({"cross_entropy": [row], "cpu_dispatch": "synchronous"})[0]
    assert caption.endswith(" jax's CPU dispatch: synchronous.")
    older = report["_cross_entropy"]({"cross_entropy": [row]})[0]  # before it was recorded
    assert "dispatch" not in older
    criteria = {"n": 8, "c": 4, "rows": [{"criterion": "l1_loss", "ms": {"jaxloss": 0.1}}]}
    assert report["_criteria"]({**criteria, "cpu_dispatch": "synchronous"})[0].endswith(
        " jax's CPU dispatch: synchronous."
    )
    assert "dispatch" not in report["_criteria"](criteria)[0]


_AVX2_ONLY = Path(__file__).parents[1] / "benchmarks" / "avx2_only" / "run"
_PROBE = r"""
#include <cpuid.h>
#include <stdio.h>
int main(void) {
  unsigned a, b, c, d, a1, b1, c1, d1;
  __cpuid_count(7, 0, a, b, c, d);
  __cpuid_count(7, 1, a1, b1, c1, d1);
  printf("avx2=%u avx512f=%u amx_tile=%u avx512_bf16=%u\n", (b >> 5) & 1, (b >> 16) & 1,
         (d >> 24) & 1, (a1 >> 5) & 1);
  return 0;
}
"""


def _cpu_flags_or_skip() -> str:
    """/proc/cpuinfo, where benchmarks/avx2_only can run here; skips the test elsewhere."""
    cpuinfo = Path("/proc/cpuinfo")
    flags = cpuinfo.read_text() if cpuinfo.exists() else ""
    if shutil.which("cc") is None or " cpuid_fault" not in flags:
        pytest.skip("benchmarks/avx2_only needs a C compiler and a CPU with CPUID faulting")
    return flags


def test_avx2_only_runner_hides_avx512_and_amx_from_cpuid_and_says_so(tmp_path):
    flags = _cpu_flags_or_skip()
    (tmp_path / "probe.c").write_text(_PROBE)
    subprocess.run(["cc", "-o", tmp_path / "probe", tmp_path / "probe.c"], check=True)
    seen = subprocess.run(
        [_AVX2_ONLY, tmp_path / "probe"], check=True, capture_output=True, text=True
    ).stdout
    assert seen.strip() == "avx2=1 avx512f=0 amx_tile=0 avx512_bf16=0"
    # The record of a benchmark run under it: the features the process saw, and the hidden.
    record = subprocess.run(
        [
            _AVX2_ONLY,
            sys.executable,
            "-c",
            "import json; from jaxloss.parity.timing import machine_record, machine;"
            "print(json.dumps(machine_record())); print(machine())",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.splitlines()
    machine = json.loads(record[0])
    assert "avx2" in machine["simd"]
    assert not {"avx512f", "avx512_bf16", "amx_tile"} & set(machine["simd"])
    for feature in ("avx512f", "avx512_bf16", "amx_tile"):
        assert (feature in machine["hidden_simd"]) == (f" {feature}" in flags)
    assert "hidden by benchmarks/avx2_only" in record[1] or not machine["hidden_simd"]


def test_avx2_only_runner_still_lets_a_real_segfault_reach_the_programs_handler():
    _cpu_flags_or_skip()
    crash = "import ctypes, faulthandler; faulthandler.enable(); ctypes.string_at(0)"
    died = subprocess.run([_AVX2_ONLY, sys.executable, "-c", crash], capture_output=True, text=True)
    assert died.returncode != 0
    assert "Segmentation fault" in died.stderr  # faulthandler's report: its handler ran


def test_benchmarks_readme_is_generated_from_the_results():
    """benchmarks/README.md is exactly what benchmarks/report.py renders from the JSON, so no
    figure in it is typed by hand (regenerate: python benchmarks/report.py)."""
    report = runpy.run_path(str(Path(__file__).parents[1] / "benchmarks" / "report.py"))
    assert report["main"](["--check"]) == 0


def test_benchmarks_readme_has_one_table_per_cpu_kind(tmp_path):
    """Results from two CPU kinds give two tables, each headed by its kind and machine."""
    report = runpy.run_path(str(Path(__file__).parents[1] / "benchmarks" / "report.py"))
    machine = {"cpu": "AMD EPYC 9B14", "cores": 2, "jax": "0", "jaxlib": "0", "torch": "0"}
    row = {"shape": [1, 2, 3, 4], "torch_threads": 1, "ms": {"jaxloss": 1, "optax": 2, "torch": 4}}
    for slug, simd in [("a", ["avx2", "fma"]), ("b", ["avx2", "fma", "avx512f", "avx512_bf16"])]:
        (tmp_path / "results" / slug).mkdir(parents=True)
        record = {**machine, "simd": simd, "hidden_simd": []}
        (tmp_path / "results" / slug / "ctc.json").write_text(
            json.dumps({"machine": record, "rows": [row]})
        )
    text = report["render"](tmp_path / "results")
    assert "### AMD EPYC; AVX2 only" in text and "### AMD EPYC; AVX-512, AVX-512 BF16" in text
    assert text.count("| (1, 2, 3, 4) | 1.000 | 2.000 | 4.000 | 0.50 | 0.25 | 1 |") == 2
