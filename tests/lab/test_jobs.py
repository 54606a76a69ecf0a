"""Jobs: records on disk, states worked out from the process table and the run directory (so a restarted server
sees the same jobs), the one-at-a-time queue, and real `cnnlab train` jobs followed through the API."""

import io
import json
import subprocess
import sys
import threading
import time
import warnings

import pytest
from PIL import Image

from cnnlab.lab.follow import read_events, summarize_events
from cnnlab.lab.jobs import JobStore, _command_line


def write_record(store: JobStore, job_id: str, run_dir, **fields) -> None:
    store.folder.mkdir(parents=True, exist_ok=True)
    record = {
        "id": job_id,
        "kind": "train",
        "argv": [],
        "run_dir": str(run_dir),
        "run": run_dir.name,
        "created": 0,
        **fields,
    }
    (store.folder / f"{job_id}.json").write_text(json.dumps(record))


def test_states_after_a_server_restart(tmp_path, make_client):
    """A server that never started these jobs reads them from disk: alive -> running, dead without results ->
    stopped and interrupted (resumable with a checkpoint), dead with results.json -> its status."""
    root = tmp_path / "runs"
    store = JobStore(root)
    alive_dir, dead_dir, done_dir, failed_dir = (root / n for n in ("alive", "dead", "done", "failed"))
    for folder in (alive_dir, dead_dir, done_dir, failed_dir):
        folder.mkdir(parents=True)
    (dead_dir / "checkpoints").mkdir()
    (dead_dir / "checkpoints" / "latest").write_text("step-1")
    (done_dir / "results.json").write_text(json.dumps({"status": "completed"}))
    (failed_dir / "results.json").write_text(json.dumps({"status": "failed"}))
    # a stand-in training process whose command line names its run directory, as `cnnlab train --out DIR` does
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", str(alive_dir)])
    finished = subprocess.run([sys.executable, "-c", "pass"])  # a pid that has ended
    try:
        write_record(store, "1-alive", alive_dir, pid=sleeper.pid)
        write_record(store, "2-dead", dead_dir, pid=999_999_999)
        write_record(store, "3-done", done_dir, pid=999_999_999)
        write_record(store, "4-failed", failed_dir, pid=999_999_999)
        write_record(store, "5-exit0", done_dir, pid=999_999_999, returncode=0)
        write_record(store, "6-sigterm", dead_dir, pid=999_999_999, returncode=143)
        client = make_client(root)
        states = {j["id"]: (j["state"], j["interrupted"], j["resumable"]) for j in client.get("/api/jobs").json()}
        assert states == {
            "1-alive": ("running", False, False),
            "2-dead": ("stopped", True, True),
            "3-done": ("finished", False, False),
            "4-failed": ("failed", False, False),
            "5-exit0": ("finished", False, False),
            "6-sigterm": ("stopped", False, True),
        }
        assert client.post("/api/jobs/3-done/stop").status_code == 409
        assert client.post("/api/jobs/1-alive/stop").json()["state"] in ("running", "stopped")
        assert sleeper.wait(timeout=10) == -15  # the stop sent SIGTERM
        assert (
            client.get("/api/jobs/1-alive").json()["state"],
            client.get("/api/jobs/1-alive").json()["interrupted"],
        ) == ("stopped", False)
    finally:
        sleeper.kill()
    assert finished.returncode == 0


def test_a_reused_pid_is_not_the_job(tmp_path):
    store = JobStore(tmp_path)
    run_dir = tmp_path / "run"
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        write_record(store, "x", run_dir, pid=other.pid)
        assert store.state(store.record("x")) == ("stopped", True)
    finally:
        other.kill()


def test_a_command_line_read_mid_exec_is_read_again_until_it_settles(tmp_path):
    """Right after exec, /proc/PID/cmdline reads empty for a moment (139 of 300 fresh sleepers on a loaded 2-core
    machine): the job is alive and must not show as stopped."""
    proc = tmp_path / "proc"
    proc.mkdir()
    (proc / "cmdline").write_bytes(b"")
    fill = threading.Timer(0.2, lambda: (proc / "cmdline").write_bytes(b"python\0-m\0cnnlab\0/runs/a\0"))
    fill.start()
    try:
        assert "/runs/a" in _command_line(proc)
    finally:
        fill.join()
    (proc / "cmdline").write_bytes(b"")
    started = time.monotonic()
    assert _command_line(proc, settle_s=0.3) == ""  # one that stays empty: the wait ends
    assert time.monotonic() - started < 2


