"""Test tiers and the scoped float64 switch.

``./dev test`` (CI) runs the default tier: every parity case of a pairwise covering array over
each criterion's options. ``./dev test --full`` adds the full option product and the checks
marked ``slow`` (training to accuracy, step-by-step training parity, long sequences).

float64 needs ``jax_enable_x64``: modules that compare in float64 request the ``x64`` fixture,
which switches it on for one test and restores it after; nothing flips it for the session.
"""

import os
import sys
import warnings

# The default tier is bound by XLA compiles, not by running them. It compiles with the CPU
# backend's optimisation level 0 and its older (LLVM IR) loop-fusion emitters instead of the
# MLIR ones: the same HLO passes and fusion decisions, cheaper code generation. Measured on
# 56 parity cells: 16.2 s at the defaults, 12.3 s with level 0 alone, 7.7-8.4 s with both.
# And in one LLVM module per program rather than several compiled on threads: the two
# workers already use both cores (120 parity cases' compiles: 4.4-4.6 s split, 3.7-3.9 s
# whole). The full tier (--full) keeps the defaults, the code users run. The controller
# decides once; xdist workers inherit the setting.
if "JAXLOSS_TEST_FAST_COMPILE" not in os.environ:
    os.environ["JAXLOSS_TEST_FAST_COMPILE"] = "0" if "--full" in sys.argv else "1"
if os.environ["JAXLOSS_TEST_FAST_COMPILE"] == "1":
    flags = os.environ.get("XLA_FLAGS", "").split()
    for fast in (
        "--xla_backend_optimization_level=0",
        "--xla_cpu_use_fusion_emitters=false",
        "--xla_cpu_parallel_codegen_split_count=1",
    ):
        if not any(flag.split("=")[0] == fast.split("=")[0] for flag in flags):
            flags.append(fast)
    os.environ["XLA_FLAGS"] = " ".join(flags)

# keras (a reference of tests/test_libraries.py) takes its backend when first imported.
os.environ.setdefault("KERAS_BACKEND", "jax")

import jax
import pytest
import torch

# Eight CPU devices for the sharded tests (tests/test_sharded.py): set before any test starts
# jax's backends. Single-device tests place their arrays on the first device, as before.
jax.config.update("jax_num_cpu_devices", 8)

# torch's eager kernels run several times faster on one thread than on two on these 2-core
# machines, and the suite runs in two worker processes (pytest-xdist) side by side.
torch.set_num_threads(1)

warnings.filterwarnings("ignore", message="size_average and reduce args will be deprecated")
warnings.filterwarnings("ignore", message="reduction: 'mean' divides the total loss")
warnings.filterwarnings("ignore", message=".*will be broadcast")


def pytest_addoption(parser):
    parser.addoption(
        "--full",
        action="store_true",
        default=False,
        help="run the full option product of the parity cases and the slow checks",
    )


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: a long check that runs only with --full")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--full"):
        return
    slow = [item for item in items if "slow" in item.keywords]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if "slow" not in item.keywords]


@pytest.fixture
def x64():
    """64-bit JAX arrays for the duration of one test."""
    with jax.enable_x64(True):
        yield


@pytest.fixture
def full_tier(request) -> bool:
    return bool(request.config.getoption("--full"))
