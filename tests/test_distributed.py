"""Two processes of 4 CPU devices each, joined by jax.distributed over localhost (gloo CPU
collectives), compute the sharded fused loss and its gradients on one (2, 4) mesh; they equal
one process's. The processes are bounded in time and never outlive the test."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

WORKER = Path(__file__).with_name("distributed_worker.py")
TIME_LIMIT_S = 240


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("localhost", 0))
        return probe.getsockname()[1]


# The post-training composites (DPO, GRPO) exercise the log-prob head inside; --full also runs
# the head's statistics and the distillation loss on their own (each case compiles in both
# processes, about 4 s).
DEFAULT_CASES = ("cross_entropy", "dpo", "grpo")
FULL_CASES = DEFAULT_CASES + ("log_probs", "distillation")


def test_two_processes_of_four_devices_equal_one_process(tmp_path, full_tier):
    cases = FULL_CASES if full_tier else DEFAULT_CASES
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_NUM_CPU_DEVICES")}
    env["JAX_PLATFORMS"] = "cpu"
    outputs = [tmp_path / f"rank{rank}.json" for rank in range(2)]
    logs = [open(tmp_path / f"rank{rank}.log", "w") for rank in range(2)]
    processes = [
        subprocess.Popen(
            [sys.executable, str(WORKER), str(port), str(rank), str(outputs[rank]), *cases],
            env=env,
            stdout=logs[rank],
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, killed as one below
        )
        for rank in range(2)
    ]
    deadline = time.monotonic() + TIME_LIMIT_S
    try:
        for process in processes:
            process.wait(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        pytest.fail(f"the two processes did not finish within {TIME_LIMIT_S} s")
    finally:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        for log in logs:
            log.close()
    for rank, process in enumerate(processes):
        log = (tmp_path / f"rank{rank}.log").read_text()
        assert process.returncode == 0, f"rank {rank} exited {process.returncode}:\n{log[-3000:]}"
    for output in outputs:
        result = json.loads(output.read_text())
        assert sorted(result) == sorted(("rank", *cases)), result
        for case in cases:
            assert result[case]["value"] < 1e-6, result
            assert max(result[case]["grads"]) < 1e-5, result
