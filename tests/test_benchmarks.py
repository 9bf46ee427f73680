"""The benchmark command keeps working (timings are printed, never asserted)."""

import runpy
from pathlib import Path

from jaxloss.parity.cases import CASE_BUILDERS


def test_criteria_benchmark_quick_mode_prints_every_criterion(capsys):
    module = runpy.run_path(str(Path(__file__).parents[1] / "benchmarks" / "criteria.py"))
    assert module["main"](["--quick"]) == 0
    printed = capsys.readouterr().out
    for criterion in CASE_BUILDERS:
        assert criterion in printed
    assert "optax" in printed


def test_ctc_benchmark_quick_mode_prints_all_three_contenders(capsys):
    module = runpy.run_path(str(Path(__file__).parents[1] / "benchmarks" / "ctc.py"))
    assert module["main"](["--quick"]) == 0
    printed = capsys.readouterr().out
    for word in ("jaxloss", "optax", "torch", "(2, 12, 5, 4)"):
        assert word in printed
