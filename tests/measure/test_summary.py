"""summarize / count_params / count_macs on the tutorials' LeNet-5 and on torchvision's ResNet-18."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import torchvision
from rich.console import Console
from torch import nn

from cnnlab import CnnlabError, create_model
from cnnlab.measure import LayerRow, count_macs, count_params, summarize, summary_table


@pytest.fixture(scope="module")
def lenet_summary():
    return summarize(create_model("lenet5", input_size=28), (1, 28, 28))


def test_lenet5_dimension_flow_at_28(lenet_summary):
    # The tutorials' flow: 28 -> conv 5x5 -> 24 -> pool -> 12 -> conv 5x5 -> 8 -> pool -> 4,
    # 16*4*4 = 256 -> 120 -> 84 -> 10.
    flow = [(row.name, row.kind, row.output_shape) for row in lenet_summary.rows]
    assert flow == [
        ("conv1", "Conv2d", (6, 24, 24)),
        ("pool", "AvgPool2d", (6, 12, 12)),
        ("conv2", "Conv2d", (16, 8, 8)),
        ("pool", "AvgPool2d", (16, 4, 4)),
        ("fc1", "Linear", (120,)),
        ("fc2", "Linear", (84,)),
        ("fc3", "Linear", (10,)),
    ]
    # fc1 takes the 256 flattened features: 256 * 120 weights + 120 biases.
    assert [row.params for row in lenet_summary.rows] == [156, 0, 2_416, 0, 30_840, 10_164, 850]
    assert lenet_summary.total_params == 44_426 == count_params(create_model("lenet5", input_size=28))


def test_lenet5_macs_equal_the_hand_count(lenet_summary):
    # torch's FlopCounterMode counts only convolutions and matrix products, at 2 FLOPs per multiply-accumulate and
    # without the bias adds; average pooling and tanh count 0. So by hand, per image:
    #   conv1: 6 maps * 24*24 pixels * (1*5*5) = 86,400     conv2: 16 * 8*8 * (6*5*5) = 153,600
    #   fc:    256*120 + 120*84 + 84*10 = 30,720 + 10,080 + 840 = 41,640
    # total 86,400 + 153,600 + 41,640 = 281,640 MACs.
    assert [row.macs for row in lenet_summary.rows] == [86_400, 0, 153_600, 0, 30_720, 10_080, 840]
    assert lenet_summary.total_macs == 281_640
    assert count_macs(create_model("lenet5", input_size=28), (1, 28, 28)) == 281_640


def test_lenet5_receptive_fields(lenet_summary):
    # 5x5 conv: 5; 2x2/2 pool: 5 + 1 = 6; 5x5 conv on a grid of spacing 2: 6 + 4*2 = 14; pool: 14 + 1*2 = 16.
    assert [row.receptive_field for row in lenet_summary.rows] == [5, 6, 14, 16, None, None, None]


def test_resnet18_macs_match_torchvision_published_figure():
    model = torchvision.models.resnet18()
    published_gmacs = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.meta["_ops"]  # 1.814 "GFLOPS" = GMACs
    macs = count_macs(model, (3, 224, 224))
    assert abs(macs / 1e9 - published_gmacs) / published_gmacs < 0.01
    assert macs == 1_814_073_344


@pytest.fixture(scope="module")
def resnet18_10():
    return torchvision.models.resnet18(num_classes=10)


def test_summary_totals_equal_counts_on_a_residual_network(resnet18_10):
    model = resnet18_10
    summary = summarize(model, (3, 64, 64))
    assert summary.total_params == count_params(model) == 11_181_642
    assert summary.total_macs == count_macs(model, (3, 64, 64))
    assert sum(row.params for row in summary.rows) == summary.total_params
    assert sum(row.macs for row in summary.rows) == summary.total_macs
    assert len(summary.rows) == 60  # 20 convs + 20 BNs + 17 ReLU calls + maxpool + avgpool + fc
    # The widest path through the residual adds: stem 7x7/2 -> 7, max-pool 3x3/2 -> 11, then each 3x3 conv adds
    # 2 * jump (the first of each later stage at the old jump): the last ReLU sees 435 pixels, as receptive_field says.
    fields = {row.name: row.receptive_field for row in summary.rows}  # a ReLU called twice: its last call
    assert (fields["conv1"], fields["maxpool"], fields["layer1.0.conv1"], fields["layer1.1.conv2"]) == (7, 11, 19, 43)
    # layer2 starts from layer1's 43: its stride-2 3x3 adds 2 * 4, its 1x1 projection shortcut adds nothing.
    assert (fields["layer2.0.conv1"], fields["layer2.0.downsample.0"], fields["layer4.1.relu"]) == (51, 43, 435)
    assert fields["avgpool"] == 435 + (2 - 1) * 32  # a global pool over the 2x2 map at jump 32
    assert summary.rows[-1] == LayerRow("fc", "Linear", (10,), 5_130, 5_120, None)


def test_count_macs_and_summarize_keep_train_mode_and_bn_statistics(resnet18_10):
    model = resnet18_10
    model.train()
    model.layer1[0].bn1.eval()  # a deliberately frozen BN must stay frozen
    before = {name: buffer.clone() for name, buffer in model.named_buffers()}
    count_macs(model, (3, 32, 32))
    summarize(model, (3, 32, 32))
    assert model.training and model.layer1[0].bn2.training and not model.layer1[0].bn1.training
    for name, buffer in model.named_buffers():
        assert torch.equal(buffer, before[name]), name


def test_count_params_trainable_only_and_meta_device():
    model = create_model("lenet5", input_size=28)
    model.conv1.requires_grad_(False)
    assert count_params(model, trainable_only=True) == 44_426 - 156
    with torch.device("meta"):
        assert count_params(torchvision.models.resnet18()) == 11_689_512


class _FunctionalHead(nn.Module):
    """A conv layer, then a linear map done functionally with the parent's own parameter."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)
        self.head = nn.Parameter(torch.zeros(5, 2 * 6 * 6))

    def forward(self, x):
        return F.linear(self.conv(x).flatten(1), self.head)


