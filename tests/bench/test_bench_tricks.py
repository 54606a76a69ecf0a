"""bench/tricks.py: each row changes exactly the options it names, the summary's arithmetic and verdicts, and a
quick smoke run end to end (no timing asserted: a quick run's numbers mean nothing)."""

from __future__ import annotations

import json
import os
from dataclasses import asdict

import pytest

from bench import tricks
from cnnlab.engine.config import validate


def resolved(overrides: dict) -> dict:
    return asdict(validate({"model": tricks.MODEL, "dataset": tricks.DATASET, "time_budget": 60.0, **overrides}))


@pytest.mark.parametrize("trick", list(tricks.TRICKS))
def test_each_trick_changes_only_its_own_options(trick):
    base, mine = resolved({}), resolved(tricks.TRICKS[trick])
    changed = {name for name in base if base[name] != mine[name]}
    expected = {name for name, value in tricks.TRICKS[trick].items() if base[name] != value}
    if "batch_size" in expected:  # the lr rule scales the default lr with the batch
        expected.add("lr")
        assert mine["lr"] == pytest.approx(base["lr"] * mine["batch_size"] / base["batch_size"])
    assert changed == expected
    assert (trick == tricks.BASELINE) == (not changed)


def record(trick: str, seed: int, accuracy: float, flipped: float, speed: float) -> dict:
    return {
        "trick": trick,
        "seed": seed,
        "test_accuracy": accuracy,
        "flip_test_accuracy": flipped,
        "epochs": speed / 1000,
        "images_per_second": speed,
        "flip_seconds": 2.0,
    }


def test_summary_means_deltas_speeds_and_verdicts():
    base, smooth, slow = tricks.BASELINE, "label smoothing 0.1", "fp32 (bf16 off)"
    records = [
        *(record(base, s, a, a + 0.002, 1000.0) for s, a in enumerate((0.90, 0.91, 0.92))),
        *(record(smooth, s, a, a, 1000.0) for s, a in enumerate((0.95, 0.96, 0.97))),  # +5 points, spread 2
        *(record(slow, s, a, a, 500.0) for s, a in enumerate((0.90, 0.92, 0.94))),  # +1 point, spread 3
    ]
    rows = {row["trick"]: row for row in tricks.summarise(records, (base, smooth, slow))}
    assert rows[base]["test_accuracy"].mean == pytest.approx(0.91)
    assert rows[base]["test_accuracy"].std == pytest.approx(0.01)
    assert rows[base]["flip_delta"] == pytest.approx(0.002)
    assert rows[smooth]["delta"] == pytest.approx(0.05)
    assert rows[smooth]["verdict"] == "supports"
    assert rows[slow]["delta"] == pytest.approx(0.01)
    assert rows[slow]["verdict"] == "not resolved at n=3"
    assert rows[slow]["speed"] == pytest.approx(0.5)
    text = tricks.table(list(rows.values()))
    assert "| label smoothing 0.1 | 96.00 ± 1.00% | +5.00 | supports |" in text
    assert "0.50x" in text


@pytest.mark.slow
def test_quick_run_writes_every_row_and_seed(tmp_path, monkeypatch):
    from bench import common

    if not common.FASHION_MNIST_DIR.is_dir():
        pytest.skip("dataset-fashion-mnist is not installed")
    monkeypatch.setattr(common, "RESULTS", tmp_path)
    tricks.main(quick=True, out=tmp_path / "runs")
    saved = json.loads((tmp_path / "tricks-quick.json").read_text())
    assert saved["quick"] is True and saved["benchmark"] == "tricks-quick" and saved["model"] == tricks.QUICK["model"]
    assert [(r["trick"], r["seed"]) for r in saved["runs"]] == [(t, 0) for t in tricks.QUICK["tricks"]]
    for run in saved["runs"]:
        assert run["epochs"] > 0 and 0.0 <= run["test_accuracy"] <= 1.0 and 0.0 <= run["flip_test_accuracy"] <= 1.0
        assert (tmp_path / "runs" / f"{tricks.slug(run['trick'])}-seed0" / "results.json").is_file()
    precisions = {r["trick"]: r["precision"] for r in saved["runs"]}
    assert precisions["fp32 (bf16 off)"] == "fp32"
    if len(os.sched_getaffinity(0)) >= 2:  # each worker pinned to its own core
        assert {tuple(r["core"]) for r in saved["runs"]} <= {(c,) for c in sorted(os.sched_getaffinity(0))[:2]}
    assert "| crops ±2 px + flips |" in saved["table"] and "| whitening init |" in saved["table"]
    assert json.loads((tmp_path / "runs" / "whitening-init-seed0" / "config.json").read_text())["whiten"] is True


