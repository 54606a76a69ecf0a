"""metrics.csv (one row per epoch, replaced whole after every epoch) and progress.jsonl (the trainer's events,
one JSON object a line, appended as they happen)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from cnnlab.errors import RunFileError, RunFileMissing
from cnnlab.files import write_text

METRIC_COLUMNS = (
    "epoch",
    "train_loss",
    "train_accuracy",
    "val_loss",
    "val_accuracy",
    "lr",
    "epoch_seconds",
    "images_per_second",
)
TEST_COLUMNS = ("test_loss", "test_accuracy")  # per-epoch columns of runs with test_every_epoch
PHASE_COLUMNS = ("phase",)  # a phased run's (engine/phases.py): the epoch's phase, 1-based


def read_metrics(path: Path) -> list[dict]:
    """The rows of a metrics.csv: `epoch` as an int, every other cell a float ("nan" included); an empty cell
    is left out. Columns it does not know are read the same way."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RunFileMissing(path) from None
    except (OSError, UnicodeDecodeError) as error:
        raise RunFileError(path, f"cannot be read: {error}") from None
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is None:
        return []
    if "epoch" not in reader.fieldnames:
        raise RunFileError(path, "has no 'epoch' column")
    rows = []
    for line, row in enumerate(reader, start=2):
        try:
            cells = {key: float(value) for key, value in row.items() if key is not None and value not in ("", None)}
        except ValueError as error:
            raise RunFileError(path, f"line {line} holds a cell that is not a number ({error})") from None
        if "epoch" in cells:
            cells["epoch"] = int(cells["epoch"])
        rows.append(cells)
    return rows


def phase_marks(rows: list[dict], names: list[str] | None = None) -> list[dict]:
    """Where a phased run (the rows' `phase` column) enters each later phase, as curves.png and the lab's charts
    mark it: `after_epoch` (the last epoch of the phase before), `x` (halfway to the next epoch, on an epoch
    axis), `phase` (1-based) and its `label`, "phase 2: all" (the name from `names`, the phases' in order)."""
    marks = []
    for before, after in zip(rows, rows[1:]):
        if "phase" not in after or after["phase"] == before.get("phase"):
            continue
        phase = int(after["phase"])
        name = names[phase - 1] if names and phase <= len(names) else None
        marks.append(
            {
                "after_epoch": before["epoch"],
                "x": (before["epoch"] + after["epoch"]) / 2,
                "phase": phase,
                "label": f"phase {phase}" + (f": {name}" if name else ""),
            }
        )
    return marks


def write_metrics(path: Path, rows: list[dict]) -> None:
    """The rows as metrics.csv, atomically: METRIC_COLUMNS, plus TEST_COLUMNS when the rows hold test numbers
    and PHASE_COLUMNS when they hold phases."""
    columns = METRIC_COLUMNS + (TEST_COLUMNS if rows and "test_accuracy" in rows[0] else ())
    columns += PHASE_COLUMNS if rows and "phase" in rows[0] else ()
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    write_text(Path(path), buffer.getvalue())


def append_event(path: Path, event: dict) -> None:
    """One event as one line, appended (NaN written as NaN). A single short write per line: a reader sees at most
    the last line half written, which `read_events` skips."""
    line = json.dumps(event, allow_nan=True)
    with open(path, "a", encoding="utf-8") as file:
        file.write(line + "\n")


def read_events(path: Path) -> list[dict]:
    """Every complete event of a progress.jsonl, in order; none when the file is missing. A line that is not a
    JSON object naming its `event` (the one being written right now, cut short) is skipped."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return []
    events = []
    for line in text.splitlines():
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(event, dict) and isinstance(event.get("event"), str):
            events.append(event)
    return events
