"""The lab's pages and JSON API (no training here; see test_jobs.py): real values from cnnlab's own functions, and a
4xx with one line for every bad input."""

import io
import json

import pytest
import torch
import torchvision
from PIL import Image

from cnnlab.measure import count_params, summarize
from cnnlab.registry import create_model, list_models

PAGES = {
    "/": "Model zoo",
    "/design": "Design",
    "/train": "Train",
    "/runs": "Leaderboard",
    "/inspect": "Inspect",
    "/widgets": "Widgets",
    "/experiments": "Experiments",
    "/sweeps": "Sweeps",
    "/runs/some-run": "some-run",
}


@pytest.mark.parametrize("url", PAGES)
def test_pages_render(client, url):
    response = client.get(url)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    assert PAGES[url] in response.text and '<a href="/train"' in response.text


def test_assets_are_served_from_the_packages(client):
    from pathlib import Path

    import plotly

    shipped = (Path(plotly.__file__).parent / "package_data" / "plotly.min.js").read_bytes()
    assert client.get("/plotly.min.js").content == shipped
    for name in (
        "lab.js",
        "lab.css",
        "zoo.js",
        "train.js",
        "runs.js",
        "run.js",
        "inspect.js",
        "widgets.js",
        "experiments.js",
        "sweeps.js",
        "choosing.js",
    ):
        assert client.get(f"/static/{name}").status_code == 200, name


@pytest.mark.slow
def test_models_lists_the_registry_with_parameter_counts(client):
    rows = client.get("/api/models").json()
    assert [r["name"] for r in rows] == list_models()
    lenet = next(r for r in rows if r["name"] == "lenet5")
    assert lenet["params"] == count_params(create_model("lenet5")) == 61_706
    assert lenet["year"] == 1998 and lenet["input"] == [1, 32, 32] and lenet["depth"] == 5 and lenet["top1"] is None
    resnet18 = next(r for r in rows if r["name"] == "resnet18")
    expected = torchvision.models.ResNet18_Weights.DEFAULT.meta["_metrics"]["ImageNet-1K"]["acc@1"]
    assert resnet18["top1"] == expected == 69.758 and resnet18["depth"] == 18


def test_model_layer_table_at_a_chosen_input(client):
    body = client.get("/api/models/lenet5?input=1x28x28").json()
    expected = summarize("lenet5", (1, 28, 28))
    assert body["total_params"] == expected.total_params == 44_426
    assert body["total_macs"] == expected.total_macs
    assert [r["output_shape"] for r in body["rows"]] == [list(r.output_shape) for r in expected.rows]
    assert body["rows"][0]["receptive_field"] == 5
    assert sum(s["params"] for s in body["stages"]) == body["total_params"]


def test_unknown_model_and_bad_input_are_400(client):
    unknown = client.get("/api/models/resnet19")
    assert unknown.status_code == 400 and "resnet18" in unknown.json()["error"]
    assert client.get("/api/models/lenet5?input=1x2").status_code == 400


def test_what_if_spec_shape_flow(client):
    body = client.get(
        "/api/summary", params={"spec": "conv 64 k7 s2 p3; maxpool k3 s2 p1", "input": "3x224x224"}
    ).json()
    assert [r["output_shape"] for r in body["rows"]] == [[64, 112, 112], [64, 56, 56]]
    assert body["total_params"] == 3 * 49 * 64 + 64
    bad = client.get("/api/summary", params={"spec": "conv k7", "input": "3x32x32"})
    assert bad.status_code == 400 and "\n" not in bad.json()["error"]
    assert client.get("/api/summary").status_code == 422  # spec is required


def test_options_come_from_the_training_config(client):
    from cnnlab.engine.config import options

    body = client.get("/api/options").json()
    names = {f["name"] for f in body["fields"]}
    expected = {o.name for o in options() if o.flag and "train" in o.commands and o.type in (int, float, str, bool)}
    assert names == expected - {"out", "weights", "data_dir"}
    epochs = next(f for f in body["fields"] if f["name"] == "epochs")
    assert epochs["flag"] == "--epochs" and epochs["kind"] == "int" and epochs["main"]
    budget = next(f for f in body["fields"] if f["name"] == "time_budget")
    assert budget["kind"] == "str"  # typed with its unit, "10m", and parsed by the CLI's own parser
    assert body["datasets"][0] == "digits"


