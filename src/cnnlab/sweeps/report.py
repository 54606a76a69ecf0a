"""A sweep's outputs: sweep.csv (every trial), sweep.md (the best configuration as a ready-to-run `cnnlab train`
line, the table, the overhead) and Optuna's plotly plots as HTML (plotly.js embedded: no CDN is needed) and, where
kaleido is installed, PNG."""

from __future__ import annotations

import shlex
import statistics
from pathlib import Path

from cnnlab.options.commands import command
from cnnlab.rundir import SweepFolder

COLUMNS = ("number", "state", "val_accuracy", "test_accuracy", "epochs", "seconds", "run_dir")
PLOTS = {
    "history": "plot_optimization_history",
    "parallel": "plot_parallel_coordinate",
    "importance": "plot_param_importances",
}


def rows(study, names: list[str], out: Path) -> tuple[list[str], list[dict]]:
    """The trials table: one row per trial (surplus trials, never run, left out), by number."""
    columns = ["number", "state", *names, *COLUMNS[2:]]
    table = []
    for trial in study.get_trials(deepcopy=False):
        if trial.user_attrs.get("surplus"):
            continue
        attrs, run_dirs = trial.user_attrs, trial.user_attrs.get("run_dirs") or []
        seconds = trial.duration.total_seconds() if trial.duration else None
        table.append(
            {
                "number": trial.number,
                "state": trial.state.name,
                **{name: trial.params.get(name, "") for name in names},
                "val_accuracy": _cell(trial.value if trial.value is not None else _last(trial)),
                "test_accuracy": _cell(attrs.get("test_accuracy")),
                "epochs": attrs.get("epochs", len(trial.intermediate_values) or ""),
                "seconds": _cell(seconds, 2),
                "run_dir": _relative(run_dirs[0], out) if run_dirs else "",
            }
        )
    return columns, table


def _last(trial):
    values = trial.intermediate_values
    return values[max(values)] if values else None


def _cell(value, digits: int = 4):
    return "" if value is None else round(float(value), digits)


def _relative(path: str, out: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path(out).resolve()))
    except ValueError:
        return path


def best_command(study, recipe, out: Path) -> str | None:
    """The best trial's configuration as a `cnnlab train` line (its own --out), or None before one completes."""
    try:
        best = study.best_trial
    except ValueError:
        return None
    values = {"model": recipe.model, **recipe.fixed, **best.params, "out": str(Path(out) / "best")}
    if recipe.dataset is not None:
        values["dataset"] = recipe.dataset
    return shlex.join(["cnnlab", *command("train").argv(values)])


def plots(study, folder: SweepFolder) -> tuple[list[str], list[str]]:
    """Optuna's plots as HTML (and PNG with kaleido); returns (files written, notes on what was skipped)."""
    import optuna.visualization as vis

    try:
        import kaleido  # noqa: F401
    except ImportError:
        kaleido = None
    written, notes = [], [] if kaleido else ["PNG plots skipped: kaleido is not installed (pip install kaleido)"]
    for name, function in PLOTS.items():
        try:
            figure = getattr(vis, function)(study)
        except (ValueError, RuntimeError) as error:  # e.g. importance needs two completed trials
            notes.append(f"{name} plot skipped: {str(error).splitlines()[0]}")
            continue
        figure.write_html(str(folder.path / f"{name}.html"), include_plotlyjs=True)
        written.append(f"{name}.html")
        if kaleido:
            figure.write_image(str(folder.path / f"{name}.png"))
            written.append(f"{name}.png")
    return written, notes


def overhead(study, storage_seconds: list[float]) -> dict:
    """Per trial (medians): start-up (a process's launch to its run's start event, and its end after the finish
    event: Python, torch, the data), storage (this worker's ask, tell and checks) and the run's own time."""
    trials = [t for t in study.get_trials(deepcopy=False) if t.user_attrs.get("run_seconds")]
    if not trials:
        return {}
    run = statistics.median(t.user_attrs["run_seconds"] for t in trials)
    startup = statistics.median(t.user_attrs["process_seconds"] - t.user_attrs["run_seconds"] for t in trials)
    storage = statistics.median(storage_seconds) if storage_seconds else 0.0
    return {
        "run_seconds": run,
        "startup_seconds": startup,
        "storage_seconds": storage,
        "overhead_percent": 100 * (startup + storage) / run if run else float("nan"),
    }


def markdown(study, recipe, spec, table: tuple[list[str], list[dict]], best: str | None, extra: dict) -> str:
    columns, found = table
    counts: dict[str, int] = {}
    for row in found:
        counts[row["state"]] = counts.get(row["state"], 0) + 1
    lines = [
        f"# Sweep: {recipe.model} on {recipe.dataset or 'digits'}",
        "",
        f"Study `{spec.study}` in `{spec.storage}`; objective: final validation accuracy (maximised), "
        f"TPE sampler, {extra['pruner']} pruner; {extra['trials']} trials wanted.",
        "",
        "Trials: " + ", ".join(f"{n} {state.lower()}" for state, n in sorted(counts.items())),
        "",
        "Search space: " + ", ".join(f"`{name}={spec_text}`" for name, spec_text in spec.space.items()),
        "",
    ]
    if best is not None:
        lines += [f"Best (trial {study.best_trial.number}, val accuracy {study.best_value:.4f}):", "", "```", best]
        lines += ["```", ""]
    cost = extra.get("overhead") or {}
    if cost:
        lines += [
            f"Overhead per trial (medians): process start-up {cost['startup_seconds']:.2f} s, storage "
            f"{cost['storage_seconds']:.3f} s, against {cost['run_seconds']:.2f} s of the run itself: "
            f"{cost['overhead_percent']:.1f}% (target < 2%).",
            "",
        ]
    lines += [f"- [{name}]({name})" for name in extra["plots"]] + [f"- {note}" for note in extra["notes"]]
    lines += ["", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(row[c]) for c in columns) + " |" for row in found]
    return "\n".join(lines) + "\n"
