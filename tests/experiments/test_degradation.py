"""The degradation experiment in quick mode: plain-8/20 against resnet-8/20 on 14 px digits, 2 epochs."""

from __future__ import annotations

import csv
import json

import pytest
import torch
import torch.nn.functional as F

from cnnlab.data import normalize
from cnnlab.experiments import run_experiment
from cnnlab.experiments.degradation import GRAD_BATCH, QUICK_SIDE, downsampled, first_layer_grad_norm
from cnnlab.models.resnet import cifar_resnet

NETWORKS = ["plain8", "resnet8", "plain20", "resnet20"]


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    out = tmp_path_factory.mktemp("degradation")
    return run_experiment("degradation", quick=True, out=out), out


def test_writes_table_plot_and_config(result):
    res, out = result
    assert [row["network"] for row in res.rows] == NETWORKS
    with open(out / "results.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["network"] for row in rows] == NETWORKS
    assert list(rows[0]) == res.columns
    assert (out / "degradation.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    config = json.loads((out / "config.json").read_text())
    assert config["experiment"]["depths"] == [8, 20] and config["experiment"]["image_size"] == QUICK_SIDE
    for row in res.rows:  # errors are fractions, each run really trained (2 epochs of metrics)
        assert 0.0 <= row["train_error"] < 0.9 and 0.0 <= row["test_error"] < 0.9
    assert "| plain20 | 20 | False | 269,434 |" in (out / "results.md").read_text()


def test_plain_and_residual_twins_have_equal_exact_parameter_counts(result):
    # 1 input channel, 10 classes, option-A shortcuts (no parameters): stem 16*9 + BN 32 = 176; a 16-wide block
    # 2*2304 + 64 = 4,672; stage 2: first block 4,608 + 9,216 + 128 = 13,952, others 18,560; stage 3: first
    # 18,432 + 36,864 + 256 = 55,552, others 73,984; fc 650. n=1: 75,002; n=3: 269,434.
    params = {row["network"]: row["params"] for row in result[0].rows}
    assert params == {"plain8": 75_002, "resnet8": 75_002, "plain20": 269_434, "resnet20": 269_434}


def test_gradient_norm_is_measured_on_the_initial_weights(result, digits):
    """Recompute each network's first-layer gradient independently: the seed-0 initial weights, the first 64
    training images, train-mode BN, cross-entropy; the table's column must equal it."""
    data = downsampled(digits, QUICK_SIDE)
    images = normalize(data.train_images[:GRAD_BATCH], data.mean, data.std)
    labels = data.train_labels[:GRAD_BATCH]
    table = {row["network"]: row["grad_norm_conv1_init"] for row in result[0].rows}
    for name in NETWORKS:
        torch.manual_seed(0)
        model = cifar_resnet(int(name.lstrip("plainresnet")), residual=name.startswith("resnet"), in_chans=1)
        model.train()
        F.cross_entropy(model(images), labels).backward()
        assert table[name] == pytest.approx(model.conv1.weight.grad.norm().item(), rel=1e-5), name
    # The measurement leaves the measured model as it was: no gradients, BN statistics still at their init.
    torch.manual_seed(0)
    fresh = cifar_resnet(8, residual=False, in_chans=1)
    first_layer_grad_norm(fresh, images, labels)
    assert fresh.conv1.weight.grad is None and fresh.bn1.running_mean.abs().sum() == 0


def test_findings_state_the_verdict_the_numbers_give(result):
    res = result[0]
    error = {row["network"]: row["train_error"] for row in res.rows}
    supported = error["plain20"] > error["plain8"] and error["resnet20"] <= error["resnet8"]
    assert len(res.findings) == 3
    assert ("This run supports" in res.findings[1]) == supported
    assert ("does not support" in res.findings[1]) == (not supported)


def test_curves_track_the_test_set_each_epoch(result):
    """The plot's right panel is test error per epoch (He et al. Fig. 6); its last point is the table's test error."""
    from cnnlab.experiments.common import read_metrics

    res, out = result
    for row in res.rows:
        metrics = read_metrics(out / "runs" / row["network"])
        assert [m["epoch"] for m in metrics] == [1.0, 2.0]
        assert 1 - metrics[-1]["test_accuracy"] == pytest.approx(row["test_error"], abs=1e-9)
