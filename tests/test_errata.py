"""Every number in docs/errata.md, recomputed from code.

docs/errata.md lists tutorial claims that code contradicts (rows E01...) and claims it confirms (rows C01...).
Each row has one test here, named after its ID, that computes the value from cnnlab models, torchvision models
or plain torch modules, asserts it (exact integers for counts), and checks that the row's "Code gives" cell
says the same thing, so the page cannot drift from the code. Big networks are built on the meta device.

The tests marked `torch_only` (23 of them) compute their number from torch, torchvision or plain arithmetic alone:
they are the errata's evidence and keep docs/errata.md honest, but they test no cnnlab code, so a cnnlab bug
cannot fail them (`pytest -m torch_only` lists them; `-m "not torch_only"` leaves them out).
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch
import torchvision
from errata_table import errata_rows
from torch import nn
from torch.utils.flop_counter import FlopCounterMode
from torchvision.models.googlenet import BasicConv2d, Inception

import cnnlab
from cnnlab.measure.receptive import receptive_field
from cnnlab.models.blocks import BasicBlock, Bottleneck

# The 2x2x2x2 batch of the Chapter 14 BatchNorm traces: channel 0 holds 1..8, channel 1 holds 10..17.
BN_EXAMPLE = torch.tensor(
    [[[[1.0, 2.0], [3.0, 4.0]], [[10.0, 11.0], [12.0, 13.0]]],
     [[[5.0, 6.0], [7.0, 8.0]], [[14.0, 15.0], [16.0, 17.0]]]]
)  # fmt: skip


# ---------------------------------------------------------------------------------------------------------
# Reading the page


ROWS = errata_rows(r"[EC]\d\d")


def code_gives(claim_id: str) -> str:
    return ROWS[claim_id]["Code gives"]


def test_every_row_has_a_test_and_every_test_a_row():
    tested = {match.group(1).upper() for name in globals() if (match := re.match(r"test_([ec]\d\d)_", name))}
    assert set(ROWS) == tested
    assert sum(claim_id.startswith("E") for claim_id in ROWS) >= 10  # the page is not empty


# ---------------------------------------------------------------------------------------------------------
# Helpers


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def cnnlab_meta(name: str, **kwargs) -> nn.Module:
    with torch.device("meta"):
        return cnnlab.create_model(name, **kwargs)


def torchvision_meta(name: str, **kwargs) -> nn.Module:
    with torch.device("meta"):
        return getattr(torchvision.models, name)(weights=None, **kwargs)


def famous_count(name: str) -> int:
    """Parameter count of an ImageNet model from cnnlab, checked equal to torchvision's."""
    count = n_params(cnnlab_meta(name))
    assert count == n_params(torchvision_meta(name))
    return count


def meta_shape(model: nn.Module, shape: tuple[int, ...]) -> list[int]:
    """Output shape of an eval-mode forward pass on a meta tensor (no arithmetic is done)."""
    model = model.to("meta").eval()
    with torch.no_grad():
        return list(model(torch.empty(shape, device="meta")).shape)


def weight_layers(model: nn.Module) -> int:
    return sum(isinstance(module, (nn.Conv2d, nn.Linear)) for module in model.modules())


def conv_params(in_chs: int, out_chs: int, kernel: int, bias: bool = False, groups: int = 1) -> int:
    return n_params(nn.Conv2d(in_chs, out_chs, kernel, bias=bias, groups=groups, device="meta"))


def macs(module: nn.Module, shape: tuple[int, ...]) -> int:
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        module(torch.zeros(shape))
    return counter.get_total_flops() // 2


