"""The tutorials' two comparison tables, from real training with one recipe.

[Ch14] "Comparing Our Three Architectures": the Section-1 CNN, LeNet-5 and SimpleResNet (MNIST claims).
[L2R] "Build It", step 5: LeNet-5, MiniVGG and TinyResNet ("three eras", CIFAR-10 claims).

Each distinct model trains once through the project's trainer (LeNet-5 is in both tables); each table is then
written by `cnnlab.workflows.comparison.write_outputs` into its own folder (results.md, results.csv, compare.png), the
same files `cnnlab compare` writes, and the experiment's table puts both side by side with the tutorial's numbers.
"""

from __future__ import annotations

from cnnlab.data import load_dataset
from cnnlab.experiments import register_experiment
from cnnlab.experiments.common import ExperimentOptions, ExperimentResult, train
from cnnlab.repeats import Claim
from cnnlab.workflows.comparison import write_outputs

QUICK_TRAIN_SUBSET = 512  # digits images for --quick: one epoch of 7 steps per model

# (folder, source, [(model, tutorial's name, tutorial's parameter count, tutorial's accuracy claim)])
TABLES = [
    (
        "ch14-three-architectures",
        "[Ch14] Comparing Our Three Architectures",
        [
            ("simple_cnn", "Section-1 CNN", "206,922", "~99% (MNIST)"),
            ("lenet5", "LeNet-5", "44,426", "~98.5% (MNIST)"),
            ("simple_resnet", "SimpleResNet", "56,170", "~99.2% (MNIST)"),
        ],
    ),
    (
        "l2r-three-eras",
        "[L2R] Build It, step 5",
        [
            ("lenet5", "LeNet-5", "61,706 (1x32x32)", "~60% (CIFAR-10)"),
            ("mini_vgg", "MiniVGG", "~290k (3x32x32)", "~89% (CIFAR-10)"),
            ("tiny_resnet", "TinyResNet", "~2.8M (3x32x32)", "~93% (CIFAR-10)"),
        ],
    ),
]
# The tutorials' orderings, (table index, higher model, lower model): each table's accuracy column ranks them so.
ORDERINGS = [
    (0, "simple_resnet", "lenet5"),  # ~99.2% against ~98.5%
    (0, "simple_cnn", "lenet5"),  # ~99% against ~98.5%
    (1, "mini_vgg", "lenet5"),  # ~89% against ~60%
    (1, "tiny_resnet", "mini_vgg"),  # ~93% against ~89%
]
COLUMNS = [
    "table",
    "model",
    "params",
    "MACs/image",
    "test accuracy (%)",
    "train time (s)",
    "train images/s",
    "tutorial params",
    "tutorial accuracy",
]


def row_selector(table: int, model: str) -> dict:
    """The one row of `model` in table `table` (LeNet-5 has a row in both)."""
    _, source, entries = TABLES[table]
    name = next(name for key, name, *_ in entries if key == model)
    return {"table": source, "model": f"{name} ({model})"}


def claims() -> list[Claim]:
    """Each table's accuracy ordering as the tutorial states it."""
    found = []
    for table, higher, lower in ORDERINGS:
        above, below = row_selector(table, higher), row_selector(table, lower)
        tag = TABLES[table][1].split("]")[0] + "]"  # "[Ch14]": the selectors name the whole table
        found.append(
            Claim(
                f"{tag} {above['model']} scores a higher test accuracy than {below['model']}",
                "test accuracy (%)",
                above,
                below,
            )
        )
    return found


@register_experiment(
    "compare", "the tutorials' two comparison tables (CNN/LeNet-5/SimpleResNet, LeNet-5/MiniVGG/TinyResNet)"
)
def run(options: ExperimentOptions) -> ExperimentResult:
    data = load_dataset(options.dataset_or_default(), options.data_dir)
    recipe = dict(epochs=options.epochs_or(1, 10))
    if options.quick:
        recipe["train_subset"] = QUICK_TRAIN_SUBSET
    models = list(dict.fromkeys(model for _, _, entries in TABLES for model, *_ in entries))
    results = {model: train(options, data, model, f"runs/{model}", **recipe) for model in models}

    first = results[models[0]]
    subset = f", first {QUICK_TRAIN_SUBSET} training images" if options.quick else ""
    recipe_line = (
        f"{data.name}: {first['epochs']} epoch(s), batch {first['batch_size']}, {first['optimizer']} "
        f"lr {first['lr']:g}, seed {first['seed']}{subset}"
    )
    rows, plots = [], []
    for folder, source, entries in TABLES:
        table_results = [results[model] for model, *_ in entries]
        (options.out / folder).mkdir(parents=True, exist_ok=True)
        write_outputs(table_results, options.out / folder, f"{source}; {recipe_line}")
        plots.append(f"{folder}/compare.png")
        for (model, name, tutorial_params, tutorial_accuracy), r in zip(entries, table_results):
            rows.append(
                {
                    "table": source,
                    "model": f"{name} ({model})",
                    "params": r["params"],
                    "MACs/image": r["macs"],
                    "test accuracy (%)": round(100 * r["test_accuracy"], 2),
                    "train time (s)": round(r["train_seconds"], 1),
                    "train images/s": round(r["train_images_per_second"]),
                    "tutorial params": tutorial_params,
                    "tutorial accuracy": tutorial_accuracy,
                }
            )

    best = max(models, key=lambda m: results[m]["test_accuracy"])
    fastest = max(models, key=lambda m: results[m]["train_images_per_second"])
    findings = [
        f"Trained with one recipe ({recipe_line}), {best} scored the best test accuracy "
        f"({results[best]['test_accuracy']:.2%}) and {fastest} trained fastest "
        f"({results[fastest]['train_images_per_second']:,.0f} images/s).",
        f"Parameters span {min(r['params'] for r in results.values()):,} to "
        f"{max(r['params'] for r in results.values()):,}; the tutorials' accuracy claims are for MNIST and CIFAR-10, "
        "so they compare directly only when run on those sets.",
    ]
    if options.quick:
        findings.append("Quick mode trains one epoch on a digits subset: a smoke test, not a measurement.")
    return ExperimentResult(
        title=f"The tutorials' comparison tables on {data.name}",
        columns=COLUMNS,
        rows=rows,
        findings=findings,
        claims=claims(),
        plots=plots,
        config={
            "recipe": recipe_line,
            "models": models,
            "tables": [t[1] for t in TABLES],
            "run_dirs": {m: r["run_dir"] for m, r in results.items()},
        },
    )
