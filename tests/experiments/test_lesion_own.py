"""The lesion experiment on your own layer spec (issue #22): `--model SPEC` trains it with the experiment's recipe
(quick: 14 px digits, 2 epochs) and removes each res(...) block whose skip is the identity, as the ResNet arm's
blocks are; a block with a projection stays. A network in code, or one with --weights, is one line."""

from __future__ import annotations

import csv
import json

import pytest
from torch import nn

from cnnlab.building import build_own
from cnnlab.checkpoint import load_model_weights
from cnnlab.experiments import run_experiment
from cnnlab.experiments.degradation import QUICK_SIDE, downsampled
from cnnlab.experiments.lesion import removable, residual_blocks
from cnnlab.inference.evaluation import evaluate_arrays

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
    assert f"spec is '{SPEC}'" in (out / "results.md").read_text()
    # The row for res2 is the saved network with res2 replaced by its skip, evaluated on the 360 test digits.
    data = downsampled(digits, QUICK_SIDE)
    model = build_own(SPEC, 10, (1, QUICK_SIDE, QUICK_SIDE))
    load_model_weights(model, out / "runs" / "spec" / "model.safetensors")
    model.res2 = nn.Identity()
    accuracy = evaluate_arrays(model, data.test_images, data.test_labels, data, channels_last=False)[1]
    assert res.rows[2]["test_accuracy"] == pytest.approx(accuracy, abs=1e-9)
