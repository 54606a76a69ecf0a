"""Every family in the zoo trains through the same trainer, with no special cases: one model per family (its
smallest; a new family fails tests/models/test_builders.py until it joins the sample), a few steps on digits, then
reloaded for prediction."""

import math

import pytest
import torch

from cnnlab.checkpoint import read_weights
from cnnlab.data import ImageDataset
from cnnlab.engine.config import TrainConfig
from cnnlab.engine.trainer import run
from cnnlab.inference.prediction import load_run
from cnnlab.measure import count_params


def smallest_per_family() -> list[str]:
    """tests/zoo_sample.py's FAMILY_REPRESENTATIVES, which test_builders checks are each family's smallest (a new
    family fails there until it is added), so collection builds no model."""
    from zoo_sample import FAMILY_REPRESENTATIVES

    return sorted(FAMILY_REPRESENTATIVES)


@pytest.fixture(scope="module")
def few_digits(digits):
    """80 training and 20 test digits (1x28x28): enough for two steps and a test pass through the big nets."""
    return ImageDataset(
        "digits",
        digits.train_images[:80],
        digits.train_labels[:80],
        digits.test_images[:20],
        digits.test_labels[:20],
        digits.classes,
        digits.mean,
        digits.std,
        digits.hflip,
    )


@pytest.mark.slow
@pytest.mark.parametrize("name", smallest_per_family())
def test_family_trains_and_reloads(name, tmp_path, few_digits):
    # 72 train (2 steps of 32) / 8 val; digits are 1x28x28, so ImageNet-style nets get the small stem by default.
    # No weight decay and a checkpoint after every step: whatever moves a weight between them is its gradient.
    # A constant lr: onecycle's second and last step of a 2-step run is at lr/2.5e5, below fp32's resolution.
    config = TrainConfig(
        model=name,
        dataset="digits",
        epochs=1,
        batch_size=32,
        out=str(tmp_path / name),
        precision="fp32",
        weight_decay=0.0,
        schedule="constant",
        checkpoint_every=1,
    )
    results = run(config, quiet=True, data=few_digits)
    assert results["status"] == "completed"
    assert math.isfinite(results["test_loss"]) and 0.0 <= results["test_accuracy"] <= 1.0
    assert results["params"] > 0 and results["macs"] > 0
    reloaded = load_run(tmp_path / name)  # the saved config rebuilds the same architecture
    assert count_params(reloaded.model) == results["params"]
    # It learns: step 2's gradients move (nearly) every parameter tensor, the classifier's among them, and the
    # saved model is the weights after the last step.
    folder = tmp_path / name / "checkpoints"
    after_one, after_two = (read_weights(folder / f"step-{step:08d}.safetensors") for step in (1, 2))
    parameters = dict(reloaded.model.named_parameters())
    moved = [key for key in parameters if not torch.equal(after_one[key], after_two[key])]
    assert len(moved) >= 0.9 * len(parameters), sorted(set(parameters) - set(moved))
    assert list(parameters)[-1] in moved or list(parameters)[-2] in moved  # the head's weight or bias
    final = read_weights(tmp_path / name / "model.safetensors")
    assert all(torch.equal(final[key], after_two[key]) for key in parameters)
