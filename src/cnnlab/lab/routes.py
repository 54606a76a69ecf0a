"""The JSON API under /api. The pages use it, and so can scripts:

GET  /api/models                 the zoo            GET  /api/models/<name>?input=3x32x32   its layer table
GET  /api/summary?spec=&input=   a layer spec's (or a --models network's) shape flow (the Design page)
GET  /api/networks               the --models files and the networks each defines (the Design page's picker)
GET  /api/options                the Train form's fields, the datasets on this machine, their defaults
GET  /api/runs                   the leaderboard    GET  /api/runs/<name>       one run
DELETE /api/runs/<name>          delete a run's folder (409 while a job writes it)
POST /api/runs/<name>/evaluate   confusion matrix, per-class accuracy, misclassified test images
POST /api/runs/<name>/export     model.onnx
POST /api/jobs                   start (or queue) a job: {"model", "dataset", "epochs", ...},
                                 {"resume": RUN} or {"experiment": NAME, "quick": true}; returns {"id", "run"}
                                 (the bodies' schemas: lab/requests.py, served at /api/openapi.json and /api/docs)
GET  /api/jobs                   every job          GET  /api/jobs/<id>         state and progress
GET  /api/jobs/<id>/events       the same, as Server-Sent Events, until the job ends
POST /api/jobs/<id>/stop         checkpoint and stop (SIGTERM); a queued job is cancelled
POST /api/jobs/clear             forget the finished, failed and stopped jobs (records and logs; runs stay)
POST /api/predict                multipart: run, and image (a file) or test_index, optional top_k, target (the class
                                 the overlays explain) and runtime; top-k, the target, the runtime, overlay URLs
GET  /api/layers?run=            the run's layer table (every layer Inspect can show)
POST /api/layer                  multipart: run, image or test_index, layer, optional target; that layer's output,
                                 kernels (a conv) and Grad-CAM weighed at it (maps)
GET  /api/test-image?run=&index= a test image of the run's dataset, as PNG
GET  /api/experiments            the experiments and past results
GET  /api/experiments/results?name=   a results.md as HTML
GET  /api/widgets/<name>?...     a widget's numbers, computed by cnnlab
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from dataclasses import fields
from datetime import datetime
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from starlette.datastructures import UploadFile

from cnnlab.errors import CnnlabError
from cnnlab.lab import follow, networks, options, predict, requests, views, widgets
from cnnlab.lab.security import LabRequestError, safe_path
from cnnlab.options.commands import command
from cnnlab.rundir import FINETUNE

router = APIRouter(prefix="/api")
SSE_INTERVAL = 0.5  # seconds between checks of a job's files


def _root(request: Request) -> Path:
    return request.app.state.root


# --------------------------------------------------------------------------------------------------------- zoo
@router.get("/models")
def models():
    return views.models_table()


@router.get("/models/{name}")
def model(name: str, input: str | None = None):
    return views.model_summary(name, None, input)


@router.get("/summary")
def summary(request: Request, spec: str, input: str | None = None):
    # `spec` may name a --models network; any other code is refused before a file is read
    return views.model_summary(None, request.app.state.networks.model(spec, "spec"), input)


@router.get("/networks")
def own_networks(request: Request):
    return {"files": request.app.state.networks.offered()}


@router.get("/options")
def train_options(request: Request):
    return {
        "fields": [vars(f) for f in options.form_fields()],
        "datasets": options.datasets(_root(request)),
        "defaults": options.dataset_defaults(),
    }


@router.get("/finetune/options")
def finetune_options(request: Request):
    """The run page's "Fine-tune this run" form: the fields a FinetuneJob sets there, from their declarations."""
    declared = command("finetune")
    fields = [declared.option(name) for name in requests.FINETUNE_FORM]
    return {
        "fields": [
            {
                "name": o.name,
                "label": options.label(o.name),
                "help": o.help,
                "choices": list(o.choices or ()),
                "kind": "int" if o.type is int else "str",
                "default": o.default,
            }
            for o in fields
        ],  # fmt: skip
        "datasets": options.datasets(_root(request)),
    }


# -------------------------------------------------------------------------------------------------------- runs
@router.get("/runs")
def runs(request: Request):
    return views.runs_table(_root(request))


@router.post("/runs/{name:path}/evaluate")
def evaluate(request: Request, name: str):
    from cnnlab.lab.evaluation import evaluate_run

    return evaluate_run(views.training_run(_root(request), name).path, predict.Cache(_root(request)))


