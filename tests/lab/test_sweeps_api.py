"""GET /api/sweeps: the sweep folders under the runs root with their trials tables."""

from __future__ import annotations

import pytest

from cnnlab.rundir import SweepFolder, SweepSpec


def test_sweeps_lists_each_sweep_with_its_trials(tmp_path, make_client):
    root = tmp_path / "runs"
    folder = SweepFolder(root / "sweeps" / "lenet5")
    folder.path.mkdir(parents=True)
    folder.write_spec(SweepSpec("s1", "sqlite:///x.db", {"lr": "0.001:0.1:log"}, "sweep.csv", {"trials_wanted": 2}))
    rows = [
        {"number": 0, "state": "COMPLETE", "lr": 0.01, "val_accuracy": 0.93},
        {"number": 1, "state": "PRUNED", "lr": 1e-3, "val_accuracy": 0.4},
    ]
    folder.write_table(["number", "state", "lr", "val_accuracy"], rows)
    SweepFolder(root / "other").path.mkdir(parents=True)
    SweepFolder(root / "other").write_spec(SweepSpec("s2", "journal:j.log", {"batch_size": "32,64"}))
    response = make_client(root).get("/api/sweeps")
    assert response.status_code == 200
    first, second = response.json()
    assert first["path"] == "other" and first["trials"] == [] and first["study"] == "s2"
    assert second["path"] == "sweeps/lenet5" and second["space"] == {"lr": "0.001:0.1:log"}
    assert second["trials_wanted"] == 2
    assert second["trials"][1] == {"number": "1", "state": "PRUNED", "lr": "0.001", "val_accuracy": "0.4"}


def test_sweeps_give_the_best_trials_train_line_plots_and_job(tmp_path, make_client):
    root = tmp_path / "runs"
    folder = SweepFolder(root / "sweep-a")
    folder.path.mkdir(parents=True)
    extra = {"trials_wanted": 3, "model": "lenet5", "dataset": "digits", "fixed": {"epochs": 1, "train_subset": 200}}
    folder.write_spec(SweepSpec("a", "sqlite:///a.db", {"lr": "0.001:0.1:log"}, "sweep.csv", extra))
    rows = [
        {"number": 0, "state": "COMPLETE", "lr": 0.01, "val_accuracy": 0.81},
        {"number": 1, "state": "COMPLETE", "lr": 0.05, "val_accuracy": 0.9},
        {"number": 2, "state": "PRUNED", "lr": 0.002, "val_accuracy": 0.95},  # pruned: never the best
    ]
    folder.write_table(["number", "state", "lr", "val_accuracy"], rows)
    (folder.path / "history.html").write_text("<html></html>")
    (folder.path / "notes.html").write_text("<html></html>")  # not one of the sweep's plots
    (sweep,) = make_client(root).get("/api/sweeps").json()
    best_out = str((root / "sweep-a" / "best").resolve())
    assert sweep["best"] == {
        "number": "1",
        "val_accuracy": 0.9,
        "command": "cnnlab train lenet5 --dataset digits --epochs 1 --lr 0.05 --train-subset 200 --out " + best_out,
    }
    assert sweep["plots"] == ["/files/sweep-a/history.html"]
    assert sweep["model"] == "lenet5" and sweep["job"] is None and sweep["report"] is False


def sweep_body(**changes) -> dict:
    body = {
        "options": {"model": "lenet5", "dataset": "digits", "train_subset": 200, "epochs": 1},
        "params": [{"name": "lr", "low": 0.001, "high": 0.1, "log": True}],
        "trials": 2,
        "pruner": "median",
    }
    return {**body, **changes}


def test_a_sweep_job_runs_cnnlab_sweep_with_the_forms_options(tmp_path, make_client):
    root = tmp_path / "runs"
    client = make_client(root, max_jobs=0)  # queued, never started: the argv is what is checked
    body = sweep_body(
        params=[{"name": "lr", "low": 0.001, "high": 0.1, "log": True}, {"name": "batch_size", "choices": [16, 32]}]
    )
    response = client.post("/api/sweeps", json=body)
    assert response.status_code == 200, response.text
    created = response.json()
    assert created["run"].startswith("sweep-lenet5-digits-") and created["trials"] == 2
    (job,) = client.get("/api/jobs").json()
    assert job["kind"] == "sweep" and job["state"] == "queued" and job["label"] == "sweep lenet5 on digits"
    record = client.app.state.jobs.record(created["id"])
    argv = record["argv"][record["argv"].index("sweep") :]
    assert argv == [
        "sweep", "lenet5", "--dataset", "digits", "--epochs", "1", "--train-subset", "200",
        "--param", "lr=0.001:0.1:log", "batch_size=16,32", "--trials", "2", "--pruner", "median",
        "--out", str(root.resolve() / created["run"]),
    ]  # fmt: skip


