"""What the Python API returns, made to show itself in a notebook: a run's results (its curves and metrics), a
run over seeds and a comparison (their tables and plots), each still the plain value it was (a dict, a list of
dicts) for code, JSON and the tests.

    result = cnnlab.train("lenet5", "digits", epochs=1)   # a RunResult: result["test_accuracy"] as before
    result                                                # in Jupyter: headline numbers, curves.png, epochs

(`cnnlab.summary`'s `Summary` shows its layer table the same way; see `cnnlab.measure.summary`.)
"""

from __future__ import annotations

import base64
from html import escape
from pathlib import Path

from cnnlab import reporting
from cnnlab.rundir import CURVES, RunDir, optional

# The headline of a run: results.json's keys, as `reporting.format_metric` formats them.
HEADLINE = ("test_accuracy", "test_loss", "best_val_accuracy", "params", "macs", "train_seconds")
HEADLINE_NAMES = ("test accuracy", "test loss", "best val accuracy", "params", "MACs/image", "train time")
EPOCH_COLUMNS = ("epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "epoch_seconds")
EPOCH_NAMES = ("epoch", "train loss", "train acc", "val loss", "val acc", "time")


def image_html(path: Path, width: int = 560) -> str:
    """A PNG inline (base64), so the notebook keeps it after the run folder moves; nothing when it is missing."""
    if not path.is_file():
        return ""
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" style="max-width:{width}px" alt="{escape(path.name)}"/>'


class RunResult(dict):
    """A run's results (results.json's contents). A dict in every way; in a notebook it shows the headline
    numbers, the run's curves.png and its metrics per epoch."""

    def __repr__(self) -> str:
        accuracy = reporting.format_metric("test_accuracy", self.get("test_accuracy"))
        seconds = reporting.format_metric("train_seconds", self.get("train_seconds"))
        return (
            f"<RunResult {self.get('model')} on {self.get('dataset')}: test accuracy {accuracy} after "
            f"{self.get('epochs')} epochs ({seconds}) in {self.get('run_dir')}>"
        )

    def _repr_html_(self) -> str:
        title = f"{escape(str(self.get('model')))} on {escape(str(self.get('dataset')))}"
        headline = reporting.html_table(
            HEADLINE_NAMES, [[reporting.format_metric(key, self.get(key)) for key in HEADLINE]], right_from=0
        )
        run = RunDir(self["run_dir"]) if self.get("run_dir") else None
        epochs = (optional(run.read_metrics, []) if run else []) or []
        table = reporting.html_table(
            EPOCH_NAMES,
            [[reporting.format_metric(key, row.get(key)) for key in EPOCH_COLUMNS] for row in epochs],
            right_from=0,
        )
        curves = image_html(run.file(CURVES)) if run else ""
        where = f"<p><code>{escape(str(self.get('run_dir')))}</code></p>"
        return f"<div><h4>{title}</h4>{headline}{curves}{table if epochs else ''}{where}</div>"


class SeedsResult(dict):
    """`cnnlab.train(..., seeds=...)`'s summary (seeds.json's contents). A dict in every way; in a notebook it shows
    seeds.md's table (each measured number as mean ± std, n and per seed) and seeds.png."""

    def __repr__(self) -> str:
        from cnnlab.workflows import seeds

        accuracy = seeds.format_spread("test_accuracy", seeds.spread_of_column(self, "test_accuracy"))
        return f"<SeedsResult {seeds.title(self)}: test accuracy {accuracy} in {self.get('out')}>"

    def _repr_html_(self) -> str:
        from cnnlab.workflows import seeds  # the table's one definition

        headers, rows = seeds.table(self)
        table = reporting.html_table(headers, rows, caption=seeds.title(self), right_from=1)
        return f"<div>{table}{image_html(Path(self['out']) / seeds.PLOT)}</div>"


class Comparison(list):
    """`cnnlab.compare`'s rows (one results dict per model, or per model over seeds). A list in every way; in a
    notebook it shows the comparison's table and compare.png."""

    def __init__(self, rows, out: str | Path) -> None:
        super().__init__(rows)
        self.out = Path(out)

    def __repr__(self) -> str:
        return f"<Comparison of {', '.join(str(row.get('model')) for row in self)} in {self.out}>"

    def _repr_html_(self) -> str:
        from cnnlab.workflows import comparison  # the table's one definition

        seeded = bool(self) and "seeds" in self[0]
        headers = comparison.SEED_HEADERS if seeded else comparison.HEADERS
        cells = [comparison.seed_row(row) if seeded else comparison.format_row(row) for row in self]
        table = reporting.html_table(headers, cells, right_from=1)
        return f"<div>{table}{image_html(self.out / comparison.PLOT)}</div>"


def comparison_out(rows: list[dict]) -> Path:
    """The comparison's folder: the rows over seeds name it; a single comparison's runs are its subfolders."""
    if not rows:
        return Path(".")
    return Path(rows[0]["out"]) if "out" in rows[0] else Path(rows[0]["run_dir"]).parent