@router.post("/runs/{name:path}/export")
def export(request: Request, name: str):
    import cnnlab

    path = views.training_run(_root(request), name).path
    result = cnnlab.export(path, "onnx")
    return {"file": f"/files/{name}/{Path(result['path']).name}"}


@router.get("/runs/{name:path}")
def run(request: Request, name: str):
    return views.run_detail(_root(request), name)


@router.delete("/runs/{name:path}")
def delete_run(request: Request, name: str):
    root = _root(request)
    path = views.deletable_run_dir(root, name)
    request.app.state.jobs.delete_run(path)
    return {"deleted": name}


# -------------------------------------------------------------------------------------------------------- jobs
async def _json_body(request: Request) -> dict:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise LabRequestError("the body must be a JSON object", 400) from None
    if not isinstance(body, dict):
        raise LabRequestError("the body must be a JSON object", 400)
    return body


def _run_label(model: str) -> str:
    """What a run's folder is named after: a zoo name, a network's class name, or "spec" for a layer spec."""
    from cnnlab.building import REFERENCE, SPEC, model_kind

    kind = model_kind(model)
    return model.rsplit(":", 1)[1] if kind == REFERENCE else "spec" if kind == SPEC else model


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-")[-40:] or "data"


def _new_run_dir(root: Path, *parts: str) -> Path:
    """A new, empty run folder, reserved now: mkdir either creates it or fails, so two jobs submitted in the same
    second (from two threads or two servers) never get one name. The trainer and the experiments take an empty
    --out folder as a new run."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    base = root / "-".join([*(_slug(p) for p in parts), stamp])
    path, n = base, 1
    while True:
        try:
            path.mkdir(parents=True)
            return path
        except FileExistsError:
            path, n = base.with_name(f"{base.name}-{n}"), n + 1


@contextlib.contextmanager
def _reserved_run_dir(root: Path, *parts: str):
    """_new_run_dir, removed again if the job is refused before it is recorded."""
    path = _new_run_dir(root, *parts)
    try:
        yield path
    except BaseException:
        with contextlib.suppress(OSError):
            path.rmdir()
        raise


@router.post("/jobs", openapi_extra=requests.openapi_body())
async def submit(request: Request):
    """Start (or queue) a job: a TrainJob, an ExperimentJob or a ResumeJob (their schemas list the options).
    The body is read here rather than by FastAPI, so that a refusal names the form's field in its words."""
    body = await _json_body(request)
    return await run_in_threadpool(_submit, request, body)


def _submit(request: Request, body: dict) -> dict:
    root, store = _root(request), request.app.state.jobs
    if "resume" in body:
        run = views.training_run(root, str(body["resume"]))
        path, model = run.path, run.read_config().model
        networks.check_run_code(run)  # a foreign run's code is refused here, not in the job
        store.refuse_busy(path)
        if not (path / "checkpoints").is_dir():
            raise LabRequestError(f"run '{body['resume']}' has no checkpoint to resume from", 409)
        # A fine-tuned run rebuilds its prepared model from finetune.json: finetune resumes it, train would refuse.
        argv = ["finetune", "--resume", str(path)] if run.has(FINETUNE) else ["train", model, "--resume", str(path)]
        record = store.submit("train", argv, path, label=f"resume {model}")
    elif "finetune" in body:
        record = _submit_finetune(root, store, body)
    elif "experiment" in body:
        options.check_experiment(body)  # the Experiments page's words, before anything is reserved
        name = str(body["experiment"])
        with _reserved_run_dir(root, "experiment", name) as out:
            argv = _experiment_args(body, root, out, request.app.state.networks)
            record = store.submit("experiment", argv, out, label=f"experiment {name}")
    else:
        offered = request.app.state.networks
        options.check_form(body, root, offered)  # the form's own words, naming the field, before anything is reserved
        values = requests.validated(requests.train_job(), options.train_values(body, root, offered))  # the CLI's
        dataset = str(body.get("dataset") or "digits")
        with _reserved_run_dir(root, _run_label(values["model"]), dataset) as out:
            argv = command("train").argv({**values, "out": str(out)})
            record = store.submit("train", argv, out, label=f"{body['model']} on {dataset}")
    return {"id": record["id"], "run": record["run"]}


