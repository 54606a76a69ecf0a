"""The Python API: every CLI command is one of these functions.

    import cnnlab
    results = cnnlab.train("lenet5", dataset="digits", epochs=5)
    cnnlab.evaluate(results["run_dir"])
    cnnlab.predict(results["run_dir"], ["digit.png"])
"""

from __future__ import annotations

from pathlib import Path

from cnnlab.training.compare import compare
from cnnlab.training.config import TrainConfig
from cnnlab.training.runs import evaluate, predict
from cnnlab.training.trainer import run


def train(
    model: str,
    dataset: str = "digits",
    *,
    resume: str | Path | None = None,
    overwrite: bool = False,
    quiet: bool = False,
    **options,
) -> dict:
    """Train `model` on `dataset` and return the results dict (also written to RUN_DIR/results.json).

    `options` are `TrainConfig` fields (epochs, batch_size, lr, optimizer, schedule, weight_decay, label_smoothing,
    augment, train_subset, seed, precision, out, data_dir, model_kwargs, ...); those left out take the dataset's
    defaults. `resume=RUN_DIR` continues an interrupted run from its last checkpoint.
    """
    return run(TrainConfig(model=model, dataset=dataset, **options), resume=resume, overwrite=overwrite, quiet=quiet)


def experiment(name: str, **options):
    """Run the experiment `name` (`cnnlab.experiments.list_experiments()`) and return its ExperimentResult; it
    writes results.md, results.csv, config.json and its plots to `out` (default runs/experiment-NAME-<time>).

    `options`: dataset, epochs, quick, out, seed, data_dir, as the `cnnlab experiment` flags.
    """
    from cnnlab.experiments import run_experiment  # matplotlib and the experiments load only when one runs

    return run_experiment(name, **options)


__all__ = ["train", "evaluate", "predict", "compare", "experiment"]
