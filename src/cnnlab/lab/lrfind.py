"""The Train page's "find lr": an lr range test (`cnnlab lr-find`) run as a job, and its curve read back.

POST /api/lr-find          the Train form's options (as POST /api/jobs takes them); starts (or queues) a job of kind
                           `lr-find` writing RUNS/lr-find-MODEL-DATASET-<time>; returns {"id", "run"}
GET  /api/lr-find/<run>    that folder's lr-find.json: the suggestion, its rule and the curve (lrs, losses, smoothed)

The form is checked exactly as a training job's is (`options.check_form`, then the CLI's checks), so a refusal names
the form's field in the same words; the options `cnnlab lr-find` does not take (the lr itself) are left out.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool

from cnnlab.errors import RunFileError, RunFileMissing
from cnnlab.lab import options, requests
from cnnlab.lab.follow import clean
from cnnlab.lab.routes import _json_body, _reserved_run_dir, _run_label
from cnnlab.lab.security import LabRequestError, safe_path
from cnnlab.options.commands import command
from cnnlab.rundir import LrFindFolder

router = APIRouter(prefix="/api")
KIND = "lr-find"


def checked_recipe(body: dict, root, name: str, networks) -> dict:
    """The Train form's options checked as a training job's are, then kept to those `cnnlab NAME` takes."""
    options.check_form(body, root, networks)  # the form's own words, naming the field
    values = requests.validated(requests.train_job(), options.train_values(body, root, networks))  # the CLI's
    taken = set(command(name).names())
    return {key: value for key, value in values.items() if key in taken}


@router.post("/lr-find")
async def start_lr_find(request: Request):
    body = await _json_body(request)
    return await run_in_threadpool(_start, request, body)


def _start(request: Request, body: dict) -> dict:
    root, store = request.app.state.root, request.app.state.jobs
    values = checked_recipe(body, root, KIND, request.app.state.networks)
    dataset = str(values.get("dataset") or "digits")
    with _reserved_run_dir(root, "lr-find", _run_label(values["model"]), dataset) as out:
        argv = command(KIND).argv({**values, "out": str(out)})
        record = store.submit(KIND, argv, out, label=f"lr find {values['model']} on {dataset}")
    return {"id": record["id"], "run": record["run"]}


@router.get("/lr-find/{run:path}")
def lr_find_result(request: Request, run: str) -> dict:
    folder = LrFindFolder(safe_path(request.app.state.root, run))
    try:
        found = folder.read_record()
    except RunFileMissing:
        raise LabRequestError(f"'{run}' holds no lr range test (yet)", 404) from None
    except RunFileError as error:
        raise LabRequestError(f"'{run}': {error}", 409) from None
    return clean({**found, "run": run})  # a diverged loss is inf or NaN, which JSON cannot carry
