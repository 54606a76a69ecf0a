"""The drop-block (lesion) experiment in quick mode: resnet-14 and plain-14 on 14 px digits, 2 epochs."""

from __future__ import annotations

import csv
import json

import pytest
import torch
from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.experiments import run_experiment
from cnnlab.experiments.degradation import QUICK_SIDE, downsampled
from cnnlab.experiments.dropblock import remove_block, same_shape_blocks
from cnnlab.models.resnet import cifar_resnet, droppable_blocks
from cnnlab.training.checkpoint import load_model_weights
from cnnlab.training.trainer import evaluate_arrays

# Depth 14 = 2 blocks per stage; the first block of stages 2 and 3 halves the side and doubles the width.
BLOCKS = ["layer1.0", "layer1.1", "layer2.1", "layer3.1"]


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    out = tmp_path_factory.mktemp("drop-block")
    return run_experiment("drop-block", quick=True, out=out), out


def test_one_row_per_removable_block_of_each_network(result):
    res, out = result
    expected = [(net, block) for net in ("resnet14", "plain14") for block in ["none", *BLOCKS]]
    assert [(row["network"], row["removed_block"]) for row in res.rows] == expected
    with open(out / "results.csv") as handle:
        assert len(list(csv.DictReader(handle))) == 10
    assert (out / "drop_block.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((out / "config.json").read_text())["experiment"]["blocks"] == {"resnet14": BLOCKS, "plain14": BLOCKS}


def test_drops_are_measured_against_the_trained_networks_test_accuracy(result):
    res, out = result
    for net in ("resnet14", "plain14"):
        run_results = json.loads((out / "runs" / net / "results.json").read_text())
        rows = [row for row in res.rows if row["network"] == net]
        assert rows[0]["test_accuracy"] == run_results["test_accuracy"] > 0.5  # trained well past chance (10%)
        for row in rows[1:]:
            assert row["accuracy_drop"] == pytest.approx(rows[0]["test_accuracy"] - row["test_accuracy"], abs=1e-12)


def test_lesioned_accuracy_is_reproduced_from_the_saved_weights(result, digits):
    """Rebuild resnet-14 from the run's model.safetensors, swap layer3.1 for the identity by hand, evaluate on the
    360 test digits: the experiment's row must be exactly that accuracy (a whole number of images out of 360)."""
    res, out = result
    data = downsampled(digits, QUICK_SIDE)
    for net, residual in (("resnet14", True), ("plain14", False)):
        model = cifar_resnet(14, residual=residual, in_chans=1)
        load_model_weights(model, out / "runs" / net / "model.safetensors")
        model.layer3[1] = nn.Identity()
        accuracy = evaluate_arrays(model, data.test_images, data.test_labels, data, channels_last=False)[1]
        row = next(r for r in res.rows if r["network"] == net and r["removed_block"] == "layer3.1")
        assert row["test_accuracy"] == pytest.approx(accuracy, abs=1e-9)
        assert round(accuracy * 360) == pytest.approx(accuracy * 360, abs=1e-4)


def test_block_removal_rules():
    residual, plain = cifar_resnet(14, in_chans=1), cifar_resnet(14, residual=False, in_chans=1)
    positions = [("layer1", 0), ("layer1", 1), ("layer2", 1), ("layer3", 1)]
    assert droppable_blocks(residual) == same_shape_blocks(residual) == same_shape_blocks(plain) == positions
    assert droppable_blocks(plain) == []  # the registry's helper only drops blocks with a skip
    x = torch.randn(2, 1, 14, 14)
    for model in (residual, plain):
        remove_block(model, "layer2", 1)
        assert isinstance(model.layer2[1], nn.Identity) and model.eval()(x).shape == (2, 10)
        with pytest.raises(CnnlabError, match="changes the shape"):
            remove_block(model, "layer2", 0)  # stride 2, 16 -> 32: no identity can stand in for it
