"""Sweeps with real parts: a real PostgreSQL server as the storage, and the median pruner stopping a trial with a
broken lr. Trials are real `cnnlab train` runs."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

optuna = pytest.importorskip("optuna", reason="the sweep extra is not installed: pip install -e '.[sweep]'")
from optuna.trial import TrialState  # noqa: E402
from sweep_support import check_exact, load, start, sweep_argv  # noqa: E402

pytestmark = pytest.mark.slow


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
