"""The resume rule: a flag given with --resume is honoured or refused in one line, never ignored.

Equal to the run's own value: fine. Resumable (device, threads, data dir, checkpointing, compile): taken. A larger
--epochs: taken for a constant schedule (and then equal to a run trained that long from the start), refused with
the reason for the others. Anything else: ResumeConflictError."""

from __future__ import annotations

import csv
import json
import shutil

import pytest
import torch

import cnnlab.api
from cnnlab.checkpoint import read_weights
from cnnlab.cli import main
from cnnlab.engine.config import TrainConfig, options, resolve, resume_config
from cnnlab.errors import CnnlabError, ResumeConflictError

RECIPE = dict(dataset="digits", epochs=10, train_subset=200, schedule="constant", threads=1, seed=3)
WALL_TIME_COLUMNS = ("epoch_seconds", "images_per_second")


def saved_config(**changes) -> TrainConfig:
    return resolve(TrainConfig("lenet5", **{**RECIPE, **changes}))


def one_line_error(capsys, *argv) -> str:
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith("cnnlab: error: "), err
    return err.removeprefix("cnnlab: error: ").rstrip("\n")


def metric_rows(run_dir) -> list[dict]:
    with open(run_dir / "metrics.csv") as handle:
        return [{k: v for k, v in row.items() if k not in WALL_TIME_COLUMNS} for row in csv.DictReader(handle)]


# ----------------------------------------------------------------------------------------------- the rule itself
def test_equal_values_pass_and_resumable_ones_are_taken():
    saved = saved_config()
    assert resume_config(saved, "lenet5", "digits", {"lr": saved.lr, "schedule": "constant", "augment": False}) == saved
    changes = {
        "device": "cpu",
        "threads": 2,
        "data_dir": "/data",
        "checkpoint_every": 5,
        "keep_checkpoints": 4,
        "compile": True,
    }
    merged = resume_config(saved, None, None, changes)
    assert {name: getattr(merged, name) for name in changes} == changes
    assert {o.name for o in options() if o.resumable} == set(changes)
    assert resume_config(saved, None, None, {"lr": None, "device": None}) == saved  # None: not given


def test_another_value_is_a_typed_one_line_error():
    saved = saved_config()
    with pytest.raises(ResumeConflictError) as info:
        resume_config(saved, "lenet5", None, {"lr": 0.1})
    error = info.value
    assert (error.option, error.saved, error.given) == ("lr", saved.lr, 0.1)
    assert str(error) == (
        f"--lr cannot change on --resume: the run trained with {saved.lr}, got 0.1 (start a new run instead)"
    )
    with pytest.raises(
        ResumeConflictError,
        match=r"^--augment cannot change on --resume: the run trained with "
        r"--no-augment, got --augment \(start a new run instead\)$",
    ):
        resume_config(saved, None, None, {"augment": True})
    for name, value in (
        ("batch_size", 32),
        ("seed", 4),
        ("optimizer", "sgd"),
        ("precision", "fp32"),
        ("small_input", True),
        ("model_kwargs", {"drop_path_rate": 0.1}),
        ("tensorboard", True),
    ):
        with pytest.raises(ResumeConflictError) as info:
            resume_config(saved, None, None, {name: value})
        assert info.value.option == name


def test_more_epochs_only_with_a_constant_schedule():
    assert resume_config(saved_config(), None, None, {"epochs": 20}).epochs == 20
    for schedule in ("onecycle", "cosine", "step"):
        with pytest.raises(ResumeConflictError) as info:
            resume_config(saved_config(schedule=schedule), None, None, {"epochs": 20})
        assert str(info.value) == (
            f"--epochs cannot grow on --resume of a run with the {schedule} schedule: its "
            "learning rate was laid out over the run's original 10 epochs (only --schedule "
            "constant extends); start a new run with --epochs 20 instead"
        )
    with pytest.raises(ResumeConflictError, match="^--epochs can only grow on --resume: the run was set up for 10"):
        resume_config(saved_config(), None, None, {"epochs": 5})
    with pytest.raises(CnnlabError, match="--epochs must be a positive whole number, got 0"):
        resume_config(saved_config(), None, None, {"epochs": 0})


def test_new_run_options_and_other_runs_are_refused():
    saved = saved_config()
    with pytest.raises(ResumeConflictError, match="^--weights starts a new run; --resume continues"):
        resume_config(saved, None, None, {"weights": "w.pth"})
    with pytest.raises(ResumeConflictError, match="^--out names a new run's directory"):
        resume_config(saved, None, None, {"out": "elsewhere"})
    with pytest.raises(CnnlabError, match="^cannot resume R: it trained model 'lenet5', not 'simple_cnn'$"):
        resume_config(saved, "simple_cnn", None, {}, run_dir="R")
    with pytest.raises(CnnlabError, match="^cannot resume R: it trained dataset 'digits', not 'mnist'$"):
        resume_config(saved, None, "mnist", {}, run_dir="R")
    with pytest.raises(CnnlabError, match="unknown training option 'thread'; did you mean: threads"):
        resume_config(saved, None, None, {"thread": 1})


# ------------------------------------------------------------------------------------------------ through the CLI
@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("resume") / "run"
    cnnlab.api.train("lenet5", out=str(out), quiet=True, **RECIPE)
    return out