def impulse_receptive_field(kernels: list[int]) -> int:
    """Side of the input patch that can move the centre output of a stack of stride-1 convs (all-ones weights)."""
    stack = nn.Sequential(*[nn.Conv2d(1, 1, k, bias=False) for k in kernels])
    for conv in stack:
        nn.init.ones_(conv.weight)
    image = torch.zeros(1, 1, 15, 15, requires_grad=True)
    out = stack(image)
    out[0, 0, out.shape[2] // 2, out.shape[3] // 2].backward()
    touched = image.grad[0, 0].abs().sum(dim=0) > 0
    return int(touched.sum())


def lenet_feature_shapes(model: nn.Module, side: int) -> tuple[list[str], int]:
    """Per-image shapes after conv1+tanh, pool, conv2+tanh, pool of a LeNet-5, and the flattened width."""
    x = torch.zeros(2, 1, side, side)
    shapes = []
    with torch.no_grad():
        for step in (model.conv1, model.pool, model.conv2, model.pool):
            x = step(x) if step is model.pool else torch.tanh(step(x))
            shapes.append(fmt_shape(x.shape[1:]))
    return shapes, x.flatten(1).shape[1]


def fmt_shape(shape) -> str:
    return "×".join(str(int(s)) for s in shape)


def fmt_list(values, digits: int) -> str:
    return "[" + ", ".join(f"{float(v):.{digits}f}" for v in values) + "]"


# ---------------------------------------------------------------------------------------------------------
# Contradicted claims


def simple_resnet_by_terms() -> int:
    """The SimpleResNet as written: stem conv+BN, three blocks of two biased 3x3 convs + BNs, 32 -> 10 fc."""
    stem = conv_params(1, 32, 3, bias=True) + n_params(nn.BatchNorm2d(32))
    block = 2 * conv_params(32, 32, 3, bias=True) + 2 * n_params(nn.BatchNorm2d(32))
    return stem + 3 * block + n_params(nn.Linear(32, 10))


def test_e01_simple_resnet_total():
    total = n_params(cnnlab.create_model("simple_resnet"))
    assert total == simple_resnet_by_terms() == 56_586
    assert conv_params(1, 32, 3, bias=True) == 320 and conv_params(32, 32, 3, bias=True) == 9_248
    assert total - 56_170 == 416  # the gap the note discusses
    bn_total = sum(n_params(m) for m in cnnlab.create_model("simple_resnet").modules() if isinstance(m, nn.BatchNorm2d))
    assert bn_total == 448
    assert code_gives("E01") == f"{total:,}"


@pytest.mark.torch_only
def test_e02_resnet152_stage_layout():
    model = torchvision_meta("resnet152")
    blocks = [len(getattr(model, f"layer{i}")) for i in range(1, 5)]
    assert blocks == [3, 8, 36, 3]
    assert [len(getattr(torchvision_meta("resnet50"), f"layer{i}")) for i in range(1, 5)] == [3, 4, 6, 3]
    assert code_gives("E02") == "×".join(map(str, blocks))


def test_e03_resnet152_vs_resnet34_budget():
    r152, r34, r50 = famous_count("resnet152"), famous_count("resnet34"), famous_count("resnet50")
    assert (r152, r34, r50) == (60_192_808, 21_797_672, 25_557_032)
    assert code_gives("E03") == f"{r152:,} vs {r34:,} ({r152 / r34:.2f}×)"


def test_e04_resnet18_conv_parameters():
    model = torchvision_meta("resnet18")
    conv = sum(n_params(m) for m in model.modules() if isinstance(m, nn.Conv2d))
    total = famous_count("resnet18")
    assert (conv, total) == (11_166_912, 11_689_512)
    assert total == conv + 9_600 + n_params(model.fc)  # convs + BN + the 512 -> 1000 classifier
    assert code_gives("E04") == f"{conv:,} conv; {total:,} whole model"


def test_e05_lenet5_params_at_28():
    at_28 = n_params(cnnlab.create_model("lenet5", input_size=28))
    at_32 = n_params(cnnlab.create_model("lenet5", input_size=32))
    assert (at_28, at_32) == (44_426, 61_706)
    assert code_gives("E05") == f"{at_28:,} at 28×28 ({at_32:,} at 32×32)"


WIDGET_VALUES = torch.tensor([4.45, 9.42, 0.68, 6.55, 2.22, 3.99, 7.23, 4.48], dtype=torch.float64)


@pytest.mark.torch_only
def test_e06_widget_mean_after_norm():
    normalized = nn.functional.batch_norm(WIDGET_VALUES.view(1, 1, 8, 1), None, None, training=True)
    mean = float(normalized.mean())
    assert abs(mean) < 1e-12
    assert code_gives("E06") == f"{abs(mean):.3f}"


@pytest.mark.torch_only
def test_e07_torch_var_of_bn_output():
    bn = nn.BatchNorm2d(2).train()
    out = bn(BN_EXAMPLE).detach()
    unbiased = out.var(dim=(0, 2, 3))  # torch.var's default divides by N - 1 = 7 (8 values per channel)
    expected = 8 / 7 * 5.25 / (5.25 + 1e-5)
    assert torch.allclose(unbiased, torch.tensor([expected, expected]), atol=1e-6)
    assert abs(float(unbiased[0]) - 16 / 15) > 0.07
    assert code_gives("E07") == f"{float(unbiased[0]):.4f}"


@pytest.mark.torch_only
def test_e08_running_var_after_one_step():
    bn = nn.BatchNorm2d(2, momentum=0.1).train()
    bn(BN_EXAMPLE)
    assert torch.allclose(bn.running_var, torch.tensor([1.5, 1.5]))  # 0.9 * 1 + 0.1 * (5.25 * 8 / 7)
    assert code_gives("E08") == fmt_list(bn.running_var, 4)


@pytest.mark.torch_only
def test_e09_eval_output_channel0_sample0():
    bn = nn.BatchNorm2d(2, momentum=0.1).train()
    bn(BN_EXAMPLE)
    out = bn.eval()(BN_EXAMPLE).detach()[0, 0].flatten()
    assert torch.allclose(out, (torch.tensor([1.0, 2.0, 3.0, 4.0]) - 0.45) / math.sqrt(1.5 + 1e-5))
    assert code_gives("E09") == fmt_list(out, 2)


TOY_MAP = np.array(
    [[[1.0, -2.0, 3.0], [-1.0, 4.0, -5.0], [6.0, -7.0, 8.0]],
     [[-1.0, 2.0, -3.0], [1.0, -4.0, 5.0], [-6.0, 7.0, -8.0]]]
)  # fmt: skip


def toy_residual_block(x: np.ndarray, w1: np.ndarray, w2: np.ndarray) -> np.ndarray:
    """relu(W2 · relu(W1 · x) + x) for a [C, H, W] map, the channel mixes W1, W2 as 1x1 nn.Conv2d layers."""
    mix1, mix2 = (nn.Conv2d(2, 2, 1, bias=False, dtype=torch.float64) for _ in range(2))
    with torch.no_grad():
        mix1.weight.copy_(torch.from_numpy(w1).view(2, 2, 1, 1))
        mix2.weight.copy_(torch.from_numpy(w2).view(2, 2, 1, 1))
        t = torch.from_numpy(x)[None]
        return torch.relu(mix2(torch.relu(mix1(t))) + t)[0].numpy()


@pytest.mark.torch_only
def test_e10_toy_input_magnitude():
    magnitude = float(np.abs(TOY_MAP).mean().round(3))
    assert magnitude == 4.111  # 74 / 18
    assert code_gives("E10") == f"{magnitude:.3f}"


@pytest.mark.torch_only
def test_e11_toy_output_magnitude():
    assert np.allclose(toy_residual_block(TOY_MAP, np.zeros((2, 2)), np.zeros((2, 2))), np.maximum(TOY_MAP, 0))
    rng = np.random.default_rng(0)
    w1, w2 = rng.standard_normal((2, 2)) * 0.1, rng.standard_normal((2, 2)) * 0.1
    magnitude = float(np.abs(toy_residual_block(TOY_MAP, w1, w2)).mean().round(3))
    assert magnitude == 2.056
    assert abs(magnitude - np.maximum(TOY_MAP, 0).mean()) < 0.01  # = mean |ReLU(x)| = 37 / 18
    assert code_gives("E11") == f"{magnitude:.3f}"


def test_e12_lenet5_fully_connected_layers():
    model = cnnlab.create_model("lenet5", input_size=32)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [m.out_features for m in linears] == [120, 84, 10]
    assert code_gives("E12") == f"{len(linears)} ({' → '.join(str(m.out_features) for m in linears)})"


def test_e13_vgg_conv_layer_counts():
    counts = []
    for name in ("vgg16", "vgg19"):
        model = cnnlab_meta(name)
        counts.append(sum(isinstance(m, nn.Conv2d) for m in model.modules()))
        assert weight_layers(model) == counts[-1] + 3
    assert counts == [13, 16]
    assert code_gives("E13") == f"{counts[0]} / {counts[1]} conv"


@pytest.mark.torch_only
def test_e14_divide_by_n_is_the_biased_estimator():
    channel = BN_EXAMPLE[:, 0].flatten()  # 1..8
    by_n = float(channel.var(unbiased=False))
    by_n_minus_1 = float(channel.var(unbiased=True))
    assert by_n == float(((channel - channel.mean()) ** 2).sum() / channel.numel()) == 5.25
    assert by_n_minus_1 == 6.0
    assert code_gives("E14") == f"/N = {by_n:.2f} is unbiased=False; unbiased = {by_n_minus_1:.2f}"


def test_e16_output_size_formula_needs_a_floor():
    from cnnlab.traces import trace

    side, kernel, stride, padding = 6, 3, 2, 0
    without_floor = (side + 2 * padding - kernel) / stride + 1
    conv = nn.Conv2d(1, 1, kernel, stride=stride, padding=padding)
    actual = conv(torch.zeros(1, 1, side, side)).shape[-1]
    assert (without_floor, actual) == (2.5, 2)
    assert trace("conv", input=f"{side}x{side}", kernel=kernel, stride=stride)["rows"][0][5] == [actual, actual]
    assert code_gives("E16") == str(actual)


@pytest.mark.torch_only
def test_e15_pytorch_running_var_uses_unbiased_variance():
    bn = nn.BatchNorm2d(2, momentum=0.1).train()
    bn(BN_EXAMPLE)
    batch_var_by_n = BN_EXAMPLE.var(dim=(0, 2, 3), unbiased=False)
    by_the_tutorial_rule = 0.9 * torch.ones(2) + 0.1 * batch_var_by_n
    assert torch.allclose(by_the_tutorial_rule, torch.tensor([1.425, 1.425]))
    assert not torch.allclose(bn.running_var, by_the_tutorial_rule)
    pytorch, rule = float(bn.running_var[0]), float(by_the_tutorial_rule[0])
    assert code_gives("E15") == f"{pytorch:.3f} (PyTorch) vs {rule:.3f} (rule)"


def test_e17_vgg19_has_no_batchnorm():
    def count(model: nn.Module, kind: type) -> int:
        return sum(isinstance(m, kind) for m in model.modules())

    vgg19, vgg19_bn = cnnlab_meta("vgg19"), cnnlab_meta("vgg19_bn")
    bn, conv, fc = count(vgg19, nn.BatchNorm2d), count(vgg19, nn.Conv2d), count(vgg19, nn.Linear)
    assert (bn, conv, fc) == (0, 16, 3)
    assert count(vgg19_bn, nn.BatchNorm2d) == 16  # the later variant: one BN after every conv
    assert n_params(vgg19) == n_params(torchvision_meta("vgg19"))
    assert code_gives("E17") == f"{bn} BatchNorm layers in vgg19 ({conv} conv + {fc} FC)"


def test_e18_deep_plain_first_layer_gradient_is_not_vanishing():
    from cnnlab.experiments.degradation import first_layer_grad_norm

    norms = {}
    for name in ("plain56", "plain20", "resnet56"):
        torch.manual_seed(0)
        model = cnnlab.create_model(name, in_chans=1)
        data = torch.Generator().manual_seed(0)
        images, labels = torch.randn(16, 1, 28, 28, generator=data), torch.randint(0, 10, (16,), generator=data)
        norms[name] = first_layer_grad_norm(model, images, labels)
    assert norms["plain56"] > 100 * norms["resnet56"] and norms["plain56"] > 100 * norms["plain20"]
    shown = f"plain-56 {norms['plain56']:,.0f}; plain-20 {norms['plain20']:.2f}; resnet-56 {norms['resnet56']:.2f}"
    assert code_gives("E18") == f"‖∂L/∂W‖ of conv1 at init: {shown}"


def test_e19_resnet152_block_count():
    model = cnnlab_meta("resnet152")
    blocks = [len(getattr(model, f"layer{i}")) for i in range(1, 5)]
    assert blocks == [3, 8, 36, 3]
    convs_on_main_path = sum(isinstance(m, nn.Conv2d) for m in model.modules()) - 4  # less the 4 projections
    assert convs_on_main_path + 1 == 3 * sum(blocks) + 2 == 152  # + the fc
    assert code_gives("E19") == f"{sum(blocks)} ({' + '.join(map(str, blocks))})"


def test_e20_alexnet_has_no_7x7_kernel():
    kernels = []
    for model in (cnnlab.create_model("alexnet_paper", in_chans=3, num_classes=1000), torchvision_meta("alexnet")):
        kernels.append([m.kernel_size[0] for m in model.modules() if isinstance(m, nn.Conv2d)])
    assert kernels[0] == kernels[1] == [11, 5, 3, 3, 3]
    assert 7 not in kernels[0]
    assert code_gives("E20") == ", ".join(f"{k}×{k}" for k in kernels[0]) + " (no 7×7)"


@pytest.mark.torch_only
def test_e21_two_3x3_keep_no_more_resolution_than_one_5x5():
    image = torch.zeros(1, 1, 32, 32)
    sides = []
    for padding_5, padding_3 in ((0, 0), (2, 1)):
        one = nn.Conv2d(1, 1, 5, padding=padding_5)(image).shape[-1]
        two = nn.Sequential(nn.Conv2d(1, 1, 3, padding=padding_3), nn.Conv2d(1, 1, 3, padding=padding_3))(image)
        assert one == two.shape[-1]
        sides.append(one)
    assert sides == [28, 32]
    assert code_gives("E21") == (
        f"the same side: 32 → {sides[0]} for both without padding, 32 → {sides[1]} for both with same padding"
    )


# ---------------------------------------------------------------------------------------------------------
# Confirmed claims


def test_c01_lenet5_at_28_layer_counts():
    model = cnnlab.create_model("lenet5", input_size=28)
    per_layer = [n_params(getattr(model, name)) for name in ("conv1", "conv2", "fc1", "fc2", "fc3")]
    assert per_layer == [156, 2_416, 30_840, 10_164, 850]
    assert n_params(model) == sum(per_layer) == 44_426
    assert code_gives("C01") == " / ".join(f"{n:,}" for n in per_layer) + f"; {n_params(model):,}"


def test_c02_lenet5_at_28_shape_flow():
    shapes, flat = lenet_feature_shapes(cnnlab.create_model("lenet5", input_size=28).eval(), 28)
    assert shapes == ["6×24×24", "6×12×12", "16×8×8", "16×4×4"]
    section1_flat = cnnlab.create_model("simple_cnn").fc1.in_features
    assert (flat, section1_flat) == (256, 1_568)
    assert code_gives("C02") == " → ".join(shapes) + f" → {flat}; Section-1 CNN flattens {section1_flat:,}"


def test_c03_section1_cnn():
    model = cnnlab.create_model("simple_cnn")
    total, fc1 = n_params(model), n_params(model.fc1)
    assert (total, fc1) == (206_922, 200_832)
    assert code_gives("C03") == f"{total:,}; fc1 {fc1:,}"


def test_c04_simple_resnet_parts():
    model = cnnlab.create_model("simple_resnet")
    block_conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d) and m.in_channels == 32)
    block_conv_weight = block_conv.weight.numel()
    bn = n_params(next(m for m in model.modules() if isinstance(m, nn.BatchNorm2d)))
    fc = n_params(model.get_classifier())
    convs = sum(isinstance(m, nn.Conv2d) for m in model.modules())
    assert (block_conv_weight, bn, fc, convs, weight_layers(model)) == (9_216, 64, 330, 7, 8)
    features = model.eval().forward_features(torch.zeros(2, 1, 28, 28))
    assert list(features.shape) == [2, 32, 28, 28]
    assert code_gives("C04") == f"{block_conv_weight:,}; {bn}; {fc}; {convs} conv + 1 FC = {weight_layers(model)}"


