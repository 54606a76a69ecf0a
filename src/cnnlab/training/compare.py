"""Train several models with one recipe on one dataset and tabulate them: the tutorials' comparison tables."""

from __future__ import annotations

import csv
import io
from datetime import datetime
from pathlib import Path

from cnnlab.data import load_dataset
from cnnlab.errors import CnnlabError
from cnnlab.registry import model_info
from cnnlab.training import checkpoint, distributed
from cnnlab.training.config import TrainConfig, resolve
from cnnlab.training.plots import plot_comparison
from cnnlab.training.trainer import prepare_run_dir, run

COLUMNS = ("model", "params", "macs", "test_accuracy", "train_seconds", "train_images_per_second")


def format_row(r: dict) -> list[str]:
    return [r["model"], f"{r['params']:,}", f"{r['macs'] / 1e6:.2f}M", f"{100 * r['test_accuracy']:.2f}%",
            f"{r['train_seconds']:.1f}s", f"{r['train_images_per_second']:,.0f}"]


HEADERS = ["model", "params", "MACs/image", "test accuracy", "train time", "train images/s"]


def compare(models: list[str], dataset: str = "digits", out: str | Path | None = None, overwrite: bool = False,
            quiet: bool = False, **options) -> list[dict]:
    """Train each model with the same recipe (`options` are TrainConfig fields); write results.md, results.csv and
    compare.png to `out`; return one results dict per model (on every process, when torchrun started several)."""
    if not models:
        raise CnnlabError("compare needs at least one model name")
    for name in models:
        model_info(name)  # fail on a typo before any training starts
    recipe = resolve(TrainConfig(model=models[0], dataset=dataset, **options))
    out = Path(out) if out else Path("runs") / f"compare-{dataset.replace(':', '-').replace('/', '_')}-{datetime.now():%Y%m%d-%H%M%S}"
    if (out / "results.csv").exists() and not overwrite:
        raise CnnlabError(f"{out} already holds a comparison; pass --overwrite to replace it")
    # Under torchrun every process trains every model together (each run is one DDP run); process 0 alone writes.
    is_main = distributed.rank() == 0
    if is_main:
        prepare_run_dir(out, overwrite=True)
    data = load_dataset(dataset, recipe.data_dir)
    rows = []
    for name in models:
        config = TrainConfig(**{**recipe.to_dict(), "model": name, "out": str(out / name)})
        rows.append(run(config, overwrite=True, quiet=quiet, data=data))
    if is_main:
        write_outputs(rows, out, f"{data.name}: {recipe.epochs} epochs, batch {recipe.batch_size}, {recipe.optimizer} lr {recipe.lr:g}, seed {recipe.seed}")
    return rows


def write_outputs(rows: list[dict], out: Path, recipe_line: str) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    checkpoint.atomic_write(out / "results.csv", lambda handle: handle.write(buffer.getvalue().encode()))
    best = max(rows, key=lambda r: r["test_accuracy"])
    fastest = max(rows, key=lambda r: r["train_images_per_second"])
    lines = [f"# Comparison on {recipe_line}", "", "| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    lines += ["| " + " | ".join(format_row(r)) + " |" for r in rows]
    lines += ["", f"Best test accuracy: {best['model']} ({best['test_accuracy']:.2%}). "
              f"Fastest to train: {fastest['model']} ({fastest['train_images_per_second']:,.0f} images/s).", ""]
    checkpoint.atomic_write(out / "results.md", lambda handle: handle.write("\n".join(lines).encode()))
    plot_comparison(rows, out / "compare.png", title=recipe_line)
