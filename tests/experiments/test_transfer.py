"""The transfer experiment in quick mode (digits 0-4 -> 5-9, 5 and 20 labels per class), the LoRA and frozen-BN
wrappers, and `cnnlab finetune` from a run directory or a torchvision-format weights file."""

from __future__ import annotations

import csv
import json
import os

import pytest
import torch
from claim_checks import assert_claims_select_one_row_each
from torch import nn

import cnnlab
from cnnlab.cli import main
from cnnlab.errors import CnnlabError
from cnnlab.experiments import run_experiment
from cnnlab.experiments.transfer import class_subset, few_labels
from cnnlab.inference.prediction import evaluate
from cnnlab.models.resnet import cifar_resnet
from cnnlab.registry import create_model
from cnnlab.workflows.finetune import (
    FrozenStatsNorm,
    LoRAConv2d,
    finalize,
    finetune,
    model_name_from_file,
    prepare_for_finetuning,
)

# simple_cnn with a 5-class head: 206,922 - (128 * 10 + 10) + (128 * 5 + 5) = 206,277; its head alone 645.
# Rank-2 LoRA: conv1 (1 -> 16, 3x3) A 2*1*9 + B 16*2 = 50; conv2 (16 -> 32) A 2*16*9 + B 32*2 = 352: +402.
TRAINABLE = {"scratch": 206_277, "linear probe": 645, "fine-tune": 206_277, "LoRA": 1_047}


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    out = tmp_path_factory.mktemp("transfer")
    return run_experiment("transfer", quick=True, out=out), out


@pytest.mark.slow
def test_claims_select_one_row_each(result):
    """Each claim compares two distinct rows of the quick table in a numeric column; one seed resolves nothing."""
    res, _ = result
    assert_claims_select_one_row_each(res, 2)


