"""A training run's directory: opening one (or refusing a folder that is none), creating one, and its files, each
read and written here alone.

    RUN_DIR/config.json       RunConfig: the resolved TrainConfig + "data" (what predict needs) + "versions"
    RUN_DIR/metrics.csv       one row per epoch (METRIC_COLUMNS, plus TEST_COLUMNS with test_every_epoch)
    RUN_DIR/results.json      Results: how the run ended (written at the end, or when it fails or is stopped)
    RUN_DIR/eval.json         Evaluation: `cnnlab eval`'s numbers (with confusion.png)
    RUN_DIR/progress.jsonl    the trainer's events, for the lab (CNNLAB_PROGRESS_FILE)
    RUN_DIR/finetune.json     FinetuneRecord: a fine-tuned run's source and recipe (cnnlab finetune)
    RUN_DIR/model_source.py   a network in code: a copy of its source, which eval, predict, export... rebuild from
    RUN_DIR/checkpoints/      see cnnlab/checkpoint.py; model.safetensors and curves.png at the end
"""

from __future__ import annotations

import os
import platform
import shutil
from dataclasses import dataclass
from pathlib import Path

from cnnlab import reporting
from cnnlab.errors import CnnlabError, NotARunDirectory, RunFileError, RunFileMissing
from cnnlab.rundir import metrics, storage
from cnnlab.rundir.schemas import DataInfo, Evaluation, FinetuneRecord, Results, RunConfig

CONFIG = "config.json"
RESULTS = "results.json"
METRICS = "metrics.csv"
PROGRESS = "progress.jsonl"
EVALUATION = "eval.json"
WEIGHTS = "model.safetensors"
MODEL_SOURCE = "model_source.py"
CURVES = "curves.png"
FINETUNE = "finetune.json"
RUN_FILES = (CONFIG, METRICS, RESULTS, WEIGHTS, CURVES, EVALUATION, "confusion.png", MODEL_SOURCE, FINETUNE)


@dataclass(frozen=True)
class RunDir:
    """A training run's folder. Every read and write of its JSON and CSV files goes through these methods; each
    file has one writer (`write_config`, `write_results`, `write_metrics`, `write_evaluation`), which the
    `update_*` methods also go through."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    def file(self, name: str) -> Path:
        return self.path / name

    @property
    def progress_file(self) -> Path:
        return self.path / PROGRESS

    def has(self, name: str) -> bool:
        return (self.path / name).is_file()

    # ------------------------------------------------------------------------------------------ config.json
    def read_config(self) -> RunConfig:
        path = self.path / CONFIG
        return RunConfig.from_dict(storage.read_object(path), path)

    def write_config(self, config: RunConfig) -> None:
        storage.write_object(self.path / CONFIG, config.to_dict())

    def update_config(self, **recipe) -> RunConfig:
        """Change recipe fields (e.g. `epochs` when a run is extended or a time budget re-plans it)."""
        config = self.read_config().with_recipe(**recipe)
        self.write_config(config)
        return config

    # ------------------------------------------------------------------------------------- model_source.py
    @property
    def model_source(self) -> Path:
        """The run's copy of its network's source (a run trained from a file or module; see RunConfig.model_code)."""
        return self.path / MODEL_SOURCE

    def write_model_source(self, source: Path) -> None:
        """Copy the network's source in, so that moving or editing the original changes nothing about the run."""
        shutil.copyfile(source, self.path / MODEL_SOURCE)

    # ----------------------------------------------------------------------------------------- results.json
    def read_results(self) -> Results:
        path = self.path / RESULTS
        return Results.from_dict(storage.read_object(path), path)

    def write_results(self, results: Results | dict) -> None:
        results = results if isinstance(results, Results) else Results.from_dict(results, self.path / RESULTS)
        storage.write_object(self.path / RESULTS, results.to_dict())

    def update_results(self, **values) -> Results:
        results = self.read_results().updated(**values)
        self.write_results(results)
        return results

    # -------------------------------------------------------------------------------- metrics.csv, eval.json
    def read_metrics(self) -> list[dict]:
        return metrics.read_metrics(self.path / METRICS)

    def write_metrics(self, rows: list[dict]) -> None:
        metrics.write_metrics(self.path / METRICS, rows)

    def read_evaluation(self) -> Evaluation:
        path = self.path / EVALUATION
        return Evaluation.from_dict(storage.read_object(path), path)

    def write_evaluation(self, evaluation: Evaluation | dict) -> None:
        path = self.path / EVALUATION
        evaluation = evaluation if isinstance(evaluation, Evaluation) else Evaluation.from_dict(evaluation, path)
        storage.write_object(path, evaluation.to_dict())

    def read_finetune(self) -> FinetuneRecord:
        path = self.path / FINETUNE
        return FinetuneRecord.from_dict(storage.read_object(path), path)

    def write_finetune(self, record: FinetuneRecord) -> None:
        storage.write_object(self.path / FINETUNE, record.to_dict())

    def read_events(self) -> list[dict]:
        return metrics.read_events(self.path / PROGRESS)


