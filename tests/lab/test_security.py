"""The lab as a server: Host check (DNS rebinding), token, cross-origin POSTs, and paths kept inside the runs root."""

import os

import pytest

from cnnlab.errors import CnnlabError
from cnnlab.lab.security import LabRequestError, check_host, host_name, is_loopback, safe_path


@pytest.mark.parametrize("host", ["127.0.0.1:8000", "localhost:8000", "[::1]:8000", "localhost", "127.0.0.1"])
def test_loopback_host_headers_are_served(client, host):
    response = client.get("/api/jobs", headers={"Host": host})
    assert response.status_code == 200
    assert response.json() == []


@pytest.mark.parametrize(
    "host",
    ["evil.example:8000", "127.0.0.1.evil.example", "localhost.evil.example:8000", "192.168.1.5:8000", "", "[::1"],
)
def test_other_host_headers_are_refused(client, host):
    response = client.get("/", headers={"Host": host})
    assert response.status_code == 403
    assert "loopback" in response.json()["error"]


def test_host_parsing():
    assert host_name("[::1]:8000") == "::1" and host_name("LocalHost:1") == "localhost"
    assert (
        is_loopback("127.0.0.2") and is_loopback("::1") and not is_loopback("0.0.0.0") and not is_loopback("lab.local")
    )
    with pytest.raises(LabRequestError):
        check_host(None)


def test_non_loopback_host_needs_a_token(tmp_path):
    from cnnlab.lab import create_app

    with pytest.raises(CnnlabError, match="token"):
        create_app(tmp_path, host="0.0.0.0")


def test_token_missing_wrong_bearer_query_and_cookie(tmp_path, make_client):
    client = make_client(tmp_path, base_url="http://lab.example:8000", host="0.0.0.0", token="s3cret")
    missing = client.get("/api/runs")
    assert missing.status_code == 401 and "token" in missing.json()["error"]
    assert client.get("/api/runs", headers={"Authorization": "Bearer nope"}).status_code == 403
    assert client.get("/api/runs?token=nope").status_code == 403
    assert client.get("/api/runs", headers={"Authorization": "Bearer s3cret"}).json() == []
    # ?token= once: a redirect to the same URL without it, and a cookie that carries it from then on
    first = client.get("/runs?token=s3cret&x=1", follow_redirects=False)
    assert first.status_code == 303 and first.headers["location"] == "/runs?x=1"
    assert "httponly" in first.headers["set-cookie"].lower()
    assert client.get("/api/runs").status_code == 200  # the cookie jar now has it
    client.cookies.clear()
    assert client.get("/api/runs").status_code == 401


def test_token_from_environment_is_used_by_serve(monkeypatch, tmp_path):
    from cnnlab.lab import server

    seen = {}
    monkeypatch.setenv(server.TOKEN_ENV, "from-env")
    monkeypatch.setattr("uvicorn.run", lambda app, **kw: seen.update(token=app.state.token, **kw))
    server.serve(tmp_path, host="0.0.0.0", port=8123)
    assert seen == {"token": "from-env", "host": "0.0.0.0", "port": 8123, "log_level": "warning"}


def test_cross_origin_post_is_refused(client):
    response = client.post("/api/jobs", json={"model": "lenet5"}, headers={"Origin": "http://evil.example"})
    assert response.status_code == 403 and "cross-origin" in response.json()["error"]


def test_files_serves_a_file_inside_the_root(tmp_path, make_client):
    root = tmp_path / "runs"
    (root / "a").mkdir(parents=True)
    (root / "a" / "curves.png").write_bytes(b"\x89PNG fake")
    client = make_client(root)
    response = client.get("/files/a/curves.png")
    assert response.status_code == 200 and response.content == b"\x89PNG fake"
    assert client.get("/files/a/missing.png").status_code == 404


@pytest.mark.parametrize(
    "path",
    [
        "/files/a/%2e%2e/%2e%2e/secret.txt",
        "/files/a/..%2f..%2fsecret.txt",
        "/files/a%5c..%5c..%5csecret.txt",
        "/files//etc/passwd",
        "/files/%2fetc%2fpasswd",
        "/api/runs/..%2f..%2fsecret",
    ],
)
def test_traversal_is_refused(tmp_path, make_client, path):
    (tmp_path / "secret.txt").write_text("secret")
    root = tmp_path / "runs"
    (root / "a").mkdir(parents=True)
    response = make_client(root).get(path)
    assert response.status_code in (400, 403, 404)
    assert "secret" != response.text and "error" in response.json()


