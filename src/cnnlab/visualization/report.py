"""`visualize`: the PNGs of `cnnlab visualize` for a run (or a model) and some images, returning their paths.

    visualize("runs/resnet20-fashion-mnist-...", from_test=4)                 # RUN/visualize/*.png
    visualize(run, ["shoe.png"], show=["gradcam"], target=7, out="pictures")

Every picture is drawn from the arrays `feature_maps`, `attribution` and `filters` return, so the web lab can show
the same numbers.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.visualization import plots
from cnnlab.visualization.activations import capture, resolve_layers
from cnnlab.visualization.errors import TestDataMissingError
from cnnlab.visualization.heatmaps import Target, attribute, probabilities, resolve_targets
from cnnlab.visualization.kernels import conv_weights, filter_tiles, first_conv
from cnnlab.visualization.loading import Batch, Subject, as_subject, prepare_images, to_inputs
from cnnlab.visualization.options import parse_show


def default_out(subject: Subject) -> Path:
    if subject.run is not None:
        return subject.run.run_dir / "visualize"
    return Path(f"visualize-{subject.name}")


def pick_test_images(subject: Subject, count: int, misclassified: bool = False, seed: int = 0) -> Batch:
    """`count` seeded test images of the run's dataset (those the model gets wrong, with `misclassified`)."""
    from cnnlab.data import load_dataset

    if subject.run is None:
        raise CnnlabError("--from-test needs a run directory: a model alone has no test split")
    config = subject.run.config
    try:
        data = load_dataset(config.dataset, config.data_dir, image_size=subject.image_size or 32)
    except CnnlabError as error:
        raise TestDataMissingError(
            f"--from-test needs the test images of {config.dataset}, which cannot be loaded here: {error}"
        ) from error
    order = torch.randperm(len(data.test_labels), generator=torch.Generator().manual_seed(seed))
    if misclassified:
        order = _wrong_ones(subject, data, order, count)
    chosen = order[:count]
    pixels = data.test_images[chosen]
    names = [f"test{int(i)}" for i in chosen]
    return Batch(pixels, to_inputs(subject, pixels), names, data.test_labels[chosen].tolist())


def _wrong_ones(subject: Subject, data, order: torch.Tensor, count: int) -> torch.Tensor:
    """The first `count` indices of `order` whose images the model misclassifies, predicted as `cnnlab eval`
    predicts them (`evaluate_arrays`, the run's precision) and picked by the same rule (`misclassified`)."""
    from cnnlab.inference.evaluation import evaluate_arrays
    from cnnlab.inference.evaluation import misclassified as wrong_positions
    from cnnlab.precision import autocast_dtype

    labels = data.test_labels[order]
    dtype = autocast_dtype(subject.run.config.precision)
    predicted = evaluate_arrays(subject.model, data.test_images[order], labels, data, dtype=dtype)[2]
    result = order[wrong_positions(predicted, labels)][:count]
    if len(result) == 0:
        raise CnnlabError(f"{subject.name} classifies every test image correctly: --misclassified finds none")
    if len(result) < count:
        warnings.warn(f"only {len(result)} test images are misclassified; showing those", stacklevel=3)
    return result


def _class_name(subject: Subject, index: int) -> str:
    return subject.classes[index] if subject.classes and index < len(subject.classes) else str(index)


def attribution_title(subject: Subject, probs: torch.Tensor, target: int, label: int | None) -> str:
    predicted = int(probs.argmax())
    text = f"{subject.name}: predicted {_class_name(subject, predicted)} ({float(probs[predicted]):.1%})"
    if label is not None:
        text += f", true {_class_name(subject, label)}" + (" ✓" if label == predicted else " ✗")
    if target != predicted:
        text += f"; map for {_class_name(subject, target)} ({float(probs[target]):.1%})"
    return text


def draw_filters(subject: Subject, layers: Sequence[str] | None, out: Path) -> Path:
    """filters.png: the first --layer that is a conv, else the model's first conv."""
    model = subject.model
    convs = [name for name in layers or () if isinstance(model.get_submodule(name), nn.Conv2d)]
    name, weights = conv_weights(model, convs[0] if convs else first_conv(model)[0])
    shown = f", first {plots.MAX_FILTERS}" if len(weights) > plots.MAX_FILTERS else ""
    inputs = weights.shape[1]
    colour = "RGB" if inputs == 3 else ("grey" if inputs == 1 else f"mean of {inputs} inputs")
    title = f"{subject.name} {name}: {len(weights)} kernels {weights.shape[2]}×{weights.shape[3]} ({colour}{shown})"
    return plots.plot_filters(filter_tiles(weights), out / "filters.png", title)