def test_a_kernel_thread_with_a_reused_pid_is_not_the_job_and_costs_no_wait():
    from pathlib import Path

    from cnnlab.lab.jobs import PF_KTHREAD, process_alive

    def is_kernel_thread(stat: Path) -> bool:
        try:
            return bool(int(stat.read_text().rsplit(")", 1)[1].split()[6]) & PF_KTHREAD)
        except (OSError, IndexError, ValueError):
            return False

    threads = [int(stat.parent.name) for stat in Path("/proc").glob("[0-9]*/stat") if is_kernel_thread(stat)]
    if not threads:
        pytest.skip("no kernel thread is visible in /proc here (a container's own pid namespace)")
    started = time.monotonic()
    assert process_alive(threads[0], "") is False  # "" is in every command line: only the flag can say no
    assert time.monotonic() - started < 1


def test_queue_starts_one_job_at_a_time(tmp_path, monkeypatch):
    """With a job running, the next waits as queued; the oldest queued starts when the runner's slot frees."""
    store = JobStore(tmp_path)
    started = []
    monkeypatch.setattr(
        store,
        "_start",
        lambda record: started.append(record["id"]) or store._update(record["id"], pid=1, returncode=None),
    )
    monkeypatch.setattr("cnnlab.lab.jobs.process_alive", lambda pid, marker: pid == 1)
    first = store.submit("train", ["train", "lenet5"], tmp_path / "a")
    second = store.submit("train", ["train", "lenet5"], tmp_path / "b")
    assert started == [first["id"]] and store.state(store.record(second["id"]))[0] == "queued"
    assert store.stop(second["id"])["cancelled"]  # a queued job is cancelled without a process
    third = store.submit("train", ["train", "lenet5"], tmp_path / "c")
    store._update(first["id"], returncode=0)
    store.advance()
    assert started == [first["id"], third["id"]]
    assert [store.state(r)[0] for r in store.records()] == ["finished", "stopped", "running"]


def test_progress_events_are_summarised_and_a_resumed_step_replaces_the_old_one():
    events = [
        {"event": "epoch_start", "epoch": 1},
        *(
            {
                "event": "step",
                "global_step": s,
                "loss": 1 / s,
                "accuracy": s / 10,
                "epoch": 1,
                "step": s,
                "steps": 4,
                "epochs": 2,
                "eta_seconds": 4 - s,
            }
            for s in (1, 2, 3)
        ),
        {"event": "step", "global_step": 3, "loss": 0.5, "accuracy": 0.5, "eta_seconds": 1},  # after a resume
        {"event": "epoch", "t": 5, "epoch": 1, "val_accuracy": 0.7},
    ]
    summary = summarize_events(events)
    assert summary["steps"] == [[1, 1.0, 0.1], [2, 0.5, 0.2], [3, 0.5, 0.5]]
    assert summary["epochs"] == [{"epoch": 1, "val_accuracy": 0.7}]
    assert summary["latest"]["loss"] == 0.5


