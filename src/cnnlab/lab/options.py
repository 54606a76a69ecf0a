"""The Train form's fields and a job's options, checked by the CLI's own code.

A job's JSON options become a `cnnlab train` argv; that argv goes through the CLI's parser and then the trainer's
`resolve`, so a bad option gets the CLI's message word for word, before any process starts.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from cnnlab.errors import CnnlabError, unknown_name_error

# Options the lab sets itself, or that would reach files outside the runs root.
LAB_OWNED = ("out", "overwrite", "resume", "weights", "data_dir", "quiet", "help")
# Shown at the top of the form; the rest fold under "more options".
MAIN_OPTIONS = (
    "dataset",
    "epochs",
    "batch_size",
    "lr",
    "optimizer",
    "schedule",
    "weight_decay",
    "augment",
    "train_subset",
    "seed",
)
DATA_FOLDER = "data"  # imagefolder datasets live in RUNS/data/<name>/<class>/<image>


@dataclass(frozen=True)
class FormField:
    name: str  # the TrainConfig field, e.g. "batch_size"
    flag: str  # the CLI flag, e.g. "--batch-size"
    kind: str  # "int", "float", "str" or "bool" (a --x / --no-x flag; left unset, the default holds)
    default: object  # None: the dataset's default, or resolved at run time
    help: str
    group: str  # TrainConfig's option group, a fieldset on the form
    choices: tuple[str, ...] = ()
    main: bool = False


def _train_parser() -> argparse.ArgumentParser:
    from cnnlab.cli import build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return commands.choices["train"]


def form_fields() -> list[FormField]:
    """The `cnnlab train` options a lab job may set, from TrainConfig's declarations (the CLI's own source)."""
    from cnnlab.training.config import options

    return [
        FormField(
            o.name,
            o.flag,
            "str" if o.parser is not None else o.type.__name__,  # a value with units ("10m") is typed as text
            o.default,
            o.help,
            o.group,
            tuple(o.choices or ()),
            o.name in MAIN_OPTIONS,
        )
        for o in options()
        if o.flag and "train" in o.commands and o.name not in LAB_OWNED and o.type in (int, float, str, bool)
    ]


def datasets(runs_root: Path) -> list[str]:
    """What the Train form offers: digits, the built-in sets whose files are on this machine, and the image folders
    under RUNS/data."""
    from cnnlab.data.catalog import SOURCES, find_files, search_dirs

    found = ["digits"]
    for name, source in sorted(SOURCES.items()):
        if any(find_files(source, folder) for folder in search_dirs(source, None) if folder.is_dir()):
            found.append(name)
    folder = runs_root / DATA_FOLDER
    if folder.is_dir():
        found += [f"imagefolder:{DATA_FOLDER}/{p.name}" for p in sorted(folder.iterdir()) if p.is_dir()]
    return found


def _flag_args(field: FormField, value) -> list[str]:
    if field.kind == "bool":
        if isinstance(value, str) and value.lower() in ("true", "false"):
            value = value.lower() == "true"
        if not isinstance(value, bool):
            raise CnnlabError(f"{field.flag} takes true or false, got {value!r}")
        return [field.flag if value else f"--no-{field.flag[2:]}"]
    if isinstance(value, (dict, list, bool)):
        raise CnnlabError(f"{field.flag} takes a single {field.kind} value, got {value!r}")
    return [field.flag, str(value)]


def confined_dataset(value, runs_root: Path) -> str:
    """A dataset named by a job of any kind: an imagefolder path is taken relative to the runs root and must stay
    inside it, so no request reads images from elsewhere on the machine."""
    from cnnlab.lab.security import safe_path

    text = str(value)
    if text.startswith("imagefolder:"):
        return f"imagefolder:{safe_path(runs_root, text[len('imagefolder:') :])}"
    return text


def train_argv(options: dict, runs_root: Path, out: Path) -> list[str]:
    """`cnnlab train` arguments for a job's options (without the interpreter), checked as the CLI checks them;
    CnnlabError with the CLI's message otherwise."""
    from cnnlab.cli import recipe_options
    from cnnlab.registry import list_models, model_info
    from cnnlab.training.config import validate

    options = dict(options)
    model = options.pop("model", None)
    if not isinstance(model, str) or not model:
        raise CnnlabError("choose a model (see cnnlab models)")
    if model not in list_models():
        model_info(model)  # raises with the closest names
    by_name = {f.name: f for f in form_fields()}
    argv = ["train", model]
    for name, value in options.items():
        if name in LAB_OWNED:
            raise CnnlabError(f"'{name}' is set by the lab, not by a job")
        if name not in by_name:
            raise unknown_name_error("training option", name, by_name)
        if name == "dataset":
            value = confined_dataset(value, runs_root)
        if value is None or value == "":
            continue  # left empty on the form: the dataset's default
        argv += _flag_args(by_name[name], value)
    argv += ["--out", str(out)]
    args = _train_parser().parse_args(argv[1:])  # the CLI's flag checks (CnnlabError from cnnlab's ArgumentParser)
    given = {k: v for k, v in recipe_options(args).items() if k != "out"}
    validate({"model": model, **given})  # the trainer's value checks, as `cnnlab train` makes them
    _check_dataset(args.dataset or "digits")
    return argv


def _check_dataset(name: str) -> None:
    from cnnlab.data.catalog import ALIASES, IMAGEFOLDER_PREFIX, list_datasets

    key = ALIASES.get(name.strip().lower(), name.strip().lower())
    if not name.startswith(IMAGEFOLDER_PREFIX) and key not in list_datasets():
        raise unknown_name_error("dataset", name, list_datasets())


# What the pages call the options that requests carry, for errors in the page's own words ("Stride must be ...",
# not "--s must be ..."). Train form fields not listed here read as their names with spaces ("batch size").
FIELD_LABELS = {
    "input": "input size",
    "spec": "layer spec",
    "n": "input side",
    "c": "input channels",
    "k": "kernel",
    "s": "stride",
    "p": "padding",
    "d": "dilation",
    "out": "output channels",
    "wide": "bottleneck width",
    "size": "side",
}


def field_label(option: str) -> str:
    """The label a page shows for `option`, capitalised to open a sentence."""
    label = FIELD_LABELS.get(option, option.replace("_", " "))
    return label[:1].upper() + label[1:]
