""" "Fine-tune this run" as a lab job: POST /api/jobs {"finetune": RUN, ...} runs `cnnlab finetune RUN` with the
options the job sets (declared once, in cnnlab.options.commands), into a new run folder; a bad value is a 400
naming its field, before anything is reserved."""

from __future__ import annotations

import json

import pytest
from test_jobs import wait_for

from cnnlab.options.commands import command


def test_openapi_lists_the_finetune_job_from_finetune_options(client):
    schema = client.get("/api/openapi.json").json()["components"]["schemas"]["FinetuneJob"]
    assert schema["required"] == ["finetune"] and schema["additionalProperties"] is False
    assert schema["properties"]["head"]["description"] == command("finetune").option("head").help
    assert {"dataset", "head", "phases", "lora_rank", "bn_stats"} <= set(schema["properties"])


@pytest.mark.parametrize(
    "body, status, field, words",
    [
        ({"phases": "head:1:adam:1e-3"}, 400, "phases", "optimizer is sgd, adamw or muon"),
        ({"bn_stats": "sometimes"}, 400, "bn_stats", "must be one of: frozen, update"),
        ({"lora_rank": 0}, 400, "lora_rank", "--lora-rank must be a positive whole number, got 0"),
        ({"weights": "x.pth"}, 400, None, "unknown training option 'weights'"),
        ({"phases": "head:1:adamw:1e-3", "epochs": 2}, 400, None, "--epochs does not combine with --phases"),
    ],
)
def test_a_bad_finetune_job_is_a_400_naming_its_field(digits_run, make_client, body, status, field, words):
    root, name = digits_run
    response = make_client(root).post("/api/jobs", json={"finetune": name, **body})
    assert response.status_code == status, response.json()
    assert words in response.json()["error"].lower() or words in response.json()["error"]
    assert response.json().get("field") == field
    assert not list(root.glob(f"{name}-finetuned*"))  # nothing reserved


def test_an_unknown_source_run_is_a_404(client):
    response = client.post("/api/jobs", json={"finetune": "no-such-run", "dataset": "digits"})
    assert response.status_code == 404 and "no run 'no-such-run'" in response.json()["error"]


@pytest.mark.slow
def test_fine_tune_this_run_as_a_job(digits_run, make_client):
    root, name = digits_run
    client = make_client(root)
    body = {"finetune": name, "dataset": "digits", "train_subset": 200, "head": "linear"}
    created = client.post("/api/jobs", json={**body, "phases": "head:1:adamw:1e-3,all:1:adamw:1e-4"}).json()
    view = wait_for(client, created["id"], ("finished", "failed"))
    assert view["state"] == "finished", view["log"]
    assert created["run"].startswith(f"{name}-finetuned-digits")
    record = json.loads((root / created["run"] / "finetune.json").read_text())
    # lenet5's whole classifier is fc3 (84 -> 10): 850 parameters train in the head phase.
    assert record["trainable_params"] == 84 * 10 + 10 and record["phases"].startswith("head:1")
    detail = client.get(f"/api/runs/{created['run']}").json()
    assert [m["phase"] for m in detail["metrics"]] == [1, 2]
    # The boundary the run page and the Train page draw, labelled as curves.png labels it.
    mark = {"after_epoch": 1, "x": 1.5, "phase": 2, "label": "phase 2: all"}
    assert detail["phase_marks"] == [mark] and view["progress"]["phase_marks"] == [mark]
    assert view["results"]["status"] == "completed"  # a fine-tuning job's results, as a training job's
    facts = detail["finetune"]
    assert facts["source_run"] == name and facts["trainable_params"] == 850 and facts["bn_stats"] == "frozen"
    assert facts["head"] == "linear" and facts["phases"] == "head:1:adamw:1e-3,all:1:adamw:1e-4"
    assert client.get(f"/api/runs/{name}").json()["finetune"] is None  # a run trained from scratch


def test_the_run_page_form_fields_come_from_the_declarations(client):
    body = client.get("/api/finetune/options").json()
    assert [f["name"] for f in body["fields"]] == ["dataset", "head", "phases", "lora_rank"]
    head = next(f for f in body["fields"] if f["name"] == "head")
    assert head["help"] == command("finetune").option("head").help and head["default"] == "last"
    assert next(f for f in body["fields"] if f["name"] == "lora_rank")["kind"] == "int"
    assert body["datasets"][0] == "digits"
    page = client.get("/runs/some-run").text
    assert 'id="finetune-form"' in page and "Fine-tune this run" in page
