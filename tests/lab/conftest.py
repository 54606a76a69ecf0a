import warnings

import pytest

pytest.importorskip("fastapi", reason="the lab extra (fastapi) is not installed: pip install -e '.[test]'")
pytest.importorskip("httpx", reason="FastAPI's TestClient needs httpx: pip install -e '.[test]'")

with warnings.catch_warnings():  # newer Starlette warns that its TestClient will move to httpx2
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

LOCAL = "http://127.0.0.1:8000"


@pytest.fixture
def make_client():
    """make_client(runs_root, **create_app options) -> a TestClient that sends Host: 127.0.0.1:8000."""
    from cnnlab.lab import create_app

    def make(root, base_url=LOCAL, **options):
        return TestClient(create_app(root, **options), base_url=base_url)

    return make


@pytest.fixture
def client(tmp_path, make_client):
    return make_client(tmp_path / "runs")


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory):
    """(runs root, run name): a LeNet-5 trained in-process on 600 digits for 2 epochs (seconds), for Inspect."""
    import cnnlab

    root = tmp_path_factory.mktemp("inspect") / "runs"
    name = "lenet5-digits"
    cnnlab.train("lenet5", "digits", epochs=2, train_subset=600, seed=0, threads=1, out=str(root / name), quiet=True)
    return root, name
