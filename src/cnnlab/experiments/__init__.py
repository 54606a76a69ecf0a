"""The classic papers' experiments, each one file with a `run(options) -> ExperimentResult` function.

    import cnnlab
    result = cnnlab.experiment("kernels", quick=True, out="runs/kernels")

Importing this package imports every module in it, which runs their @register_experiment decorators, so a new
experiment file needs no edit here.
"""

from __future__ import annotations

import importlib
import pkgutil
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cnnlab.errors import CnnlabError, unknown_name_error
from cnnlab.experiments.common import ExperimentOptions, ExperimentResult, default_out, write_result
from cnnlab.experiments.repeated import run_seeds, single_run_verdicts
from cnnlab.options import Option
from cnnlab.options.commands import EXPERIMENT_EXTRAS, command
from cnnlab.options.commands import experiment_options as declared_options
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


# Old name -> new: still runs, and says so once. "drop-block" was Veit et al.'s lesion study (one block removed at
# test time), not DropBlock (Ghiasi et al. 2018, a regulariser that drops regions of feature maps).
DEPRECATED_NAMES = {"drop-block": "lesion"}
_warned: set[str] = set()


def get_experiment(name: str) -> Experiment:
    if name in DEPRECATED_NAMES:
        new = DEPRECATED_NAMES[name]
        if name not in _warned:
            _warned.add(name)
            message = f"experiment {name} is now called {new}; the old name still works for now"
            warnings.warn(message, FutureWarning, stacklevel=2)
        name = new
    if name not in _EXPERIMENTS:
        raise unknown_name_error("experiment", name, _EXPERIMENTS)
    return _EXPERIMENTS[name]


def experiment_options(name: str) -> tuple[Option, ...]:
    """The keyword options experiment `name` takes: the common ones and the extras it accepts."""
    return declared_options(get_experiment(name).accepts)


def check_accepts(name: str, given: dict) -> None:
    """CnnlabError for an extra option (models, weights) given to an experiment that does not read it."""
    experiment = get_experiment(name)
    for option in EXPERIMENT_EXTRAS:
        if given.get(option) is not None and option not in experiment.accepts:
            takers = [e.name for e in _EXPERIMENTS.values() if option in e.accepts]
            raise CnnlabError(f"experiment {name} takes no --{option} (those that do: {', '.join(takers) or 'none'})")


def run_experiment(name: str, **given) -> ExperimentResult:
    """Run experiment `name` and write its results.md, results.csv, config.json and plots into `out`
    (default runs/experiment-NAME-<time>); return the result. `result.config["out"]` holds the directory.

    `given`: the `cnnlab experiment` options (cnnlab.options.commands declares them, with their defaults): dataset,
    epochs, quick, out, seed, data_dir, seeds, repeats, and `models` (a list or "a,b") and `weights` for the
    experiments that accept them (see `Experiment.accepts`). A misspelt option names the closest.
    `seeds` ("0,1,2" or a list) or `repeats` (N seeds from `seed`) run it once per seed into OUT/seed-N and make
    OUT's table mean ± std over them (`cnnlab.experiments.repeated`)."""
    experiment = get_experiment(name)
    command("experiment").check_keywords(given, [o.name for o in declared_options()])
    check_accepts(name, given)
    values = {o.name: o.default for o in declared_options()} | given
    seed, out = values["seed"], values["out"]
    chosen = choose_seeds(seed, values["seeds"], values["repeats"])
    options = ExperimentOptions(
        dataset=values["dataset"],
        epochs=values["epochs"],
        quick=values["quick"],
        seed=seed,
        data_dir=values["data_dir"],
        out=Path(out) if out else default_out(name),
        models=values["models"],
        weights=values["weights"],
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
    "check_accepts",
    "experiment_options",
    "ExperimentResult",
    "get_experiment",
    "list_experiments",
    "register_experiment",
    "run_experiment",
    "write_result",
]