# ------------------------------------------------------------------------------------------- real training jobs
def wait_for(client, job_id, states, timeout=240, until=None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        view = client.get(f"/api/jobs/{job_id}").json()
        if view["state"] in states or (until is not None and until(view)):
            return view
        time.sleep(0.3)
    raise AssertionError(f"job {job_id} still {view['state']} after {timeout}s: {view['log']}")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One finished 2-epoch LeNet-5 run on digits, started through the API and followed over SSE."""
    from cnnlab.lab import create_app

    with warnings.catch_warnings():  # newer Starlette warns that its TestClient will move to httpx2
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    root = tmp_path_factory.mktemp("lab") / "runs"
    client = TestClient(create_app(root), base_url="http://127.0.0.1:8000")
    created = client.post(
        "/api/jobs", json={"model": "lenet5", "dataset": "digits", "epochs": 2, "train_subset": 600, "threads": 1}
    ).json()
    views = []
    with client.stream("GET", f"/api/jobs/{created['id']}/events") as stream:
        for line in stream.iter_lines():
            if line.startswith("data: ") and line != "data: {}":
                views.append(json.loads(line[6:]))
    return client, created, views


@pytest.mark.slow
def test_a_training_job_streams_its_progress_and_finishes(trained):
    client, created, views = trained
    assert created["run"].startswith("lenet5-digits-")
    assert views[-1]["state"] == "finished"
    # the results.json says finished as the process exits; the server's reaper then records the exit status
    assert wait_for(client, created["id"], (), until=lambda v: v["returncode"] is not None)["returncode"] == 0
    assert "running" in [v["state"] for v in views]
    progress = views[-1]["progress"]
    assert [e["epoch"] for e in progress["epochs"]] == [1, 2]
    assert progress["steps"][-1][0] == progress["latest"]["total_steps"] == 2 * (540 // 64)
    points = [len(v["progress"]["steps"]) for v in views]
    assert points == sorted(points) and points[-1] > points[0]  # the curve only gains points
    results = json.loads((client.app.state.root / created["run"] / "results.json").read_text())
    board = client.get("/api/runs").json()
    assert [(r["name"], r["test_accuracy"]) for r in board] == [(created["run"], results["test_accuracy"])]
    detail = client.get(f"/api/runs/{created['run']}").json()
    assert [m["epoch"] for m in detail["metrics"]] == [1, 2] and detail["image"] == 28 and detail["in_chans"] == 1


@pytest.mark.slow
def test_predict_on_a_test_image_and_an_upload(trained):
    client, created, _ = trained
    run = created["run"]
    body = client.post("/api/predict", data={"run": run, "test_index": "5", "top_k": "3"}).json()
    probabilities = [t["probability"] for t in body["top"]]
    assert (
        len(probabilities) == 3
        and probabilities == sorted(probabilities, reverse=True)
        and sum(probabilities) <= 1.0001
    )
    assert body["truth"] in [str(d) for d in range(10)]
    for key in ("input", "gradcam", "saliency"):
        png = client.get(body[key])
        assert png.status_code == 200 and png.content[:8] == b"\x89PNG\r\n\x1a\n"
    assert [m["layer"] for m in body["feature_maps"]] and body["feature_maps"][0]["shape"][0] == 6  # conv1: 6 maps
    assert body["filters"]["layer"] == "conv1" and body["filters"]["shape"] == [6, 1, 5, 5]
    test_png = client.get(f"/api/test-image?run={run}&index=5")
    assert Image.open(io.BytesIO(test_png.content)).size == (28, 28) and test_png.headers["x-class"] == body["truth"]
    upload = client.post(
        "/api/predict", data={"run": run}, files={"image": ("five.png", test_png.content, "image/png")}
    ).json()
    assert upload["top"][0] == body["top"][0]  # the same pixels, the same answer
    not_image = client.post("/api/predict", data={"run": run}, files={"image": ("x.png", b"hello", "image/png")})
    assert not_image.status_code == 400 and "not an image" in not_image.json()["error"]
    assert client.get(f"/api/test-image?run={run}&index=100000").status_code == 404


@pytest.mark.slow
def test_evaluate_writes_the_confusion_matrix_and_misclassified_grid(trained, monkeypatch):
    from cnnlab.inference import evaluation, prediction

    client, created, _ = trained
    passes = []
    counted = lambda *a, **k: passes.append(1) or evaluation.evaluate_arrays(*a, **k)  # noqa: E731
    monkeypatch.setattr(prediction, "evaluate_arrays", counted)
    body = client.post(f"/api/runs/{created['run']}/evaluate").json()
    assert len(passes) == 1  # one pass over the test set: the grid reuses evaluate's predictions
    assert len(body["per_class_accuracy"]) == 10
    assert sum(map(sum, body["confusion_matrix"])) == 360  # the digits test split
    wrong = 360 - sum(body["confusion_matrix"][i][i] for i in range(10))
    assert body["misclassified"] == min(wrong, 24)
    from cnnlab.data import load_dataset

    listed = client.get(f"/api/runs/{created['run']}").json()["evaluation"]["misclassified"]  # eval.json's list
    labels = load_dataset("digits").test_labels
    assert len(listed) == wrong and all(guess != int(labels[index]) for index, guess in listed)
    assert client.get(f"/files/{created['run']}/confusion.png").content[:4] == b"\x89PNG"
    assert set(client.get(f"/api/runs/{created['run']}").json()["files"]) >= {"eval.json", "confusion.png"}


@pytest.mark.slow
def test_stop_saves_a_checkpoint_and_resume_finishes(trained):
    client, _, _ = trained
    created = client.post(
        "/api/jobs", json={"model": "lenet5", "epochs": 40, "batch_size": 32, "train_subset": 640, "threads": 1}
    ).json()
    wait_for(client, created["id"], ("finished", "failed"), until=lambda v: v["progress"]["steps"])
    busy = client.post("/api/jobs", json={"resume": created["run"]})
    assert busy.status_code == 409 and "already running" in busy.json()["error"]
    client.post(f"/api/jobs/{created['id']}/stop")
    stopped = wait_for(client, created["id"], ("stopped", "failed", "finished"))
    assert stopped["state"] == "stopped" and not stopped["interrupted"] and stopped["resumable"], stopped["log"]
    status = json.loads((client.app.state.root / created["run"] / "results.json").read_text())["status"]
    assert status == "interrupted"
    resumed = client.post("/api/jobs", json={"resume": created["run"]}).json()
    assert resumed["run"] == created["run"]
    done = wait_for(client, resumed["id"], ("finished", "failed", "stopped"))
    assert done["state"] == "finished", done["log"]
    assert [e["epoch"] for e in done["progress"]["epochs"]] == list(range(1, 41))
    assert json.loads((client.app.state.root / created["run"] / "results.json").read_text())["status"] == "completed"


@pytest.mark.slow
def test_a_quick_experiment_job_and_its_rendered_results(trained):
    client, _, _ = trained
    created = client.post("/api/jobs", json={"experiment": "kernels", "quick": True}).json()
    assert created["run"].startswith("experiment-kernels-")
    done = wait_for(client, created["id"], ("finished", "failed", "stopped"))
    assert done["state"] == "finished" and done["kind"] == "experiment", done["log"]
    past = client.get("/api/experiments").json()["results"]
    assert [r["name"] for r in past] == [created["run"]] and past[0]["plots"] == ["kernels.png"]
    html = client.get("/api/experiments/results", params={"name": created["run"]}).text
    assert "<td>25C^2 = 102,400</td>" in html  # one 5x5 conv at C=64: 25 * 64^2 weights
    assert f'src="/files/{created["run"]}/kernels.png"' in html
    assert client.get(f"/files/{created['run']}/kernels.png").content[:4] == b"\x89PNG"


@pytest.mark.slow
def test_export_writes_an_onnx_file_to_download(trained):
    pytest.importorskip("onnx", reason="ONNX export needs the export extra")
    client, created, _ = trained
    body = client.post(f"/api/runs/{created['run']}/export").json()
    assert body == {"file": f"/files/{created['run']}/model.onnx"}
    import onnx

    model = onnx.load_from_string(client.get(body["file"]).content)
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims[1:] == [1, 28, 28]  # one grey channel at the digits' 28x28, batch dynamic


@pytest.mark.slow
def test_an_experiment_job_over_seeds_shows_the_mean_and_std_table(trained):
    client, _, _ = trained
    created = client.post(
        "/api/jobs",
        json={"experiment": "degradation", "quick": True, "repeats": 2, "epochs": 1, "models": "plain8,resnet8"},
    ).json()  # the smallest twins: the test is about the seeds' table, not the networks'
    done = wait_for(client, created["id"], ("finished", "failed", "stopped"))
    assert done["state"] == "finished", done["log"]
    folder = client.app.state.root / created["run"]
    assert sorted(p.name for p in folder.glob("seed-*")) == ["seed-0", "seed-1"]
    html = client.get("/api/experiments/results", params={"name": created["run"]}).text
    assert "(2 seeds)" in html and " ± " in html and "n=2" in html
    assert f'src="/files/{created["run"]}/seeds_band.png"' in html


# ------------------------------------------------------------------------------- names, cancel, clear, delete
def test_fifty_identical_submissions_get_fifty_jobs(tmp_path, make_client):
    """Fired at once from 50 threads, the same job gets 50 run folders (reserved by mkdir at submission), each job
    queued; none is refused as 'already running' because its name collided with another's."""
    from concurrent.futures import ThreadPoolExecutor

    client = make_client(tmp_path / "runs", max_jobs=0)  # every job stays queued: no process starts
    body = {"model": "lenet5", "dataset": "digits", "epochs": 1}
    with ThreadPoolExecutor(max_workers=50) as pool:
        responses = list(pool.map(lambda _: client.post("/api/jobs", json=body), range(50)))
    try:
        assert [r.status_code for r in responses] == [200] * 50, [r.json() for r in responses if r.status_code != 200]
        created = [r.json() for r in responses]
        assert len({c["id"] for c in created}) == 50 and len({c["run"] for c in created}) == 50
        jobs = client.get("/api/jobs").json()
        assert sorted(j["id"] for j in jobs) == sorted(c["id"] for c in created)
        assert {j["state"] for j in jobs} == {"queued"}
        assert all((client.app.state.root / c["run"]).is_dir() for c in created)
    finally:
        for job in client.get("/api/jobs").json():
            client.post(f"/api/jobs/{job['id']}/stop")
    assert {(j["state"], j["cancelled"]) for j in client.get("/api/jobs").json()} == {("stopped", True)}
    assert [p.name for p in client.app.state.root.iterdir()] == [".lab"]  # the cancelled jobs' empty folders went


def test_record_changes_from_two_threads_are_both_kept(tmp_path, monkeypatch):
    """The reaper's exit code and a stop request land on one record from two threads. Each thread pauses between
    reading the record and writing it back (a barrier that times out when the lock keeps the other thread out):
    without the lock both read the old record and the second write drops the first one's change."""
    import threading

    store = JobStore(tmp_path)
    write_record(store, "j", tmp_path / "run", pid=1)
    barrier = threading.Barrier(2, timeout=0.5)
    read = store.record

    def slow_record(job_id):
        record = read(job_id)
        try:
            barrier.wait()
        except threading.BrokenBarrierError:  # the other thread waits for the lock: that is the point
            pass
        return record

    monkeypatch.setattr(store, "record", slow_record)
    threads = [
        threading.Thread(target=store._update, args=("j",), kwargs={"returncode": 143}),
        threading.Thread(target=store._update, args=("j",), kwargs={"stop_requested": True}),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    record = read("j")
    assert (record.get("returncode"), record.get("stop_requested")) == (143, True)


def test_cancel_a_queued_job_then_clear_the_finished_ones(tmp_path, make_client):
    """Cancel: a queued job becomes stopped and cancelled. Clear: the records and logs of finished, failed and
    stopped jobs go; queued ones stay; no run folder is touched."""
    root = tmp_path / "runs"
    client = make_client(root, max_jobs=0)
    store = client.app.state.jobs
    done_dir = root / "done"
    done_dir.mkdir(parents=True)
    (done_dir / "results.json").write_text(json.dumps({"status": "completed", "test_accuracy": 0.9}))
    write_record(store, "1-done", done_dir, pid=999_999_999, returncode=0)
    write_record(store, "2-failed", done_dir, pid=999_999_999, returncode=1)
    (store.folder / "1-done.log").write_text("epoch 1/1\n")
    queued = client.post("/api/jobs", json={"model": "lenet5", "epochs": 1}).json()
    kept = client.post("/api/jobs", json={"model": "lenet5", "epochs": 1}).json()
    cancelled = client.post(f"/api/jobs/{queued['id']}/stop").json()
    assert (cancelled["state"], cancelled["cancelled"]) == ("stopped", True)
    assert client.get("/api/jobs/1-done").json()["results"]["test_accuracy"] == 0.9

    cleared = client.post("/api/jobs/clear").json()["cleared"]
    assert sorted(cleared) == sorted(["1-done", "2-failed", queued["id"]])
    assert [j["id"] for j in client.get("/api/jobs").json()] == [kept["id"]]
    assert sorted(p.name for p in store.folder.iterdir() if p.name != ".lock") == [f"{kept['id']}.json"]
    assert (done_dir / "results.json").is_file() and (root / kept["run"]).is_dir()
    assert client.get("/api/jobs/1-done").status_code == 404
    client.post(f"/api/jobs/{kept['id']}/stop")


def make_run(folder):
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"model": "lenet5", "dataset": "digits"}))
    (folder / "results.json").write_text(json.dumps({"status": "completed", "test_accuracy": 0.5}))


