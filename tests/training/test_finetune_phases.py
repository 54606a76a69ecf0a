"""`cnnlab finetune` as the transfer-learning tutorials do it: --head (last / the whole classifier as one linear /
a layer spec), --bn-stats under a frozen backbone, and --phases (the head alone, then everything, in one run),
resumed bit for bit across the phase boundary. The source is a random-init torchvision mobilenet_v3_small saved
to a temporary file (no downloads), fine-tuned on 200 digits (2 steps of 64 per epoch)."""

from __future__ import annotations

import shutil

import pytest
import torch
import torchvision

from cnnlab.checkpoint import read_weights
from cnnlab.cli import main
from cnnlab.registry import create_model
from cnnlab.rundir import RunDir, phase_marks
from cnnlab.workflows.finetune import finetune, prepare_for_finetuning

RECIPE = dict(dataset="digits", train_subset=200, precision="fp32", quiet=True, seed=1)
PHASES = "head:1:adamw:1e-3,all:1:adamw:1e-4"
BN_MEAN = "features.1.block.0.1.running_mean"  # the first block's batch norm (a buffer: saved with the weights)


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    path = tmp_path_factory.mktemp("source") / "mobilenet_v3_small.pth"
    torch.manual_seed(0)
    torch.save(torchvision.models.mobilenet_v3_small().state_dict(), path)
    return path


def trainable(model) -> tuple[int, list[str]]:
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    return sum(p.numel() for p in model.parameters() if p.requires_grad), names


@pytest.mark.parametrize(
    "head, count, names",
    [
        ("linear", 5_770, ["classifier.out.weight", "classifier.out.bias"]),  # 576 * 10 + 10: the tutorial's
        ("last", 10_250, ["classifier.3.weight", "classifier.3.bias"]),  # 1024 * 10 + 10: 576 -> 1024 kept
        ("fc 32; relu", 18_794, ["classifier.fc1.weight", "classifier.fc1.bias", "classifier.out.weight",
                                 "classifier.out.bias"]),  # 576 * 32 + 32 + 32 * 10 + 10
    ],
)  # fmt: skip
def test_head_choices_train_exactly_their_parameters(weights, head, count, names):
    model = create_model("mobilenet_v3_small", in_chans=3, weights=weights)
    prepare_for_finetuning(model, 10, freeze="backbone", head=head)
    assert trainable(model) == (count, names)
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


def test_head_linear_run_records_its_count_and_evaluates(weights, tmp_path, capsys):
    out = tmp_path / "linear"
    args = ["finetune", str(weights), "--dataset", "digits", "--freeze", "backbone", "--head", "linear"]
    code = main([*args, "--epochs", "1", "--train-subset", "200", "--precision", "fp32", "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0
    assert "5,770 trainable parameters in 2 tensors" in printed
    record = RunDir(out).read_finetune()
    assert record.trainable_params == 5_770 and record.values["head"] == "linear"
    assert RunDir(out).read_config().train_config().model_kwargs == {"head": "linear"}
    assert main(["eval", str(out), "--runtime", "torch"]) == 0  # rebuilt with the one-linear head


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--head", "conv 8 k3"], "bad layer 'conv 8 k3' in spec: conv needs a feature map"),
        (["--head", "linear", "--keep-head"], "--keep-head keeps the source's head"),
        (["--phases", "head:1:adam:1e-3"], "a phase's optimizer is sgd, adamw or muon, got 'adam'"),
        (["--phases", "head:1:adamw"], "a phase is TRAINS:EPOCHS:OPTIMIZER:LR"),
        (["--phases", PHASES, "--epochs", "3"], "--epochs does not combine with --phases"),
        (["--bn-stats", "update"], "--bn-stats applies under a frozen backbone"),
        (["--phases", PHASES, "--ema", "0.9"], "--ema does not combine with training phases"),
    ],
)
def test_bad_head_phases_and_bn_flags_are_one_line(weights, tmp_path, capsys, flags, message):
    code = main(["finetune", str(weights), "--dataset", "digits", "--out", str(tmp_path / "x"), *flags])
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and len(err.splitlines()) == 1, err


