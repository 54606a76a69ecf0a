"""Experiments over several seeds (issue 15): `run_experiment(..., seeds=)` and `cnnlab experiment --seeds/--repeats`
run each seed into OUT/seed-N and summarise them as mean ± std with verdicts on the experiment's claims; the
experiments that loop over seeds themselves get the seed list instead."""

from __future__ import annotations

import csv
import json
import shutil
import statistics
from dataclasses import replace
from pathlib import Path

import pytest

from cnnlab.cli import main
from cnnlab.errors import SeedReusedWarning
from cnnlab.experiments import _EXPERIMENTS, batchnorm, get_experiment, list_experiments, run_experiment
from cnnlab.experiments.common import ExperimentOptions, ExperimentResult, write_result
from cnnlab.experiments.repeated import combine, finished_seed
from cnnlab.experiments.scaling import matched_variants, trained_claims
from cnnlab.repeats import find_row
from cnnlab.rundir import ExperimentFolder

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
VERDICTS = ("Supports: ", "Contradicts: ", "Not resolved at n=2: ")
NETWORKS = ["plain8", "resnet8", "plain20", "resnet20"]
HERE = Path(__file__).parent
# Where each experiment's claims are checked against its quick-mode table (beside the test that already runs it).
CLAIM_TESTS = {
    "batchnorm": ("test_quick_experiments.py", "assert_claims_select_one_row_each(result, 2)"),
    "compare": ("test_quick_experiments.py", "assert_claims_select_one_row_each(result, 4)"),
    "degradation": ("test_degradation.py", "def test_claims_select_one_row_each("),
    "lesion": ("test_lesion.py", "def test_claims_select_one_row_each("),
    "transfer": ("test_transfer.py", "def test_claims_select_one_row_each("),
    "kernels": ("test_seeds.py", "def test_untrained_quick_tables_make_no_claims("),
    "scaling": ("test_seeds.py", "def test_untrained_quick_tables_make_no_claims("),
}


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_every_experiment_run_per_seed_has_its_claims_checked():
    per_seed = {name for name in list_experiments() if not get_experiment(name).own_seeds}
    assert set(CLAIM_TESTS) == per_seed
    for file, marker in CLAIM_TESTS.values():
        assert marker in (HERE / file).read_text(), (file, marker)


@pytest.mark.slow
def test_untrained_quick_tables_make_no_claims(tmp_path):
    """kernels and scaling train only in full mode: their quick tables are exact counts, nothing varies by seed."""
    assert run_experiment("kernels", quick=True, out=tmp_path / "kernels").claims == []
    assert run_experiment("scaling", quick=True, out=tmp_path / "scaling").claims == []


@pytest.mark.slow
def test_scaling_claims_select_the_trained_variants():
    """Full mode's trained rows are named after `matched_variants`; each claim picks two distinct ones."""
    rows = [{"model": f"small base: {v['variant']}", "test_accuracy_pct": 50.0} for v in matched_variants(28, 1, 10)]
    claims = trained_claims()
    assert len(claims) == 3
    for claim in claims:
        assert find_row(rows, claim.above)["model"] == "small base: compound (phi=1)"
        assert find_row(rows, claim.below) is not find_row(rows, claim.above)


@pytest.fixture(scope="module")
def two_seeds(tmp_path_factory):
    out = tmp_path_factory.mktemp("degradation-seeds")
    return run_experiment("degradation", quick=True, seeds=[0, 1], out=out), out


@pytest.mark.slow
def test_each_seed_keeps_its_own_results_and_runs(two_seeds):
    _, out = two_seeds
    for seed in (0, 1):
        folder = out / f"seed-{seed}"
        assert (folder / "results.md").read_text().startswith("# Degradation")
        assert json.loads((folder / "config.json").read_text())["options"]["seed"] == seed
        for net in NETWORKS:
            assert (folder / "runs" / net / "metrics.csv").is_file()
    per_seed = [{r["network"]: r for r in read_csv(out / f"seed-{s}" / "results.csv")} for s in (0, 1)]
    assert any(per_seed[0][n]["train_loss"] != per_seed[1][n]["train_loss"] for n in NETWORKS)  # seeds differ