def test_imagefolders_under_the_data_folder_are_offered(tmp_path, make_client):
    root = tmp_path / "runs"
    (root / "data" / "shapes" / "circle").mkdir(parents=True)
    assert "imagefolder:data/shapes" in make_client(root).get("/api/options").json()["datasets"]


@pytest.mark.parametrize(
    "options, field, message",
    [
        ({"epochs": 0}, "epochs", "Epochs must be a positive whole number, got '0'."),
        ({"epochs": 2.5}, "epochs", "Epochs must be a positive whole number, got '2.5'."),
        ({"epochs": 10**9}, "epochs", "Epochs 1,000,000,000 is more than the lab runs (1,000 at most)."),
        ({"lr": "fast"}, "lr", "Learning rate: expected a positive number, got 'fast'."),
        ({"optimizer": "adam"}, "optimizer", "Optimizer must be one of sgd, adamw, muon; got 'adam'."),
        ({"label_smoothing": 1.5}, "label_smoothing", "Label smoothing must be in [0, 1), got '1.5'."),
        ({"dataset": "mnistt"}, "dataset", "Dataset 'mnistt' is unknown; did you mean mnist, kmnist, fashion-mnist?"),
        (
            {"time_budget": "10 parsecs"},
            "time_budget",
            "Time budget: expected a positive duration such as 90s, 10m or 1.5h, got '10 parsecs'.",
        ),
        (
            {"batch_size": 5000},
            "batch_size",
            "Batch size 5,000 is larger than the training split of digits (1,293 images: 1,437 less 144 held out "
            "for validation).",
        ),
        (
            {"train_subset": 50},
            "train_subset",
            "Train subset 50 leaves 45 training images (50 less 5 held out for validation), fewer than a batch (64).",
        ),
        ({"image_size": 64}, "image_size", "Image size applies to image-folder datasets only; digits has its own."),
    ],
)
def test_bad_job_options_are_refused_in_the_forms_words(client, options, field, message):
    """Each refusal names the form's field and says what is wrong as the form labels it: no CLI flag."""
    response = client.post("/api/jobs", json={"model": "lenet5", **options})
    assert response.status_code == 400
    assert response.json() == {"error": message, "field": field}
    assert client.get("/api/jobs").json() == []  # nothing was started or queued
    assert [p.name for p in client.app.state.root.iterdir()] == [".lab"]  # and no run folder was left reserved


def test_the_batch_limit_is_exactly_the_trainers(client):
    """digits trains on 1,293 images (1,437 less 10% for validation): a batch of 1,293 passes, 1,294 does not."""
    from cnnlab.data.catalog import load_digits
    from cnnlab.data.dataset import split_validation

    data = load_digits()
    trained = len(split_validation(data.train_images, data.train_labels, 0.1, 0)[0])
    assert trained == 1293
    options = {"model": "lenet5", "epochs": 1}
    too_big = client.post("/api/jobs", json={**options, "batch_size": trained + 1})
    assert too_big.json()["field"] == "batch_size"
    client.app.state.jobs.max_running = 0  # queued, never started
    fits = client.post("/api/jobs", json={**options, "batch_size": trained})
    assert fits.status_code == 200, fits.json()
    assert client.get(f"/api/jobs/{fits.json()['id']}").json()["state"] == "queued"
    client.post(f"/api/jobs/{fits.json()['id']}/stop")


def test_a_dataset_whose_files_are_missing_is_refused(tmp_path, make_client, monkeypatch):
    from cnnlab.lab import options

    monkeypatch.setattr(options, "datasets", lambda root: ["digits"])  # as on a machine with no downloaded sets
    response = make_client(tmp_path / "runs").post("/api/jobs", json={"model": "lenet5", "dataset": "cifar-10"})
    assert response.status_code == 400
    assert response.json() == {
        "error": "Dataset cifar10 is not on this machine (its files were not found); choose one of digits.",
        "field": "dataset",
    }


