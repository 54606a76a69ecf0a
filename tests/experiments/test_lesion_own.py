"""The lesion experiment on your own network (issue #22): `--model SPEC` or `--model FILE.py:Name` trains it with the
experiment's recipe (quick: 14 px digits, 2 epochs) and removes each found residual block whose skip is the
identity, as the ResNet arm's blocks are: a spec's res(...) blocks, torchvision's BasicBlock and a block of yours
marked `lesionable = True`; a block whose skip changes the shape stays. A network with no such block, or one with
--weights, is one line (tests/ownnet/test_own_commands.py)."""

from __future__ import annotations

import csv
import json

import pytest
from torch import nn

from cnnlab.building import build_model, build_own
from cnnlab.checkpoint import load_model_weights
from cnnlab.experiments import run_experiment
from cnnlab.experiments.degradation import QUICK_SIDE, downsampled
from cnnlab.experiments.lesion import KEPT, lesion_units, removable, residual_blocks, skip_blocks
from cnnlab.inference.evaluation import evaluate_arrays
from cnnlab.rundir import RunDir

# Two identity-skip blocks (res1, res2) and a projection block (res3: 16 -> 32 channels, stride 2).
SPEC = (
    "conv 16 k3 p1; bn; relu; res(conv 16 k3 p1; bn; relu; conv 16 k3 p1; bn); relu; "
    "res(conv 16 k3 p1; bn; relu; conv 16 k3 p1; bn); relu; res(conv 32 k3 s2 p1; bn); relu; gap; fc 10"
)


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    out = tmp_path_factory.mktemp("lesion-own")
    return run_experiment("lesion", quick=True, models=SPEC, out=out), out


def test_a_specs_identity_skip_res_blocks_are_its_units():
    model = build_own(SPEC, 10, (1, 14, 14))
    assert residual_blocks(model) == removable(model) == ["res1", "res2"]  # res3 has a 1x1 projection
    assert lesion_units(model, (1, 14, 14)) == (["res1", "res2"], {"res3": KEPT})


