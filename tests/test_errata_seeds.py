"""The S rows of docs/errata.md ("Seed numbers not covered above"), recomputed for a sample of S32-S56.

tests/test_errata.py owns the E and C rows, one test each. The S rows are the tutorials' remaining numbers; this
file recomputes the confirmed ones that code can settle exactly, and checks that each row's "Value here" cell
states the computed value, so the page cannot drift from the code. Big networks are built on the meta device.
"""

from __future__ import annotations

import pytest
import torch
import torchvision
from errata_table import errata_rows
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset
from torch.utils.flop_counter import FlopCounterMode

import cnnlab
from cnnlab.models.blocks import BasicBlock
from cnnlab.models.resnet import has_skip

ROWS = errata_rows(r"S\d\d")


def value_here(row_id: str) -> str:
    assert ROWS[row_id]["Status"].startswith("confirmed"), f"{row_id} is not a confirmed row"
    return ROWS[row_id]["Value here"]


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def torchvision_meta(name: str, **kwargs) -> nn.Module:
    with torch.device("meta"):
        return getattr(torchvision.models, name)(weights=None, **kwargs)


def test_s_rows_are_numbered_in_order():
    ids = [int(row_id[1:]) for row_id in ROWS]
    assert ids == list(range(1, len(ids) + 1))
    assert len(ids) >= 56


def test_s32_s33_lenet_widths():
    lenet, section_1 = cnnlab.create_model("lenet5", input_size=28), cnnlab.create_model("simple_cnn")
    assert (lenet.conv1.out_channels, section_1.conv1.out_channels) == (6, 16)
    assert value_here("S32") == f"conv1 widths {lenet.conv1.out_channels} (LeNet-5) and 16 (Section-1 CNN)"
    assert lenet.fc2.out_features == 7 * 12 == 84
    assert value_here("S33") == "84 = 7 × 12"


def test_s35_alexnet_layout():
    model = cnnlab.create_model("alexnet_paper", in_chans=3, num_classes=1000)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    pools = [(m.kernel_size, m.stride) for m in model.modules() if isinstance(m, nn.MaxPool2d)]
    fcs = [m.out_features for m in model.modules() if isinstance(m, nn.Linear)]
    assert [m.kernel_size[0] for m in convs] == [11, 5, 3, 3, 3]
    assert [m.out_channels for m in convs] == [96, 256, 384, 384, 256]
    assert pools == [(3, 2)] * 3 and fcs == [4096, 4096, 1000]
    reference = torchvision_meta("alexnet")
    assert [m.kernel_size[0] for m in reference.modules() if isinstance(m, nn.Conv2d)] == [11, 5, 3, 3, 3]
    assert [m.out_features for m in reference.modules() if isinstance(m, nn.Linear)] == fcs
    assert value_here("S35").startswith("kernels 11 / 5 / 3 / 3 / 3; widths 96-256-384-384-256; 3 max-pools")


def _googlenet_eval_macs(model: nn.Module) -> int:
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model.eval()(torch.zeros(1, 3, 224, 224))
    return counter.get_total_flops() // 2


def test_s36_inception_branches_and_auxiliary_heads():
    torch.manual_seed(0)
    with_aux = cnnlab.create_model("googlenet", aux_logits=True, num_classes=1000, in_chans=3)
    without = cnnlab.create_model("googlenet", aux_logits=False, num_classes=1000, in_chans=3)
    module = with_aux.inception3a
    branches = [
        [m.kernel_size if isinstance(m, nn.Conv2d) else "pool" for m in getattr(module, f"branch{i}").modules()
         if isinstance(m, (nn.Conv2d, nn.MaxPool2d))]
        for i in range(1, 5)
    ]  # fmt: skip
    assert branches == [[(1, 1)], [(1, 1), (3, 3)], [(1, 1), (5, 5)], ["pool", (1, 1)]]
    assert [name for name, _ in with_aux.named_children() if name.startswith("aux")] == ["aux1", "aux2"]
    macs = _googlenet_eval_macs(with_aux)
    assert macs == _googlenet_eval_macs(without) == 1_582_671_872
    with torch.no_grad():
        assert isinstance(with_aux.eval()(torch.zeros(1, 3, 64, 64)), torch.Tensor)  # eval drops the heads
    counts = n_params(with_aux), n_params(without)
    assert counts == (13_378_280, 6_998_552)
    text = value_here("S36")
    assert f"{macs:,} MACs" in text and f"{counts[0]:,} parameters with them, {counts[1]:,} without" in text