def test_c05_alexnet_vs_lenet5():
    alexnet = famous_count("alexnet")
    ratio = alexnet / n_params(cnnlab.create_model("lenet5", input_size=28))
    assert alexnet == 61_100_840 and 1_350 < ratio < 1_400
    assert code_gives("C05") == f"{alexnet:,}; {ratio:,.0f}×"


def googlenet_depth(model: nn.Module) -> int:
    """Weighted layers on the longest path: stem convs, then for each Inception module its deepest branch, then fc."""
    depth = 0
    for child in model.children():
        if isinstance(child, BasicConv2d):
            depth += 1
        elif isinstance(child, Inception):
            branches = [child.branch1, child.branch2, child.branch3, child.branch4]
            depth += max(sum(isinstance(m, nn.Conv2d) for m in branch.modules()) for branch in branches)
        elif isinstance(child, nn.Linear):
            depth += 1
    return depth


def resnet_depth(model: nn.Module) -> int:
    """Weighted layers on the main path (projection shortcuts are side branches)."""
    return sum(isinstance(m, (nn.Conv2d, nn.Linear)) for name, m in model.named_modules() if "downsample" not in name)


def test_c06_depths():
    depths = [
        weight_layers(cnnlab.create_model("lenet5", input_size=28)),
        weight_layers(cnnlab_meta("alexnet")),
        weight_layers(cnnlab_meta("vgg19")),
        googlenet_depth(torchvision_meta("googlenet", aux_logits=False, init_weights=False)),
        resnet_depth(torchvision_meta("resnet152")),
    ]
    assert depths == [5, 8, 19, 22, 152]
    assert code_gives("C06") == " / ".join(map(str, depths))


