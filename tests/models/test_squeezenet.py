"""SqueezeNet 1.0 / 1.1 against torchvision; the Fire module; the conv classifier behind the uniform interface."""

import pytest
import torch
import torchvision
from torch import nn
from twins import n_params

from cnnlab import create_model, model_info
from cnnlab.models.squeezenet import Fire

ANCHORS = {"squeezenet1_0": 1_248_424, "squeezenet1_1": 1_235_496}  # /work/shared/reference/anchors.md
# The Fire modules alone: everything but the stem conv and the final 1000-way 1x1 conv.
FIRES = {"squeezenet1_0": 1_248_424 - (96 * 3 * 7 * 7 + 96) - (512 * 1000 + 1000),
         "squeezenet1_1": 1_235_496 - (64 * 3 * 3 * 3 + 64) - (512 * 1000 + 1000)}  # fmt: skip


@pytest.mark.parametrize("name", ["squeezenet1_0", "squeezenet1_1"])
@torch.no_grad()
def test_matches_torchvision(name):
    torch.manual_seed(0)
    reference = getattr(torchvision.models, name)(weights=None).eval()
    ours = create_model(name).eval()
    assert model_info(name).twin == name
    assert n_params(ours) == n_params(reference) == ANCHORS[name]
    ours.load_state_dict(ours.adapt_state_dict(reference.state_dict()))
    x = torch.randn(2, 3, 64, 64)
    expected = reference(x)
    assert expected.abs().max() > 1e-2
    torch.testing.assert_close(ours(x), expected, atol=1e-4, rtol=1e-4)
    # stem 64 -> 29 (1_0) or 31 (1_1), then ceil-mode pools -> 14 or 15 -> 7 -> 3
    assert ours.forward_features(x).shape == (2, 512, 3, 3)


def test_fire_module_concatenates_the_expands():
    fire = Fire(96, 16, 64, 64)
    # squeeze 96*16+16, expand1x1 16*64+64, expand3x3 16*64*9+64
    assert n_params(fire) == 1_552 + 1_088 + 9_280 == 11_920
    out = fire(torch.randn(2, 96, 9, 9))
    assert out.shape == (2, 128, 9, 9)
    assert (out >= 0).all()  # both halves pass a ReLU


def test_fire_halves_are_the_two_expand_branches():
    torch.manual_seed(0)
    fire = Fire(32, 8, 16, 24)
    x = torch.randn(2, 32, 7, 7)
    squeezed = torch.relu(fire.squeeze(x))
    out = fire(x)
    torch.testing.assert_close(out[:, :16], torch.relu(fire.expand1x1(squeezed)))
    torch.testing.assert_close(out[:, 16:], torch.relu(fire.expand3x3(squeezed)))


@pytest.mark.parametrize("name", ["squeezenet1_0", "squeezenet1_1"])
def test_small_input(name):
    torch.manual_seed(0)
    model = create_model(name, num_classes=10, in_chans=1, small_input=True).eval()
    stem_width = {"squeezenet1_0": 96, "squeezenet1_1": 64}[name]
    # the same Fires, a 1-channel 3x3 stem and a 10-way 1x1 conv (512*10+10)
    assert n_params(model) == FIRES[name] + stem_width * 9 + stem_width + 5_130
    with torch.no_grad():
        assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)
        assert create_model(name, num_classes=10, small_input=True)(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert n_params(model) == {"squeezenet1_0": 727_306, "squeezenet1_1": 726_474}[name]


def test_conv_classifier_behind_the_uniform_interface():
    torch.manual_seed(0)
    model = create_model("squeezenet1_1", num_classes=10, small_input=True).eval()
    classifier = model.get_classifier()
    assert isinstance(classifier, nn.Conv2d) and classifier is model.classifier[1]
    assert (classifier.in_channels, classifier.out_channels, classifier.kernel_size) == (512, 10, (1, 1))
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        features = model.forward_features(x)  # the stride-1 stem keeps 32, then two ceil-mode pools: 32 -> 16 -> 8
        assert features.shape == (2, 512, 8, 8)
        assert model.forward_head(features, pre_logits=True).shape == (2, 512)
        torch.testing.assert_close(model.forward_head(features, pre_logits=True), features.mean((2, 3)))
    model.reset_classifier(5)
    new = model.get_classifier()
    assert new is model.classifier[1] and new is not classifier and isinstance(new, nn.Conv2d)
    assert new.out_channels == 5 and model.num_classes == 5
    assert new.bias.detach().abs().sum().item() == 0.0 and new.weight.detach().std().item() < 0.02  # N(0, 0.01)
    with torch.no_grad():
        assert model(x).shape == (2, 5)
    assert set(model.state_dict()) == set(create_model("squeezenet1_1", num_classes=5).state_dict())
