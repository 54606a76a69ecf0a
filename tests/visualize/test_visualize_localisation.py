"""Grad-CAM finds what the model learned: on the quadrant task (conftest.py) its peak falls on the bright patch for
most test images, and on a randomised copy of the model it does not (Adebayo et al. 2018, "Sanity Checks for
Saliency Maps": a map that survives randomising the weights explains the image, not the model)."""

import copy

import torch

import cnnlab
from cnnlab.data import load_dataset


def peak_on_patch(heat: torch.Tensor, images: torch.Tensor, bright: int, margin: int = 1) -> float:
    """The fraction of images whose map peaks on the patch (its box widened by `margin` pixels)."""
    hits = 0
    for k in range(len(images)):
        y, x = divmod(int(heat[k].argmax()), heat.shape[-1])
        ys, xs = torch.nonzero(images[k, 0] >= bright, as_tuple=True)
        hits += int(ys.min() - margin <= y <= ys.max() + margin and xs.min() - margin <= x <= xs.max() + margin)
    return hits / len(images)


def randomised(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """A copy with every layer's parameters drawn afresh (the paper's full randomisation)."""
    copied = copy.deepcopy(model)
    torch.manual_seed(seed)
    for module in copied.modules():
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
    return copied


def test_gradcam_peaks_on_the_patch_and_not_after_randomisation(quadrant_run):
    data = load_dataset(f"imagefolder:{quadrant_run.root}")
    images = data.test_images  # 48 images, 12 per quadrant
    assert len(images) == 48

    heat = cnnlab.attribution(quadrant_run.run_dir, images, method="gradcam")
    trained = peak_on_patch(heat, images, quadrant_run.bright)
    assert trained >= 0.8

    model = cnnlab.load_model(quadrant_run.run_dir)
    rates = [
        peak_on_patch(
            cnnlab.attribution(randomised(model, seed), images, method="gradcam"), images, quadrant_run.bright
        )
        for seed in range(3)
    ]
    # A random conv net still answers a bright patch somewhat (a third of the time here), so the bar is the mean
    # over three randomisations and its distance to the trained model's rate.
    assert sum(rates) / 3 <= 0.5
    assert trained - sum(rates) / 3 >= 0.3
