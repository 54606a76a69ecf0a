"""A sweep's bad input: each one line on stderr and exit 2, before anything runs."""

from __future__ import annotations

import pytest

from cnnlab.cli import main

pytest.importorskip("optuna", reason="the sweep extra is not installed: pip install -e '.[sweep]'")

BASE = ["sweep", "lenet5", "--dataset", "digits"]


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--param", "lrr=1e-4:1e-1:log"], "unknown training option 'lrr'; did you mean: lr"),
        (["--param", "weight_decy=0:1e-3"], "did you mean: weight_decay"),
        (["--param", "lr=1e-1:1e-4:log"], "--param lr: the range 0.1:0.0001 is reversed or empty"),
        (["--param", "lr=0:1e-1:log"], "--param lr: expected a positive number, got 0"),
        (["--param", "weight_decay=0:1e-3:log"], "--param weight_decay: a log range needs a positive lower bound"),
        (["--param", "lr=1e-3:1e-1:lin"], "a range is LOW:HIGH or LOW:HIGH:log"),
        (["--param", "batch_size=64,0"], "--param batch_size: expected a positive whole number, got 0"),
        (["--param", "optimizer=sgd,adam"], "unknown optimizer 'adam'"),
        (["--param", "optimizer=sgd:adamw"], "str options take choices"),
        (["--param", "lr"], "--param takes NAME=SPEC"),
        (["--param", "lr=1e-3:1e-1", "--lr", "0.1"], "lr is both searched (--param) and fixed (--lr)"),
        (["--param", "lr=1e-3:1e-1", "--param", "lr=1e-2:1e-1"], "--param lr is given twice"),
        ([], "a sweep needs at least one --param"),
        (["--param", "lr=1e-3:1e-1", "--pruner", "median2"], "unknown pruner 'median2'"),
        (["--param", "lr=1e-3:1e-1", "--lr", "find"], "--lr find is for cnnlab train"),
        (["--param", "lr=1e-3:1e-1", "--trials", "0"], "--trials: expected a positive whole number"),
        (["--param", "lr=1e-3:1e-1", "--storage", "nosuchdb://x"], "cannot open --storage nosuchdb://x"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv, words, capsys, tmp_path):
    assert main([*BASE, *argv, "--out", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("cnnlab: ")
    assert words in err
    assert not list((tmp_path / "s").glob("trial-*"))


def test_a_study_with_another_search_space_is_refused_naming_the_difference(tmp_path, capsys):
    from cnnlab.sweeps import study as studies

    url = f"sqlite:///{tmp_path / 'study.db'}"
    studies.open_study("s", studies.open_storage(url), None, {"lr": "0.001:0.1:log"}, {"model": "lenet5"})
    argv = [*BASE, "--param", "lr=1e-4:1e-1:log", "--storage", url, "--study", "s", "--out", str(tmp_path / "o")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "study 's' was started with another search space" in err
    assert "lr: the study's search space has 0.001:0.1:log, this command 0.0001:0.1:log" in err
    argv = [*BASE, "--param", "lr=1e-3:1e-1:log", "--param", "batch_size=32,64", "--storage", url, "--study", "s"]
    assert main([*argv, "--out", str(tmp_path / "o")]) == 2
    assert "has batch_size=32,64, the study's has no batch_size" in capsys.readouterr().err


def test_params_parse_to_optuna_ranges_and_choices():
    from cnnlab.sweeps.space import parse_param

    lr = parse_param("lr=1e-4:1e-1:log")
    assert (lr.low, lr.high, lr.log, lr.kind) == (1e-4, 1e-1, True, float)
    batch = parse_param("batch_size=64,128,256")
    assert batch.choices == (64, 128, 256) and batch.spec() == "64,128,256"
    assert parse_param("epochs=1:5").kind is int
    assert parse_param("augment=true,false").choices == (True, False)


@pytest.mark.parametrize("flag", ["--epochs", "--time-budget", "--ema", "--schedule", "--checkpoint-every"])
def test_lr_find_offers_no_flag_it_would_ignore(flag, capsys):
    """The range test runs its own steps at its own lrs: a training-length or averaging flag is refused, not dropped."""
    from cnnlab.cli import main

    assert main(["lr-find", "lenet5", flag, "3"]) == 2
    error = capsys.readouterr().err.strip()
    assert f"unrecognized arguments: {flag} 3" in error and len(error.splitlines()) == 1


def test_fashion_mnist_has_a_default_space_less_what_the_command_fixes():
    from cnnlab.sweeps.space import default_space, parse_space

    texts = default_space("fashion-mnist", {})
    assert texts == ["lr=3e-2:5e-1:log", "weight_decay=1e-5:1e-3:log", "batch_size=64,128,256"]
    assert default_space("fashion-mnist", {"lr": 0.1}) == ["weight_decay=1e-5:1e-3:log", "batch_size=64,128,256"]
    assert default_space("digits", {}) is None and default_space(None, {}) is None
    space = parse_space(texts, {})
    assert (space["lr"].low, space["lr"].high, space["lr"].log) == (0.03, 0.5, True)
    assert list(space["batch_size"].choices) == [64, 128, 256]


def test_the_default_space_holds_the_measured_sweeps_best_trials():
    """The space was chosen with the sweep in docs/sweeps/r20-fmnist-2m: its four best completed trials lie inside
    every range, the dataset's default lr (0.05) too, and no trial below the lr range made the top."""
    import csv
    from pathlib import Path

    from cnnlab.sweeps.space import default_space, parse_space

    space = parse_space(default_space("fashion-mnist", {}), {})
    rows = list(csv.DictReader((Path(__file__).parents[2] / "docs/sweeps/r20-fmnist-2m/sweep.csv").open()))
    completed = sorted((r for r in rows if r["state"] == "COMPLETE"), key=lambda r: -float(r["val_accuracy"]))
    lr, decay = space["lr"], space["weight_decay"]
    for row in completed[:4]:
        assert lr.low <= float(row["lr"]) <= lr.high and decay.low <= float(row["weight_decay"]) <= decay.high
        assert int(row["batch_size"]) in space["batch_size"].choices
    assert lr.low <= 0.05 <= lr.high
    below = [r for r in rows if r["lr"] and float(r["lr"]) < lr.low]
    assert below and all(r["state"] == "PRUNED" or r is completed[-1] for r in below)


def test_a_sweep_without_param_on_fashion_mnist_says_which_space_it_searches(monkeypatch, capsys, tmp_path):
    import cnnlab.sweeps as sweeps

    seen = {}

    def stop(texts, fixed):
        seen["param"] = texts
        raise SystemExit(0)

    monkeypatch.setattr(sweeps, "parse_space", stop)
    with pytest.raises(SystemExit):
        sweeps.sweep("resnet20", "fashion-mnist", out=tmp_path / "s", weight_decay=1e-4)
    assert seen["param"] == ["lr=3e-2:5e-1:log", "batch_size=64,128,256"]  # the fixed weight decay is not searched
    said = capsys.readouterr().out
    assert "no --param: searching fashion-mnist's default space, lr=3e-2:5e-1:log batch_size=64" in said
