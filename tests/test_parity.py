"""Parity with torch: every criterion, every option, forward and gradients, float64 and float32.

Inputs are drawn fresh from a seed (``JAXLOSS_PARITY_SEED``, default 0; CI may set another) for
every combination of options, shapes (batched, unbatched, K-dimensional) and regimes (normal
values, and hard ones: logits of +-50 and beyond, probabilities exactly 0 and 1, zeros in KL
targets, every label ignored).
"""

import os

import numpy as np
import pytest

from jaxloss.parity.cases import CASE_BUILDERS, cases
from jaxloss.parity.compare import compare

SEED = int(os.environ.get("JAXLOSS_PARITY_SEED", "0"))


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("criterion", sorted(CASE_BUILDERS))
def test_matches_torch(criterion, dtype):
    drawn = cases(criterion, seed=SEED, dtype=dtype)
    assert len(drawn) >= 20, "too few cases drawn to cover the argument space"
    failures = []
    for case in drawn:
        outcome = compare(case)
        if not outcome.ok:
            failures.append(f"{case.describe()} ({case.regime}): {outcome.detail[:600]}")
    assert not failures, f"{len(failures)}/{len(drawn)} cases differ from torch:\n" + "\n".join(
        failures[:10])


def test_hard_regimes_are_exercised():
    """The hard regime really produces nan (all ignored) and the clamp-decided BCE values."""
    hard = [c for c in cases("cross_entropy", seed=SEED, dtype=np.float64, regimes=("hard",))]
    all_ignored = [c for c in hard if c.kwargs.get("reduction") == "mean"
                   and "ignore_index" in c.kwargs]
    assert all_ignored
    outcome = compare(all_ignored[0])
    assert outcome.ok
    from jaxloss.parity.compare import run_torch

    value, _, _ = run_torch(all_ignored[0])
    assert np.isnan(value), "every label ignored with 'mean' must be nan in torch and jaxloss"


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
def test_broadcasting_and_empty_batches_match_torch(dtype):
    from jaxloss.parity.cases import edge_cases

    failures = [f"{c.describe()}: {o.detail[:300]}" for c in edge_cases(seed=SEED, dtype=dtype)
                if not (o := compare(c)).ok]
    assert not failures, "\n".join(failures)