@pytest.mark.parametrize(
    "body, status, words",
    [
        ({"model": "lenet6"}, 400, "lenet5"),
        ({"dataset": "digits"}, 400, "choose a model"),
        ({"model": "lenet5", "bogus": 1}, 400, "unknown training option 'bogus'"),
        ({"model": "lenet5", "out": "/tmp/x"}, 400, "set by the lab"),
        ({"model": "lenet5", "weights": "/etc/passwd"}, 400, "set by the lab"),
        ({"model": "lenet5", "dataset": "imagefolder:../../etc"}, 400, "leaves the runs folder"),
        ({"model": "lenet5", "augment": "maybe"}, 400, "true or false"),
        ({"resume": "no-such-run"}, 404, "no run"),
        ({"experiment": "kernelz"}, 400, "kernels"),
    ],
)
def test_bad_job_bodies(client, body, status, words):
    response = client.post("/api/jobs", json=body)
    assert response.status_code == status and words in response.json()["error"]


def test_job_body_must_be_a_json_object(client):
    assert (
        client.post("/api/jobs", content=b"{not json", headers={"Content-Type": "application/json"}).status_code == 400
    )
    assert client.post("/api/jobs", json=[1, 2]).json() == {"error": "the body must be a JSON object"}


def test_unknown_jobs_are_404(client):
    for url in ("/api/jobs/20260101-000000-abcdef", "/api/jobs/..%2e", "/api/jobs/nope/events"):
        assert client.get(url).status_code in (400, 404)
    assert client.post("/api/jobs/20260101-000000-abcdef/stop").status_code == 404


def test_runs_lists_results_and_skips_the_lab_folder(tmp_path, make_client):
    root = tmp_path / "runs"
    for name, accuracy in (("a", 0.9), ("b", 0.95), (".lab/cache", 0.99)):
        (root / name).mkdir(parents=True)
        (root / name / "results.json").write_text(
            json.dumps({"model": "lenet5", "dataset": "digits", "test_accuracy": accuracy, "status": "completed"})
        )
        (root / name / "config.json").write_text(json.dumps({"model": "lenet5", "dataset": "digits"}))
    (root / "a" / "metrics.csv").write_text("epoch,train_loss,val_accuracy\n1,0.5,0.8\n2,0.25,nan\n")
    client = make_client(root)
    assert [(r["name"], r["test_accuracy"]) for r in client.get("/api/runs").json()] == [("b", 0.95), ("a", 0.9)]
    detail = client.get("/api/runs/a").json()
    assert detail["metrics"] == [
        {"epoch": 1, "train_loss": 0.5, "val_accuracy": 0.8},
        {"epoch": 2, "train_loss": 0.25, "val_accuracy": None},
    ]
    assert detail["results"]["test_accuracy"] == 0.9 and "metrics.csv" in detail["files"]
    assert client.get("/api/runs/missing").status_code == 404
    assert client.post("/api/runs/a/evaluate").status_code == 409  # no model.safetensors


def test_predict_bad_input(tmp_path, make_client):
    root = tmp_path / "runs"
    client = make_client(root)
    png = io.BytesIO()
    Image.new("L", (28, 28)).save(png, format="PNG")
    assert client.post("/api/predict", files={"image": ("x.png", png.getvalue(), "image/png")}).status_code == 400
    missing = client.post("/api/predict", data={"run": "nope"}, files={"image": ("x.png", png.getvalue(), "image/png")})
    assert missing.status_code == 404 and "no run" in missing.json()["error"]
    big = client.post(
        "/api/predict",
        data={"run": "nope"},
        files={"image": ("x.png", b"\0" * (10 * 1024 * 1024 + 70_000), "image/png")},
    )
    assert big.status_code == 413 and "limit" in big.json()["error"]


