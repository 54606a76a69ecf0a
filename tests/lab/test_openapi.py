"""The API's documentation comes from the option declarations: /api/openapi.json lists the job bodies' schemas
(pydantic models generated from them), /api/docs renders that JSON without any script or CDN."""

from __future__ import annotations

import pytest

from cnnlab.engine.config import options
from cnnlab.options.commands import command

JSON_TYPES = {int: "integer", float: "number", str: "string", bool: "boolean"}


def types_of(schema: dict) -> set[str]:
    return {s["type"] for s in schema.get("anyOf", [schema]) if s.get("type") != "null"}


def test_openapi_lists_the_train_job_with_every_train_option_and_its_type(client):
    spec = client.get("/api/openapi.json").json()
    body = spec["paths"]["/api/jobs"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert [ref["$ref"].rsplit("/", 1)[1] for ref in body["oneOf"]] == [
        "TrainJob",
        "ExperimentJob",
        "FinetuneJob",
        "ResumeJob",
    ]
    train = spec["components"]["schemas"]["TrainJob"]
    assert train["required"] == ["model"] and train["additionalProperties"] is False
    offered = {o.name: o for o in options() if o.flag and "train" in o.commands}
    offered = {name: o for name, o in offered.items() if name not in ("weights", "data_dir")}  # the lab's own
    assert set(train["properties"]) == {"model", *offered}
    for name, option in offered.items():
        expected = {JSON_TYPES[option.type]} | ({"string"} if option.parser else set())  # "10m"
        assert types_of(train["properties"][name]) == expected, name
        assert train["properties"][name]["description"] == option.help
    assert types_of(train["properties"]["epochs"]) == {"integer"} and types_of(train["properties"]["lr"]) == {
        "number",
        "string",
    }  # "find"
    assert train["properties"]["optimizer"]["title"] == "Optimizer"


def test_openapi_lists_the_experiment_job_from_the_experiment_options(client):
    experiment = client.get("/api/openapi.json").json()["components"]["schemas"]["ExperimentJob"]
    declared = [o.name for o in command("experiment").options if not o.positional]
    assert list(experiment["properties"]) == [
        "experiment",
        *(n for n in declared if n not in ("out", "data_dir")),
    ]
    assert experiment["properties"]["quick"]["default"] is True  # the page runs the quick variant
    assert experiment["properties"]["seed"]["default"] == command("experiment").option("seed").default == 0
    assert types_of(experiment["properties"]["repeats"]) == {"integer"}


def test_docs_page_is_rendered_by_the_lab_without_scripts(client):
    page = client.get("/api/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "<script" not in page.text and "cdn" not in page.text.lower()
    assert 'href="/api/openapi.json"' in page.text
    assert "<code>POST /api/jobs</code>" in page.text and 'id="TrainJob"' in page.text
    assert "<code>batch_size</code>" in page.text and "images per optimizer step" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]


@pytest.mark.parametrize(
    "body, message",
    [
        ({"epoch": 2}, "unknown experiment option 'epoch'; did you mean: epochs?"),
        ({"out": "/tmp/x"}, "'out' is set by the lab, not by a job"),
        ({"weights": "/etc/passwd"}, "path '/etc/passwd' leaves the runs folder"),
        ({"models": "resnet18"}, "experiment kernels takes no --models (those that do: "),
    ],
)
def test_experiment_job_options_are_checked_against_the_declarations(client, body, message):
    response = client.post("/api/jobs", json={"experiment": "kernels", **body})
    assert response.status_code == 400 and response.json()["error"].startswith(message)
    assert client.get("/api/jobs").json() == []


def test_an_experiment_job_argv_comes_from_its_checked_values(tmp_path):
    from cnnlab.lab.routes import _experiment_args

    argv = _experiment_args({"experiment": "kernels", "epochs": 2, "seeds": "0,1"}, tmp_path, tmp_path / "out")
    assert argv == [
        "experiment",
        "kernels",
        "--epochs",
        "2",
        "--quick",
        "--out",
        str(tmp_path / "out"),
        "--seed",
        "0",
        "--seeds",
        "0,1",
    ]