def _submit_finetune(root: Path, store, body: dict) -> dict:
    """A "fine-tune this run" job: `cnnlab finetune RUN` with the job's options (checked against their
    declarations), into a new folder named after the source run and the dataset."""
    source = views.training_run(root, str(body["finetune"]))
    given = {key: value for key, value in body.items() if value not in (None, "")}
    command("finetune").check_keywords(given, ["finetune", *requests.FINETUNE_JOB_OPTIONS])
    if "dataset" in given:
        given["dataset"] = options.confined_dataset(given["dataset"], root)
    values = requests.validated(requests.finetune_job(), given)
    del values["finetune"]
    for name, value in values.items():
        _check_field(name, value)
    from cnnlab.workflows.finetune import Recipe  # torch: loaded by the first fine-tuning job, not the server

    own = {f.name for f in fields(Recipe)}
    Recipe(**{k: v for k, v in values.items() if k in own}).check({k: v for k, v in values.items() if k not in own})
    dataset = str(values.get("dataset") or "digits")
    with _reserved_run_dir(root, f"{source.path.name}-finetuned", dataset) as out:
        argv = command("finetune").argv({"source": str(source.path), **values, "out": str(out)})
        return store.submit("finetune", argv, out, label=f"fine-tune {body['finetune']} on {dataset}")


def _check_field(name: str, value) -> None:
    """FieldError (the field named) for a value `cnnlab finetune`'s flag would refuse: its parser's or its number
    check's words."""
    option = command("finetune").option(name)
    try:
        if option.check is not None and not isinstance(value, str):
            option.check.validate(option.flag or name, value)
        elif option.type is str:
            option.parse(str(value))
    except CnnlabError as error:
        raise options.FieldError(name, f"{options.label(name)}: {error}.") from None
    if option.choices and value not in option.choices:
        raise options.FieldError(name, f"{options.label(name)} must be one of: {', '.join(option.choices)}.")


def _experiment_args(body: dict, root: Path, out: Path, offered: networks.Networks | None = None) -> list[str]:
    """`cnnlab experiment` arguments for a job, from its options checked against their declarations (the
    experiment's own: models only where it accepts them, code only from `offered`, the --models files)."""
    from cnnlab.building import split_models
    from cnnlab.experiments import check_accepts, get_experiment

    name = str(body["experiment"])
    get_experiment(name)  # an unknown name: the closest ones, as the CLI says
    given = _aliases_resolved({key: value for key, value in body.items() if key != "experiment"})
    for key in given:
        if key in requests.EXPERIMENT_LAB_OWNED:
            raise CnnlabError(f"'{key}' is set by the lab, not by a job")
    command("experiment").check_keywords(given, [o.name for o in requests.experiment_fields()])
    given = {key: value for key, value in given.items() if value not in (None, "")}
    if "dataset" in given:
        given["dataset"] = options.confined_dataset(given["dataset"], root)
    if "weights" in given:  # a checkpoint put under the runs root, never a file elsewhere on the machine
        given["weights"] = str(safe_path(root, str(given["weights"])))
    if isinstance(given.get("models"), str):  # "a,b": code only from a --models file, as a training job's model
        offered = offered or networks.Networks()
        given["models"] = ",".join(offered.model(m, "models") for m in split_models(given["models"]))
    values = requests.validated(requests.experiment_job(), {"experiment": name, **given})
    del values["experiment"]
    check_accepts(name, values)
    return command("experiment").argv({"name": name, **values, "out": str(out)})


def _aliases_resolved(given: dict) -> dict:
    """A job's options with each declared alias named as its option: {"model": X} is {"models": X}, as the CLI
    takes --model for --models. Both at once is refused."""
    for option in requests.experiment_fields():
        for alias in (a.removeprefix("--").replace("-", "_") for a in option.aliases):
            if alias in given:
                if option.name in given:
                    raise CnnlabError(f"'{alias}' and '{option.name}' name one option; give one")
                given[option.name] = given.pop(alias)
    return given


@router.get("/jobs")
def jobs(request: Request):
    store = request.app.state.jobs
    store.advance()
    return [follow.job_view(store, r["id"]) for r in store.records()]


@router.post("/jobs/clear")
def clear_jobs(request: Request):
    return {"cleared": request.app.state.jobs.clear_finished()}


@router.get("/jobs/{job_id}")
def job(request: Request, job_id: str):
    store = request.app.state.jobs
    store.advance()
    return follow.job_view(store, job_id)


