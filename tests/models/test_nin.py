"""NiN: d2l's layout and parameter count, the GAP + linear head equal to a final 1x1 conv, small_input."""

import torch
from torch import nn
from twins import n_params, stage_shapes

from cnnlab import create_model, model_info
from cnnlab.models.nin import mlpconv


def test_parameter_count_of_d2l_fashion_mnist_net():
    model = create_model("nin", num_classes=10, in_chans=1)
    # block1: 96*1*11*11+96 + 2*(96*96+96) = 11,712 + 18,624
    # block2: 256*96*5*5+256 + 2*(256*256+256) = 614,656 + 131,584
    # block3: 384*256*3*3+384 + 2*(384*384+384) = 885,120 + 295,680
    # block4: 10*384*3*3+10 + 10*10+10, fc (the last 1x1 conv) 10*10+10 = 34,570 + 110 + 110
    assert n_params(model) == 30_336 + 746_240 + 1_180_800 + 34_790 == 1_992_166
    assert model_info("nin").twin is None


def d2l_layout(model: nn.Module) -> nn.Sequential:
    """d2l's NiN as a plain Sequential, holding our model's weights: fc becomes the final 1x1 conv, followed by
    the ReLU d2l puts on the class maps, then the global average pool."""
    last = nn.Conv2d(model.fc.in_features, model.fc.out_features, 1)
    last.weight.data = model.fc.weight.data[:, :, None, None].clone()
    last.bias.data = model.fc.bias.data.clone()
    return nn.Sequential(
        model.block1,
        model.block2,
        model.block3,
        model.dropout,
        model.block4,
        last,
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
    )


@torch.no_grad()
def test_linear_head_equals_final_1x1_conv_then_pool():
    torch.manual_seed(0)
    model = create_model("nin", num_classes=10, in_chans=1).eval()
    x = torch.randn(2, 1, 96, 96)  # 96 -> 22 -> 10 -> 4 -> 1 at block4
    features = model.forward_features(x)
    assert features.shape == (2, 10, 1, 1)
    x = torch.randn(2, 1, 224, 224)  # d2l's input size
    features = model.forward_features(x)
    assert features.shape == (2, 10, 5, 5)  # 224 -> 54 -> 26 -> 12 -> 5
    logits = model.forward_head(features)
    conv_then_pool = nn.functional.conv2d(features, model.fc.weight[:, :, None, None], model.fc.bias).mean((2, 3))
    torch.testing.assert_close(logits, conv_then_pool, atol=1e-5, rtol=1e-5)
    assert (logits < 0).any()  # unlike d2l's, the scores are not clipped at zero
    # d2l's network computes exactly our logits passed through a ReLU.
    torch.testing.assert_close(d2l_layout(model)(x), torch.relu(logits), atol=1e-5, rtol=1e-5)


def test_mlpconv_block():
    block = mlpconv(3, 8, 5, stride=1, padding=2)
    assert [type(layer) for layer in block] == [nn.Conv2d, nn.ReLU] * 3
    assert [layer.kernel_size for layer in block if isinstance(layer, nn.Conv2d)] == [(5, 5), (1, 1), (1, 1)]
    assert block(torch.randn(1, 3, 9, 9)).shape == (1, 8, 9, 9)
    assert n_params(block) == (8 * 3 * 25 + 8) + 2 * (8 * 8 + 8)


@torch.no_grad()
def test_small_input_and_stages():
    torch.manual_seed(0)
    gray = create_model("nin", num_classes=10, in_chans=1, small_input=True).eval()
    # block1's stem is 3x3 instead of 11x11: 1,992,166 - 96*121 + 96*9
    assert n_params(gray) == 1_992_166 - 96 * 121 + 96 * 9 == 1_981_414
    shapes, logits = stage_shapes(gray, torch.randn(2, 1, 28, 28))
    assert logits.shape == (2, 10)
    assert shapes == [(2, 96, 28, 28), (2, 256, 13, 13), (2, 384, 6, 6), (2, 10, 6, 6)]
    rgb = create_model("nin", num_classes=10, small_input=True).eval()
    assert rgb.forward_features(torch.randn(2, 3, 32, 32)).shape == (2, 10, 7, 7)  # 32 -> 15 -> 7
    assert rgb(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_reset_classifier_replaces_the_linear():
    model = create_model("nin", num_classes=10, small_input=True)
    model.reset_classifier(4)
    assert isinstance(model.get_classifier(), nn.Linear) and model.fc.out_features == 4 and model.fc.in_features == 10
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 4)
