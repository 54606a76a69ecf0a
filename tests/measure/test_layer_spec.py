"""Layer specs ("conv 64 k7 s2 p3; maxpool k3 s2 p1") and --input parsing."""

from __future__ import annotations

import pytest
from torch import nn

from cnnlab import CnnlabError
from cnnlab.measure import build_layer_spec, count_macs, count_params, parse_input_shape, summarize


def test_resnet_stem_spec_at_224():
    summary = summarize("conv 64 k7 s2 p3; maxpool k3 s2 p1", (3, 224, 224))
    rows = [(row.name, row.kind, row.output_shape, row.params, row.receptive_field) for row in summary.rows]
    assert rows == [
        ("conv1", "Conv2d", (64, 112, 112), 9_472, 7),  # 3*64*49 weights + 64 biases
        ("maxpool1", "MaxPool2d", (64, 56, 56), 0, 11),  # 7 + (3 - 1) * 2
    ]
    assert summary.rows[0].macs == 64 * 112 * 112 * 3 * 49 == 118_013_952
    assert summary.total_macs == 118_013_952


def test_every_layer_kind_builds_and_sizes_its_head_from_the_input():
    spec = "conv 64 k7 s2 p3; maxpool k3 s2 p1; conv 128 k3 p1; relu; bn; avgpool k2; flatten; fc 10"
    model = build_layer_spec(spec, in_chans=3)
    assert list(dict(model.named_children())) == [
        "conv1",
        "maxpool1",
        "conv2",
        "relu1",
        "bn1",
        "avgpool1",
        "flatten1",
        "fc1",
    ]
    assert (model.conv2.in_channels, model.conv2.out_channels, model.conv2.padding) == (64, 128, (1, 1))
    assert (model.maxpool1.kernel_size, model.maxpool1.stride, model.avgpool1.stride) == (3, 2, 2)
    summary = summarize(model, (3, 224, 224))
    assert [row.output_shape for row in summary.rows] == [
        (64, 112, 112),
        (64, 56, 56),
        (128, 56, 56),
        (128, 56, 56),
        (128, 56, 56),
        (128, 28, 28),
        (100_352,),
        (10,),
    ]
    assert model.fc1.in_features == 128 * 28 * 28  # the lazy linear was sized by the forward pass
    assert summary.total_params == count_params(model) == 9_472 + 73_856 + 256 + 100_352 * 10 + 10
    assert summary.total_macs == count_macs(model, (3, 224, 224))


def test_groups_dilation_and_vector_layers():
    model = build_layer_spec("conv 8 k3 g2 d2; flatten; fc 6; bn; relu; fc 3", in_chans=4)
    assert (model.conv1.groups, model.conv1.dilation) == (2, (2, 2))
    assert isinstance(model.bn1, nn.BatchNorm1d) and model.bn1.num_features == 6
    assert model.fc2.in_features == 6
    summary = summarize(model, (4, 9, 9))
    assert summary.rows[0].output_shape == (8, 5, 5)
    assert summary.rows[0].receptive_field == 5  # a dilated 3x3 spans 5 pixels


@pytest.mark.parametrize(
    ("spec", "named"),
    [
        ("conv 64 k7 q3", "q3"),
        ("convv 64 k3", "convv"),
        ("conv k3", "output channels"),
        ("conv 64", "kernel size"),
        ("conv 64 k0", "'k'"),
        ("conv 64 k3 s1 s2", "given twice"),
        ("maxpool s2", "kernel size"),
        ("maxpool k3 p2", "padding 2"),
        ("relu 3", "no arguments"),
        ("fc 10", "flatten"),
        ("flatten; conv 8 k3", "flattened"),
        ("conv 6 k3 g4", "groups 4"),
        ("fc", "output width"),
        (" ; ", "empty layer spec"),
    ],
)
def test_malformed_specs_name_the_problem_and_the_grammar(spec, named):
    with pytest.raises(CnnlabError) as error:
        build_layer_spec(spec, in_chans=4)
    message = str(error.value)
    assert named in message and "conv OUT kK" in message and "\n" not in message


@pytest.mark.parametrize(
    ("text", "shape"), [("1x28x28", (1, 28, 28)), (" 3X224x224 ", (3, 224, 224)), ("3x32x64", (3, 32, 64))]
)
def test_parse_input_shape(text, shape):
    assert parse_input_shape(text) == shape


@pytest.mark.parametrize("text", ["28", "3x224", "0x28x28", "1x28x28x2", "axbxc", "", "3x-1x4"])
def test_parse_input_shape_rejects_malformed_text(text):
    with pytest.raises(CnnlabError, match=r"^--input must look like 3x224x224 .*got '"):
        parse_input_shape(text)
