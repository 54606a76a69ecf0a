"""`cnnlab speedrun`: the CPU kind, the documented choice table, and a digits speedrun inside its budget."""

import json
import time
from pathlib import Path

import pytest

from cnnlab.cli import main
from cnnlab.errors import CnnlabError
from cnnlab.workflows import speedrun

DOCS = Path(__file__).resolve().parents[2] / "docs" / "performance.md"
FLAGS = {
    "amx": "flags\t\t: fpu sse2 avx512f avx512_bf16 amx_bf16 amx_tile amx_int8\n",
    "zen4": "flags\t\t: fpu sse2 avx512f avx512_bf16 avx512_vnni\n",
    "plain": "flags\t\t: fpu sse2 avx2 avx512f avx512_vnni\n",
    "arm": "Features\t: fp asimd bf16 i8mm\n",
}


@pytest.mark.parametrize(
    "cpu, kind", [("amx", "amx-bf16"), ("zen4", "avx512-bf16"), ("plain", "no-native-bf16"), ("arm", "arm-bf16")]
)
def test_the_cpu_kind_comes_from_the_cpuinfo_flags(cpu, kind):
    assert speedrun.cpu_kind(FLAGS[cpu] * 2) == kind  # one line per core
    assert speedrun.cpu_kind() in speedrun.CPU_KINDS  # this machine's


# (model, augment) as a pair: a bare model name as a parameter would mark the test slow (tests/conftest.py)
@pytest.mark.parametrize(
    "dataset, seconds, expected",
    [
        ("fashion-mnist", 60, ("resnet20", None)),
        ("fashion-mnist", 600, ("speednet_small", True)),
        ("fashion-mnist", 1200, ("speednet", True)),
        ("fashion-mnist", 3600, ("speednet", True)),
        ("mnist", 600, ("speednet_small", True)),
        ("digits", 30, ("lenet5", None)),
        ("imagefolder:/data/pets", 300, ("resnet20", True)),
    ],
)
def test_the_choice_is_the_tables_row_for_the_dataset_and_budget(dataset, seconds, expected):
    model, augment = expected
    choice = speedrun.choose(dataset, seconds, "amx-bf16")
    assert choice.model == model and choice.recipe.get("augment") == augment
    assert choice.low <= seconds < choice.high
    assert speedrun.choose(dataset, seconds, "no-native-bf16") == choice  # nothing measured yet says otherwise


@pytest.mark.parametrize("budget, record_name", [(600, "10m"), (1200, "20m")])
def test_only_measured_rows_claim_a_measurement(budget, record_name):
    row = speedrun.choose("fashion-mnist", budget, "amx-bf16")
    # The row quotes the 3-seed record the speedrun wrote (bench/results/speedrun-fashion-mnist-NNm.json).
    path = Path(__file__).parents[2] / f"bench/results/speedrun-fashion-mnist-{record_name}.json"
    record = json.loads(path.read_text())
    plain, flips = record["test_accuracy"], record["flip_test_accuracy"]
    assert record["budget_seconds"] == budget and [r["seed"] for r in record["runs"]] == [0, 1, 2]
    assert record["model"] == row.model and record["recipe"] == row.recipe and flips["n"] == 3
    assert f"{plain['mean']:.2%} ± {plain['std']:.2%}, " in row.status("amx-bf16")
    assert f"{flips['mean']:.2%} ± {flips['std']:.2%} with flips" in row.status("amx-bf16")
    assert all(r["within_budget"] and r["wall_seconds"] <= budget for r in record["runs"])
    if budget == 1200:
        assert row.status("avx512-bf16") == "not yet measured"
    assert speedrun.choose("cifar10", 600, "amx-bf16").status("amx-bf16") == "not yet measured"


def test_the_avx512_bf16_row_quotes_its_own_record():
    """The 10-minute row measured on AMD EPYC Zen 4 (bench/results/speedrun-fashion-mnist-10m-avx512-bf16.json)."""
    row = speedrun.choose("fashion-mnist", 600, "avx512-bf16")
    path = Path(__file__).parents[2] / "bench/results/speedrun-fashion-mnist-10m-avx512-bf16.json"
    record = json.loads(path.read_text())
    plain, flips = record["test_accuracy"], record["flip_test_accuracy"]
    assert record["cpu_kind"] == "avx512-bf16" and record["budget_seconds"] == 600 and flips["n"] == 3
    assert record["model"] == row.model and record["recipe"] == row.recipe
    assert f"{plain['mean']:.2%} ± {plain['std']:.2%}, " in row.status("avx512-bf16")
    assert f"{flips['mean']:.2%} ± {flips['std']:.2%} with flips" in row.status("avx512-bf16")
    assert all(r["within_budget"] and r["wall_seconds"] <= 600 for r in record["runs"])
    assert row.status("no-native-bf16") == "not yet measured"


def test_an_unknown_dataset_lists_those_the_table_knows():
    with pytest.raises(CnnlabError, match="digits, fashion-mnist, imagefolder"):
        speedrun.choose("svhn", 600, "amx-bf16")


def test_the_docs_mirror_the_table_exactly():
    assert speedrun.table_markdown() in DOCS.read_text()


@pytest.mark.parametrize("text, seeds", [("0", (0,)), ("0,1,2", (0, 1, 2)), (" 3, 7 ", (3, 7))])
def test_seeds_parse(text, seeds):
    assert speedrun.parse_seeds(text) == seeds


@pytest.mark.parametrize("text", ["", "a", "1,1", "0;1"])
def test_bad_seeds_are_refused(text):
    with pytest.raises(CnnlabError, match="expected distinct whole numbers"):
        speedrun.parse_seeds(text)


@pytest.mark.parametrize(
    "argv, says",
    [
        (["--dataset", "svhn", "--budget", "1m"], "speedrun has no choice for dataset 'svhn'"),
        (["--dataset", "digits", "--budget", "0s"], "--budget"),
        (["--dataset", "digits", "--budget", "30s", "--seeds", "1,1"], "expected distinct whole numbers"),
    ],
)
def test_speedrun_user_errors_are_one_line_and_exit_2(capsys, tmp_path, argv, says):
    assert main(["speedrun", *argv, "--out", str(tmp_path / "out"), "--quiet"]) == 2
    error = capsys.readouterr().err.strip()
    assert says in error and len(error.splitlines()) == 1


def test_a_budget_used_up_before_training_is_refused(tmp_path):
    with pytest.raises(CnnlabError, match="used up before training starts"):
        speedrun.speedrun("digits", 5.0, out=tmp_path, quiet=True, started=time.perf_counter() - 10)


@pytest.mark.slow
def test_a_digits_speedrun_in_30_seconds_reaches_90_percent_inside_its_budget(tmp_path):
    start = time.perf_counter()
    record = speedrun.speedrun("digits", 30.0, out=tmp_path, quiet=True, started=start)
    wall = time.perf_counter() - start
    assert wall <= 30.0 + max(3.0, 0.3 * 30.0)
    assert record["model"] == "lenet5" and record["test_accuracy"]["n"] == 1
    assert record["test_accuracy"]["mean"] >= 0.90
    assert record["flip_test_accuracy"] is None  # a mirrored digit is another digit, or none
    run = record["runs"][0]
    assert run["wall_seconds"] <= wall + 0.005 and run["train_budget_seconds"] < 30.0  # recorded to 0.01 s
    results = json.loads((tmp_path / "seed-0" / "results.json").read_text())
    assert results["time_budget"] == pytest.approx(run["train_budget_seconds"], abs=0.01) and results["seed"] == 0
    assert json.loads((tmp_path / "speedrun.json").read_text())["runs"] == record["runs"]
