"""Using a finished run directory: reload its model, evaluate it on the test split, predict on image files."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import nn

from cnnlab import checkpoint
from cnnlab.building import build_model
from cnnlab.data import ImageDataset, load_dataset, normalize
from cnnlab.data.imagefolder import fit_image
from cnnlab.errors import CnnlabError
from cnnlab.inference.evaluation import evaluate_arrays, misclassified
from cnnlab.precision import autocast_dtype
from cnnlab.rundir import CONFIG, WEIGHTS, RunDir, open_run

EVAL_BATCH = 512  # images per forward pass while evaluating


@dataclass
class LoadedRun:
    run_dir: Path
    config: Any  # the run's TrainConfig (RunConfig.train_config(); its home, the engine, is above inference)
    data: dict  # name, classes, mean, std, in_chans, image_size (cnnlab.rundir.DataInfo.to_dict())
    model: nn.Module  # in eval mode, with the run's final weights


def load_run(run_dir: str | Path) -> LoadedRun:
    """A finished training run: its config, data description and model with the final weights. A folder that is
    no training run is NotARunDirectory, with the reason."""
    run = open_run(run_dir)
    run_dir, saved = run.path, run.read_config()
    config, data = saved.train_config(), saved.require_data(run.file(CONFIG)).to_dict()
    model = build_model(config, len(data["classes"]), data["in_chans"], data["image_size"], run_dir=run_dir)
    weights = run.file(WEIGHTS)
    if not weights.exists():
        raise CnnlabError(f"{run_dir} has no model.safetensors (did the run finish? resume it with --resume {run_dir})")
    checkpoint.load_model_weights(model, weights)
    return LoadedRun(run_dir, config, data, model.eval())


def evaluate(
    run_dir: str | Path,
    data_dir: str | None = None,
    tta: bool | None = None,
    model_for: Callable[[LoadedRun, torch.dtype | None, int], tuple[nn.Module, dict]] | None = None,
    tta_shift: int | None = None,
) -> dict:
    """Test accuracy and per-class accuracy of a run; writes eval.json and confusion.png into the run directory.
    tta: average each image's logits with its mirror's; tta_shift: also classify each image moved that many
    pixels diagonally (0 = off); None: each as the run was trained (its config's `tta`, `tta_shift`).
    model_for(run, autocast dtype, batch size): the module that runs it and fields added to the result (the runtime
    `cnnlab.inference.runtime` chose; None: the run's torch model)."""
    run = load_run(run_dir)
    tta = run.config.tta if tta is None else tta
    shift = run.config.tta_shift if tta_shift is None else tta_shift
    dataset: ImageDataset = load_dataset(
        run.config.dataset, data_dir or run.config.data_dir, image_size=run.data["image_size"]
    )  # an imagefolder's, as trained
    dtype, batch = autocast_dtype(run.config.precision), min(EVAL_BATCH, max(len(dataset.test_images), 1))
    model, extra = model_for(run, dtype, batch) if model_for else (run.model, {})
    loss, accuracy, predicted = evaluate_arrays(
        model,
        dataset.test_images,
        dataset.test_labels,
        dataset,
        batch_size=EVAL_BATCH,
        dtype=dtype,
        flip_tta=tta,
        shift_tta=shift,
    )
    from cnnlab.plots import plot_confusion  # matplotlib loads only for evaluate, not predict

    classes = list(dataset.classes)
    matrix = np.zeros((len(classes), len(classes)), dtype=np.int64)
    np.add.at(matrix, (dataset.test_labels.numpy(), predicted.numpy()), 1)
    per_class = {name: float(matrix[i, i] / max(matrix[i].sum(), 1)) for i, name in enumerate(classes)}
    confusion_png = run.run_dir / "confusion.png"
    plot_confusion(matrix, classes, confusion_png, title=f"{run.config.model} on {dataset.name}: {accuracy:.2%}")
    result = {
        "model": run.config.model,
        "dataset": dataset.name,
        "test_accuracy": accuracy,
        "test_loss": loss,
        "tta": tta,
        "tta_shift": shift,
        "per_class_accuracy": per_class,
        "confusion_matrix": matrix.tolist(),
        "confusion_png": str(confusion_png),
        # [test image index, predicted class] of every test image it gets wrong, in order
        "misclassified": [[i, int(predicted[i])] for i in misclassified(predicted, dataset.test_labels).tolist()],
        **extra,
    }
    RunDir(run.run_dir).write_evaluation(result)
    return result


# Modes PIL can turn into grey or RGB without guessing what the values mean.
_SAFE_MODES = {
    "1",
    "L",
    "LA",
    "P",
    "PA",
    "RGB",
    "RGBA",
    "RGBX",
    "I;16",
    "I;16B",
    "I;16L",
    "I",
    "F",
    "CMYK",
    "YCbCr",
    "LAB",
    "HSV",
}


def open_image(path: str | Path, in_chans: int) -> Image.Image:
    """An image file as a PIL image in mode L (one channel) or RGB (three), grey <-> RGB converted."""
    path = Path(path)
    if not path.is_file():
        raise CnnlabError(f"image {path} does not exist")
    try:
        with Image.open(path) as image:
            image.load()
            mode = image.mode
            if in_chans not in (1, 3) or mode not in _SAFE_MODES:
                raise CnnlabError(
                    f"image {path} has mode {mode}, which cannot be converted to the {in_chans} "
                    "channels the model takes"
                )
            if mode.startswith("I") or mode == "F":  # 16/32-bit grey: rescale to 8 bits, don't clip
                array = np.asarray(image, dtype=np.float64)
                span = max(array.max() - array.min(), 1e-12)
                image = Image.fromarray(((array - array.min()) / span * 255).astype(np.uint8), mode="L")
            return image.convert("L" if in_chans == 1 else "RGB")
    except (UnidentifiedImageError, OSError) as error:
        raise CnnlabError(f"{path} is not an image that can be read ({error.__class__.__name__})") from error


def load_image(path: str | Path, in_chans: int, image_size: int) -> torch.Tensor:
    """An image file as uint8 [C, H, W] with the model's channel count and size (grey <-> RGB converted)."""
    resized = fit_image(open_image(path, in_chans), image_size)  # as imagefolder:PATH loads its images
    array = np.asarray(resized, dtype=np.uint8)
    array = array[None] if array.ndim == 2 else array.transpose(2, 0, 1)
    return torch.from_numpy(array.copy())


def top_classes(logits: torch.Tensor, classes: list[str], images: list[str | Path], top_k: int) -> list[dict]:
    """[{"image": path, "top": [(class name, probability), ...]}] for logits [len(images), len(classes)]."""
    probabilities = torch.softmax(logits.float(), dim=1)
    top = probabilities.topk(min(top_k, probabilities.shape[1]), dim=1)
    return [
        {"image": str(path), "top": [(classes[i], float(p)) for p, i in zip(values.tolist(), indices.tolist())]}
        for path, values, indices in zip(images, top.values, top.indices)
    ]


@torch.no_grad()
def predict(run_dir: str | Path, images: list[str | Path], top_k: int = 5) -> list[dict]:
    """Top-k classes and probabilities for each image file, from a run's final weights."""
    run = load_run(run_dir)
    data = run.data
    batch = torch.stack([load_image(p, data["in_chans"], data["image_size"]) for p in images])  # uint8 [B, C, H, W]
    return top_classes(run.model(normalize(batch, data["mean"], data["std"])), data["classes"], images, top_k)
