"""RegNet: the quantised linear width rule against torchvision's BlockParams, and regnet_x/y_400mf equal to
torchvision (counts, logits)."""

import pytest
import torch
from torchvision.models.regnet import BlockParams
from twins import assert_logits_match, images, n_params, stage_shapes, torchvision_pair

from cnnlab import create_model, model_info
from cnnlab.models.regnet import AnyNet, AnyNetStage, XBlock, regnet_stages, regnet_x_400mf, regnet_y_400mf

# The paper's (Appendix) RegNetX/Y settings as torchvision's builders pass them: depth, w_0, w_a, w_m, group width.
REGNET_SETTINGS = {
    "regnet_x_400mf": (22, 24, 24.48, 2.54, 16),
    "regnet_x_800mf": (16, 56, 35.73, 2.28, 16),
    "regnet_x_1_6gf": (18, 80, 34.01, 2.25, 24),
    "regnet_x_3_2gf": (25, 88, 26.31, 2.25, 48),
    "regnet_x_8gf": (23, 80, 49.56, 2.88, 120),
    "regnet_x_16gf": (22, 216, 55.59, 2.1, 128),
    "regnet_x_32gf": (23, 320, 69.86, 2.0, 168),
    "regnet_y_400mf": (16, 48, 27.89, 2.09, 8),
    "regnet_y_800mf": (14, 56, 38.84, 2.4, 16),
    "regnet_y_1_6gf": (27, 48, 20.71, 2.65, 24),
    "regnet_y_3_2gf": (21, 80, 42.63, 2.66, 24),
    "regnet_y_8gf": (17, 192, 76.82, 2.19, 56),
    "regnet_y_16gf": (18, 200, 106.23, 2.48, 112),
    "regnet_y_32gf": (20, 232, 115.89, 2.53, 232),
    "regnet_y_128gf": (27, 456, 160.83, 2.52, 264),
}


@pytest.mark.parametrize("name", sorted(REGNET_SETTINGS))
def test_width_rule_equals_torchvision_block_params(name: str):
    depth, w_0, w_a, w_m, group_width = REGNET_SETTINGS[name]
    expected = BlockParams.from_init_params(depth=depth, w_0=w_0, w_a=w_a, w_m=w_m, group_width=group_width)
    stages = regnet_stages(depth, w_0, w_a, w_m, group_width)
    assert [s.width for s in stages] == expected.widths
    assert [s.depth for s in stages] == expected.depths
    assert [s.group_width for s in stages] == expected.group_widths
    assert [s.stride for s in stages] == expected.strides
    assert sum(s.depth for s in stages) == depth


def test_width_rule_400mf_literals():
    x = regnet_stages(22, 24, 24.48, 2.54, 16)
    # The line quantises to 24/64/152/392; multiples of the group width 16 make them 32/64/160/400.
    assert [(s.width, s.depth) for s in x] == [(32, 1), (64, 2), (160, 7), (400, 12)]
    y = regnet_stages(16, 48, 27.89, 2.09, 8)
    assert [(s.width, s.depth) for s in y] == [(48, 1), (104, 3), (208, 6), (440, 6)]


def test_width_rule_bottleneck_ratio_and_errors():
    # With b = 0.25 the first stage (24 wide) has a 6-wide bottleneck: the group width 16 shrinks to 6.
    stages = regnet_stages(22, 24, 24.48, 2.54, 16, bottleneck_ratio=0.25)
    expected = BlockParams.from_init_params(22, 24, 24.48, 2.54, 16, bottleneck_multiplier=0.25)
    assert [s.width for s in stages] == expected.widths and [s.group_width for s in stages] == expected.group_widths
    assert (stages[0].width, stages[0].group_width) == (24, 6)
    for bad in [dict(w_0=20), dict(w_m=1.0), dict(w_a=-1.0)]:
        settings = dict(depth=22, w_0=24, w_a=24.48, w_m=2.54, group_width=16) | bad
        with pytest.raises(ValueError):
            regnet_stages(**settings)


# torchvision 0.29.1's ImageNet weights metadata (anchors.md).
TWINS = {"regnet_x_400mf": 5_495_976, "regnet_y_400mf": 4_344_144}


@pytest.fixture(scope="module", params=sorted(TWINS))
def twin_pair(request):
    """(name, ours, torchvision's): torchvision's with randomised BNs and unit-gain fc weights, loaded into ours
    (twins.torchvision_pair)."""
    return request.param, *torchvision_pair(request.param, linear=True)


