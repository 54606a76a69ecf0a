"""Your own networks in the lab, through the API: `--models` files are the only code it runs (their networks are
offered, any other file reference is refused in one line and nothing is read or started), a layer spec trains
from the form, and a finished run of a network in code opens in Inspect layer by layer, while a foreign run's code
is refused with the --trust-code hint and never runs. One code run, trained once for the module."""

import io
import shutil

import pytest
from PIL import Image

NETS = """from torch import nn


class SmallNet(nn.Module):
    def __init__(self, num_classes=10, in_chans=1):
        super().__init__()
        self.stem = nn.Conv2d(in_chans, 6, 3, padding=1)
        self.depthwise = nn.Conv2d(6, 6, 3, padding=1, groups=6)
        self.mix = nn.Conv2d(6, 8, 1)
        self.act = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(8, num_classes)

    def forward(self, x):
        x = self.act(self.mix(self.depthwise(self.act(self.stem(x)))))
        return self.head(self.pool(x).flatten(1))


def make_tiny(num_classes=10, in_chans=1):
    return nn.Sequential(nn.Conv2d(in_chans, 4, 3), nn.ReLU(), nn.Flatten(), nn.LazyLinear(num_classes))
"""
# 6*1*9+6 + 6*9+6 + 8*6+8 + 8*10+10: stem, depthwise, mix, head
SMALLNET_PARAMS = 60 + 60 + 56 + 90
SMALLNET_LAYERS = ["stem", "act", "depthwise", "mix", "act", "pool", "head"]  # in call order (act twice)
EVIL = "import pathlib\npathlib.Path(__file__).with_name('RAN').write_text('x')\n"


@pytest.fixture(scope="module")
def nets(tmp_path_factory):
    """(folder, nets.py, evil.py): an offered file, and one the lab must never import (it leaves RAN behind)."""
    folder = tmp_path_factory.mktemp("own")
    (folder / "nets.py").write_text(NETS)
    (folder / "evil.py").write_text(EVIL + NETS)
    return folder, folder / "nets.py", folder / "evil.py"


@pytest.fixture(scope="module")
def code_run(nets, tmp_path_factory):
    """(runs root, run name): SmallNet from nets.py, trained in-process on 200 digits for 1 epoch."""
    import cnnlab

    _, path, _ = nets
    root = tmp_path_factory.mktemp("code-runs") / "runs"
    out = str(root / "small")
    cnnlab.train(f"{path}:SmallNet", "digits", epochs=1, train_subset=200, threads=1, out=out, quiet=True)
    return root, "small"


@pytest.fixture
def lab(nets, make_client, tmp_path, monkeypatch):
    """A client over an empty runs root, started with --models nets.py (relative, from its folder); jobs are
    recorded, not started."""
    folder, _, _ = nets
    monkeypatch.chdir(folder)
    client = make_client(tmp_path / "runs", models=["nets.py"])
    started = []
    monkeypatch.setattr(
        client.app.state.jobs,
        "submit",
        lambda kind, argv, out, **extra: started.append(argv) or {"id": "j1", "run": out.name},
    )
    client.started = started
    return client


def one_line_refusal(response, status=400, field="model") -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body.get("field") == field and "\n" not in body["error"], body
    return body["error"]


def test_the_models_files_networks_are_offered_with_their_layer_tables(lab, nets):
    folder, path, _ = nets
    assert lab.get("/api/networks").json() == {
        "files": [
            {
                "file": "nets.py",
                "names": ["SmallNet", "make_tiny"],
                "entries": ["nets.py:SmallNet", "nets.py:make_tiny"],
                "error": None,
            }
        ]
    }
    summary = lab.get("/api/summary", params={"spec": "nets.py:SmallNet", "input": "1x8x8"}).json()
    assert summary["total_params"] == SMALLNET_PARAMS
    assert [row["name"] for row in summary["rows"]] == SMALLNET_LAYERS


def test_a_job_names_an_entry_by_any_path_and_runs_it_from_its_absolute_file(lab, nets):
    folder, path, _ = nets
    for spelled in ("nets.py:SmallNet", f"{path}:SmallNet", "./nets.py:make_tiny"):
        assert lab.post("/api/jobs", json={"model": spelled, "epochs": 1}).status_code == 200
    assert [argv[1] for argv in lab.started] == [f"{path}:SmallNet", f"{path}:SmallNet", f"{path}:make_tiny"]


