"""The drop-block (lesion) experiment in quick mode: resnet-14, plain-14 and mini_vgg on 14 px digits, 2 epochs;
and its pretrained mode (exercise 20.3.3) on a random-weights ResNet-50 and a generated labelled folder."""

from __future__ import annotations

import copy
import csv
import json

import numpy as np
import pytest
import torch
import torchvision
from claim_checks import assert_claims_select_one_row_each
from PIL import Image
from torch import nn

from cnnlab.checkpoint import load_model_weights
from cnnlab.errors import CnnlabError
from cnnlab.experiments import run_experiment
from cnnlab.experiments.degradation import QUICK_SIDE, downsampled
from cnnlab.experiments.lesion import removable, remove_block, remove_layer, same_shape_blocks, vgg_layers
from cnnlab.imagenet_eval import evaluate_imagenet_folder, imagenet_wnids, labelled_images
from cnnlab.inference.evaluation import evaluate_arrays
from cnnlab.models.resnet import cifar_resnet, droppable_blocks
from cnnlab.registry import create_model

# Depth 14 = 2 blocks per stage; the first block of stages 2 and 3 halves the side and doubles the width.
BLOCKS = ["layer1.0", "layer1.1", "layer2.1", "layer3.1"]
# mini_vgg: each block's second conv keeps the width; its first widens it (1 -> 32, 32 -> 64, 64 -> 128).
VGG_LAYERS = ["block1.1", "block2.1", "block3.1"]
UNITS = {"resnet14": BLOCKS, "plain14": BLOCKS, "mini_vgg": VGG_LAYERS}


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    out = tmp_path_factory.mktemp("drop-block")
    return run_experiment("drop-block", quick=True, out=out), out


@pytest.mark.slow
def test_claims_select_one_row_each(result):
    """Each claim compares two distinct rows of the quick table in a numeric column; one seed resolves nothing."""
    res, _ = result
    assert_claims_select_one_row_each(res, 2)


