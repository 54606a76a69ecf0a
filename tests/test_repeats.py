"""cnnlab.repeats on hand-made values: seeds, spreads, merged tables, their CSV columns, verdicts and band plots."""

from __future__ import annotations

import math

import pytest

from cnnlab.errors import CnnlabError
from cnnlab.repeats import (
    Claim,
    Spread,
    aggregate_rows,
    band,
    band_plot,
    choose_seeds,
    csv_rows,
    format_spread,
    parse_seeds,
    seed_dir,
    verdict,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# ------------------------------------------------------------------------------------------------------ seeds
def test_parse_seeds_reads_a_comma_list():
    assert parse_seeds("0,1,2") == (0, 1, 2)
    assert parse_seeds(" 7, 3 ") == (7, 3)


@pytest.mark.parametrize("text", ["0,0", "-1", "1,-2", "a", "1,b", "", ","])
def test_parse_seeds_refuses_duplicates_negatives_and_text(text):
    with pytest.raises(CnnlabError, match="distinct non-negative integers"):
        parse_seeds(text)


def test_choose_seeds():
    assert choose_seeds() is None  # one plain run, no seed folders
    assert choose_seeds(seed=4) is None
    assert choose_seeds(seeds="2,0") == (2, 0)
    assert choose_seeds(seeds=[1, 5]) == (1, 5)
    assert choose_seeds(repeats=3) == (0, 1, 2)
    assert choose_seeds(seed=5, repeats=3) == (5, 6, 7)  # --repeats counts from --seed
    assert choose_seeds(seeds=(0, 1, 2), repeats=3) == (0, 1, 2)  # agreeing is fine


def test_choose_seeds_refuses_what_disagrees():
    with pytest.raises(CnnlabError, match="--repeats 2 and --seeds 0,1,2 disagree"):
        choose_seeds(seeds="0,1,2", repeats=2)
    with pytest.raises(CnnlabError, match="distinct seeds"):
        choose_seeds(seeds=[1, 1])
    with pytest.raises(CnnlabError, match="at least 1"):
        choose_seeds(repeats=0)


def test_seed_dir(tmp_path):
    assert seed_dir(tmp_path, 3) == tmp_path / "seed-3"


# ------------------------------------------------------------------------------------------------------ spreads
def test_spread_of_three_values():
    spread = Spread.of([1, 2, 3])
    assert (spread.mean, spread.std, spread.n, spread.low, spread.high) == (2.0, 1.0, 3, 1.0, 3.0)
    assert spread.values == (1.0, 2.0, 3.0)


def test_spread_of_one_value_has_no_width_and_none_is_refused():
    assert Spread.of([0.25]) == Spread(0.25, 0.0, 1, 0.25, 0.25, (0.25,))
    with pytest.raises(ValueError):
        Spread.of([])


def test_format_spread_in_each_columns_units():
    assert format_spread("test_accuracy", Spread.of([0.905, 0.91, 0.915])) == "91.00 ± 0.50%"
    assert format_spread("train_loss", Spread.of([0.5, 0.7])) == "0.6000 ± 0.1414"
    assert format_spread("train_seconds", Spread.of([10.0, 14.0])) == "12.0s ± 2.8s"
    assert format_spread("test_accuracy", Spread.of([0.91])) == "91.00%"  # one run: no "± 0"
    assert format_spread("params", 44426) == "44,426"  # not a spread: as format_metric writes it


def test_aggregate_rows_keeps_equal_columns_spreads_numbers_and_joins_strings():
    seed0 = [{"model": "a", "params": 10, "acc": 0.5, "note": "x"}, {"model": "b", "params": 20, "acc": 0.7}]
    seed1 = [{"model": "a", "params": 10, "acc": 0.7, "note": "y"}, {"model": "b", "params": 20, "acc": 0.9}]
    rows = aggregate_rows([seed0, seed1], ["model", "params", "acc", "note"])
    assert [row["model"] for row in rows] == ["a", "b"] and [row["params"] for row in rows] == [10, 20]
    assert rows[0]["acc"] == Spread.of([0.5, 0.7]) and rows[1]["acc"] == Spread.of([0.7, 0.9])
    assert math.isclose(rows[0]["acc"].mean, 0.6) and math.isclose(rows[0]["acc"].std, math.sqrt(0.02))
    assert rows[0]["note"] == "x/y"
    assert rows[1]["note"] is None  # missing in both runs: equal


def test_aggregate_rows_gives_every_row_of_a_measured_column_its_n():
    seed0 = [{"model": "a", "acc": 0.5}, {"model": "b", "acc": 0.8}]
    seed1 = [{"model": "a", "acc": 0.7}, {"model": "b", "acc": 0.8}]  # b happened to score the same twice
    rows = aggregate_rows([seed0, seed1], ["model", "acc"])
    assert rows[1]["acc"] == Spread(0.8, 0.0, 2, 0.8, 0.8, (0.8, 0.8))
    tied = aggregate_rows([[{"acc": 0.8}], [{"acc": 0.8}]], ["acc"], measured=["acc"])
    assert tied[0]["acc"].n == 2 and tied[0]["acc"].std == 0.0
    assert aggregate_rows([[{"acc": 0.8}], [{"acc": 0.8}]], ["acc"])[0]["acc"] == 0.8  # not measured: kept


def test_aggregate_rows_refuses_tables_of_different_lengths():
    with pytest.raises(CnnlabError, match=r"differ in length \(\[1, 2\] rows\)"):
        aggregate_rows([[{"a": 1}], [{"a": 1}, {"a": 2}]], ["a"])


def test_csv_rows_split_each_spread_column_into_mean_std_and_n():
    rows = aggregate_rows(
        [[{"model": "a", "params": 10, "acc": 0.5}], [{"model": "a", "params": 10, "acc": 0.7}]],
        ["model", "params", "acc"],
    )
    columns, flat = csv_rows(rows, ["model", "params", "acc"])
    assert columns == ["model", "params", "acc_mean", "acc_std", "acc_n"]
    assert flat[0]["model"] == "a" and flat[0]["params"] == 10 and flat[0]["acc_n"] == 2
    assert math.isclose(flat[0]["acc_mean"], 0.6) and math.isclose(flat[0]["acc_std"], math.sqrt(0.02))


# ------------------------------------------------------------------------------------------------------ verdicts
def rows_of(above: list[float], below: list[float]) -> list[dict]:
    runs = [[{"net": "deep", "train_error": a}, {"net": "shallow", "train_error": b}] for a, b in zip(above, below)]
    return aggregate_rows(runs, ["net", "train_error"])


CLAIM = Claim("deep has the higher error", "train_error", {"net": "deep"}, {"net": "shallow"})


def test_verdict_supports_a_difference_beyond_the_spread():
    outcome, sentence = verdict(CLAIM, rows_of([0.30, 0.31, 0.32], [0.20, 0.21, 0.22]))
    assert outcome == "supports"
    assert sentence == (
        "supports: deep has the higher error (train_error: deep 31.00 ± 1.00% against shallow 21.00 ± 1.00%; "
        "difference 10.00%, spread 2.00%, n=3)."
    )


def test_verdict_contradicts_a_difference_the_other_way():
    assert verdict(CLAIM, rows_of([0.20, 0.21, 0.22], [0.30, 0.31, 0.32]))[0] == "contradicts"


def test_verdict_leaves_a_difference_within_the_spread_unresolved():
    # means 0.85 and 0.83: 0.02 apart, while the stds add to 0.05 + 0.01
    outcome, sentence = verdict(CLAIM, rows_of([0.80, 0.85, 0.90], [0.82, 0.83, 0.84]))
    assert outcome == "not resolved at n=3"
    assert "difference 2.00%, spread 6.00%, n=3" in sentence


def test_verdict_of_one_run_resolves_nothing():
    rows = aggregate_rows(
        [[{"net": "deep", "train_error": 0.9}, {"net": "shallow", "train_error": 0.1}]], ["net", "train_error"]
    )
    assert verdict(CLAIM, rows)[0] == "not resolved at n=1"


def test_verdict_refuses_a_selector_without_exactly_one_row():
    claim = Claim("x", "train_error", {"net": "missing"}, {"net": "shallow"})
    with pytest.raises(CnnlabError, match="matches 0 rows"):
        verdict(claim, rows_of([0.1, 0.2], [0.1, 0.2]))


# ------------------------------------------------------------------------------------------------------ curves
def write_metrics(folder, rows: list[tuple[int, float, float]]):
    folder.mkdir(parents=True)
    lines = ["epoch,train_loss,val_accuracy"] + [f"{e},{loss},{acc}" for e, loss, acc in rows]
    (folder / "metrics.csv").write_text("\n".join(lines) + "\n")
    return folder


def test_band_is_mean_min_and_max_over_the_common_epochs():
    x, mean, low, high = band([([1, 2, 3], [1.0, 2.0, 3.0]), ([1, 2], [3.0, 0.0])])
    assert (x, mean, low, high) == ([1, 2], [2.0, 1.0], [1.0, 0.0], [3.0, 2.0])


def test_band_plot_writes_a_png_and_declines_a_metric_no_run_has(tmp_path):
    runs = [
        write_metrics(tmp_path / "seed-0", [(1, 2.0, 0.4), (2, 1.0, 0.6)]),
        write_metrics(tmp_path / "seed-1", [(1, 1.8, 0.5), (2, 0.9, 0.7)]),
    ]
    path = tmp_path / "band.png"
    assert band_plot({"net": runs}, ["train_loss", "val_accuracy"], path, "two seeds") is True
    assert path.read_bytes()[:8] == PNG_MAGIC
    missing = tmp_path / "none.png"
    assert band_plot({"net": runs}, ["test_accuracy"], missing, "no such column") is False
    assert not missing.exists()
