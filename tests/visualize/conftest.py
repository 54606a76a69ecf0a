"""A tiny image-folder dataset whose class is where a bright patch sits (4 quadrants), and a model trained on it.

The class depends on the patch's position alone, so a model that learned the task must look at the patch: the
ground truth for the Grad-CAM localisation test, and a quick real run for the CLI tests."""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

SIDE, PATCH, HALF = 32, 8, 16
QUADRANTS = [(0, 0), (0, 1), (1, 0), (1, 1)]  # (row, column) of each class's quadrant
BRIGHT = 190  # patch pixels are 190-255, the background 0-69


@dataclass
class QuadrantRun:
    root: Path  # the image folder
    run_dir: Path  # a simple_cnn trained on it
    bright: int = BRIGHT  # every patch pixel is at least this, no background pixel is


def write_quadrant_images(root: Path, per_class: int = 60, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for label, (row, column) in enumerate(QUADRANTS):
        folder = root / f"q{label}"
        folder.mkdir(parents=True)
        for index in range(per_class):
            image = rng.integers(0, 70, (SIDE, SIDE), dtype=np.uint8)
            y = row * HALF + rng.integers(0, HALF - PATCH + 1)
            x = column * HALF + rng.integers(0, HALF - PATCH + 1)
            image[y : y + PATCH, x : x + PATCH] = rng.integers(BRIGHT, 256, (PATCH, PATCH))
            Image.fromarray(image, mode="L").save(folder / f"{index:03d}.png")


@pytest.fixture(scope="session")
def quadrant_run(tmp_path_factory) -> QuadrantRun:
    import cnnlab

    root = tmp_path_factory.mktemp("quadrants") / "images"
    write_quadrant_images(root)
    run_dir = tmp_path_factory.mktemp("runs") / "simple_cnn-quadrants"
    # No augmentation: a mirrored image would move the patch to another quadrant, another class.
    results = cnnlab.train(
        "simple_cnn",
        dataset=f"imagefolder:{root}",
        epochs=3,
        batch_size=32,
        augment=False,
        out=str(run_dir),
        quiet=True,
        seed=0,
    )
    assert results["test_accuracy"] >= 0.9  # the task is easy; the localisation test needs a model that solved it
    return QuadrantRun(root, run_dir)
