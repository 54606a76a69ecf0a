"""Each speedrun trick measured alone: resnet20 on Fashion-MNIST in a fixed wall-time budget, the dataset's
defaults plus one change per row, over several seeds; what the change buys in test accuracy and costs in time.

Why a wall-time budget rather than a fixed epoch count: a change that slows each step (fp32 instead of bf16, NCHW
instead of channels_last, a smaller batch) then pays for it in fewer epochs, as it does in `cnnlab speedrun`.
The table gives both sides: accuracy at equal wall time, and the images per second each row trained at.

Layout: two runs at a time, each pinned to its own core with one torch thread (`os.sched_setaffinity`), so a
2-core machine measures two rows side by side and a load spike hits the rows alike. Jobs are ordered seed by
seed, so the seeds of one row never run together. Every run's saved weights are evaluated twice: as they are, and
with test-time flips (the mean logits of each image and its mirror); the flips column and the seconds of that
pass are test-time flips' row. A row is a finding only where its difference from the baseline exceeds the sum of
the two standard deviations (`cnnlab.repeats.verdict`).

`--in-recipe` measures the candidates inside the speedrun's own recipe instead (#26: "inside the 10-minute recipe
itself"): the baseline is `cnnlab speedrun`'s choice for the budget on this CPU kind (its model and options), each
row one change on top of it (`IN_RECIPE`). Each run still has one core, half of what a speedrun gets.

With `--out DIR` every finished run is appended to DIR/records.jsonl as it ends, and a later call with the same
DIR skips the runs already there with the same options, budget and CPU kind: a measurement that takes hours
survives a kill and continues where it stopped.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from bench.common import markdown, write
from cnnlab.precision import cpu_kind

MODEL = "resnet20"
DATASET = "fashion-mnist"
BUDGET = 180.0  # wall seconds of training per run (the trainer's --time-budget), on one core
SEEDS = (0, 1, 2)
BASELINE = "baseline (defaults)"
# trick -> the TrainConfig options it changes from the Fashion-MNIST defaults (one-cycle Nesterov SGD to lr 0.05,
# batch 64, weight decay 5e-4, bf16 autocast where the CPU has it, channels_last, no augmentation)
TRICKS: dict[str, dict] = {
    BASELINE: {},
    "label smoothing 0.1": {"label_smoothing": 0.1},
    "flips": {"augment": True, "crop_padding": 0},
    "crops ±2 px + flips": {"augment": True, "crop_padding": 2},
    "EMA 0.999": {"ema": 0.999},
    "batch 128 (lr x2)": {"batch_size": 128},  # the lr rule scales the default lr with the batch
    "batch 256 (lr x4)": {"batch_size": 256},
    "NCHW (channels_last off)": {"channels_last": False},
    "fp32 (bf16 off)": {"precision": "fp32"},
    # new tricks (cnnlab.engine.lookahead, cnnlab.engine.whitening), measured in their own run beside a baseline
    "Lookahead k=5": {"lookahead": 5},  # the paper's k, with its alpha 0.5
    "whitening init": {"whiten": True},
    # airbench's tricks (#26's candidates), not yet measured: run with --airbench
    "alternating flips": {"augment": True, "crop_padding": 0, "alternate_flips": True},
    "Muon for the filters (lr 0.02)": {"optimizer": "muon"},  # --lr stays the SGD part's (BN, biases, head)
    "test-time shift 1 px": {"tta_shift": 1},
    "Dirac init": {"dirac": True},
    "progressive resizing from 20 px": {"progressive_resize": 20},
}
NEW_TRICKS = (BASELINE, "Lookahead k=5", "whitening init")
AIRBENCH_TRICKS = (
    BASELINE,
    "flips",
    "alternating flips",
    "Muon for the filters (lr 0.02)",
    "test-time shift 1 px",
    "Dirac init",
    "progressive resizing from 20 px",
)
# The candidates inside the speedrun's recipe: each row's options on top of speedrun's choice (model and recipe).
RECIPE_BASELINE = "baseline (speedrun recipe)"
IN_RECIPE: dict[str, dict] = {
    RECIPE_BASELINE: {},
    "alternating flips": {"alternate_flips": True},  # the recipe already flips (and crops)
    "Muon for the filters (lr 0.02)": {"optimizer": "muon"},
    "test-time shift 1 px": {"tta_shift": 1},
    "Dirac init": {"dirac": True},
    "progressive resizing from 20 px": {"progressive_resize": 20},
    "whitening init": {"whiten": True},
    "Lookahead k=5": {"lookahead": 5},
    "torch.compile": {"compile": True},
    "speednet (full width)": {"model": "speednet"},
}
RECORDS = "records.jsonl"  # in --out: one finished run per line
QUICK_IN_RECIPE = (RECIPE_BASELINE, "alternating flips", "Dirac init")

# A smoke run: four rows of SpeedNet-small on a 2,000-image slice, a few seconds each; its numbers mean nothing.
# (A network that takes any image size, so that --airbench's progressive-resizing row runs quick too.)
QUICK = dict(
    tricks=(BASELINE, "crops ±2 px + flips", "fp32 (bf16 off)", "whitening init"),
    budget=3.0,
    seeds=(0,),
    subset=2_000,
    model="speednet_small",
)


def _pin(cores) -> None:
    """Worker initializer: take one core from the queue and stay on it (one torch thread)."""
    import torch

    core = cores.get()
    if hasattr(os, "sched_setaffinity") and core is not None:
        os.sched_setaffinity(0, {core})
    torch.set_num_threads(1)


def train_one(trick: str, seed: int, budget: float, out: str, subset: int | None, options: dict) -> dict:
    """One run of one row (`options`: its model and TrainConfig options): train inside `budget` seconds, then
    evaluate the saved weights with test-time flips."""
    from cnnlab.data import load_dataset
    from cnnlab.engine.config import TrainConfig
    from cnnlab.engine.trainer import run
    from cnnlab.precision import autocast_dtype
    from cnnlab.workflows.speedrun import flip_test_accuracy

    data = load_dataset(DATASET)
    config = TrainConfig(
        dataset=DATASET,
        seed=seed,
        time_budget=budget,
        threads=1,
        device="cpu",
        out=out,
        train_subset=subset,
        **options,
    )
    results = run(config, quiet=True, data=data)
    start = time.perf_counter()
    flipped = flip_test_accuracy(out, data, autocast_dtype(config.precision, "cpu"))
    return {
        "trick": trick,
        "seed": seed,
        "core": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "test_accuracy": results["test_accuracy"],
        "flip_test_accuracy": flipped,
        "flip_seconds": round(time.perf_counter() - start, 2),
        "epochs": results["budget_plan"]["epochs_trained"],
        "images_per_second": results["train_images_per_second"],
        "wall_seconds": results["wall_seconds"],
        "precision": results["precision"],
        "batch_size": results["batch_size"],
        "lr": results["lr"],
        "options": options,
        "budget_seconds": budget,
        "subset": subset,
        "cpu_kind": cpu_kind(),
    }


def run_all(rows: dict[str, dict], seeds, budget: float, out: Path, subset: int | None, workers: int = 2) -> list[dict]:
    """Every (seed, row) run, `workers` at a time, each worker on its own core; `rows`: name -> model and options.
    Runs already in OUT/records.jsonl with the same options are reused; each new one is appended as it ends."""
    jobs = [(trick, seed) for seed in seeds for trick in rows]
    done = finished_runs(out, budget, subset, rows)
    todo = [(trick, seed) for trick, seed in jobs if (trick, seed) not in done]
    if len(todo) < len(jobs):
        print(f"  {len(jobs) - len(todo)} of {len(jobs)} runs already in {out / RECORDS}", flush=True)
    context = mp.get_context("spawn")  # fresh interpreters: no torch thread pool inherited from this one
    cores = context.Queue()
    usable = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    for i in range(workers):
        cores.put(usable[i] if i < len(usable) else None)
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_pin, initargs=(cores,)) as pool:
        futures = [
            pool.submit(train_one, trick, seed, budget, str(out / f"{slug(trick)}-seed{seed}"), subset, rows[trick])
            for trick, seed in todo
        ]
        for future in as_completed(futures):
            r = future.result()
            done[(r["trick"], r["seed"])] = r
            with open(out / RECORDS, "a", encoding="utf-8") as handle:  # one line each: a kill loses no finished run
                handle.write(json.dumps(r) + "\n")
            print(f"  {r['trick']}, seed {r['seed']}: {r['test_accuracy']:.2%} ({r['epochs']:.2f} epochs)", flush=True)
    return [done[job] for job in jobs]


def finished_runs(out: Path, budget: float, subset: int | None, rows: dict[str, dict]) -> dict[tuple, dict]:
    """(row, seed) -> record of the runs in OUT/records.jsonl made with the same options, budget, subset and CPU
    kind as asked now (a line that does not parse, from a write the kill cut short, is skipped)."""
    path, found = out / RECORDS, {}
    lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
    for line in lines:
        try:
            r = json.loads(line)
            same = (r["options"], r["budget_seconds"], r["subset"], r["cpu_kind"])
        except (json.JSONDecodeError, KeyError, TypeError):
            continue
        if r["trick"] in rows and same == (rows[r["trick"]], budget, subset, cpu_kind()):
            found[(r["trick"], r["seed"])] = r
    return found


def slug(trick: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in trick.lower()).strip("-")


def summarise(records: list[dict], tricks) -> list[dict]:
    """Per row: mean ± std of accuracy (as trained and with flips), epochs and images/s, and the verdict against
    the baseline (the first row) on accuracy."""
    from cnnlab.repeats import Claim, Spread, format_spread, verdict

    rows = []
    for trick in tricks:
        mine = [r for r in records if r["trick"] == trick]
        rows.append(
            {"trick": trick}
            | {
                key: Spread.of([r[key] for r in mine])
                for key in ("test_accuracy", "flip_test_accuracy", "epochs", "images_per_second", "flip_seconds")
            }
        )
    base = rows[0]
    for row in rows:
        row["delta"] = row["test_accuracy"].mean - base["test_accuracy"].mean
        row["flip_delta"] = row["flip_test_accuracy"].mean - row["test_accuracy"].mean
        row["speed"] = row["images_per_second"].mean / base["images_per_second"].mean
        if row is not base:
            claim = Claim(
                f"{row['trick']} beats the baseline", "test_accuracy", {"trick": row["trick"]}, {"trick": base["trick"]}
            )
            row["verdict"] = verdict(claim, rows)[0]
        row["shown"] = {k: format_spread(k, v) for k, v in row.items() if isinstance(v, Spread)}
    return rows


def table(rows: list[dict]) -> str:
    header = [
        "trick",
        "test accuracy",
        "Δ vs baseline",
        "verdict",
        "with test-time flips",
        "flips Δ (s)",
        "epochs in budget",
        "images/s",
        "speed vs baseline",
    ]
    body = [
        [
            row["trick"],
            row["shown"]["test_accuracy"],
            "-" if "verdict" not in row else f"{row['delta'] * 100:+.2f}",
            row.get("verdict", "-"),
            row["shown"]["flip_test_accuracy"],
            f"{row['flip_delta'] * 100:+.2f} ({row['flip_seconds'].mean:.1f} s)",
            f"{row['epochs'].mean:.2f} ± {row['epochs'].std:.2f}",
            f"{row['images_per_second'].mean:,.0f} ± {row['images_per_second'].std:,.0f}",
            f"{row['speed']:.2f}x",
        ]
        for row in rows
    ]
    return markdown(header, body)


def main(
    quick: bool = False,
    tricks=None,
    seeds=None,
    budget: float | None = None,
    out: Path | None = None,
    name: str = "tricks",
    in_recipe: bool = False,
) -> dict:
    """Train every (row, seed), print the table, and record it as bench/results/NAME.json (`tricks-quick` when
    `quick`). `in_recipe`: the rows of `IN_RECIPE` on top of the speedrun's choice for the budget."""
    seeds = tuple(seeds or (QUICK["seeds"] if quick else SEEDS))
    budget = budget or (QUICK["budget"] if quick else BUDGET)
    subset = QUICK["subset"] if quick else None
    base, rows = row_options(quick, tricks, budget, in_recipe)
    with tempfile.TemporaryDirectory(prefix="cnnlab-tricks-") as scratch:
        where = Path(out or scratch)
        where.mkdir(parents=True, exist_ok=True)
        records = run_all(rows, seeds, budget, where, subset)
    summary = summarise(records, tuple(rows))
    text = table(summary)
    print(text)
    record = {
        "quick": quick,
        "in_recipe": in_recipe,
        "model": base["model"],
        "base": base,
        "dataset": DATASET,
        "budget_seconds": budget,
        "threads_per_run": 1,
        "runs_side_by_side": 2,
        "seeds": list(seeds),
        "tricks": rows,
        "runs": records,
        "table": text,
    }
    write(f"{name}-quick" if quick else name, record)
    return record


