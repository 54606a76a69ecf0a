"""The tutorials' own networks: exact parameter counts, shapes, and the building blocks' shortcut rule."""

import pytest
import torch
from twins import n_params

from cnnlab import create_model, model_info
from cnnlab.models.blocks import BasicBlock, Bottleneck


@pytest.mark.parametrize(
    "name, kwargs, expected",
    [
        ("lenet5", {}, 61_706),  # 1x32x32, the paper's input (tutorial 001)
        ("lenet5", {"input_size": 32}, 61_706),
        ("lenet5", {"input_size": 28}, 44_426),  # 1x28x28 (tutorial 000): conv 156 + 2,416, fc 30,840 + 10,164 + 850
        ("simple_cnn", {}, 206_922),  # conv 160 + 4,640, fc 200,832 + 1,290
        # As written: stem conv 320 + BN 64, 3 blocks x (2 x 9,248 conv + 2 x 64 BN), fc 330.
        # The tutorial states 56,170.
        ("simple_resnet", {}, 56_586),
        ("mini_vgg", {}, 289_194),  # blocks 10,272 + 55,680 + 221,952, fc 1,290 ("~290k" in tutorial 001)
        ("tiny_resnet", {}, 2_797_610),  # "roughly 2.8M" in tutorial 001
        ("mini_resnet", {}, 2_777_674),  # tutorial 004 prints it without stating a value
    ],
)
def test_exact_parameter_counts(name, kwargs, expected):
    assert n_params(create_model(name, **kwargs)) == expected


def test_lenet5_dimension_flow_at_28():
    model = create_model("lenet5", input_size=28)
    x = torch.randn(2, 1, 28, 28)
    assert model.conv1(x).shape == (2, 6, 24, 24)
    features = model.forward_features(x)
    assert features.shape == (2, 16, 4, 4)  # 28 -> 24 -> 12 -> 8 -> 4
    assert model.fc1.in_features == 256 and model.fc1.out_features == 120
    assert model(x).shape == (2, 10)


@pytest.mark.parametrize("name", ["lenet5", "simple_cnn", "simple_resnet", "mini_vgg", "tiny_resnet", "mini_resnet"])
@pytest.mark.parametrize("in_chans", [1, 3])
def test_in_chans_and_num_classes(name, in_chans):
    size = 32 if name == "lenet5" else 28
    model = create_model(name, num_classes=7, in_chans=in_chans, input_size=size).eval()
    out = model(torch.randn(2, in_chans, size, size))
    assert out.shape == (2, 7)
    assert torch.isfinite(out).all()


def test_tutorial_models_default_to_their_inputs():
    assert model_info("lenet5").input_size == (1, 32, 32)
    assert model_info("simple_cnn").input_size == (1, 28, 28)
    assert model_info("mini_vgg").input_size == (3, 32, 32)
    assert create_model("simple_resnet").in_chans == 1
    assert create_model("tiny_resnet").in_chans == 3


def test_simple_resnet_is_the_tutorial_architecture():
    model = create_model("simple_resnet")
    blocks = list(model.layer1)
    assert len(blocks) == 3
    for block in blocks:
        assert isinstance(block, BasicBlock)
        assert block.conv1.bias is not None and block.downsample is None  # biased convs, identity skip
    assert model.conv1.bias is not None and model.fc.in_features == 32


@pytest.mark.parametrize(
    "block, in_chs, out_chs, stride, has_projection",
    [
        (BasicBlock, 64, 64, 1, False),
        (BasicBlock, 64, 64, 2, True),
        (BasicBlock, 64, 128, 1, True),
        (Bottleneck, 256, 256, 1, False),
        (Bottleneck, 256, 512, 2, True),
    ],
)
def test_projection_only_when_shape_changes(block, in_chs, out_chs, stride, has_projection):
    module = block(in_chs, out_chs, stride)
    assert (module.downsample is not None) == has_projection
    out = module(torch.randn(1, in_chs, 16, 16))
    assert out.shape == (1, out_chs, 16 // stride, 16 // stride)


def test_bottleneck_expansion_and_counts():
    assert Bottleneck.expansion == 4
    block = Bottleneck(256, 256)  # inner width 64: 1x1 16,384 + 3x3 36,864 + 1x1 16,384 weights, BN 2*(64+64+256)
    assert n_params(block) == 16_384 + 36_864 + 16_384 + 2 * (64 + 64 + 256)