@pytest.mark.slow
def test_each_res_block_removed_in_turn_reproduced_from_the_saved_weights(result, digits):
    res, out = result
    with open(out / "results.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["removed_block"] for row in rows] == ["none", "res1", "res2", "mean over blocks"]
    intact = res.rows[0]["test_accuracy"]
    assert intact > 0.3  # it really trained: 2 epochs on 14 px digits, chance is 10%
    for row in res.rows[1:3]:
        assert row["accuracy_drop"] == pytest.approx(intact - row["test_accuracy"], abs=1e-12)
    config = json.loads((out / "config.json").read_text())["experiment"]
    assert config["model"] == SPEC and config["blocks"] == ["res1", "res2"]
    assert config["kept"] == {"res3": KEPT}  # its 1x1 projection changes the shape
    assert f"spec is '{SPEC}'" in (out / "results.md").read_text()
    # The row for res2 is the saved network with res2 replaced by its skip, evaluated on the 360 test digits.
    data = downsampled(digits, QUICK_SIDE)
    model = build_own(SPEC, 10, (1, QUICK_SIDE, QUICK_SIDE))
    load_model_weights(model, out / "runs" / "spec" / "model.safetensors")
    model.res2 = nn.Identity()
    accuracy = evaluate_arrays(model, data.test_images, data.test_labels, data, channels_last=False)[1]
    assert res.rows[2]["test_accuracy"] == pytest.approx(accuracy, abs=1e-9)


# Two blocks of yours marked lesionable (block1, block2), torchvision's identity BasicBlock (block3), a marked block
# whose output doubles the channels (widen) and torchvision's BasicBlock with a projection (down): the last two stay.
CODE = """import torch
from torch import nn
from torchvision.models.resnet import BasicBlock


class Twice(nn.Module):
    lesionable = True  # its forward returns x + f(x): the lesion experiment may replace it by x

    def __init__(self, width):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width))

    def forward(self, x):
        return torch.relu(x + self.body(x))


class Widen(nn.Module):
    lesionable = True  # marked, but its output has twice its input's channels

    def __init__(self, width):
        super().__init__()
        self.body = nn.Conv2d(width, 2 * width, 1)

    def forward(self, x):
        return torch.cat([x, x], 1) + self.body(x)


class TinyResNet(nn.Module):
    def __init__(self, num_classes=10, in_chans=1):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_chans, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
        self.block1, self.block2, self.block3 = Twice(8), Twice(8), BasicBlock(8, 8)
        self.widen = Widen(8)
        projection = nn.Sequential(nn.Conv2d(16, 32, 1, stride=2, bias=False), nn.BatchNorm2d(32))
        self.down = BasicBlock(16, 32, stride=2, downsample=projection)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, num_classes))

    def forward(self, x):
        x = self.block3(self.block2(self.block1(self.stem(x))))
        return self.head(self.down(self.widen(x)))
"""
BLOCKS = ["block1", "block2", "block3"]


@pytest.fixture(scope="module")
def code_reference(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lesion-code")
    (folder / "tiny_resnet.py").write_text(CODE)
    return f"{folder / 'tiny_resnet.py'}:TinyResNet"


@pytest.fixture(scope="module")
def code_result(tmp_path_factory, code_reference):
    out = tmp_path_factory.mktemp("lesion-code-run")
    return run_experiment("lesion", quick=True, models=code_reference, out=out), out


def test_a_code_networks_blocks_are_found_and_the_shape_changing_ones_kept(code_reference):
    model = build_own(code_reference, 10, (1, QUICK_SIDE, QUICK_SIDE))
    assert skip_blocks(model) == {"block1": True, "block2": True, "block3": True, "widen": True, "down": False}
    assert lesion_units(model, (1, QUICK_SIDE, QUICK_SIDE)) == (BLOCKS, {"widen": KEPT, "down": KEPT})
    assert model.training  # the shape check leaves the model's mode as it was


@pytest.mark.slow
def test_each_block_of_a_code_network_removed_in_turn_reproduced_from_its_run(code_result, code_reference, digits):
    res, out = code_result
    assert [row["removed_block"] for row in res.rows] == ["none", *BLOCKS, "mean over blocks"]
    assert {row["network"] for row in res.rows} == {"TinyResNet"}
    intact = res.rows[0]["test_accuracy"]
    assert intact > 0.3  # it really trained: 2 epochs on 14 px digits, chance is 10%
    for row in res.rows[1:4]:
        assert 0.0 <= row["test_accuracy"] <= 1.0
        assert row["accuracy_drop"] == pytest.approx(intact - row["test_accuracy"], abs=1e-12)
    config = json.loads((out / "config.json").read_text())["experiment"]
    assert config["model"] == code_reference and config["blocks"] == BLOCKS
    assert config["kept"] == {"widen": KEPT, "down": KEPT}
    assert f"widen kept: {KEPT}; down kept: {KEPT}" in (out / "results.md").read_text()
    # The run keeps its code, as `cnnlab train` does, and is rebuilt from that copy: with block2 replaced by its
    # skip, its accuracy on the 360 test digits is the table's.
    run = out / "runs" / "TinyResNet"
    assert (run / "model_source.py").read_text() == CODE
    recipe = RunDir(run).read_config().train_config()
    assert recipe.model_code["reference"] == code_reference
    model = build_model(recipe, 10, 1, QUICK_SIDE, run_dir=run)
    load_model_weights(model, run / "model.safetensors")
    model.block2 = nn.Identity()
    data = downsampled(digits, QUICK_SIDE)
    accuracy = evaluate_arrays(model, data.test_images, data.test_labels, data, channels_last=False)[1]
    assert res.rows[2]["test_accuracy"] == pytest.approx(accuracy, abs=1e-9)
