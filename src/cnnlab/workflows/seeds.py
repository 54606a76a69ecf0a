"""`cnnlab train MODEL --seeds 0,1,2` (or `--repeats N`): one full run per seed in OUT/seed-N, then a summary in
OUT with every measured number of the runs as mean ± std and n:

    OUT/seed-N/      a complete run directory each (results.json, metrics.csv, model.safetensors, ...)
    OUT/seeds.md     the measured numbers per seed, their mean ± std (sample std) and n
    OUT/seeds.json   the same numbers, raw
    OUT/seeds.png    train loss, train accuracy and validation accuracy: the mean curve in a min-max band

OUT holds no results.json of its own, so `cnnlab runs` lists each seed's run once and nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence
from math import isnan
from pathlib import Path

from cnnlab import reporting
from cnnlab.repeats import Spread, band_plot, check_free, format_spread, seed_dir

# Numbers in results.json that the recipe sets rather than the run measures; every other number is measured.
RECIPE_NUMBERS = ("params", "macs", "epochs", "batch_size", "lr", "seed", "processes", "time_budget")
CURVE_METRICS = ("train_loss", "train_accuracy", "val_accuracy")
PLOT = "seeds.png"
SUMMARY_FILES = ("seeds.md", "seeds.json", PLOT)


def train_seeds(
    model: str,
    dataset: str | None,
    seeds: Sequence[int],
    *,
    overwrite: bool = False,
    quiet: bool = False,
    **options,
) -> dict:
    """Train `model` once per seed into OUT/seed-N (`options` are TrainConfig fields, `out` is OUT, by default
    named as a single run's folder), write seeds.md, seeds.json and seeds.png, and return seeds.json's contents."""
    from cnnlab.data import load_dataset
    from cnnlab.engine import distributed
    from cnnlab.engine.config import make_config, resolve
    from cnnlab.engine.trainer import run
    from cnnlab.rundir import CONFIG, default_run_dir

    recipe = resolve(make_config(model, dataset, **options))
    out = Path(options["out"]) if options.get("out") else default_run_dir(recipe)
    check_free(out, seeds, "seeds.json", CONFIG, overwrite)
    data = load_dataset(recipe.dataset, recipe.data_dir, image_size=recipe.image_size)  # once, for every seed
    results = []
    for seed in seeds:
        config = make_config(model, dataset, **{**options, "seed": seed, "out": str(seed_dir(out, seed))})
        results.append(run(config, overwrite=overwrite, quiet=quiet, data=data))
    summary = summarize(results, seeds, out)
    if distributed.rank() == 0:  # under torchrun every process trained every seed; process 0 writes
        write_summary(summary, out)
    return summary


def final_train_metrics(run_dir: str | Path) -> dict:
    """The last epoch's train loss and accuracy from a run's metrics.csv (results.json does not hold them)."""
    from cnnlab.rundir import RunDir, optional

    rows = optional(RunDir(run_dir).read_metrics, [])
    if not rows:
        return {}
    return {f"final_{name}": rows[-1][name] for name in ("train_loss", "train_accuracy") if name in rows[-1]}


def measured(results: dict) -> dict:
    """A run's measured numbers: results.json's numbers that the recipe does not set, and its final train loss
    and accuracy; accuracies and losses first, times and speeds last."""
    numbers = {
        key: value
        for key, value in results.items()
        if isinstance(value, int | float) and not isinstance(value, bool) and key not in RECIPE_NUMBERS
    }
    timing = {key: numbers.pop(key) for key in list(numbers) if key.endswith(("_seconds", "per_second"))}
    return numbers | final_train_metrics(results["run_dir"]) | timing


def summarize(results: Sequence[dict], seeds: Sequence[int], out: Path) -> dict:
    """seeds.json: each seed's measured numbers and, per number, mean, std (sample), n, min and max over the runs
    that have it (a NaN, such as a validation accuracy without a validation split, is left out of its n)."""
    runs = [{"seed": seed, "run_dir": r["run_dir"], **measured(r)} for seed, r in zip(seeds, results, strict=True)]
    columns = [c for c in runs[0] if c not in ("seed", "run_dir")]
    summary = {}
    for column in columns:
        values = [run[column] for run in runs if isinstance(run.get(column), int | float) and not isnan(run[column])]
        if values:
            spread = Spread.of(values)
            summary[column] = dict(mean=spread.mean, std=spread.std, n=spread.n, min=spread.low, max=spread.high)
    first = results[0]
    return {
        "model": first["model"],
        "dataset": first["dataset"],
        "epochs": first["epochs"],
        "seeds": list(seeds),
        "out": str(out),
        "std": "sample standard deviation (n - 1)",
        "columns": [c for c in columns if c in summary],
        "summary": summary,
        "runs": runs,
    }


def spread_of_column(summary: dict, column: str) -> Spread:
    stats = summary["summary"][column]
    values = tuple(run[column] for run in summary["runs"] if column in run)
    return Spread(stats["mean"], stats["std"], stats["n"], stats["min"], stats["max"], values)


def table(summary: dict) -> tuple[list[str], list[list[str]]]:
    """Headers and rows for seeds.md and the CLI: one row per measured number with its mean ± std, its n and each
    seed's value (a column per seed keeps the table narrow however many numbers a run measures)."""
    runs = summary["runs"]
    headers = ["measured", "mean ± std", "n", *(f"seed {run['seed']}" for run in runs)]
    rows = [
        [
            column,
            format_spread(column, spread_of_column(summary, column)),
            str(summary["summary"][column]["n"]),
            *(reporting.format_metric(column, run.get(column)) for run in runs),
        ]
        for column in summary["columns"]
    ]
    return headers, rows


def title(summary: dict) -> str:
    seeds = summary["seeds"]
    return (
        f"{summary['model']} on {summary['dataset']}, {summary['epochs']} epochs: {len(seeds)} seeds "
        f"({', '.join(map(str, seeds))})"
    )


def write_summary(summary: dict, out: Path) -> None:
    """seeds.md, seeds.json and seeds.png (a stale seeds.png goes when no run has curves to plot)."""
    headers, rows = table(summary)
    plotted = band_plot(
        {summary["model"]: [Path(run["run_dir"]) for run in summary["runs"]]},
        CURVE_METRICS,
        out / PLOT,
        title(summary),
    )
    if not plotted:
        (out / PLOT).unlink(missing_ok=True)
    notes = ["Each seed's full run is in seed-N/. The std is the sample standard deviation (n - 1)."]
    if plotted:
        notes.append("seeds.png: the mean curve over the seeds, shaded from the lowest to the highest seed.")
    markdown = f"# {title(summary)}\n\n{reporting.markdown_table(headers, rows)}\n\n{' '.join(notes)}\n"
    reporting.write_text(out / "seeds.md", markdown)
    reporting.write_json(out / "seeds.json", summary)