@pytest.mark.torch_only
def test_s37_basic_block_and_bottleneck_families():
    found = {}
    for depth in (18, 34, 50, 101, 152):
        model = torchvision_meta(f"resnet{depth}")
        blocks = [block for i in range(1, 5) for block in getattr(model, f"layer{i}")]
        convs = {
            sum(isinstance(m, nn.Conv2d) for name, m in block.named_modules() if "downsample" not in name)
            for block in blocks
        }
        found[depth] = (type(blocks[0]).__name__, len(blocks), convs)
    assert found == {
        18: ("BasicBlock", 8, {2}),
        34: ("BasicBlock", 16, {2}),
        50: ("Bottleneck", 16, {3}),
        101: ("Bottleneck", 33, {3}),
        152: ("Bottleneck", 50, {3}),
    }
    assert value_here("S37").startswith(
        "BasicBlock: 8 / 16 blocks of 2 convs (resnet18 / 34); Bottleneck: 16 / 33 / 50"
    )


@pytest.mark.torch_only
def test_s38_projection_only_where_the_width_changes():
    model = torchvision_meta("resnet50")
    projection = model.layer2[0].downsample[0]
    assert (projection.in_channels, projection.out_channels, projection.kernel_size, projection.stride) == (
        256, 512, (1, 1), (2, 2),
    )  # fmt: skip
    assert isinstance(model.layer2[0].downsample[1], nn.BatchNorm2d)
    assert model.layer2[1].downsample is None
    first = model.layer1[0].downsample[0]
    assert (first.in_channels, first.out_channels, first.stride) == (64, 256, (1, 1))
    assert value_here("S38").startswith("resnet50 layer2.0: 1×1 conv 256 → 512, stride 2, + BN; layer2.1: none.")


def test_s39_three_architectures_table():
    models = [cnnlab.create_model(name) for name in ("simple_cnn", "lenet5", "simple_resnet")]
    batch_norms = [sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) for model in models]
    pools = [
        [type(m).__name__ for m in model.modules() if isinstance(m, (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d))]
        for model in models
    ]
    residual = [sum(isinstance(m, BasicBlock) and has_skip(m) for m in model.modules()) for model in models]
    assert batch_norms == [0, 0, 7] and residual == [0, 0, 3]
    assert pools == [["MaxPool2d"], ["AvgPool2d"], ["AdaptiveAvgPool2d"]]
    assert value_here("S39") == (
        "residual blocks 0 / 0 / 3; BatchNorm layers 0 / 0 / 7; pools MaxPool2d / AvgPool2d / AdaptiveAvgPool2d"
    )


@pytest.mark.torch_only
def test_s41_three_line_transfer_recipe():
    model = torchvision.models.resnet18(weights=None)
    for p in model.parameters():
        p.requires_grad = False
    model.fc = nn.Linear(model.fc.in_features, 10)
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert (len(trainable), sum(p.numel() for p in trainable)) == (2, 512 * 10 + 10)
    with torch.no_grad():
        assert list(model.eval()(torch.zeros(1, 3, 64, 64)).shape) == [1, 10]
    assert value_here("S41") == "2 trainable tensors, 5,130 parameters (512 × 10 + 10); output [1, 10]"


def test_s42_zeroed_residual_branches_leave_the_shallow_net():
    torch.manual_seed(0)
    model = cnnlab.create_model("resnet1202", zero_init_residual=True, in_chans=3).eval()
    assert sum(isinstance(m, nn.Conv2d) for m in model.modules()) == 1201
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        deep = model(x)
        stem = model.relu(model.bn1(model.conv1(x)))[:, :, ::4, ::4]  # the two stride-2 stages subsample by 4
        shallow = stem.mean((2, 3)) @ model.fc.weight[:, :16].T + model.fc.bias  # padded channels are zeros
    assert torch.allclose(deep, shallow, atol=1e-6)
    x_small = torch.tensor([1.0, -2.0, 3.0])
    assert torch.equal(F.relu(torch.zeros(3, 3) @ x_small) + x_small, x_small)
    assert "resnet-1202 (1,201 convs) with every block's last BN γ = 0" in value_here("S42")


def test_s43_global_average_pooling():
    resnet, lenet = cnnlab.create_model("simple_resnet").eval(), cnnlab.create_model("lenet5", input_size=28).eval()
    with torch.no_grad():
        assert [list(resnet(torch.zeros(1, 1, side, side)).shape) for side in (28, 40, 64)] == [[1, 10]] * 3
        with pytest.raises(RuntimeError, match="784"):
            lenet(torch.zeros(1, 1, 40, 40))
    flatten_head = n_params(nn.Linear(32 * 28 * 28, 10, device="meta"))
    assert (n_params(resnet.fc), flatten_head) == (330, 250_890)
    assert f"330 parameters against {flatten_head:,}" in value_here("S43")


@pytest.mark.torch_only
def test_s44_updates_per_epoch():
    images = TensorDataset(torch.zeros(50_000, 1))
    updates = len(DataLoader(images, batch_size=128)), len(DataLoader(images, batch_size=32))
    assert updates == (391, 1_563)
    assert value_here("S44") == "391 updates per epoch (1,563 at the notebook's batch size 32)"


