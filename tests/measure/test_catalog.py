"""`cnnlab models`: depth on the longest path, ImageNet top-1 from torchvision's metadata, table/json/csv, the chart."""

from __future__ import annotations

import csv
import io
import json

import pytest
from PIL import Image

from cnnlab import CnnlabError
from cnnlab.cli import main
from cnnlab.measure.receptive import main_path_depth
from cnnlab.models.zoo import FIELDS, catalog, catalog_row, family_ideas, render, timeline_plot


@pytest.mark.parametrize(
    ("name", "depth"),
    [
        ("lenet5", 5),
        ("alexnet", 8),
        ("vgg16", 16),
        ("vgg19", 19),
        ("resnet18", 18),
        ("resnet50", 50),
        ("resnet152", 152),
        ("resnet20", 20),
        ("googlenet", 22),
        ("densenet121", 121),
        ("mobilenet_v1", 28),
        ("mobilenet_v2", 53),
        ("resnext29_8x64d", 29),
    ],
)
def test_depth_is_the_weight_layers_on_the_longest_path(name, depth):
    # Shortcut projections (resnet50's 1x1 downsample convs) sit on a shorter path; Inception takes its deepest
    # branch (conv1x1 -> conv3x3); DenseNet-121's name counts its 120 convs and the classifier.
    assert main_path_depth(name) == depth


@pytest.fixture(scope="module")
def resnet_rows():
    return {row["name"]: row for row in catalog("resnet5*")}


def test_catalog_rows_are_measured(resnet_rows):
    row = resnet_rows["resnet50"]
    assert set(row) == set(FIELDS)
    assert (row["params"], row["macs"], row["depth"], row["receptive_field"]) == (25_557_032, 4_089_184_256, 50, 427)
    # torchvision's metadata, no download: DEFAULT is the 2021 recipe (V2), the first weights are V1.
    assert (row["top1"], row["top1_weights"], row["top1_v1"]) == (80.858, "ResNet50_Weights.IMAGENET1K_V2", 76.13)
    assert resnet_rows["resnet56"]["top1"] is None and resnet_rows["resnet56"]["depth"] == 56  # CIFAR: no twin
    assert json.loads(json.dumps(list(resnet_rows.values()))) == list(resnet_rows.values())


def test_formats(resnet_rows):
    rows = list(resnet_rows.values())
    parsed = list(csv.DictReader(io.StringIO(render(rows, "csv"))))
    assert [r["name"] for r in parsed] == [r["name"] for r in rows] and parsed[0].keys() == set(FIELDS)
    assert json.loads(render(rows, "json")) == rows
    assert render(rows, "table").row_count == len(rows) + 1  # one section row for the family
    with pytest.raises(CnnlabError, match="--format must be one of table, json, csv"):
        render(rows, "xml")
    assert family_ideas(rows) == {"ResNet": "skip connections"}


def test_timeline_chart_is_a_small_png(tmp_path):
    names = (
        "lenet5",
        "alexnet",
        "vgg16",
        "vgg19_bn",
        "resnet18",
        "resnet50",
        "resnet20",
        "regnet_x_400mf",
        "mobilenet_v2",
    )
    rows = [catalog_row(name) for name in names]  # both panels, 6 families (the docs' chart has every model)
    path = timeline_plot(rows, tmp_path / "timeline.png")
    with Image.open(path) as image:
        assert image.format == "PNG" and image.width >= 800
    assert (tmp_path / "timeline.png").stat().st_size < 150_000
    assert [row["top1_v1"] is not None for row in rows] == [False, True, True, True, True, True, False, True, True]


def test_cli_formats_plot_and_errors(capsys, tmp_path):
    assert main(["models", "lenet*", "--format", "csv"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("name,family,year,input,params") and "lenet5,LeNet,1998,1x32x32,61706" in out
    assert main(["models", "vgg1?", "--format", "json", "--plot", str(tmp_path / "t.png")]) == 0
    captured = capsys.readouterr()
    assert [row["depth"] for row in json.loads(captured.out)] == [11, 13, 16, 19] and (tmp_path / "t.png").exists()
    assert main(["models", "--format", "xml"]) == 2
    assert capsys.readouterr().err.strip() == "cnnlab: error: --format must be one of table, json, csv, got 'xml'"