def optional(read, default=None):
    """`read()`, or `default` where the file is missing or unreadable (a page that shows what there is)."""
    try:
        return read()
    except RunFileError:
        return default


# ------------------------------------------------------------------------------------------------- opening
def folder_problem(path: Path) -> str | None:
    """Why `path` cannot hold a run at all (missing, a file), or None."""
    if not path.exists():
        return "does not exist"
    return None if path.is_dir() else "is a file, not a folder"


def open_run(path: str | Path) -> RunDir:
    """The training run in `path`, its config.json read and checked; else NotARunDirectory with the reason."""
    from cnnlab.rundir.experiment import ExperimentFolder

    run = RunDir(Path(path))
    problem = folder_problem(run.path)
    if problem is not None:
        raise NotARunDirectory(run.path, problem)
    try:
        run.read_config()
    except RunFileMissing:
        kind = "is an experiment's folder, not a training run" if ExperimentFolder.holds(run.path) else None
        raise NotARunDirectory(run.path, kind or f"holds no {CONFIG} (not a cnnlab run)") from None
    except RunFileError as error:
        if ExperimentFolder.holds(run.path):
            raise NotARunDirectory(run.path, "is an experiment's folder, not a training run") from None
        raise NotARunDirectory(run.path, f"has a {CONFIG} that is not a run's: it {error.problem}") from None
    return run


def open_folder(path: str | Path):
    """A training run (RunDir) or an experiment's folder (ExperimentFolder) in `path`; else NotARunDirectory."""
    from cnnlab.rundir.experiment import ExperimentFolder

    try:
        return open_run(path)
    except NotARunDirectory:
        if ExperimentFolder.holds(Path(path)):
            return ExperimentFolder(Path(path))
        raise


def holds_run(path: Path) -> bool:
    """Whether `path` already holds a run's record (what --overwrite or --resume are for), read or not."""
    return (Path(path) / CONFIG).exists()


# ------------------------------------------------------------------------------------------------ creating
def versions() -> dict[str, str]:
    """The report's version stamps plus the machine: a run's speed depends on it."""
    return {**reporting.versions(), "machine": f"{platform.machine()}, {os.cpu_count()} CPUs"}


def data_metadata(data) -> DataInfo:
    """What `predict` needs (from an ImageDataset) to preprocess an image without loading the dataset."""
    return DataInfo(data.name, tuple(data.classes), tuple(data.mean), tuple(data.std), data.in_chans, data.image_size)


def default_run_dir(config) -> Path:
    return reporting.timestamped_dir(folder_label(config.model), config.dataset)


def folder_label(model: str) -> str:
    """A model as a folder name: "my_cnn.py:MyCNN" -> "MyCNN", a layer spec -> "spec", a zoo name as it is."""
    if any(ch in model for ch in " ;("):
        return "spec"
    return model.rsplit(":", 1)[-1].replace("/", "-")


def prepare_run_dir(path: Path, overwrite: bool) -> Path:
    """A folder ready for a new run: made, checked writable, and (with `overwrite`) emptied of an old run's
    files, or its later checkpoints would win; a folder holding a run is refused without `overwrite`."""
    path = Path(path)
    if holds_run(path) and not overwrite:
        raise CnnlabError(
            f"{path} already holds a run; pass --resume {path} to continue it or --overwrite to replace it"
        )
    try:
        if holds_run(path):
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
