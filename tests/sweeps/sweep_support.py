"""What the sweep tests with real parts share: the worker command line, starting one, loading the study, and the
check that a study ran exactly its trials, each once, in its own run directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

SRC = Path(__file__).resolve().parents[2] / "src"


def sweep_argv(out: Path, storage: str, trials: int, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "cnnlab", "sweep", "lenet5", "--dataset", "digits", "--train-subset", "200",
        "--epochs", "1", "--threads", "1", "--param", "lr=1e-3:1e-1:log", "--trials", str(trials),
        "--pruner", "none", "--study", "shared", "--storage", storage, "--out", str(out), "--quiet", *extra,
    ]  # fmt: skip


def start(argv: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def load(storage: str):
    from cnnlab.sweeps.study import open_storage

    return optuna.load_study(study_name="shared", storage=open_storage(storage))


def check_exact(study, out: Path, wanted: int) -> None:
    trials = study.get_trials()
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == wanted
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers))
    run = [t for t in trials if not t.user_attrs.get("surplus") and t.state != TrialState.FAIL]
    # each finished trial trained once, in its own run directory, which cnnlab reads as a run
    from cnnlab.rundir import open_run

    for trial in run:
        results = open_run(out / f"trial-{trial.number:04d}").read_results()
        assert results.status == "completed" and results.values["lr"] == pytest.approx(trial.params["lr"])
    assert sorted(p.name for p in out.glob("trial-*")) == sorted(
        f"trial-{t.number:04d}" for t in trials if not t.user_attrs.get("surplus")
    )