def test_a_sweep_without_rows_on_fashion_mnist_searches_its_default_space(tmp_path, make_client):
    root = tmp_path / "runs"
    client = make_client(root, max_jobs=0)
    options = {"model": "lenet5", "dataset": "fashion-mnist", "epochs": 1, "lr": 0.05}
    response = client.post("/api/sweeps", json=sweep_body(options=options, params=[]))
    assert response.status_code == 200, response.text
    record = client.app.state.jobs.record(response.json()["id"])
    argv = record["argv"][record["argv"].index("--param") : record["argv"].index("--trials")]
    assert argv == ["--param", "weight_decay=1e-5:1e-3:log", "batch_size=64,128,256"]  # lr is fixed on the form


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        (
            {"params": [{"name": "colour", "low": 1, "high": 2}]},
            "param-0",
            "Parameter 'colour' cannot be searched; choose one of ",
        ),
        (
            {"params": [{"name": "lr", "low": 0.1, "high": 0.001}]},
            "param-0",
            "Learning rate: the range 0.1 to 0.001 is reversed or empty; low must be below high.",
        ),
        (
            {"params": [{"name": "weight_decay", "low": 0, "high": 0.01, "log": True}]},
            "param-0",
            "Weight decay: a log range needs a positive low bound, got 0.",
        ),
        (
            {"params": [{"name": "lr", "low": None, "high": 0.1}]},
            "param-0",
            "Learning rate: give a low and a high number, or a list of choices.",
        ),
        (
            {"params": [{"name": "lr", "choices": [0.01]}, {"name": "lr", "choices": [0.1]}]},
            "param-1",
            "Learning rate is searched twice; keep one row for it.",
        ),
        (
            {"params": [{"name": "epochs", "choices": [1, 2]}]},
            "param-0",
            "Epochs is searched and also set on the form; clear one.",
        ),
        (
            {"params": [{"name": "batch_size", "low": 0, "high": 8}]},
            "param-0",
            "Batch size: expected a positive whole number, got 0.",
        ),
        (
            {"params": []},  # on digits, which has no default search
            "params",
            "Add a parameter to search (for example lr from 0.001 to 0.1, log); on fashion-mnist the rows may stay "
            "empty: a default search is used there.",
        ),
        ({"trials": 0}, "trials", "Trials must be a whole number from 1 to 200, got '0'."),
        ({"trials": 201}, "trials", "Trials must be a whole number from 1 to 200, got '201'."),
        ({"pruner": "random"}, "pruner", "Pruner must be one of median, hyperband, none; got 'random'."),
        (
            {"options": {"model": "lenet5", "epochs": 10**9}},
            "epochs",
            "Epochs 1,000,000,000 is more than the lab runs (1,000 at most).",
        ),
        (
            {"options": {"model": "lenet6"}},
            "model",
            "Model 'lenet6' is not in the zoo; did you mean lenet5, alexnet, resnet56?",
        ),
    ],
)
def test_a_sweep_is_refused_at_its_field_before_it_starts(tmp_path, make_client, changes, field, message):
    root = tmp_path / "runs"
    client = make_client(root, max_jobs=0)
    response = client.post("/api/sweeps", json=sweep_body(**changes))
    assert response.status_code == 400, response.text
    assert response.json()["field"] == field and response.json()["error"].startswith(message), response.json()
    assert client.get("/api/jobs").json() == [] and [p.name for p in root.iterdir() if p.name != ".lab"] == []


def test_a_sweep_needs_the_forms_options_as_an_object(client):
    response = client.post("/api/sweeps", json=sweep_body(options=["lenet5"]))
    assert response.status_code == 400
    assert response.json() == {"error": "'options' must be a JSON object: the Train form's fields"}
