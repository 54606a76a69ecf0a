"""The Python side of `cnnlab visualize`: preprocessing as `predict` does it, the exported names, filters, the
misclassified picks and the typed errors."""

import subprocess
import sys

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image
from safetensors.torch import load_file

import cnnlab
from cnnlab.data import normalize
from cnnlab.inference.prediction import load_image
from cnnlab.visualization.errors import ChannelMismatchError, NotAConvError, TargetOutOfRangeError, UnknownLayerError
from cnnlab.visualization.heatmaps import probabilities
from cnnlab.visualization.kernels import filter_tiles, filters
from cnnlab.visualization.loading import imagenet_subject, prepare_images, run_subject
from cnnlab.visualization.report import pick_test_images


def test_import_stays_light_and_names_are_the_functions():
    code = (
        "import sys, cnnlab; assert 'captum' not in sys.modules and 'matplotlib' not in sys.modules; "
        "import cnnlab.visualization.heatmaps, cnnlab.visualization.kernels, cnnlab.visualization.report; "
        "names = ('load_model', 'feature_maps', 'attribution', 'visualize'); "
        "assert all(getattr(cnnlab, n).__name__ == n for n in names)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_load_model_is_the_runs_weights_in_eval_mode(quadrant_run):
    model = cnnlab.load_model(quadrant_run.run_dir)
    assert not model.training
    saved = load_file(quadrant_run.run_dir / "model.safetensors")
    state = model.state_dict()
    assert set(saved) <= set(state) and all(torch.equal(state[k], v) for k, v in saved.items())


def test_a_file_is_preprocessed_as_predict_does(quadrant_run, tmp_path):
    array = np.random.default_rng(1).integers(0, 256, (45, 37), dtype=np.uint8)  # another size: resized to 32
    Image.fromarray(array, mode="L").save(tmp_path / "odd.png")
    subject = run_subject(quadrant_run.run_dir)
    batch = prepare_images(subject, [tmp_path / "odd.png"])
    assert torch.equal(batch.pixels[0], load_image(tmp_path / "odd.png", 1, 32))
    assert torch.equal(batch.inputs, normalize(batch.pixels, subject.mean, subject.std))
    # The same pixels given as a uint8 tensor or as a PIL image give the same maps.
    from_file = cnnlab.feature_maps(quadrant_run.run_dir, [tmp_path / "odd.png"])
    from_tensor = cnnlab.feature_maps(quadrant_run.run_dir, batch.pixels)
    from_pil = cnnlab.feature_maps(quadrant_run.run_dir, [Image.open(tmp_path / "odd.png")])
    assert list(from_file) == ["conv1", "conv2"]
    assert all(torch.equal(from_file[k], from_tensor[k]) and torch.equal(from_file[k], from_pil[k]) for k in from_file)


def test_imagenet_checkpoint_is_preprocessed_as_torchvision_does(tmp_path):
    weights = tmp_path / "squeezenet1_1-b8a52dc0.pth"
    torch.save(torchvision.models.squeezenet1_1().state_dict(), weights)
    photo = Image.fromarray(np.random.default_rng(0).integers(0, 256, (300, 400, 3), dtype=np.uint8))
    subject = imagenet_subject("squeezenet1_1", weights)
    batch = prepare_images(subject, [photo])
    expected = torchvision.models.SqueezeNet1_1_Weights.IMAGENET1K_V1.transforms()(photo)  # resize 256, crop 224
    assert batch.pixels.shape == (1, 3, 224, 224)
    torch.testing.assert_close(batch.inputs[0], expected, atol=1e-5, rtol=0)


def test_channels_must_match(quadrant_run):
    with pytest.raises(ChannelMismatchError, match="the images have 3 channel"):
        cnnlab.feature_maps(quadrant_run.run_dir, torch.zeros(1, 3, 32, 32, dtype=torch.uint8))
    grey = Image.fromarray(np.full((32, 32), 128, dtype=np.uint8), mode="L")
    model = cnnlab.create_model("resnet20", num_classes=4)  # 3 channels: a grey image becomes three equal ones
    maps = cnnlab.feature_maps(model, [grey])
    assert maps["layer3"].shape == (1, 64, 8, 8)


def test_filters_of_the_first_conv_and_of_a_named_one():
    torch.manual_seed(0)
    rgb = cnnlab.create_model("resnet18")
    name, weights = filters(rgb)
    assert name == "conv1" and weights.shape == (64, 3, 7, 7)
    tiles = filter_tiles(weights)
    assert tiles.shape == (64, 7, 7, 3)
    assert tiles.flatten(1).amin(1).tolist() == [0.0] * 64 and tiles.flatten(1).amax(1).tolist() == [1.0] * 64
    name, weights = filters(rgb, "layer2.0.conv1")
    assert weights.shape == (128, 64, 3, 3) and filter_tiles(weights).shape == (128, 3, 3)
    with pytest.raises(NotAConvError, match="'bn1' is a BatchNorm2d"):
        filters(rgb, "bn1")
    with pytest.raises(UnknownLayerError, match="did you mean: layer1"):
        filters(rgb, "layer_1")


def test_misclassified_picks_only_wrong_predictions(quadrant_run):
    subject = run_subject(quadrant_run.run_dir)
    torch.manual_seed(0)
    for module in subject.model.modules():  # a random model gets most wrong
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
    batch = pick_test_images(subject, 3, misclassified=True)
    assert len(batch.names) == 3 and len(set(batch.names)) == 3
    predicted = probabilities(subject.model, batch.inputs).argmax(1)
    assert all(p != label for p, label in zip(predicted.tolist(), batch.labels))
    seeded = pick_test_images(subject, 5)  # the same seed picks the same images
    assert seeded.names == pick_test_images(subject, 5).names and len(set(seeded.names)) == 5


def test_attribution_targets(quadrant_run):
    images = torch.zeros(2, 1, 32, 32, dtype=torch.uint8)
    with pytest.raises(TargetOutOfRangeError, match="--target -1 is out of range"):
        cnnlab.attribution(quadrant_run.run_dir, images, target=-1)
    with pytest.raises(cnnlab.CnnlabError, match="3 targets for 2 images"):
        cnnlab.attribution(quadrant_run.run_dir, images, target=[0, 1, 2])
    with pytest.raises(cnnlab.CnnlabError, match="unknown attribution method 'lime'"):
        cnnlab.attribution(quadrant_run.run_dir, images, method="lime")
