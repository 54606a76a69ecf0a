"""One trial of a sweep: a `cnnlab train` process per seed, writing an ordinary run directory.

Each run is a process of its own so the trainer stays untouched and a crashing trial cannot take the worker down.
The processes are forked from a server that has already imported torch and cnnlab (multiprocessing's
forkserver), so a trial does not pay Python's and torch's start-up again: that start-up was the sweep's overhead. The
worker follows the run's progress.jsonl (`cnnlab.rundir.read_events`): every epoch event's validation accuracy is
reported to Optuna (`trial.report`, step = epoch); when the pruner says so the run gets SIGTERM, on which the
trainer checkpoints and exits, and the trial ends as pruned. The child is also asked (PR_SET_PDEATHSIG, Linux) to
get SIGTERM if the worker dies, so a killed worker leaves no orphaned training behind.

The objective is the final validation accuracy (the test split is only reported, never chosen on); with several
seeds, its mean over them (`cnnlab.repeats.Spread`), the first seed's epochs feeding the pruner.
"""

from __future__ import annotations

import ctypes
import math
import multiprocessing
import os
import runpy
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from cnnlab.engine.progress import PROGRESS_FILE_ENV
from cnnlab.errors import CnnlabError
from cnnlab.options.commands import command
from cnnlab.repeats import Spread
from cnnlab.rundir import RunDir, open_run, read_events

POLL = 0.2  # seconds between reads of a running trial's progress.jsonl
PR_SET_PDEATHSIG = 1  # prctl(2): the signal a child gets when its parent dies
# What the fork server imports once, before any trial: the command line, the training engine, the data loaders and
# (through cnnlab.api) matplotlib for curves.png, which alone took 1.2 s of each trial's start-up.
PRELOAD = ["torch", "torchvision", "cnnlab.cli", "cnnlab.api", "cnnlab.engine.trainer", "cnnlab.data"]
PRELOAD += ["sklearn.datasets"]


class TrialFailed(CnnlabError):
    """A trial's training process exited with an error: `returncode` and the last line it printed."""

    def __init__(self, run_dir: Path, returncode: int, last_line: str) -> None:
        self.run_dir, self.returncode = run_dir, returncode
        super().__init__(f"{run_dir}: cnnlab train exited with {returncode}: {last_line}")


@dataclass(frozen=True)
class Recipe:
    """What every trial of a sweep shares: the model, the dataset and the fixed training options."""

    model: str
    dataset: str | None
    fixed: dict
    seeds: tuple[int, ...] | None = None


@dataclass
class Timing:
    """Seconds a trial spent: its processes from launch to exit, and the runs' own span (their start event to
    their finish event): the difference is process start-up (Python, torch, the data)."""

    process: float = 0.0
    run: float = 0.0
    runs: list[str] = field(default_factory=list)


def trial_dir(out: Path, number: int) -> Path:
    return Path(out) / f"trial-{number:04d}"


def argv(recipe: Recipe, params: dict, run_dir: Path, seed: int | None) -> list[str]:
    """The `cnnlab train` command line of one run (the options layer writes it: it parses back to these values)."""
    values = {"model": recipe.model, **recipe.fixed, **params, "out": str(run_dir), "quiet": True}
    if recipe.dataset is not None:
        values["dataset"] = recipe.dataset
    if seed is not None:
        values["seed"] = seed
    return command("train").argv(values)


def _die_with_parent() -> None:  # runs in the child, first
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: a killed worker's run finishes on its own
        pass


def run_trial(trial, recipe: Recipe, params: dict, out: Path) -> tuple[float, dict]:
    """Train `params` (one run, or one per seed); returns (the objective, user attrs to record). Raises
    optuna.TrialPruned when the pruner stops it, TrialFailed when a run fails."""
    folder, timing = trial_dir(out, trial.number), Timing()
    seeds = recipe.seeds or (None,)
    finals, tests = [], []
    for position, seed in enumerate(seeds):
        run_dir = folder if seed is None else folder / f"seed-{seed}"
        results = follow_run(trial, argv(recipe, params, run_dir, seed), run_dir, timing, report=position == 0)
        finals.append(results["final_val_accuracy"])
        tests.append(results["test_accuracy"])
    val, test = Spread.of(finals), Spread.of(tests)
    attrs = {
        "val_accuracy": val.mean,
        "val_std": val.std,
        "test_accuracy": test.mean,
        "test_std": test.std,
        "epochs": results.get("epochs"),
        "process_seconds": timing.process,
        "run_seconds": timing.run,
        "run_dirs": timing.runs,
    }
    return val.mean, attrs


