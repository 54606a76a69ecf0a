"""Following a job: its record, state and progress as one JSON-ready dict (GET /api/jobs/<id> and its SSE stream).

Progress comes from RUN/progress.jsonl (the trainer's events); epoch rows fall back to metrics.csv for runs the lab
did not start.
"""

from __future__ import annotations

import math
from pathlib import Path

from cnnlab.errors import CnnlabError
from cnnlab.lab.jobs import JobStore
from cnnlab.options.commands import parse_phases
from cnnlab.rundir import FinetuneRecord, RunDir, optional, phase_marks, read_events

MAX_POINTS = 400  # step points sent to a page; longer runs are thinned evenly
TRAINING_KINDS = ("train", "finetune")  # the jobs that train one run (a fine-tuning job's is a training run too)


def clean(value):
    """JSON has no NaN or infinity: they become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [clean(v) for v in value]
    return value


def summarize_events(events: list[dict]) -> dict:
    """The latest step (epoch, step, loss, accuracy, images/s, ETA), the step series and the epoch rows. A resumed
    run's events follow its first process's; a step repeated after a resume replaces the earlier point."""
    steps: dict[int, list] = {}
    epochs: dict[int, dict] = {}
    latest: dict = {}
    for event in events:
        kind = event.get("event")
        if kind == "step":
            steps[event["global_step"]] = [event["global_step"], event["loss"], event["accuracy"]]
            latest = event
        elif kind == "epoch":
            epochs[event["epoch"]] = {k: v for k, v in event.items() if k not in ("event", "t")}
    points = [steps[k] for k in sorted(steps)]
    if len(points) > MAX_POINTS:
        stride = math.ceil(len(points) / MAX_POINTS)
        points = points[::stride] + ([points[-1]] if (len(points) - 1) % stride else [])
    now = {
        k: latest[k]
        for k in (
            "epoch",
            "epochs",
            "step",
            "steps",
            "global_step",
            "total_steps",
            "loss",
            "accuracy",
            "images_per_second",
            "eta_seconds",
        )
        if k in latest
    }
    return {"latest": now, "steps": points, "epochs": [epochs[k] for k in sorted(epochs)]}


def job_view(store: JobStore, job_id: str) -> dict:
    record = store.record(job_id)
    state, interrupted = store.state(record)
    progress = summarize_events(read_events(store.progress_path(record)))
    run = RunDir(record["run_dir"])
    if not progress["epochs"] and record.get("kind") in TRAINING_KINDS:
        progress["epochs"] = optional(run.read_metrics, [])
    progress["phase_marks"] = run_phase_marks(run, progress["epochs"])
    if state in ("finished", "failed", "stopped"):
        progress["latest"].pop("eta_seconds", None)
    view = {
        "id": record["id"],
        "kind": record["kind"],
        "run": record["run"],
        "state": state,
        "interrupted": interrupted,
        "returncode": record.get("returncode"),
        "created": record.get("created"),
        "started": record.get("started"),
        "ended": record.get("ended"),
        "label": record.get("label", ""),
        "progress": progress,
        "log": store.log_tail(job_id),
        "resumable": _resumable(record, state),
        "cancelled": bool(record.get("cancelled")),
        "results": _results(record, state),
    }
    return clean(view)


def run_phase_marks(run: RunDir, rows: list[dict]) -> list[dict]:
    """Where a phased run's epoch rows enter each later phase (`rundir.phase_marks`), each labelled with what the
    phase trains ("phase 2: all", from finetune.json's phases), as curves.png labels it."""
    if not any("phase" in row for row in rows):
        return []
    return phase_marks(rows, phase_names(optional(run.read_finetune)))


def phase_names(record: FinetuneRecord | None) -> list[str] | None:
    """What each of a fine-tuned run's phases trains ("head", "all"), or None (no phases, or a record edited by
    hand that no longer parses: the marks are then unnamed rather than the page failing)."""
    phases = record.values.get("phases") if record else None
    if not isinstance(phases, str):
        return None
    try:
        return [phase.trains for phase in parse_phases(phases)]
    except CnnlabError:
        return None


def _results(record: dict, state: str) -> dict | None:
    """A finished training run's headline numbers, from the results.json the trainer wrote as it ended."""
    if record.get("kind") not in TRAINING_KINDS or state in ("queued", "running"):
        return None
    results = optional(RunDir(record["run_dir"]).read_results)
    if results is None:
        return None
    return {k: results.to_dict().get(k) for k in ("status", "test_accuracy", "best_val_accuracy", "train_seconds")}


def _resumable(record: dict, state: str) -> bool:
    checkpoints = Path(record["run_dir"]) / "checkpoints"
    return (
        record.get("kind") in TRAINING_KINDS
        and state in ("stopped", "failed")
        and checkpoints.is_dir()
        and any(checkpoints.iterdir())
    )
