"""The data behind the pages, read from cnnlab's own functions and the run directories (no web code here)."""

from __future__ import annotations

import functools
import threading
from pathlib import Path, PurePosixPath

from cnnlab.errors import CnnlabError, NotARunDirectory, OptionValueError
from cnnlab.lab import results_md
from cnnlab.lab.follow import clean, phase_names, run_phase_marks
from cnnlab.lab.security import LabRequestError, relative_name, safe_path
from cnnlab.rundir import (
    CONFIG,
    EVALUATION,
    METRICS,
    RESULTS,
    WEIGHTS,
    ExperimentFolder,
    RunDir,
    holds_run,
    open_folder,
    open_run,
    optional,
)
from cnnlab.rundir.experiment import RESULTS_MD

# torch's FlopCounterMode (in summarize) hooks every module's forward process-wide, so a trace or a prediction
# running in another request's thread would run through those hooks too: the lab's computations take turns.
TORCH_LOCK = threading.Lock()


def serialized(function):
    @functools.wraps(function)
    def locked(*args, **kwargs):
        with TORCH_LOCK:
            return function(*args, **kwargs)

    return locked


RUN_FILES_SHOWN = (
    WEIGHTS,
    "model.onnx",
    "model.torchscript.pt",
    "curves.png",
    "confusion.png",
    "misclassified.png",
    CONFIG,
    RESULTS,
    METRICS,
    EVALUATION,
)


# ----------------------------------------------------------------------------------------------------- the zoo
@functools.lru_cache(maxsize=1)
@serialized
def models_table() -> list[dict]:
    """Every registered model as the zoo's catalog measures it (`cnnlab.models.zoo.catalog`, on the meta device):
    family, year, default input, params, MACs, depth, receptive field, ImageNet top-1 (percent, for models with
    a torchvision twin), key idea and paper. Computed once per server (seconds), then served from memory."""
    from cnnlab.models.zoo import catalog

    return [{**row, "input": [int(n) for n in row["input"].split("x")]} for row in catalog()]


MAX_INPUT_CHANNELS, MAX_INPUT_SIDE = 64, 1024  # past every input the zoo's networks take (EfficientNet-B7: 600)
MAX_SPEC_CHARACTERS = 2000  # a spec longer than this is not typed by hand


def _input_shape(text: str | None, default: tuple[int, int, int]) -> tuple[int, int, int]:
    from cnnlab.measure import parse_input_shape

    shape = parse_input_shape(text) if text else default
    if shape[0] > MAX_INPUT_CHANNELS or max(shape[1:]) > MAX_INPUT_SIDE:
        raise OptionValueError(
            "input",
            f"can be at most {MAX_INPUT_CHANNELS} channels and {MAX_INPUT_SIDE} pixels a side here, "
            f"got {'x'.join(map(str, shape))}",
        )
    return shape


def warm_models_table(stop: threading.Event) -> None:
    """Measure the zoo one model at a time (each row is cached), so that a server shutting down can `stop` it
    between two models; then build the table from the cached rows."""
    from cnnlab.models.zoo import catalog_row
    from cnnlab.registry import list_models

    for name in list_models():
        if stop.is_set():
            return
        with TORCH_LOCK:
            catalog_row(name)
    models_table()


@serialized
def model_summary(model: str | None, spec: str | None, input_text: str | None) -> dict:
    """Per-layer rows (shape, params, MACs, receptive field) of a model at an input size, or of a layer spec or a
    --models network (the Design page; `spec` is checked by `lab.networks` first), and the stages: consecutive
    rows grouped by their top-level module.

    Built and run on the meta device: shapes, counts and receptive fields come out the same, and no request can
    make the lab allocate activations or weights (VGG-16 at 3x1024x1024 took 6.5 s and 2 GB on real tensors)."""
    from cnnlab.measure import summarize
    from cnnlab.models.meta import on_meta
    from cnnlab.registry import model_info

    if spec and len(spec) > MAX_SPEC_CHARACTERS:
        raise OptionValueError("spec", f"can be at most {MAX_SPEC_CHARACTERS:,} characters, got {len(spec):,}")
    with on_meta():
        if model:
            shape = _input_shape(input_text, model_info(model).input_size)
            summary = summarize(model, shape)
        elif spec:
            summary = summarize(spec, _input_shape(input_text, (3, 32, 32)))
        else:
            raise CnnlabError("give a model or a layer spec")
    return summary_view(summary)


def summary_view(summary) -> dict:
    """A `cnnlab.measure.Summary` as the pages' layer tables take it: rows, totals and stages."""
    rows = [
        {
            "name": r.name,
            "kind": r.kind,
            "output_shape": list(r.output_shape),
            "params": r.params,
            "macs": r.macs,
            "receptive_field": r.receptive_field,
        }
        for r in summary.rows
    ]
    return {
        "input": list(summary.input_shape),
        "total_params": summary.total_params,
        "total_macs": summary.total_macs,
        "rows": rows,
        "stages": _stages(rows),
    }


def _stages(rows: list[dict]) -> list[dict]:
    stages: list[dict] = []
    for row in rows:
        top = row["name"].split(".")[0]
        if stages and stages[-1]["name"] == top:
            stage = stages[-1]
        else:
            stage = {"name": top, "layers": 0, "params": 0, "macs": 0}
            stages.append(stage)
        stage["layers"] += 1
        stage["params"] += row["params"]
        stage["macs"] += row["macs"]
        if row["output_shape"]:
            stage["output_shape"] = row["output_shape"]
    return stages


