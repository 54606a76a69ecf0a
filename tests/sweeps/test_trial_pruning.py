"""How a trial's run is watched: each epoch reported to Optuna, the pruner asked on every epoch but the last
planned one (stopping then saves nothing, and a trial that trained to the end would be filed as pruned)."""

from __future__ import annotations

import signal

import pytest

from cnnlab.rundir.metrics import append_event
from cnnlab.sweeps.trial import _watch


class Trial:
    """Optuna's trial as the watcher uses it: reports recorded, the pruner's answers given in order."""

    def __init__(self, answers: list[bool]) -> None:
        self.answers, self.reports, self.asked = list(answers), [], 0

    def report(self, value: float, step: int) -> None:
        self.reports.append((step, value))

    def should_prune(self) -> bool:
        self.asked += 1
        return self.answers.pop(0)


class Running:
    """A run still going (poll None) that records the signals sent to it."""

    def __init__(self) -> None:
        self.signals: list[int] = []

    def poll(self) -> int | None:
        return None

    def send_signal(self, signum: int) -> None:
        self.signals.append(signum)


class Ended(Running):
    def poll(self) -> int | None:
        return 0


def progress_file(tmp_path, *epochs: tuple[int, int, float]):
    """A progress.jsonl with (epoch, planned epochs as it began, val accuracy) for each finished epoch."""
    path = tmp_path / "progress.jsonl"
    for epoch, planned, accuracy in epochs:
        append_event(path, {"event": "epoch_start", "epoch": epoch, "epochs": planned, "steps": 4, "step": 0})
        append_event(path, {"event": "epoch", "epoch": epoch, "val_accuracy": accuracy})
    return path


def test_the_pruner_stops_a_run_before_its_last_epoch(tmp_path):
    trial, run = Trial([True]), Running()
    assert _watch(trial, run, progress_file(tmp_path, (1, 3, 0.25)), report=True) == 1
    assert trial.reports == [(1, 0.25)] and run.signals == [signal.SIGTERM]


def test_the_last_planned_epoch_is_reported_but_never_pruned(tmp_path):
    trial, run = Trial([False]), Ended()
    progress = progress_file(tmp_path, (1, 2, 0.5), (2, 2, 0.75))
    assert _watch(trial, run, progress, report=True) is None
    assert trial.reports == [(1, 0.5), (2, 0.75)] and trial.asked == 1 and run.signals == []


@pytest.mark.parametrize(("planned_later", "pruned"), [(2, None), (5, 2)])
def test_a_budget_run_s_last_epoch_is_the_one_its_plan_says_as_that_epoch_begins(tmp_path, planned_later, pruned):
    trial, run = Trial([False, True]), Ended()  # a --time-budget run starts at the cap, then plans its epochs
    progress = progress_file(tmp_path, (1, 1000, 0.5), (2, planned_later, 0.6))
    assert _watch(trial, run, progress, report=True) == pruned
    assert trial.asked == (1 if pruned is None else 2)


def test_without_reporting_nothing_is_asked(tmp_path):
    trial = Trial([])
    assert _watch(trial, Ended(), progress_file(tmp_path, (1, 3, 0.25)), report=False) is None
    assert trial.reports == [] and trial.asked == 0