def test_work_outside_leaf_calls_gets_its_own_row():
    summary = summarize(_FunctionalHead(), (1, 8, 8))
    # conv: 2 * 6*6 * 9 = 648 MACs, 20 params; the functional head: 72 * 5 = 360 MACs, 360 params.
    assert summary.rows == [
        LayerRow("conv", "Conv2d", (2, 6, 6), 20, 648, 3),
        LayerRow("(other)", "outside leaf calls", (), 360, 360, None),
    ]
    assert (summary.total_params, summary.total_macs) == (380, 1_008)


def test_a_layer_called_twice_gets_two_rows_and_counts_its_params_once():
    conv = nn.Conv2d(4, 4, 3, padding=1)
    summary = summarize(nn.Sequential(conv, nn.ReLU(), conv), (4, 8, 8))
    assert [(row.name, row.params, row.macs) for row in summary.rows] == [
        ("0", 148, 9_216),
        ("1", 0, 0),
        ("0", 0, 9_216),  # 4*8*8 outputs * 36 MACs per call
    ]
    assert [row.receptive_field for row in summary.rows] == [3, 3, 5]
    assert summary.total_params == 148


@pytest.mark.parametrize(
    ("target", "shape", "message"),
    [
        ("lenet5", (1, 8, 8), "lenet5 needs inputs of at least 16x16 pixels"),
        ("conv 8 k5; conv 8 k5", (1, 6, 6), "input 1x6x6 is too small for spec 'conv 8 k5; conv 8 k5': "),
        (nn.Sequential(nn.Conv2d(1, 2, 5), nn.MaxPool2d(4)), (1, 6, 6), "input 1x6x6 is too small for Sequential: "),
        (nn.Sequential(nn.Conv2d(3, 2, 3)), (1, 6, 6), "input 1x6x6 does not fit Sequential: "),
        ("resnt18", (3, 32, 32), "unknown model 'resnt18'; did you mean: resnet18"),
    ],
)
def test_unfit_inputs_are_one_line_errors(target, shape, message):
    with pytest.raises(CnnlabError) as error:
        summarize(target, shape)
    assert str(error.value).startswith(message)
    assert "\n" not in str(error.value)


class FailsWithTooSmallInItsMessage(nn.Module):
    """A layer whose failure has nothing to do with the map's size, though its message says "too small"."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("the tile budget is too small for this batch")


@pytest.mark.parametrize(
    ("model", "message"),
    [
        # 1x6x6 -> conv k5 -> 2x2 -> flattened to length 4 -> a 1-D max pool of 8: torch says only "Invalid
        # computed output size: 0", yet the map has become smaller than the kernel.
        (
            nn.Sequential(nn.Conv2d(1, 2, 5), nn.Flatten(2), nn.MaxPool1d(8)),
            "input 1x6x6 is too small for Sequential: max_pool1d() Invalid computed output size: 0",
        ),
        # The wording comes from the traced shapes, not from the words of the error.
        (
            nn.Sequential(nn.Conv2d(1, 2, 3), FailsWithTooSmallInItsMessage()),
            "input 1x6x6 does not fit Sequential: the tile budget is too small for this batch",
        ),
        # A ceil_mode pool may take a map smaller than its window (2x2 pooled by 4 gives 1x1): not the cause of
        # the linear layer's failure after it.
        (
            nn.Sequential(nn.Conv2d(1, 2, 5), nn.MaxPool2d(4, ceil_mode=True), nn.Flatten(), nn.Linear(3, 2)),
            "input 1x6x6 does not fit Sequential: mat1 and mat2 shapes cannot be multiplied (1x2 and 3x2)",
        ),
    ],
)
def test_too_small_is_told_from_the_shapes_the_layers_saw(model, message):
    with pytest.raises(CnnlabError) as error:
        summarize(model, (1, 6, 6))
    assert str(error.value) == message


def test_summary_table_prints_every_row_and_the_totals(lenet_summary):
    table = summary_table(lenet_summary)
    assert table.row_count == len(lenet_summary.rows) + 1
    console = Console(record=True, width=120)
    console.print(table)
    text = console.export_text()
    assert "6x24x24" in text and "16x4x4" in text
    total_line = next(line for line in text.splitlines() if "total" in line)
    assert "input 1x28x28" in total_line and "44,426" in total_line and "281,640" in total_line
