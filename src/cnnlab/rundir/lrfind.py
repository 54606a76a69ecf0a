"""An lr range test's folder (`cnnlab lr-find`): OUT/lr-find.json (the record: the suggestion, its rule and the
curve) and OUT/lr-find.png."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cnnlab.errors import CnnlabError
from cnnlab.rundir import storage

RECORD = "lr-find.json"
PLOT = "lr-find.png"


@dataclass(frozen=True)
class LrFindFolder:
    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    @property
    def plot(self) -> Path:
        return self.path / PLOT

    def prepare(self, overwrite: bool) -> None:
        """The folder made; one holding a range test already is refused without `overwrite`."""
        if (self.path / RECORD).exists() and not overwrite:
            raise CnnlabError(f"{self.path} already holds an lr range test; pass --overwrite to replace it")
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise CnnlabError(f"cannot create {self.path}: {error.strerror or error}") from None

    def write_record(self, record: dict) -> None:
        storage.write_object(self.path / RECORD, record)

    def read_record(self) -> dict:
        return storage.read_object(self.path / RECORD)