@pytest.mark.torch_only
def test_c07_stacked_3x3_vs_large_kernels():
    c = 64
    five, two_threes = conv_params(c, c, 5), 2 * conv_params(c, c, 3)
    seven, three_threes = conv_params(c, c, 7), 3 * conv_params(c, c, 3)
    assert (five, two_threes, seven, three_threes) == (25 * c * c, 18 * c * c, 49 * c * c, 27 * c * c)
    # MACs on a C x H x W map with same padding: 25 C^2 HW vs 18 C^2 HW.
    h = w = 8
    one = macs(nn.Conv2d(c, c, 5, padding=2, bias=False), (1, c, h, w))
    two = macs(nn.Sequential(*(nn.Conv2d(c, c, 3, padding=1, bias=False) for _ in range(2))), (1, c, h, w))
    assert (one, two) == (25 * c * c * h * w, 18 * c * c * h * w)
    saving_5, saving_7 = 1 - two_threes / five, 1 - three_threes / seven
    assert code_gives("C07") == (
        f"{five // (c * c)}C² vs {two_threes // (c * c)}C² (−{saving_5:.0%}); "
        f"{seven // (c * c)}C² vs {three_threes // (c * c)}C² (−{saving_7:.1%}); MACs ×{two / one:.2f}"
    )


