"""Every family in the zoo trains through the same trainer, with no special cases: one model per family (its
smallest, so new families are covered automatically), a few steps on digits, then reloaded for prediction."""

import math
from collections import defaultdict

import pytest
import torch

from cnnlab import create_model, list_models, model_info
from cnnlab.data import ImageDataset
from cnnlab.inspect import count_params
from cnnlab.training.config import TrainConfig
from cnnlab.training.runs import load_run
from cnnlab.training.trainer import run


def smallest_per_family() -> list[str]:
    by_family = defaultdict(list)
    for name in list_models():
        with torch.device("meta"):
            params = count_params(create_model(name))
        by_family[model_info(name).family].append((params, name))
    return sorted(min(models)[1] for models in by_family.values())


@pytest.fixture(scope="module")
def few_digits(digits):
    """80 training and 20 test digits (1x28x28): enough for two steps and a test pass through the big nets."""
    return ImageDataset("digits", digits.train_images[:80], digits.train_labels[:80], digits.test_images[:20],
                        digits.test_labels[:20], digits.classes, digits.mean, digits.std, digits.hflip)


@pytest.mark.parametrize("name", smallest_per_family())
def test_family_trains_and_reloads(name, tmp_path, few_digits):
    # 72 train (2 steps of 32) / 8 val; digits are 1x28x28, so ImageNet-style nets get the small stem by default.
    config = TrainConfig(model=name, dataset="digits", epochs=1, batch_size=32, out=str(tmp_path / name), precision="fp32")
    results = run(config, quiet=True, data=few_digits)
    assert results["status"] == "completed"
    assert math.isfinite(results["test_loss"]) and 0.0 <= results["test_accuracy"] <= 1.0
    assert results["params"] > 0 and results["macs"] > 0
    reloaded = load_run(tmp_path / name)  # the saved config rebuilds the same architecture
    assert count_params(reloaded.model) == results["params"]
