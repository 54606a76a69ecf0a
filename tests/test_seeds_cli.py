"""`cnnlab train` and `cnnlab compare` with --seeds/--repeats: one run per seed in OUT/seed-N, the mean ± std
summary beside them, and the flag combinations that are refused."""

from __future__ import annotations

import csv
import json
import statistics

import pytest
import torch
from safetensors.torch import load_file

from cnnlab.cli import main
from cnnlab.plots import plot_comparison
from cnnlab.repeats import Spread, aggregate_rows, format_spread
from cnnlab.workflows.comparison import COLUMNS, MEASURED, seed_row, seed_summary
from cnnlab.workflows.leaderboard import list_runs

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TINY = ["--dataset", "digits", "--epochs", "1", "--train-subset", "200", "--threads", "1", "--quiet"]


def one_line_error(capsys, *argv) -> str:
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith("cnnlab: error: "), err
    return err.removeprefix("cnnlab: error: ").rstrip("\n")


# ------------------------------------------------------------------------------------------------------ train
@pytest.mark.slow
def test_train_repeats_keeps_each_seeds_run_and_summarises_them(tmp_path, capsys):
    out = tmp_path / "lenet"
    assert main(["train", "lenet5", *TINY, "--repeats", "2", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    results = [json.loads((out / f"seed-{s}" / "results.json").read_text()) for s in (0, 1)]
    assert [r["seed"] for r in results] == [0, 1]
    assert [json.loads((out / f"seed-{s}" / "config.json").read_text())["seed"] for s in (0, 1)] == [0, 1]
    weights = [load_file(out / f"seed-{s}" / "model.safetensors") for s in (0, 1)]
    assert not all(torch.equal(weights[0][name], weights[1][name]) for name in weights[0])  # different inits

    summary = json.loads((out / "seeds.json").read_text())
    accuracies = [r["test_accuracy"] for r in results]
    assert summary["seeds"] == [0, 1] and [run["seed"] for run in summary["runs"]] == [0, 1]
    assert summary["summary"]["test_accuracy"]["mean"] == statistics.fmean(accuracies)
    assert summary["summary"]["test_accuracy"]["std"] == statistics.stdev(accuracies)
    assert summary["summary"]["test_accuracy"]["n"] == 2
    with open(out / "seed-1" / "metrics.csv") as handle:
        last = list(csv.DictReader(handle))[-1]
    assert summary["runs"][1]["final_train_loss"] == float(last["train_loss"])
    assert {"params", "epochs", "lr", "seed"}.isdisjoint(summary["columns"])  # the recipe's, not measured

    mean_cell = format_spread("test_accuracy", Spread.of(accuracies))
    markdown = (out / "seeds.md").read_text()
    assert "| measured | mean ± std | n | seed 0 | seed 1 |" in markdown
    seed_cells = [format_spread("test_accuracy", a) for a in accuracies]
    assert f"| test_accuracy | {mean_cell} | 2 | {seed_cells[0]} | {seed_cells[1]} |" in markdown
    assert mean_cell in printed
    assert (out / "seeds.png").read_bytes()[:8] == PNG_MAGIC
    assert not (out / "results.json").exists()  # `cnnlab runs` lists the two seed runs and nothing else
    assert sorted(run["run_dir"] for run in list_runs(out)) == [str(out / "seed-0"), str(out / "seed-1")]


# ------------------------------------------------------------------------------------------------------ compare
@pytest.mark.slow
def test_compare_seeds_writes_mean_std_and_n_columns(tmp_path):
    out = tmp_path / "cmp"
    assert main(["compare", "lenet5", "simple_cnn", *TINY, "--seeds", "0,1", "--out", str(out)]) == 0
    per_seed = []
    for seed in (0, 1):
        with open(out / f"seed-{seed}" / "results.csv") as handle:
            per_seed.append({row["model"]: row for row in csv.DictReader(handle)})
        assert json.loads((out / f"seed-{seed}" / "lenet5" / "results.json").read_text())["seed"] == seed
    with open(out / "results.csv") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
    assert reader.fieldnames == [
        "model",
        "params",
        "macs",
        *(f"{column}_{part}" for column in MEASURED for part in ("mean", "std", "n")),
    ]
    assert [row["model"] for row in rows] == ["lenet5", "simple_cnn"]
    for row in rows:
        seeds = [float(per_seed[s][row["model"]]["test_accuracy"]) for s in (0, 1)]
        assert float(row["test_accuracy_mean"]) == pytest.approx(statistics.fmean(seeds), rel=1e-12)
        assert float(row["test_accuracy_std"]) == pytest.approx(statistics.stdev(seeds), rel=1e-12)
        assert row["test_accuracy_n"] == "2" and row["params"] == per_seed[0][row["model"]]["params"]
    markdown = (out / "results.md").read_text()
    assert markdown.startswith("# Comparison on digits: 1 epochs, batch 64, adamw lr 0.003, seeds 0, 1\n")
    assert "| model | n | params |" in markdown and "ahead of" in markdown
    assert (out / "compare.png").read_bytes()[:8] == PNG_MAGIC


def merged_rows() -> list[dict]:
    """Two models over three seeds, as compare_seeds merges them (no training)."""

    def result(model, params, accuracy, speed):
        return {"model": model, "params": params, "macs": 1000, "test_accuracy": accuracy, "train_seconds": 2.0,
                "train_images_per_second": speed}  # fmt: skip

    runs = [
        [result("a", 10, 0.80, 100.0), result("b", 20, 0.90, 50.0)],
        [result("a", 10, 0.81, 110.0), result("b", 20, 0.91, 55.0)],
        [result("a", 10, 0.82, 120.0), result("b", 20, 0.92, 60.0)],
    ]
    rows = aggregate_rows(runs, COLUMNS, measured=MEASURED)
    return [row | {"seeds": [0, 1, 2]} for row in rows]


def test_seed_rows_and_summary_judge_the_best_against_the_runner_up():
    rows = merged_rows()
    assert seed_row(rows[1]) == ["b", "3", "20", "0.00M", "91.00 ± 1.00%", "2.0s ± 0.0s", "55 ± 5"]
    lines = seed_summary(rows)
    assert lines[0] == "Best mean test accuracy: b (91.00 ± 1.00%)."
    assert lines[1] == (
        "Supports: b ahead of a in test accuracy (test_accuracy: b 91.00 ± 1.00% against a 81.00 ± 1.00%; "
        "difference 10.00%, spread 2.00%, n=3)."
    )
    assert lines[2] == "Fastest to train: a (110 ± 10 images/s)."
    close = [row | {"test_accuracy": Spread.of([0.80, 0.85, 0.90])} if row["model"] == "b" else row for row in rows]
    assert seed_summary(close)[1].startswith("Not resolved at n=3: b ahead of a")


def test_plot_comparison_draws_means_with_error_bars(tmp_path):
    plot_comparison(merged_rows(), tmp_path / "compare.png", title="three seeds")
    assert (tmp_path / "compare.png").read_bytes()[:8] == PNG_MAGIC


# ------------------------------------------------------------------------------------------------------ refused
@pytest.mark.parametrize(
    "argv, expected",
    [
        (["--seed", "3", "--seeds", "0,1"], "--seed and --seeds both choose the seed"),
        (["--repeats", "2", "--seeds", "0,1,2"], "--repeats 2 and --seeds 0,1,2 disagree: pass one"),
        (["--seeds", "0,0"], "argument --seeds: --seeds takes distinct non-negative integers"),
        (["--seeds", "-1"], "argument --seeds: --seeds takes distinct non-negative integers"),
        (["--seeds", "one"], "argument --seeds: --seeds takes distinct non-negative integers"),
        (["--repeats", "0"], "argument --repeats: --repeats takes a whole number from 1, got '0'"),
    ],
)
@pytest.mark.parametrize("command", [["train", "lenet5"], ["compare", "lenet5", "simple_cnn"]])
def test_seed_flags_that_disagree_are_refused(capsys, command, argv, expected):
    assert expected in one_line_error(capsys, *command, *argv)


def test_resume_with_seeds_is_refused(capsys, tmp_path):
    error = one_line_error(capsys, "train", "lenet5", "--resume", tmp_path, "--repeats", "2")
    assert error == "--resume continues one run; --seeds and --repeats start new ones: pass one of them"


@pytest.mark.parametrize(
    "command, marker", [(["train", "lenet5"], "config.json"), (["compare", "lenet5"], "results.csv")]
)
def test_earlier_seed_runs_are_not_replaced_without_overwrite(capsys, tmp_path, command, marker):
    (tmp_path / "seed-1").mkdir()
    (tmp_path / "seed-1" / marker).write_text("{}")
    error = one_line_error(capsys, *command, "--dataset", "digits", "--seeds", "0,1", "--out", tmp_path)
    assert error == f"{tmp_path / 'seed-1' / marker} already exists; pass --overwrite to replace the runs in {tmp_path}"
    assert not (tmp_path / "seed-0").exists()  # refused before anything trained


def test_a_single_run_folder_is_not_reused_for_seeds(capsys, tmp_path):
    (tmp_path / "config.json").write_text("{}")
    error = one_line_error(capsys, "train", "lenet5", "--repeats", "2", "--out", tmp_path, "--overwrite")
    assert error.startswith(f"{tmp_path} holds a single run; repeated runs need a folder of their own")