@pytest.mark.slow
def test_one_row_per_removable_block_of_each_network(result):
    res, out = result
    expected = [(net, unit) for net, units in UNITS.items() for unit in ["none", *units, "mean over blocks"]]
    assert [(row["network"], row["removed_block"]) for row in res.rows] == expected
    with open(out / "results.csv") as handle:
        assert len(list(csv.DictReader(handle))) == 17
    for net, units in UNITS.items():
        lesions = [row["test_accuracy"] for row in res.rows if row["network"] == net and "." in row["removed_block"]]
        assert len(lesions) == len(units) and all(0.0 <= a <= 1.0 for a in lesions)
        mean_row = next(r for r in res.rows if r["network"] == net and r["removed_block"] == "mean over blocks")
        assert mean_row["test_accuracy"] == pytest.approx(sum(lesions) / len(units), abs=1e-12)
    assert (out / "drop_block.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    experiment = json.loads((out / "config.json").read_text())["experiment"]
    assert experiment["blocks"] == UNITS
    assert experiment["not_removable"] == {
        "mini_vgg": {
            "block1.0": "1 -> 32 channels",
            "block2.0": "32 -> 64 channels",
            "block3.0": "64 -> 128 channels",
        }
    }
    assert any("block1.0 (1 -> 32 channels)" in finding for finding in res.findings)


@pytest.mark.slow
def test_drops_are_measured_against_the_trained_networks_test_accuracy(result):
    res, out = result
    for net in UNITS:
        run_results = json.loads((out / "runs" / net / "results.json").read_text())
        rows = [row for row in res.rows if row["network"] == net]
        assert rows[0]["test_accuracy"] == run_results["test_accuracy"] > 0.5  # trained well past chance (10%)
        for row in rows[1:]:
            assert row["accuracy_drop"] == pytest.approx(rows[0]["test_accuracy"] - row["test_accuracy"], abs=1e-12)


@pytest.mark.slow
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
    vgg = create_model("mini_vgg", in_chans=1)
    load_model_weights(vgg, out / "runs" / "mini_vgg" / "model.safetensors")
    vgg.block2[1] = nn.Identity()  # the second conv-BN-ReLU of block 2 (64 -> 64)
    accuracy = evaluate_arrays(vgg, data.test_images, data.test_labels, data, channels_last=False)[1]
    row = next(r for r in res.rows if r["network"] == "mini_vgg" and r["removed_block"] == "block2.1")
    assert row["test_accuracy"] == pytest.approx(accuracy, abs=1e-9)


def test_vgg_layer_removal_rules():
    """A VGG layer goes only where its conv keeps the shape: each block's second; a removed one leaves a working
    network, the first of a block (it widens) is refused, naming the removable ones."""
    vgg = create_model("mini_vgg", in_chans=1)
    assert removable(vgg) == VGG_LAYERS
    assert vgg_layers(vgg)["block3.0"] == "64 -> 128 channels"
    remove_layer(vgg, "block2.1")
    assert isinstance(vgg.block2[1], nn.Identity) and vgg.eval()(torch.randn(2, 1, 14, 14)).shape == (2, 10)
    assert removable(vgg) == ["block1.1", "block3.1"]
    with pytest.raises(CnnlabError, match=r"block2.0 cannot be removed \(32 -> 64 channels"):
        remove_layer(vgg, "block2.0")
    assert removable(cifar_resnet(14, in_chans=1)) == BLOCKS


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


# ---------------------------------------------------------------------------------------------------------
# Exercise 20.3.3: a pretrained ImageNet ResNet-50 on a labelled folder (random weights and photos stand in)


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """A random-init torchvision ResNet-50 with randomised BN terms and BN statistics of random images (so images
    get different rankings), saved under IMAGENET1K_V1's file name, and 6 photos filed under their own top-1 class
    (even) or their 2nd-ranked class (odd), by WordNet id."""
    folder = tmp_path_factory.mktemp("pretrained")
    torch.manual_seed(0)
    model = torchvision.models.resnet50(weights=None)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.weight.uniform_(0.5, 0.8, generator=generator)
                module.bias.normal_(0.0, 0.2, generator=generator)
                module.reset_running_stats()
                module.momentum = None
        model.fc.weight.normal_(0.0, 2048**-0.5, generator=generator)
        model.train()(torch.randn(8, 3, 224, 224, generator=generator))
    model.eval()
    weights = folder / "resnet50-0676ba61.pth"
    torch.save(model.state_dict(), weights)
    transform = torchvision.models.ResNet50_Weights.IMAGENET1K_V1.transforms()
    rng = np.random.default_rng(2)
    for i in range(6):
        image = Image.fromarray(rng.integers(0, 256, (240, 320, 3), dtype=np.uint8))
        with torch.no_grad():
            ranked = model(transform(image)[None]).topk(2).indices[0]
        target = folder / "val" / imagenet_wnids()[ranked[i % 2].item()]
        target.mkdir(parents=True, exist_ok=True)
        image.save(target / f"{i}.png")
    return model, weights, folder / "val"


@pytest.mark.slow
def test_pretrained_resnet50_loses_each_droppable_block_in_turn(pretrained, tmp_path):
    model, weights, val = pretrained
    res = run_experiment(
        "drop-block", models="resnet50", weights=str(weights), dataset=f"imagefolder:{val}", out=tmp_path
    )
    # ResNet-50 has 3+4+6+3 Bottlenecks; the first of each stage changes the width, so 12 can go.
    expected = [
        "none",
        "layer1.1",
        "layer1.2",
        *(f"layer2.{i}" for i in (1, 2, 3)),
        *(f"layer3.{i}" for i in range(1, 6)),
        "layer4.1",
        "layer4.2",
    ]
    assert [row["removed_block"] for row in res.rows] == expected
    intact = evaluate_imagenet_folder("resnet50", weights, val)
    assert (res.rows[0]["top1"], res.rows[0]["top5"]) == (intact["top1"], intact["top5"]) == (0.5, 1.0)
    assert json.loads((tmp_path / "config.json").read_text())["experiment"]["images"] == 6
    with open(tmp_path / "results.csv") as handle:
        assert len(list(csv.DictReader(handle))) == 13

    # layer3.1 removed by hand from torchvision's own model, preprocessed by torchvision's own transforms.
    lesioned = copy.deepcopy(model)
    lesioned.layer3[1] = nn.Identity()
    transform = torchvision.models.ResNet50_Weights.IMAGENET1K_V1.transforms()
    images = labelled_images(val)
    with torch.no_grad():
        ranked = lesioned(torch.stack([transform(Image.open(p).convert("RGB")) for p, _ in images])).topk(5).indices
    labels = torch.tensor([label for _, label in images])
    row = next(r for r in res.rows if r["removed_block"] == "layer3.1")
    assert row["top1"] == (ranked[:, 0] == labels).float().mean().item()
    assert row["top5"] == (ranked == labels[:, None]).any(1).float().mean().item()
    assert row["top1_drop"] == pytest.approx(0.5 - row["top1"], abs=1e-12)


def test_pretrained_mode_needs_one_resnet_weights_and_a_folder(pretrained, tmp_path):
    _, weights, val = pretrained
    with pytest.raises(CnnlabError, match="one --model and its --weights"):
        run_experiment("drop-block", models="resnet50", dataset=f"imagefolder:{val}", out=tmp_path)
    with pytest.raises(CnnlabError, match="imagefolder:PATH"):
        run_experiment("drop-block", models="resnet50", weights=str(weights), dataset="digits", out=tmp_path)


def test_the_old_name_drop_block_still_names_the_lesion_experiment_and_says_so_once():
    import warnings

    from cnnlab import experiments
    from cnnlab.experiments import get_experiment

    experiments._warned.discard("drop-block")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert get_experiment("drop-block") is get_experiment("lesion")
        get_experiment("drop-block")
    assert [str(w.message) for w in caught] == [
        "experiment drop-block is now called lesion; the old name still works for now"
    ]
