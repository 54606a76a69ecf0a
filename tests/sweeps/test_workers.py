"""Sweeps with real parts: worker processes sharing one storage (journal file, SQLite, PostgreSQL), a worker
killed mid-trial, and the pruner. Trials are real `cnnlab train` runs: LeNet-5 on 200 digits for 1 epoch."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

optuna = pytest.importorskip("optuna", reason="the sweep extra is not installed: pip install -e '.[sweep]'")
from optuna.trial import TrialState  # noqa: E402

SRC = Path(__file__).resolve().parents[2] / "src"
pytestmark = pytest.mark.slow


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


def test_the_pruner_stops_a_trial_with_a_broken_lr(tmp_path):
    from cnnlab.sweeps import sweep
    from cnnlab.sweeps.study import open_storage

    storage = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(study_name="p", storage=open_storage(storage), direction="maximize")
    for lr in (3e-3, 3e-3, 1e-8):  # two sound trials, then an lr far too small to learn anything
        study.enqueue_trial({"lr": lr})
    result = sweep(
        "lenet5", "digits", param=["lr=1e-8:1e-1:log"], trials=3, pruner="median", study="p", storage=storage,
        out=tmp_path / "s", quiet=True, epochs=4, train_subset=600, threads=1,
    )  # fmt: skip
    trials = load_named(storage, "p").get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.COMPLETE, TrialState.PRUNED]
    assert trials[2].params["lr"] == 1e-8 and max(trials[2].intermediate_values) < 4
    assert max(trials[2].intermediate_values.values()) < min(trials[0].value, trials[1].value)
    assert result["pruned"] == 1 and result["complete"] == 2


def load_named(storage: str, name: str):
    from cnnlab.sweeps.study import open_storage

    return optuna.load_study(study_name=name, storage=open_storage(storage))


def postgres_bin() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return versions[-1].parent if versions else None


def as_user(user: str | None, argv: list[str]) -> list[str]:
    return ["runuser", "-u", user, "--", *argv] if user else argv


def test_a_sweep_on_a_real_postgresql_server(tmp_path):
    pytest.importorskip("psycopg2", reason="psycopg2 is not installed: pip install -e '.[sweep]'")
    bin_dir = postgres_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL's server binaries (initdb, pg_ctl) are not installed (apt-get install postgresql)")
    user = None
    if os.getuid() == 0:  # PostgreSQL refuses to run as root
        if shutil.which("runuser") is None:
            pytest.skip("running as root without runuser: cannot start PostgreSQL as an unprivileged user")
        user = "postgres" if subprocess.run(["id", "postgres"], capture_output=True).returncode == 0 else "nobody"
    base = Path(f"/tmp/cnnlab-pg-{os.getpid()}")  # a short path: Unix socket paths are limited to ~107 bytes
    data, socket_dir = base / "data", base / "sock"
    socket_dir.mkdir(parents=True)
    if user:
        shutil.chown(base, user), shutil.chown(socket_dir, user)
    port = 50000 + os.getpid() % 10000
    run = lambda *argv: subprocess.run(as_user(user, list(argv)), check=True, capture_output=True)  # noqa: E731
    try:
        run(str(bin_dir / "initdb"), "-D", str(data), "-U", "cnnlab", "--auth=trust")
        options = f"-k {socket_dir} -p {port} -c listen_addresses=''"
        run(str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-w", "-l", str(base / "log"), "start")
        storage = f"postgresql://cnnlab@/postgres?host={socket_dir}&port={port}"
        out = tmp_path / "pg"
        worker = start(sweep_argv(out, storage, 2))
        assert worker.wait(timeout=300) == 0, worker.stdout.read().decode()
        check_exact(load(storage), out, 2)
    finally:
        subprocess.run(as_user(user, [str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"]), check=False)
        shutil.rmtree(base, ignore_errors=True)
