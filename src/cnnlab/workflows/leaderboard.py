"""`cnnlab runs`: past runs, read from their results.json files, as one table (a local leaderboard), so comparing
many runs needs no notebook. It reads only those files: no model is built and no dataset loaded.
"""

from __future__ import annotations

from pathlib import Path

from cnnlab.errors import CnnlabError, RunFileError, unknown_name_error
from cnnlab.reporting import format_metric
from cnnlab.rundir import RESULTS, RunDir

# What the table shows, in order; `--sort` may also name any other number a results.json holds.
COLUMNS = (
    "run_dir",
    "model",
    "dataset",
    "epochs",
    "test_accuracy",
    "params",
    "train_seconds",
    "train_images_per_second",
)
HEADERS = {
    "run_dir": "run",
    "test_accuracy": "test acc",
    "train_seconds": "train",
    "train_images_per_second": "img/s",
}  # short, so the table fits 80 columns
SMALLER_IS_BETTER = ("_loss", "_seconds", "params", "macs")  # suffixes of the columns sorted ascending


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value  # NaN is no number


def read_runs(root: Path) -> list[dict]:
    """Every results.json under `root` that records a training run (it names a model and a dataset), with
    `run_dir` set to the folder it is in now (runs get moved). Unreadable files are skipped: they are not runs."""
    runs = []
    for path in sorted(root.rglob(RESULTS)):
        try:
            results = RunDir(path.parent).read_results()
        except RunFileError:
            continue
        if results.names_a_run:
            runs.append({**results.to_dict(), "run_dir": str(path.parent)})
    return runs


def list_runs(root: str | Path = "runs", dataset: str | None = None, sort: str = "test_accuracy") -> list[dict]:
    """The runs under `root` (recursively), optionally only those on `dataset`, best first by `sort`: descending,
    except losses, times, params and MACs, which sort ascending. Runs without that number (failed or interrupted
    ones) come last, in path order."""
    root = Path(root)
    if not root.is_dir():
        raise CnnlabError(
            f"runs directory {root} does not exist (runs are written to runs/ by default; pass the "
            "folder that holds them)"
        )
    runs = read_runs(root)
    if dataset is not None:
        runs = [run for run in runs if run["dataset"] == dataset]
    sortable = {key for run in runs for key, value in run.items() if is_number(value)} | set(COLUMNS[3:])
    if sort not in sortable:
        raise unknown_name_error("sort column", sort, sorted(sortable))
    ascending = sort.endswith(SMALLER_IS_BETTER)
    ranked = sorted(
        (run for run in runs if is_number(run.get(sort))), key=lambda run: run[sort] if ascending else -run[sort]
    )  # stable: ties keep path order
    return ranked + [run for run in runs if not is_number(run.get(sort))]


def format_cell(column: str, value, root: Path | None = None) -> str:
    """A table cell; a run directory is shown relative to the listed `root`, your own network by a short label
    (`model_label`: a file reference's Name, a spec's first layers)."""
    if column == "run_dir" and root is not None and Path(value).is_relative_to(root):
        return str(Path(value).relative_to(root))
    if column == "model" and isinstance(value, str):
        from cnnlab.building import model_label  # torch: only where a table shows models

        return model_label(value)
    return format_metric(column, value)


def table_row(run: dict, columns: tuple[str, ...], root: Path | None = None) -> list[str]:
    """A run's cells; a run that did not complete says so (failed, interrupted) where its test accuracy would be."""
    shown = {**run, "test_accuracy": run.get("test_accuracy", run.get("status"))}
    return [format_cell(column, shown.get(column), root) for column in columns]


def table_columns(sort: str) -> tuple[str, ...]:
    """COLUMNS, plus the sort column where it is not one of them."""
    return COLUMNS if sort in COLUMNS else (*COLUMNS, sort)
