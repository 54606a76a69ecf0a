"""`cnnlab runs`: past runs from their results.json files, filtered by dataset and sorted best first."""

import json

import pytest

import cnnlab
from cnnlab.cli import main


def write_run(root, name, **results):
    (root / name).mkdir(parents=True)
    (root / name / "results.json").write_text(json.dumps(results))


@pytest.fixture
def runs_root(tmp_path):
    root = tmp_path / "runs"
    write_run(
        root,
        "lenet",
        model="lenet5",
        dataset="digits",
        status="completed",
        epochs=10,
        test_accuracy=0.975,
        test_loss=0.09,
        params=44_426,
        train_seconds=4.0,
        train_images_per_second=3000.0,
    )
    write_run(
        root,
        "resnet",
        model="simple_resnet",
        dataset="digits",
        status="completed",
        epochs=10,
        test_accuracy=0.991,
        test_loss=0.04,
        params=500_000,
        train_seconds=30.0,
        train_images_per_second=400.0,
    )
    write_run(
        root,
        "demo/vgg",
        model="mini_vgg",
        dataset="digits",
        status="completed",
        epochs=10,
        test_accuracy=0.983,
        test_loss=0.06,
        params=300_000,
        train_seconds=12.0,
        train_images_per_second=900.0,
    )
    write_run(
        root,
        "fashion",
        model="lenet5",
        dataset="fashion-mnist",
        status="completed",
        epochs=10,
        test_accuracy=0.903,
        test_loss=0.28,
        params=44_426,
        train_seconds=60.0,
        train_images_per_second=8000.0,
    )
    write_run(
        root, "broken", model="lenet5", dataset="digits", status="failed", error="the loss became nan", metrics=[]
    )
    write_run(root, "experiment", title="not a training run")  # no model/dataset: not listed
    (root / "torn").mkdir()
    (root / "torn" / "results.json").write_text('{"model": "lenet5", "data')  # unreadable: skipped
    return root


def test_runs_sorted_best_first_and_filtered(runs_root):
    ranked = cnnlab.list_runs(runs_root, dataset="digits")
    assert [run["model"] for run in ranked] == ["simple_resnet", "mini_vgg", "lenet5", "lenet5"]
    assert ranked[-1]["status"] == "failed"  # no test accuracy: last
    assert ranked[1]["run_dir"] == str(runs_root / "demo" / "vgg")  # found in subfolders too
    by_loss = cnnlab.list_runs(runs_root, sort="test_loss")  # losses: smallest first
    assert [run["test_loss"] for run in by_loss[:4]] == [0.04, 0.06, 0.09, 0.28]
    by_speed = cnnlab.list_runs(runs_root, sort="train_images_per_second")
    assert [run["dataset"] for run in by_speed[:2]] == ["fashion-mnist", "digits"]
    assert cnnlab.list_runs(runs_root, dataset="cifar10") == []


def test_cli_prints_the_table(capsys, runs_root):
    assert main(["runs", str(runs_root), "--dataset", "digits", "--sort", "test_accuracy"]) == 0
    out = capsys.readouterr().out
    assert "4 run(s) under" in out and "fashion" not in out
    lines = [line for line in out.splitlines() if line.startswith("│")]  # the body rows
    assert [line.split("│")[1].strip() for line in lines] == ["resnet", "demo/vgg", "lenet", "broken"]
    assert "99.10%" in lines[0] and "500,000" in lines[0] and "failed" in lines[3]


def test_bad_root_and_sort_column_are_one_line(capsys, runs_root, tmp_path):
    assert main(["runs", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"runs directory {tmp_path / 'nowhere'} does not exist" in err
    assert main(["runs", str(runs_root), "--sort", "test_acc"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown sort column 'test_acc'; did you mean: test_accuracy" in err
