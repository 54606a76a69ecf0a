"""The ResNet family: torchvision twins, He et al.'s CIFAR nets and plain twins, pre-activation, wide and
ResNeXt-29 networks, and the block-dropping helper."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn
from twins import assert_logits_match, images, n_params, torchvision_pair

from cnnlab.errors import CnnlabError
from cnnlab.models.resnet import (
    CifarBasicBlock,
    PreActBasicBlock,
    ZeroPadShortcut,
    cifar_resnet,
    drop_block,
    droppable_blocks,
    has_skip,
    wide_resnet,
)
from cnnlab.registry import create_model, model_info

# ---------------------------------------------------------------------------------------------------------
# torchvision twins

# The literal counts are the anchors (torchvision's IMAGENET1K_V1 metadata); resnext101_32x8d is not in the
# anchors, its literal was measured from torchvision 0.29.1 and the test derives it from torchvision as well.
TWINS = [
    ("resnet18", 11_689_512),
    ("resnet34", 21_797_672),
    ("resnet50", 25_557_032),
    ("resnet101", 44_549_160),
    ("resnet152", 60_192_808),
    ("resnext50_32x4d", 25_028_904),
    ("wide_resnet50_2", 68_883_240),
    ("resnext101_32x8d", 88_791_336),
]


@pytest.mark.parametrize("name, anchor", TWINS)
def test_equals_torchvision_twin(name: str, anchor: int) -> None:
    # Randomised BNs, so a mis-ordered or missing BN shows in the logits; gains below 1 keep them O(1).
    ours, theirs = torchvision_pair(name, max_gain=0.8)
    assert model_info(name).twin == name
    assert n_params(ours) == n_params(theirs) == anchor
    x = images(64, batch=1)  # layer4 sees 2x2 maps, so every 3x3 tap is used
    assert assert_logits_match(ours, theirs, x).shape == (1, 1000)


# The three projections (1x1 conv + BN) at the starts of stages 2-4:
#   64*128 + 2*128 = 8,448;  128*256 + 2*256 = 33,280;  256*512 + 2*512 = 132,096;  total 173,824
@pytest.mark.parametrize(
    "name, twin, expected",
    [
        ("plain18", "resnet18", 11_689_512 - 173_824),
        ("plain34", "resnet34", 21_797_672 - 173_824),
    ],
)
def test_imagenet_plain_nets_are_their_twins_without_shortcuts(name: str, twin: str, expected: int) -> None:
    theirs = getattr(torchvision.models, twin)(weights=None)
    projections = sum(p.numel() for key, p in theirs.named_parameters() if ".downsample." in key)
    assert projections == 173_824
    plain = create_model(name)
    assert n_params(plain) == n_params(theirs) - projections == expected
    assert not any("downsample" in key for key in plain.state_dict())
    assert not any(has_skip(block) for stage in plain.stages() for block in stage)
    assert [len(s) for s in plain.stages()] == [len(s) for s in create_model(twin).stages()]
    assert model_info(name).twin is None and model_info(name).default_num_classes == 1000


def test_plain18_runs_and_has_no_skip_path() -> None:
    torch.manual_seed(0)
    plain = create_model("plain18").eval()
    last = plain.layer4[-1]
    nn.init.zeros_(last.bn2.weight)  # the last block's branch outputs zero, and no skip adds its input back
    nn.init.zeros_(last.bn2.bias)
    with torch.no_grad():
        assert torch.count_nonzero(plain.forward_features(images(64, batch=1))) == 0
        small = create_model("plain34", num_classes=10, in_chans=1, small_input=True).eval()
        assert small(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_bottleneck_strides_its_3x3_conv_v1_5() -> None:
    model = create_model("resnet50")
    first = model.layer2[0]
    assert first.conv1.stride == (1, 1) and first.conv2.stride == (2, 2) and first.downsample[0].stride == (2, 2)


def test_resnext_and_wide_inner_widths() -> None:
    resnext = create_model("resnext50_32x4d")
    assert resnext.layer1[0].conv2.groups == 32 and resnext.layer1[0].conv2.out_channels == 128
    wide = create_model("wide_resnet50_2")
    assert wide.layer1[0].conv2.out_channels == 128 and wide.layer4[0].conv3.out_channels == 2048


def test_small_input_imagenet_resnets() -> None:
    torch.manual_seed(0)
    model = create_model("resnet18", num_classes=10, in_chans=1, small_input=True).eval()
    assert isinstance(model.maxpool, nn.Identity) and model.conv1.kernel_size == (3, 3) and model.conv1.stride == (1, 1)
    # 11,689,512 - 7x7x3x64 stem (9,408) + 3x3x1x64 stem (576) - 1000-way fc (513,000) + 10-way fc (5,130)
    assert n_params(model) == 11_172_810
    with torch.no_grad():
        features = model.forward_features(torch.randn(2, 1, 28, 28))
        assert features.shape == (2, 512, 4, 4)  # 28 -> 28 -> 14 -> 7 -> 4
        assert model.forward_head(features).shape == (2, 10)
        model = create_model("resnet50", num_classes=10, small_input=True).eval()
        assert model.forward_features(torch.randn(2, 3, 32, 32)).shape == (2, 2048, 4, 4)


# ---------------------------------------------------------------------------------------------------------
# He et al.'s CIFAR ResNets (option A) and plain nets
#
# By hand, for n blocks per stage (option A; BN has 2 parameters per channel):
#   stem 3*16*9 + 32 = 464; stage 1: n * 2*(16*16*9 + 32) = 4,672n
#   stage 2: (16*32*9 + 64 + 32*32*9 + 64) + (n-1) * 2*(32*32*9 + 64) = 13,952 + 18,560(n-1)
#   stage 3: (32*64*9 + 128 + 64*64*9 + 128) + (n-1) * 2*(64*64*9 + 128) = 55,552 + 73,984(n-1)
#   fc 64*10 + 10 = 650;  total = 97,216n - 21,926
# The paper's Table 6 rounds them to 0.27M, 0.46M, 0.66M, 0.85M, 1.7M and 19.4M.
CIFAR = [
    ("resnet20", 3, 269_722, 0.27, 2),
    ("resnet32", 5, 464_154, 0.46, 2),
    ("resnet44", 7, 658_586, 0.66, 2),
    ("resnet56", 9, 853_018, 0.85, 2),
    ("resnet110", 18, 1_727_962, 1.7, 1),
]


@pytest.mark.parametrize("name, n, count, paper_millions, digits", CIFAR)
def test_cifar_resnet_counts_match_paper(name: str, n: int, count: int, paper_millions: float, digits: int) -> None:
    model = create_model(name)
    assert count == 97_216 * n - 21_926
    assert n_params(model) == count
    assert round(count / 1e6, digits) == paper_millions
    plain = create_model(name.replace("resnet", "plain"))
    assert n_params(plain) == count  # zero-padding shortcuts have no parameters
    assert not any("downsample" in key for key in model.state_dict())
    assert [len(stage) for stage in model.stages()] == [n, n, n]


def test_resnet1202() -> None:
    torch.manual_seed(0)
    model = create_model("resnet1202").eval()  # builds in well under a second
    assert n_params(model) == 97_216 * 200 - 21_926 == 19_421_274
    assert round(19_421_274 / 1e6, 1) == 19.4
    assert [len(stage) for stage in model.stages()] == [200, 200, 200]
    assert torch.count_nonzero(model.layer2[7].bn2.weight) == 0  # zero-init residual: a fresh net stays finite
    with torch.no_grad():  # 8x8 rather than 32x32: a 32x32 forward costs ~5.6 GFLOP, seconds on 2 shared cores
        features = model.forward_features(torch.randn(1, 3, 8, 8))
    assert features.shape == (1, 64, 2, 2) and torch.isfinite(features).all()


def test_cifar_registry_defaults_and_shapes() -> None:
    torch.manual_seed(0)
    info = model_info("resnet56")
    assert info.input_size == (3, 32, 32) and info.default_num_classes == 10 and info.twin is None
    model = create_model("resnet20").eval()
    assert model.fc.out_features == 10 and model.conv1.stride == (1, 1)
    with torch.no_grad():
        assert model.forward_features(torch.randn(2, 3, 32, 32)).shape == (2, 64, 8, 8)
        gray = create_model("resnet20", in_chans=1).eval()
        features = gray.forward_features(torch.randn(2, 1, 28, 28))
        assert features.shape == (2, 64, 7, 7)  # 28 -> 14 -> 7
        assert gray.forward_head(features).shape == (2, 10)
        assert create_model("plain20", in_chans=1).eval()(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_shortcut_b_projects_where_shape_changes() -> None:
    a, b = create_model("resnet20"), create_model("resnet20", shortcut="B")
    # Two 1x1 conv + BN projections: 16*32 + 64 and 32*64 + 128.
    assert n_params(b) - n_params(a) == 2_752
    assert isinstance(a.layer2[0].downsample, ZeroPadShortcut)
    assert isinstance(b.layer2[0].downsample, nn.Sequential)
    assert a.layer2[1].downsample is None and b.layer2[1].downsample is None


def test_zero_pad_shortcut_subsamples_and_pads() -> None:
    torch.manual_seed(0)
    block = CifarBasicBlock(16, 32, stride=2, shortcut="A").eval()
    nn.init.zeros_(block.bn2.weight)  # residual branch outputs exactly zero
    x = torch.rand(2, 16, 9, 9)  # non-negative, so the final ReLU keeps the shortcut as is
    with torch.no_grad():
        out = block(x)
    assert out.shape == (2, 32, 5, 5)
    torch.testing.assert_close(out[:, :16], x[:, :, ::2, ::2], atol=0, rtol=0)
    assert torch.count_nonzero(out[:, 16:]) == 0


def test_plain_net_has_no_skip() -> None:
    torch.manual_seed(0)
    plain, residual = create_model("plain20").eval(), create_model("resnet20").eval()
    for model in (plain, residual):
        last = model.layer3[-1]
        nn.init.zeros_(last.bn2.weight)  # the last block's residual branch now outputs exactly zero
        nn.init.zeros_(last.bn2.bias)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.count_nonzero(plain.forward_features(x)) == 0  # nothing but the branch reaches the output
        assert torch.count_nonzero(residual.forward_features(x)) > 0  # the skip carries the input through
    assert not any(has_skip(block) for stage in plain.stages() for block in stage)
    assert all(has_skip(block) for stage in residual.stages() for block in stage)


def test_cifar_resnet_rejects_bad_arguments() -> None:
    for depth in (21, 19, 2, 0):
        with pytest.raises(CnnlabError, match="6n\\+2"):
            cifar_resnet(depth)
    with pytest.raises(CnnlabError, match="shortcut"):
        cifar_resnet(20, shortcut="C")
    assert n_params(cifar_resnet(8)) == 97_216 - 21_926  # n = 1, the smallest
    assert n_params(cifar_resnet(20, residual=False)) == 269_722


# ---------------------------------------------------------------------------------------------------------
# Dropping blocks (lesion studies)


def test_drop_block_keeps_network_working() -> None:
    torch.manual_seed(0)
    model = create_model("resnet20").eval()
    # Every block but the first of stages 2 and 3 (those change width and stride).
    assert droppable_blocks(model) == [
        ("layer1", 0),
        ("layer1", 1),
        ("layer1", 2),
        ("layer2", 1),
        ("layer2", 2),
        ("layer3", 1),
        ("layer3", 2),
    ]
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        before = model(x)
        removed = drop_block(model, "layer2", 1)
        after = model(x)
    assert isinstance(removed, CifarBasicBlock) and isinstance(model.layer2[1], nn.Identity)
    assert after.shape == (2, 10) and not torch.allclose(before, after)
    with pytest.raises(CnnlabError, match="cannot be dropped"):
        drop_block(model, "layer3", 0)
    assert droppable_blocks(create_model("plain20")) == []
    resnet18 = create_model("resnet18")
    assert droppable_blocks(resnet18) == [("layer1", 0), ("layer1", 1), ("layer2", 1), ("layer3", 1), ("layer4", 1)]


# ---------------------------------------------------------------------------------------------------------
# Pre-activation, Wide ResNet, ResNeXt-29


def test_preact_block_is_an_identity_map() -> None:
    # With its last conv zeroed, a pre-activation block passes its input through untouched, negatives
    # included (no ReLU after the add); a post-activation BasicBlock would clip them.
    torch.manual_seed(0)
    block = PreActBasicBlock(8, 8).eval()
    nn.init.zeros_(block.conv2.weight)
    x = torch.randn(2, 8, 6, 6)
    with torch.no_grad():
        torch.testing.assert_close(block(x), x, atol=0, rtol=0)


def test_preact_resnet18() -> None:
    torch.manual_seed(0)
    model = create_model("preact_resnet18").eval()
    # kuangliu's PreActResNet18 (11,171,146 parameters: 3x3 stem, no stem BN, no final BN) plus the paper's
    # final BN before pooling (2 x 512).
    assert n_params(model) == 11_171_146 + 1_024 == 11_172_170
    assert isinstance(model.bn1, nn.Identity) and isinstance(model.final_norm[0], nn.BatchNorm2d)
    assert model_info("preact_resnet18").default_num_classes == 10
    with torch.no_grad():
        features = model.forward_features(torch.randn(2, 3, 32, 32))
        assert features.shape == (2, 512, 4, 4) and features.min() >= 0  # ends in BN-ReLU
        gray = create_model("preact_resnet18", in_chans=1).eval()
        assert gray(torch.randn(2, 1, 28, 28)).shape == (2, 10)


# WRN-d-k by hand, n = (d - 4) / 6 pre-activation blocks per stage at widths w = 16k, 32k, 64k:
#   block (in -> w): 2*in + 9*in*w + 2*w + 9*w*w, plus in*w for the 1x1 projection when in != w
#   stem 3*16*9, final BN 2*64k, fc 64k*10 + 10
# WRN-28-10: 432 + 1,640,672 + 6,968,000 + 27,862,400 + 1,280 + 6,410 = 36,479,194 (paper: 36.5M)
# WRN-40-4: 432 + 417,184 + 1,706,880 + 6,821,632 + 512 + 2,570 = 8,949,210 (paper: 8.9M)
def test_wide_resnets() -> None:
    torch.manual_seed(0)
    wrn28 = create_model("wrn28_10").eval()
    assert n_params(wrn28) == 36_479_194 and round(36_479_194 / 1e6, 1) == 36.5
    wrn40 = create_model("wrn40_4").eval()
    assert n_params(wrn40) == 8_949_210 and round(8_949_210 / 1e6, 1) == 8.9
    assert [len(stage) for stage in wrn40.stages()] == [6, 6, 6]
    assert [stage[0].conv1.out_channels for stage in wrn28.stages()] == [160, 320, 640]
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert wrn40.forward_features(x).shape == (2, 256, 8, 8)
    dropped = create_model("wrn40_4", dropout=0.3)
    assert dropped.layer2[3].dropout.p == 0.3
    with pytest.raises(CnnlabError, match="6n\\+4"):
        wide_resnet(27, 4)


# ResNeXt-29 8x64d by hand (Bottleneck in -> out with inner width w in 8 groups, BN = 2 per channel):
#   stem 1,728 + 128; block: in*w + 2w + w*(w/8)*9 + 2w + w*out + 2out, plus in*out + 2out when projecting
#   stage 1 (w 512, out 256): 478,208 + 2 x 559,616; stage 2 (w 1024, out 512): 2,103,296 + 2 x 2,233,344
#   stage 3 (w 2048, out 1024): 8,400,896 + 2 x 8,923,136; fc 10,250  ->  34,426,698 (paper: 34.4M)
def test_resnext29_8x64d() -> None:
    torch.manual_seed(0)
    model = create_model("resnext29_8x64d").eval()
    assert n_params(model) == 34_426_698 and round(34_426_698 / 1e6, 1) == 34.4
    first_blocks = [stage[0] for stage in model.stages()]
    assert [(b.conv2.groups, b.conv2.out_channels, b.conv3.out_channels) for b in first_blocks] == [
        (8, 512, 256),
        (8, 1024, 512),
        (8, 2048, 1024),
    ]
    with torch.no_grad():
        assert model.forward_features(torch.randn(1, 3, 32, 32)).shape == (1, 1024, 8, 8)
        gray = create_model("resnext29_8x64d", in_chans=1).eval()
        assert gray(torch.randn(1, 1, 28, 28)).shape == (1, 10)


def test_tutorial_counts_unchanged() -> None:
    assert n_params(create_model("simple_resnet")) == 56_586
    assert n_params(create_model("tiny_resnet")) == 2_797_610
    assert n_params(create_model("mini_resnet")) == 2_777_674


def test_zero_init_residual() -> None:
    model = create_model("resnet50", zero_init_residual=True)
    assert torch.count_nonzero(model.layer3[2].bn3.weight) == 0
    model = create_model("resnet20", zero_init_residual=True)
    assert torch.count_nonzero(model.layer1[0].bn2.weight) == 0
    plain = create_model("plain20", zero_init_residual=True)
    assert torch.count_nonzero(plain.layer1[0].bn2.weight) == 16  # a plain block would go dead
