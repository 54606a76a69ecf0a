"""Issue #22 §5: the remaining commands with a network of your own. `train --seeds` and `--time-budget` take a
file reference and a layer spec as they take a zoo name; `experiment degradation --models` takes your own
(plain, residual) pairs (tests/experiments/test_degradation_own.py); `lesion --model` takes a layer spec with res(...)
blocks or code with findable residual blocks (tests/experiments/test_lesion_own.py) and refuses a network without
one in one line, naming the three ways to make a block findable; every bad input is one line and exit 2, before any
training."""

from __future__ import annotations

import json

import ownnet_support
import pytest
from ownnet_support import SPEC, one_line_error

from cnnlab.cli import main

TINY = ["--dataset", "digits", "--epochs", "1", "--train-subset", "200", "--quiet"]
workdir = ownnet_support.workdir


def read(path):
    return json.loads(path.read_text())


@pytest.mark.slow
@pytest.mark.parametrize("model", ["my_cnn.py:MyCNN", SPEC], ids=["file", "spec"])
def test_seeds_and_a_time_budget_take_an_own_network(workdir, model):
    assert main(["train", model, *TINY, "--seeds", "0,1", "--out", "seeds"]) == 0
    summary = read(workdir / "seeds" / "seeds.json")
    assert summary["seeds"] == [0, 1] and summary["summary"]["test_accuracy"]["n"] == 2
    runs = [read(workdir / "seeds" / f"seed-{seed}" / "results.json") for seed in (0, 1)]
    assert [run["model"] for run in runs] == [model, model] and [run["seed"] for run in runs] == [0, 1]
    assert summary["summary"]["test_accuracy"]["mean"] == pytest.approx(sum(r["test_accuracy"] for r in runs) / 2)
    keeps_code = model.endswith(":MyCNN")
    for seed in (0, 1):  # a file's run keeps its code, a spec's keeps only the spec
        assert (workdir / "seeds" / f"seed-{seed}" / "model_source.py").exists() == keeps_code

    assert main(["train", model, "--dataset", "digits", "--time-budget", "4s", "--quiet", "--out", "budget"]) == 0
    results = read(workdir / "budget" / "results.json")
    assert results["model"] == model and results["status"] == "completed" and results["time_budget"] == 4.0
    plan = results["budget_plan"]
    assert plan["steps_trained"] > 0 and plan["last_step_progress"] == 1.0  # the schedule ran to its end
    assert results["wall_seconds"] <= 4.0 + 3.0  # inside its budget, with tests/training/test_budget.py's slack


@pytest.mark.parametrize(
    "argv, says",
    [
        (["train", "missing.py:Net", "--seeds", "0,1"], "missing.py"),
        (["train", "my_cnn.py:Nope", "--seeds", "0,1"], "Nope"),
        (["train", "conv 8 k3; bogus 3", "--repeats", "2"], "bogus"),
        (["train", "my_cnn.py:Nope", "--time-budget", "4s"], "Nope"),
        (["train", SPEC, "--time-budget", "soon"], "--time-budget"),
        (["train", SPEC, "--seeds", "0,1", "--weights", "w.pth"], "your own network"),
    ],
    ids=["missing-file", "missing-class", "bad-spec", "budget-missing-class", "bad-budget", "weights-on-spec"],
)
def test_each_bad_input_is_one_line_before_any_run(workdir, capsys, argv, says):
    err = one_line_error(capsys, [*argv, "--dataset", "digits", "--out", "out"])
    assert says in err
    assert not (workdir / "out").exists()


@pytest.mark.parametrize(
    "argv, says",
    [
        (["experiment", "degradation", "--models", f"my_cnn.py:MyCNN,{SPEC},{SPEC}"], "(plain, residual) pairs"),
        (["experiment", "degradation", "--models", "my_cnn.py:MyCNN"], "names 1 of them"),
        (["experiment", "degradation", "--models", f"plainx,{SPEC},{SPEC}"], "'plainx' is not one"),
        (["experiment", "degradation", "--models", f"broken.py:Net,{SPEC}"], "broken.py"),
        (["experiment", "degradation", "--models", "my_cnn.py:Nope,my_cnn.py:MyCNN"], "Nope"),
        (["experiment", "degradation", "--models", f"{SPEC},conv 8 k3; bogus 3"], "bogus"),
    ],
    ids=["odd", "one", "unknown-zoo", "broken-file", "missing-class", "bad-spec"],
)
def test_degradation_refuses_a_bad_own_pair_in_one_line(workdir, capsys, argv, says):
    (workdir / "broken.py").write_text("import torch\nthis is not python\n")
    err = one_line_error(capsys, [*argv, "--quick", "--out", "exp"])
    assert says in err
    assert not (workdir / "exp" / "runs").exists()  # refused before any data loads or training


@pytest.mark.parametrize(
    "argv, says",
    [
        (
            ["--model", "my_cnn.py:MyCNN", "--epochs", "1"],  # not --quick: MyCNN is written for 28 px digits
            "'my_cnn.py:MyCNN' has no residual block a lesion can remove: it finds cnnlab's (cnnlab.models.blocks."
            "BasicBlock/Bottleneck), torchvision's (torchvision.models.resnet.BasicBlock/Bottleneck) and any module "
            "whose class says lesionable = True",
        ),
        (["--model", SPEC, "--weights", "w.pth"], "--weights loads a torchvision ImageNet ResNet's checkpoint"),
        (["--model", SPEC, "--quick"], "has no res(...) block that keeps its input's shape"),
        (["--model", f"{SPEC},{SPEC}", "--quick"], "takes one network for a lesion"),
    ],
    ids=["code-without-blocks", "spec-with-weights", "spec-without-res-blocks", "two-specs"],
)
def test_lesion_refuses_what_it_cannot_lesion_saying_why(workdir, capsys, argv, says):
    err = one_line_error(capsys, ["experiment", "lesion", *argv, "--out", "exp"])
    assert says in err
    assert not list((workdir / "exp").glob("*/results.json"))  # refused before any training
