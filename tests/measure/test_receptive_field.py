"""Receptive fields: the closed formula, and the per-layer values summarize reads off a forward pass."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import torchvision
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import cnnlab
from cnnlab import CnnlabError
from cnnlab.measure import receptive_field, summarize
from cnnlab.measure.receptive import effective_receptive_field, trace_network
from cnnlab.models.meta import on_meta
from cnnlab.scratch import conv_output_size


def test_stacked_3x3_convs_match_larger_kernels():
    assert receptive_field([(3, 1), (3, 1)]) == 5  # VGG's argument: two 3x3 see what one 5x5 sees
    assert receptive_field([(3, 1)] * 3) == 7
    assert receptive_field([(7, 2), (3, 2)]) == 11  # ResNet stem: 7 + (3 - 1) * 2
    assert receptive_field([]) == 1
    with pytest.raises(CnnlabError):
        receptive_field([(3, 0)])


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_summarize_agrees_with_the_formula(depth):
    summary = summarize("; ".join(["conv 4 k3 p1"] * depth), (1, 16, 16))
    assert [row.receptive_field for row in summary.rows] == [receptive_field([(3, 1)] * (i + 1)) for i in range(depth)]


class _FunctionalPool(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)
        self.conv2 = nn.Conv2d(2, 2, 3)

    def forward(self, x):
        return self.conv2(F.max_pool2d(self.conv(x), 2))  # a pool with no module of its own still widens the field


class _Residual(nn.Module):
    def __init__(self, convs: int = 1) -> None:
        super().__init__()
        self.branch = nn.Sequential(*(nn.Conv2d(2, 2, 3, padding=1) for _ in range(convs)))
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(x + self.branch(x))


class _Inception(nn.Module):
    """1x1, 3x3 and 5x5 branches concatenated, then a 3x3 conv on the concat."""

    def __init__(self) -> None:
        super().__init__()
        self.branches = nn.ModuleList(nn.Conv2d(1, 2, k, padding=k // 2) for k in (1, 3, 5))
        self.after = nn.Conv2d(6, 2, 3, padding=1)

    def forward(self, x):
        return self.after(torch.cat([branch(x) for branch in self.branches], dim=1))


def test_functional_ops_count_and_merges_take_the_widest_path():
    assert [row.receptive_field for row in summarize(_FunctionalPool(), (1, 16, 16)).rows] == [3, 3 + 1 + 2 * 2]
    # x + F(x): the identity sees 1 pixel, the branch 3 then 5; the ReLU after the add sees the wider, 5.
    assert [row.receptive_field for row in summarize(_Residual(2), (2, 8, 8)).rows] == [3, 5, 5]
    assert [row.receptive_field for row in summarize(_Inception(), (1, 9, 9)).rows] == [1, 3, 5, 5 + 2]
    assert receptive_field(_Inception(), (1, 9, 9)) == 7 and receptive_field(_Residual(3), (2, 8, 8)) == 7


def test_squeeze_excitation_gates_add_no_spatial_path():
    class Gated(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 2, 3, padding=1)

        def forward(self, x):
            y = self.conv(x)
            return y * torch.sigmoid(y.mean((2, 3), keepdim=True))  # the gate pools the whole 16x16 map

    assert receptive_field(Gated(), (1, 16, 16)) == 3


def test_adaptive_and_global_pools():
    # 8x8 input, 3x3 conv -> 6x6; a global pool then covers all of it: 3 + (6 - 1) = 8 = the whole image.
    chain = nn.Sequential(nn.Conv2d(1, 2, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2, 2))
    assert [row.receptive_field for row in summarize(chain, (1, 8, 8)).rows] == [3, 8, None, None]
    even = nn.Sequential(nn.Conv2d(1, 2, 3), nn.AdaptiveMaxPool2d(3))  # 6 -> 3: windows 2, stride 2
    assert [row.receptive_field for row in summarize(even, (1, 8, 8)).rows] == [3, 4]
    uneven = nn.Sequential(nn.Conv2d(1, 2, 3), nn.AdaptiveAvgPool2d(4))  # 6 -> 4: windows of 2 and 3
    assert [row.receptive_field for row in summarize(uneven, (1, 8, 8)).rows] == [3, None]


@settings(max_examples=50, deadline=None)
@given(
    size=st.integers(1, 40),
    kernel=st.integers(1, 7),
    stride=st.integers(1, 4),
    padding=st.integers(0, 3),
    dilation=st.integers(1, 3),
)
def test_output_size_formula_matches_torch_modules(size, kernel, stride, padding, dilation):
    # Valid ranges only: the dilated kernel must fit the padded input, and torch caps pool padding at half the kernel.
    expected = conv_output_size(size, kernel, stride, padding, dilation)
    if expected < 1:
        return
    x = torch.zeros(1, 1, size, size)
    conv = nn.Conv2d(1, 1, kernel, stride=stride, padding=padding, dilation=dilation)
    assert conv(x).shape[-2:] == (expected, expected)
    if 2 * padding <= kernel:
        pool = nn.MaxPool2d(kernel, stride=stride, padding=padding, dilation=dilation)
        assert pool(x).shape[-2:] == (expected, expected)
    if dilation == 1:  # the tutorials' formula floor((H + 2p - k) / s) + 1
        assert expected == (size + 2 * padding - kernel) // stride + 1


# ------------------------------------------------------------------------------------------------ whole networks


def test_published_values_of_araujo_et_al():
    # Araujo, Norris & Sim 2019 (Distill), table of receptive fields at the last feature map: AlexNet 195 and
    # VGG-16 212, both with the last max-pool. The cnnlab models and torchvision's own layers give the same.
    with torch.device("meta"):  # shapes only
        alexnet, vgg16 = torchvision.models.alexnet().features, torchvision.models.vgg16().features
    assert cnnlab.receptive_field("alexnet", 224) == 195 == receptive_field(alexnet)
    assert cnnlab.receptive_field("vgg16", 224) == 212 == receptive_field(vgg16)
    assert receptive_field("mobilenet_v1") == 315  # every depthwise 3x3 adds 2 * jump: 3 + 4 + 4 + 8 + ... = 315


def _torchvision_trunk(name: str, stride_in_first_1x1: bool = False) -> nn.Module:
    """torchvision's ResNet up to layer4, optionally with each stride moved from the 3x3 to the first 1x1 conv
    (the 2015 paper's layout, which Araujo et al.'s table uses)."""
    with torch.device("meta"):
        model = getattr(torchvision.models, name)()
    if stride_in_first_1x1:
        for block in (*model.layer2, *model.layer3, *model.layer4):
            block.conv1.stride, block.conv2.stride = block.conv2.stride, (1, 1)
    return nn.Sequential(*list(model.children())[:-2])


@pytest.mark.parametrize(
    ("name", "code", "paper"), [("resnet50", 427, 483), ("resnet101", 971, 1027), ("resnet152", 1451, 1507)]
)
def test_resnet_fields_torchvision_layout_and_paper_layout(name, code, paper):
    # torchvision (like cnnlab, its twin) strides in the 3x3 conv: that 3x3 then steps on the finer grid, adding
    # 2 * jump instead of 2 * 2 * jump in each of the three downsampling blocks: 8 + 16 + 32 = 56 pixels less.
    assert receptive_field(name) == code == receptive_field(_torchvision_trunk(name))
    assert receptive_field(_torchvision_trunk(name, stride_in_first_1x1=True)) == paper == code + 56


@pytest.mark.slow
def test_every_registered_model_gets_a_receptive_field_and_a_depth():
    fields, depths = {}, {}
    for name in cnnlab.list_models():
        with on_meta():
            model = cnnlab.create_model(name)
        field, depths[name] = trace_network(model, cnnlab.model_info(name).input_size, name)
        fields[name] = field.size
    assert all(isinstance(field, int) and field >= 3 for field in fields.values()), fields
    assert all(isinstance(depth, int) and depth >= 4 for depth in depths.values()), depths
    assert (fields["resnet18"], fields["resnet20"], fields["lenet5"], fields["googlenet_tv"]) == (435, 81, 16, 379)
    assert [fields["alexnet"], fields["densenet121"]] == [receptive_field("alexnet"), receptive_field("densenet121")]


@pytest.mark.parametrize(
    "name",
    [
        "googlenet",
        "densenet_bc_100_12",
        "efficientnet_b0",
        "convnext_tiny",
        "squeezenet1_1",
        "mobilenet_v3_small",
        "regnet_y_400mf",
        "resnext29_8x64d",
    ],
)
def test_summary_fills_every_map_row_of_branching_nets(name):
    shape = (3, 64, 64)
    with torch.device("meta"):
        model = cnnlab.create_model(name)
    rows = summarize(model, shape).rows
    maps = [row for row in rows if len(row.output_shape) == 3]
    assert maps and all(isinstance(row.receptive_field, int) for row in maps)
    assert all(row.receptive_field is None for row in rows if len(row.output_shape) != 3)


def test_bad_arguments_are_one_line_errors():
    with pytest.raises(CnnlabError, match="unknown model 'resnt18'"):
        receptive_field("resnt18")
    with pytest.raises(CnnlabError, match="too small"):
        receptive_field("alexnet", 32)
    with pytest.raises(CnnlabError):
        receptive_field(3.5)


# ------------------------------------------------------------------------------------------------ effective field


def _uniform_stack(depth: int) -> nn.Sequential:
    stack = nn.Sequential(*(nn.Conv2d(2, 2, 3, padding=1, bias=False) for _ in range(depth)))
    for conv in stack:
        nn.init.constant_(conv.weight, 1.0)
    return stack


def test_effective_field_of_a_uniform_3x3_stack_is_the_trinomial():
    # Luo et al. 2016, section 2: with uniform weights and no non-linearity the gradient of the centre pixel is
    # the k-fold convolution of the 3-tap box, the trinomial coefficients 1 4 10 16 19 16 10 4 1 for 4 layers.
    extent, heatmap = effective_receptive_field(_uniform_stack(4), (2, 15, 15), samples=2)
    taps = torch.tensor([0, 0, 0, 1, 4, 10, 16, 19, 16, 10, 4, 1, 0, 0, 0], dtype=torch.float32)
    assert heatmap.shape == (15, 15) and divmod(int(heatmap.argmax()), 15) == (7, 7)
    torch.testing.assert_close(heatmap, torch.outer(taps, taps) / 19**2)
    # 95% of the mass: the 7x7 centre holds (81 - 2 - 2 + ...) of 81^2; 5x5 does not.
    mass = lambda side: (taps[7 - side // 2 : 8 + side // 2].sum() / 81) ** 2  # noqa: E731
    assert mass(5) < 0.95 <= mass(7) and extent == 7 < receptive_field(_uniform_stack(4), (2, 15, 15)) == 9


def test_effective_field_with_relus_peaks_near_the_centre_and_stays_inside_the_theoretical_one():
    # A given model keeps its weights, so seed them: the argmax of one random net lies up to 2 px off the centre
    # for some seeds (it depended on the tests run before it in the same worker), its centre of mass within 0.6 px.
    torch.manual_seed(0)
    stack = nn.Sequential(*(layer for _ in range(4) for layer in (nn.Conv2d(4, 4, 3, padding=1), nn.ReLU())))
    extent, heatmap = effective_receptive_field(stack, (4, 21, 21), samples=8)
    row, col = divmod(int(heatmap.argmax()), 21)
    assert abs(row - 10) <= 1 and abs(col - 10) <= 1
    ys, xs = torch.meshgrid(torch.arange(21.0), torch.arange(21.0), indexing="ij")
    mass = heatmap / heatmap.sum()
    assert abs(float((mass * ys).sum()) - 10) < 1 and abs(float((mass * xs).sum()) - 10) < 1
    assert heatmap[:, :6].sum() == 0 and heatmap[:6].sum() == 0  # outside the 9x9 field: exactly no gradient
    assert 1 <= extent <= 9


def test_effective_field_of_a_registered_model_is_inside_its_theoretical_field():
    extent, heatmap = effective_receptive_field("resnet20", samples=2)
    assert heatmap.shape == (32, 32) and float(heatmap.max()) == 1.0 and float(heatmap.min()) >= 0
    assert 1 <= extent <= min(receptive_field("resnet20"), 32)
    assert cnnlab.effective_receptive_field is effective_receptive_field
