"""The lab's sweeps: the studies under the runs root, and a sweep started from the Train form as a job.

GET  /api/sweeps   every sweep folder under the runs root (its sweep.json) with its trials table (sweep.csv), the
                   best trial's `cnnlab train` line, Optuna's plot files and the job writing it, if any
POST /api/sweeps   {"options": the Train form's options, "params": [{"name", "low", "high", "log"} or
                   {"name", "choices": [...]}], "trials": N, "pruner": "median"}: starts (or queues) a job of kind
                   `sweep` (`cnnlab sweep MODEL ... --param ... --out RUNS/sweep-MODEL-DATASET-<time>`);
                   returns {"id", "run"}

A sweep is checked before it starts: the options as a training job's (the form's own field errors), each search
row in the page's words (field "param-I", I its row), then as `cnnlab sweep` parses it (cnnlab.sweeps.space).
"""

from __future__ import annotations

import math
import shlex
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool

from cnnlab.errors import CnnlabError, RunFileError
from cnnlab.lab.lrfind import checked_recipe
from cnnlab.lab.options import FieldError, form_fields, label
from cnnlab.lab.routes import _json_body, _reserved_run_dir, _run_label
from cnnlab.lab.security import LabRequestError, relative_name
from cnnlab.options.commands import DEFAULT_SPACES, PRUNERS, command
from cnnlab.rundir import find_sweeps

router = APIRouter(prefix="/api")
KIND = "sweep"
# A sweep from the lab runs on this machine, one trial after another: a few hundred trials are days of work, more a
# typo. (The CLI takes any count, for studies shared by many machines.)
MAX_TRIALS = 200
PLOT_NAMES = ("history", "parallel", "importance")  # cnnlab.sweeps.report's HTML plots


@router.get("/sweeps")
def sweeps(request: Request) -> list[dict]:
    root: Path = request.app.state.root
    writing = _sweep_jobs(request.app.state.jobs)
    found = []
    for folder in find_sweeps(root):
        try:
            spec = folder.read_spec()
        except RunFileError:  # a sweep.json being written, or not a sweep's: listed elsewhere, not here
            continue
        try:
            trials = folder.read_table()
        except RunFileError:  # no trial has ended yet
            trials = []
        path = relative_name(root, folder.path)
        found.append(
            {
                "path": path,
                "study": spec.study,
                "storage": spec.storage,
                "space": dict(spec.space),
                "trials_wanted": spec.extra.get("trials_wanted"),
                "model": spec.extra.get("model"),
                "dataset": spec.extra.get("dataset"),
                "trials": trials,
                "best": _best(trials, spec, folder.path),
                "plots": [
                    f"/files/{path}/{name}.html" for name in PLOT_NAMES if (folder.path / f"{name}.html").is_file()
                ],
                "report": folder.report.is_file(),
                "job": writing.get(str(folder.path)),
            }
        )
    return found


def _sweep_jobs(store) -> dict[str, dict]:
    """The newest sweep job of each folder: {run_dir: {"id", "state"}}."""
    found = {}
    for record in store.records():  # oldest first: a later job of one folder replaces an earlier one
        if record.get("kind") == KIND:
            found[record["run_dir"]] = {"id": record["id"], "state": store.state(record)[0]}
    return found


def _number(text) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _best(trials: list[dict], spec, folder: Path) -> dict | None:
    """The COMPLETE trial with the highest validation accuracy (the study's objective), and its `cnnlab train`
    line as sweep.md writes it; the line only where sweep.json records the model and fixed options."""
    complete = [
        row for row in trials if row.get("state") == "COMPLETE" and _number(row.get("val_accuracy")) is not None
    ]
    if not complete:
        return None
    best = max(complete, key=lambda row: _number(row["val_accuracy"]))
    line = None
    if spec.extra.get("model"):
        values = {"model": spec.extra["model"], **spec.extra.get("fixed", {})}
        values |= {name: best[name] for name in spec.space if best.get(name) not in (None, "")}
        values["out"] = str(folder / "best")
        if spec.extra.get("dataset"):
            values["dataset"] = spec.extra["dataset"]
        try:
            line = shlex.join(["cnnlab", *command("train").argv(values)])
        except CnnlabError:  # a sweep.json from another version: the table still shows the trial
            line = None
    return {"number": best["number"], "val_accuracy": _number(best["val_accuracy"]), "command": line}


# ------------------------------------------------------------------------------------------------ a new sweep
def searchable() -> dict[str, str]:
    """The Train form's numeric fields a sweep may search: {name: label}. lr is typed as text on the form ("find"
    is a value too) but searched as a number."""
    from cnnlab.sweeps.space import sweepable

    declared = {o.name: o for o in command("sweep").options}
    allowed = set(sweepable())
    return {
        f.name: f.label
        for f in form_fields()
        if f.name in allowed
        and f.name in declared
        and declared[f.name].type in (int, float)
        and f.name != "time_budget"
    }


