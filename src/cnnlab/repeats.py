"""Repeated runs: one run per seed, then every measured number as mean ± std over the seeds, curves as a mean line
in a min-max band, and verdicts that respect the spread. This is the one home of seed logic: which seeds run
(`choose_seeds`, `pick_seeds`), where each goes (`seed_dir`), whether that place is free (`check_free`), and how
their numbers combine; `workflows.seeds`, `workflows.comparison`, `workflows.speedrun` and `experiments.repeated`
are workflows that call it.

`cnnlab train`, `cnnlab compare` and `cnnlab experiment` take `--seeds 0,1,2` or `--repeats N` (seeds 0..N-1),
declared in cnnlab.options.commands; each seed's run keeps its own directory, `seed-N`, and the summary lands
beside them.

The verdict rule (`verdict`): a claim "A's value is above B's" is *supported* when the means differ in the claimed
direction by more than the spread, std(A) + std(B) (the two mean ± std intervals do not overlap); *contradicted*
when they differ the other way by more than it; otherwise "not resolved at n=N". One run has no spread, so a single
seed never resolves anything.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

from cnnlab.errors import CnnlabError


# ------------------------------------------------------------------------------------------------------ seeds
def parse_seeds(text: str) -> tuple[int, ...]:
    """ "0,1,2" -> (0, 1, 2): distinct non-negative integers, at least one."""
    try:
        seeds = tuple(int(part) for part in str(text).split(",") if part.strip())
    except ValueError:
        seeds = ()
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise CnnlabError(
            f"--seeds takes distinct non-negative integers (expected distinct whole numbers separated by commas, "
            f"such as 0,1,2), got {text!r}"
        )
    return seeds


def choose_seeds(seed: int | None = None, seeds: Sequence[int] | str | None = None, repeats: int | None = None):
    """The seeds to run: `seeds` if given, else `repeats` consecutive ones from `seed` (default 0), else None (one
    plain run, no seed folders). `seeds` with `repeats` of another length is refused rather than one ignored."""
    if isinstance(seeds, str):
        seeds = parse_seeds(seeds)
    if seeds is not None:
        seeds = tuple(int(s) for s in seeds)
        if not seeds or len(set(seeds)) != len(seeds):
            raise CnnlabError(f"--seeds needs distinct seeds, got {list(seeds)}")
        if repeats is not None and repeats != len(seeds):
            raise CnnlabError(f"--repeats {repeats} and --seeds {','.join(map(str, seeds))} disagree: pass one")
        return seeds
    if repeats is not None:
        if repeats < 1:
            raise CnnlabError(f"--repeats must be at least 1, got {repeats}")
        return tuple(range(seed or 0, (seed or 0) + repeats))
    return None


def seed_dir(out: str | Path, seed: int) -> Path:
    return Path(out) / f"seed-{seed}"


def pick_seeds(options: dict, seeds: Sequence[int] | str | None, repeats: int | None) -> tuple[int, ...] | None:
    """The seeds of a repeated train or compare, or None for one plain run. `repeats` counts up from the `seed`
    option (default 0); a `seed` option with `seeds` is refused rather than one of them ignored."""
    if seeds is not None and options.get("seed") is not None:
        raise CnnlabError("--seed and --seeds both choose the seed: pass --seeds alone, or --seed with --repeats")
    return choose_seeds(options.get("seed"), seeds, repeats)


def check_free(out: Path, seeds: Sequence[int], summary: str, run_file: str, overwrite: bool) -> None:
    """Refuse, before anything trains, an OUT that already holds a summary or a seed's run (without --overwrite),
    or that is itself a single run (its results.json would be listed by `cnnlab runs` beside the seeds')."""
    from cnnlab.rundir import holds_run

    if holds_run(out):
        raise CnnlabError(f"{out} holds a single run; repeated runs need a folder of their own: pass another --out")
    taken = [p for p in [out / summary, *(seed_dir(out, s) / run_file for s in seeds)] if p.exists()]
    if taken and not overwrite:
        raise CnnlabError(f"{taken[0]} already exists; pass --overwrite to replace the runs in {out}")


# ------------------------------------------------------------------------------------------------------ spread
@dataclass(frozen=True)
class Spread:
    """One measured quantity over n runs. std is the sample standard deviation (n - 1), 0 for one run."""

    mean: float
    std: float
    n: int
    low: float
    high: float
    values: tuple[float, ...]

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        values = tuple(float(v) for v in values)
        if not values:
            raise ValueError("a spread needs at least one value")
        std = statistics.stdev(values) if len(values) > 1 else 0.0
        return cls(statistics.fmean(values), std, len(values), min(values), max(values), values)


def format_spread(column: str, value) -> str:
    """A cell: a Spread as "mean ± std" in its column's units (accuracies as percentages), anything else as
    `reporting.format_metric` writes it."""
    from cnnlab.reporting import format_metric

    if not isinstance(value, Spread):
        return format_metric(column, value)
    if value.n == 1:
        return format_metric(column, value.mean)
    mean, std = format_metric(column, value.mean), format_metric(column, value.std)
    if mean.endswith("%") and std.endswith("%"):
        return f"{mean[:-1]} ± {std}"
    return f"{mean} ± {std}"


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and not math.isnan(float(value))


def aggregate_rows(
    runs: Sequence[Sequence[dict]], columns: Sequence[str], measured: Collection[str] = ()
) -> list[dict]:
    """Row i of every run merged into one row: a column whose value is the same in every run keeps it (a model's
    name, its parameter count); a numeric column that varies becomes a `Spread`; anything else that varies is
    joined with "/". Runs must have the same number of rows in the same order (one experiment, several seeds).

    A measured column (named in `measured`, or varying in any row) is a Spread in every row where it is numeric:
    a value that happened to be equal in every run is a spread of width 0 over all the runs, so its n stays right.
    """
    if not runs:
        raise ValueError("no runs to aggregate")
    lengths = {len(rows) for rows in runs}
    if len(lengths) != 1:
        raise CnnlabError(f"the seeds' tables differ in length ({sorted(lengths)} rows): cannot line them up")
    merged = []
    for index in range(lengths.pop()):
        row = {}
        for column in columns:
            values = [rows[index].get(column) for rows in runs]
            if all(_is_number(v) for v in values) and len(set(values)) > 1:
                row[column] = Spread.of(values)
            elif len({repr(v) for v in values}) == 1:
                row[column] = values[0]
            else:
                row[column] = "/".join(str(v) for v in values)
        merged.append(row)
    spread_columns = set(measured) | {c for c in columns if any(isinstance(row[c], Spread) for row in merged)}
    for index, row in enumerate(merged):
        for column in spread_columns.intersection(columns):
            values = [rows[index].get(column) for rows in runs]
            if not isinstance(row[column], Spread) and all(_is_number(v) for v in values):
                row[column] = Spread.of(values)
    return merged


def spread_of(row: dict, column: str) -> Spread | None:
    """A row's column as a Spread (a value equal in every run is a spread of zero width), None if not numeric."""
    value = row.get(column)
    if isinstance(value, Spread):
        return value
    return Spread(float(value), 0.0, 1, float(value), float(value), (float(value),)) if _is_number(value) else None


def csv_rows(rows: Sequence[dict], columns: Sequence[str]) -> tuple[list[str], list[dict]]:
    """Columns and rows for results.csv: each Spread column becomes COLUMN_mean, COLUMN_std and COLUMN_n."""
    spread_columns = {c for c in columns if any(isinstance(r.get(c), Spread) for r in rows)}
    out_columns = []
    for column in columns:
        out_columns += [f"{column}_mean", f"{column}_std", f"{column}_n"] if column in spread_columns else [column]
    out_rows = []
    for row in rows:
        flat = {}
        for column in columns:
            value = row.get(column)
            if column in spread_columns:
                spread = spread_of(row, column)
                if spread is None:  # a row that does not measure this column (an exact count, a diverged run)
                    flat |= {f"{column}_mean": value, f"{column}_std": None, f"{column}_n": None}
                else:
                    flat |= {f"{column}_mean": spread.mean, f"{column}_std": spread.std, f"{column}_n": spread.n}
            else:
                flat[column] = value
        out_rows.append(flat)
    return out_columns, out_rows


# ------------------------------------------------------------------------------------------------------ verdicts
@dataclass(frozen=True)
class Claim:
    """A claim an experiment tests: `column` is larger in the row `above` selects than in the row `below` selects.
    A selector is a dict of column values ({"network": "plain56"}) that matches exactly one row."""

    text: str  # the claim in words: "plain-56 trains to a higher training error than plain-20"
    column: str
    above: dict
    below: dict


def find_row(rows: Sequence[dict], selector: dict) -> dict:
    matches = [row for row in rows if all(row.get(k) == v for k, v in selector.items())]
    if len(matches) != 1:
        raise CnnlabError(f"claim selector {selector} matches {len(matches)} rows, not 1")
    return matches[0]


def verdict(claim: Claim, rows: Sequence[dict]) -> tuple[str, str]:
    """("supports" | "contradicts" | "not resolved at n=N", one sentence with the numbers)."""
    from cnnlab.reporting import format_metric

    above, below = (
        spread_of(find_row(rows, claim.above), claim.column),
        spread_of(find_row(rows, claim.below), claim.column),
    )
    if above is None or below is None:  # a run diverged or was not measured in some seed: nothing to compare
        missing = _label(claim.above if above is None else claim.below)
        return (
            "not resolved",
            f"not resolved: {claim.text} ({claim.column} of {missing} is not a number in every seed).",
        )
    n = min(above.n, below.n)
    difference, spread = above.mean - below.mean, above.std + below.std
    if n >= 2 and difference > spread:
        outcome = "supports"
    elif n >= 2 and -difference > spread:
        outcome = "contradicts"
    else:
        outcome = f"not resolved at n={n}"

    def cell(side: dict, value: Spread) -> str:
        return f"{_label(side)} {format_spread(claim.column, value)}"

    sentence = (
        f"{outcome}: {claim.text} ({claim.column}: {cell(claim.above, above)} against {cell(claim.below, below)}; "
        f"difference {format_metric(claim.column, difference)}, "
        + (f"spread {format_metric(claim.column, spread)}, n={n})." if n > 1 else "one run: no spread).")
    )
    return outcome, sentence


def _label(selector: dict) -> str:
    return ", ".join(str(v) for v in selector.values())


# ------------------------------------------------------------------------------------------------------ curves
def read_curves(run_dirs: Sequence[Path], metric: str) -> list[tuple[list[float], list[float]]]:
    """(epochs, values) of `metric` from each run directory's metrics.csv; runs without the column are skipped.
    A metric named NAME_error that the file lacks is read as 1 - NAME_accuracy (P3 plots training error)."""
    from cnnlab.errors import RunFileMissing
    from cnnlab.rundir import RunDir

    curves = []
    for run_dir in run_dirs:
        try:
            rows = RunDir(run_dir).read_metrics()
        except RunFileMissing:
            continue
        column, flip = metric, False
        if rows and metric not in rows[0] and metric.endswith("_error"):
            column, flip = metric.removesuffix("_error") + "_accuracy", True
        rows = [row for row in rows if column in row]
        if rows:
            curves.append(([r["epoch"] for r in rows], [1 - r[column] if flip else r[column] for r in rows]))
    return curves


def band(
    curves: Sequence[tuple[list[float], list[float]]],
) -> tuple[list[float], list[float], list[float], list[float]]:
    """x, mean, min, max over the curves, on the epochs every curve has."""
    length = min(len(x) for x, _ in curves)
    x = curves[0][0][:length]
    columns = list(zip(*(values[:length] for _, values in curves), strict=True))
    return x, [statistics.fmean(c) for c in columns], [min(c) for c in columns], [max(c) for c in columns]


def band_plot(
    groups: dict[str, Sequence[Path]],
    metrics: Sequence[str],
    path: Path,
    title: str,
    label: Callable[[str], str] = lambda group: Path(group).name,
) -> bool:
    """One panel per metric; in each, one line per group (the mean over its seeds' run directories) with a shaded
    min-max band. Returns False (and writes nothing) when no run directory has any of the metrics."""
    from cnnlab.notebook import use_file_backend

    use_file_backend()
    import matplotlib.pyplot as plt

    panels = [(m, {g: read_curves(dirs, m) for g, dirs in groups.items()}) for m in metrics]
    panels = [(m, curves) for m, curves in panels if any(curves.values())]
    if not panels:
        return False
    columns = min(len(panels), 2)
    rows = math.ceil(len(panels) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(5.5 * columns, 3.6 * rows), squeeze=False)
    for axis in axes.flat[len(panels) :]:
        axis.set_visible(False)
    for axis, (metric, curves_by_group) in zip(axes.flat, panels):
        palette = plt.get_cmap("tab20" if len(groups) > 10 else "tab10")  # one colour per group, never reused
        for index, (group, curves) in enumerate(curves_by_group.items()):
            if not curves:
                continue
            x, mean, low, high = band(curves)
            style = dict(color=palette(index), marker="o", markersize=3)
            (line,) = axis.plot(x, mean, label=f"{label(group)} (n={len(curves)})", **style)
            axis.fill_between(x, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
        axis.set_xlabel("epoch")
        axis.xaxis.get_major_locator().set_params(integer=True)
        axis.set_ylabel(metric.replace("_", " "))
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
    figure.suptitle(f"{title}\nline: mean over seeds; band: min to max", fontsize=9)
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True
