"""`cnnlab speedrun`: the model and recipe we have measured best for a dataset, a wall-time budget and this kind of
CPU, trained with `--time-budget`; the test accuracy with and without test-time flips, over one or more seeds.

The choice is a table (`CHOICES`), not a search: each row names the dataset, the CPU kind, the budget range, the
model and recipe, and what has been measured of it. docs/performance.md ("Candidates against budgets") mirrors it.
A row whose `measured` says "not yet measured" is our best guess, carried over from the nearest measured row.

The budget is each seed's whole wall time: for the first seed from the process's start (imports and loading the
data included), for later ones from the end of the one before. The trainer gets what is left of it less the
test-time-flips pass that follows training, priced before training on a slice of the test split.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from cnnlab.data import load_dataset
from cnnlab.engine.config import TrainConfig
from cnnlab.engine.trainer import run
from cnnlab.errors import CnnlabError
from cnnlab.files import write_json
from cnnlab.inference.evaluation import evaluate_arrays
from cnnlab.inference.prediction import load_run
from cnnlab.precision import autocast_dtype, cpu_kind  # noqa: F401 (cpu_kind: kept importable here)
from cnnlab.repeats import Spread, parse_seeds  # noqa: F401 (parse_seeds kept importable here, where the speedrun API was)
from cnnlab.reporting import timestamped_dir

CPU_KINDS = ("amx-bf16", "avx512-bf16", "arm-bf16", "no-native-bf16")
FLIP_SLICE = 256  # test images timed to price the test-time-flips pass
FLIP_RESERVE = 1.5  # safety factor on that price
SAPPHIRE = "Xeon Sapphire Rapids (AMX-BF16), 2 vCPU"
EPYC = "AMD EPYC Zen 4 (AVX512-BF16, no AMX), 2 vCPU"


@dataclass(frozen=True)
class Choice:
    """One row of the table: for `dataset` on `cpu` (None: any kind) with a budget in [low, high) seconds."""

    dataset: str
    low: float
    high: float
    model: str
    recipe: dict = field(default_factory=dict)  # TrainConfig options on top of the dataset's defaults
    measured: dict = field(default_factory=dict)  # CPU kind -> what was measured there
    cpu: str | None = None

    def status(self, kind: str) -> str:
        return self.measured.get(kind, "not yet measured")


_AIRBENCH_EXTRAS = dict(augment=True, crop_padding=2, label_smoothing=0.1, ema=0.999)  # bench/time_to_accuracy.py
CHOICES: tuple[Choice, ...] = (
    Choice(
        "fashion-mnist",
        0,
        240,
        "resnet20",
        {},
        {"amx-bf16": f"{SAPPHIRE}, 1 seed, fixed epochs: 3 epochs 92.21% in 117 s, 5 epochs 92.79% in 191 s"},
    ),
    Choice(
        "fashion-mnist",
        240,
        1200,
        "speednet_small",
        _AIRBENCH_EXTRAS,
        {
            "amx-bf16": f"{SAPPHIRE}, `speedrun --budget 10m`, 3 seeds: 94.14% ± 0.11%, 94.30% ± 0.13% with flips, "
            "in 569-576 s; resnet20 with the same recipe: 93.59% ± 0.09%, 93.79% ± 0.16% with flips",
            "avx512-bf16": f"{EPYC}, `speedrun --budget 10m`, 3 seeds: 93.88% ± 0.12%, 94.12% ± 0.18% with flips, "
            "in 555-572 s: 0.12 points under 94.0% without flips",
        },
    ),
    Choice(
        "fashion-mnist",
        1200,
        math.inf,
        "speednet",
        _AIRBENCH_EXTRAS,
        {
            "amx-bf16": f"{SAPPHIRE}, `speedrun --budget 20m`, 3 seeds: 94.68% ± 0.28%, 94.90% ± 0.19% with flips, "
            "in 1,100-1,161 s; resnet20 with the same recipe: 94.48% ± 0.12%, 94.65% ± 0.04% with flips"
        },
    ),
    Choice(
        "digits",
        0,
        math.inf,
        "lenet5",
        {},
        {
            "amx-bf16": "the same Xeon shared with other jobs, --time-budget 15s, 1 seed: lenet5 97.50% (13.4 epochs), "
            "simple_cnn 97.78% (8.0 epochs), resnet20 31.94% (1 epoch)"
        },
    ),
    Choice("cifar10", 0, math.inf, "resnet20", {}, {}),
    Choice("cifar100", 0, math.inf, "resnet20", {}, {}),
    Choice("imagefolder", 0, math.inf, "resnet20", dict(augment=True), {}),
)
SAME_RECIPE_AS = {"mnist": "fashion-mnist", "kmnist": "fashion-mnist"}  # 28x28 grayscale, not measured on their own


def budget_range(choice: Choice) -> str:
    def shown(seconds: float) -> str:
        return f"{seconds / 60:g} min"

    if choice.high == math.inf:
        return f"≥ {shown(choice.low)}" if choice.low else "any"
    return f"< {shown(choice.high)}" if not choice.low else f"{shown(choice.low)} to < {shown(choice.high)}"


def table_markdown() -> str:
    """The table as docs/performance.md shows it (a test checks that the docs hold exactly this)."""
    header = (
        "| dataset | budget | model | recipe on top of the dataset's defaults | measured on | not yet measured on |"
    )
    lines = [header, "|---|---|---|---|---|---|"]
    for choice in CHOICES:
        recipe = ", ".join(f"{k}={v}" for k, v in choice.recipe.items()) or "the defaults"
        measured = "; ".join(f"{kind}: {what}" for kind, what in choice.measured.items()) or "-"
        pending = ", ".join(kind for kind in CPU_KINDS if kind not in choice.measured)
        lines.append(
            f"| {choice.dataset} | {budget_range(choice)} | {choice.model} | {recipe} | {measured} | {pending} |"
        )
    return "\n".join(lines)


def choose(dataset: str, budget: float, kind: str) -> Choice:
    """The table's row for `dataset` (imagefolder:PATH as imagefolder), `budget` seconds and CPU `kind`."""
    base = dataset.split(":", 1)[0]
    base = SAME_RECIPE_AS.get(base, base)
    for choice in CHOICES:
        if choice.dataset == base and choice.cpu in (None, kind) and choice.low <= budget < choice.high:
            return choice
    known = sorted({c.dataset for c in CHOICES} | set(SAME_RECIPE_AS))
    raise CnnlabError(
        f"speedrun has no choice for dataset '{dataset}'; it knows {', '.join(known)} "
        "(imagefolder:PATH for a folder of class folders)"
    )