@router.post("/jobs/{job_id}/stop")
def stop(request: Request, job_id: str):
    request.app.state.jobs.stop(job_id)
    return follow.job_view(request.app.state.jobs, job_id)


@router.get("/jobs/{job_id}/events")
async def events(request: Request, job_id: str):
    store = request.app.state.jobs
    store.record(job_id)  # 404 before the stream starts

    async def stream():
        last = None
        while not await request.is_disconnected():
            view = await run_in_threadpool(follow.job_view, store, job_id)
            text = json.dumps(view)
            if text != last:
                yield f"data: {text}\n\n"
                last = text
            else:
                yield ": waiting\n\n"  # a comment keeps proxies and the browser's connection alive
            if view["state"] in ("finished", "failed", "stopped"):
                yield "event: end\ndata: {}\n\n"
                return
            await asyncio.sleep(SSE_INTERVAL)

    return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


# ----------------------------------------------------------------------------------------------------- inspect
@router.post("/predict")
async def predict_image(request: Request):
    # The body's size is capped while it streams in (middleware.BodyLimit), chunked or not.
    form = await request.form(max_files=1, max_fields=8)
    image = form.get("image")
    data = await image.read(predict.MAX_UPLOAD_BYTES + 1) if isinstance(image, UploadFile) else None
    fields = (form.get(name) for name in ("test_index", "top_k", "target", "runtime"))
    return await run_in_threadpool(_predict, request, form.get("run"), data, *fields)


def _loaded_run(request: Request, run_name):
    if not isinstance(run_name, str) or not run_name:
        raise LabRequestError("choose a run ('run' field)", 400)
    return predict.load(views.training_run(_root(request), run_name).path)


def _image(loaded, data: bytes | None, test_index):
    """(uint8 image at the run's size, its true class or None): the upload, else the test image by number."""
    if data is not None:
        return predict.decode_image(data, loaded.data["in_chans"], loaded.data["image_size"]), None
    if isinstance(test_index, str) and test_index.isdigit():
        return predict.test_image(loaded, int(test_index))
    raise LabRequestError("send an image file ('image') or a test image number ('test_index')", 400)


def _predict(request: Request, run_name, data: bytes | None, test_index, top_k, target, runtime=None) -> dict:
    root = _root(request)
    loaded = _loaded_run(request, run_name)
    image, truth = _image(loaded, data, test_index)
    k = int(top_k) if isinstance(top_k, str) and top_k.isdigit() and int(top_k) > 0 else 5
    runtime = runtime if isinstance(runtime, str) and runtime else None  # None: the declared default (auto)
    return {
        "run": run_name,
        "truth": truth,
        **predict.predict(loaded, image, predict.Cache(root), k, target, runtime=runtime),
    }


@router.get("/layers")
def run_layers(request: Request, run: str):
    return predict.run_layers(_loaded_run(request, run))


@router.post("/layer")
async def layer(request: Request):
    form = await request.form(max_files=1, max_fields=8)
    image = form.get("image")
    data = await image.read(predict.MAX_UPLOAD_BYTES + 1) if isinstance(image, UploadFile) else None
    fields = (form.get(name) for name in ("test_index", "layer", "target"))
    return await run_in_threadpool(_layer, request, form.get("run"), data, *fields)


def _layer(request: Request, run_name, data: bytes | None, test_index, layer, target) -> dict:
    if not isinstance(layer, str) or not layer:
        raise LabRequestError("choose a layer ('layer' field)", 400)
    loaded = _loaded_run(request, run_name)
    image, truth = _image(loaded, data, test_index)
    shown = predict.layer_view(loaded, image, layer, predict.Cache(_root(request)), target)
    return {"run": run_name, "truth": truth, **shown}


@router.get("/test-image")
def test_image(request: Request, run: str, index: int):
    loaded = predict.load(views.training_run(_root(request), run).path)
    image, truth = predict.test_image(loaded, index)
    return Response(predict.png_bytes(image), media_type="image/png", headers={"X-Class": truth})


# ------------------------------------------------------------------------------------------ experiments, widgets
@router.get("/experiments")
def experiments(request: Request):
    return views.experiments(_root(request))


@router.get("/experiments/results", response_class=HTMLResponse)
def experiment_results(request: Request, name: str):
    return views.render_results_md(_root(request), name)


@router.get("/widgets/{name}")
def widget(request: Request, name: str):
    params = dict(request.query_params)
    params.pop("token", None)
    return widgets.compute(name, params)
