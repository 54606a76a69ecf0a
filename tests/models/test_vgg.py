"""VGG-11/13/16/19 (+BN) against torchvision: parameter counts, checkpoint loading, identical logits; small_input."""

import pytest
import torch
import torchvision
from twins import n_params, stage_shapes

from cnnlab import create_model, model_info
from cnnlab.models.vgg import VGG_CONFIGS

NAMES = ["vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn"]
# torchvision's IMAGENET1K_V1 metadata, /work/shared/reference/anchors.md.
ANCHORS = {
    "vgg11": 132_863_336,
    "vgg11_bn": 132_868_840,
    "vgg16": 138_357_544,
    "vgg16_bn": 138_365_992,
    "vgg19": 143_667_240,
}


def ours_without_init(name: str) -> torch.nn.Module:
    """Our model on the meta device: the structure without spending seconds on initialising 130M weights
    that a checkpoint replaces anyway (the initialisation runs in the small_input tests)."""
    with torch.device("meta"):
        return create_model(name)


@pytest.fixture(scope="module", params=NAMES)
def twin(request):
    """(name, torchvision's model), built once per name; ~130M parameters each, so one at a time."""
    torch.manual_seed(0)
    model = getattr(torchvision.models, request.param)(weights=None).eval()
    yield request.param, model
    del model


def test_parameter_count_equals_torchvision(twin):
    name, reference = twin
    assert model_info(name).twin == name
    assert n_params(ours_without_init(name)) == n_params(reference)
    if name in ANCHORS:
        assert n_params(reference) == ANCHORS[name]


@torch.no_grad()
def test_loads_torchvision_checkpoint_with_identical_logits(twin):
    name, reference = twin
    ours = ours_without_init(name)
    # strict, and assign=True still checks every key and shape; the meta tensors become torchvision's.
    ours.load_state_dict(ours.adapt_state_dict(reference.state_dict()), assign=True)
    ours.eval()
    x = torch.randn(2, 3, 32, 32)  # VGG's smallest input: five 2x2 pools, then the adaptive 7x7 pool
    expected = reference(x)
    assert expected.abs().max() > 1e-3  # not a degenerate all-zero comparison
    torch.testing.assert_close(ours(x), expected, atol=1e-4, rtol=1e-4)
    hidden = ours.forward_head(ours.forward_features(x), pre_logits=True)  # the final linear's input
    assert hidden.shape == (2, 4096)
    torch.testing.assert_close(reference.classifier[-1](hidden), expected, atol=1e-4, rtol=1e-4)


def test_config_table_depths():
    # depth = 3x3 convs + 3 fully connected layers
    for depth, config in VGG_CONFIGS.items():
        assert sum(item != "M" for item in config) + 3 == depth
        assert config.count("M") == 5


def test_small_input_parameter_count_and_shapes():
    torch.manual_seed(0)
    model = create_model("vgg16", num_classes=10, small_input=True).eval()
    # vgg16's convs 14,714,688 (138,357,544 minus its three linears) + 512*512+512 twice + 512*10+10
    assert n_params(model) == 14_714_688 + 2 * 262_656 + 5_130 == 15_245_130
    with torch.no_grad():
        assert model.forward_features(torch.randn(2, 3, 32, 32)).shape == (2, 512, 2, 2)  # four pools: 32 -> 2
        assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    gray = create_model("vgg11_bn", num_classes=10, in_chans=1, small_input=True).eval()
    with torch.no_grad():
        assert gray.forward_features(torch.randn(2, 1, 28, 28)).shape == (2, 512, 1, 1)  # 28 -> 14 -> 7 -> 3 -> 1
        assert gray(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    assert gray.features[0].weight.shape == (64, 1, 3, 3)


def test_stages_are_the_last_layer_at_each_resolution():
    model = create_model("vgg11", num_classes=10, small_input=True).eval()
    assert model.stage_names == ("features.1", "features.4", "features.9", "features.14", "features.19")
    outputs, _ = stage_shapes(model, torch.randn(1, 3, 32, 32))
    assert outputs == [(1, 64, 32, 32), (1, 128, 16, 16), (1, 256, 8, 8), (1, 512, 4, 4), (1, 512, 2, 2)]


def test_reset_classifier():
    model = create_model("vgg11", num_classes=10, small_input=True)
    model.reset_classifier(5)
    assert model.get_classifier() is model.classifier[6]
    assert model.classifier[6].out_features == 5 and model.num_classes == 5
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 5)
