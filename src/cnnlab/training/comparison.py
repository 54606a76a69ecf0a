"""`cnnlab compare`: train several models with one recipe on one dataset and tabulate them, as the tutorials'
comparison tables do (results.md, results.csv, compare.png)."""

from __future__ import annotations

from pathlib import Path

from cnnlab import reporting
from cnnlab.data import load_dataset
from cnnlab.errors import CnnlabError
from cnnlab.registry import model_info
from cnnlab.training import distributed
from cnnlab.training.config import TrainConfig, make_config, resolve
from cnnlab.training.plots import plot_comparison
from cnnlab.training.rundir import prepare_run_dir
from cnnlab.training.trainer import run

COLUMNS = ("model", "params", "macs", "test_accuracy", "train_seconds", "train_images_per_second")
HEADERS = ["model", "params", "MACs/image", "test accuracy", "train time", "train images/s"]


def format_row(result: dict) -> list[str]:
    """One model's cells, in HEADERS' order."""
    return [reporting.format_metric(column, result[column]) for column in COLUMNS]


def compare(
    models: list[str],
    dataset: str | None = None,
    out: str | Path | None = None,
    overwrite: bool = False,
    quiet: bool = False,
    **options,
) -> list[dict]:
    """Train each model with the same recipe (`options` are TrainConfig fields); write results.md, results.csv and
    compare.png to `out`; return one results dict per model (on every process, when torchrun started several)."""
    if not models:
        raise CnnlabError("compare needs at least one model name")
    for name in models:
        model_info(name)  # fail on a typo before any training starts
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
    for name in models:
        config = TrainConfig(**{**recipe.to_dict(), "model": name, "out": str(out / name)})
        rows.append(run(config, overwrite=True, quiet=quiet, data=data))
    if is_main:
        recipe_line = (
            f"{data.name}: {recipe.epochs} epochs, batch {recipe.batch_size}, {recipe.optimizer} "
            f"lr {recipe.lr:g}, seed {recipe.seed}"
        )
        write_outputs(rows, out, recipe_line)
    return rows


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
    reporting.write_text(out / "results.md", f"# Comparison on {recipe_line}\n\n{table}\n\n{summary}\n")
    plot_comparison(rows, out / "compare.png", title=recipe_line)
