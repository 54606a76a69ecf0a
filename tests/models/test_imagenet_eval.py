"""`cnnlab eval --model NAME --weights FILE --dataset imagefolder:PATH` (cnnlab.imagenet_eval): class folders
mapped to ImageNet outputs by WordNet id or class name, torchvision's preprocessing, top-1 and top-5 equal to
torchvision's own model and transforms on the same files. The checkpoint is a random-init torchvision ResNet-18
with randomised, calibrated norms (so each image gets its own ranking), saved to a temporary file."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image
from twins import randomize_norms_

from cnnlab.cli import main
from cnnlab.errors import CnnlabError
from cnnlab.imagenet import imagenet_classes
from cnnlab.imagenet_eval import imagenet_index, imagenet_wnids, labelled_images

V1_FILE = "resnet18-f37072fd.pth"  # IMAGENET1K_V1's download name: resize 256, crop 224


def test_wnids_are_the_sorted_ilsvrc_synsets_in_output_order():
    wnids = imagenet_wnids()
    assert len(wnids) == len(set(wnids)) == 1000 and list(wnids) == sorted(wnids)
    assert wnids[0] == "n01440764" and wnids[-1] == "n15075141"
    # torchvision's Imagenette lists ten wnids with their names: each lands on torchvision's class of that name.
    for wnid, names in torchvision.datasets.Imagenette._WNID_TO_CLASS.items():
        assert imagenet_classes()[wnids.index(wnid)] == names[0]


def test_folder_names_map_by_wnid_or_class_name():
    assert imagenet_index("n01443537") == imagenet_index("goldfish") == 1
    assert imagenet_index("Great_White_Shark") == imagenet_index("great white shark") == 2
    assert imagenet_index("toilet tissue") == 999
    assert (imagenet_index("crane bird"), imagenet_index("crane")) == (134, 517)  # torchvision's names are unique
    with pytest.raises(CnnlabError, match="names two ImageNet classes"):
        imagenet_index("cardigan")  # ... except for case: 264 "Cardigan" (the corgi), 474 "cardigan" (the sweater)
    with pytest.raises(CnnlabError, match="neither an ImageNet WordNet id"):
        imagenet_index("my_cat")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None)
    randomize_norms_(model, linear=True, max_gain=1.0)
    with torch.no_grad():  # BN statistics of random normalised images, so each BN normalises what it sees
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.reset_running_stats()
                module.momentum = None
        model.train()(torch.randn(8, 3, 224, 224, generator=torch.Generator().manual_seed(0)))
    path = tmp_path_factory.mktemp("weights") / V1_FILE
    torch.save(model.state_dict(), path)
    return model.eval(), path


@torch.no_grad()
def torchvision_ranking(model, files) -> torch.Tensor:
    transform = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.transforms()
    batch = torch.stack([transform(Image.open(path).convert("RGB")) for path in files])
    return model(batch).topk(5, dim=1).indices  # [N, 5]


def labelled_folder(root, model) -> None:
    """Eight photos of other sizes than 224; the even ones filed under their own top-1 class (by WordNet id), the
    odd ones under their 3rd-ranked class (by name), so top-1 is 4/8 and top-5 8/8 by construction."""
    rng = np.random.default_rng(1)
    loose = []
    for i in range(8):
        path = root / f"{i}.png"
        Image.fromarray(rng.integers(0, 256, (200 + 10 * i, 300, 3), dtype=np.uint8)).save(path)
        loose.append(path)
    ranking = torchvision_ranking(model, loose)
    for i, path in enumerate(loose):
        index = ranking[i, 0 if i % 2 == 0 else 2].item()
        folder = root / (imagenet_wnids()[index] if i % 2 == 0 else imagenet_classes()[index].replace(" ", "_"))
        folder.mkdir(exist_ok=True)
        path.rename(folder / path.name)


def test_top1_and_top5_equal_torchvisions(checkpoint, tmp_path, capsys):
    model, weights = checkpoint
    root = tmp_path / "val"
    root.mkdir()
    labelled_folder(root, model)
    images = labelled_images(root)
    ranking = torchvision_ranking(model, [path for path, _ in images])
    labels = torch.tensor([label for _, label in images])
    expected_top1 = (ranking[:, 0] == labels).float().mean().item()
    expected_top5 = (ranking == labels[:, None]).any(1).float().mean().item()
    assert (expected_top1, expected_top5) == (0.5, 1.0)  # the folder is what labelled_folder meant it to be

    argv = ["eval", "--model", "resnet18", "--weights", str(weights), "--dataset", f"imagefolder:{root}"]
    assert main([*argv, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["top1"], result["top5"]) == (expected_top1, expected_top5)
    assert result["images"] == 8 and result["preprocessing"]["resize"] == [256]
    assert sum(result["per_class_top1"].values()) == pytest.approx(
        sum(1.0 for name in result["per_class_top1"] if name.startswith("n")), abs=1e-9
    )  # wnid folders: all right

    assert main(argv) == 0
    assert "top-1 50.00%, top-5 100.00%" in capsys.readouterr().out


def test_an_unmapped_folder_is_a_one_line_error(checkpoint, tmp_path, capsys):
    _, weights = checkpoint
    (tmp_path / "val" / "my_cat").mkdir(parents=True)
    Image.new("RGB", (64, 64)).save(tmp_path / "val" / "my_cat" / "a.png")
    folder = f"imagefolder:{tmp_path / 'val'}"
    assert main(["eval", "--model", "resnet18", "--weights", str(weights), "--dataset", folder]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "'my_cat' is neither an ImageNet WordNet id" in err
    assert main(["eval", "--model", "resnet18", "--dataset", folder]) == 2
    assert "--model, --weights and --dataset" in capsys.readouterr().err