def test_a_conflicting_flag_is_refused_and_changes_nothing(capsys, finished_run):
    before = {name: (finished_run / name).read_bytes() for name in ("config.json", "metrics.csv", "results.json")}
    lr = json.loads(before["config.json"])["lr"]
    assert one_line_error(capsys, "train", "lenet5", "--resume", finished_run, "--lr", "0.1") == (
        f"--lr cannot change on --resume: the run trained with {lr}, got 0.1 (start a new run instead)"
    )
    assert one_line_error(capsys, "train", "lenet5", "--resume", finished_run, "--no-channels-last").startswith(
        "--channels-last cannot change on --resume: the run trained with --channels-last, got --no-channels-last"
    )
    assert one_line_error(capsys, "train", "lenet5", "--resume", finished_run, "--out", "x").startswith(
        "--out names a new run's directory"
    )
    assert one_line_error(capsys, "train", "lenet5", "--resume", finished_run, "--overwrite") == (
        "--overwrite replaces a run; --resume continues it: pass one of them"
    )
    assert {name: (finished_run / name).read_bytes() for name in before} == before


def test_equal_flags_device_and_threads_are_honoured(capsys, finished_run, tmp_path, monkeypatch):
    import cnnlab.engine.trainer as trainer

    run_dir = shutil.copytree(finished_run, tmp_path / "run")
    devices, threads = [], []
    real_resolve_device, real_set_threads, threads_before = (
        trainer.resolve_device,
        torch.set_num_threads,
        torch.get_num_threads(),
    )
    monkeypatch.setattr(
        trainer, "resolve_device", lambda name, *a: devices.append(name) or real_resolve_device(name, *a)
    )
    monkeypatch.setattr(torch, "set_num_threads", lambda n: threads.append(n) or real_set_threads(n))
    try:
        code = main(
            [
                "train",
                "lenet5",
                "--resume",
                str(run_dir),
                "--device",
                "cpu",
                "--threads",
                "2",
                "--epochs",
                "10",
                "--dataset",
                "digits",
                "--schedule",
                "constant",
                "--quiet",
            ]
        )
    finally:
        real_set_threads(threads_before)
    assert code == 0, capsys.readouterr().err
    assert devices == ["cpu"] and threads == [2]  # the run was trained with device auto and 1 thread
    assert json.loads((run_dir / "config.json").read_text())["epochs"] == 10


def test_more_epochs_on_a_constant_schedule_equal_the_longer_run(capsys, finished_run, tmp_path):
    extended = shutil.copytree(finished_run, tmp_path / "extended")
    code = main(["train", "lenet5", "--resume", str(extended), "--epochs", "20", "--quiet"])
    assert code == 0, capsys.readouterr().err
    assert len(metric_rows(extended)) == 20
    assert json.loads((extended / "results.json").read_text())["epochs"] == 20
    assert json.loads((extended / "config.json").read_text())["epochs"] == 20
    straight = tmp_path / "straight"
    cnnlab.api.train("lenet5", out=str(straight), quiet=True, **{**RECIPE, "epochs": 20})
    assert metric_rows(extended) == metric_rows(straight)
    resumed, reference = read_weights(extended / "model.safetensors"), read_weights(straight / "model.safetensors")
    assert resumed.keys() == reference.keys() and all(torch.equal(resumed[k], reference[k]) for k in reference)


def test_more_epochs_on_a_onecycle_run_say_why_not(capsys, tmp_path):
    # Refused from config.json alone, before any checkpoint is read: a config is all this test needs.
    run_dir = tmp_path / "onecycle"
    run_dir.mkdir()
    (run_dir / "config.json").write_text(json.dumps(saved_config(schedule="onecycle").to_dict()))
    assert one_line_error(capsys, "train", "lenet5", "--resume", run_dir, "--epochs", "20") == (
        "--epochs cannot grow on --resume of a run with the onecycle schedule: its learning rate was laid out over "
        "the run's original 10 epochs (only --schedule constant extends); start a new run with --epochs 20 instead"
    )


def test_the_api_passes_the_merged_config_on(finished_run, monkeypatch):
    seen = {}
    monkeypatch.setattr(cnnlab.api, "run", lambda config, **kwargs: seen.update(config=config, **kwargs) or {})
    cnnlab.api.train("lenet5", resume=finished_run, threads=2, quiet=True)
    saved = TrainConfig.from_dict(json.loads((finished_run / "config.json").read_text()))
    assert seen["config"] == TrainConfig(**{**saved.to_dict(), "threads": 2})
    assert seen["resume"] == finished_run and seen["quiet"] is True


# ------------------------------------------------------------------------------------------ finetune and compare
@pytest.mark.parametrize("flag", ["--small-input", "--no-small-input"])
def test_finetune_refuses_flags_that_cannot_apply(capsys, tmp_path, flag):
    assert one_line_error(capsys, "finetune", tmp_path / "source", flag) == (
        "--small-input does not apply to finetune: the architecture, stem included, is the source's own"
    )


def test_finetune_api_refuses_options_that_cannot_apply(tmp_path):
    from cnnlab.workflows.finetune import finetune

    for name, value in (("weights", "w.pth"), ("model_kwargs", {}), ("lr", 0.1)):
        with pytest.raises(CnnlabError, match=f"^--{name.replace('_', '-')} does not apply to finetune: "):
            finetune(tmp_path / "source", **{name: value})
    with pytest.raises(CnnlabError, match="unknown training option 'epoch'"):
        finetune(tmp_path / "source", epoch=1)


def test_compare_has_no_resume_or_weights(capsys):
    assert "unrecognized arguments: --weights" in one_line_error(capsys, "compare", "lenet5", "--weights", "w.pth")
    assert "unrecognized arguments: --resume" in one_line_error(capsys, "compare", "lenet5", "--resume", "r")