def test_decode_image_refuses_non_images_and_bombs():
    from cnnlab.lab.predict import LabRequestError, decode_image

    png = io.BytesIO()
    Image.new("RGB", (40, 30), (255, 0, 0)).save(png, format="PNG")
    image = decode_image(png.getvalue(), 1, 28)
    assert image.shape == (1, 28, 28) and image.dtype == torch.uint8
    assert int(image[0, 0, 0]) == round(0.299 * 255)  # Pillow's L conversion of pure red
    with pytest.raises(LabRequestError, match="not an image"):
        decode_image(b"GIF89a this is text", 1, 28)
    with pytest.raises(LabRequestError, match="too large"):
        bomb = io.BytesIO()
        Image.new("1", (12_000, 12_000)).save(bomb, format="PNG")  # 144 M pixels: above Pillow's 89 M guard
        decode_image(bomb.getvalue(), 1, 28)
    with pytest.raises(LabRequestError) as refused:
        decode_image(b"\0" * (10 * 1024 * 1024 + 1), 1, 28)
    assert refused.value.status == 413


def test_widgets(client):
    conv = client.get("/api/widgets/conv?n=224&c=3&k=7&s=2&p=3&out=64").json()
    assert conv["formula_side"] == 112 and conv["output_shape"] == [64, 112, 112] and conv["params"] == 9472
    pairs = client.get("/api/widgets/kernels?c=64&n=32").json()["pairs"]
    assert pairs[0]["a"]["params"] == 64 * 64 * 25 + 64 and pairs[0]["b"]["params"] == 2 * (64 * 64 * 9 + 64)
    assert pairs[0]["a"]["receptive_field"] == pairs[0]["b"]["receptive_field"] == 5
    bn = client.get("/api/widgets/batchnorm?batch=2").json()
    assert bn["options"]["batch"] == 2 and len(bn["data"]["batches"]) == 3
    residual = client.get("/api/widgets/residual?x=1.5").json()
    assert residual["options"]["x"] == 1.5 and len(residual["data"]["dH"]) == len(residual["data"]["x"])
    for url in (
        "/api/widgets/conv?k=x",
        "/api/widgets/conv?n=3&k=7",
        "/api/widgets/batchnorm?batch=99",
        "/api/widgets/residual?bogus=1",
        "/api/widgets/nope",
    ):
        response = client.get(url)
        assert response.status_code == 400 and response.json()["error"], url


def test_the_running_statistics_widget_returns_the_real_batch_series(client):
    """The Widgets page's real-data mode: lenet5's first conv on digits, the running estimate after each batch
    against the dataset's statistic, as `cnnlab trace running_stats` computes it."""
    from cnnlab.traces import trace

    r = client.get("/api/widgets/running_stats?model=lenet5&dataset=digits&batches=12&momentum=0.3").json()
    assert r["options"] | {"batches": 12, "momentum": 0.3, "dataset": "digits"} == r["options"]
    assert r["data"]["batch"] == list(range(1, 13)) and len(r["data"]["running_mean"]) == 12
    assert len(r["data"]["mean_gap"]) == len(r["data"]["var_gap"]) == 12 and len(r["data"]["dataset_mean"]) == 6
    direct = trace("running_stats", model="lenet5", dataset="digits", batches=12, momentum=0.3)
    assert r["data"] == direct["data"]
    for url in (
        "/api/widgets/running_stats?batches=500",
        "/api/widgets/running_stats?momentum=0",
        "/api/widgets/running_stats?dataset=imagefolder:/etc",
    ):
        response = client.get(url)
        assert response.status_code == 400 and "\n" not in response.json()["error"], url


def test_experiments_listed_and_results_rendered_escaped(tmp_path, make_client):
    from cnnlab.experiments import list_experiments

    root = tmp_path / "runs"
    folder = root / "experiment-kernels-x"
    folder.mkdir(parents=True)
    (folder / "results.md").write_text(
        "# Kernels <script>\n\n| a | b |\n|---|---|\n| 1 | <b>2</b> |\n\nFinding.\n\n![plot](plot.png)\n"
    )
    (folder / "config.json").write_text(json.dumps({"title": "Kernels", "plots": ["plot.png"]}))
    client = make_client(root)
    body = client.get("/api/experiments").json()
    assert [e["name"] for e in body["experiments"]] == list_experiments()
    assert body["results"] == [{"name": "experiment-kernels-x", "title": "Kernels", "plots": ["plot.png"]}]
    html = client.get("/api/experiments/results?name=experiment-kernels-x").text
    assert "<h2>Kernels &lt;script&gt;</h2>" in html and "<td>&lt;b&gt;2&lt;/b&gt;</td>" in html
    assert '<img class="plot" alt="plot" src="/files/experiment-kernels-x/plot.png">' in html
    assert client.get("/api/experiments/results?name=../x").status_code == 400