@pytest.mark.slow
def test_table_of_accuracy_against_trainable_parameters(result):
    res, out = result
    rows = [r for r in res.rows if r["method"] in TRAINABLE]  # the simple_cnn arms (the tutorial's are below)
    assert [(r["labels_per_class"], r["method"]) for r in rows] == [
        (n, m) for n in (5, 20) for m in ("scratch", "linear probe", "fine-tune", "LoRA")
    ]
    for row in rows:
        assert row["trainable_params"] == TRAINABLE[row["method"]]
        assert 0.2 < row["test_accuracy"] <= 1.0  # above chance (20%) on the 5 target classes
    with open(out / "results.csv") as handle:
        assert len(list(csv.DictReader(handle))) == 8 + 16  # and the tutorial's 4 arms x 2 budgets x 2 resolutions
    assert (out / "transfer.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    config = json.loads((out / "config.json").read_text())["experiment"]
    assert config["labels_per_class"] == [5, 20] and config["pretrain_test_accuracy"] > 0.5
    source = json.loads((out / "runs" / "tutorial-pretrain" / "results.json").read_text())  # the mobilenet source
    assert config["tutorial_pretrain_test_accuracy"] == source["test_accuracy"]


@pytest.mark.slow
def test_the_linear_probe_leaves_the_pretrained_backbone_unchanged(result):
    """The probe's saved conv weights are the pretrained run's, bit for bit; fine-tuning moved them."""
    from cnnlab.checkpoint import read_weights

    runs = result[1] / "runs"
    pretrained = read_weights(runs / "pretrain" / "model.safetensors")
    probe = read_weights(runs / "5-linear-probe" / "model.safetensors")
    tuned = read_weights(runs / "5-fine-tune" / "model.safetensors")
    for key in ("conv1.weight", "conv2.weight", "fc1.weight"):
        assert torch.equal(probe[key], pretrained[key]), key
        assert not torch.equal(tuned[key], pretrained[key]), key


def test_class_split_and_few_labels(digits):
    target = class_subset(digits, (5, 6, 7, 8, 9), "digits 5-9")
    assert target.classes == ["5", "6", "7", "8", "9"] and target.mean == digits.mean
    assert len(target.test_labels) == int((digits.test_labels >= 5).sum()) == 179  # of 360 test digits
    assert torch.equal(target.test_labels, digits.test_labels[digits.test_labels >= 5] - 5)
    few = few_labels(target, 5, seed=0)
    assert torch.bincount(few.train_labels).tolist() == [5, 5, 5, 5, 5]
    assert len(few.test_labels) == 179


# ------------------------------------------------------------------------------------------------- the wrappers
def test_lora_conv_starts_as_the_conv_and_merges_exactly():
    torch.manual_seed(0)
    conv = nn.Conv2d(8, 12, 3, stride=2, padding=1)
    lora = LoRAConv2d(conv, rank=3, alpha=6.0)
    x = torch.randn(2, 8, 9, 9)
    assert torch.equal(lora(x), conv(x))  # B = 0: the adapter adds exactly nothing at the start
    assert sum(p.numel() for p in lora.parameters() if p.requires_grad) == 3 * (8 * 9 + 12)
    assert not any(p.requires_grad for p in conv.parameters())
    lora(x).sum().backward()
    assert lora.lora_b.weight.grad.abs().sum() > 0  # B learns first (A's gradient is B^T(...) = 0 at the start)
    nn.init.normal_(lora.lora_b.weight)
    assert lora.scale == 2.0
    torch.testing.assert_close(lora.merged()(x), lora(x), rtol=1e-5, atol=1e-5)
    assert not torch.allclose(lora(x), conv(x))


def test_frozen_backbone_keeps_bn_statistics_and_finalize_restores_the_architecture():
    torch.manual_seed(0)
    model = cifar_resnet(8, in_chans=1)
    reference = {k: v.clone() for k, v in model.state_dict().items()}
    prepare_for_finetuning(model, 4, freeze="backbone", lora_rank=2)
    assert all(isinstance(m, FrozenStatsNorm) for m in (model.bn1, model.layer1[0].bn1))
    model.train()(torch.randn(8, 1, 14, 14)).sum().backward()  # a train-mode step's forward
    assert torch.equal(model.bn1.norm.running_mean, reference["bn1.running_mean"])
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert {"fc.weight", "fc.bias", "conv1.lora_a.weight", "conv1.lora_b.weight"} <= trainable
    assert not any("norm" in n or n.endswith("conv.weight") for n in trainable)
    finalize(model)
    fresh_head = cifar_resnet(8, in_chans=1, num_classes=4).state_dict()
    assert model.state_dict().keys() == fresh_head.keys()  # a plain resnet-8 again, loadable by name
    assert torch.equal(model.conv1.weight, reference["conv1.weight"])  # B was never trained: nothing merged in
    with pytest.raises(CnnlabError, match="--freeze must be one of"):
        prepare_for_finetuning(cifar_resnet(8), 4, freeze="head")


# --------------------------------------------------------------------------------------------- cnnlab finetune
@pytest.fixture(scope="module")
def source_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("source") / "run"
    cnnlab.train("simple_cnn", dataset="digits", epochs=1, train_subset=600, out=str(out), quiet=True)
    return out


def test_finetune_cli_from_a_run_dir_gives_an_evaluable_run(source_run, tmp_path, capsys):
    out = tmp_path / "tuned"
    code = main(
        [
            "finetune",
            str(source_run),
            "--dataset",
            "digits",
            "--freeze",
            "backbone",
            "--lora-rank",
            "2",
            "--head-lr",
            "0.01",
            "--backbone-lr",
            "0.005",
            "--epochs",
            "1",
            "--train-subset",
            "600",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert code == 0, capsys.readouterr().err
    info = json.loads((out / "finetune.json").read_text())
    assert info["trainable_params"] == 1_290 + 402 and info["lora_rank"] == 2 and info["head_lr"] == 0.01
    results = json.loads((out / "results.json").read_text())
    # LoRA merged back into plain convs: `cnnlab eval` rebuilds simple_cnn by name and gets the trainer's accuracy.
    assert evaluate(out)["test_accuracy"] == pytest.approx(results["test_accuracy"], abs=1e-9)


def test_finetune_with_ema_saves_the_averaged_weights_it_reports(source_run, tmp_path, capsys):
    """--ema: results.json reports the weight average's accuracy, so model.safetensors must hold the average
    (not the raw weights): `cnnlab eval` of the run gives exactly results.json's test accuracy."""
    out = tmp_path / "ema"
    args = ["finetune", str(source_run), "--dataset", "digits", "--head-lr", "0.05", "--ema", "0.5"]
    args += ["--epochs", "2", "--train-subset", "600", "--precision", "fp32", "--out", str(out), "--quiet"]
    assert main(args) == 0, capsys.readouterr().err
    results = json.loads((out / "results.json").read_text())
    assert evaluate(out)["test_accuracy"] == pytest.approx(results["test_accuracy"], abs=1e-9)
    assert main(["eval", str(out)]) == 0
    assert f"{results['test_accuracy']:.2%}" in capsys.readouterr().out


def test_finetune_from_a_torchvision_format_weights_file(tmp_path):
    torch.manual_seed(1)
    trained = create_model("lenet5", input_size=28, num_classes=7)  # another head: replaced, with a warning
    path = tmp_path / "lenet5-0123abcd.pth"
    torch.save(trained.state_dict(), path)
    assert model_name_from_file(path) == "lenet5"
    with pytest.warns(UserWarning, match="head has 7 classes"):
        results = finetune(
            path, "digits", freeze="backbone", epochs=1, train_subset=600, out=str(tmp_path / "run"), quiet=True
        )
    assert results["trainable_params"] == 84 * 10 + 10
    with pytest.raises(CnnlabError, match="cannot tell which model"):
        model_name_from_file(tmp_path / "weights.pth")


class RunsCode:
    """Unpickling this would call os.system: a stand-in for a malicious checkpoint."""

    def __init__(self, marker) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_malicious_pickle_is_refused_and_runs_nothing(tmp_path, capsys):
    marker = tmp_path / "pwned"
    path = tmp_path / "lenet5-evil.pth"
    torch.save({**create_model("lenet5", input_size=28).state_dict(), "evil": RunsCode(marker)}, path)
    code = main(["finetune", str(path), "--dataset", "digits", "--epochs", "1", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert "pickled code" in err and "lenet5-evil.pth" in err
    assert not marker.exists() and not (tmp_path / "run").exists()


def test_the_findings_name_the_leader_against_scratch_or_when_scratch_leads_against_the_next():
    from cnnlab.experiments.transfer import findings

    def rows(per_class, accuracies):
        params = {"scratch": 206_277, "linear probe": 645, "fine-tune": 206_277, "LoRA": 1_449}
        return [
            {"labels_per_class": per_class, "method": m, "test_accuracy": a, "trainable_params": params[m]}
            for m, a in accuracies.items()
        ]

    table = rows(10, {"scratch": 0.862, "linear probe": 0.759, "fine-tune": 0.851, "LoRA": 0.791}) + rows(
        1000, {"scratch": 0.965, "linear probe": 0.905, "fine-tune": 0.970, "LoRA": 0.946}
    )
    first = findings(table, 0.945, (10, 1000), 4)[0]
    assert "With 10 labels per class the best method is scratch (86.2%, next fine-tune 85.1%)" in first
    assert "with 1000, fine-tune (97.0%, scratch 96.5%)." in first