# -------------------------------------------------------------------------------------------------------- runs
def runs_table(root: Path) -> list[dict]:
    """The leaderboard: every run under the root, best test accuracy first, with its name relative to the root."""
    from cnnlab.workflows.leaderboard import COLUMNS, list_runs

    if not root.is_dir():
        return []
    rows = []
    for run in list_runs(root):
        run_dir = Path(run["run_dir"])
        if LAB_PARTS.intersection(run_dir.relative_to(root).parts):
            continue
        keep = (*(c for c in COLUMNS if c != "run_dir"), "status", "best_val_accuracy")  # the runs table's, and more
        rows.append({"name": relative_name(root, run_dir), **{k: run.get(k) for k in keep}})
    return clean(rows)


LAB_PARTS = {".lab"}


def run_dir(root: Path, name: str) -> Path:
    """The folder `name` names inside the root, if it holds a training run or an experiment; else a 404."""
    return _open(root, name).path


def training_run(root: Path, name: str) -> RunDir:
    """The training run `name` names inside the root (an experiment's folder is none); else a 404."""
    try:
        return open_run(safe_path(root, name))
    except NotARunDirectory:
        raise LabRequestError(f"no run '{name}' under the runs folder", 404) from None


def _open(root: Path, name: str) -> RunDir | ExperimentFolder:
    try:
        return open_folder(safe_path(root, name))
    except NotARunDirectory:
        raise LabRequestError(f"no run '{name}' under the runs folder", 404) from None


def deletable_run_dir(root: Path, name: str) -> Path:
    """The run folder `name` names, if the lab may delete it: a real folder (no symlink on the way, so deleting
    never reaches a link's target) holding a run, inside the runs root, and neither the root nor the lab's own
    folder."""
    parts = PurePosixPath(name).parts
    # Refused for where they are, before what they hold is read: the root and the lab's folder are never runs.
    if safe_path(root, name) == root.resolve() or not parts or parts == (".",):
        raise LabRequestError("the runs folder itself cannot be deleted", 400)
    if LAB_PARTS.intersection(parts):
        raise LabRequestError(f"'{name}' is the lab's own folder, not a run", 403)
    path = run_dir(root, name)  # inside the root once resolved, and a run or an experiment
    lexical = root.resolve()
    for part in parts:
        lexical = lexical / part
        if lexical.is_symlink():
            raise LabRequestError(f"'{name}' goes through a symbolic link; the lab deletes only real folders", 400)
    return path


def run_detail(root: Path, name: str) -> dict:
    """One run: config, results, per-epoch metrics, the evaluation (per-class accuracy, confusion matrix) when
    it has one, and its files."""
    folder = _open(root, name)
    path, run = folder.path, RunDir(folder.path)
    config = optional(lambda: folder.read_config().to_dict(), {})
    evaluation = optional(lambda: run.read_evaluation().to_dict())
    results = optional(lambda: run.read_results().to_dict())
    files = [f for f in RUN_FILES_SHOWN if (path / f).is_file()]
    metrics = optional(run.read_metrics, [])
    return clean(
        {
            "name": name,
            "config": config,
            "results": results,
            "metrics": metrics,
            "phase_marks": run_phase_marks(run, metrics),
            "finetune": finetune_facts(root, run),
            "evaluation": evaluation,
            "files": files,
            "image": (config.get("data") or {}).get("image_size"),
            "in_chans": (config.get("data") or {}).get("in_chans"),
            "classes": (config.get("data") or {}).get("classes"),
            "resumable": (path / "checkpoints").is_dir(),
        }
    )


def finetune_facts(root: Path, run: RunDir) -> dict | None:
    """A fine-tuned run's finetune.json (source, trainable parameters, head, phases, bn_stats, ...), with
    `source_run`: the source's name under the root, for a link, or None where it lies elsewhere (a weights file,
    a run outside the root or since deleted), and `bn_stats` as it applied. None for a run not fine-tuned."""
    record = optional(run.read_finetune)
    if record is None:
        return None
    values = record.values
    # Unset, BatchNorm's statistics stayed frozen wherever the backbone was (workflows.finetune's rule).
    frozen = values.get("freeze") == "backbone" or "head" in (phase_names(record) or ())
    bn_stats = values.get("bn_stats") or ("frozen" if frozen else None)
    try:
        source_run = relative_name(root, Path(record.source))
    except ValueError:  # outside the root
        source_run = None
    if source_run is not None and not holds_run(root / source_run):
        source_run = None
    return {**record.to_dict(), "bn_stats": bn_stats, "source_run": source_run}


# ------------------------------------------------------------------------------------------------- experiments
def experiments(root: Path) -> dict:
    """The registered experiments and the past results under the root (folders with results.md)."""
    from cnnlab.experiments import get_experiment, list_experiments
    from cnnlab.lab.requests import experiment_form

    available = [
        {"name": n, "help": get_experiment(n).help, "accepts": list(get_experiment(n).accepts)}
        for n in list_experiments()
    ]
    past = []
    for results in sorted(root.rglob(RESULTS_MD)) if root.is_dir() else []:
        if LAB_PARTS.intersection(results.relative_to(root).parts):
            continue
        config = optional(ExperimentFolder(results.parent).read_config)
        past.append(
            {
                "name": relative_name(root, results.parent),
                "title": config.title if config else results.parent.name,
                "plots": list(config.plots) if config else [],
            }
        )
    return {"experiments": available, "results": past, "fields": experiment_form()}


def render_results_md(root: Path, name: str) -> str:
    """An experiment's results.md as HTML (markdown-it, raw HTML escaped). Image links point at /files, inside
    the experiment's folder; one that leaves it is refused."""
    folder = safe_path(root, name)
    experiment = ExperimentFolder(folder)
    if not experiment.has_results():
        raise LabRequestError(f"no {RESULTS_MD} in '{name}'", 404)
    return results_md.render(folder, name, experiment.read_results_md())