def test_c08_receptive_fields():
    two, three = impulse_receptive_field([3, 3]), impulse_receptive_field([3, 3, 3])
    assert (two, three, impulse_receptive_field([5]), impulse_receptive_field([7])) == (5, 7, 5, 7)
    assert receptive_field([(3, 1), (3, 1)]) == two and receptive_field([(3, 1)] * 3) == three
    assert code_gives("C08") == f"{two}×{two} ({two * two} pixels); {three}×{three}"


def test_c09_vgg16_size_and_fc_share():
    model = torchvision_meta("vgg16")
    total = famous_count("vgg16")
    fc = n_params(model.classifier)
    assert (total, fc) == (138_357_544, 123_642_856)
    assert code_gives("C09") == f"{total:,}; FC {fc:,} ({fc / total:.1%})"


@pytest.mark.torch_only
def test_c10_resnet18_batchnorm():
    model = torchvision_meta("resnet18")
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    channels = sum(m.num_features for m in bns)
    params = sum(n_params(m) for m in bns)
    assert (channels, params, n_params(nn.BatchNorm2d(64))) == (4_800, 9_600, 128)
    assert code_gives("C10") == f"{channels:,} channels, {params:,} params"


@pytest.mark.torch_only
def test_c11_widget_batch_stats():
    mean, var = float(WIDGET_VALUES.mean()), float(WIDGET_VALUES.var(unbiased=False))
    std = math.sqrt(var)
    # The widget shows 2-decimal inputs; its 4.880 / 6.843 / 2.616 agree within that rounding.
    assert abs(mean - 4.880) < 0.005 and abs(var - 6.843) < 0.03 and abs(std - 2.616) < 0.01
    assert code_gives("C11") == f"{mean:.4f} / {var:.3f} / {std:.3f}"


@pytest.mark.torch_only
def test_c12_batchnorm_example_values():
    x = BN_EXAMPLE
    means = x.mean(dim=(0, 2, 3))
    squares = float(((x[:, 0] - means[0]) ** 2).sum())
    var = x.var(dim=(0, 2, 3), unbiased=False)
    assert means.tolist() == [4.5, 13.5] and squares == 42.0 and var.tolist() == [5.25, 5.25]
    bn = nn.BatchNorm2d(2).train()
    y = bn(x).detach()
    assert torch.allclose(y[:, 1], y[:, 0])  # channel 1 = channel 0 + 9
    values = y[:, 0].flatten()
    assert [round(float(v), 3) for v in values] == [-1.528, -1.091, -0.655, -0.218, 0.218, 0.655, 1.091, 1.528]
    assert torch.allclose(bn.running_mean, torch.tensor([0.45, 1.35]))
    assert float(y.mean(dim=(0, 2, 3)).abs().max()) < 1e-6
    assert torch.allclose(y.var(dim=(0, 2, 3), unbiased=False), torch.ones(2), atol=1e-5)
    sd = math.sqrt(5.25 + 1e-5)
    assert code_gives("C12") == (
        f"{float(means[0])}, {float(means[1])}; {squares:.0f} → {float(var[0])}; {sd:.4f}; "
        f"{fmt_list(values[:4], 3)}; running_mean {fmt_list(bn.running_mean, 2)}"
    )


