"""A training run's directory: its name, creation (or replacement with --overwrite), the data and version stamps
in config.json, and metrics.csv.

    RUN_DIR/config.json       the resolved TrainConfig + "data" (what predict needs) + "versions"
    RUN_DIR/metrics.csv       one row per epoch (METRIC_COLUMNS, plus TEST_COLUMNS with test_every_epoch)
    RUN_DIR/checkpoints/      see training/checkpoint.py
    RUN_DIR/results.json, model.safetensors, curves.png (written at the end), eval.json, confusion.png (eval)
"""

from __future__ import annotations

import csv
import os
import platform
import shutil
from pathlib import Path

from cnnlab import reporting
from cnnlab.data import ImageDataset
from cnnlab.errors import CnnlabError
from cnnlab.training.config import TrainConfig

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
RUN_FILES = (
    "config.json",
    "metrics.csv",
    "results.json",
    "model.safetensors",
    "curves.png",
    "eval.json",
    "confusion.png",
)


def versions() -> dict[str, str]:
    """The report's version stamps plus the machine: a run's speed depends on it."""
    return {**reporting.versions(), "machine": f"{platform.machine()}, {os.cpu_count()} CPUs"}


def data_metadata(data: ImageDataset) -> dict:
    """What `predict` needs to preprocess an image without loading the dataset."""
    return {
        "name": data.name,
        "classes": list(data.classes),
        "mean": list(data.mean),
        "std": list(data.std),
        "in_chans": data.in_chans,
        "image_size": data.image_size,
    }


def default_run_dir(config: TrainConfig) -> Path:
    return reporting.timestamped_dir(config.model, config.dataset)


def prepare_run_dir(path: Path, overwrite: bool) -> Path:
    path = Path(path)
    if (path / "config.json").exists() and not overwrite:
        raise CnnlabError(
            f"{path} already holds a run; pass --resume {path} to continue it or --overwrite to replace it"
        )
    try:
        if (path / "config.json").exists():  # --overwrite: the old run's files go, or its later checkpoints would win
            shutil.rmtree(path / "checkpoints", ignore_errors=True)
            for name in RUN_FILES:
                (path / name).unlink(missing_ok=True)
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise CnnlabError(f"cannot write to run directory {path}: {error.strerror or error}") from error
    return path


def read_metrics(run_dir: str | Path) -> list[dict]:
    """A run's per-epoch rows from its metrics.csv, numbers as floats (an empty cell is left out)."""
    with open(Path(run_dir) / "metrics.csv", newline="") as handle:
        return [{key: float(value) for key, value in row.items() if value != ""} for row in csv.DictReader(handle)]


def write_metrics(path: Path, rows: list[dict]) -> None:
    """metrics.csv, replaced whole (atomically) after every epoch."""
    reporting.write_csv(path, METRIC_COLUMNS + (TEST_COLUMNS if rows and "test_accuracy" in rows[0] else ()), rows)
