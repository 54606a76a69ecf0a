"""The run files' schemas: frozen dataclasses, each with `from_dict` (checks the fields cnnlab relies on) and
`to_dict` (the JSON object written to disk).

One rule for keys a schema does not name: they are kept (in `extra`, or the run config's `recipe`) and written
back after the named ones, so a file from an older or newer cnnlab loads, and rewriting it loses nothing. The
named keys come first in the order cnnlab has always written them, so a rewritten file reads as before.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cnnlab.errors import RunFileError

_NAMES = {str: "a string", int: "a whole number", float: "a number", list: "a list", dict: "an object"}


def _get(data: Mapping, key: str, kind: type, source: object, optional: bool = False) -> Any:
    """data[key], checked to be a `kind` (an int passes for a float; a bool for neither). A missing or null
    optional key is None."""
    if data.get(key) is None:
        if optional:
            return None
        raise RunFileError(source, f"has no '{key}'")
    value = data[key]
    kinds = (int, float) if kind is float else kind
    if not isinstance(value, kinds) or (isinstance(value, bool) and kind is not bool):
        raise RunFileError(source, f"has '{key}' as {type(value).__name__}, not {_NAMES.get(kind, kind.__name__)}")
    return value


def _rest(data: Mapping, named: tuple[str, ...]) -> dict:
    return {key: value for key, value in data.items() if key not in named}


# -------------------------------------------------------------------------------------------- a training run
@dataclass(frozen=True)
class DataInfo:
    """config.json's "data": what `predict` needs to preprocess an image without loading the dataset."""

    name: str
    classes: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    in_chans: int
    image_size: int
    extra: Mapping[str, Any] = field(default_factory=dict)

    NAMED = ("name", "classes", "mean", "std", "in_chans", "image_size")

    @classmethod
    def from_dict(cls, data: Mapping, source: object = "data") -> DataInfo:
        return cls(
            name=_get(data, "name", str, source),
            classes=tuple(str(c) for c in _get(data, "classes", list, source)),
            mean=tuple(_get(data, "mean", list, source)),
            std=tuple(_get(data, "std", list, source)),
            in_chans=_get(data, "in_chans", int, source),
            image_size=_get(data, "image_size", int, source),
            extra=_rest(data, cls.NAMED),
        )

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "classes": list(self.classes),
            "mean": list(self.mean),
            "std": list(self.std),
            "in_chans": self.in_chans,
            "image_size": self.image_size,
            **self.extra,
        }


