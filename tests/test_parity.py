"""Parity with torch: every criterion, every option, forward and gradients, float64 and float32.

One test per case, named after its criterion, regime and options, so that ``-k`` selects one
(``-k "cross_entropy and kind:kdim2 and reduction:mean"``) and a failure names it. The default
tier runs a pairwise covering array of each criterion's options (every value, and every pair of
values of any two options); ``--full`` runs their full product. Inputs are drawn fresh from a
seed (``JAXLOSS_PARITY_SEED``, default 0; CI may set another) per case, in normal and hard
regimes (logits of +-50 and beyond, probabilities exactly 0 and 1, zeros in KL targets, every
label ignored).
"""

import os

import numpy as np
import pytest

from jaxloss.parity.cases import ALL_CRITERIA, all_cases, cases, edge_cases
from jaxloss.parity.compare import compare, run_torch

SEED = int(os.environ.get("JAXLOSS_PARITY_SEED", "0"))
DTYPES = {"float64": np.float64, "float32": np.float32}

pytestmark = pytest.mark.usefixtures("x64")


def pytest_generate_tests(metafunc):
    if "parity_case" not in metafunc.fixturenames:
        return
    if metafunc.function.__name__ == "test_edge_case_matches_torch":
        drawn = [case for dtype in DTYPES.values() for case in edge_cases(seed=SEED, dtype=dtype)]
    else:
        coverage = "full" if metafunc.config.getoption("--full") else "pairwise"
        drawn = list(all_cases(seed=SEED, coverage=coverage))
    metafunc.parametrize("parity_case", drawn, ids=[case.id for case in drawn])


def test_matches_torch(parity_case):
    outcome = compare(parity_case)
    assert outcome.ok, f"{parity_case.describe()} ({parity_case.regime}): {outcome.detail}"


def test_edge_case_matches_torch(parity_case):
    """Broadcasting between inputs and empty batches."""
    outcome = compare(parity_case)
    assert outcome.ok, f"{parity_case.describe()}: {outcome.detail}"


@pytest.mark.parametrize("criterion", ALL_CRITERIA)
def test_every_option_value_is_drawn(criterion):
    """The pairwise tier tries every value of every option, each dtype and each regime."""
    from jaxloss.parity.cases import SPACES

    drawn = cases(criterion, seed=SEED)
    labels = {case.label for case in drawn}
    for option_space in SPACES[criterion]:
        for name, values in option_space.options.items():
            for value in values:
                from jaxloss.parity.cases import _format

                fragment = f"{name}:{_format(value)}"
                assert any(fragment in label.split("/") for label in labels), fragment
    assert {case.dtype.name for case in drawn} == set(DTYPES)
    assert {case.regime for case in drawn} == {"normal", "hard"}


def test_hard_regimes_are_exercised():
    """The hard regime really produces nan (all ignored) and the clamp-decided BCE values."""
    hard = cases("cross_entropy", seed=SEED, dtypes=("float64",), regimes=("hard",))
    all_ignored = [
        c for c in hard if c.kwargs.get("reduction") == "mean" and "ignore_index" in c.kwargs
    ]
    assert all_ignored
    assert compare(all_ignored[0]).ok
    value, _, _ = run_torch(all_ignored[0])
    assert np.isnan(value), "every label ignored with 'mean' must be nan in torch and jaxloss"
