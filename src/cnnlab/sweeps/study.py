"""The Optuna study a sweep's workers share: its storage, sampler and pruner, the count of trials, and the
trials of workers that died.

Storage: an RDB URL (sqlite:///..., postgresql://..., mysql://...) through `RDBStorage` with Optuna's heartbeat
(a running trial beats every HEARTBEAT s; one silent for GRACE s is failed by `fail_stale_trials`, which every
worker runs before each trial), or `journal:PATH`, Optuna's JournalFileBackend on a shared filesystem. Journal
storages have no heartbeat: there a worker fails the RUNNING trials of dead processes on its own host (each trial
records its worker as host:pid), which also catches a killed worker on an RDB storage at once, before its grace.

The count: `--trials N` is N trials COMPLETE or PRUNED in the study, all workers and restarts together. A worker
stops once N are finished; while finished + running >= N it waits (a running trial may still fail, and then its
place is free); a trial asked in the instant another worker took the last place is failed unrun, as surplus.
"""

from __future__ import annotations

import datetime
import os
import socket
import time
import warnings
from pathlib import Path

from cnnlab.errors import CnnlabError

HEARTBEAT = 10  # seconds between a running trial's heartbeats (RDB storages)
GRACE = 30  # seconds without a heartbeat after which a RUNNING trial counts as dead
WAIT = 1.0  # seconds between looks at the count while other workers finish the last trials
JOURNAL = "journal:"
SPACE_ATTR, RECIPE_ATTR = "cnnlab_space", "cnnlab_recipe"


class Surplus(CnnlabError):
    """A trial asked after the study's count was reached by other workers: it is failed without running."""


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def open_storage(url: str):
    """Optuna's storage for `url` (see the module docstring); a one-line CnnlabError when it cannot be opened."""
    import optuna
    from optuna.storages.journal import JournalFileBackend

    try:
        if url.startswith(JOURNAL):
            path = Path(url[len(JOURNAL) :])
            path.parent.mkdir(parents=True, exist_ok=True)
            return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
        return _rdb_storage(_with_driver(url))
    except ImportError as error:
        raise CnnlabError(f"--storage {url}: its database driver is not installed ({error.name or error})") from None
    except Exception as error:  # SQLAlchemy's and the drivers' errors differ; the URL is the user's
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CnnlabError(f"cannot open --storage {url}: {first}") from None


def _rdb_storage(url: str, tries: int = 5):
    """RDBStorage, tried again when another worker is creating the same new database's tables at this moment: both
    insert Alembic's version row, and the second gets an IntegrityError (or a lock error) it can simply retry, since
    by then the schema exists."""
    import time

    import optuna
    from sqlalchemy.exc import IntegrityError, OperationalError

    kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}  # workers share the file
    for attempt in range(tries):
        try:
            with warnings.catch_warnings():  # the heartbeat, stable since Optuna 2.9, still flagged experimental
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(
                    url, engine_kwargs=kwargs, heartbeat_interval=HEARTBEAT, grace_period=GRACE
                )
        except (IntegrityError, OperationalError):
            if attempt == tries - 1:
                raise
            time.sleep(0.5 * (attempt + 1))


def _with_driver(url: str) -> str:
    """postgresql:// with the psycopg2 driver where psycopg (3), SQLAlchemy 2.1's default for it, is missing: the
    sweep extra installs psycopg2-binary."""
    import importlib.util

    if url.startswith("postgresql://") and importlib.util.find_spec("psycopg") is None:
        if importlib.util.find_spec("psycopg2") is not None:
            return "postgresql+psycopg2://" + url[len("postgresql://") :]
    return url


def make_pruner(name: str, trials: int):
    """median: a trial below the median of earlier trials at the same epoch stops (after min(5, N/4) finished
    trials, so a short sweep prunes too); hyperband: Li et al. 2018's brackets over epochs; none."""
    import optuna

    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=max(1, min(5, trials // 4)), n_warmup_steps=0)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1)
    if name == "none":
        return optuna.pruners.NopPruner()
    from cnnlab.errors import unknown_name_error

    raise unknown_name_error("pruner", name, ("median", "hyperband", "none"))


def open_study(name: str, storage, pruner, space: dict, recipe: dict):
    """The study `name` (created, or loaded where it exists: a rerun or another worker continues it), TPE its
    sampler. A study whose stored search space or recipe differs from this command's is refused."""
    import optuna

    sampler = optuna.samplers.TPESampler(constant_liar=True)  # parallel workers avoid each other's running points
    study = optuna.create_study(
        study_name=name, storage=storage, sampler=sampler, pruner=pruner, direction="maximize", load_if_exists=True
    )
    from cnnlab.sweeps.space import difference

    for attr, given, what in ((SPACE_ATTR, space, "search space"), (RECIPE_ATTR, recipe, "fixed options")):
        stored = study.user_attrs.get(attr)
        if stored is None:
            study.set_user_attr(attr, given)
        elif (problem := difference(stored, given, what)) is not None:
            raise CnnlabError(f"study '{name}' was started with another {what} ({problem}); use another --study")
    return study


def fail_dead_trials(study) -> list[int]:
    """Fail RUNNING trials whose worker is gone: Optuna's stale-heartbeat rule (RDB storages), and those of
    processes on this host that no longer exist. Returns the numbers failed here by pid."""
    import optuna
    from optuna.trial import TrialState

    with warnings.catch_warnings():  # stable since Optuna 2.9, still flagged experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    # Optuna has no public call to end another process's trial; fail_stale_trials itself goes through the storage.
    host, failed = socket.gethostname(), []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = str(trial.user_attrs.get("worker", ""))
        where, _, pid = worker.rpartition(":")
        if (where == host and pid.isdigit() and not _alive(int(pid))) or _unclaimed(trial):
            try:  # the reason first: a finished trial takes no attrs; another worker may fail it first
                study._storage.set_trial_user_attr(trial._trial_id, "failed_because", "its worker died")
                study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
                failed.append(trial.number)
            except optuna.exceptions.UpdateFinishedTrialError:
                pass
    return failed


def _unclaimed(trial) -> bool:
    """A trial that names no worker GRACE seconds after it was created: its worker died between Optuna creating it
    and the objective's first line (which names the worker), so it has no heartbeat either and would stay RUNNING."""
    if "worker" in trial.user_attrs or trial.datetime_start is None:
        return False
    return (datetime.datetime.now() - trial.datetime_start).total_seconds() > GRACE


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def counts(study) -> tuple[int, int]:
    """(finished: COMPLETE or PRUNED, running)."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING))
    running = sum(1 for t in trials if t.state == TrialState.RUNNING)
    return len(trials) - running, running


def claim(study, trial, wanted: int) -> None:
    """Raise Surplus when `wanted` trials finished or running were ahead of `trial` when it was asked."""
    from optuna.trial import TrialState

    states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
    ahead = [t for t in study.get_trials(deepcopy=False, states=states) if t.number < trial.number]
    if len(ahead) >= wanted:
        trial.set_user_attr("surplus", True)
        raise Surplus(f"trial {trial.number}: the study already has its {wanted} trials")


def wait_for_others(study, wanted: int) -> bool:
    """True once this worker should ask for a trial, False once the study is done (see the module docstring)."""
    while True:
        fail_dead_trials(study)
        finished, running = counts(study)
        if finished >= wanted:
            return False
        if finished + running < wanted:
            return True
        time.sleep(WAIT)
