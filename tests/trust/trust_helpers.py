"""Helpers of the trust tests: the small recipe every crash test runs, `cnnlab` in-process or as a real
subprocess, and a pickle that would run code when loaded."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

from cnnlab.cli import main

# lenet5 on 400 digits: 360 train / 40 val, batch 4 -> 90 steps per epoch, 2 epochs, random crops on, one thread.
# Small enough to finish in seconds; long enough (each step also writes a checkpoint) that a signal sent once the
# first checkpoint exists lands mid-epoch.
RECIPE = [
    "--dataset",
    "digits",
    "--train-subset",
    "400",
    "--epochs",
    "2",
    "--batch-size",
    "4",
    "--augment",
    "--seed",
    "5",
    "--threads",
    "1",
    "--quiet",
]
STEPS_PER_EPOCH = 90
WALL_TIME_COLUMNS = ("epoch_seconds", "images_per_second")


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(code: int, err: str, *fragments: str) -> None:
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("cnnlab: error: "), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, (fragment, err)


def spawn(*argv, harness: str | None = None) -> subprocess.Popen:
    """`python -m cnnlab ARGV` as a real process; `harness` is Python run first in the child (test hooks)."""
    if harness is None:
        command = [sys.executable, "-m", "cnnlab", *map(str, argv)]
    else:
        code = f"{harness}\nimport sys\nfrom cnnlab.cli import main\nsys.exit(main({[str(a) for a in argv]!r}))"
        command = [sys.executable, "-c", code]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(condition, process: subprocess.Popen, timeout: float = 60.0) -> None:
    """Poll `condition()` every few ms until it holds; fail if the process exits first or time runs out."""
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            raise AssertionError(f"process exited with {process.returncode} first: {process.stderr.read()}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError("timed out")
        time.sleep(0.003)


def metrics_rows(run_dir: Path) -> list[dict]:
    """metrics.csv without the wall-time columns (they differ between any two runs)."""
    with open(run_dir / "metrics.csv") as handle:
        return [{k: v for k, v in row.items() if k not in WALL_TIME_COLUMNS} for row in csv.DictReader(handle)]


class RunsCode:
    """Unpickling this calls `payload[0](*payload[1])`: here, a shell command that creates a marker file."""

    def __init__(self, payload: tuple) -> None:
        self.payload = payload

    def __reduce__(self):
        return self.payload


def write_malicious_pickle(path: Path, marker: Path, tensors: dict | None = None) -> Path:
    """A torch.save file that looks like a state dict but would run `touch MARKER` if fully unpickled."""
    torch.save({**(tensors or {}), "evil": RunsCode((os.system, (f"touch {marker}",)))}, path)
    return path