def test_symlink_out_of_the_root_is_refused(tmp_path, make_client):
    (tmp_path / "secret.txt").write_text("secret")
    root = tmp_path / "runs"
    root.mkdir()
    os.symlink(tmp_path, root / "out")
    os.symlink(tmp_path / "secret.txt", root / "secret.txt")
    client = make_client(root)
    for path in ("/files/out/secret.txt", "/files/secret.txt"):
        response = client.get(path)
        assert response.status_code == 403 and "outside" in response.json()["error"]


def test_safe_path(tmp_path):
    assert safe_path(tmp_path, "a/b.png") == tmp_path.resolve() / "a" / "b.png"
    for bad in ("", "../x", "/etc/passwd", "a/../../x", "a\\b", "a\x00b"):
        with pytest.raises(LabRequestError):
            safe_path(tmp_path, bad)


def test_cnnlab_lab_command_serves_with_its_flags(monkeypatch, tmp_path):
    from cnnlab.cli import main

    seen = {}
    monkeypatch.setattr("cnnlab.lab.server.serve", lambda runs, **kw: seen.update(runs=runs, **kw))
    assert main(["lab", "--runs", str(tmp_path), "--port", "8123"]) == 0
    assert seen == {
        "runs": str(tmp_path),
        "host": "127.0.0.1",
        "port": 8123,
        "open_browser": False,
        "token": True,
        "models": None,
    }
    assert main(["lab", "--models", "a.py", "--models", "b.py", "c.py"]) == 0 and seen["models"] == [
        "a.py",
        "b.py",
        "c.py",
    ]
    assert main(["lab", "--port", "0"]) == 2
    assert main(["lab", "--no-token"]) == 0 and seen["token"] is False


def test_the_lab_needs_a_token_on_loopback_too(monkeypatch, tmp_path, capsys):
    """As Jupyter: on a shared machine every user reaches 127.0.0.1. The printed URL and --open carry it."""
    from cnnlab.lab import server

    seen, opened = {}, []
    monkeypatch.delenv(server.TOKEN_ENV, raising=False)
    monkeypatch.setattr("uvicorn.run", lambda app, **kw: seen.update(app=app, **kw))
    monkeypatch.setattr("webbrowser.open", opened.append)
    server.serve(tmp_path, port=8123, open_browser=True)
    token = seen["app"].state.token
    assert token and len(token) >= 32 and seen["app"].state.loopback
    assert opened == [f"http://127.0.0.1:8123/?token={token}"]
    assert f"at http://127.0.0.1:8123/?token={token}" in capsys.readouterr().err
    from fastapi.testclient import TestClient

    client = TestClient(seen["app"], base_url="http://127.0.0.1:8123")
    assert client.get("/api/runs").status_code == 401
    assert client.get(f"/runs?token={token}").status_code == 200  # the redirect sets the cookie
    assert client.get("/api/runs").json() == []

    server.serve(tmp_path, port=8123, token=False)
    assert seen["app"].state.token is None
    assert TestClient(seen["app"], base_url="http://127.0.0.1:8123").get("/api/runs").status_code == 200
    with pytest.raises(CnnlabError, match="--no-token is for loopback only"):
        server.serve(tmp_path, host="0.0.0.0", token=False)


# ------------------------------------------------------------------------------- issue #27: hostile pages and input
def _assert_unframeable(response):
    assert response.headers["x-frame-options"] == "DENY"
    policy = response.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in policy and "script-src 'self'" in policy
    assert response.headers["x-content-type-options"] == "nosniff"


def test_every_response_forbids_framing(tmp_path, make_client):
    client = make_client(tmp_path / "runs")
    responses = [
        client.get("/train"),  # the page a foreign frame would click Start on
        client.get("/api/jobs"),
        client.get("/static/lab.js"),
        client.get("/files/missing.png"),  # 404
        client.get("/", headers={"Host": "evil.example"}),  # refused by the Host check
        client.post("/api/jobs", content=b"{", headers={"Content-Type": "application/json"}),  # 400
    ]
    assert [r.status_code for r in responses] == [200, 200, 200, 404, 403, 400]
    for response in responses:
        _assert_unframeable(response)


def test_pages_need_no_inline_script_under_the_policy(client):
    """The CSP allows scripts from the lab's own files only: no page may carry an inline script or handler."""
    import re

    for page in (
        "/",
        "/design",
        "/train",
        "/runs",
        "/inspect",
        "/widgets",
        "/experiments",
        "/sweeps",
        "/runs/some-run",
    ):
        html = client.get(page).text
        assert re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html) is None, page
        assert re.search(r"\son[a-z]+=", html) is None and "javascript:" not in html, page


