"""The degradation experiment in quick mode: plain-8/20 against resnet-8/20 on 14 px digits, 2 epochs."""

from __future__ import annotations

import csv
import json

import pytest
import torch
import torch.nn.functional as F
from claim_checks import assert_claims_select_one_row_each

from cnnlab.data import normalize
from cnnlab.experiments import run_experiment
from cnnlab.experiments.degradation import GRAD_BATCH, QUICK_SIDE, downsampled, first_layer_grad_norm
from cnnlab.models.resnet import cifar_resnet

NETWORKS = ["plain8", "resnet8", "plain20", "resnet20"]


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    out = tmp_path_factory.mktemp("degradation")
    return run_experiment("degradation", quick=True, out=out), out


@pytest.mark.slow
def test_claims_select_one_row_each(result):
    """Each claim compares two distinct rows of the quick table in a numeric column; one seed resolves nothing."""
    res, _ = result
    assert_claims_select_one_row_each(res, 4)


@pytest.mark.slow
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


@pytest.mark.slow
def test_plain_and_residual_twins_have_equal_exact_parameter_counts(result):
    # 1 input channel, 10 classes, option-A shortcuts (no parameters): stem 16*9 + BN 32 = 176; a 16-wide block
    # 2*2304 + 64 = 4,672; stage 2: first block 4,608 + 9,216 + 128 = 13,952, others 18,560; stage 3: first
    # 18,432 + 36,864 + 256 = 55,552, others 73,984; fc 650. n=1: 75,002; n=3: 269,434.
    params = {row["network"]: row["params"] for row in result[0].rows}
    assert params == {"plain8": 75_002, "resnet8": 75_002, "plain20": 269_434, "resnet20": 269_434}


@pytest.mark.slow
def test_gradient_norm_is_measured_on_the_initial_weights(result, digits):
    """Recompute each network's first-layer gradient independently: the seed-0 initial weights, the first 64
    training images, train-mode BN, cross-entropy; the table's column must equal it."""
    data = downsampled(digits, QUICK_SIDE)
    images = normalize(data.train_images[:GRAD_BATCH], data.mean, data.std)
    labels = data.train_labels[:GRAD_BATCH]
    table = {row["network"]: row["grad_norm_conv1_init"] for row in result[0].rows}
    for name in NETWORKS:
        torch.manual_seed(0)
        depth = int(name.removeprefix("plain").removeprefix("resnet"))
        model = cifar_resnet(depth, residual=name.startswith("resnet"), in_chans=1)
        model.train()
        F.cross_entropy(model(images), labels).backward()
        assert table[name] == pytest.approx(model.conv1.weight.grad.norm().item(), rel=1e-5), name
    # The measurement leaves the measured model as it was: no gradients, BN statistics still at their init.
    torch.manual_seed(0)
    fresh = cifar_resnet(8, residual=False, in_chans=1)
    first_layer_grad_norm(fresh, images, labels)
    assert fresh.conv1.weight.grad is None and fresh.bn1.running_mean.abs().sum() == 0


@pytest.mark.slow
def test_findings_state_the_verdict_the_numbers_give(result):
    res = result[0]
    error = {row["network"]: row["train_error"] for row in res.rows}
    supported = error["plain20"] > error["plain8"] and error["resnet20"] <= error["resnet8"]
    assert len(res.findings) == 3 + len(res.claims) + 1  # the run's own, a verdict per claim, the hint
    assert all(line.startswith("Not resolved at n=1: ") for line in res.findings[3:-1])  # one run has no spread
    assert res.findings[-1].startswith("One run has no spread")
    assert ("This run agrees with" in res.findings[1]) == supported
    assert ("does not agree with" in res.findings[1]) == (not supported)


@pytest.mark.slow
def test_curves_track_the_test_set_each_epoch(result):
    """The plot's right panel is test error per epoch (He et al. Fig. 6); its last point is the table's test error."""
    from cnnlab.rundir import RunDir

    read_metrics = lambda run_dir: RunDir(run_dir).read_metrics()  # noqa: E731
    res, out = result
    for row in res.rows:
        metrics = read_metrics(out / "runs" / row["network"])
        assert [m["epoch"] for m in metrics] == [1.0, 2.0]
        assert 1 - metrics[-1]["test_accuracy"] == pytest.approx(row["test_error"], abs=1e-9)


