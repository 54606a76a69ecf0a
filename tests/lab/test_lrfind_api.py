"""POST /api/lr-find (an lr range test as a job, refused like a training job) and GET /api/lr-find/<run>."""

from __future__ import annotations

import math

from cnnlab.rundir import LrFindFolder


def test_find_lr_starts_cnnlab_lr_find_with_the_forms_options(tmp_path, make_client):
    root = tmp_path / "runs"
    client = make_client(root, max_jobs=0)  # queued, never started: the argv is what is checked
    form = {"model": "lenet5", "dataset": "digits", "train_subset": 200, "epochs": "", "lr": "0.05", "seed": 3}
    response = client.post("/api/lr-find", json=form)
    assert response.status_code == 200, response.text
    created = response.json()
    assert created["run"].startswith("lr-find-lenet5-digits-")
    record = client.app.state.jobs.record(created["id"])
    assert record["kind"] == "lr-find" and record["label"] == "lr find lenet5 on digits"
    argv = record["argv"][record["argv"].index("lr-find") :]
    # the lr itself is what the test looks for: `cnnlab lr-find` takes no --lr, so the form's is left out
    out = str(root.resolve() / created["run"])
    assert argv == ["lr-find", "lenet5", "--dataset", "digits", "--train-subset", "200", "--seed", "3", "--out", out]
    assert client.get(f"/api/jobs/{created['id']}").json()["state"] == "queued"


def test_find_lr_is_refused_at_the_forms_field_like_a_training_job(tmp_path, make_client):
    root = tmp_path / "runs"
    client = make_client(root, max_jobs=0)
    form = {"model": "lenet5", "dataset": "digits", "batch_size": 5000}
    refused = client.post("/api/lr-find", json=form)
    assert refused.status_code == 400
    assert refused.json() == client.post("/api/jobs", json=form).json()
    assert refused.json()["field"] == "batch_size" and refused.json()["error"].startswith("Batch size 5,000 is larger")
    assert client.post("/api/lr-find", json={"model": ""}).json() == {
        "error": "Model is empty: choose a model from the zoo, type a layer spec or pick one of your networks.",
        "field": "model",
    }
    assert client.post("/api/lr-find", json={"model": "lenet5", "out": "/tmp/x"}).json() == {
        "error": "'out' is set by the lab, not by a job"
    }
    assert client.post("/api/lr-find", content=b"[1]", headers={"Content-Type": "application/json"}).status_code == 400
    assert client.get("/api/jobs").json() == [] and [p.name for p in root.iterdir() if p.name != ".lab"] == []


def test_the_range_tests_record_is_served_with_json_safe_numbers(tmp_path, make_client):
    root = tmp_path / "runs"
    folder = LrFindFolder(root / "lr-find-a")
    folder.prepare(overwrite=False)
    record = {"suggestion": 0.0123, "rule": "steepest", "lrs": [1e-3, 1e-2, 1e-1], "smoothed": [2.3, 1.9, math.inf]}
    folder.write_record(record)
    client = make_client(root)
    found = client.get("/api/lr-find/lr-find-a").json()
    assert found["suggestion"] == 0.0123 and found["smoothed"] == [2.3, 1.9, None] and found["run"] == "lr-find-a"
    assert client.get("/api/lr-find/nothing-here").status_code == 404
    assert client.get("/api/lr-find/nothing-here").json() == {"error": "'nothing-here' holds no lr range test (yet)"}
    assert client.get("/api/lr-find/..%2F..%2Fetc").status_code in (400, 404)
