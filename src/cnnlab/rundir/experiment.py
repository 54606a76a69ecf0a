"""An experiment's folder (`cnnlab experiment`, `cnnlab compare`) and a sweep's folder, read and written here alone.

OUT/results.md     the table, findings and plot links, for people (the lab renders it)
OUT/config.json    ExperimentConfig: title, options, what the experiment chose, claims, plots, versions
OUT/results.csv, OUT/*.png, and the runs it trained in subfolders (each a RunDir)

SWEEP/sweep.json   SweepSpec: the study, its storage, the search space and the trials table's path
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cnnlab.errors import RunFileError
from cnnlab.files import write_text
from cnnlab.rundir import storage
from cnnlab.rundir.schemas import ExperimentConfig, SweepSpec

CONFIG = "config.json"
RESULTS_MD = "results.md"
SWEEP = "sweep.json"


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