# ---------------------------------------------------------------------------------------------------------
# --models: any plain/residual twins, the ImageNet layout (plain18/34) included


def test_models_are_checked_to_be_twins():
    from cnnlab.errors import CnnlabError
    from cnnlab.experiments.degradation import parse_networks

    nets = parse_networks(["resnet34", "plain18", "resnet18", "plain34", "plain110", "resnet110"])
    assert [n.name for n in nets] == ["plain110", "resnet110", "plain18", "resnet18", "plain34", "resnet34"]
    assert [n.layout for n in nets] == ["cifar"] * 2 + ["imagenet"] * 4
    assert [n.name for n in parse_networks(["plain14", "resnet14"])] == ["plain14", "resnet14"]  # built on demand
    for names, message in [
        (["plain18"], "needs its twin resnet18"),
        (["plain50", "resnet50"], "not twins"),  # resnet50 is the ImageNet bottleneck net, plain50 a CIFAR depth
        (["plain19", "resnet19"], "6n\\+2"),
        (["vgg11", "resnet18"], "not one"),
    ]:
        with pytest.raises(CnnlabError, match=message):
            parse_networks(names)


def test_models_option_is_refused_by_experiments_that_take_none(tmp_path):
    from cnnlab.errors import CnnlabError

    with pytest.raises(CnnlabError, match="takes no --models .*degradation"):
        run_experiment("kernels", quick=True, out=tmp_path, models="plain20,resnet20")


def test_imagenet_twins_get_the_small_stem_on_small_images():
    from cnnlab.experiments.degradation import build_network, network

    torch.manual_seed(0)
    plain, residual = (build_network(network(name), 10, 1, QUICK_SIDE) for name in ("plain18", "resnet18"))
    # ResNet-18 with a 3x3 stem on 1 channel and a 10-way head (11,172,810, see test_resnet), less the projections.
    assert sum(p.numel() for p in residual.parameters()) == 11_172_810
    assert sum(p.numel() for p in plain.parameters()) == 11_172_810 - 173_824
    assert plain.conv1.kernel_size == (3, 3) and isinstance(plain.maxpool, torch.nn.Identity)
    with torch.no_grad():
        assert plain.eval()(torch.randn(2, 1, QUICK_SIDE, QUICK_SIDE)).shape == (2, 10)
    big = build_network(network("plain34"), 1000, 3, 224)
    assert big.conv1.kernel_size == (7, 7)


@pytest.mark.slow
def test_one_depth_of_twins_reports_loss_and_error(tmp_path):
    res = run_experiment("degradation", quick=True, epochs=1, out=tmp_path, models="resnet14,plain14")
    assert [row["network"] for row in res.rows] == ["plain14", "resnet14"]
    assert res.config["networks"] == ["plain14", "resnet14"] and res.config["depths"] == [14]
    for row in res.rows:
        metrics = json.loads((tmp_path / "runs" / row["network"] / "results.json").read_text())
        assert 0.0 < row["train_loss"] < 2.5 and 0.0 <= row["train_error"] < 0.9
        assert row["test_error"] == pytest.approx(1 - metrics["test_accuracy"], abs=1e-12)
    assert len(res.findings) == 3 and "no deeper twin" in res.findings[0]  # + the claim "not resolved at n=1", hint
    assert res.findings[1].startswith("Not resolved at n=1: resnet14 trains to a lower error than plain14")
    assert f"{100 * res.rows[0]['train_error']:.2f}%" in res.findings[0]
    assert (tmp_path / "degradation.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_plain18_against_resnet18_on_digits(tmp_path):
    res = run_experiment("degradation", quick=True, epochs=1, out=tmp_path, models="plain18,resnet18")
    params = {row["network"]: row["params"] for row in res.rows}
    assert params == {"plain18": 11_172_810 - 173_824, "resnet18": 11_172_810}
    assert all(row["train_error"] < 0.9 for row in res.rows)
