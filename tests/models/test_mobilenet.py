"""MobileNet v1/v2/v3: the paper's v1 counts, and v2/v3 equal to torchvision (counts, BN settings, logits)."""

import pytest
import torch
import torchvision
from torch import nn
from twins import assert_logits_match, images, n_params, stage_shapes, torchvision_pair

from cnnlab import create_model, model_info
from cnnlab.models.mobilenet import MobileNetV2, mobilenet_v1, mobilenet_v2

TWINS = {"mobilenet_v2": 3_504_872, "mobilenet_v3_small": 2_542_856, "mobilenet_v3_large": 5_483_032}


@pytest.fixture(scope="module", params=sorted(TWINS))
def twin_pair(request):
    """(name, ours, torchvision's): torchvision's with randomised BNs and unit-gain linears, loaded into ours
    (twins.torchvision_pair)."""
    return request.param, *torchvision_pair(request.param, linear=True)


def test_parameter_counts_equal_torchvision(twin_pair):
    name, ours, theirs = twin_pair
    assert n_params(ours) == n_params(theirs) == TWINS[name]


def test_logits_equal_torchvision(twin_pair):
    _, ours, theirs = twin_pair
    assert assert_logits_match(ours, theirs, images(64)).shape == (2, 1000)


def test_batchnorm_settings_equal_torchvision(twin_pair):
    # v3 keeps TensorFlow's eps 1e-3 / momentum 0.01; v2 PyTorch's 1e-5 / 0.1.
    name, ours, theirs = twin_pair
    settings = [(m.eps, m.momentum) for m in ours.modules() if isinstance(m, nn.BatchNorm2d)]
    assert settings == [(m.eps, m.momentum) for m in theirs.modules() if isinstance(m, nn.BatchNorm2d)]
    assert settings[0] == ((1e-3, 0.01) if "v3" in name else (1e-5, 0.1))


def test_registry_metadata():
    assert model_info("mobilenet_v1").twin is None
    assert model_info("mobilenet_v2").twin == "mobilenet_v2"
    assert model_info("mobilenet_v3_large").twin == "mobilenet_v3_large"
    assert model_info("mobilenet_v3_small").input_size == (3, 224, 224)
    assert model_info("mobilenet_v2").year == 2018


# ------------------------------------------------------------------------------------------------ v1


def v1_count_by_hand(width: float = 1.0, num_classes: int = 1000) -> int:
    """Paper Table 1 counted layer by layer: the stem 3x3x3x32 conv + BN, then per depthwise separable layer
    a 3x3 depthwise conv (9c) + BN (2c) and a 1x1 pointwise conv (c*o) + BN (2o), then the 1024 -> 1000 FC."""
    channels = [32, 64, 128, 128, 256, 256, 512, 512, 512, 512, 512, 512, 1024, 1024]
    channels = [int(c * width) for c in channels]  # multiples of 8 for the paper's widths, so no rounding
    total = 27 * channels[0] + 2 * channels[0]
    for c, o in zip(channels, channels[1:]):
        total += 9 * c + 2 * c + c * o + 2 * o
    return total + channels[-1] * num_classes + num_classes


@pytest.mark.parametrize(
    "width, paper_millions, exact",
    [(1.0, 4.2, 4_231_976), (0.75, 2.6, 2_585_560), (0.5, 1.3, 1_331_592), (0.25, 0.5, 470_072)],
)
def test_v1_counts_match_paper(width, paper_millions, exact):
    # Table 8 gives 4.2 million at width 1.0; Table 6 gives 2.6 / 1.3 / 0.5 million at 0.75 / 0.5 / 0.25.
    count = n_params(mobilenet_v1(width_mult=width))
    assert count == exact == v1_count_by_hand(width)
    assert round(count / 1e6, 1) == paper_millions


def test_v1_is_depthwise_separable():
    model = mobilenet_v1()
    assert len(model.features) == 14  # stem + 13 depthwise separable layers
    depthwise, pointwise = model.features[1][0][0], model.features[1][1][0]
    assert (depthwise.groups, depthwise.kernel_size, depthwise.in_channels) == (32, (3, 3), 32)
    assert (pointwise.groups, pointwise.kernel_size, pointwise.out_channels) == (1, (1, 1), 64)
    assert isinstance(model.features[1][1][2], nn.ReLU)  # v1's pointwise conv is followed by a ReLU
    assert model.features[13][0][0].stride == (1, 1)  # Table 1's last "s2" is a typo: 7x7 in, 7x7 out
    with torch.no_grad():
        features = model.forward_features(torch.randn(2, 3, 64, 64))
    assert features.shape == (2, 1024, 2, 2)  # side / 32


# ------------------------------------------------------------------------------------------------ v2 / v3


def test_v2_adapt_state_dict_maps_torchvision_keys():
    model = mobilenet_v2()
    keys = {
        "features.1.conv.0.0.weight": "features.1.block.0.0.weight",  # t=1: depthwise first
        "features.1.conv.1.weight": "features.1.block.1.0.weight",  # its projection conv ...
        "features.1.conv.2.running_var": "features.1.block.1.1.running_var",  # ... and BN
        "features.2.conv.0.1.bias": "features.2.block.0.1.bias",  # t=6: expand
        "features.2.conv.2.weight": "features.2.block.2.0.weight",
        "features.2.conv.3.running_mean": "features.2.block.2.1.running_mean",
        "classifier.1.weight": "classifier.1.weight",
    }
    adapted = model.adapt_state_dict({k: torch.zeros(1) for k in keys})
    assert sorted(adapted) == sorted(keys.values())
    ours = model.state_dict()
    assert model.adapt_state_dict(ours).keys() == ours.keys()  # our own checkpoints pass through


def test_v2_width_multiplier_matches_torchvision():
    ours = MobileNetV2(width_mult=0.5)
    theirs = torchvision.models.mobilenet_v2(weights=None, width_mult=0.5)
    assert n_params(ours) == n_params(theirs) == 1_968_680  # the last conv stays at 1280 below width 1


@pytest.mark.parametrize(
    "name, pre_logits",
    [("mobilenet_v1", 1024), ("mobilenet_v2", 1280), ("mobilenet_v3_small", 1024), ("mobilenet_v3_large", 1280)],
)
def test_feature_pyramid_head_and_reset(name, pre_logits):
    model = create_model(name).eval()
    shapes, features = stage_shapes(model, torch.randn(2, 3, 64, 64), model.forward_features)
    with torch.no_grad():
        assert model.forward_head(features, pre_logits=True).shape == (2, pre_logits)
    assert [shape[-1] for shape in shapes] == [32, 16, 8, 4, 2]  # strides 2, 4, 8, 16, 32
    assert features.shape[1] == model.num_features
    model.reset_classifier(5)
    with torch.no_grad():
        assert model(torch.randn(2, 3, 64, 64)).shape == (2, 5)


@pytest.mark.parametrize("name", ["mobilenet_v1", "mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large"])
@pytest.mark.parametrize("in_chans, side", [(1, 28), (3, 32)])
def test_small_input(name, in_chans, side):
    model = create_model(name, num_classes=10, in_chans=in_chans, small_input=True).eval()
    with torch.no_grad():
        features = model.forward_features(torch.randn(2, in_chans, side, side))
        logits = model.forward_head(features)
    assert features.shape[-1] == 2  # the stride-1 stem leaves side / 16: 28 -> 2 (with padding), 32 -> 2
    assert logits.shape == (2, 10)
    assert torch.isfinite(logits).all()