def test_parameter_counts_equal_torchvision(twin_pair):
    name, ours, theirs = twin_pair
    assert n_params(ours) == n_params(theirs) == TWINS[name]


def test_logits_equal_torchvision(twin_pair):
    _, ours, theirs = twin_pair
    assert assert_logits_match(ours, theirs, images(64)).shape == (2, 1000)


def test_registry_metadata():
    for name in TWINS:
        info = model_info(name)
        assert info.twin == name and info.family == "RegNet" and "2003.13678" in info.paper
        assert info.input_size == (3, 224, 224) and info.default_num_classes == 1000


def test_y_blocks_have_squeeze_excite_sized_by_block_input():
    torch.manual_seed(0)
    y, x = regnet_y_400mf(), regnet_x_400mf()
    first = y.trunk_output.block1.get_submodule("block1-0")
    # Input 32 (the stem), so the squeeze width is round(0.25 * 32) = 8, not a quarter of the 48-wide bottleneck.
    assert isinstance(first, XBlock) and first.f.se.fc1.out_channels == 8 and first.f.se.fc1.in_channels == 48
    later = y.trunk_output.block3.get_submodule("block3-1")
    assert later.f.se.fc1.out_channels == round(0.25 * 208) == 52 and later.proj is None
    assert not any("se" in name for name, _ in x.named_modules())
    # The grouped 3x3: 400 / group width 16 = 25 groups in regnet_x_400mf's last stage.
    assert x.trunk_output.block4.get_submodule("block4-0").f.b[0].groups == 25


def test_stage_outputs():
    torch.manual_seed(0)
    model = regnet_x_400mf().eval()
    shapes, _ = stage_shapes(model, torch.randn(1, 3, 64, 64), model.forward_features)
    assert shapes == [(1, 32, 16, 16), (1, 64, 8, 8), (1, 160, 4, 4), (1, 400, 2, 2)]


@pytest.mark.parametrize("name, width", [("regnet_x_400mf", 400), ("regnet_y_400mf", 440)])
@pytest.mark.parametrize("chans, side, feature_side", [(1, 28, 4), (3, 32, 4)])
def test_small_input(name: str, width: int, chans: int, side: int, feature_side: int):
    torch.manual_seed(0)
    model = create_model(name, num_classes=10, in_chans=chans, small_input=True).eval()
    assert model.stem[0].stride == (1, 1)
    x = torch.randn(2, chans, side, side)
    with torch.no_grad():
        features = model.forward_features(x)
        logits = model.forward_head(features)
    # Stem and first stage at full resolution, then three halvings (28 -> 14 -> 7 -> 4).
    assert features.shape == (2, width, feature_side, feature_side)
    assert logits.shape == (2, 10) and torch.isfinite(logits).all()


def test_any_net_from_hand_written_stages():
    stages = [
        AnyNetStage(width=24, depth=1, group_width=8),
        AnyNetStage(width=48, depth=2, group_width=8, bottleneck_ratio=0.5),
    ]
    model = AnyNet(stages, se_ratio=0.25, stem_width=16, num_classes=3, in_chans=1, small_input=True)
    # stem 16*9 + BN 32 = 176
    # stage 1 (16 -> 24, b=24, 3 groups): a 16*24 + 48, b 24*8*9 + 48, se round(0.25*16) = 4: 24*4+4 + 4*24+24,
    #   c 24*24 + 48, proj 16*24 + 48 = 432 + 1776 + 220 + 624 + 432 = 3,484
    # stage 2 block 0 (24 -> 48, b=24): a 24*24+48, b 1776, se 6: 24*6+6 + 6*24+24, c 24*48+96, proj 24*48+96
    #   = 624 + 1776 + 318 + 1248 + 1248 = 5,214
    # stage 2 block 1 (48 -> 48, b=24): a 48*24+48, b 1776, se 12: 24*12+12 + 12*24+24, c 1248
    #   = 1200 + 1776 + 612 + 1248 = 4,836
    # head 48*3 + 3 = 147; total 176 + 3,484 + 5,214 + 4,836 + 147 = 13,857
    assert n_params(model) == 13_857
    with torch.no_grad():
        assert model(torch.randn(2, 1, 28, 28)).shape == (2, 3)