def test_c13_bottleneck_256():
    block = Bottleneck(256, 256)
    convs = [n_params(block.conv1), n_params(block.conv2), n_params(block.conv3)]
    total = n_params(block)
    plain = 2 * conv_params(256, 256, 3)
    assert convs == [16_384, 36_864, 16_384] and total == 70_400 and plain == 1_179_648
    assert conv_params(256, 256, 3) == 16 * convs[1]
    running_stats = block.bn1.running_mean.numel() + block.bn1.running_var.numel()
    assert (n_params(block.bn1), running_stats) == (128, 128)
    assert code_gives("C13") == (
        " / ".join(f"{n:,}" for n in convs) + f"; block {total:,}; two 3×3 {plain:,}; {plain / sum(convs):.1f}×"
    )


@pytest.mark.torch_only
def test_c14_one_by_one_bottleneck_5x5():
    naive = conv_params(256, 256, 5)
    parts = [conv_params(256, 64, 1), conv_params(64, 64, 5), conv_params(64, 256, 1)]
    assert naive == 1_638_400 and parts == [16_384, 102_400, 16_384]
    assert code_gives("C14") == f"{naive:,} vs {sum(parts):,} ({naive / sum(parts):.1f}×)"


def test_c15_googlenet_size():
    torchvision_count = n_params(torchvision_meta("googlenet", aux_logits=False, init_weights=False))
    paper_layout = n_params(cnnlab_meta("googlenet", aux_logits=False))
    vgg16 = famous_count("vgg16")
    assert (torchvision_count, paper_layout) == (6_624_904, 6_998_552)
    assert abs(torchvision_count / 6.8e6 - 1) < 0.03 and abs(paper_layout / 6.8e6 - 1) < 0.03
    assert code_gives("C15") == (
        f"{torchvision_count:,} (torchvision) / {paper_layout:,} (paper layout); "
        f"VGG-16 is {vgg16 / torchvision_count:.1f}× / {vgg16 / paper_layout:.1f}×"
    )


def test_c16_resnet_sizes():
    r18, r152 = famous_count("resnet18"), famous_count("resnet152")
    assert (r18, r152) == (11_689_512, 60_192_808)
    assert code_gives("C16") == f"{r18:,} / {r152:,}"


def test_c17_lenet5_at_32():
    model = cnnlab.create_model("lenet5", input_size=32).eval()
    shapes, flat = lenet_feature_shapes(model, 32)
    logits = model(torch.zeros(2, 1, 32, 32)).shape[1]
    widths = [flat, model.fc1.out_features, model.fc2.out_features, logits]
    assert shapes == ["6×28×28", "6×14×14", "16×10×10", "16×5×5"] and widths == [400, 120, 84, 10]
    total = n_params(model)
    assert total == 61_706 and weight_layers(model) == 5
    assert code_gives("C17") == " → ".join(shapes + [str(w) for w in widths]) + f"; {total:,}"