def process_started() -> float:
    """When this process started, on `time.perf_counter`'s scale (Linux; elsewhere: now)."""
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        import os

        age = uptime - ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        age = 0.0
    return time.perf_counter() - max(age, 0.0)


def flip_pass_seconds(choice: Choice, data, dtype) -> float:
    """The price of one test-time-flips pass over the test split: a fresh model of the choice, timed on a slice."""
    from cnnlab.building import build_model

    config = TrainConfig(model=choice.model, dataset=data.name)
    model = build_model(config, data.num_classes, data.in_chans, data.image_size).to(memory_format=torch.channels_last)
    images, labels = data.test_images[:FLIP_SLICE], data.test_labels[:FLIP_SLICE]
    evaluate_arrays(model, images[:16], labels[:16], data, dtype=dtype, flip_tta=True)  # one-off set-up, untimed
    start = time.perf_counter()
    evaluate_arrays(model, images, labels, data, dtype=dtype, flip_tta=True)
    return (time.perf_counter() - start) / max(len(images), 1) * len(data.test_images)


# ---------------------------------------------------------------------------------------------------- the run
def speedrun(
    dataset: str,
    budget: float,
    seeds: tuple[int, ...] = (0,),
    *,
    out: str | Path | None = None,
    data_dir: str | None = None,
    overwrite: bool = False,
    quiet: bool = False,
    started: float | None = None,
) -> dict:
    """Train the table's choice for `dataset`, `budget` seconds and this CPU once per seed, each inside the budget;
    returns (and writes to OUT/speedrun.json) the choice, each seed's run and the accuracies' mean and spread.
    `started`: when the budget's clock started (`time.perf_counter`; default: this process's start)."""
    started = process_started() if started is None else started
    kind = cpu_kind()
    choice = choose(dataset, budget, kind)
    if not seeds or len(set(seeds)) != len(seeds):
        raise CnnlabError(f"--seeds needs distinct seeds, got {list(seeds)}")
    out = Path(out) if out is not None else timestamped_dir("speedrun", dataset)
    data = load_dataset(dataset, data_dir)
    runs, seed_started = [], started
    for seed in seeds:
        runs.append(
            train_seed(
                choice,
                data,
                dataset,
                seed,
                seed_started,
                budget,
                out / f"seed-{seed}",
                data_dir=data_dir,
                overwrite=overwrite,
                quiet=quiet,
            )
        )
        seed_started = time.perf_counter()
    record = {
        "dataset": dataset,
        "budget_seconds": budget,
        "cpu_kind": kind,
        "model": choice.model,
        "recipe": choice.recipe,
        "measured": choice.status(kind),
        "seeds": list(seeds),
        "runs": runs,
        "test_accuracy": spread([r["test_accuracy"] for r in runs]),
        "flip_test_accuracy": spread([r["flip_test_accuracy"] for r in runs]) if data.hflip else None,
        "within_budget": all(r["within_budget"] for r in runs),
        "out": str(out),
    }
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "speedrun.json", record)
    return record


