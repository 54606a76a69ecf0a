"""Degradation with your own networks (issue #22): `--models` takes file references and layer specs in (plain,
residual) pairs, as it takes zoo twins; the learner's ResNet with its skips removed (Deep Dive exercise 3) against
the ResNet itself. Quick mode on 14 px digits, 2 epochs; one run trains both pairs."""

from __future__ import annotations

import csv
import json

import pytest

from cnnlab.building import split_models
from cnnlab.cli import main
from cnnlab.rundir import RunDir

PLAIN_SPEC = "conv 16 k3 p1; bn; relu; (conv 16 k3 p1; bn; relu); maxpool k2; flatten; fc 10"
RES_SPEC = "conv 16 k3 p1; bn; relu; res(conv 16 k3 p1; bn; relu); maxpool k2; flatten; fc 10"
TWINS = """from torch import nn


class Block(nn.Module):
    def __init__(self, width, skip):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU())
        self.skip = skip

    def forward(self, x):
        return self.body(x) + x if self.skip else self.body(x)


class PlainNet(nn.Module):
    skip = False

    def __init__(self, num_classes=10, in_chans=1):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_chans, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU())
        self.blocks = nn.Sequential(Block(16, self.skip), Block(16, self.skip))
        self.head = nn.Sequential(nn.MaxPool2d(2), nn.Flatten(), nn.Linear(16 * 7 * 7, num_classes))

    def forward(self, x):
        return self.head(self.blocks(self.stem(x)))


class ResNet(PlainNet):
    skip = True
"""
LABELS = ["spec#1", "spec#2", "PlainNet", "ResNet"]


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    folder = tmp_path_factory.mktemp("degradation-own")
    (folder / "twins.py").write_text(TWINS)
    models = [PLAIN_SPEC, RES_SPEC, f"{folder}/twins.py:PlainNet", f"{folder}/twins.py:ResNet"]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CNNLAB_STATE_DIR", str(folder / "state"))
        assert (
            main(["experiment", "degradation", "--quick", "--models", ",".join(models), "--out", str(folder / "exp")])
            == 0
        )
    return folder / "exp", models


@pytest.mark.slow
def test_own_pairs_train_and_keep_their_full_text(experiment):
    out, models = experiment
    with open(out / "results.csv") as handle:
        rows = {row["network"]: row for row in csv.DictReader(handle)}
    assert list(rows) == LABELS  # short labels: the table stays readable
    assert [rows[label]["residual"] for label in LABELS] == ["False", "True", "False", "True"]
    # He et al.'s depth: weighted layers (2 convs + fc; the file's nets 3 convs + fc). Twins have equal weights:
    # conv 1->16 160, BN 32, conv 16->16 2,320, BN 32, fc 16*7*7 -> 10 7,850.
    assert [int(rows[label]["depth"]) for label in LABELS] == [3, 3, 4, 4]
    assert rows["spec#1"]["params"] == rows["spec#2"]["params"] == "10394"
    for label in LABELS:  # each really trained: 2 epochs on 14 px digits are well above chance (10%)
        assert float(rows[label]["test_error"]) < 0.5, (label, rows[label]["test_error"])
    config = json.loads((out / "config.json").read_text())["experiment"]
    assert config["networks"] == LABELS
    assert config["own_networks"] == dict(zip(LABELS, models))
    text = (out / "results.md").read_text()
    assert f"spec#2 is '{RES_SPEC}'" in text and "| spec#1 | 3 | False |" in text
    for label, model in zip(LABELS, models):  # each run records its spec or its code, under a folder-safe name
        assert RunDir(out / "runs" / label.replace("#", "-")).read_config().train_config().model == model
    assert (out / "runs" / "ResNet" / "model_source.py").read_text() == TWINS


def test_models_split_on_commas_outside_parentheses():
    assert split_models("plain20, resnet20") == ["plain20", "resnet20"]
    assert split_models(f"{PLAIN_SPEC},{RES_SPEC}") == [PLAIN_SPEC, RES_SPEC]
    assert split_models("cat(conv 4 k1 | conv 4 k3 p1, x), a.py:Net") == [
        "cat(conv 4 k1 | conv 4 k3 p1, x)",
        "a.py:Net",
    ]
