"""The activations experiment (ReLU vs tanh, Krizhevsky et al. 2012 Fig. 1) in quick mode: 14 px digits, 2 seeds,
steps to 20% training error; and its network and step counter on their own."""

from __future__ import annotations

import csv
import json
import re
import statistics

import pytest
import torch
from torch import nn

from cnnlab.data import ImageDataset
from cnnlab.experiments import run_experiment
from cnnlab.experiments.activations import FourLayerCNN, steps_to_threshold


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    out = tmp_path_factory.mktemp("activations")
    return run_experiment("activations", quick=True, out=out), out


def test_one_row_per_activation_and_seed_with_the_ratio_in_the_findings(result):
    res, out = result
    runs = [(row["activation"], row["seed"]) for row in res.rows]
    assert runs == [("relu", 0), ("relu", 1), ("tanh", 0), ("tanh", 1)]
    with open(out / "results.csv") as handle:
        assert len(list(csv.DictReader(handle))) == 4
    assert (out / "activations.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    config = json.loads((out / "config.json").read_text())["experiment"]
    assert config["threshold"] == 0.2 and config["seeds"] == [0, 1]
    steps = {(row["activation"], row["seed"]): row["steps_to_threshold"] for row in res.rows}
    assert all(
        row["reached"] and config["window"] <= row["steps_to_threshold"] <= config["max_steps"] for row in res.rows
    )
    assert all(row["final_train_error"] <= 0.2 for row in res.rows)  # stopped at the crossing
    ratios = [steps[("tanh", s)] / steps[("relu", s)] for s in (0, 1)]
    stated = re.search(r"tanh needs ([\d.]+) ± ([\d.]+) \(std, n=2\)", " ".join(res.findings))
    assert stated is not None
    assert float(stated.group(1)) == pytest.approx(statistics.mean(ratios), abs=0.005)
    assert float(stated.group(2)) == pytest.approx(statistics.stdev(ratios), abs=0.005)


def test_the_twins_differ_only_in_the_activation():
    torch.manual_seed(0)
    relu = FourLayerCNN(nn.ReLU, 1, 10)
    torch.manual_seed(0)
    tanh = FourLayerCNN(nn.Tanh, 1, 10)
    # conv 1->32 5x5: 832; 32->64 5x5: 51,264; 64->64 3x3: 36,928; linear 1,024->10: 10,250
    assert sum(p.numel() for p in relu.parameters()) == 99_274
    assert all(torch.equal(a, b) for a, b in zip(relu.state_dict().values(), tanh.state_dict().values()))
    assert isinstance(relu.features[1], nn.ReLU) and isinstance(tanh.features[1], nn.Tanh)
    assert relu(torch.randn(2, 1, 14, 14)).shape == tanh(torch.randn(2, 1, 32, 32)).shape == (2, 10)


def test_steps_to_threshold_stops_at_the_first_crossing():
    # Two classes told apart by the mean brightness: learnable in a few steps.
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(64) % 2
    images = (torch.rand(64, 1, 8, 8, generator=generator) * 100 + 120 * labels.view(-1, 1, 1, 1)).to(torch.uint8)
    data = ImageDataset("bright", images, labels, images[:8], labels[:8], ["dark", "bright"], hflip=False)
    torch.manual_seed(0)
    steps, curve = steps_to_threshold(
        FourLayerCNN(nn.ReLU, 1, 2), data, lr=0.01, threshold=0.25, max_steps=200, batch_size=16, window=4, seed=0
    )
    assert steps is not None and len(curve) == steps - 4 + 1
    assert curve[-1] <= 0.25 and all(error > 0.25 for error in curve[:-1])
    torch.manual_seed(0)
    steps, curve = steps_to_threshold(
        FourLayerCNN(nn.ReLU, 1, 2), data, lr=0.01, threshold=-1.0, max_steps=6, batch_size=16, window=4, seed=0
    )
    assert steps is None and len(curve) == 3  # never reached: every step from the window on is recorded
