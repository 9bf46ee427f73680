"""Worker processes for the multi-process tests, bounded in time: each in its own process group,
killed as one if it outlives the limit, so no process survives its test."""

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("localhost", 0))
        return probe.getsockname()[1]


def run_bounded(commands: list[list[str]], logs_dir: Path, time_limit_s: float, env=None) -> None:
    """Runs the `commands` side by side and fails the test if any of them exits non-zero (with
    the end of its log) or if they do not all finish within `time_limit_s`."""
    logs = [open(logs_dir / f"process{rank}.log", "w") for rank in range(len(commands))]
    processes = [
        subprocess.Popen(
            command,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, killed as one below
        )
        for command, log in zip(commands, logs)
    ]
    deadline = time.monotonic() + time_limit_s
    try:
        for process in processes:
            process.wait(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        pytest.fail(f"the {len(commands)} processes did not finish within {time_limit_s} s")
    finally:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        for log in logs:
            log.close()
    for rank, process in enumerate(processes):
        log = (logs_dir / f"process{rank}.log").read_text()
        assert process.returncode == 0, (
            f"process {rank} exited {process.returncode}:\n{log[-3000:]}"
        )