def param_text(row, index: int, names: dict[str, str]) -> str:
    """One search row as `cnnlab sweep`'s NAME=SPEC; FieldError("param-I") in the page's words."""
    field = f"param-{index}"
    if not isinstance(row, dict):
        raise FieldError(field, f"Search row {index + 1} must be an object with a name and a range or choices.")
    name = row.get("name")
    if name not in names:
        raise FieldError(field, f"Parameter '{name}' cannot be searched; choose one of {', '.join(names)}.")
    text = label(name)
    if row.get("choices") not in (None, "", []):
        choices = row["choices"]
        if not isinstance(choices, list) or not all(_plain_number(c) for c in choices):
            raise FieldError(field, f"{text}: the choices must be a list of numbers, got '{choices}'.")
        return f"{name}={','.join(repr(c) if isinstance(c, float) else str(c) for c in choices)}"
    low, high = row.get("low"), row.get("high")
    if not (_plain_number(low) and _plain_number(high)):
        raise FieldError(field, f"{text}: give a low and a high number, or a list of choices.")
    if low >= high:
        raise FieldError(field, f"{text}: the range {low:g} to {high:g} is reversed or empty; low must be below high.")
    log = row.get("log", False)
    if not isinstance(log, bool):
        raise FieldError(field, f"{text}: log must be on or off (true or false), got '{log}'.")
    if log and low <= 0:
        raise FieldError(field, f"{text}: a log range needs a positive low bound, got {low:g}.")
    return f"{name}={low!r}:{high!r}" + (":log" if log else "")


def _plain_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def sweep_args(body: dict, fixed: dict) -> dict:
    """The search (`param` texts), `trials` and `pruner` of a sweep body, checked; FieldError in the page's words."""
    from cnnlab.sweeps.space import default_space, parse_param

    rows, names = body.get("params"), searchable()
    if rows == [] and (defaults := default_space(fixed.get("dataset"), fixed)):
        return {"param": defaults, **_trials_and_pruner(body)}  # the dataset's default search, as `cnnlab sweep`'s
    if not isinstance(rows, list) or not rows:
        raise FieldError(
            "params",
            "Add a parameter to search (for example lr from 0.001 to 0.1, log); "
            f"on {', '.join(sorted(DEFAULT_SPACES))} the rows may stay empty: a default search is used there.",
        )
    texts, seen = [], set()
    for index, row in enumerate(rows):
        text = param_text(row, index, names)
        name = row["name"]
        if name in seen:
            raise FieldError(f"param-{index}", f"{label(name)} is searched twice; keep one row for it.")
        if name in fixed:
            raise FieldError(f"param-{index}", f"{label(name)} is searched and also set on the form; clear one.")
        try:
            parse_param(text)  # the option's own checks, as `cnnlab sweep` makes them
        except CnnlabError as error:
            problem = str(error).split(": ", 1)[-1].rstrip(".")  # less the CLI's "--param NAME: "
            raise FieldError(f"param-{index}", f"{label(name)}: {problem}.") from None
        seen.add(name)
        texts.append(text)
    return {"param": texts, **_trials_and_pruner(body)}


def _trials_and_pruner(body: dict) -> dict:
    trials = body.get("trials")
    if not (isinstance(trials, int) and not isinstance(trials, bool) and 1 <= trials <= MAX_TRIALS):
        raise FieldError("trials", f"Trials must be a whole number from 1 to {MAX_TRIALS}, got '{trials}'.")
    pruner = body.get("pruner") or "median"
    if pruner not in PRUNERS:
        raise FieldError("pruner", f"Pruner must be one of {', '.join(PRUNERS)}; got '{pruner}'.")
    return {"trials": trials, "pruner": pruner}


@router.post("/sweeps")
async def start_sweep(request: Request):
    body = await _json_body(request)
    return await run_in_threadpool(_start, request, body)


def _start(request: Request, body: dict) -> dict:
    root, store = request.app.state.root, request.app.state.jobs
    given = body.get("options", {})
    if not isinstance(given, dict):
        raise LabRequestError("'options' must be a JSON object: the Train form's fields", 400)
    fixed = checked_recipe(given, root, KIND, request.app.state.networks)
    search = sweep_args(body, {k: v for k, v in fixed.items() if k != "model"})
    dataset = str(fixed.get("dataset") or "digits")
    with _reserved_run_dir(root, "sweep", _run_label(fixed["model"]), dataset) as out:
        argv = command(KIND).argv({**fixed, **search, "out": str(out)})
        record = store.submit(KIND, argv, out, label=f"sweep {fixed['model']} on {dataset}")
    return {"id": record["id"], "run": record["run"], "trials": search["trials"]}
