"""compare, kernels, scaling and batchnorm in --quick mode, through the same entry points as `cnnlab experiment`:
each writes a non-empty table (results.md, results.csv), config.json and valid PNGs, and its numbers are the real
ones."""

from __future__ import annotations

import csv
import json
import sys

import pytest
import torch
import torchvision
from claim_checks import assert_claims_select_one_row_each

from cnnlab.cli import main
from cnnlab.experiments import get_experiment, list_experiments, run_experiment

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def read_csv(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def assert_written(result, out):
    assert result.rows and result.findings
    rows = read_csv(out / "results.csv")
    assert len(rows) == len(result.rows) and list(rows[0]) == result.columns
    markdown = (out / "results.md").read_text()
    assert markdown.startswith(f"# {result.title}") and markdown.count("\n|") >= len(result.rows) + 1
    config = json.loads((out / "config.json").read_text())
    assert config["options"]["quick"] is True and config["versions"]["torch"] == torch.__version__
    for plot in result.plots:
        assert (out / plot).read_bytes()[:8] == PNG_MAGIC, plot
        assert f"]({plot})" in markdown
    return rows


def test_every_experiment_of_the_issue_is_registered():
    assert list_experiments() == [
        "activations",
        "batchnorm",
        "compare",
        "degradation",
        "kernels",
        "lesion",
        "scaling",
        "transfer",
        "vgg-bn",
    ]


def test_every_experiment_is_its_modules_run_function():
    for name in list_experiments():
        entry = get_experiment(name).run
        assert entry.__name__ == "run" and sys.modules[entry.__module__].run is entry, name


def test_an_unknown_experiment_is_one_line_naming_the_closest(capsys):
    assert main(["experiment", "kernel", "--quick"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "kernels" in err and "Traceback" not in err


def test_kernels_counts_come_from_real_modules(tmp_path, capsys):
    assert main(["experiment", "kernels", "--quick", "--out", str(tmp_path)]) == 0
    assert "wrote" in capsys.readouterr().out
    result = json.loads((tmp_path / "config.json").read_text())
    rows = read_csv(tmp_path / "results.csv")
    assert result["plots"] == ["kernels.png"] and (tmp_path / "kernels.png").read_bytes()[:8] == PNG_MAGIC
    by_design = {row["design"]: row for row in rows}
    # C = 64: 25C^2 vs 18C^2, 49C^2 vs 27C^2 (bias-free convs); 256 -> 256 5x5 vs 1x1(64)-5x5(64)-1x1(256).
    expected = {
        "one 5x5": (102_400, 5),
        "two 3x3": (73_728, 5),
        "one 7x7": (200_704, 7),
        "three 3x3": (110_592, 7),
        "naive 5x5 256->256": (1_638_400, 5),
        "1x1-5x5-1x1 (64 inner)": (135_168, 5),
    }
    for design, (params, field) in expected.items():
        assert int(by_design[design]["params"]) == params and int(by_design[design]["receptive_field"]) == field
    # Each conv keeps the 56x56 map, so MACs = weights x 56 x 56.
    assert int(by_design["one 5x5"]["macs"]) == 102_400 * 56 * 56
    assert int(by_design["two 3x3"]["macs"]) == 73_728 * 56 * 56


@pytest.mark.slow
def test_scaling_table_equals_torchvision_counts(tmp_path):
    result = run_experiment("scaling", quick=True, out=tmp_path)
    rows = assert_written(result, tmp_path)
    assert [row["model"] for row in rows] == [f"efficientnet_b{phi}" for phi in range(8)]
    for row in rows:
        with torch.device("meta"):
            twin = getattr(torchvision.models, row["model"])()
        assert int(row["params"]) == sum(p.numel() for p in twin.parameters()), row["model"]
    assert [int(row["resolution"]) for row in rows] == [224, 240, 260, 300, 380, 456, 528, 600]
    macs = [int(row["macs"]) for row in rows]
    assert macs == sorted(macs) and macs[0] == 385_814_752


@pytest.mark.slow
def test_batchnorm_scratch_equals_torch_and_the_tutorial_slips_are_flagged(tmp_path):
    result = run_experiment("batchnorm", quick=True, out=tmp_path)
    rows = assert_written(result, tmp_path)
    part_a = [row for row in rows if row["part"] == "a"]
    assert len(part_a) == 6 and all(float(row["scratch_vs_torch"]) < 1e-5 for row in part_a)
    notes = {row["quantity"]: row["note"] for row in part_a}
    assert notes["running_var after one step"] == "differs (E08 in docs/errata.md)"
    assert notes["running_mean after one step (momentum 0.1)"] == "agrees"
    assert [row["measured"] for row in part_a if row["quantity"] == "running_var after one step"] == [
        "[1.5000, 1.5000]"
    ]
    gaps = [float(row["measured"]) for row in rows if row["part"] == "b"]
    assert len(gaps) == 2 and all(gap > 0.1 for gap in gaps)  # train mode != eval mode for one image
    assert {row["quantity"].split(":")[0] for row in rows if row["part"] == "c"} == {
        "plain-8 with BN",
        "plain-8 without BN",
    }
    assert_claims_select_one_row_each(result, 2)


@pytest.mark.slow
def test_compare_trains_both_tutorial_tables(tmp_path):
    result = run_experiment("compare", quick=True, out=tmp_path)
    rows = assert_written(result, tmp_path)
    params = {row["model"]: int(row["params"]) for row in rows}
    assert params == {
        "Section-1 CNN (simple_cnn)": 206_922,
        "LeNet-5 (lenet5)": 44_426,
        "SimpleResNet (simple_resnet)": 56_586,
        "MiniVGG (mini_vgg)": 288_618,
        "TinyResNet (tiny_resnet)": 2_797_034,
    }
    assert len(rows) == 6  # LeNet-5 is in both tables, trained once
    for folder in ("ch14-three-architectures", "l2r-three-eras"):
        assert len(read_csv(tmp_path / folder / "results.csv")) == 3
    for row in rows:
        assert 0.0 < float(row["test accuracy (%)"]) <= 100.0 and float(row["train images/s"]) > 0
    assert_claims_select_one_row_each(result, 4)