def row_options(quick: bool, tricks, budget: float, in_recipe: bool) -> tuple[dict, dict[str, dict]]:
    """(the baseline's model and options, row name -> its model and options)."""
    if in_recipe:
        from cnnlab.workflows.speedrun import choose

        # a quick run smoke-tests the 10-minute recipe's rows at its own few seconds
        choice = choose(DATASET, 600.0 if quick else budget, cpu_kind())
        base, declared = {"model": choice.model, **choice.recipe}, IN_RECIPE
        names = tricks or (QUICK_IN_RECIPE if quick else IN_RECIPE)
    else:
        base, declared = {"model": QUICK["model"] if quick else MODEL}, TRICKS
        names = tricks or (QUICK["tricks"] if quick else TRICKS)
    unknown = [n for n in names if n not in declared]
    if unknown:
        raise SystemExit(f"not a row {'of --in-recipe ' if in_recipe else ''}here: {', '.join(unknown)}")
    return base, {n: base | declared[n] for n in names}


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(prog="python -m bench.tricks", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--budget", type=float, help=f"seconds of training per run (default {BUDGET:g})")
    parser.add_argument("--seeds", type=lambda s: tuple(int(x) for x in s.split(",")), help="default 0,1,2")
    parser.add_argument("--tricks", nargs="+", choices=list(TRICKS | IN_RECIPE), help="default: every row")
    parser.add_argument("--out", type=Path, help="keep the run directories and records.jsonl here (and resume)")
    parser.add_argument("--name", default="tricks", help="record as bench/results/NAME.json (default tricks)")
    parser.add_argument("--new", action="store_true", help=f"only the new tricks' rows: {', '.join(NEW_TRICKS)}")
    parser.add_argument("--airbench", action="store_true", help=f"airbench's rows: {', '.join(AIRBENCH_TRICKS)}")
    parser.add_argument(
        "--in-recipe", action="store_true", help=f"on top of the speedrun recipe: {', '.join(IN_RECIPE)}"
    )
    args = parser.parse_args()
    chosen = NEW_TRICKS if args.new else AIRBENCH_TRICKS if args.airbench else args.tricks
    main(args.quick, chosen, args.seeds, args.budget, args.out, args.name, args.in_recipe)
