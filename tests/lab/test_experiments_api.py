"""The Experiments page runs any experiment with its flags: its fields, the request model and the job's argv all
come from the `cnnlab experiment` declarations (cnnlab.options.commands). No job runs here: the store's process
start is replaced by a recorder."""

import pytest

from cnnlab.lab.requests import EXPERIMENT_LAB_OWNED
from cnnlab.options.commands import command


@pytest.fixture
def lab(tmp_path, make_client, monkeypatch):
    """(client, runs root, started argvs): jobs are recorded, never started."""
    root = tmp_path / "runs"
    client = make_client(root)
    store, started = client.app.state.jobs, []
    monkeypatch.setattr(store, "_start", lambda record: started.append(record["argv"][3:]))
    return client, root, started


def test_the_page_fields_are_the_declared_experiment_options(lab):
    client, _, _ = lab
    body = client.get("/api/experiments").json()
    declared = [o for o in command("experiment").options if not o.positional and o.name not in EXPERIMENT_LAB_OWNED]
    assert [f["name"] for f in body["fields"]] == [o.name for o in declared]
    assert [f["flag"] for f in body["fields"]] == [o.flag for o in declared]
    by_name = {f["name"]: f for f in body["fields"]}
    assert by_name["quick"] == {**by_name["quick"], "kind": "bool", "default": True}
    assert by_name["seeds"]["kind"] == "str" and by_name["epochs"]["kind"] == "int"  # "0,1,2" is typed as text
    assert by_name["models"]["extra"] and by_name["weights"]["extra"] and not by_name["seeds"]["extra"]
    lesion = next(e for e in body["experiments"] if e["name"] == "lesion")
    assert lesion["accepts"] == ["models", "weights"]


def test_an_experiment_job_with_seeds_and_a_model_is_passed_through(lab):
    client, root, started = lab
    body = {"experiment": "degradation", "seeds": "0,1", "models": "plain8,resnet8", "epochs": 1, "quick": False}
    response = client.post("/api/jobs", json=body)
    assert response.status_code == 200, response.text
    out = root / response.json()["run"]
    assert started == [
        ["experiment", "degradation", "--epochs", "1", "--out", str(out), "--seed", "0", "--seeds", "0,1",
         "--models", "plain8,resnet8"]
    ]  # fmt: skip


def test_a_lesion_job_takes_weights_inside_the_runs_root(lab):
    """--model, the CLI's alias of --models, is taken by its name too; the weights file is one under the runs root."""
    client, root, started = lab
    body = {"experiment": "lesion", "model": "resnet50", "weights": "weights/resnet50.pth", "dataset": "digits"}
    response = client.post("/api/jobs", json=body)
    assert response.status_code == 200, response.text
    argv = started[0]
    assert argv[argv.index("--models") + 1] == "resnet50" and "--quick" in argv
    assert argv[argv.index("--weights") + 1] == str((root / "weights" / "resnet50.pth").resolve())


@pytest.mark.parametrize(
    "body, message",
    [
        ({"experiment": "degradation", "seeds": "0,x"}, "Seeds must be distinct whole numbers such as 0,1,2"),
        ({"experiment": "degradation", "epochs": "two"}, "Epochs must be a whole number from 1 to 1,000"),
        ({"experiment": "kernels", "models": "resnet18"}, "experiment kernels takes no --models"),
        ({"experiment": "lesion", "weights": "../elsewhere.pth"}, "leaves the runs folder"),
        ({"experiment": "lesion", "model": "a", "models": "b"}, "'model' and 'models' name one option"),
    ],
)
def test_a_bad_flag_value_is_a_400_with_one_line(lab, body, message):
    client, root, started = lab
    response = client.post("/api/jobs", json=body)
    error = response.json()["error"]
    assert response.status_code == 400 and message in error and "\n" not in error
    assert started == [] and not any(root.glob("experiment-*"))
