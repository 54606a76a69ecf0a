"""`cnnlab compare`: train several models with one recipe on one dataset and tabulate them, as the tutorials'
comparison tables do (results.md, results.csv, compare.png).

With `--seeds 0,1,2` (or `--repeats N`) each seed's comparison is kept whole in OUT/seed-N, and OUT's tables give
each measured column as mean ± std with n (results.csv: COLUMN_mean, COLUMN_std, COLUMN_n); the best model is
judged against the runner-up with `cnnlab.repeats.verdict`, so a lead smaller than the spread is "not resolved".
"""

from __future__ import annotations

from pathlib import Path

from cnnlab import reporting
from cnnlab.building import ZOO, check_model_name, model_kind
from cnnlab.data import load_dataset
from cnnlab.engine import distributed
from cnnlab.engine.config import TrainConfig, make_config, resolve
from cnnlab.engine.trainer import run
from cnnlab.errors import CnnlabError
from cnnlab.plots import plot_comparison
from cnnlab.registry import model_info
from cnnlab.repeats import (
    Claim,
    aggregate_rows,
    check_free,
    csv_rows,
    format_spread,
    pick_seeds,
    seed_dir,
    spread_of,
    verdict,
)
from cnnlab.rundir import ExperimentFolder, folder_label, prepare_run_dir

COLUMNS = ("model", "params", "macs", "test_accuracy", "train_seconds", "train_images_per_second")
HEADERS = ["model", "params", "MACs/image", "test accuracy", "train time", "train images/s"]
MEASURED = ("test_accuracy", "train_seconds", "train_images_per_second")  # mean ± std over seeds; the rest is fixed
RECIPE_COLUMNS = ("dataset", "epochs", "batch_size", "optimizer", "lr")  # equal for every seed, kept in merged rows
SEED_HEADERS = [HEADERS[0], "n", *HEADERS[1:]]
PLOT = "compare.png"


def format_row(result: dict) -> list[str]:
    """One model's cells, in HEADERS' order."""
    return [reporting.format_metric(column, result[column]) for column in COLUMNS]


def compare(
    models: list[str],
    dataset: str | None = None,
    out: str | Path | None = None,
    overwrite: bool = False,
    quiet: bool = False,
    seeds: list[int] | str | None = None,
    repeats: int | None = None,
    **options,
) -> list[dict]:
    """Train each model with the same recipe (`options` are TrainConfig fields); write results.md, results.csv and
    compare.png to `out`; return one results dict per model (on every process, when torchrun started several).

    `seeds` ([0, 1, 2] or "0,1,2") or `repeats` (N seeds from `seed`, default 0): one comparison per seed in
    OUT/seed-N, the mean ± std tables in OUT, and one merged row per model returned (see `compare_seeds`)."""
    chosen = pick_seeds(options, seeds, repeats)
    if chosen is not None:
        return compare_seeds(models, dataset, out, chosen, overwrite=overwrite, quiet=quiet, **options)
    if not models:
        raise CnnlabError("compare needs at least one model name")
    for name in models:  # fail on a typo, a bad spec or a missing file before any training starts
        if model_kind(name) == ZOO:
            model_info(name)
        else:
            check_model_name(resolve(make_config(name, dataset, **options)))
    recipe = resolve(make_config(models[0], dataset, **options))  # None: TrainConfig's default dataset
    dataset = recipe.dataset
    out = Path(out) if out else reporting.timestamped_dir("compare", dataset)
    if (out / "results.csv").exists() and not overwrite:
        raise CnnlabError(f"{out} already holds a comparison; pass --overwrite to replace it")
    # Under torchrun every process trains every model together (each run is one DDP run); process 0 alone writes.
    is_main = distributed.rank() == 0
    if is_main:
        prepare_run_dir(out, overwrite=True)
    data = load_dataset(dataset, recipe.data_dir, image_size=recipe.image_size)
    rows = []
    for name, folder in zip(models, run_folders(models), strict=True):
        config = TrainConfig(**{**recipe.to_dict(), "model": name, "out": str(out / folder)})
        rows.append(run(config, overwrite=True, quiet=quiet, data=data))
    if is_main:
        recipe_line = (
            f"{data.name}: {recipe.epochs} epochs, batch {recipe.batch_size}, {recipe.optimizer} "
            f"lr {recipe.lr:g}, seed {recipe.seed}"
        )
        write_outputs(rows, out, recipe_line)
    return rows


def run_folders(models: list[str]) -> list[str]:
    """Each model's run folder in the comparison: its name ("MyCNN" for a file's, "spec" for a spec), numbered
    when two would share one."""
    labels = [folder_label(name) for name in models]
    return [f"{label}-{i + 1}" if labels.count(label) > 1 else label for i, label in enumerate(labels)]