def follow_run(trial, args: list[str], run_dir: Path, timing: Timing, report: bool) -> dict:
    """Start one `cnnlab train` run and follow it to its end; returns its results.json."""
    import optuna

    run_dir.mkdir(parents=True, exist_ok=True)
    progress = RunDir(run_dir).progress_file
    trial.set_user_attr("run_dirs", [*timing.runs, str(run_dir)])
    started = time.perf_counter()
    process = TrainProcess(args, run_dir / "train.log", progress)
    try:
        pruned = _watch(trial, process, progress, report)
    finally:
        if process.poll() is None:  # the worker itself is being stopped: stop the run too
            process.terminate()
        process.wait()
    timing.process += time.perf_counter() - started
    timing.run += _span(read_events(progress))
    timing.runs.append(str(run_dir))
    trial.set_user_attr("process_seconds", timing.process)
    trial.set_user_attr("run_seconds", timing.run)
    if pruned is not None:
        raise optuna.TrialPruned(f"pruned after epoch {pruned}")
    if process.returncode != 0:
        raise TrialFailed(run_dir, process.returncode, _last_line(run_dir / "train.log"))
    return dict(open_run(run_dir).read_results().values, epochs=_epochs(progress))


class TrainProcess:
    """`cnnlab train ARGS` in a child of the fork server, its output in `log`, its progress events in `progress`;
    Popen's poll/send_signal/terminate/wait/returncode, so the watcher reads like one."""

    def __init__(self, args: list[str], log: Path, progress: Path) -> None:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(PRELOAD)
        self._process = context.Process(target=_train_child, args=(args, str(log), str(progress)), daemon=False)
        self._process.start()

    @property
    def returncode(self) -> int | None:
        return self._process.exitcode

    def poll(self) -> int | None:
        return self._process.exitcode

    def send_signal(self, signum: int) -> None:
        if self._process.exitcode is None:
            os.kill(self._process.pid, signum)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def wait(self) -> int:
        self._process.join()
        return self._process.exitcode


def _train_child(args: list[str], log: str, progress: str) -> None:
    """The child's body: die with the fork server (which exits when the worker does), send stdout and stderr to
    the run's train.log, point the progress stream at the trial's file, and run the command."""
    _die_with_parent()
    os.environ[PROGRESS_FILE_ENV] = progress
    descriptor = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os.dup2(descriptor, 1)
    os.dup2(descriptor, 2)
    os.close(descriptor)
    sys.argv = ["cnnlab", *args]
    try:  # exactly `python -m cnnlab ARGS`, in this already-warm interpreter
        runpy.run_module("cnnlab", run_name="__main__", alter_sys=True)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()


def _watch(trial, process: TrainProcess, progress: Path, report: bool) -> int | None:
    """Report each new epoch's validation accuracy until the process ends; on the pruner's word, SIGTERM it and
    return that epoch. Events are read in order, so a run that ended before a poll is judged as if it had not. The
    run's last planned epoch is reported (the pruner compares later trials with it) but never pruned: stopping
    then saves nothing, and the trial that trained to the end would be filed as pruned, its result unused."""
    reported = 0
    while True:
        running = process.poll() is None
        rows = _epoch_rows(read_events(progress))
        for event, planned in rows[reported:] if report else ():
            reported += 1
            epoch = int(event["epoch"])
            trial.report(float(event["val_accuracy"]), step=epoch)
            if epoch < planned and trial.should_prune():
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)  # the trainer checkpoints and exits
                return epoch
        if not running:
            return None
        time.sleep(POLL)


def _epoch_rows(events: list[dict]) -> list[tuple[dict, float]]:
    """Each finished epoch's row, with the epochs the run planned as that epoch began (a --time-budget run plans
    as it goes; inf where no epoch_start came first)."""
    planned, rows = math.inf, []
    for event in events:
        if event["event"] == "epoch_start":
            planned = int(event["epochs"])
        elif event["event"] == "epoch":
            rows.append((event, planned))
    return rows


def _span(events: list[dict]) -> float:
    times = [e["t"] for e in events if e["event"] in ("start", "finish")]
    return max(times) - min(times) if len(times) >= 2 else 0.0


def _epochs(progress: Path) -> int:
    return sum(1 for e in read_events(progress) if e["event"] == "epoch")


def _last_line(log: Path) -> str:
    try:
        lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "(no output)"
    return lines[-1].strip() if lines else "(no output)"
