"""ConvNeXt: tiny/small/base equal to torchvision (counts, logits), the block's pieces (LayerNorm layouts, layer
scale, stochastic-depth schedule) and the small-input stem."""

import pytest
import torch
import torchvision
from torch import nn
from torch.nn import functional as F
from twins import assert_logits_match, images, n_params, stage_shapes

from cnnlab import create_model, model_info
from cnnlab.models.convnext import ConvNeXt, ConvNeXtBlock, LayerNorm2d, convnext_tiny


def randomize_(model: nn.Module, seed: int = 0) -> None:
    """Fill every parameter with random values: convs and linears N(0, 1/fan_in), norms' affine terms near
    (1, 0), and the layer scales in [0.5, 1]. At init the layer scales are 1e-6, so every block is the
    identity to within 1e-4 and a logits comparison would pass for any block; here each block counts."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                fan_in = module.weight[0].numel()
                module.weight.normal_(0.0, fan_in**-0.5, generator=generator)
                module.bias.normal_(0.0, 0.1, generator=generator)
            elif isinstance(module, nn.LayerNorm):
                module.weight.uniform_(0.5, 1.5, generator=generator)
                module.bias.normal_(0.0, 0.1, generator=generator)
            if isinstance(getattr(module, "layer_scale", None), nn.Parameter):
                module.layer_scale.uniform_(0.5, 1.0, generator=generator)


# torchvision 0.29.1's ImageNet weights metadata (anchors.md).
TWINS = {"convnext_tiny": 28_589_128, "convnext_small": 50_223_688, "convnext_base": 88_591_464}


@pytest.fixture(scope="module", params=sorted(TWINS))
def twin_pair(request):
    """(name, ours, torchvision's), both in eval mode, with torchvision's randomised weights loaded into ours.

    Both are built on the meta device (no initialisation: truncated-normal init of 88M weights costs seconds)
    and given real storage afterwards; `randomize_` then fills torchvision's, and strict loading fills ours.
    """
    name = request.param
    with torch.device("meta"):
        ours = create_model(name)
        theirs = getattr(torchvision.models, name)(weights=None)
    ours, theirs = ours.to_empty(device="cpu").eval(), theirs.to_empty(device="cpu").eval()
    randomize_(theirs)
    ours.load_state_dict(ours.adapt_state_dict(theirs.state_dict()))  # strict: every key must match
    return name, ours, theirs


def test_parameter_counts_equal_torchvision(twin_pair):
    name, ours, theirs = twin_pair
    assert n_params(ours) == n_params(theirs) == TWINS[name]


def test_logits_equal_torchvision(twin_pair):
    _, ours, theirs = twin_pair
    assert assert_logits_match(ours, theirs, images(32)).shape == (2, 1000)  # 32: torchvision's minimum side


def test_stochastic_depth_schedule_equals_torchvision(twin_pair):
    # Linear in the block index, from 0 at the first block to the builder's rate (0.1 / 0.4 / 0.5) at the last.
    name, ours, theirs = twin_pair
    ours_p = [m.stochastic_depth.p for m in ours.modules() if isinstance(m, ConvNeXtBlock)]
    theirs_p = [m.stochastic_depth.p for m in theirs.modules() if hasattr(m, "layer_scale")]
    assert ours_p == pytest.approx(theirs_p, abs=1e-12)
    last_rate, num_blocks = {"convnext_tiny": (0.1, 18), "convnext_small": (0.4, 36), "convnext_base": (0.5, 36)}[name]
    assert ours_p[0] == 0.0 and ours_p[-1] == pytest.approx(last_rate) and len(ours_p) == num_blocks


def test_registry_metadata():
    for name in TWINS:
        info = model_info(name)
        assert info.twin == name and info.family == "ConvNeXt" and "2201.03545" in info.paper
        assert info.input_size == (3, 224, 224) and info.default_num_classes == 1000


def test_layer_norm_2d_normalises_channels_of_channels_first():
    torch.manual_seed(0)
    norm = LayerNorm2d(8, eps=1e-6)
    nn.init.normal_(norm.weight)
    nn.init.normal_(norm.bias)
    x = torch.randn(2, 8, 5, 3)
    expected = F.layer_norm(x.permute(0, 2, 3, 1), (8,), norm.weight, norm.bias, 1e-6).permute(0, 3, 1, 2)
    torch.testing.assert_close(norm(x), expected)
    plain = LayerNorm2d(8, eps=1e-6)(x)  # unit affine: zero mean, unit variance over the 8 channels of each pixel
    torch.testing.assert_close(plain.mean(1), torch.zeros(2, 5, 3), atol=1e-5, rtol=0)
    torch.testing.assert_close(plain.var(1, unbiased=False), torch.ones(2, 5, 3), atol=1e-3, rtol=0)


def test_block_starts_near_identity_and_counts():
    torch.manual_seed(0)
    block = ConvNeXtBlock(16).eval()
    # dwconv 16*49 + 16, LN 32, linear 16*64 + 64, linear 64*16 + 16, layer scale 16
    #   = 800 + 32 + 1,088 + 1,040 + 16 = 2,976
    assert n_params(block) == 2_976
    assert torch.equal(block.layer_scale, torch.full((16, 1, 1), 1e-6))
    x = torch.randn(2, 16, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(block(x), x, atol=1e-4, rtol=0)


def test_stage_outputs():
    with torch.device("meta"):  # shapes only
        model = convnext_tiny()
        shapes, _ = stage_shapes(model, torch.empty(1, 3, 224, 224), model.forward_features)
    assert shapes == [(1, 96, 56, 56), (1, 192, 28, 28), (1, 384, 14, 14), (1, 768, 7, 7)]


@pytest.mark.parametrize("chans, side, feature_side", [(1, 28, 1), (3, 32, 2)])
def test_small_input(chans: int, side: int, feature_side: int):
    torch.manual_seed(0)
    model = create_model("convnext_tiny", num_classes=10, in_chans=chans, small_input=True).eval()
    assert isinstance(model, ConvNeXt)
    assert model.features[0][0].kernel_size == (2, 2) and model.features[0][0].stride == (2, 2)
    x = torch.randn(2, chans, side, side)
    with torch.no_grad():
        features = model.forward_features(x)
        logits = model.forward_head(features)
    # 2x2 patches, then three 2x2 downsamplings: 28 -> 14 -> 7 -> 3 -> 1 and 32 -> 16 -> 8 -> 4 -> 2.
    assert features.shape == (2, 768, feature_side, feature_side)
    assert logits.shape == (2, 10) and torch.isfinite(logits).all()


def test_drop_path_is_active_only_in_training():
    torch.manual_seed(0)
    model = ConvNeXt(depths=(1, 1), dims=(8, 16), drop_path_rate=0.5, layer_scale_init=1.0, num_classes=3)
    first, last = [m for m in model.modules() if isinstance(m, ConvNeXtBlock)]
    assert (first.stochastic_depth.p, last.stochastic_depth.p) == (0.0, 0.5)
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        model.eval()
        assert torch.equal(model(x), model(x))
        # In training each sample either skips the last block's branch (output = input) or keeps it scaled by
        # 1 / (1 - p) = 2; with this seed both happen among 8 samples.
        model.train()
        inner = torch.randn(8, 16, 2, 2)
        branch = last.layer_scale * last.block(inner)
        out = last(inner)
    dropped = [torch.equal(o, i) for o, i in zip(out, inner)]
    kept = [torch.allclose(o, i + 2 * b, atol=1e-6) for o, i, b in zip(out, inner, branch)]
    assert all(d != k for d, k in zip(dropped, kept)) and any(dropped) and any(kept)