@pytest.mark.parametrize("bn_stats, moves", [("frozen", False), ("update", True)])
def test_bn_stats_under_a_frozen_backbone(weights, tmp_path, bn_stats, moves):
    """One frozen-backbone epoch: the running statistics are the source's bit for bit (frozen), or moved (update,
    the tutorial's model.train()); the backbone's weights are the source's either way."""
    out = tmp_path / bn_stats
    finetune(weights, freeze="backbone", head="linear", bn_stats=bn_stats, epochs=1, out=str(out), **RECIPE)
    source = create_model("mobilenet_v3_small", in_chans=1, weights=weights).state_dict()
    tuned = read_weights(out / "model.safetensors")
    assert torch.equal(tuned["features.1.block.0.0.weight"], source["features.1.block.0.0.weight"])
    assert torch.equal(tuned[BN_MEAN], source[BN_MEAN]) is not moves
    assert RunDir(out).read_finetune().values["bn_stats"] == bn_stats


@pytest.fixture(scope="module")
def phased(weights, tmp_path_factory):
    """The same two-phase run twice, every step checkpointed and kept: `full` to compare with, `part` to rewind."""
    root = tmp_path_factory.mktemp("phased")
    kwargs = dict(head="linear", phases=PHASES, checkpoint_every=1, keep_checkpoints=100, **RECIPE)
    full = finetune(weights, out=str(root / "full"), **kwargs)
    finetune(weights, out=str(root / "part"), **kwargs)
    return root, full


def test_two_phases_in_one_run(phased, weights):
    root, full = phased
    rows = RunDir(root / "full").read_metrics()
    assert [r["phase"] for r in rows] == [1, 2] and phase_marks(rows, ["head", "all"]) == [
        {"after_epoch": 1, "x": 1.5, "phase": 2, "label": "phase 2: all"}
    ]
    assert full["trainable_params"] == 5_770 and full["epochs"] == 2
    assert (root / "full" / "curves.png").read_bytes()[:4] == b"\x89PNG"
    source = create_model("mobilenet_v3_small", in_chans=1, weights=weights).state_dict()
    tuned = read_weights(root / "full" / "model.safetensors")
    assert not torch.equal(tuned["features.0.0.weight"], source["features.0.0.weight"])  # phase 2 trained it
    assert not torch.equal(tuned[BN_MEAN], source[BN_MEAN])  # and its statistics moved (phase 1 kept them)


@pytest.mark.slow
@pytest.mark.parametrize("rewind_to", [1, 2, 3])  # inside phase 1; at the boundary (epoch 1's end); in phase 2
def test_resume_across_the_phase_boundary_is_bit_exact(phased, tmp_path, rewind_to):
    root, full = phased
    part = shutil.copytree(root / "part", tmp_path / "part")
    (part / "checkpoints" / "latest").write_text(f"step-{rewind_to:08d}")  # as if it had died right after it
    (part / "model.safetensors").unlink()  # what the resumed run writes, not the part run's
    resumed = finetune(resume=str(part), quiet=True)
    assert resumed["test_loss"] == full["test_loss"]
    a, b = read_weights(root / "full" / "model.safetensors"), read_weights(part / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert [r["train_loss"] for r in RunDir(part).read_metrics()] == [
        r["train_loss"] for r in RunDir(root / "full").read_metrics()
    ]


def test_train_resume_of_a_finetuned_run_points_to_finetune(phased, capsys):
    root, _ = phased
    code = main(["train", "mobilenet_v3_small", "--resume", str(root / "part")])
    assert code == 2 and f"resume it with cnnlab finetune --resume {root / 'part'}" in capsys.readouterr().err
