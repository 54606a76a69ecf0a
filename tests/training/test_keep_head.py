"""`cnnlab finetune --keep-head`: the second phase of the two-phase recipe (train the head on a frozen backbone,
then continue) starts from the trained head, not a fresh one."""

from __future__ import annotations

import json

import pytest
import torch

import cnnlab
from cnnlab.checkpoint import load_model_weights
from cnnlab.cli import main
from cnnlab.errors import CnnlabError
from cnnlab.registry import create_model
from cnnlab.workflows.finetune import prepare_for_finetuning


def test_keep_head_leaves_the_trained_head_in_place():
    torch.manual_seed(0)
    model = create_model("simple_cnn", num_classes=10, in_chans=1)
    head = {k: v.clone() for k, v in model.get_classifier().state_dict().items()}
    prepare_for_finetuning(model, 10, freeze="backbone", keep_head=True)
    assert all(torch.equal(model.get_classifier().state_dict()[k], v) for k, v in head.items())
    assert [n for n, p in model.named_parameters() if p.requires_grad] == ["fc2.weight", "fc2.bias"]
    prepare_for_finetuning(model, 10)  # without keep_head: a new head
    assert not torch.equal(model.get_classifier().weight, head["weight"])
    with pytest.raises(CnnlabError, match="--keep-head needs a head of 5 classes.*has 10"):
        prepare_for_finetuning(create_model("simple_cnn", num_classes=10, in_chans=1), 5, keep_head=True)


@pytest.fixture(scope="module")
def source_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("source") / "run"
    cnnlab.train("simple_cnn", dataset="digits", epochs=2, train_subset=600, out=str(out), quiet=True, precision="fp32")
    return out


def test_finetune_keep_head_starts_from_the_trained_network(source_run, tmp_path, capsys):
    """A frozen backbone and a learning rate of 1e-9: with the kept head the network stays the source's (same
    head weights, same test accuracy); with a new head it is at chance."""
    source = json.loads((source_run / "results.json").read_text())
    assert source["test_accuracy"] > 0.5
    args = [
        str(source_run),
        "--dataset",
        "digits",
        "--freeze",
        "backbone",
        "--head-lr",
        "1e-9",
        "--epochs",
        "1",
        "--train-subset",
        "600",
        "--precision",
        "fp32",
        "--quiet",
    ]
    assert main(["finetune", *args, "--keep-head", "--out", str(tmp_path / "kept")]) == 0, capsys.readouterr().err
    kept = json.loads((tmp_path / "kept" / "results.json").read_text())
    assert kept["test_accuracy"] == source["test_accuracy"]
    assert json.loads((tmp_path / "kept" / "finetune.json").read_text())["keep_head"] is True
    before, after = create_model("simple_cnn", in_chans=1), create_model("simple_cnn", in_chans=1)
    load_model_weights(before, source_run / "model.safetensors")
    load_model_weights(after, tmp_path / "kept" / "model.safetensors")
    torch.testing.assert_close(after.get_classifier().weight, before.get_classifier().weight, atol=1e-6, rtol=0)

    assert main(["finetune", *args, "--out", str(tmp_path / "new")]) == 0, capsys.readouterr().err
    assert json.loads((tmp_path / "new" / "results.json").read_text())["test_accuracy"] < 0.3