def test_expensive_gets_from_foreign_pages_are_refused(client):
    """An <img src=http://127.0.0.1:PORT/api/models/vgg16?input=...> on a foreign page: the browser marks the
    request cross-site (Sec-Fetch-Site) and sends no Origin. The lab's own pages say same-origin."""
    url = "/api/models/lenet5?input=1x28x28"
    for site in ("cross-site", "same-site"):
        refused = client.get(url, headers={"Sec-Fetch-Site": site})
        assert refused.status_code == 403 and "another site" in refused.json()["error"]
        _assert_unframeable(refused)
    assert client.get("/files/x.png", headers={"Sec-Fetch-Site": "cross-site"}).status_code == 403
    foreign = client.get(url, headers={"Origin": "http://evil.example"})
    assert foreign.status_code == 403 and "cross-origin" in foreign.json()["error"]
    for site in ("same-origin", "none"):
        assert client.get(url, headers={"Sec-Fetch-Site": site}).json()["total_params"] == 61_706 - 17_280
    assert client.get("/train", headers={"Sec-Fetch-Site": "cross-site"}).status_code == 200  # a link to a page


def test_model_tables_run_on_the_meta_device_and_inputs_are_capped(client, monkeypatch):
    """VGG-16 at 3x1024x1024 once took 6.5 s and 2 GB of real tensors; on the meta device it allocates nothing."""
    from cnnlab.measure import summary

    devices = []
    real = summary.blank_image
    monkeypatch.setattr(
        summary, "blank_image", lambda model, shape: devices.append(real(model, shape).device) or real(model, shape)
    )
    body = client.get("/api/models/vgg16?input=3x1024x1024").json()
    assert body["input"] == [3, 1024, 1024] and body["total_params"] == 138_357_544
    assert [r["output_shape"] for r in body["rows"] if r["name"] == "features.30"] == [[512, 32, 32]]
    assert client.get("/api/summary?spec=conv%2064%20k3%20p1&input=3x1024x1024").json()["total_params"] == 1792
    assert {d.type for d in devices} == {"meta"}
    over = client.get("/api/models/vgg16?input=3x4096x4096")
    assert over.status_code == 400 and over.json() == {
        "error": "Input size can be at most 64 channels and 1024 pixels a side here, got 3x4096x4096",
        "field": "input",
    }
    long_spec = client.get("/api/summary", params={"spec": "relu; " * 400})
    assert long_spec.status_code == 400 and long_spec.json()["field"] == "spec"
    malformed = client.get("/api/models/vgg16?input=224")
    assert malformed.status_code == 400 and malformed.json()["error"].startswith("Input size must look like 3x224x224")


def test_widget_limits_are_4xx_in_the_pages_words(client):
    big = client.get("/api/widgets/conv?n=4096&c=4096&out=4096")  # once: 274 GB asked for, and a 500
    assert big.status_code == 200
    assert big.json()["output_shape"] == [4096, 4096, 4096] and big.json()["params"] == 4096 * 4096 * 9 + 4096
    cases = {
        "/api/widgets/conv?s=5000": ("Stride must be a whole number from 1 to 4,096, got 5,000", "s"),
        "/api/widgets/conv?n=ten": ("Input side must be a whole number, got 'ten'", "n"),
        "/api/widgets/residual?depth=5000": ("Depth must be 1 to 1000, got 5000", "depth"),
        "/api/widgets/batchnorm?batch=99": ("Batch must be 0 (the tutorial's tensor) to 9, got 99", "batch"),
    }
    for url, (message, field) in cases.items():
        response = client.get(url)
        assert response.status_code == 400 and response.json() == {"error": message, "field": field}, url