def test_results_md_is_rendered_by_markdown_it_with_no_raw_html_and_images_kept_in_their_folder(tmp_path, make_client):
    root = tmp_path / "runs"
    folder = root / "experiment-x"
    (folder / "plots").mkdir(parents=True)
    text = (
        "## Cells <i>here</i>\n\n| model | formula | acc |\n|---|:-:|---:|\n| a \\| b | `x<y` | 0.5 |\n\n"
        "A *finding* <img src=x onerror=alert(1)>.\n\n![curves](plots/curves.png)\n"
    )
    (folder / "results.md").write_text(text)
    client = make_client(root)
    html = client.get("/api/experiments/results?name=experiment-x").text
    assert "<h3>Cells &lt;i&gt;here&lt;/i&gt;</h3>" in html  # "#" is the page's h2, so "##" an h3
    # An escaped "|" stays inside its cell; alignment is a class of lab.css, never a style attribute.
    assert '<td>a | b</td>\n<td class="center"><code>x&lt;y</code></td>\n<td class="num">0.5</td>' in html
    assert "<p>A <em>finding</em> &lt;img src=x onerror=alert(1)&gt;.</p>" in html
    assert '<img class="plot" alt="curves" src="/files/experiment-x/plots/curves.png">' in html
    assert "style=" not in html and "<img src" not in html
    for target in ("../../secret.png", "/etc/passwd"):
        (folder / "results.md").write_text(f"# Title\n\n![leak]({target})\n")
        response = client.get("/api/experiments/results?name=experiment-x")
        assert response.status_code == 400 and "leaves the runs folder" in response.json()["error"], target


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"repeats": 500}, "repeats", "Seeds per run must be a whole number from 1 to 10, got '500'."),
        ({"repeats": 0}, "repeats", "Seeds per run must be a whole number from 1 to 10, got '0'."),
        ({"repeats": 1.5}, "repeats", "Seeds per run must be a whole number from 1 to 10, got '1.5'."),
        ({"epochs": 10**9}, "epochs", "Epochs must be a whole number from 1 to 1,000, got '1000000000'."),
        ({"seed": "x"}, "seed", "Seed must be a whole number from 0, got 'x'."),
        ({"seeds": "1,1"}, "seeds", "Seeds must be distinct whole numbers such as 0,1,2, got '1,1'."),
        ({"seeds": ",".join(map(str, range(11)))}, "seeds", "Seeds: at most 10 per run, got 11."),
        ({"quick": "yes"}, "quick", "Quick must be on or off (true or false), got 'yes'."),
    ],
)
def test_experiment_jobs_are_refused_in_the_pages_words(tmp_path, make_client, body, field, message):
    root = tmp_path / "runs"
    client = make_client(root)
    response = client.post("/api/jobs", json={"experiment": "kernels", **body})
    assert response.status_code == 400 and response.json() == {"error": message, "field": field}
    assert client.get("/api/jobs").json() == [] and not any(root.glob("experiment-*"))  # nothing reserved


def test_a_bad_spec_names_its_layer_for_the_design_page(client):
    response = client.get("/api/summary", params={"spec": "conv 8 k3; res(conv 8 k3 q1); fc 10", "input": "1x28x28"})
    body = response.json()
    assert response.status_code == 400 and body["field"] == "spec" and body["layer"] == "conv 8 k3 q1"
    assert body["error"] == "bad layer 'conv 8 k3 q1': unknown option 'q1' for conv"
    good = client.get("/api/summary", params={"spec": "conv 8 k3 p1; gap; fc 10", "input": "1x28x28"}).json()
    assert good["total_params"] == 80 + 90 and good["rows"][-1]["output_shape"] == [10]