def test_delete_a_run_and_what_cannot_be_deleted(tmp_path, make_client):
    """Only a real run folder inside the root goes; symlinks (in or out), the root, the lab's folder, paths out and
    runs a queued job writes (or writes inside) are refused, and nothing they point at is touched."""
    from cnnlab.lab.security import LabRequestError
    from cnnlab.lab.views import deletable_run_dir

    root = tmp_path / "runs"
    outside = tmp_path / "outside-run"
    for folder in (root / "a", root / "b", root / "busy", root / "group", outside):
        make_run(folder)
    make_run(root / "group" / "inner")  # an experiment's folder holds runs
    (root / "link-to-b").symlink_to(root / "b")
    (root / "link-out").symlink_to(outside)
    (root / "config.json").write_text("{}")  # a root that looks like a run is still the root
    (root / ".lab").mkdir()
    (root / ".lab" / "config.json").write_text("{}")
    client = make_client(root, max_jobs=0)
    busy = client.post("/api/jobs", json={"resume": "busy"})
    assert busy.status_code == 409  # no checkpoint; record a queued job on it by hand instead
    write_record(client.app.state.jobs, "q", root / "busy")
    write_record(client.app.state.jobs, "q2", root / "group" / "inner")

    assert client.delete("/api/runs/a").json() == {"deleted": "a"} and not (root / "a").exists()
    refused = {
        name: client.delete(f"/api/runs/{name}").status_code
        for name in ("a", "no-such", ".lab", "../outside-run", "link-to-b", "link-out", "busy", "group")
    }
    assert refused == {
        "a": 404,
        "no-such": 404,
        ".lab": 403,
        "../outside-run": 404,  # the client normalises the URL; the server sees /api/outside-run
        "link-to-b": 400,
        "link-out": 403,
        "busy": 409,
        "group": 409,  # a job writes a run inside it
    }
    assert client.delete("/api/runs/%2E%2E/outside-run").status_code == 400
    assert (root / "b" / "config.json").is_file() and (outside / "config.json").is_file()
    assert (root / "busy" / "config.json").is_file() and (root / "group" / "inner" / "config.json").is_file()
    with pytest.raises(LabRequestError) as root_itself:
        deletable_run_dir(root, ".")  # a URL would normalise "." away
    assert root_itself.value.status == 400 and root.is_dir()


def test_a_short_run_logs_a_point_per_step(tmp_path, monkeypatch):
    """Two epochs of 12 steps written in well under the 0.5 s interval: every step is a point, as the grid of
    400 points covers a 24-step run one step each; a 10,000-step run keeps about 400."""
    from cnnlab.engine.progress import ProgressLog

    short = ProgressLog(str(tmp_path / "short.jsonl"))
    for epoch in (1, 2):
        short.epoch(epoch, 2, 12, 0)
        for _ in range(12):
            short.step(1.0, 0.5, 100.0)
    points = summarize_events(read_events(tmp_path / "short.jsonl"))["steps"]
    assert [p[0] for p in points] == list(range(1, 25))

    monkeypatch.setattr("cnnlab.engine.progress.time.time", lambda: 1000.0)  # no time passes: only the grid
    long = ProgressLog(str(tmp_path / "long.jsonl"))
    long.epoch(1, 1, 10_000, 0)
    for _ in range(10_000):
        long.step(1.0, 0.5, 100.0)
    steps = [e["global_step"] for e in read_events(tmp_path / "long.jsonl") if e["event"] == "step"]
    assert steps == [1, *range(25, 10_001, 25)]  # the first step (nothing written yet), then the grid
