"""An experiment's folder (`cnnlab experiment`, `cnnlab compare`) and a sweep's folder, read and written here alone.

OUT/results.md     the table, findings and plot links, for people (the lab renders it)
OUT/config.json    ExperimentConfig: title, options, what the experiment chose, claims, plots, versions
OUT/results.csv    the table's rows, raw values (a spread column as COLUMN_mean, COLUMN_std, COLUMN_n)
OUT/*.png, and the runs it trained in subfolders (each a RunDir)

SWEEP/sweep.json   SweepSpec: the study, its storage, the search space and the trials table's path
SWEEP/sweep.csv    the trials table (each trial's parameters, accuracy, epochs, time and state)
SWEEP/sweep.md     the report: the best configuration as a `cnnlab train` line, the table, the plots
SWEEP/*.html|png   Optuna's plots; SWEEP/trial-NNNN/ each trial's run (a RunDir; seed-N/ in it with --seeds)
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

from cnnlab.errors import RunFileError, RunFileMissing
from cnnlab.files import write_text
from cnnlab.reporting import csv_text
from cnnlab.rundir import storage
from cnnlab.rundir.schemas import ExperimentConfig, SweepSpec

CONFIG = "config.json"
RESULTS_MD = "results.md"
RESULTS_CSV = "results.csv"
SWEEP = "sweep.json"
SWEEP_MD = "sweep.md"


@dataclass(frozen=True)
class ExperimentFolder:
    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    @staticmethod
    def holds(path: Path) -> bool:
        """Whether `path` holds an experiment's output: its results.md, or a config.json with a title."""
        if (Path(path) / RESULTS_MD).is_file():
            return True
        try:
            ExperimentFolder(path).read_config()
        except RunFileError:
            return False
        return True

    @property
    def results_md(self) -> Path:
        return self.path / RESULTS_MD

    def has_results(self) -> bool:
        return self.results_md.is_file()

    def read_config(self) -> ExperimentConfig:
        path = self.path / CONFIG
        return ExperimentConfig.from_dict(storage.read_object(path), path)

    def write_config(self, config: ExperimentConfig) -> None:
        storage.write_object(self.path / CONFIG, config.to_dict())

    def read_results_md(self) -> str:
        return self.results_md.read_text(encoding="utf-8")

    def write_results_md(self, text: str) -> None:
        write_text(self.results_md, text)

    def write_rows(self, columns: list[str], rows: list[dict]) -> None:
        """results.csv: raw values, no formatting (keys outside `columns` left out)."""
        write_text(self.path / RESULTS_CSV, csv_text(columns, rows))

    def read_rows(self) -> tuple[list[str], list[dict]]:
        """results.csv's columns and rows, each cell back to the value written: None for an empty cell, then
        bool, int or float where the text is one, else the text (`repr` round-trips ints and floats exactly)."""
        columns, rows = _read_csv(self.path / RESULTS_CSV)
        return columns, [{key: _cell(value) for key, value in row.items()} for row in rows]


@dataclass(frozen=True)
class SweepFolder:
    """A hyper-parameter sweep's folder: its spec (sweep.json) and the trials table it names; each trial a RunDir
    in a subfolder."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    def read_spec(self) -> SweepSpec:
        path = self.path / SWEEP
        return SweepSpec.from_dict(storage.read_object(path), path)

    def write_spec(self, spec: SweepSpec) -> None:
        storage.write_object(self.path / SWEEP, spec.to_dict())

    @property
    def trials_table(self) -> Path:
        return self.path / self.read_spec().trials

    @staticmethod
    def holds(path: Path) -> bool:
        return (Path(path) / SWEEP).is_file()

    @property
    def report(self) -> Path:
        return self.path / SWEEP_MD

    def write_report(self, text: str) -> None:
        write_text(self.report, text)

    def write_table(self, columns: list[str], rows: list[dict]) -> None:
        """The trials table (CSV, atomically: workers rewrite it after each trial)."""
        write_text(self.trials_table, csv_text(columns, rows))

    def read_table(self) -> list[dict]:
        """The trials table's rows, cells as text (empty for none); RunFileMissing before the first trial ends."""
        return _read_csv(self.trials_table)[1]


def _read_csv(path: Path) -> tuple[list[str], list[dict]]:
    """A CSV file's header and rows, cells as text; RunFileMissing if it is not there, RunFileError if unreadable."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RunFileMissing(path) from None
    except (OSError, UnicodeDecodeError) as error:
        raise RunFileError(path, f"cannot be read: {error}") from None
    reader = csv.DictReader(io.StringIO(text))
    try:
        rows = list(reader)
    except csv.Error as error:
        raise RunFileError(path, f"is not valid CSV: {error}") from None
    return list(reader.fieldnames or []), rows


def _cell(text: str | None) -> object:
    if text is None or text == "":
        return None
    if text in ("True", "False"):
        return text == "True"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def find_sweeps(root: Path) -> list[SweepFolder]:
    """The sweep folders under `root` (those holding a sweep.json), by path."""
    return [SweepFolder(path.parent) for path in sorted(Path(root).rglob(SWEEP))]
