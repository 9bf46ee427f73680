"""The benchmark command keeps working (timings are printed, never asserted)."""

import runpy
from pathlib import Path

import pytest

from jaxloss.parity.cases import CRITERIA


@pytest.mark.slow  # ~9 s: every criterion compiles; the CTC and boxes quick modes run by default
def test_criteria_benchmark_quick_mode_prints_every_criterion(capsys):
    module = runpy.run_path(str(Path(__file__).parents[1] / "benchmarks" / "criteria.py"))
    assert module["main"](["--quick"]) == 0
    printed = capsys.readouterr().out
    for criterion in CRITERIA:
        assert criterion in printed
    assert "optax" in printed


def test_ctc_benchmark_quick_mode_prints_all_three_contenders(capsys):
    module = runpy.run_path(str(Path(__file__).parents[1] / "benchmarks" / "ctc.py"))
    assert module["main"](["--quick"]) == 0
    printed = capsys.readouterr().out
    for word in ("jaxloss", "optax", "torch", "(2, 12, 5, 4)"):
        assert word in printed


@pytest.mark.slow  # ~9 s of compiles; the CTC and boxes quick modes run by default
def test_cross_entropy_benchmark_quick_mode_writes_json_and_png(tmp_path, capsys):
    import json

    module = runpy.run_path(str(Path(__file__).parents[1] / "benchmarks" / "cross_entropy.py"))
    assert module["main"](["--quick", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    for word in ("jaxloss+options", "optax", "torch", "naive", "fused linear CE", "GB/s"):
        assert word in printed
    results = json.loads((tmp_path / "cross_entropy.json").read_text())
    contenders = {r["contender"] for r in results["cross_entropy"]}
    assert {"jaxloss", "jaxloss+options", "optax", "naive", "torch"} <= contenders
    assert {r["dtype"] for r in results["linear_cross_entropy"]} == {"float32", "bfloat16"}
    assert (tmp_path / "cross_entropy.png").stat().st_size > 0


@pytest.mark.slow  # ~4 s of 8-device compiles; tests/test_parallel.py checks the same HLO
def test_sharded_benchmark_quick_mode_prints_every_layout(capsys):
    module = runpy.run_path(str(Path(__file__).parents[1] / "benchmarks" / "sharded.py"))
    assert module["main"](["--quick"]) == 0
    printed = capsys.readouterr().out
    for word in ("vocab-parallel CE", "data parallel", "tensor parallel", "FSDP", "12·N"):
        assert word in printed
    assert "all-reduce" in printed and "reduce-scatter" in printed


def test_boxes_benchmark_quick_mode_prints_every_loss_against_torchvision(capsys):
    module = runpy.run_path(str(Path(__file__).parents[1] / "benchmarks" / "boxes.py"))
    assert module["main"](["--quick"]) == 0
    printed = capsys.readouterr().out
    for word in ("generalized_box_iou_loss", "complete_box_iou_loss", "siou_loss", "torchvision"):
        assert word in printed