def train_seed(
    choice: Choice,
    data,
    dataset: str,
    seed: int,
    started: float,
    budget: float,
    run_dir: Path,
    *,
    data_dir: str | None,
    overwrite: bool,
    quiet: bool,
) -> dict:
    """One seed: train with what is left of the budget less the flips pass, then that pass."""
    dtype = autocast_dtype("auto", "cpu")
    reserve = FLIP_RESERVE * flip_pass_seconds(choice, data, dtype) if data.hflip else 0.0
    left = started + budget - time.perf_counter() - reserve
    if left <= 1.0:
        raise CnnlabError(
            f"a budget of {budget:g} s is used up before training starts ({budget - left:.1f} s for "
            "start-up, loading the data and the test-time-flips pass): give a larger --budget"
        )
    config = TrainConfig(
        model=choice.model,
        dataset=dataset,
        seed=seed,
        time_budget=left,
        out=str(run_dir),
        device="cpu",
        data_dir=data_dir,
        **choice.recipe,
    )
    results = run(config, overwrite=overwrite, quiet=quiet, data=data)
    flipped = flip_test_accuracy(run_dir, data, dtype) if data.hflip else None
    wall = time.perf_counter() - started
    return {
        "seed": seed,
        "run_dir": str(run_dir),
        "test_accuracy": results["test_accuracy"],
        "flip_test_accuracy": flipped,
        "epochs": results["budget_plan"]["epochs_trained"],
        "train_budget_seconds": round(left, 2),
        "wall_seconds": round(wall, 2),
        "within_budget": wall <= budget,
    }


def flip_test_accuracy(run_dir: Path | str, data, dtype) -> float:
    """The test accuracy of a run's saved (evaluated) weights with test-time flips: each test image's logits
    averaged with its mirror's."""
    model = load_run(run_dir).model
    return evaluate_arrays(model, data.test_images, data.test_labels, data, dtype=dtype, flip_tta=True)[1]


def spread(values: list[float]) -> dict:
    """Mean, sample standard deviation (0 for one value) and n, as speedrun.json records them (cnnlab.repeats)."""
    measured = Spread.of(values)
    return {"mean": measured.mean, "std": measured.std, "n": measured.n}


def summary_lines(record: dict) -> list[str]:
    """The report: the choice, then the accuracies (mean ± std over seeds when several)."""

    def shown(stats: dict | None) -> str:
        if stats is None:
            return "n/a (mirrored images change this dataset's labels)"
        if stats["n"] == 1:
            return f"{stats['mean']:.2%}"
        return f"{stats['mean']:.2%} ± {stats['std']:.2%} (n={stats['n']})"

    runs = record["runs"]
    walls = ", ".join(f"{r['wall_seconds']:.0f} s" for r in runs)
    return [
        f"{record['model']} on {record['dataset']} within {record['budget_seconds']:g} s on a {record['cpu_kind']} "
        f"CPU ({record['measured']})",
        f"test accuracy {shown(record['test_accuracy'])}; with test-time flips {shown(record['flip_test_accuracy'])}",
        f"wall time per seed: {walls} ({'all within' if record['within_budget'] else 'NOT all within'} the budget); "
        f"wrote {record['out']}/speedrun.json",
    ]
