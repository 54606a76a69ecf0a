"""The Train form's fields and a job's options, checked before any process starts.

`check_form` checks each value against its option's declaration (type, choices, rule) and what the lab can know
beforehand (the dataset's files are here, the batch fits the training split, the epochs are sane); a refusal is a
`FieldError` naming the field and saying it in the form's words. `train_values` then checks the job's options
against their declarations (TrainConfig's, the CLI's own source) and the trainer's `resolve`, so nothing the CLI
would refuse starts; the job's `cnnlab train` argv is built from those checked values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from cnnlab.errors import CnnlabError, closest, unknown_name_error
from cnnlab.lab.networks import Networks
from cnnlab.lab.security import FieldError, LabRequestError

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
# Published schedules top out at a few hundred epochs (ResNet's CIFAR runs ~180, DenseNet's 300); more than this
# is a typo (10^9 once ran until stopped), not a plan.
MAX_EPOCHS = 1000
# An experiment job trains once per seed: 10 seeds give a spread; a hundred are a typo that would run for days.
MAX_SEEDS = 10


class BuiltIn(NamedTuple):
    """A built-in set as the trainer loads it, known without reading its files (CIFAR's take seconds to load)."""

    train_images: int  # the published training split, before the validation hold-out
    channels: int
    side: int  # digits is upsampled from 8x8 to 28 (data.catalog.DIGITS_SIZE)
    classes: int  # what a typed layer spec must map its images to


# digits: 1,797 less its 20% test split (cnnlab.data.catalog)
BUILT_IN = {
    "digits": BuiltIn(1437, 1, 28, 10),
    "mnist": BuiltIn(60000, 1, 28, 10),
    "fashion-mnist": BuiltIn(60000, 1, 28, 10),
    "kmnist": BuiltIn(60000, 1, 28, 10),
    "cifar10": BuiltIn(50000, 3, 32, 10),
    "cifar100": BuiltIn(50000, 3, 32, 100),
}
# How the pages label a field where its name alone would not say it (the rest: "batch_size" -> "Batch size"):
# the Train form's options, and the query fields of the layer tables and the widgets, so that errors speak of
# the field on the page ("Stride must be ...", not "--s must be ...").
LABELS = {
    "lr": "Learning rate",
    "ema": "EMA decay",
    "tta": "Test-time augmentation",
    "tta_shift": "Test-time shift (px)",
    "keep_checkpoints": "Checkpoints kept",
    "channels_last": "Channels-last memory",
    "input": "Input size",
    "spec": "Layer spec",
    "n": "Input side",
    "c": "Input channels",
    "k": "Kernel",
    "s": "Stride",
    "p": "Padding",
    "d": "Dilation",
    "out": "Output channels",
    "wide": "Bottleneck width",
    "size": "Side",
}


def label(name: str) -> str:
    return LABELS.get(name, name.replace("_", " ").capitalize())


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
    label: str = ""  # as the form shows it, e.g. "Batch size"


def form_fields() -> list[FormField]:
    """The `cnnlab train` options a lab job may set, from TrainConfig's declarations (the CLI's own source)."""
    from cnnlab.engine.config import options

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
            label(o.name),
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


def confined_dataset(value, runs_root: Path) -> str:
    """A dataset named by a job of any kind: an imagefolder path is taken relative to the runs root and must stay
    inside it, so no request reads images from elsewhere on the machine."""
    from cnnlab.lab.security import safe_path

    text = str(value)
    if text.startswith("imagefolder:"):
        return f"imagefolder:{safe_path(runs_root, text[len('imagefolder:') :])}"
    return text


def train_values(body: dict, runs_root: Path, networks=None) -> dict:
    """A training job's options, typed and checked from their declarations as `cnnlab train` checks them (the
    model, then each option: the lab's own, unknown ones, values); CnnlabError with the CLI's message otherwise.
    The model is a zoo name, a layer spec, or code in one of `networks`' files (`lab.networks.Networks`), given
    as its absolute reference. Run `check_form` first for the form's own words."""
    from cnnlab.building import ZOO, check_model_name, model_kind
    from cnnlab.engine.config import TrainConfig, validate
    from cnnlab.registry import model_info

    options = dict(body)
    model = options.pop("model", None)
    if not isinstance(model, str) or not model.strip():
        raise CnnlabError("choose a model (see cnnlab models)")
    model = (networks or Networks()).model(model.strip())  # code only from a --models file, before any is read
    if model_kind(model) == ZOO:
        model_info(model)  # raises with the closest names
    else:
        check_model_name(TrainConfig(model=model))  # a spec parses; the file is there
    fields = {f.name: f for f in form_fields()}
    values = {}
    for name, value in options.items():
        if name in LAB_OWNED:
            raise CnnlabError(f"'{name}' is set by the lab, not by a job")
        if name not in fields:
            raise unknown_name_error("training option", name, fields)
        if value is None or value == "":
            continue  # left empty on the form: the dataset's default
        values[name] = _option_value(fields[name], value)
    if "dataset" in values:
        values["dataset"] = confined_dataset(values["dataset"], runs_root)
    validate({"model": model, **values})  # the trainer's value checks, as `cnnlab train` makes them
    _check_dataset(values.get("dataset", "digits"))
    return {"model": model, **values}


def _option_value(field: FormField, value):
    """A JSON value as the option's type, refused in the CLI's words (the flag) where it is not one."""
    from cnnlab.engine.config import option_named

    declared = option_named(field.name)
    if field.kind == "bool":
        if isinstance(value, str) and value.lower() in ("true", "false"):
            value = value.lower() == "true"
        if not isinstance(value, bool):
            raise CnnlabError(f"{field.flag} takes true or false, got {value!r}")
        return value
    if isinstance(value, (dict, list, bool)):
        raise CnnlabError(f"{field.flag} takes a single {field.kind} value, got {value!r}")
    try:
        return declared.parse(str(value))
    except CnnlabError as error:
        raise CnnlabError(f"{field.flag}: {error}") from None


def _check_dataset(name: str) -> None:
    from cnnlab.data.catalog import IMAGEFOLDER_PREFIX, list_datasets

    if not name.startswith(IMAGEFOLDER_PREFIX) and _dataset_key(name) not in list_datasets():
        raise unknown_name_error("dataset", name, list_datasets())


# ------------------------------------------------------------------------------------------ the form's own checks
def dataset_defaults() -> dict[str, dict]:
    """The recipe values a dataset fills in when a field is left empty (the form's placeholders)."""
    from cnnlab.engine.config import DATASET_DEFAULTS, GENERIC_DEFAULTS

    return {"*": dict(GENERIC_DEFAULTS), **{name: dict(values) for name, values in DATASET_DEFAULTS.items()}}


def check_form(body: dict, runs_root: Path, networks=None) -> None:
    """FieldError for the first value the form should not send: a wrong type, choice or range, a dataset whose
    files are not here, a batch larger than the training split, absurd epochs. Names the form does not show
    (unknown or the lab's own options) are left to `train_values`, whose messages are the CLI's."""
    from cnnlab.engine.config import options

    _check_model(body.get("model"), networks)
    fields = {f.name: f for f in form_fields()}
    declared = {o.name: o for o in options()}
    values = {}
    for name, value in body.items():
        if name in fields and value is not None and value != "":
            values[name] = _field_value(fields[name], declared[name], value)
    dataset = str(values.get("dataset") or "digits")
    if values.get("image_size") is not None and not dataset.startswith("imagefolder:"):
        raise FieldError("image_size", f"Image size applies to image-folder datasets only; {dataset} has its own.")
    _check_batch(values, dataset, _train_images(dataset, runs_root), declared["val_fraction"].default)
    _check_spec_output(body["model"].strip(), dataset)


def _check_spec_output(model: str, dataset: str) -> None:
    """A typed layer spec must take the dataset's images to one score per class; checked on the meta device (no
    memory, no weights), so the form says it before a job starts and fails. Image folders are left to the job."""
    import torch

    from cnnlab.building import SPEC, model_kind
    from cnnlab.measure.spec import build_layer_spec
    from cnnlab.models.meta import on_meta

    known = BUILT_IN.get(_dataset_key(dataset))
    if model_kind(model) != SPEC or known is None:
        return
    channels, side, classes = known.channels, known.side, known.classes
    try:
        with on_meta():
            out = build_layer_spec(model, channels)(torch.empty(2, channels, side, side))
    except NotImplementedError:  # an operator without a meta kernel: the job's own check will run it for real
        return
    except (RuntimeError, ValueError, CnnlabError) as error:
        problem = " ".join(str(error).split())[:200].rstrip(".")
        images = f"{dataset} images ({channels}x{side}x{side})"
        raise FieldError("model", f"The spec fails on {images}: {problem}.") from None
    if tuple(out.shape) != (2, classes):
        got = "x".join(map(str, out.shape[1:]))
        raise FieldError("model", f"The spec ends in {got} outputs per image; {dataset} has {classes} classes.")


def _check_model(model, networks) -> None:
    """A zoo name, a layer spec that builds, or code in a --models file (`lab.networks`), in the form's words."""
    from cnnlab.building import SPEC, ZOO, model_kind
    from cnnlab.measure.spec import LayerSpecError, build_layer_spec
    from cnnlab.registry import list_models

    if not isinstance(model, str) or not model.strip():
        raise FieldError(
            "model", "Model is empty: choose a model from the zoo, type a layer spec or pick one of your networks."
        )
    model = (networks or Networks()).model(model.strip())  # CodeNotOffered names the field
    kind = model_kind(model)
    if kind == ZOO and model not in list_models():
        raise FieldError("model", f"Model '{model}' is not in the zoo{_hint(model, list_models())}")
    if kind == SPEC:
        from cnnlab.models.meta import on_meta

        try:
            with on_meta():
                build_layer_spec(model, 3)
        except LayerSpecError as error:
            raise FieldError("model", f"Bad layer '{error.layer}': {error.problem}.") from None


def _hint(name: str, candidates: list[str]) -> str:
    hints = closest(name, candidates)
    return f"; did you mean {', '.join(hints)}?" if hints else "."


def _field_value(field: FormField, declared, value):
    """`value` as the option's type, checked against its choices and rule."""
    name, text = field.name, field.label
    if isinstance(value, (dict, list)):
        raise FieldError(name, f"{text} takes a single value, not a list or an object.")
    if field.kind == "bool":
        if isinstance(value, str) and value.lower() in ("true", "false"):
            value = value.lower() == "true"
        if not isinstance(value, bool):
            raise FieldError(name, f"{text} must be on or off (true or false), got '{value}'.")
        return value
    if field.choices:
        if str(value) not in field.choices:
            raise FieldError(name, f"{text} must be one of {', '.join(field.choices)}; got '{value}'.")
        return str(value)
    if declared.parser is not None:  # a value with units, such as a duration
        try:
            return declared.parse(str(value))
        except CnnlabError as error:
            raise FieldError(name, f"{text}: {error}.") from None
    if field.kind == "str":
        return str(value)
    return _number(field, declared, value)


def _number(field: FormField, declared, value) -> int | float:
    whole = field.kind == "int"
    requirement = declared.check.requirement if declared.check else ("a whole number" if whole else "a number")
    refused = FieldError(field.name, f"{field.label} must be {requirement}, got '{value}'.")
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise refused
    try:
        number = float(value) if not isinstance(value, int) else value
    except ValueError:
        raise refused from None
    if whole and not (math.isfinite(number) and number == int(number)):
        raise refused
    number = int(number) if whole else number
    if number != declared.default and declared.check is not None and not declared.check.test(number):
        raise refused
    if field.name == "epochs" and number > MAX_EPOCHS:
        raise FieldError("epochs", f"Epochs {number:,} is more than the lab runs ({MAX_EPOCHS:,} at most).")
    return number


def _train_images(dataset: str, runs_root: Path) -> int:
    """The dataset's training split size, before the validation hold-out; FieldError when it is unknown or its
    files are not on this machine."""
    from cnnlab.data.catalog import IMAGEFOLDER_PREFIX, list_datasets

    if dataset.startswith(IMAGEFOLDER_PREFIX):
        return _imagefolder_train_images(dataset, runs_root)
    key = _dataset_key(dataset)
    if key not in list_datasets():
        raise FieldError("dataset", f"Dataset '{dataset}' is unknown{_hint(dataset, list_datasets())}")
    here = datasets(runs_root)
    if key not in here:
        missing = f"Dataset {key} is not on this machine (its files were not found)"
        raise FieldError("dataset", f"{missing}; choose one of {', '.join(here)}.")
    return BUILT_IN[key].train_images


def _dataset_key(dataset: str) -> str:
    """The catalog's name for what the form sent (any case, an alias)."""
    from cnnlab.data.catalog import ALIASES

    return ALIASES.get(dataset.strip().lower(), dataset.strip().lower())


def _imagefolder_train_images(dataset: str, runs_root: Path) -> int:
    from cnnlab.data.imagefolder import IMAGE_EXTENSIONS, TEST_FRACTION

    relative = dataset.split(":", 1)[1]
    try:
        folder = Path(confined_dataset(dataset, runs_root).split(":", 1)[1])
    except LabRequestError as error:
        raise FieldError("dataset", f"Dataset folder: {error}.", error.status) from None
    classes = [d for d in folder.iterdir() if d.is_dir()] if folder.is_dir() else []
    count = sum(1 for c in classes for p in c.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not count:
        raise FieldError("dataset", f"Dataset folder {relative} holds no class subfolders of images.")
    return count - math.ceil(TEST_FRACTION * count - 1e-9)  # less its test split, as load_imagefolder splits


def _check_batch(values: dict, dataset: str, images: int, default_val_fraction: float) -> None:
    """The trainer refuses a batch larger than what it trains on: the training split (or its first
    `train_subset` images) less the validation share (stratified_indices holds out ceil(fraction * n))."""
    defaults = dataset_defaults()
    batch = values.get("batch_size") or defaults.get(dataset, defaults["*"])["batch_size"]
    subset = values.get("train_subset")
    kept = min(images, subset) if subset else images
    fraction = values.get("val_fraction", default_val_fraction)
    trained = kept - min(kept, math.ceil(fraction * kept - 1e-9))
    if batch <= trained:
        return
    held = f"{kept:,} less {kept - trained:,} held out for validation"
    if subset and "batch_size" not in values:
        raise FieldError(
            "train_subset",
            f"Train subset {subset:,} leaves {trained:,} training images ({held}), fewer than a batch ({batch:,}).",
        )
    split = f"the training split of {dataset} ({trained:,} images: {held})"
    raise FieldError("batch_size", f"Batch size {batch:,} is larger than {split}.")


# ------------------------------------------------------------------------------------------- experiment jobs
def check_experiment(body: dict) -> None:
    """FieldError for an experiment job's value the Experiments page should not send, in that page's words, before
    the CLI's parser sees it: a seed count or list past MAX_SEEDS, epochs that are not a whole number from 1 to
    MAX_EPOCHS, a seed that is not a whole number, `quick` that is not on or off."""
    if not isinstance(body.get("quick", True), bool):
        raise FieldError("quick", f"Quick must be on or off (true or false), got '{body['quick']}'.")
    bounds = {
        "repeats": ("Seeds per run", 1, MAX_SEEDS),
        "epochs": ("Epochs", 1, MAX_EPOCHS),
        "seed": ("Seed", 0, None),
    }
    for name, (text, low, high) in bounds.items():
        value = body.get(name)
        if value in (None, ""):
            continue
        whole = isinstance(value, int) and not isinstance(value, bool)
        if not whole or value < low or (high is not None and value > high):
            span = f"from {low:,} to {high:,}" if high is not None else f"from {low:,}"
            raise FieldError(name, f"{text} must be a whole number {span}, got '{value}'.")
    if body.get("seeds") not in (None, ""):
        from cnnlab.repeats import parse_seeds

        try:
            seeds = parse_seeds(str(body["seeds"]))
        except CnnlabError:
            raise FieldError(
                "seeds", f"Seeds must be distinct whole numbers such as 0,1,2, got '{body['seeds']}'."
            ) from None
        if len(seeds) > MAX_SEEDS:
            raise FieldError("seeds", f"Seeds: at most {MAX_SEEDS} per run, got {len(seeds)}.")