def test_c18_alexnet_paper_layout():
    model = cnnlab_meta("alexnet_paper")
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    widths = [m.out_channels for m in convs]
    assert widths == [96, 256, 384, 384, 256] and [m.out_features for m in linears] == [4096, 4096, 1000]
    # The same count from plain modules: conv2/4/5 split over two GPUs (groups=2), 6x6x256 into fc1.
    by_terms = (
        conv_params(3, 96, 11, True) + conv_params(96, 256, 5, True, 2) + conv_params(256, 384, 3, True)
        + conv_params(384, 384, 3, True, 2) + conv_params(384, 256, 3, True, 2)
        + 256 * 6 * 6 * 4096 + 4096 + 4096 * 4096 + 4096 + 4096 * 1000 + 1000
    )  # fmt: skip
    total = n_params(model)
    assert total == by_terms == 60_965_224
    # 11x11 stride-4 conv without padding: 227 gives 55 (-> 6x6 before fc1); 224 gives 54 (-> 5x5).
    side = lambda s: ((((s - 11) // 4 + 1 - 3) // 2 + 1 - 3) // 2 + 1 - 3) // 2 + 1  # noqa: E731
    assert (side(227), side(224)) == (6, 5)
    assert torchvision_meta("alexnet").features[0].padding == (2, 2)  # torchvision pads instead: 224 -> 55
    assert code_gives("C18") == f"{len(convs)} conv + {len(linears)} FC; {total:,}"


def test_c19_mini_vgg():
    total = n_params(cnnlab.create_model("mini_vgg"))
    assert total == 289_194
    assert meta_shape(cnnlab.create_model("mini_vgg"), (1, 3, 32, 32)) == [1, 10]
    assert code_gives("C19") == f"{total:,}"


def test_c20_tiny_resnet():
    total = n_params(cnnlab.create_model("tiny_resnet"))
    assert total == 2_797_610
    assert code_gives("C20") == f"{total:,}"


def test_c21_three_orders_of_magnitude():
    counts = [
        n_params(cnnlab.create_model("lenet5", input_size=32)),
        n_params(cnnlab.create_model("mini_vgg")),
        n_params(cnnlab.create_model("tiny_resnet")),
    ]
    exponents = [int(math.log10(n)) for n in counts]
    assert exponents == [4, 5, 6]
    decades = " / ".join(f"10^{e}" for e in exponents)
    assert code_gives("C21") == f"{decades}; max/min {counts[2] / counts[0]:.0f}×"


def test_c22_resnet18_vs_vgg16():
    from torchvision.models import ResNet18_Weights, VGG16_Weights

    ratio = famous_count("vgg16") / famous_count("resnet18")
    top1 = [w.IMAGENET1K_V1.meta["_metrics"]["ImageNet-1K"]["acc@1"] for w in (ResNet18_Weights, VGG16_Weights)]
    assert round(ratio) == 12 and top1 == [69.758, 71.592]
    assert code_gives("C22") == f"{ratio:.2f}×; top-1 {top1[0]} / {top1[1]}"


def test_c23_stems():
    imagenet_stem = torchvision_meta("resnet18").conv1
    cifar_stem = next(m for m in cnnlab.create_model("tiny_resnet").modules() if isinstance(m, nn.Conv2d))
    stems = [(imagenet_stem.kernel_size[0], imagenet_stem.stride[0]), (cifar_stem.kernel_size[0], cifar_stem.stride[0])]
    assert stems == [(7, 2), (3, 1)]
    (k1, s1), (k2, s2) = stems
    assert code_gives("C23") == f"{k1}×{k1}/{s1} (resnet18); {k2}×{k2}/{s2} (tiny_resnet)"


@pytest.mark.torch_only
def test_c24_vgg11_first_layers():
    model = torchvision_meta("vgg11")
    kinds = [type(m).__name__ for m in model.features[:6]]
    assert kinds == ["Conv2d", "ReLU", "MaxPool2d", "Conv2d", "ReLU", "MaxPool2d"]
    assert (model.features[0].out_channels, model.features[3].out_channels) == (64, 128)
    shape = meta_shape(model.features[:3], (32, 3, 32, 32))
    assert shape == [32, 64, 16, 16]
    assert code_gives("C24") == f"[{', '.join(map(str, shape))}]"


@pytest.mark.torch_only
def test_c25_variance_after_batchnorm():
    stated_input_vars = [0.0418, 0.0192, 0.0072]
    # One channel per stated variance: +-sqrt(var) gives mean 0 and (biased) variance exactly var.
    signs = torch.tensor([1.0, -1.0] * 8, dtype=torch.float64).view(16, 1, 1, 1)
    x = torch.cat([signs * math.sqrt(v) for v in stated_input_vars], dim=1)
    out = nn.BatchNorm2d(3, affine=False, dtype=torch.float64).train()(x).detach()
    after = out.var(dim=(0, 2, 3), unbiased=False)
    assert torch.allclose(after, torch.tensor([v / (v + 1e-5) for v in stated_input_vars], dtype=torch.float64))
    assert code_gives("C25") == ", ".join(f"{float(v):.4f}" for v in after)


@pytest.mark.torch_only
def test_c26_running_mean_first_step():
    batch_means = torch.tensor([-0.0209811, -0.10714138, -0.16730848], dtype=torch.float64)
    bn = nn.BatchNorm2d(3, dtype=torch.float64)
    assert (bn.momentum, bn.eps) == (0.1, 1e-5)
    bn.train()(batch_means.view(1, 3, 1, 1).expand(2, 3, 2, 2).contiguous())
    first = [round(float(v), 8) for v in bn.running_mean]
    assert first == [-0.00209811, -0.01071414, -0.01673085]
    assert code_gives("C26") == ", ".join(f"{v:.8f}" for v in first) + f"; momentum {bn.momentum}"


@pytest.mark.torch_only
def test_c27_mobilenet_v3_small_head():
    model = torchvision_meta("mobilenet_v3_small")
    head = model.classifier
    assert [type(m).__name__ for m in head] == ["Linear", "Hardswish", "Dropout", "Linear"]
    assert (head[0].in_features, head[0].out_features, head[2].p, head[3].out_features) == (576, 1024, 0.2, 1000)
    model.classifier = nn.Linear(head[0].in_features, 10, device="meta")
    for p in model.parameters():
        p.requires_grad = False
    for p in model.classifier.parameters():
        p.requires_grad = True
    trainable = [p for p in model.parameters() if p.requires_grad]
    count = sum(p.numel() for p in trainable)
    assert (len(trainable), count) == (2, 5_770)
    shape = meta_shape(model, (32, 3, 32, 32))
    assert shape == [32, 10]
    fc1, dropout, fc2 = head[0], head[2], head[3]
    layout = f"{fc1.in_features} → {fc1.out_features}, Dropout {dropout.p}, {fc2.in_features} → {fc2.out_features}"
    assert code_gives("C27") == f"{layout}; ({len(trainable)}, {count:,}); [{shape[0]}, {shape[1]}]"


@pytest.mark.torch_only
def test_c28_same_padding_keeps_size():
    out = nn.Conv2d(3, 4, 3, stride=1, padding=1)(torch.zeros(1, 3, 32, 32))
    assert out.shape[-1] == (32 + 2 * 1 - 3) // 1 + 1 == 32
    assert code_gives("C28") == f"32 → {out.shape[-1]}"


@pytest.mark.torch_only
def test_c29_densenet_growth():
    model = torchvision_meta("densenet121")
    f = model.features
    inputs = [f.norm0.num_features] + [getattr(f, f"transition{i}").conv.out_channels for i in (1, 2, 3)]
    layers = [len(getattr(f, f"denseblock{i}")) for i in (1, 2, 3, 4)]
    growth = f.denseblock1.denselayer1.conv2.out_channels
    outputs = [getattr(f, f"transition{i}").norm.num_features for i in (1, 2, 3)] + [f.norm5.num_features]
    assert growth == 32 and outputs == [c0 + n * growth for c0, n in zip(inputs, layers)] == [256, 512, 1024, 1024]
    assert code_gives("C29") == ", ".join(f"{c0}+{n}·{growth}={c}" for c0, n, c in zip(inputs, layers, outputs))


def test_c30_alexnet_overlapping_pooling():
    pools = [m for m in cnnlab_meta("alexnet").modules() if isinstance(m, nn.MaxPool2d)]
    assert {(m.kernel_size, m.stride) for m in pools} == {(3, 2)} and len(pools) == 3
    assert code_gives("C30") == f"{len(pools)} pools, 3×3 stride 2"


@pytest.mark.torch_only
def test_c31_vgg_widths():
    widths = sorted({m.out_channels for m in torchvision_meta("vgg16").modules() if isinstance(m, nn.Conv2d)})
    assert widths == [64, 128, 256, 512]
    assert code_gives("C31") == ", ".join(map(str, widths))


def test_c32_basic_block_shortcuts():
    shape = meta_shape(BasicBlock(64, 128, stride=2), (1, 64, 56, 56))
    assert shape == [1, 128, 28, 28]

    def shortcut_layers(block: BasicBlock) -> int:
        return 0 if block.downsample is None else len(block.downsample)

    configs = [(64, 64, 1), (64, 64, 2), (64, 128, 1)]  # (in, out, stride)
    counts = [shortcut_layers(BasicBlock(c_in, c_out, stride)) for c_in, c_out, stride in configs]
    assert counts == [0, 2, 2]
    assert code_gives("C32") == f"[{', '.join(map(str, shape))}]; {' / '.join(map(str, counts))}"


def test_c33_resnet50_layout():
    model = torchvision_meta("resnet50")
    blocks = [len(getattr(model, f"layer{i}")) for i in range(1, 5)]
    first = model.layer1[0]
    squeeze = first.conv2.in_channels, first.conv3.out_channels
    assert blocks == [3, 4, 6, 3] and squeeze == (64, 256)
    assert type(first).expansion == Bottleneck.expansion == 4
    assert (model.conv1.kernel_size, isinstance(model.maxpool, nn.MaxPool2d)) == ((7, 7), True)
    assert resnet_depth(model) == 50
    assert code_gives("C33") == f"[{', '.join(map(str, blocks))}]; 3×3 on {squeeze[0]} of {squeeze[1]} channels"


@pytest.mark.torch_only
def test_c34_resnet50_v2_top1():
    from torchvision.models import ResNet50_Weights

    top1 = ResNet50_Weights.IMAGENET1K_V2.meta["_metrics"]["ImageNet-1K"]["acc@1"]
    assert round(top1, 1) == 80.9
    assert code_gives("C34") == f"{top1}"


def test_c35_cifar_resnet_depths():
    depths = [weight_layers(cnnlab_meta("resnet110")), weight_layers(cnnlab_meta("resnet1202"))]
    assert depths == [6 * 18 + 2, 6 * 200 + 2] == [110, 1202]
    assert code_gives("C35") == f"{depths[0]} / {depths[1]:,}"


def test_c36_vgg16_vgg19():
    layers, totals = [], []
    for name in ("vgg16", "vgg19"):
        model = cnnlab_meta(name)
        convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
        pools = [m for m in model.modules() if isinstance(m, nn.MaxPool2d)]
        assert {(m.kernel_size, m.stride, m.padding) for m in convs} == {((3, 3), (1, 1), (1, 1))}
        assert {m.stride for m in pools} == {2}
        layers.append(weight_layers(model))
        totals.append(famous_count(name))
    assert layers == [16, 19] and totals == [138_357_544, 143_667_240]
    assert code_gives("C36") == f"{layers[0]} / {layers[1]} layers; {totals[0]:,} / {totals[1]:,}"


def test_c37_mini_resnet_output():
    shape = meta_shape(cnnlab.create_model("mini_resnet"), (4, 3, 32, 32))
    assert shape == [4, 10]
    assert code_gives("C37") == f"[{shape[0]}, {shape[1]}]"