@dataclass(frozen=True)
class RunConfig:
    """A run's config.json: the resolved TrainConfig (`model`, `dataset` and the rest of the `recipe`, in
    TrainConfig's order), the dataset's `data` (what predict needs) and the `versions` it ran with. Runs written
    by hand or by tests may lack `data` and `versions`; the readers that need `data` say so (`require_data`)."""

    model: str
    dataset: str
    recipe: Mapping[str, Any] = field(default_factory=dict)
    data: DataInfo | None = None
    versions: Mapping[str, str] | None = None

    @classmethod
    def from_dict(cls, data: Mapping, source: object = "config.json") -> RunConfig:
        info = _get(data, "data", dict, source, optional=True)
        return cls(
            model=_get(data, "model", str, source),
            dataset=_get(data, "dataset", str, source),
            recipe=_rest(data, ("model", "dataset", "data", "versions")),
            data=DataInfo.from_dict(info, f"{source} (its 'data')") if info is not None else None,
            versions=_get(data, "versions", dict, source, optional=True),
        )

    @classmethod
    def from_train_config(cls, config, data: DataInfo | None, versions: Mapping[str, str] | None) -> RunConfig:
        """The record of a new run: a TrainConfig (`cnnlab.engine.config`, a dataclass: read as one, so that this
        layer does not call back up into the engine) and what the run adds to it."""
        return cls.from_dict(
            {**dataclasses.asdict(config), "data": data.to_dict() if data else None, "versions": versions}
        )

    def to_dict(self) -> dict:
        out = {"model": self.model, "dataset": self.dataset, **self.recipe}
        if self.data is not None:
            out["data"] = self.data.to_dict()
        if self.versions is not None:
            out["versions"] = dict(self.versions)
        return out

    @property
    def epochs(self) -> int | None:
        return self.recipe.get("epochs")

    @property
    def model_code(self) -> Mapping[str, Any] | None:
        """A network from a file or module: its `reference`, the `sha256` of its source, the constructor
        `arguments` and the `origin` file (RUN_DIR/model_source.py holds the copy). None for zoo models and specs
        (a spec is the `model` itself: data, no code) and for runs from before cnnlab recorded code."""
        return _get(self.recipe, "model_code", dict, "config.json", optional=True)

    def with_recipe(self, **changes: Any) -> RunConfig:
        return RunConfig(self.model, self.dataset, {**self.recipe, **changes}, self.data, self.versions)

    def train_config(self):
        """The run's TrainConfig (`cnnlab.engine.config.TrainConfig.from_dict`, which checks every field)."""
        from cnnlab.engine.config import TrainConfig  # the training package imports this one

        return TrainConfig.from_dict({"model": self.model, "dataset": self.dataset, **self.recipe})

    def require_data(self, source: object) -> DataInfo:
        if self.data is None:
            raise RunFileError(
                source, "has no 'data' (the dataset's classes and normalisation); it was not written by cnnlab train"
            )
        return self.data


@dataclass(frozen=True)
class FinetuneRecord:
    """finetune.json: how a fine-tuned run was made, written as it starts (a resumed run rebuilds its model from
    it): the `source` run or weights file, the trainable parameter count, and the recipe's own options (`freeze`,
    `head`, `phases`, `bn_stats`, the learning rates, LoRA's rank, ...) in `values`."""

    source: str
    trainable_params: int
    values: Mapping[str, Any] = field(default_factory=dict)

    NAMED = ("source", "trainable_params")

    @classmethod
    def from_dict(cls, data: Mapping, source: object = "finetune.json") -> FinetuneRecord:
        return cls(
            _get(data, "source", str, source), _get(data, "trainable_params", int, source), _rest(data, cls.NAMED)
        )

    def to_dict(self) -> dict:
        return {"source": self.source, **self.values, "trainable_params": self.trainable_params}


@dataclass(frozen=True)
class Results:
    """results.json: the trainer's record of how a run ended: its `model` and `dataset`, and for a completed run
    the test numbers, for a failed or interrupted one its `status`, `error` and `metrics`. A record without a
    model and dataset (written by hand) still gives its status; `names_a_run` tells the two apart."""

    model: str | None
    dataset: str | None
    values: Mapping[str, Any] = field(default_factory=dict)  # every other key, in the file's order

    @classmethod
    def from_dict(cls, data: Mapping, source: object = "results.json") -> Results:
        _get(data, "status", str, source, optional=True)
        return cls(
            _get(data, "model", str, source, optional=True),
            _get(data, "dataset", str, source, optional=True),
            _rest(data, ("model", "dataset")),
        )

    def to_dict(self) -> dict:
        named = {"model": self.model, "dataset": self.dataset}
        return {**{key: value for key, value in named.items() if value is not None}, **self.values}

    @property
    def names_a_run(self) -> bool:
        return self.model is not None and self.dataset is not None

    @property
    def status(self) -> str | None:  # completed, failed or interrupted
        return self.values.get("status")

    def updated(self, **changes: Any) -> Results:
        return Results(self.model, self.dataset, {**self.values, **changes})


