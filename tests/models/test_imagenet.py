"""`cnnlab predict --model NAME --weights PATH IMAGE...` (cnnlab.imagenet): a torchvision checkpoint from a
local file, torchvision's preprocessing for those weights, the shipped ImageNet class names; top-5 indices and
probabilities equal torchvision's own model on torchvision's own preprocessing of the same image.

The checkpoints are random-init torchvision models saved to a temporary file; nothing is downloaded. Their BN
statistics are measured on random images (at init a deep net's logits barely depend on its input: GoogLeNet's
vary by 1e-8 between images) and their BN affine terms and linears randomised, so each image gets its own top-5.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image
from safetensors.torch import save_file
from twins import randomize_norms_

import cnnlab
from cnnlab.cli import main
from cnnlab.errors import CnnlabError
from cnnlab.imagenet import imagenet_classes, imagenet_weights_entry

TOP = 5


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Two RGB images of other sizes and aspect ratios than 224x224, and a grey one (converted to RGB)."""
    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    paths = []
    for name, shape in (("wide.png", (300, 400, 3)), ("tall.jpg", (500, 260, 3)), ("grey.png", (256, 256))):
        pixels = (rng.random(shape) * 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / name)
        paths.append(folder / name)
    return paths


@torch.no_grad()
def calibrate_norms_(model: torch.nn.Module) -> None:
    """Set every BN's running statistics to those of eight random ImageNet-normalised images (a train-mode pass
    with a cumulative average), so that each BN normalises what it sees; the model ends in eval mode."""
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None
    pixels = torch.rand(8, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    mean, std = (
        torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1),
        torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1),
    )
    model.train()(pixels.sub(mean).div(std))
    model.eval()


def torchvision_checkpoint(builder: str, folder, file_name: str, **kwargs) -> torch.nn.Module:
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # GoogLeNet's init_weights notice
        model = torchvision.models.get_model(builder, weights=None, **kwargs).eval()
    randomize_norms_(model, linear=True, max_gain=1.0)
    calibrate_norms_(model)
    path = folder / file_name
    if path.suffix == ".safetensors":
        save_file(model.state_dict(), path)
    else:
        torch.save(model.state_dict(), path)
    return model


@torch.no_grad()
def torchvision_top(model: torch.nn.Module, entry, paths) -> list[tuple[list[int], torch.Tensor]]:
    """torchvision's top-5 (indices, probabilities) for each image, preprocessed by `entry.transforms()`."""
    transform = entry.transforms()
    batch = torch.stack([transform(Image.open(path).convert("RGB")) for path in paths])
    probabilities = torch.softmax(model(batch), dim=1)
    top = probabilities.topk(TOP, dim=1)
    return [(indices.tolist(), values) for indices, values in zip(top.indices, top.values)]


def assert_same_top(results: list[dict], expected: list[tuple[list[int], torch.Tensor]]) -> None:
    classes = imagenet_classes()
    for item, (indices, probabilities) in zip(results, expected, strict=True):
        assert [classes.index(name) for name, _ in item["top"]] == indices
        torch.testing.assert_close(torch.tensor([p for _, p in item["top"]]), probabilities, atol=1e-5, rtol=0)
    # The ranking means something: each image has its own top-5, and its top class is clearly above uniform.
    assert len({tuple(indices) for indices, _ in expected}) == len(expected)
    assert all(probabilities[0] > 2 / len(classes) for _, probabilities in expected)


def test_the_class_names_are_torchvisions():
    names = imagenet_classes()
    assert len(names) == len(set(names)) == 1000
    assert names == tuple(torchvision.models.ResNet50_Weights.IMAGENET1K_V1.meta["categories"])
    assert names[:2] == ("tench", "goldfish") and names[-1] == "toilet tissue"


@pytest.mark.parametrize("file_name", ["resnet50.pth", "resnet50.safetensors"])
def test_resnet50_top5_equals_torchvision(file_name, photos, tmp_path):
    twin = torchvision_checkpoint("resnet50", tmp_path, file_name)
    results = cnnlab.predict(images=photos, model="resnet50", weights=tmp_path / file_name)
    entry = torchvision.models.ResNet50_Weights.DEFAULT  # no file name of torchvision's: its DEFAULT weights
    assert results[0]["preprocessing"] == {
        "weights": "ResNet50_Weights.IMAGENET1K_V2",
        "resize": [232],
        "crop": [224],
        "mean": [0.485, 0.456, 0.406],
        "std": [0.229, 0.224, 0.225],
    }
    assert_same_top(results, torchvision_top(twin, entry, photos))
    assert [item["image"] for item in results] == [str(path) for path in photos]