def test_uploads_over_the_limit_are_refused_while_they_stream(client):
    """A chunked body (no Content-Length) over the cap: 413, from the bytes counted so far."""
    from cnnlab.lab.app import JSON_BODY_LIMIT, UPLOAD_LIMIT

    pulled = []

    def chunks(total: int, size: int = 256 * 1024):
        for _ in range(total // size):
            pulled.append(size)
            yield b"\0" * size

    boundary = "x" * 16
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    response = client.post("/api/predict", content=chunks(3 * UPLOAD_LIMIT), headers=headers)
    assert response.status_code == 413 and "limit" in response.json()["error"]
    assert "content-length" not in {k.lower() for k in response.request.headers}  # chunked, not declared
    declared = client.post(
        "/api/jobs", content=b"{" + b" " * JSON_BODY_LIMIT, headers={"Content-Type": "application/json"}
    )
    assert declared.status_code == 413 and f"{JSON_BODY_LIMIT + 1:,} bytes" in declared.json()["error"]


def test_a_chunked_upload_is_cut_off_before_it_is_stored(tmp_path, monkeypatch):
    """Against a real uvicorn: a 64 MB chunked upload gets its 413 while the client is still sending, and the
    multipart parser never writes more than the cap to its spooled file."""
    import socket
    import threading
    import time

    import uvicorn
    from starlette import formparsers

    from cnnlab.lab import create_app
    from cnnlab.lab.app import UPLOAD_LIMIT

    written = []
    real_write = formparsers.SpooledTemporaryFile.write

    def counting_write(self, data):
        written.append(len(data))
        return real_write(self, data)

    monkeypatch.setattr(formparsers.SpooledTemporaryFile, "write", counting_write)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(create_app(tmp_path / "runs"), port=port, log_level="warning", timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started:
        assert time.time() < deadline
        time.sleep(0.05)
    try:
        sent, reply = _send_chunked_upload(port, total=64 * 1024 * 1024)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    assert not thread.is_alive()
    assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
    assert sent < 64 * 1024 * 1024  # refused mid-stream, not after the whole body
    assert sum(written) <= UPLOAD_LIMIT


def _send_chunked_upload(port: int, total: int) -> tuple[int, bytes]:
    """POST a multipart image of `total` bytes with Transfer-Encoding: chunked; stop sending once a reply comes.
    Returns (bytes of body sent, the reply's first bytes)."""
    import select
    import socket

    boundary = b"cnnlabboundary"
    head = (
        b"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
        b"Content-Type: multipart/form-data; boundary=" + boundary + b"\r\n\r\n"
    )
    part = b"--" + boundary + b'\r\nContent-Disposition: form-data; name="image"; filename="x.png"\r\n\r\n'
    chunk = b"\0" * (256 * 1024)
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        conn.sendall(head + f"{len(part):x}\r\n".encode() + part + b"\r\n")
        while sent < total:
            if select.select([conn], [], [], 0)[0]:
                break  # the server has answered
            try:
                conn.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(chunk)
        conn.settimeout(30)
        return sent, conn.recv(4096)


def test_experiment_jobs_read_data_only_inside_the_root(tmp_path, make_client):
    from cnnlab.lab.routes import _experiment_args

    outside = tmp_path / "outside"
    (outside / "cat").mkdir(parents=True)
    root = tmp_path / "runs"
    client = make_client(root)
    for dataset in (f"imagefolder:{outside}", "imagefolder:../outside", "imagefolder:data/../../outside"):
        response = client.post("/api/jobs", json={"experiment": "activations", "dataset": dataset})
        assert response.status_code in (400, 403) and "runs folder" in response.json()["error"], dataset
    assert client.get("/api/jobs").json() == []  # nothing was queued
    (root / "data" / "pets" / "cat").mkdir(parents=True)
    argv = _experiment_args({"experiment": "activations", "dataset": "imagefolder:data/pets"}, root, root / "out")
    assert argv[argv.index("--dataset") + 1] == f"imagefolder:{(root / 'data' / 'pets').resolve()}"


def test_the_token_redirect_stays_on_this_server(tmp_path, make_client):
    import httpx

    client = make_client(tmp_path, base_url="http://lab.example:8000", host="0.0.0.0", token="s3cret")
    for url, location in (
        ("http://lab.example:8000//evil.example/?token=s3cret", "/evil.example/"),
        ("http://lab.example:8000///evil.example?token=s3cret&x=1", "/evil.example?x=1"),
        ("http://lab.example:8000/runs?x=a%26b&token=s3cret", "/runs?x=a%26b"),
        ("http://lab.example:8000/runs/a%20b?token=s3cret", "/runs/a%20b"),
    ):
        client.cookies.clear()  # else the cookie carries the token and the query's copy is not looked at
        response = client.get(httpx.URL(url), follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"] == location, url


def test_the_printed_url_is_one_a_browser_can_open(monkeypatch, tmp_path, capsys):
    from cnnlab.lab import server

    monkeypatch.setenv(server.TOKEN_ENV, "t0k")
    monkeypatch.setattr("uvicorn.run", lambda app, **kw: None)
    monkeypatch.setattr("socket.gethostname", lambda: "labhost")
    server.serve(tmp_path, host="0.0.0.0", port=8123)
    err = capsys.readouterr().err
    assert "at http://127.0.0.1:8123/?token=t0k" in err and "other machines: http://labhost:8123/?token=t0k" in err
    assert "0.0.0.0" not in err
    assert server.lab_url("::", 8000, None) == "http://[::1]:8000/"
    assert server.lab_url("127.0.0.1", 8000, None) == "http://127.0.0.1:8000/"