def test_a_spec_trains_from_the_form_and_a_bad_layer_is_named(lab):
    spec = "conv 4 k3; relu; flatten; fc 10"
    assert lab.post("/api/jobs", json={"model": spec, "epochs": 1}).status_code == 200
    assert lab.started[-1][1] == spec
    error = one_line_refusal(lab.post("/api/jobs", json={"model": "conv 4 k3; relu; fc ten", "epochs": 1}))
    assert error.startswith("Bad layer 'fc ten'"), error


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("conv 4 k3; relu; gap; fc 7", "The spec ends in 7 outputs per image; digits has 10 classes."),
        ("conv 4 k3 p1", "The spec ends in 4x28x28 outputs per image; digits has 10 classes."),
        (
            "conv 4 k3; " + "maxpool k2; " * 5 + "flatten; fc 10",
            "The spec fails on digits images (1x28x28): Given input size: (4x1x1). Calculated output size: (4x0x0). "
            "Output size is too small.",
        ),
    ],
)
def test_a_spec_that_does_not_end_in_the_datasets_classes_is_refused_before_a_job_starts(lab, spec, message):
    started = len(lab.started)
    assert one_line_refusal(lab.post("/api/jobs", json={"model": spec, "dataset": "digits"})) == message
    assert len(lab.started) == started


def test_any_other_code_is_refused_and_nothing_runs(lab, nets, tmp_path):
    folder, _, evil = nets
    refused = [
        lab.post("/api/jobs", json={"model": f"{evil}:Net", "epochs": 1}),
        lab.post("/api/jobs", json={"model": "evil.py:SmallNet", "epochs": 1}),
        lab.post("/api/lr-find", json={"model": f"{evil}:SmallNet"}),
        lab.post("/api/sweeps", json={"options": {"model": f"{evil}:SmallNet"}, "param": ["lr=1e-3:1e-1"]}),
        lab.post("/api/jobs", json={"experiment": "degradation", "models": f"resnet18,{evil}:SmallNet"}),
        lab.post("/api/jobs", json={"model": "os.path:join", "epochs": 1}),  # a module: not a --models file
    ]
    for response in refused[:4] + refused[5:]:
        error = one_line_refusal(response)
        assert "is not in a file the lab offers" in error and "(nets.py)" in error, error
    assert "is not in a file the lab offers" in one_line_refusal(refused[4], field="models")
    assert one_line_refusal(lab.get("/api/summary", params={"spec": f"{evil}:SmallNet"}), field="spec")
    assert lab.started == [] and not (folder / "RAN").exists()
    assert not any((tmp_path / "runs").iterdir())  # no run folder was reserved


def test_without_models_files_no_code_is_offered(make_client, nets, tmp_path):
    _, path, _ = nets
    client = make_client(tmp_path / "runs")
    assert client.get("/api/networks").json() == {"files": []}
    error = one_line_refusal(client.post("/api/jobs", json={"model": f"{path}:SmallNet"}))
    assert error.endswith("(none: start it with cnnlab lab --models FILE.py).")


@pytest.mark.slow
def test_a_code_run_opens_in_inspect_layer_by_layer(code_run, make_client):
    root, run = code_run
    client = make_client(root)
    layers = client.get("/api/layers", params={"run": run}).json()
    assert [row["name"] for row in layers["rows"]] == SMALLNET_LAYERS and layers["total_params"] == SMALLNET_PARAMS
    predicted = client.post("/api/predict", data={"run": run, "test_index": "3"}).json()
    assert predicted["gradcam"].endswith(".png") and [m["layer"] for m in predicted["feature_maps"]] == [
        "stem",
        "depthwise",
        "mix",
    ]  # no stages: its convs
    depthwise = client.post("/api/layer", data={"run": run, "test_index": "3", "layer": "depthwise"}).json()
    assert depthwise["kind"] == "Conv2d" and depthwise["shape"] == [6, 28, 28]
    assert depthwise["filters"]["shape"] == [6, 1, 3, 3] and depthwise["target"] == predicted["target"]["class"]
    for url in (depthwise["maps"], depthwise["filters"]["url"], depthwise["gradcam"]):
        assert client.get(url).headers["content-type"] == "image/png"
    head = client.post("/api/layer", data={"run": run, "test_index": "3", "layer": "head", "target": "7"}).json()
    assert head["shape"] == [10] and "filters" not in head and "gradcam" not in head
    assert head["filters_note"] == "a Linear has no kernels to draw" and "not maps" in head["gradcam_note"]
    width, height = Image.open(io.BytesIO(client.get(head["maps"]).content)).size
    assert width > 2 * height > 0  # its 10 values as one strip, tall enough to see
    missing = client.post("/api/layer", data={"run": run, "test_index": "3", "layer": "nope"})
    assert missing.status_code == 400 and "has no layer 'nope'" in missing.json()["error"]


@pytest.mark.slow
def test_a_foreign_code_run_is_refused_and_never_runs(code_run, make_client):
    root, run = code_run
    foreign = root / "foreign"
    shutil.copytree(root / run, foreign)
    source = foreign / "model_source.py"
    source.write_text(EVIL + source.read_text())  # other code than this user trained: its hash is unknown
    client = make_client(root)
    for response in (
        client.post("/api/predict", data={"run": "foreign", "test_index": "0"}),
        client.get("/api/layers", params={"run": "foreign"}),
        client.post("/api/jobs", json={"resume": "foreign"}),
    ):
        assert response.status_code == 403, response.text
        error = response.json()["error"]
        assert "not trained by you on this machine" in error and "--trust-code" in error, error
    assert not (foreign / "RAN").exists()
