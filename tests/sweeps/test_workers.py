"""Sweeps with real parts: two worker processes sharing one storage (journal file, SQLite), and a worker killed
mid-trial. Trials are real `cnnlab train` runs: LeNet-5 on 200 digits for 1 epoch. (The PostgreSQL server and the
pruner are in test_storage_and_pruner.py, so that pytest's per-file workers split the two.)"""

from __future__ import annotations

import signal
import time

import pytest

optuna = pytest.importorskip("optuna", reason="the sweep extra is not installed: pip install -e '.[sweep]'")
from optuna.trial import TrialState  # noqa: E402
from sweep_support import check_exact, load, start, sweep_argv  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("kind", ["journal", "sqlite"])
def test_two_workers_run_exactly_the_requested_trials_together(tmp_path, kind):
    out = tmp_path / "sweep"
    storage = f"journal:{tmp_path / 'journal.log'}" if kind == "journal" else f"sqlite:///{tmp_path / 'study.db'}"
    workers = [start(sweep_argv(out, storage, 3)) for _ in range(2)]
    for worker in workers:
        output = worker.communicate(timeout=300)[0].decode()
        assert worker.returncode == 0, output
    study = load(storage)
    check_exact(study, out, 3)
    assert len({t.user_attrs["worker"] for t in study.get_trials() if t.state == TrialState.COMPLETE}) >= 1
    assert "cnnlab train lenet5 --dataset digits" in (out / "sweep.md").read_text()
    header = (out / "sweep.csv").read_text().splitlines()[0]
    assert header == "number,state,lr,val_accuracy,test_accuracy,epochs,seconds,run_dir"
    assert (out / "history.html").stat().st_size > 1_000_000  # plotly.js embedded


def test_a_killed_worker_leaves_the_study_consistent_and_a_rerun_finishes_it(tmp_path):
    out, storage = tmp_path / "sweep", f"sqlite:///{tmp_path / 'study.db'}"
    victim, survivor = start(sweep_argv(out, storage, 4)), start(sweep_argv(out, storage, 4))
    deadline = time.time() + 120
    while not any(out.glob("trial-*/train.log")) and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(1.0)  # mid-trial: its cnnlab train process is starting or training
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert survivor.wait(timeout=400) == 0, survivor.stdout.read().decode()
    study = load(storage)
    failed = [t for t in study.get_trials() if t.state == TrialState.FAIL and not t.user_attrs.get("surplus")]
    finished = [t for t in study.get_trials() if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == 4  # the survivor carried on past the dead worker's trial
    assert all(t.user_attrs.get("failed_because") == "its worker died" for t in failed)
    assert not [t for t in study.get_trials() if t.state == TrialState.RUNNING]
    rerun = start(sweep_argv(out, storage, 4))
    assert rerun.wait(timeout=120) == 0
    check_exact(load(storage), out, 4)  # nothing more ran: the count was met
    assert len(load(storage).get_trials()) == len(study.get_trials())