def draw_attributions(subject: Subject, batch: Batch, methods: list[str], target: Target, out: Path) -> list[Path]:
    probs = probabilities(subject.model, batch.inputs)
    targets = resolve_targets(target, probs.argmax(dim=1), probs.shape[1])
    paths = []
    for method in methods:
        maps = attribute(subject.model, batch.inputs, method, targets)
        label = "Grad-CAM" if method == "gradcam" else "saliency"
        for i, name in enumerate(batch.names):
            title = attribution_title(subject, probs[i], int(targets[i]), batch.labels[i])
            paths.append(plots.plot_attribution(batch.pixels[i], maps[i], out / f"{method}-{name}.png", title, label))
    return paths


def draw_erf(subject: Subject, batch: Batch | None, out: Path) -> Path:
    """erf.png: the effective receptive field of the centre output pixel (Luo et al. 2016), at the images' size."""
    from cnnlab.measure.receptive import effective_receptive_field  # with the theoretical one, in inspect

    if batch is not None:
        side = batch.pixels.shape[-1]
    elif subject.imagenet_transform is not None:
        side = subject.imagenet_transform.crop_size[0]
    else:
        side = subject.image_size or 224
    extent, heat = effective_receptive_field(subject.model, (subject.in_chans, side, side))
    title = (
        f"{subject.name} at {side}×{side}: effective receptive field\n"
        f"{extent}×{extent} px hold 95% of the input gradient"
    )
    return plots.plot_heatmap(heat.detach().float().cpu(), out / "erf.png", title)


def visualize(
    source: str | os.PathLike | nn.Module | Subject,
    images: Sequence | torch.Tensor | None = None,
    *,
    from_test: int | None = None,
    misclassified: bool = False,
    show: str | Sequence[str] | None = None,
    layers: Sequence[str] | None = None,
    target: Target = None,
    out: str | os.PathLike | None = None,
    seed: int = 0,
) -> list[Path]:
    """Write the pictures (options.SHOWS) for a run directory or model and its images; return the paths written.

    images: files, PIL images or a uint8 tensor [N, C, H, W]; or `from_test=N` seeded test images of the run's
    dataset (`misclassified`: N the model gets wrong). layers: the feature maps (and filters) of these named
    layers instead of the stages. target: the class the maps explain (default: each image's prediction). Every
    check runs before the first file is written."""
    subject = as_subject(source)
    given = images is not None and len(images) > 0
    shows = parse_show(show, given or bool(from_test))
    if layers:
        resolve_layers(subject.model, layers)  # an unknown name fails here, listing the valid ones
    batch = _gather_images(subject, images if given else None, from_test, misclassified, seed)
    if batch is not None and target is not None:
        resolve_targets(target, torch.zeros(len(batch.names), dtype=torch.long), _num_classes(subject, batch))
    out = Path(out) if out is not None else default_out(subject)
    paths: list[Path] = []
    if "filters" in shows:
        paths.append(draw_filters(subject, layers, out))
    if "featuremaps" in shows:
        maps = capture(subject.model, batch.inputs, layers)
        for i, name in enumerate(batch.names):
            title = f"{subject.name}: strongest channels per {'layer' if layers else 'stage'} (mean activation)"
            paths.append(
                plots.plot_feature_maps(
                    batch.pixels[i], {k: v[i] for k, v in maps.items()}, out / f"featuremaps-{name}.png", title
                )
            )
    methods = [m for m in ("gradcam", "saliency") if m in shows]
    if methods:
        paths.extend(draw_attributions(subject, batch, methods, target, out))
    if "erf" in shows:
        paths.append(draw_erf(subject, batch, out))
    return paths


def _gather_images(subject: Subject, images, from_test: int | None, misclassified: bool, seed: int) -> Batch | None:
    """The batch to draw: the given images, or seeded test images; None when there are neither."""
    if misclassified and not from_test:
        raise CnnlabError("--misclassified picks among test images: give --from-test N too")
    if from_test is not None and from_test < 1:
        raise CnnlabError(f"--from-test needs a positive count, got {from_test}")
    if images is not None and from_test:
        raise CnnlabError("pass image files or --from-test N, not both")
    if from_test:
        return pick_test_images(subject, from_test, misclassified, seed)
    return prepare_images(subject, images) if images is not None else None


def _num_classes(subject: Subject, batch: Batch) -> int:
    if subject.classes:
        return len(subject.classes)
    return probabilities(subject.model, batch.inputs[:1]).shape[1]
