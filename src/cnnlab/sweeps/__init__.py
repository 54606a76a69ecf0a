"""`cnnlab sweep`: a hyperparameter search with Optuna, each trial an ordinary `cnnlab train` run.

    space.py   --param NAME=SPEC, checked as the CLI checks the option; the study's stored space
    trial.py   one trial: a `cnnlab train` process per seed, followed through its progress.jsonl (pruning)
    study.py   storage (SQLite, PostgreSQL/MySQL, journal file), TPE, pruners, the count, dead workers
    report.py  sweep.csv, sweep.md (the best configuration as a `cnnlab train` line), Optuna's plots

Running the same command again continues the study (load_if_exists); running it on other machines with one
`--storage` makes them workers of one study. docs/sweeps.md has the recipe.
"""

from __future__ import annotations

import time
from pathlib import Path

from cnnlab.errors import CnnlabError
from cnnlab.options.commands import PRUNERS
from cnnlab.rundir import SweepFolder, SweepSpec
from cnnlab.sweeps.space import default_space, describe, parse_space
from cnnlab.sweeps.trial import Recipe, TrialFailed, run_trial

SWEEP_TABLE = "sweep.csv"


def sweep(
    model: str,
    dataset: str | None = None,
    *,
    param: list[str] | None = None,
    trials: int = 30,
    pruner: str = "median",
    study: str | None = None,
    storage: str | None = None,
    out: str | Path | None = None,
    seeds=None,
    quiet: bool = False,
    **options,
) -> dict:
    """Run (or join, or continue) a sweep; returns its summary: the folder, the study, the counts, the best."""
    import optuna

    from cnnlab.sweeps import study as studies

    recipe, space, out = _prepare(model, dataset, param, pruner, out, seeds, options, quiet)
    url = storage or f"sqlite:///{(out / 'study.db').resolve()}"
    spec = SweepSpec(study or out.name, url, describe(space), trials=SWEEP_TABLE)
    folder = SweepFolder(out)
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the worker prints one line per trial itself
    shared = {"model": model, "dataset": dataset, **recipe.fixed, "seeds": list(recipe.seeds or ())}
    handle = studies.open_study(
        spec.study, studies.open_storage(url), studies.make_pruner(pruner, trials), spec.space, _plain(shared)
    )
    # The model and fixed options too: a reader (the lab) can then write the best trial's `cnnlab train` line.
    described = {"trials_wanted": trials, "model": model, "dataset": dataset, "fixed": _plain(recipe.fixed)}
    folder.write_spec(SweepSpec(spec.study, spec.storage, spec.space, SWEEP_TABLE, described))
    storage_seconds = _work(handle, recipe, space, out, trials, folder, quiet)
    return _finish(handle, recipe, spec, folder, {"pruner": pruner, "trials": trials}, storage_seconds)


def _prepare(model, dataset, param, pruner, out, seeds, options, quiet=False) -> tuple[Recipe, dict, Path]:
    from cnnlab import reporting
    from cnnlab.engine.config import LR_FIND, validate
    from cnnlab.registry import model_info
    from cnnlab.repeats import choose_seeds

    fixed = {name: value for name, value in options.items() if value is not None}
    if fixed.get("lr") == LR_FIND:
        raise CnnlabError("--lr find is for cnnlab train; a sweep searches lr with --param lr=LOW:HIGH:log")
    if pruner not in PRUNERS:
        from cnnlab.errors import unknown_name_error

        raise unknown_name_error("pruner", pruner, PRUNERS)
    model_info(model)  # an unknown model fails before any trial
    if not param and (param := default_space(dataset, fixed)) and not quiet:
        print(f"no --param: searching {dataset}'s default space, {' '.join(param)}", flush=True)
    space = parse_space(param, fixed)
    first = {p.name: p.choices[0] if p.choices else p.low for p in space.values()}
    validate({"model": model, "dataset": dataset, **fixed, **first})  # the fixed options, checked as train would
    chosen = choose_seeds(seeds=seeds) if seeds is not None else None
    out = Path(out) if out else reporting.timestamped_dir("sweep", model, dataset or "digits")
    out.mkdir(parents=True, exist_ok=True)
    return Recipe(model, dataset, fixed, chosen), space, out


def _plain(values: dict) -> dict:
    """JSON-safe values for a study's user attrs (lists for tuples)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items() if v is not None}


def _work(study, recipe: Recipe, space: dict, out: Path, wanted: int, folder: SweepFolder, quiet: bool) -> list:
    """This worker's trials until the study has `wanted` finished ones; returns each trial's storage seconds."""
    from optuna.study import MaxTrialsCallback
    from optuna.trial import TrialState

    from cnnlab.sweeps import report
    from cnnlab.sweeps import study as studies

    spent: list[float] = []
    objective_seconds: list[float] = []

    def objective(trial) -> float:
        began = time.perf_counter()
        trial.set_user_attr("worker", studies.worker_id())
        studies.claim(study, trial, wanted)
        params = {name: p.suggest(trial) for name, p in space.items()}
        try:
            value, attrs = run_trial(trial, recipe, params, out)
        finally:
            objective_seconds.append(time.perf_counter() - began)
        for key, item in attrs.items():
            trial.set_user_attr(key, item)
        return value

    def after(done_study, frozen) -> None:
        if not frozen.user_attrs.get("surplus"):
            folder.write_table(*report.rows(done_study, list(space), out))
        if not quiet and not frozen.user_attrs.get("surplus"):
            value = "" if frozen.value is None else f", val accuracy {frozen.value:.4f}"
            print(f"trial {frozen.number} {frozen.state.name.lower()}{value} {frozen.params}", flush=True)

    finished = (TrialState.COMPLETE, TrialState.PRUNED)
    while studies.wait_for_others(study, wanted):
        began = time.perf_counter()
        study.optimize(
            objective,
            n_trials=1,
            catch=(TrialFailed, studies.Surplus),
            callbacks=[MaxTrialsCallback(wanted, states=finished), after],
            gc_after_trial=False,
            show_progress_bar=False,
        )
        if objective_seconds:
            spent.append(time.perf_counter() - began - objective_seconds.pop())
    return spent


def _finish(study, recipe: Recipe, spec: SweepSpec, folder: SweepFolder, extra: dict, storage_seconds) -> dict:
    from cnnlab.sweeps import report

    table = report.rows(study, list(spec.space), folder.path)
    folder.write_table(*table)
    written, notes = report.plots(study, folder)
    best = report.best_command(study, recipe, folder.path)
    cost = report.overhead(study, storage_seconds)
    extra = {**extra, "plots": written, "notes": notes, "overhead": cost}
    folder.write_report(report.markdown(study, recipe, spec, table, best, extra))
    states = [row["state"] for row in table[1]]
    return {
        "out": str(folder.path),
        "study": spec.study,
        "storage": spec.storage,
        "finished": sum(state in ("COMPLETE", "PRUNED") for state in states),
        "complete": states.count("COMPLETE"),
        "pruned": states.count("PRUNED"),
        "failed": states.count("FAIL"),
        "best_command": best,
        "best_value": study.best_value if best else None,
        "overhead": cost,
        "plots": written,
        "notes": notes,
    }
