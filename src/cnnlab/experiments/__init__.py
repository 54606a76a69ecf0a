"""The classic papers' experiments, each one file with a `run(options) -> ExperimentResult` function.

    import cnnlab
    result = cnnlab.experiment("kernels", quick=True, out="runs/kernels")

Importing this package imports every module in it, which runs their @register_experiment decorators, so a new
experiment file needs no edit here.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cnnlab.errors import CnnlabError, unknown_name_error
from cnnlab.experiments.common import ExperimentOptions, ExperimentResult, default_out, write_result
from cnnlab.experiments.repeated import run_seeds, single_run_verdicts
from cnnlab.repeats import choose_seeds


@dataclass(frozen=True)
class Experiment:
    name: str
    help: str  # one line, shown by `cnnlab experiment --help`
    run: Callable[[ExperimentOptions], ExperimentResult]
    accepts: tuple[str, ...] = ()  # the optional ExperimentOptions it reads ("models", "weights"); others are refused
    own_seeds: bool = False  # loops over `options.seeds` itself (its table has a seed column) instead of run_seeds


_EXPERIMENTS: dict[str, Experiment] = {}


def register_experiment(name: str, help: str, accepts: tuple[str, ...] = (), own_seeds: bool = False) -> Callable:
    def decorator(fn: Callable[[ExperimentOptions], ExperimentResult]) -> Callable:
        if name in _EXPERIMENTS:
            raise ValueError(f"experiment '{name}' is registered twice")
        _EXPERIMENTS[name] = Experiment(name, help, fn, accepts, own_seeds)
        return fn

    return decorator


def list_experiments() -> list[str]:
    return sorted(_EXPERIMENTS)


def get_experiment(name: str) -> Experiment:
    if name not in _EXPERIMENTS:
        raise unknown_name_error("experiment", name, _EXPERIMENTS)
    return _EXPERIMENTS[name]


def run_experiment(
    name: str,
    *,
    dataset: str | None = None,
    epochs: int | None = None,
    quick: bool = False,
    out: str | Path | None = None,
    seed: int = 0,
    data_dir: str | None = None,
    models: str | list[str] | None = None,
    weights: str | None = None,
    seeds: Sequence[int] | str | None = None,
    repeats: int | None = None,
) -> ExperimentResult:
    """Run experiment `name` and write its results.md, results.csv, config.json and plots into `out`
    (default runs/experiment-NAME-<time>); return the result. `result.config["out"]` holds the directory.
    `models` (a list or "a,b") and `weights` go only to experiments that accept them (see `Experiment.accepts`).
    `seeds` ("0,1,2" or a list) or `repeats` (N seeds from `seed`) run it once per seed into OUT/seed-N and make
    OUT's table mean ± std over them (`cnnlab.experiments.repeated`)."""
    experiment = get_experiment(name)
    chosen = choose_seeds(seed, seeds, repeats)
    for option, value in (("models", models), ("weights", weights)):
        if value is not None and option not in experiment.accepts:
            takers = [e.name for e in _EXPERIMENTS.values() if option in e.accepts]
            raise CnnlabError(f"experiment {name} takes no --{option} (those that do: {', '.join(takers) or 'none'})")
    options = ExperimentOptions(
        dataset=dataset,
        epochs=epochs,
        quick=quick,
        seed=seed,
        data_dir=data_dir,
        out=Path(out) if out else default_out(name),
        models=models,
        weights=weights,
        seeds=chosen if experiment.own_seeds else None,
    )
    options.out.mkdir(parents=True, exist_ok=True)
    if chosen is not None and not experiment.own_seeds:
        result = run_seeds(experiment, options, chosen)
    else:
        result = experiment.run(options)
        result.findings += single_run_verdicts(result)
    result.config.setdefault("out", str(options.out))
    write_result(result, options.out, options)
    return result


for _module in pkgutil.iter_modules(__path__):
    if _module.name not in ("common", "repeated"):
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = [
    "Experiment",
    "ExperimentOptions",
    "ExperimentResult",
    "get_experiment",
    "list_experiments",
    "register_experiment",
    "run_experiment",
    "write_result",
]
