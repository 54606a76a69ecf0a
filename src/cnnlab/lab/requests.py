"""The typed bodies of POST /api/jobs, generated from the option declarations with `pydantic.create_model`.

`TrainJob` has one field per Train-form option (TrainConfig's declarations, as `options.form_fields` lists them),
`ExperimentJob` one per experiment option a job may set (cnnlab.options.commands), `FinetuneJob` the run to
fine-tune and `cnnlab finetune`'s options (FINETUNE_JOB_OPTIONS), `ResumeJob` the run to continue.
They document the API (OpenAPI at /api/openapi.json, read at /api/docs) and hold a job's values once the lab's own
checks (`options.check_form`, `options.check_experiment`) have passed them: the job's argv is built from the model.
The checks run first so that a refusal keeps the form's words and the {"error", "field"} shape.
"""

from __future__ import annotations

import functools
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from cnnlab.lab import options as lab_options
from cnnlab.options import Option
from cnnlab.options.commands import EXPERIMENT_EXTRAS, command

# The experiment options the lab sets itself, or that would reach files outside the runs root (--weights is
# taken, like an imagefolder dataset, as a path inside the runs root: `lab.routes._experiment_args`).
EXPERIMENT_LAB_OWNED = ("out", "data_dir")
QUICK_BY_DEFAULT = True  # the Experiments page runs the seconds-long variant unless told otherwise


def _wire_type(option: Option) -> Any:
    """The JSON type of the option's value: a number written with units (a duration) may come as text ("10m")."""
    kind = list[str] if option.type is list else option.type
    return str | kind if option.parser is not None and kind is float else kind


def _field(option: Option, default: Any = None) -> tuple[Any, Any]:
    described = {"description": option.help} if option.help else {}
    return (_wire_type(option) | None, Field(default=default, title=lab_options.label(option.name), **described))


def _model(name: str, doc: str, fields: dict) -> type[BaseModel]:
    config = ConfigDict(extra="forbid", title=name)
    return create_model(name, __config__=config, __doc__=doc, **fields)


@functools.cache
def train_job() -> type[BaseModel]:
    """A training job: a model and the Train form's options (those left out take the dataset's defaults)."""
    declared = {o.name: o for o in command("train").options}
    fields = {"model": (str, Field(description=declared["model"].help))}
    fields |= {f.name: _field(declared[f.name]) for f in lab_options.form_fields()}
    return _model("TrainJob", "Train `model` with these options, as `cnnlab train` would.", fields)


def experiment_fields() -> list[Option]:
    """The experiment options a job may set: all but those the lab owns (their names, in declared order)."""
    return [o for o in command("experiment").options if not o.positional and o.name not in EXPERIMENT_LAB_OWNED]


def experiment_form() -> list[dict]:
    """The Experiments page's fields, one per option a job may set, from the same declarations as
    `experiment_job` (so the page, the request model and `cnnlab experiment` cannot disagree)."""
    return [
        {
            "name": o.name,
            "flag": o.flag,
            "kind": "str" if o.parser is not None or o.type is list else o.type.__name__,  # "0,1,2" is text
            "default": QUICK_BY_DEFAULT if o.name == "quick" else o.default,
            "help": o.help or "",
            "label": lab_options.label(o.name),
            "choices": list(o.choices or ()),
            "extra": o.name in EXPERIMENT_EXTRAS,  # only for the experiments that accept it
        }
        for o in experiment_fields()
    ]


@functools.cache
def experiment_job() -> type[BaseModel]:
    """An experiment job: the experiment's name and the options `cnnlab experiment` takes (less the lab's own)."""
    fields: dict = {"experiment": (str, Field(description=command("experiment").option("name").help))}
    for option in experiment_fields():
        fields[option.name] = _field(option, QUICK_BY_DEFAULT if option.name == "quick" else option.default)
    doc = f"Run an experiment; {', '.join(EXPERIMENT_EXTRAS)} only for those that accept them."
    return _model("ExperimentJob", doc, fields)


# The `cnnlab finetune` options a lab job may set ("fine-tune this run"): the source is the run named by the job.
FINETUNE_JOB_OPTIONS = (
    "dataset",
    "epochs",
    "batch_size",
    "seed",
    "train_subset",
    "head",
    "phases",
    "freeze",
    "bn_stats",
    "head_lr",
    "backbone_lr",
    "lora_rank",
    "lora_alpha",
    "keep_head",
)


FINETUNE_FORM = ("dataset", "head", "phases", "lora_rank")  # the run page's form; the API takes all of the above


@functools.cache
def finetune_job() -> type[BaseModel]:
    """A fine-tuning job: the run to start from (`finetune`) and the `cnnlab finetune` options it sets."""
    declared = command("finetune")
    fields: dict = {"finetune": (str, Field(description="the run (its folder under the runs root) to fine-tune"))}
    fields |= {name: _field(declared.option(name), declared.option(name).default) for name in FINETUNE_JOB_OPTIONS}
    return _model("FinetuneJob", "Fine-tune run `finetune` on a dataset, as `cnnlab finetune RUN` would.", fields)


@functools.cache
def resume_job() -> type[BaseModel]:
    fields = {"resume": (str, Field(description="the run (its folder under the runs root) to continue"))}
    return _model("ResumeJob", "Continue a run from its last checkpoint.", fields)


def job_models() -> tuple[type[BaseModel], ...]:
    return train_job(), experiment_job(), finetune_job(), resume_job()


def openapi_body() -> dict:
    """POST /api/jobs's requestBody for OpenAPI: one of the job models (their schemas: `schemas`)."""
    refs = [{"$ref": f"#/components/schemas/{model.__name__}"} for model in job_models()]
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": {"oneOf": refs}}}}}


def schemas() -> dict[str, dict]:
    """The JSON schemas of the job models, for OpenAPI's components."""
    found = {}
    for model in job_models():
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        found |= schema.pop("$defs", {})
        found[model.__name__] = schema
    return found


def validated(model: type[BaseModel], values: dict) -> dict:
    """`values` through `model`: the typed values given (None left out). A value the lab's own checks let through
    but the model refuses is a FieldError naming the field, in the form's shape."""
    try:
        return model.model_validate(values).model_dump(exclude_none=True)
    except ValidationError as error:
        first = error.errors()[0]
        name = str(first["loc"][0]) if first.get("loc") else ""
        raise lab_options.FieldError(name, f"{lab_options.label(name)}: {first['msg']}.") from None
