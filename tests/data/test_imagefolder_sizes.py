"""`imagefolder:PATH` at other sizes: squashed below 64 px, torchvision's resize + center-crop from 64 up, and the
`image_size` option reaching the loader through a training run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms

import cnnlab
from cnnlab.data import load_dataset
from cnnlab.engine.config import option_named
from cnnlab.inference.prediction import evaluate


def photo_folder(root: Path, per_class: int = 6, size: tuple[int, int] = (120, 90)) -> list[tuple[Path, int]]:
    """Two classes of random RGB "photos" (width x height), not square, so a crop and a squash differ."""
    rng = np.random.default_rng(3)
    files = []
    for label, cls in enumerate(["ant", "bee"]):
        (root / cls).mkdir(parents=True)
        for i in range(per_class):
            path = root / cls / f"{i}.png"
            Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)
            files.append((path, label))
    return files


def as_bytes(images: torch.Tensor) -> set[bytes]:
    return {image.numpy().tobytes() for image in images}


def test_large_sizes_resize_and_center_crop_like_torchvision(tmp_path):
    files = photo_folder(tmp_path / "bugs")
    data = load_dataset(f"imagefolder:{tmp_path / 'bugs'}", image_size=64)
    assert data.image_size == 64 and data.in_chans == 3 and data.classes == ["ant", "bee"]
    # torchvision's ImageNet evaluation recipe at 64: shorter side to int(64 / 0.875) = 73, then the central 64x64.
    reference = transforms.Compose([transforms.Resize(73), transforms.CenterCrop(64), transforms.PILToTensor()])
    expected = {reference(Image.open(path).convert("RGB")).numpy().tobytes() for path, _ in files}
    assert as_bytes(torch.cat([data.train_images, data.test_images])) == expected


def test_default_size_squashes_the_whole_image(tmp_path):
    files = photo_folder(tmp_path / "bugs", per_class=5)
    data = load_dataset(f"imagefolder:{tmp_path / 'bugs'}")
    assert data.image_size == 32
    squashed = {
        np.asarray(Image.open(p).convert("RGB").resize((32, 32), Image.Resampling.BILINEAR))
        .transpose(2, 0, 1)
        .tobytes()
        for p, _ in files
    }
    assert as_bytes(torch.cat([data.train_images, data.test_images])) == squashed
    assert load_dataset("digits", image_size=64).image_size == 28  # the built-in sets keep their own size


def test_image_size_is_a_checked_train_option(tmp_path):
    option = option_named("image_size")
    assert option.flag == "--image-size" and option.group == "data"
    with pytest.raises(cnnlab.CnnlabError, match="positive whole number"):
        option.parse("0")
    files = photo_folder(tmp_path / "bugs", per_class=10)
    results = cnnlab.train(
        "lenet5",
        dataset=f"imagefolder:{tmp_path / 'bugs'}",
        image_size=64,
        epochs=1,
        batch_size=8,
        out=str(tmp_path / "run"),
        quiet=True,
        precision="fp32",
        threads=1,
    )
    assert results["status"] == "completed"
    meta = json.loads((tmp_path / "run" / "config.json").read_text())
    assert meta["image_size"] == 64 and meta["data"]["image_size"] == 64
    # eval reloads the folder at the run's size (LeNet-5's head is sized for 64 px: at 32 it could not run)
    assert evaluate(tmp_path / "run")["test_accuracy"] == pytest.approx(results["test_accuracy"], abs=1e-9)
    top = cnnlab.predict(tmp_path / "run", [files[0][0]], top_k=2)[0]["top"]
    assert sorted(name for name, _ in top) == ["ant", "bee"]
