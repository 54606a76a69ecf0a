"""DenseNet: 121/169/201 equal to torchvision (counts, logits), and the paper's CIFAR DenseNet-BC (L=100, k=12)."""

import pytest
import torch
from twins import assert_logits_match, images, n_params, stage_shapes, torchvision_pair

from cnnlab import create_model, model_info
from cnnlab.models.densenet import DenseNet, densenet121, densenet_bc_100_12

# torchvision 0.29.1's ImageNet weights metadata (anchors.md).
TWINS = {"densenet121": 7_978_856, "densenet169": 14_149_480, "densenet201": 20_013_928}


@pytest.fixture(scope="module", params=sorted(TWINS))
def twin_pair(request):
    """(name, ours, torchvision's): torchvision's with randomised BNs, loaded into ours (twins.torchvision_pair)."""
    return request.param, *torchvision_pair(request.param)


def test_parameter_counts_equal_torchvision(twin_pair):
    name, ours, theirs = twin_pair
    assert n_params(ours) == n_params(theirs) == TWINS[name]


def test_logits_equal_torchvision(twin_pair):
    _, ours, theirs = twin_pair
    assert assert_logits_match(ours, theirs, images(64)).shape == (2, 1000)


def test_registry_metadata():
    for name in TWINS:
        info = model_info(name)
        assert info.twin == name and info.family == "DenseNet" and "1608.06993" in info.paper
        assert info.input_size == (3, 224, 224) and info.default_num_classes == 1000
    assert model_info("densenet_bc_100_12").twin is None
    assert model_info("densenet_bc_100_12").default_num_classes == 10


def test_dense_blocks_grow_by_the_growth_rate():
    # densenet121: 64 -> +6*32 = 256 -> /2 = 128 -> +12*32 = 512 -> 256 -> +24*32 = 1024 -> 512 -> +16*32 = 1024.
    torch.manual_seed(0)
    model = densenet121().eval()
    shapes, features = stage_shapes(model, torch.randn(1, 3, 64, 64), model.forward_features)
    assert shapes == [(1, 256, 16, 16), (1, 512, 8, 8), (1, 1024, 4, 4), (1, 1024, 2, 2)]
    assert features.shape == (1, 1024, 2, 2) and features.min() >= 0  # the final BN-ReLU is in the features
    assert model.get_classifier() is model.classifier and model.classifier.in_features == 1024


def test_densenet_bc_100_12_parameter_count():
    """Counted by hand (3 blocks of 16 bottleneck layers, k=12, layer input c: BN 2c + 1x1 c*48 + BN 96 +
    3x3 48*12*9 = 50c + 5280; stem a bare 3x3 conv to 24):
      stem 3*24*9 = 648
      block1 (c = 24..204)  50 * (16*24 + 12*120) + 16*5280 = 175,680 -> 216 ch; transition1 2*216 + 216*108 = 23,760
      block2 (c = 108..288) 50 * (16*108 + 1440) + 84,480 = 242,880 -> 300 ch; transition2 600 + 300*150 = 45,600
      block3 (c = 150..330) 50 * (16*150 + 1440) + 84,480 = 276,480 -> 342 ch; norm5 684; linear 342*10 + 10 = 3,430
    total 769,162: the paper's "0.8M" (Table 2). One input channel saves 2*24*9 = 432 in the stem: 768,730,
    the "DenseNet-BC 768K" of Fashion-MNIST's benchmark table."""
    model = densenet_bc_100_12()
    assert n_params(model) == 769_162
    assert round(n_params(model) / 1e6, 1) == 0.8
    assert n_params(densenet_bc_100_12(in_chans=1)) == 768_730
    assert model.classifier.in_features == 342 and model.num_classes == 10


@pytest.mark.parametrize("chans, side, feature_side", [(1, 28, 7), (3, 32, 8)])
def test_densenet_bc_100_12_small_images(chans: int, side: int, feature_side: int):
    torch.manual_seed(0)
    model = densenet_bc_100_12(in_chans=chans).eval()
    x = torch.randn(2, chans, side, side)
    with torch.no_grad():
        features = model.forward_features(x)
        logits = model.forward_head(features)
    # Full resolution in block 1, halved by each of the two transitions.
    assert features.shape == (2, 342, feature_side, feature_side)
    assert logits.shape == (2, 10) and torch.isfinite(logits).all()


@pytest.mark.parametrize("chans, side, feature_side", [(1, 28, 3), (3, 32, 4)])
def test_imagenet_densenet_small_input(chans: int, side: int, feature_side: int):
    torch.manual_seed(0)
    model = create_model("densenet121", num_classes=10, in_chans=chans, small_input=True).eval()
    assert isinstance(model, DenseNet) and model.features.conv0.kernel_size == (3, 3)
    x = torch.randn(1, chans, side, side)  # batch 1: at full resolution densenet121 costs ~0.9 GMAC per image
    with torch.no_grad():
        features = model.forward_features(x)
        logits = model.forward_head(features)
    assert features.shape == (1, 1024, feature_side, feature_side)  # no stem stride or max-pool: 3 halvings
    assert logits.shape == (1, 10) and torch.isfinite(logits).all()


def test_drop_rate_acts_only_in_training():
    torch.manual_seed(0)
    model = densenet_bc_100_12(drop_rate=0.2)
    x = torch.randn(2, 3, 8, 8)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), model(x))
    model.train()
    with torch.no_grad():
        assert not torch.equal(model(x), model(x))