@dataclass(frozen=True)
class Evaluation:
    """eval.json: `cnnlab eval`'s test accuracy and loss, per-class accuracy and confusion matrix."""

    model: str
    dataset: str
    test_accuracy: float
    values: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Mapping, source: object = "eval.json") -> Evaluation:
        _get(data, "per_class_accuracy", dict, source, optional=True)
        _get(data, "confusion_matrix", list, source, optional=True)
        return cls(
            _get(data, "model", str, source),
            _get(data, "dataset", str, source),
            _get(data, "test_accuracy", float, source),
            _rest(data, ("model", "dataset", "test_accuracy")),
        )

    def to_dict(self) -> dict:
        return {"model": self.model, "dataset": self.dataset, "test_accuracy": self.test_accuracy, **self.values}


# ------------------------------------------------------------------------------------------------ the lab's jobs
@dataclass(frozen=True)
class JobRecord:
    """RUNS/.lab/jobs/<id>.json: a process the lab started (`cnnlab.lab.jobs`). `values` holds the rest: created,
    label, pid, started, returncode, ended, cancelled, stop_requested, ..."""

    id: str
    kind: str  # train or experiment
    argv: tuple[str, ...]
    run_dir: str
    run: str  # run_dir relative to the runs root
    values: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Mapping, source: object = "job record") -> JobRecord:
        return cls(
            _get(data, "id", str, source),
            _get(data, "kind", str, source),
            tuple(_get(data, "argv", list, source)),
            _get(data, "run_dir", str, source),
            _get(data, "run", str, source),
            _rest(data, ("id", "kind", "argv", "run_dir", "run")),
        )

    def to_dict(self) -> dict:
        named = {"id": self.id, "kind": self.kind, "argv": list(self.argv), "run_dir": self.run_dir, "run": self.run}
        return {**named, **self.values}


# ------------------------------------------------------------------------------------- experiments and sweeps
@dataclass(frozen=True)
class ExperimentConfig:
    """An experiment folder's config.json (`cnnlab.experiments.common.write_result`): its title, the options it
    ran with, what it chose, its claims, its plots (PNG files in the folder) and the versions."""

    title: str
    options: Mapping[str, Any] = field(default_factory=dict)
    experiment: Mapping[str, Any] = field(default_factory=dict)
    claims: tuple[Mapping[str, Any], ...] = ()
    plots: tuple[str, ...] = ()
    versions: Mapping[str, str] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)

    NAMED = ("title", "options", "experiment", "claims", "plots", "versions")

    @classmethod
    def from_dict(cls, data: Mapping, source: object = "config.json") -> ExperimentConfig:
        return cls(
            title=_get(data, "title", str, source),
            options=_get(data, "options", dict, source, optional=True) or {},
            experiment=_get(data, "experiment", dict, source, optional=True) or {},
            claims=tuple(_get(data, "claims", list, source, optional=True) or ()),
            plots=tuple(str(p) for p in _get(data, "plots", list, source, optional=True) or ()),
            versions=_get(data, "versions", dict, source, optional=True) or {},
            extra=_rest(data, cls.NAMED),
        )

    def to_dict(self) -> dict:
        return {
            "title": self.title,
            "options": dict(self.options),
            "experiment": dict(self.experiment),
            "claims": list(self.claims),
            "plots": list(self.plots),
            "versions": dict(self.versions),
            **self.extra,
        }


@dataclass(frozen=True)
class SweepSpec:
    """A sweep folder's sweep.json: the study's name, where its trials are stored (an Optuna storage URL), the
    search space (option -> its range or choices) and the path of the trials table, relative to the folder."""

    study: str
    storage: str
    space: Mapping[str, Any]
    trials: str = "trials.csv"
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Mapping, source: object = "sweep.json") -> SweepSpec:
        return cls(
            study=_get(data, "study", str, source),
            storage=_get(data, "storage", str, source),
            space=_get(data, "space", dict, source),
            trials=_get(data, "trials", str, source, optional=True) or "trials.csv",
            extra=_rest(data, ("study", "storage", "space", "trials")),
        )

    def to_dict(self) -> dict:
        return {
            "study": self.study,
            "storage": self.storage,
            "space": dict(self.space),
            "trials": self.trials,
            **self.extra,
        }
