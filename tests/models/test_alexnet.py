"""AlexNet: torchvision's twin (counts, checkpoint, logits) and the 2012 two-GPU network (grouping, LRN, count)."""

import torch
import torchvision
from torch import nn
from twins import n_params, stage_shapes

from cnnlab import create_model, model_info


@torch.no_grad()
def test_alexnet_matches_torchvision():
    torch.manual_seed(0)
    reference = torchvision.models.alexnet(weights=None).eval()
    ours = create_model("alexnet").eval()
    assert model_info("alexnet").twin == "alexnet"
    assert n_params(ours) == n_params(reference) == 61_100_840  # anchors.md
    ours.load_state_dict(ours.adapt_state_dict(reference.state_dict()))
    x = torch.randn(2, 3, 64, 64)  # 63 is torchvision's minimum: 64 -> 15 -> 7 -> 3 -> 1, then the 6x6 adaptive pool
    expected = reference(x)
    assert (expected[0] - expected[1]).abs().max() > 1e-3
    torch.testing.assert_close(ours(x), expected, atol=1e-4, rtol=1e-4)
    hidden = ours.forward_head(ours.forward_features(x), pre_logits=True)
    assert hidden.shape == (2, 4096)
    torch.testing.assert_close(reference.classifier[6](hidden), expected, atol=1e-4, rtol=1e-4)


def test_paper_network_structure_and_count():
    model = create_model("alexnet_paper")
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [96, 256, 384, 384, 256]
    # conv2, conv4, conv5 read only their own GPU's half; conv3 and the FC layers read both.
    assert [c.groups for c in convs] == [1, 2, 1, 2, 2]
    assert [c.kernel_size[0] for c in convs] == [11, 5, 3, 3, 3] and convs[0].stride == (4, 4)
    lrns = [m for m in model.features if isinstance(m, nn.LocalResponseNorm)]
    assert len(lrns) == 2 and (lrns[0].size, lrns[0].alpha, lrns[0].beta, lrns[0].k) == (5, 1e-4, 0.75, 2.0)
    assert [type(m) for m in model.features[:4]] == [nn.Conv2d, nn.ReLU, nn.LocalResponseNorm, nn.MaxPool2d]
    pools = [m for m in model.features if isinstance(m, nn.MaxPool2d)]
    assert len(pools) == 3 and all((p.kernel_size, p.stride) == (3, 2) for p in pools)  # overlapping pooling
    # dropout on the outputs of fc6 and fc7
    assert [type(m) for m in model.classifier] == [nn.Linear, nn.ReLU, nn.Dropout] * 2 + [nn.Linear]
    # conv 34,944 + 307,456 + 885,120 + 663,936 + 442,624; fc 37,752,832 + 16,781,312 + 4,097,000
    assert n_params(model) == 2_334_080 + 58_631_144 == 60_965_224
    assert model_info("alexnet_paper").input_size == (3, 227, 227) and model_info("alexnet_paper").twin is None


@torch.no_grad()
def test_paper_network_sizes_at_227():
    torch.manual_seed(0)
    model = create_model("alexnet_paper").eval()
    shapes, logits = stage_shapes(model, torch.randn(1, 3, 227, 227))
    assert logits.shape == (1, 1000)
    # (227 - 11) / 4 + 1 = 55 (224 would give 54.25), then overlapping pools 55 -> 27 -> 13 -> 6
    assert shapes == [(1, 96, 55, 55), (1, 256, 27, 27), (1, 256, 13, 13), (1, 256, 6, 6)]


@torch.no_grad()
def test_grouped_conv_is_two_independent_halves():
    model = create_model("alexnet_paper")
    conv2 = model.features[4]
    x = torch.randn(1, 96, 7, 7)
    out = conv2(x)
    half = nn.Conv2d(48, 128, 5, padding=2)
    half.weight.copy_(conv2.weight[:128]), half.bias.copy_(conv2.bias[:128])
    torch.testing.assert_close(out[:, :128], half(x[:, :48]))  # GPU 1's maps see only GPU 1's inputs


@torch.no_grad()
def test_small_input():
    torch.manual_seed(0)
    for name in ("alexnet", "alexnet_paper"):
        gray = create_model(name, num_classes=10, in_chans=1, small_input=True).eval()
        assert gray.features[0].kernel_size == (3, 3) and gray.features[0].stride == (1, 1)
        assert gray.forward_features(torch.randn(1, 1, 28, 28)).shape[-2:] == (6, 6)  # 28 -> 13 -> 6
        assert gray(torch.randn(1, 1, 28, 28)).shape == (1, 10)
        if name == "alexnet":  # a 1-channel 3x3 stem and 10 classes: 61,100,840 - 64*3*121 + 64*9 - 4096*990 - 990
            assert n_params(gray) == 61_100_840 - 23_232 + 576 - 4_055_040 - 990 == 57_022_154
        rgb = create_model(name, num_classes=10, small_input=True).eval()
        assert rgb(torch.randn(1, 3, 32, 32)).shape == (1, 10)  # 32 -> 15 -> 7 -> adaptive 6


def test_reset_classifier():
    model = create_model("alexnet_paper", num_classes=10, small_input=True)
    model.reset_classifier(3)
    assert model.get_classifier() is model.classifier[6] and model.classifier[6].out_features == 3
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 3)