def test_the_new_tricks_run_beside_the_baseline():
    assert tricks.NEW_TRICKS[0] == tricks.BASELINE and set(tricks.NEW_TRICKS) <= set(tricks.TRICKS)
    assert {"lookahead", "whiten"} == {key for trick in tricks.NEW_TRICKS for key in tricks.TRICKS[trick]}


def test_airbench_s_tricks_run_beside_the_baseline_and_plain_flips():
    assert tricks.AIRBENCH_TRICKS[:2] == (tricks.BASELINE, "flips")
    assert set(tricks.AIRBENCH_TRICKS) <= set(tricks.TRICKS)
    changed = {key for trick in tricks.AIRBENCH_TRICKS for key in tricks.TRICKS[trick]}
    assert {"alternate_flips", "optimizer", "tta_shift", "dirac", "progressive_resize"} <= changed


@pytest.mark.parametrize("trick", list(tricks.IN_RECIPE))
def test_each_in_recipe_row_is_the_speedrun_recipe_with_only_its_own_change(trick):
    """--in-recipe (#26: the candidates measured inside the 10-minute recipe): the baseline is speedrun's choice for
    the budget on this CPU kind, and each row changes what it names and nothing else."""
    from cnnlab.precision import cpu_kind
    from cnnlab.workflows.speedrun import choose

    base, rows = tricks.row_options(False, [trick], 600.0, in_recipe=True)
    choice = choose(tricks.DATASET, 600.0, cpu_kind())
    assert base == {"model": choice.model, **choice.recipe} and base["model"] == "speednet_small"
    assert rows == {trick: base | tricks.IN_RECIPE[trick]}
    defaults = asdict(validate({"dataset": tricks.DATASET, "time_budget": 600.0, **base}))
    mine = asdict(validate({"dataset": tricks.DATASET, "time_budget": 600.0, **rows[trick]}))
    changed = {name for name in defaults if defaults[name] != mine[name]}
    assert changed == set(tricks.IN_RECIPE[trick]) and (trick == tricks.RECIPE_BASELINE) == (not changed)


def test_runs_in_records_jsonl_are_reused_only_with_the_same_options_budget_and_cpu(tmp_path):
    from cnnlab.precision import cpu_kind

    rows = {tricks.BASELINE: {"model": "resnet20"}, "Dirac init": {"model": "resnet20", "dirac": True}}

    def line(trick, seed, **changes):
        options = rows.get(trick, {"model": "resnet20"})
        run = {"trick": trick, "seed": seed, "test_accuracy": 0.9, "options": options, "budget_seconds": 60.0}
        return json.dumps(run | {"subset": None, "cpu_kind": cpu_kind()} | changes)

    lines = [
        line(tricks.BASELINE, 0),
        line("Dirac init", 0, budget_seconds=30.0),  # another budget
        line("Dirac init", 1, options={"model": "resnet20"}),  # another row's options under this name
        line(tricks.BASELINE, 1, cpu_kind="some-other-cpu"),
        line("Dirac init", 2),
        line("a row no longer asked for", 0),
    ]
    (tmp_path / tricks.RECORDS).write_text("\n".join(lines) + '\n{"trick": "Dirac init", "se')  # a cut-off write
    found = tricks.finished_runs(tmp_path, 60.0, None, rows)
    assert set(found) == {(tricks.BASELINE, 0), ("Dirac init", 2)}
    assert tricks.finished_runs(tmp_path, 60.0, 2_000, rows) == {}  # another subset


@pytest.mark.slow
def test_an_in_recipe_quick_run_resumes_from_its_records(tmp_path, monkeypatch, capsys):
    from bench import common

    if not common.FASHION_MNIST_DIR.is_dir():
        pytest.skip("dataset-fashion-mnist is not installed")
    monkeypatch.setattr(common, "RESULTS", tmp_path)
    rows = [tricks.RECIPE_BASELINE, "alternating flips"]  # two rows: one pair of workers, about 30 s
    first = tricks.main(quick=True, tricks=rows, out=tmp_path / "runs", in_recipe=True)
    assert [r["trick"] for r in first["runs"]] == rows and first["model"] == "speednet_small"
    assert first["runs"][1]["options"]["alternate_flips"] is True and first["runs"][1]["options"]["ema"] == 0.999
    saved = json.loads((tmp_path / "runs" / "alternating-flips-seed0" / "config.json").read_text())
    assert saved["alternate_flips"] is True and saved["label_smoothing"] == 0.1 and saved["crop_padding"] == 2
    capsys.readouterr()
    again = tricks.main(quick=True, tricks=rows, out=tmp_path / "runs", in_recipe=True)  # both already recorded
    assert "2 of 2 runs already in" in capsys.readouterr().out
    assert again["runs"] == first["runs"] and again["table"] == first["table"]
