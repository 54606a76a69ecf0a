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
    assert seen == {"runs": str(tmp_path), "host": "127.0.0.1", "port": 8123, "open_browser": False}
    assert main(["lab", "--port", "0"]) == 2