@pytest.mark.torch_only
def test_s24_running_statistics_on_digits():
    """S24 needs CIFAR-10; the row states the same loop on digits (LeNet-5's first conv, seed 0, batch 64, momentum
    0.1), and those numbers must be the trace's."""
    from cnnlab.traces import trace

    row = ROWS["S24"]
    here = row["Value here"]
    assert row["Status"].startswith("needs data we do not have")
    data = trace("running_stats", model="lenet5", dataset="digits", batches=100, momentum=0.1, batch_size=64)["data"]
    means = " / ".join(f"{data['running_mean'][t - 1][0]:.4f}" for t in (1, 25, 50, 75, 100))
    assert f"running mean {means} (channel 0)" in here
    assert f"against the dataset's {data['dataset_mean'][0]:.4f}" in here
    assert f"within {data['mean_gap'][-1]:.4f} of the dataset mean on every channel" in here
    assert f"running variance within {data['var_gap'][-1]:.4f} of the dataset's" in here
    assert f"({data['dataset_var'][0]:.4f} on channel 0), from {data['var_gap'][0]:.4f} after batch 1" in here


def test_s45_running_mean_converges_geometrically():
    bn = nn.BatchNorm2d(1)  # momentum 0.1, running mean starts at 0
    batch = torch.full((4, 1, 2, 2), 2.0)
    seen = {}
    for step in range(1, 101):
        bn(batch)
        seen[step] = bn.running_mean.item()
    for step in (1, 25, 100):
        assert seen[step] == pytest.approx(2 * (1 - 0.9**step), rel=1e-6)
    shown = f"running mean {seen[1]:.1f} / {seen[25]:.5f} / {seen[100]:.5f} after 1 / 25 / 100 steps"
    assert shown in value_here("S45")


@pytest.mark.torch_only
def test_s46_layer_norm_example():
    layer = nn.LayerNorm(4)
    x = torch.tensor([[2.0, 4.0, 6.0, 8.0]])
    train_out, eval_out = layer.train()(x), layer.eval()(x)
    assert torch.equal(train_out, eval_out) and len(list(layer.buffers())) == 0
    assert (x.mean().item(), x.var(unbiased=False).item()) == (5.0, 5.0)
    shown = ", ".join(f"{v:.3f}".replace("-", "−") for v in train_out[0].tolist())
    assert value_here("S46").startswith(f"mean 5, variance 5, output [{shown}]")


@pytest.mark.torch_only
def test_s47_densenet_growth_and_size():
    growth = {
        name: torchvision_meta(name).features.denseblock1.denselayer1.conv2.out_channels
        for name in ("densenet121", "densenet161", "densenet169", "densenet201")
    }
    assert growth == {"densenet121": 32, "densenet161": 48, "densenet169": 32, "densenet201": 32}
    models = torchvision.models
    facts = [
        (w.meta["num_params"], w.meta["_metrics"]["ImageNet-1K"]["acc@1"])
        for w in (models.DenseNet121_Weights.IMAGENET1K_V1, models.ResNet34_Weights.IMAGENET1K_V1,
                  models.ResNet50_Weights.IMAGENET1K_V1)
    ]  # fmt: skip
    assert facts[0][0] < facts[1][0] < facts[2][0] and facts[0][1] > facts[1][1]
    text = value_here("S47")
    assert f"densenet121: {facts[0][0]:,} parameters, {facts[0][1]:.3f}% top-1" in text
    assert (
        f"resnet34 {facts[1][0]:,} / {facts[1][1]:.3f}%" in text
        and f"resnet50 {facts[2][0]:,} / {facts[2][1]:.3f}%" in text
    )


@pytest.mark.torch_only
def test_s49_efficientnet_family():
    weights = [getattr(torchvision.models, f"EfficientNet_B{i}_Weights").IMAGENET1K_V1 for i in range(8)]
    params = [w.meta["num_params"] for w in weights]
    sides = [w.transforms().crop_size[0] for w in weights]
    top1 = [w.meta["_metrics"]["ImageNet-1K"]["acc@1"] for w in weights]
    assert params == sorted(params) and sides == sorted(sides)  # every step scales up
    assert (sides[0], sides[-1]) == (224, 600)
    text = value_here("S49")
    assert f"{params[0]:,} → {params[-1]:,} parameters, 224 → 600 pixels" in text
    assert f"{top1[0]:.3f}% → {top1[-1]:.3f}% top-1" in text


@pytest.mark.torch_only
def test_s52_grouped_convolution_is_parallel_paths():
    torch.manual_seed(0)
    grouped = nn.Conv2d(8, 8, 3, padding=1, groups=4, bias=False)
    x = torch.randn(1, 8, 5, 5)
    paths = [F.conv2d(x[:, 2 * i : 2 * i + 2], grouped.weight[2 * i : 2 * i + 2], padding=1) for i in range(4)]
    assert torch.allclose(grouped(x), torch.cat(paths, dim=1), atol=1e-6)
    assert torchvision_meta("resnext50_32x4d").layer1[0].conv2.groups == 32
    assert "resnext50_32x4d's 3×3 convs have groups = 32" in value_here("S52")