@pytest.mark.slow
def test_summary_is_mean_std_and_n_of_the_seeds(two_seeds):
    _, out = two_seeds
    summary = read_csv(out / "results.csv")
    per_seed = [{r["network"]: r for r in read_csv(out / f"seed-{s}" / "results.csv")} for s in (0, 1)]
    assert [row["network"] for row in summary] == NETWORKS
    for row in summary:
        values = [float(seed_rows[row["network"]]["train_error"]) for seed_rows in per_seed]
        assert int(row["train_error_n"]) == 2
        assert float(row["train_error_mean"]) == pytest.approx(statistics.fmean(values), rel=1e-12, abs=1e-15)
        assert float(row["train_error_std"]) == pytest.approx(statistics.stdev(values), rel=1e-9, abs=1e-15)
        assert row["params"] == per_seed[0][row["network"]]["params"]  # equal in every seed: kept as it is


@pytest.mark.slow
def test_every_claim_gets_a_verdict_and_the_curves_a_band(two_seeds):
    result, out = two_seeds
    assert len(result.claims) == 4
    verdicts = result.findings[: len(result.claims)]
    assert all(sentence.startswith(VERDICTS) for sentence in verdicts), verdicts
    for sentence, claim in zip(verdicts, result.claims):
        assert claim.text in sentence
    assert " ".join(result.findings) in (out / "results.md").read_text()
    assert result.plots == ["seeds_band.png"] and (out / "seeds_band.png").read_bytes()[:8] == PNG_MAGIC


@pytest.mark.slow
def test_cli_repeats_runs_consecutive_seeds(tmp_path, capsys):
    argv = ["experiment", "degradation", "--quick", "--models", "plain8,resnet8", "--epochs", "1"]
    assert main([*argv, "--repeats", "2", "--out", str(tmp_path)]) == 0
    assert "wrote" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.glob("seed-*")) == ["seed-0", "seed-1"]
    assert [int(row["train_error_n"]) for row in read_csv(tmp_path / "results.csv")] == [2, 2]
    assert json.loads((tmp_path / "config.json").read_text())["experiment"]["seeds"] == [0, 1]


