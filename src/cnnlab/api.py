"""The Python API: every CLI command is one of these functions.

import cnnlab
results = cnnlab.train("lenet5", dataset="digits", epochs=5)
cnnlab.evaluate(results["run_dir"])
cnnlab.predict(results["run_dir"], ["digit.png"])
cnnlab.summary("my_cnn.py:MyCNN", "1x28x28")  # cnnlab.measure.summarize

In a notebook the results show themselves: a run as its numbers, curves and epochs (`cnnlab.display.RunResult`,
still the results dict), a comparison as its table and plot, a summary as its layer table.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from pathlib import Path

from torch import nn

from cnnlab.deploy import optimize_for_inference
from cnnlab.display import Comparison, RunResult, SeedsResult, comparison_out
from cnnlab.engine.config import LR_FIND, make_config, resume_config
from cnnlab.engine.trainer import run
from cnnlab.errors import CnnlabError, unknown_name_error
from cnnlab.inference import runtime as runtimes
from cnnlab.lrfind import lr_find, with_found_lr  # noqa: F401 (lr_find: the API of cnnlab lr-find)
from cnnlab.models import trust
from cnnlab.options.commands import command
from cnnlab.repeats import pick_seeds
from cnnlab.rundir import RunDir
from cnnlab.workflows import comparison
from cnnlab.workflows.leaderboard import list_runs
from cnnlab.workflows.seeds import train_seeds

# The defaults of the keywords below are the CLI's, read from the one declaration of each command's options.
_PREDICT, _EXPORT, _EVAL = command("predict"), command("export"), command("eval")


def _trusting(function: Callable) -> Callable:
    """`trust_code=True`: the runs the call loads may run the network code they hold (the CLI's --trust-code)."""

    @functools.wraps(function)
    def call(*args, trust_code: bool = False, **kwargs):
        with trust.trusting(trust_code):
            return function(*args, **kwargs)

    return call


@_trusting
def evaluate(
    run_dir: str | Path,
    data_dir: str | None = None,
    tta: bool | None = None,
    *,
    tta_shift: int | None = None,
    runtime: str = _EVAL.option("runtime").default,
) -> dict:
    """Test accuracy and per-class accuracy of a run; writes eval.json and confusion.png into the run directory.
    tta: average each image's logits with its mirror's; tta_shift: also with views moved that many pixels
    (test-time translations, 0 = off); None: each as the run was trained.

    runtime="auto" (the default) runs the model in whichever of torch and onnxruntime is faster for it on this CPU
    at evaluation's batch size, measured once and cached; the result's "runtime" and "runtime_reason" say which
    and why. See `cnnlab.inference.runtime`.
    """
    return runtimes.evaluate(run_dir, data_dir, tta, runtime, tta_shift=tta_shift)


def own_model(model) -> tuple[str, nn.Module | None]:
    """What `train` was given, as the recipe's model text and perhaps a module to train: a string as it is; a
    module, a class or a function defined in a .py file as the reference "that/file.py:Name" (so the run keeps a
    copy of that file and rebuilds from it: a module trains as given, and is rebuilt by calling its class with the
    arguments cnnlab passes)."""
    if isinstance(model, str):
        return model, None
    given = model if isinstance(model, nn.Module) else None
    factory = type(model) if given is not None else model
    if not callable(factory):
        raise CnnlabError(f"train takes a model name, a spec, 'file.py:Name', an nn.Module or a class; got {model!r}")
    try:
        source = inspect.getsourcefile(factory)
    except TypeError:
        source = None
    name = factory.__qualname__
    if source is None or not source.endswith(".py") or "<" in name or not Path(source).is_file():
        raise CnnlabError(
            f"{name} is not defined at the top of a .py file, so a run could not rebuild it: move it into a file "
            "and pass 'file.py:Name' (a notebook's cells are not a file)"
        )
    return f"{source}:{name}", given


@_trusting
def train(
    model: str | nn.Module | Callable,
    dataset: str | None = None,
    *,
    resume: str | Path | None = None,
    overwrite: bool = False,
    quiet: bool = False,
    seeds: Sequence[int] | str | None = None,
    repeats: int | None = None,
    **options,
) -> dict:
    """Train `model` on `dataset` (default digits) and return the results dict (also written to RUN_DIR/results.json)
    as a `RunResult`, which a notebook shows as the run's numbers, curves and epochs.

    `model`: a registered name, your network in code ("my_cnn.py:MyCNN", "mypkg.nets:MyCNN"), a layer spec, or
    the module itself (an instance, or its class or builder function, from a .py file: see `own_model`).
    `trust_code=True` lets `resume` run the network code of a run you did not train here.

    `options` are `TrainConfig` fields (`cnnlab.engine.config.options()` lists them: epochs, batch_size, lr,
    optimizer, schedule, weight_decay, augment, train_subset, seed, precision, out, data_dir, model_kwargs, ...);
    those left out take the dataset's defaults. A misspelt option is a CnnlabError naming the closest.

    `resume=RUN_DIR` continues a run from its last checkpoint with the run's own config. Options given with it must
    equal the run's values, except the resumable ones (device, threads, data_dir, checkpoint_every,
    keep_checkpoints, compile) and a larger `epochs` for a constant schedule; anything else raises
    ResumeConflictError (see `resume_config`).

    `seeds` ([0, 1, 2] or "0,1,2") or `repeats` (N seeds counting up from `seed`, default 0): one run per seed in
    OUT/seed-N (OUT is `out`, by default named as a single run's folder), and OUT/seeds.md, seeds.json and
    seeds.png with each measured number as mean ± std and n; returns seeds.json's contents (see
    `cnnlab.workflows.seeds`).
    """
    model, given = own_model(model)
    if given is not None:
        if resume is not None or seeds is not None or repeats is not None:
            raise CnnlabError("a module instance trains once: pass its class or 'file.py:Name' to resume or repeat")
        return RunResult(run(make_config(model, dataset, **options), overwrite=overwrite, quiet=quiet, model=given))
    if options.get("lr") == LR_FIND:  # the range test's suggestion, found once for every seed
        if resume is not None:
            raise CnnlabError("--lr find starts a new run; --resume continues at the run's own lr: drop --lr find")
        options = with_found_lr(model, dataset, options, quiet)
    chosen = pick_seeds(options, seeds, repeats)
    if chosen is not None:
        if resume is not None:
            raise CnnlabError("--resume continues one run; --seeds and --repeats start new ones: pass one of them")
        return SeedsResult(train_seeds(model, dataset, chosen, overwrite=overwrite, quiet=quiet, **options))
    if resume is None:
        return RunResult(run(make_config(model, dataset, **options), overwrite=overwrite, quiet=quiet))
    if overwrite:
        raise CnnlabError("--overwrite replaces a run; --resume continues it: pass one of them")
    run_dir = Path(resume)
    saved = RunDir(run_dir).read_config().train_config()
    return RunResult(run(resume_config(saved, model, dataset, options, run_dir=run_dir), resume=run_dir, quiet=quiet))


@functools.wraps(comparison.compare)
def compare(*args, **kwargs) -> Comparison:
    return Comparison(rows := comparison.compare(*args, **kwargs), comparison_out(rows))


def experiment(name: str, **options):
    """Run the experiment `name` (`cnnlab.experiments.list_experiments()`) and return its ExperimentResult; it
    writes results.md, results.csv, config.json and its plots to `out` (default runs/experiment-NAME-<time>).

    `options`: dataset, epochs, quick, out, seed, data_dir, models, weights, seeds ("0,1,2" or a list) and repeats,
    as the `cnnlab experiment` flags (`cnnlab.options.commands` declares them). A misspelt option is a CnnlabError
    naming the closest. With several seeds the result holds mean ± std `Spread`s (`cnnlab.repeats`).
    """
    declared = [o.name for o in command("experiment").options if not o.positional]
    command("experiment").check_keywords(options, declared)  # before matplotlib and the experiments load
    from cnnlab.experiments import run_experiment  # matplotlib and the experiments load only when one runs

    return run_experiment(name, **options)


@_trusting
def predict(
    run_dir: str | Path | None = None,
    images: Sequence[str | Path] = (),
    top_k: int = _PREDICT.option("top_k").default,
    *,
    model: str | None = None,
    weights: str | Path | None = None,
    runtime: str = _PREDICT.option("runtime").default,
) -> list[dict]:
    """Top-k classes and probabilities of each image file: [{"image": path, "top": [(class, probability), ...]}].

    From a run directory's final weights, or, with `model` and `weights` (and no run_dir), from a torchvision
    ImageNet checkpoint you downloaded (.pth state dict or .safetensors) with torchvision's preprocessing for
    those weights and the 1000 ImageNet class names; see `cnnlab.imagenet`.

    runtime="auto" (the default): a run directory's model runs in whichever of torch and onnxruntime is faster for
    it, this batch size and this CPU, measured once and cached (`cnnlab.inference.runtime`); each result's
    "runtime" and "runtime_reason" say which and why. runtime="onnxruntime": RUN_DIR/model.onnx, exported first
    (BN folded) when missing or older than the weights; see `cnnlab.inference.onnx_runtime`. An ImageNet
    checkpoint runs in torch.
    """
    images = list(images)
    if not images:
        raise CnnlabError("predict needs at least one image file")
    if runtime not in runtimes.RUNTIMES:
        raise unknown_name_error("runtime", runtime, runtimes.RUNTIMES)
    if model is None and weights is None:
        if run_dir is None:
            raise CnnlabError("predict needs a run directory, or model= and weights= for an ImageNet checkpoint")
        return runtimes.predict(run_dir, images, top_k, runtime)
    if runtime == "onnxruntime":
        raise CnnlabError(
            f"--runtime {runtime} runs a run directory's exported model; an ImageNet checkpoint runs in torch"
        )
    if weights is None:
        raise CnnlabError(
            f"--model {model} needs --weights PATH, a torchvision ImageNet checkpoint (.pth or .safetensors)"
        )
    if model is None:
        raise CnnlabError(f"--weights {weights} needs --model NAME, the architecture it holds (e.g. resnet50)")
    if run_dir is not None:
        raise CnnlabError("pass either a run directory or model= and weights=, not both")
    from cnnlab.imagenet import predict_imagenet  # torchvision's weight tables load only when used

    why = "asked for with --runtime torch" if runtime == "torch" else "an ImageNet checkpoint runs in torch"
    results = predict_imagenet(model, weights, images, top_k)
    return [{**item, "runtime": "torch", "runtime_reason": why} for item in results]


@_trusting
def export(
    run_dir: str | Path,
    format: str = "onnx",
    *,
    optimize: bool = _EXPORT.option("optimize").default,
    out: str | Path | None = None,
) -> dict:
    """Export a run's model as ONNX or TorchScript with a dynamic batch axis, to `out` (default
    RUN_DIR/model.onnx or RUN_DIR/model.torchscript.pt), and a sidecar OUT.json with the class names, input
    size and normalisation. `optimize` folds BatchNorm into the convs first (the outputs stay equal).
    Returns the sidecar's contents plus "path" and "sidecar"; see `cnnlab.deploy`.
    """
    from cnnlab.deploy import export as export_run

    return export_run(run_dir, format, optimize=optimize, out=out)


__all__ = ["train", "evaluate", "predict", "compare", "experiment", "list_runs", "export", "optimize_for_inference"]
