"""Two processes of 4 CPU devices each, joined by jax.distributed over localhost (gloo CPU
collectives), compute the sharded fused losses, the post-training losses and the contrastive
losses and their gradients on one (2, 4) mesh; they equal one process's. The processes are
bounded in time and never outlive the test."""

import json
import os
import sys
from pathlib import Path

from bounded_processes import free_port, run_bounded

WORKER = Path(__file__).with_name("distributed_worker.py")
TIME_LIMIT_S = 240


# The post-training composites (DPO, GRPO) exercise the log-prob head inside; --full also runs
# the head's statistics, the distillation loss and the contrastive losses (CLIP's gather and
# SigLIP's ring across the two processes) as cases of their own: each case compiles in both
# processes (about 4 s), and the default tier must stay within ./dev test's budget.
DEFAULT_CASES = ("cross_entropy", "dpo", "grpo")
FULL_CASES = DEFAULT_CASES + ("log_probs", "distillation", "contrastive")


def test_two_processes_of_four_devices_equal_one_process(tmp_path, full_tier):
    cases = FULL_CASES if full_tier else DEFAULT_CASES
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "JAX_NUM_CPU_DEVICES"}
    # The workers set their own device count; other XLA flags (the default tier's cheaper
    # compiles, tests/conftest.py) carry over.
    env["XLA_FLAGS"] = " ".join(
        flag
        for flag in os.environ.get("XLA_FLAGS", "").split()
        if not flag.startswith("--xla_force_host_platform_device_count")
    )
    env["JAX_PLATFORMS"] = "cpu"
    outputs = [tmp_path / f"rank{rank}.json" for rank in range(2)]
    commands = [
        [sys.executable, str(WORKER), str(port), str(rank), str(outputs[rank]), *cases]
        for rank in range(2)
    ]
    run_bounded(commands, tmp_path, TIME_LIMIT_S, env=env)
    for output in outputs:
        result = json.loads(output.read_text())
        assert sorted(result) == sorted(("rank", *cases)), result
        for case in cases:
            assert result[case]["value"] < 1e-6, result
            assert max(result[case]["grads"]) < 1e-5, result