def write_outputs(rows: list[dict], out: Path, recipe_line: str) -> None:
    """results.csv (raw numbers), results.md (the formatted table and its two winners) and compare.png."""
    reporting.write_csv(out / "results.csv", COLUMNS, rows)
    best = max(rows, key=lambda r: r["test_accuracy"])
    fastest = max(rows, key=lambda r: r["train_images_per_second"])
    table = reporting.markdown_table(HEADERS, [format_row(r) for r in rows])
    summary = (
        f"Best test accuracy: {best['model']} ({best['test_accuracy']:.2%}). "
        f"Fastest to train: {fastest['model']} ({fastest['train_images_per_second']:,.0f} images/s)."
    )
    ExperimentFolder(out).write_results_md(f"# Comparison on {recipe_line}\n\n{table}\n\n{summary}\n")
    plot_comparison(rows, out / PLOT, title=recipe_line)


def compare_seeds(
    models: list[str], dataset: str | None, out: str | Path | None, seeds: tuple[int, ...], **kwargs
) -> list[dict]:
    """One comparison per seed into OUT/seed-N (its runs in OUT/seed-N/MODEL), then OUT/results.md, results.csv
    and compare.png over the seeds. Returns one row per model: COLUMNS, with the measured ones as `Spread`s, the
    recipe (RECIPE_COLUMNS), "seeds", "run_dirs" (one per seed) and "out"."""
    options = {k: v for k, v in kwargs.items() if k not in ("overwrite", "quiet")}
    if not models:
        raise CnnlabError("compare needs at least one model name")
    recipe = resolve(make_config(models[0], dataset, **options))
    out = Path(out) if out else reporting.timestamped_dir("compare", recipe.dataset)
    check_free(out, seeds, "results.csv", "results.csv", kwargs.get("overwrite", False))
    per_seed = [
        compare(models, dataset, seed_dir(out, seed), **{**kwargs, "seed": seed}) for seed in seeds
    ]  # each seed's own tables land in its folder
    rows = aggregate_rows(per_seed, COLUMNS + RECIPE_COLUMNS, measured=MEASURED)
    for index, row in enumerate(rows):
        row |= {"seeds": list(seeds), "run_dirs": [runs[index]["run_dir"] for runs in per_seed], "out": str(out)}
    if distributed.rank() == 0:
        first = rows[0]
        recipe_line = (
            f"{first['dataset']}: {first['epochs']} epochs, batch {first['batch_size']}, {first['optimizer']} "
            f"lr {first['lr']:g}, seeds {', '.join(map(str, seeds))}"
        )
        write_seed_outputs(rows, out, recipe_line)
    return rows


def seed_row(row: dict) -> list[str]:
    """A merged row's cells, in SEED_HEADERS' order: measured columns as mean ± std, and the runs' n."""
    n = min(spread_of(row, column).n for column in MEASURED)
    return [row["model"], str(n), *(format_spread(column, row[column]) for column in COLUMNS[1:])]


def seed_summary(rows: list[dict]) -> list[str]:
    """The sentences under the mean ± std table: the best model's lead over the runner-up judged against the
    spread (`verdict`), the fastest, and how to read the cells."""
    ranked = sorted(rows, key=lambda row: -spread_of(row, "test_accuracy").mean)
    best = ranked[0]
    lines = [f"Best mean test accuracy: {best['model']} ({format_spread('test_accuracy', best['test_accuracy'])})."]
    if len(ranked) > 1:
        runner_up = ranked[1]["model"]
        claim = Claim(
            f"{best['model']} ahead of {runner_up} in test accuracy",
            "test_accuracy",
            {"model": best["model"]},
            {"model": runner_up},
        )
        sentence = verdict(claim, rows)[1]
        lines.append(sentence[0].upper() + sentence[1:])
    fastest = max(rows, key=lambda row: spread_of(row, "train_images_per_second").mean)
    speed = format_spread("train_images_per_second", fastest["train_images_per_second"])
    lines.append(f"Fastest to train: {fastest['model']} ({speed} images/s).")
    seeds = rows[0]["seeds"]
    lines.append(
        f"Each cell is mean ± std (sample std) over n={len(seeds)} seeds ({', '.join(map(str, seeds))}); a "
        "difference within std(A) + std(B) is not resolved. Each seed's own comparison is in seed-N/; in "
        "compare.png the bars are the means and the error bars ± 1 std."
    )
    return lines


def write_seed_outputs(rows: list[dict], out: Path, recipe_line: str) -> None:
    """results.csv (COLUMN_mean, COLUMN_std, COLUMN_n for the measured columns), results.md and compare.png."""
    reporting.write_csv(out / "results.csv", *csv_rows(rows, COLUMNS))
    table = reporting.markdown_table(SEED_HEADERS, [seed_row(row) for row in rows])
    summary = " ".join(seed_summary(rows))
    ExperimentFolder(out).write_results_md(f"# Comparison on {recipe_line}\n\n{table}\n\n{summary}\n")
    plot_comparison(rows, out / PLOT, title=recipe_line)
