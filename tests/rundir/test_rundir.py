"""cnnlab.rundir: every file of a run directory read and written through one schema each. The fixture folder
tests/fixtures/rundir_v0 was written by cnnlab before the package existed; every reader must still load it."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from cnnlab.errors import CnnlabError, NotARunDirectory, RunFileError, RunFileMissing
from cnnlab.rundir import (
    ExperimentConfig,
    ExperimentFolder,
    JobRecord,
    Results,
    RunConfig,
    RunDir,
    SweepFolder,
    SweepSpec,
    append_event,
    open_folder,
    open_run,
    read_events,
    read_job,
    read_jobs,
    write_job,
)

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "rundir_v0"
RUN, EXPERIMENT, JOBS = FIXTURE / "lenet5-digits", FIXTURE / "experiment-kernels", FIXTURE / ".lab" / "jobs"


@pytest.fixture
def old_run(tmp_path) -> RunDir:
    return RunDir(shutil.copytree(RUN, tmp_path / "run"))


# ------------------------------------------------------------------------------------ the old format loads
def test_every_reader_loads_the_old_run():
    run = open_run(RUN)
    config = run.read_config()
    assert (config.model, config.dataset, config.epochs) == ("lenet5", "digits", 2)
    assert config.data.classes == tuple("0123456789") and (config.data.in_chans, config.data.image_size) == (1, 28)
    assert config.versions["cnnlab"] == "0.1.0"
    train = config.train_config()
    assert (train.lr, train.train_subset, train.optimizer) == (0.003, 200, "adamw")
    results = run.read_results()
    assert (results.status, results.values["test_accuracy"]) == ("completed", pytest.approx(0.35555556416511536))
    rows = run.read_metrics()
    assert [row["epoch"] for row in rows] == [1, 2] and isinstance(rows[0]["epoch"], int)
    assert rows[1]["val_accuracy"] == pytest.approx(0.5)
    evaluation = run.read_evaluation()
    assert evaluation.test_accuracy == pytest.approx(0.35555556416511536)
    assert len(evaluation.values["confusion_matrix"]) == 10
    events = run.read_events()
    assert [e["event"] for e in events][:2] == ["start", "epoch_start"] and events[-1]["event"] == "finish"


def test_the_old_experiment_and_job_record_load():
    experiment = open_folder(EXPERIMENT)
    assert isinstance(experiment, ExperimentFolder) and experiment.has_results()
    config = experiment.read_config()
    assert config.title.startswith("Kernel sizes") and config.plots == ("kernels.png",)
    assert config.options["quick"] is True and config.experiment["channels"] == 64
    assert experiment.read_results_md().startswith("# Kernel sizes")
    (record,) = read_jobs(JOBS)
    assert (record.id, record.kind, record.run, record.values["returncode"]) == (
        "20260101-000000-abcdef",
        "train",
        "lenet5-digits",
        0,
    )


@pytest.mark.parametrize(
    "path, schema",
    [
        (RUN / "config.json", RunConfig),
        (RUN / "results.json", Results),
        (EXPERIMENT / "config.json", ExperimentConfig),
    ],
)
def test_old_files_round_trip_byte_for_byte(path, schema):
    """from_dict then to_dict gives the file back as cnnlab wrote it: named keys in their order, the rest kept."""
    text = path.read_text()
    assert json.dumps(schema.from_dict(json.loads(text)).to_dict(), indent=2) + "\n" == text


def test_rewritten_old_files_are_the_same_bytes(old_run):
    before = {name: (old_run.path / name).read_bytes() for name in ("config.json", "results.json", "eval.json")}
    old_run.write_config(old_run.read_config())
    old_run.write_results(old_run.read_results())
    old_run.write_evaluation(old_run.read_evaluation())
    assert {name: (old_run.path / name).read_bytes() for name in before} == before
    rows = old_run.read_metrics()
    old_run.write_metrics(rows)
    assert old_run.read_metrics() == rows


# ------------------------------------------------------------------------------------------------ round trips
def test_unknown_keys_are_kept_through_an_update(old_run):
    raw = json.loads((old_run.path / "config.json").read_text())
    (old_run.path / "config.json").write_text(json.dumps({**raw, "from_a_newer_cnnlab": [1, 2]}))
    updated = old_run.update_config(epochs=5)
    saved = json.loads((old_run.path / "config.json").read_text())
    assert (updated.epochs, saved["epochs"], saved["from_a_newer_cnnlab"]) == (5, 5, [1, 2])
    assert saved["data"] == raw["data"] and list(saved)[:3] == ["model", "dataset", "data_dir"]


def test_results_update_and_a_record_without_model_gives_its_status(tmp_path):
    run = RunDir(tmp_path)
    run.write_results({"model": "lenet5", "dataset": "digits", "status": "completed", "test_accuracy": 0.5})
    assert run.update_results(wall_seconds=1.5).values == {
        "status": "completed",
        "test_accuracy": 0.5,
        "wall_seconds": 1.5,
    }
    assert json.loads((tmp_path / "results.json").read_text())["wall_seconds"] == 1.5
    (tmp_path / "results.json").write_text('{"status": "failed"}')
    results = run.read_results()
    assert (results.status, results.names_a_run, results.to_dict()) == ("failed", False, {"status": "failed"})


def test_job_record_and_sweep_spec_round_trip(tmp_path):
    record = {"id": "1-a", "kind": "train", "argv": ["x"], "run_dir": "/r", "run": "r", "created": 3.0, "pid": 7}
    write_job(tmp_path / "1-a.json", record)
    assert read_job(tmp_path / "1-a.json") == JobRecord("1-a", "train", ("x",), "/r", "r", {"created": 3.0, "pid": 7})
    assert read_job(tmp_path / "1-a.json").to_dict() == record
    (tmp_path / "stray.json").write_text("[1, 2]")  # not a job: skipped
    assert [r.id for r in read_jobs(tmp_path)] == ["1-a"]
    sweep = SweepFolder(tmp_path / "sweep")
    sweep.path.mkdir()
    spec = SweepSpec("lr-search", "sqlite:///sweep.db", {"lr": {"low": 1e-4, "high": 1e-1, "log": True}})
    sweep.write_spec(spec)
    assert sweep.read_spec() == spec and sweep.trials_table == sweep.path / "trials.csv"


def test_a_schema_names_the_missing_or_mistyped_field(tmp_path):
    with pytest.raises(RunFileError, match=r"config.json has no 'dataset'$"):
        RunConfig.from_dict({"model": "lenet5"}, tmp_path / "config.json")
    with pytest.raises(RunFileError, match=r"has 'in_chans' as str, not a whole number"):
        RunConfig.from_dict(
            {
                "model": "m",
                "dataset": "d",
                "data": {**json.loads(RUN.joinpath("config.json").read_text())["data"], "in_chans": "1"},
            }
        )
    with pytest.raises(RunFileMissing) as missing:
        RunDir(tmp_path).read_results()
    assert str(missing.value) == f"{tmp_path / 'results.json'} does not exist"
    (tmp_path / "metrics.csv").write_text("epoch,train_loss\n1,oops\n")
    with pytest.raises(RunFileError, match="line 2 holds a cell that is not a number"):
        RunDir(tmp_path).read_metrics()


# ---------------------------------------------------------------------------------------------- atomic writes
def test_a_crash_mid_write_leaves_the_old_file(old_run, monkeypatch):
    before = {name: (old_run.path / name).read_bytes() for name in ("config.json", "results.json", "metrics.csv")}

    def crash(source, target):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(CnnlabError, match="No space left on device"):
        old_run.update_config(epochs=9)
    with pytest.raises(CnnlabError):
        old_run.update_results(status="failed")
    with pytest.raises(CnnlabError):
        old_run.write_metrics([{"epoch": 1, "train_loss": 0.1}])
    monkeypatch.undo()
    assert {name: (old_run.path / name).read_bytes() for name in before} == before
    assert not list(old_run.path.glob(".*.tmp-*"))  # the temp files were removed


# -------------------------------------------------------------------------------------------- progress events
def test_a_half_written_progress_line_is_skipped(tmp_path):
    path = tmp_path / "progress.jsonl"
    append_event(path, {"event": "start", "t": 1.0, "header": "h"})
    append_event(path, {"event": "step", "t": 2.0, "loss": float("nan")})
    with open(path, "a") as handle:
        handle.write('{"event": "step", "t": 3.0, "lo')  # the writer was cut off mid-line
    events = read_events(path)
    assert [e["event"] for e in events] == ["start", "step"] and events[1]["loss"] != events[1]["loss"]  # NaN
    assert read_events(tmp_path / "none.jsonl") == []


# ------------------------------------------------------------------------------------------ what is no run
def test_a_folder_that_holds_no_run_is_refused_with_its_reason(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "file").write_text("x")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("{not json")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "config.json").write_text('{"name": "something else"}')
    reasons = {}
    for name in ("missing", "empty", "file", "broken", "other"):
        with pytest.raises(NotARunDirectory) as refused:
            open_run(tmp_path / name)
        assert refused.value.path == tmp_path / name and str(refused.value).startswith(f"run directory {tmp_path}")
        reasons[name] = refused.value.reason
    assert reasons["missing"] == "does not exist"
    assert reasons["empty"] == "holds no config.json (not a cnnlab run)"
    assert reasons["file"] == "is a file, not a folder"
    assert reasons["broken"].startswith("has a config.json that is not a run's: it is not valid JSON")
    assert reasons["other"] == "has a config.json that is not a run's: it has no 'model'"
    with pytest.raises(NotARunDirectory) as experiment:
        open_run(EXPERIMENT)
    assert experiment.value.reason == "is an experiment's folder, not a training run"
    with pytest.raises(NotARunDirectory):
        open_folder(tmp_path / "other")  # neither kind
    assert isinstance(open_folder(RUN), RunDir)


def test_cli_eval_refuses_an_experiment_folder_in_one_line(capsys):
    from cnnlab.cli import main

    assert main(["eval", str(EXPERIMENT)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"cnnlab: error: run directory {EXPERIMENT} is an experiment's folder, not a training run"
