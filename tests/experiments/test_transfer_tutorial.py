"""`experiment transfer`'s arms for the tutorial's recipe (MobileNetV3-Small, the whole classifier replaced by one
linear, head-only / two-phase / one-phase, at the source's resolution and a quarter of it), in quick mode: with
--weights (a random-init torchvision mobilenet_v3_small saved to a temporary file, no downloads) on a tiny
imagefolder, and without (the default run's rows)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from cnnlab.cli import main
from cnnlab.data import load_dataset
from cnnlab.experiments import run_experiment
from cnnlab.experiments.transfer_tutorial import ARMS, at_resolution

# 2 classes: the final linear 1024 * 2 + 2 ("last layer"), the whole head 576 * 2 + 2; one-phase trains all of it.
TRAINABLE = {ARMS[0]: 2_050, ARMS[1]: 1_154, ARMS[2]: 1_154, ARMS[3]: 928_162}


@pytest.fixture(scope="module")
def folder_and_weights(tmp_path_factory):
    root = tmp_path_factory.mktemp("tutorial")
    rng = np.random.default_rng(0)
    for label, colour in enumerate(((200, 40, 40), (40, 40, 200))):  # red or blue noise: an easy two-class task
        (root / "images" / f"c{label}").mkdir(parents=True)
        for index in range(30):
            pixels = np.clip(rng.normal(colour, 40, (16, 16, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / "images" / f"c{label}" / f"{index:02d}.png")
    torch.manual_seed(0)
    torch.save(torchvision.models.mobilenet_v3_small().state_dict(), root / "mobilenet_v3_small.pth")
    return root / "images", root / "mobilenet_v3_small.pth"


@pytest.mark.slow
def test_quick_weights_run_every_arm_at_two_resolutions(folder_and_weights, tmp_path):
    images, weights = folder_and_weights
    out = tmp_path / "exp"
    res = run_experiment("transfer", quick=True, dataset=f"imagefolder:{images}", weights=str(weights), out=out)
    assert [(r["resolution"], r["labels_per_class"], r["method"]) for r in res.rows] == [
        (side, n, arm) for side in (64, 16) for n in (5, 20) for arm in ARMS
    ]
    for row in res.rows:
        assert row["trainable_params"] == TRAINABLE[row["method"]]
        assert row["epochs"] == (1 if row["method"].startswith("head only") else 2)
    runs = out / "runs"
    phases = [r["phase"] for r in json_rows(runs / "tutorial-64px-20-two-phase")]
    assert phases == [1, 2]
    config = json.loads((out / "config.json").read_text())["experiment"]
    assert config["weights"] == str(weights) and config["tutorial_labels_per_class"] == [5, 20]
    assert (out / "transfer-tutorial.png").read_bytes()[:4] == b"\x89PNG"


def json_rows(run_dir):
    from cnnlab.rundir import RunDir

    return RunDir(run_dir).read_metrics()


def test_a_quarter_resolution_keeps_the_size_and_loses_the_detail(folder_and_weights):
    images, _ = folder_and_weights
    data = load_dataset(f"imagefolder:{images}", image_size=64)
    assert at_resolution(data, 64) is data
    quarter = at_resolution(data, 16)
    assert quarter.train_images.shape == data.train_images.shape and quarter.image_size == 64
    assert torch.equal(quarter.train_labels, data.train_labels)
    # Brought down to 16 pixels and back: neighbouring pixels agree more (less detail), the mean stays.
    roughness = lambda x: (x[..., 1:].float() - x[..., :-1].float()).abs().mean().item()  # noqa: E731
    assert roughness(quarter.train_images) < 0.5 * roughness(data.train_images)
    assert abs(quarter.train_images.float().mean() - data.train_images.float().mean()) < 2


def test_weights_that_are_not_a_file_are_one_line(tmp_path, capsys):
    code = main(["experiment", "transfer", "--quick", "--weights", str(tmp_path / "none.pth"), "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "none.pth" in err, err


def test_epochs_with_weights_are_refused_not_ignored(folder_and_weights, tmp_path, capsys):
    images, weights = folder_and_weights
    args = ["experiment", "transfer", "--quick", "--dataset", f"imagefolder:{images}", "--weights", str(weights)]
    assert main([*args, "--epochs", "5", "--out", str(tmp_path)]) == 2
    assert "--epochs does not apply to transfer --weights" in capsys.readouterr().err
