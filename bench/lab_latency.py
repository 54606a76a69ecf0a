"""`cnnlab lab` responsiveness: page and API latency, idle and while a training job keeps every core busy.

The lab runs as users run it (`python -m cnnlab lab` in its own process, uvicorn), over a fresh runs folder. A tiny
LeNet-5 run is trained first so the run pages have something to show. Then each URL is requested `requests` times
in turn (a new HTTP connection each, as a page's fetches may be), once with nothing training and once, for at least
30 s, while a ResNet-20 job trains on digits with torch's default threads (all cores), started through POST
/api/jobs. Reported: p50 and p95 per URL and phase, and the job's images/s while it served them.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from bench.common import markdown, write


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


TOKEN = secrets.token_urlsafe(16)  # the lab asks for one even on loopback; every request here carries it


def request(base: str, path: str, body: dict | None = None) -> tuple[float, bytes]:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Authorization": f"Bearer {TOKEN}", **({"Content-Type": "application/json"} if data else {})}
    start = time.perf_counter()
    with urllib.request.urlopen(urllib.request.Request(base + path, data=data, headers=headers), timeout=120) as reply:
        content = reply.read()
    return time.perf_counter() - start, content


def job(base: str, job_id: str) -> dict:
    return json.loads(request(base, f"/api/jobs/{job_id}")[1])


def wait_until(base: str, job_id: str, done, timeout: float = 900) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        view = job(base, job_id)
        if done(view):
            return view
        time.sleep(0.5)
    raise RuntimeError(f"job {job_id} did not get there in {timeout}s: {view['state']}, {view['log'][-3:]}")


def measure(base: str, paths: list[str], requests: int, min_seconds: float = 0.0) -> dict[str, list[float]]:
    """Round-robin over the URLs (a load spike touches each alike), `requests` rounds and at least `min_seconds`."""
    samples: dict[str, list[float]] = {path: [] for path in paths}
    start = time.perf_counter()
    while len(samples[paths[0]]) < requests or time.perf_counter() - start < min_seconds:
        for path in paths:
            samples[path].append(request(base, path)[0])
    return samples


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def start_lab(root: Path, port: int) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-m", "cnnlab", "lab", "--runs", str(root), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "CNNLAB_LAB_TOKEN": TOKEN},
    )
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            request(f"http://127.0.0.1:{port}", "/api/jobs")
            return process
        except OSError:
            time.sleep(0.3)
    process.kill()
    raise RuntimeError("the lab did not start")


def main(quick: bool = False) -> dict:
    requests = 10 if quick else 40
    with tempfile.TemporaryDirectory() as tmp:
        root, port = Path(tmp) / "runs", free_port()
        base = f"http://127.0.0.1:{port}"
        lab = start_lab(root, port)
        try:
            seed = json.loads(request(base, "/api/jobs", {"model": "lenet5", "epochs": 1, "train_subset": 300})[1])
            wait_until(base, seed["id"], lambda v: v["state"] == "finished")
            run = seed["run"]
            request(base, "/api/models")  # the zoo table is computed once, then served from memory
            paths = [
                "/",
                "/train",
                "/runs",
                f"/runs/{run}",
                "/api/models",
                "/api/runs",
                f"/api/runs/{run}",
                f"/api/jobs/{seed['id']}",
                "/api/widgets/conv?n=32&k=3",
                f"/files/{run}/curves.png",
            ]
            idle = measure(base, paths, requests)
            busy_job = json.loads(request(base, "/api/jobs", {"model": "resnet20", "epochs": 200})[1])
            wait_until(base, busy_job["id"], lambda v: len(v["progress"]["steps"]) >= 4)  # past the warm-up steps
            busy = measure(base, [*paths, f"/api/jobs/{busy_job['id']}"], requests, min_seconds=10 if quick else 30)
            training = job(base, busy_job["id"])["progress"]["latest"]
            request(base, f"/api/jobs/{busy_job['id']}/stop", {})
            wait_until(base, busy_job["id"], lambda v: v["state"] != "running", timeout=120)
        finally:
            lab.terminate()
            lab.wait(timeout=30)
    return report(idle, busy, training, requests, quick)


def report(idle: dict, busy: dict, training: dict, requests: int, quick: bool) -> dict:
    rows, record = (
        [],
        {
            "quick": quick,
            "requests_per_url": requests,
            "cpus": os.cpu_count(),
            "training_images_per_second": training.get("images_per_second"),
            "urls": {},
        },
    )
    for path in busy:
        entry = {}
        for phase, samples in (("idle", idle), ("training", busy)):
            if path in samples:
                values = samples[path]
                entry[phase] = {"p50_ms": 1e3 * percentile(values, 50), "p95_ms": 1e3 * percentile(values, 95)}
        record["urls"][path] = entry
        shown = path if len(path) < 40 else path[:37] + "..."
        cells = [
            f"{entry[p]['p50_ms']:.1f} / {entry[p]['p95_ms']:.1f}" if p in entry else "-" for p in ("idle", "training")
        ]
        rows.append([shown, *cells])
    table = markdown(["URL", "idle p50 / p95 (ms)", "while training p50 / p95 (ms)"], rows)
    print(table)
    print(f"the ResNet-20 job trained at {training.get('images_per_second', float('nan')):,.0f} images/s meanwhile")
    record["table"] = table
    write("lab_latency", record)
    return record