@pytest.mark.parametrize(
    "flags", [["--seeds", "0,0"], ["--seeds", "x"], ["--repeats", "0"], ["--seeds", "0,1", "--repeats", "3"]]
)
def test_bad_seed_flags_are_one_line_and_exit_2(flags, tmp_path, capsys):
    assert main(["experiment", "degradation", "--quick", *flags, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and ("--seeds" in err or "--repeats" in err)
    assert not list(tmp_path.iterdir())  # refused before anything ran


@pytest.mark.slow
def test_experiments_that_loop_over_seeds_get_exactly_those_seeds(tmp_path):
    result = run_experiment("vgg-bn", quick=True, seeds=[3, 4], out=tmp_path)
    assert [(row["model"], row["seed"]) for row in result.rows] == [
        ("vgg11", 3),
        ("vgg11", 4),
        ("vgg11_bn", 3),
        ("vgg11_bn", 4),
    ]
    for row in result.rows:  # each run trained with its row's seed
        saved = json.loads((tmp_path / f"{row['model']}-seed{row['seed']}" / "results.json").read_text())
        assert saved["seed"] == row["seed"]
    assert not list(tmp_path.glob("seed-*"))  # run once, not once per seed


def batchnorm_result(with_bn: tuple[float, float], without_bn: tuple[float, float]) -> ExperimentResult:
    """A batchnorm-shaped result without the training: a part (a) row that measures nothing per seed, and the two
    part (c) twins with (train_loss, test_accuracy)."""
    rows = [{"part": "a", "quantity": "running_var after one step", "measured": "[1.5000, 1.5000]"}]
    for label, (loss, accuracy) in (("with", with_bn), ("without", without_bn)):
        quantity = f"plain-8 {label} BN: train loss after epoch 2, outcome"
        rows.append({"part": "c", "quantity": quantity, "train_loss": loss, "test_accuracy": accuracy})
    return ExperimentResult("BatchNorm", batchnorm.COLUMNS, rows, [], claims=batchnorm.twin_claims(8, *rows[1:]))


def test_a_table_whose_other_rows_measure_nothing_combines_over_seeds(tmp_path):
    results = [batchnorm_result((1.00, 0.95), (1.70, 0.60)), batchnorm_result((1.05, 0.96), (1.90, 0.52))]
    combined = combine(results, (0, 1), tmp_path)
    assert [s.split(":")[0] for s in combined.findings[:2]] == ["Supports", "Supports"]
    write_result(combined, tmp_path)
    summary = read_csv(tmp_path / "results.csv")
    assert summary[0]["test_accuracy_mean"] == "" and summary[0]["measured"] == "[1.5000, 1.5000]"
    assert float(summary[1]["test_accuracy_mean"]) == pytest.approx(0.955) and summary[1]["test_accuracy_n"] == "2"


def copied_seeds(two_seeds, into: Path, seeds=(0, 1)) -> Path:
    _, out = two_seeds
    for seed in seeds:
        shutil.copytree(out / f"seed-{seed}", into / f"seed-{seed}")
    return into


def refuse_to_train(monkeypatch) -> None:
    """degradation's run replaced by one that fails: a test that trains by mistake says so."""

    def train(options):
        raise AssertionError(f"seed {options.seed} was trained again")

    monkeypatch.setitem(_EXPERIMENTS, "degradation", replace(get_experiment("degradation"), run=train))


@pytest.mark.slow
def test_a_rerun_reads_finished_seeds_back_and_combines_them_alike(two_seeds, tmp_path, capsys, monkeypatch):
    """An interrupted --seeds run, run again (or seeds run apart into one OUT): the finished seeds are read from
    their folders, not trained, and the summary is the one the uninterrupted run wrote."""
    _, out = two_seeds
    again = copied_seeds(two_seeds, tmp_path / "again")
    refuse_to_train(monkeypatch)
    assert main(["experiment", "degradation", "--quick", "--seeds", "0,1", "--out", str(again)]) == 0
    err = capsys.readouterr().err
    for seed in (0, 1):
        assert f"cnnlab: warning: seed {seed}: reusing the finished results in {again / f'seed-{seed}'}" in err
    assert (again / "results.csv").read_text() == (out / "results.csv").read_text()
    original, rerun = (json.loads((d / "config.json").read_text()) for d in (out, again))
    assert rerun["claims"] == original["claims"] and rerun["experiment"]["seeds"] == [0, 1]
    verdicts = [line for line in (again / "results.md").read_text().splitlines() if line.startswith(VERDICTS)]
    assert verdicts == [line for line in (out / "results.md").read_text().splitlines() if line.startswith(VERDICTS)]
    assert (again / "seeds_band.png").read_bytes()[:8] == PNG_MAGIC


@pytest.mark.slow
def test_a_seed_folder_is_reused_only_when_the_same_experiment_finished_it_with_the_same_options(two_seeds, tmp_path):
    folder = copied_seeds(two_seeds, tmp_path, seeds=(0,)) / "seed-0"
    same = ExperimentOptions(quick=True, seed=0, out=folder)
    with pytest.warns(SeedReusedWarning, match="seed 0: reusing"):
        reused = finished_seed("degradation", same)
    columns, rows = ExperimentFolder(folder).read_rows()
    assert reused.columns == columns and reused.rows == rows and reused.claims
    first = rows[0]  # the values as written: a name, a bool, an int count, a float error
    assert (type(first["network"]), type(first["residual"]), type(first["params"])) == (str, bool, int)
    assert isinstance(first["test_error"], float)
    assert finished_seed("lesion", same) is None  # another experiment's folder
    assert finished_seed("degradation", replace(same, epochs=5)) is None  # other options
    assert finished_seed("degradation", replace(same, seed=1)) is None
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(config | {"claims": [{"text": "a claim", "rows": 2}]}))
    assert finished_seed("degradation", same) is None  # a claim that is not a Claim: run it again
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "results.csv").unlink()  # killed before its table was written
    assert finished_seed("degradation", same) is None


@pytest.mark.slow
def test_an_interrupted_run_trains_only_the_seeds_it_had_not_finished(two_seeds, tmp_path, monkeypatch):
    out = copied_seeds(two_seeds, tmp_path / "interrupted", seeds=(0,))
    (out / "seed-1").mkdir()  # seed 1 was killed before it wrote anything
    experiment, trained = get_experiment("degradation"), []

    def run(options):
        trained.append(options.seed)
        return experiment.run(options)

    monkeypatch.setitem(_EXPERIMENTS, "degradation", replace(experiment, run=run))
    with pytest.warns(SeedReusedWarning, match="seed 0"):
        result = run_experiment("degradation", quick=True, seeds=[0, 1], out=out)
    assert trained == [1]
    timing = "train_seconds"  # the one column a rerun of a seed changes
    fresh, whole = (read_csv(d / "results.csv") for d in (out, two_seeds[1]))
    assert [{k: v for k, v in row.items() if not k.startswith(timing)} for row in fresh] == [
        {k: v for k, v in row.items() if not k.startswith(timing)} for row in whole
    ]
    assert result.config["seeds"] == [0, 1]