def test_a_torchvision_file_name_picks_those_weights_preprocessing(photos, tmp_path, capsys):
    twin = torchvision_checkpoint("resnet50", tmp_path, "resnet50-0676ba61.pth")  # IMAGENET1K_V1's download
    entry = imagenet_weights_entry("resnet50", tmp_path / "resnet50-0676ba61.pth")
    assert entry is torchvision.models.ResNet50_Weights.IMAGENET1K_V1 and entry.transforms().resize_size == [256]
    argv = [
        "predict",
        "--model",
        "resnet50",
        "--weights",
        str(tmp_path / "resnet50-0676ba61.pth"),
        *map(str, photos[:2]),
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "preprocessed as torchvision's ResNet50_Weights.IMAGENET1K_V1: resize 256, center-crop 224" in out
    classes = imagenet_classes()
    (indices, probabilities), _ = torchvision_top(twin, entry, photos[:2])
    expected = [
        f"  {rank}. {classes[i]:<20} {p:7.2%}" for rank, (i, p) in enumerate(zip(indices, probabilities.tolist()), 1)
    ]
    assert out.splitlines()[2 : 2 + TOP] == expected


def test_googlenet_gets_torchvisions_input_transform(photos, tmp_path):
    # torchvision's ImageNet GoogLeNet was ported from Caffe: loading its weights sets transform_input=True.
    twin = torchvision_checkpoint(
        "googlenet", tmp_path, "googlenet.pth", transform_input=True, aux_logits=False, init_weights=False
    )
    results = cnnlab.predict(images=photos, model="googlenet_tv", weights=tmp_path / "googlenet.pth")
    expected = torchvision_top(twin, torchvision.models.GoogLeNet_Weights.DEFAULT, photos)
    assert_same_top(results, expected)
    twin.transform_input = False  # without it the ranking differs, so the equality above checks the transform
    assert torchvision_top(twin, torchvision.models.GoogLeNet_Weights.DEFAULT, photos)[0][0] != expected[0][0]


def test_imagenet_predict_errors(photos, tmp_path, capsys):
    image = str(photos[0])
    cases = [
        (
            ["--model", "resnet50", image],
            "--model resnet50 needs --weights PATH, a torchvision ImageNet checkpoint (.pth or .safetensors)",
        ),
        (
            ["--weights", "w.pth", image],
            "--weights w.pth needs --model NAME, the architecture it holds (e.g. resnet50)",
        ),
        (
            ["--model", "resnet50", "--weights", str(tmp_path / "nope.pth"), image],
            f"weights file {tmp_path / 'nope.pth'} does not exist",
        ),
    ]
    for argv, message in cases:
        assert main(["predict", *argv]) == 2
        assert capsys.readouterr().err.strip() == f"cnnlab: error: {message}"
    assert main(["predict", "--model", "preact_resnet18", "--weights", "w.pth", image]) == 2
    assert capsys.readouterr().err.startswith(
        "cnnlab: error: preact_resnet18 has no torchvision twin, so no ImageNet checkpoint fits it; "
        "models with one: alexnet, "
    )
    torch.save(torchvision.models.resnet18(weights=None, num_classes=10).state_dict(), tmp_path / "ten.pth")
    with pytest.raises(
        CnnlabError,
        match=r"ten.pth is not an ImageNet-1k checkpoint: .*the checkpoint's head has 10 classes, the model 1000",
    ):
        cnnlab.predict(images=[image], model="resnet18", weights=tmp_path / "ten.pth")
    with pytest.raises(CnnlabError, match=r"^predict needs at least one image file$"):
        cnnlab.predict(images=[], model="resnet18", weights=tmp_path / "ten.pth")
    with pytest.raises(CnnlabError, match=r"^pass either a run directory or model= and weights=, not both$"):
        cnnlab.predict("runs/x", [image], model="resnet18", weights=tmp_path / "ten.pth")
    with pytest.raises(
        CnnlabError, match=r"^predict needs a run directory, or model= and weights= for an ImageNet checkpoint$"
    ):
        cnnlab.predict(images=[image])
