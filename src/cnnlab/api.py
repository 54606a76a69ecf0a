"""The Python API: every CLI command is one of these functions.

    import cnnlab
    results = cnnlab.train("lenet5", dataset="digits", epochs=5)
    cnnlab.evaluate(results["run_dir"])
    cnnlab.predict(results["run_dir"], ["digit.png"])
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from cnnlab.deploy import optimize_for_inference
from cnnlab.errors import CnnlabError
from cnnlab.training.compare import compare
from cnnlab.training.config import TrainConfig
from cnnlab.training.leaderboard import list_runs
from cnnlab.training import runs
from cnnlab.training.runs import evaluate
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


def predict(
    run_dir: str | Path | None = None,
    images: Sequence[str | Path] = (),
    top_k: int = 5,
    *,
    model: str | None = None,
    weights: str | Path | None = None,
) -> list[dict]:
    """Top-k classes and probabilities of each image file: [{"image": path, "top": [(class, probability), ...]}].

    From a run directory's final weights, or, with `model` and `weights` (and no run_dir), from a torchvision
    ImageNet checkpoint you downloaded (.pth state dict or .safetensors) with torchvision's preprocessing for
    those weights and the 1000 ImageNet class names; see `cnnlab.imagenet`.
    """
    images = list(images)
    if not images:
        raise CnnlabError("predict needs at least one image file")
    if model is None and weights is None:
        if run_dir is None:
            raise CnnlabError("predict needs a run directory, or model= and weights= for an ImageNet checkpoint")
        return runs.predict(run_dir, images, top_k)
    if weights is None:
        raise CnnlabError(f"--model {model} needs --weights PATH, a torchvision ImageNet checkpoint (.pth or .safetensors)")
    if model is None:
        raise CnnlabError(f"--weights {weights} needs --model NAME, the architecture it holds (e.g. resnet50)")
    if run_dir is not None:
        raise CnnlabError("pass either a run directory or model= and weights=, not both")
    from cnnlab.imagenet import predict_imagenet  # torchvision's weight tables load only when used

    return predict_imagenet(model, weights, images, top_k)


def export(run_dir: str | Path, format: str = "onnx", *, optimize: bool = False, out: str | Path | None = None) -> dict:
    """Export a run's model as ONNX or TorchScript with a dynamic batch axis, to `out` (default
    RUN_DIR/model.onnx or RUN_DIR/model.torchscript.pt), and a sidecar OUT.json with the class names, input
    size and normalisation. `optimize` folds BatchNorm into the convs first (the outputs stay equal).
    Returns the sidecar's contents plus "path" and "sidecar"; see `cnnlab.deploy`.
    """
    from cnnlab.deploy import export as export_run

    return export_run(run_dir, format, optimize=optimize, out=out)


__all__ = ["train", "evaluate", "predict", "compare", "experiment", "list_runs", "export", "optimize_for_inference"]
