"""The training configuration: one dataclass, saved as config.json with every run, and the one place that declares
each option.

Each field's metadata (`option(...)`) holds its help text, its CLI flag, its choices, the check its value must
pass and whether it may change when a run is resumed. `options()` lists them as `ConfigOption`s: the CLI generates
the `train`, `compare` and `finetune` flags from it, `resolve` validates with it and the web lab builds its forms
from it. Defaults live only in the dataclass.

Fields left as None are resolved per dataset (`resolve`), so `cnnlab train lenet5 --dataset digits` just works and
the saved config always holds the concrete values that ran.

The learning-rate rule: a dataset's default lr is tuned for its default batch (64 for the 28x28 sets, 256 for
CIFAR). When `batch_size` (the global batch, summed over torchrun's processes) differs and no lr is given, the
default lr is scaled by batch / default batch for SGD (linear scaling, Goyal et al. 2017; the onecycle warm-up is
the warm-up they prescribe) and by its square root for AdamW (Malladi et al. 2022). A given lr is used as it is.

The resume rule (`resume_config`): an option given again when a run is resumed must equal the run's own value,
unless it may change (`resumable`: where and how fast the run computes, and how it checkpoints) or it is a larger
`epochs` for a constant schedule. Anything else is a `ResumeConflictError`: no flag is ever silently dropped.
"""

from __future__ import annotations

import functools
import math
import typing
from collections.abc import Callable
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from typing import Any

from cnnlab.errors import CnnlabError, ResumeConflictError, unknown_name_error
from cnnlab.options import (  # noqa: F401 (the checks and parsers, long imported from here)
    DURATION_UNITS,
    Check,
    Option,
    decay,
    fraction,
    non_negative,
    non_negative_int,
    parse_duration,
    parse_number,
    positive,
    positive_int,
    whole,
)

OPTIMIZERS = ("sgd", "adamw", "muon")
SCHEDULES = ("onecycle", "cosine", "step", "constant")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DEVICES = ("auto", "cpu", "cuda", "mps")

COMMANDS = ("train", "compare", "finetune", "sweep", "lr-find")  # the commands whose flags come from TrainConfig
# What the LR range test does not use (it runs its own ~100 steps at its own lrs, and keeps nothing): offering these
# flags to `cnnlab lr-find` would ignore them silently.
NOT_FOR_LR_FIND = (
    "epochs",
    "time_budget",
    "schedule",
    "ema",
    "lookahead",
    "tta",
    "tta_shift",
    "test_every_epoch",
    "checkpoint_every",
    "keep_checkpoints",
    "tensorboard",
    "sync_bn",
)
GROUPS = ("data", "optimization", "evaluation", "model", "system", "run")  # for --help sections and form fieldsets


_KEY = "cnnlab"  # the field-metadata key holding an option's declaration


@dataclass(frozen=True)
class _Declared:
    help: str
    group: str
    flag: str | None
    choices: tuple[str, ...] | None
    check: Check | None
    resumable: bool
    commands: tuple[str, ...]
    metavar: str | None
    parser: Callable[[str], Any] | None = None  # text -> value, for a value written with units (a duration)


def option(
    help: str,
    *,
    group: str,
    flag: str | None | bool = True,
    choices: tuple[str, ...] | None = None,
    check: Check | None = None,
    resumable: bool = False,
    commands: tuple[str, ...] = COMMANDS,
    metavar: str | None = None,
    parser: Callable[[str], Any] | None = None,
) -> dict:
    """A field's metadata: `field(default=..., metadata=option(...))`. `flag`: True = --field-name, a string =
    that flag, None = no CLI flag (set through the Python API only). `parser`: how text becomes the value, where
    plain `float(text)` is not it (it raises CnnlabError)."""
    if group not in GROUPS:
        raise ValueError(f"unknown option group {group!r}")
    return {_KEY: _Declared(help, group, flag, choices, check, resumable, commands, metavar, parser)}


def _for_lr_find(name: str, declared: _Declared) -> _Declared:
    if name in NOT_FOR_LR_FIND and "lr-find" in declared.commands:
        return replace(declared, commands=tuple(c for c in declared.commands if c != "lr-find"))
    return declared


# ---------------------------------------------------------------------------------------------------- the dataclass
@dataclass
class TrainConfig:
    model: str = field(
        metadata=option(
            "a registered model name (cnnlab models), your network in code (path/to/file.py:Name or "
            'package.module:Name) or a layer spec ("conv 8 k3 p1; relu; maxpool 2; flatten; fc 10")',
            group="model",
            flag=None,
        )
    )
    dataset: str = field(
        default="digits",
        metadata=option(
            "digits (offline), mnist, fashion-mnist, kmnist, cifar10, cifar100, or imagefolder:PATH", group="data"
        ),
    )
    data_dir: str | None = field(
        default=None,
        metadata=option("where to look for the dataset's files first", group="data", resumable=True, metavar="DIR"),
    )
    # None = 32: small images are squashed to it; from 64 up photos are resized and center-cropped (imagefolder.py)
    image_size: int | None = field(
        default=None,
        metadata=option(
            "side imagefolder:PATH images are loaded at (default 32); 64 or more resizes the shorter side to "
            "N/0.875 and center-crops N, as torchvision's ImageNet evaluation (224 for photos)",
            group="data",
            check=positive_int,
            metavar="N",
        ),
    )
    epochs: int | None = field(
        default=None,
        metadata=option(
            "passes over the training split; with --time-budget, the most the plan may use",
            group="optimization",
            check=positive_int,
        ),
    )
    # Seconds. Not resumable: the plan and the schedule were laid out for this budget (a resumed run continues
    # with what its earlier sessions left of it).
    time_budget: float | None = field(
        default=None,
        metadata=option(
            "wall-time budget, e.g. 90s, 10m or 1.5h: measures the first steps, sizes the epochs and the schedule "
            "to finish inside it (evaluation, checkpoints and the final test pass counted), and compresses the "
            "rest of the schedule if the machine slows down",
            group="optimization",
            check=positive,
            metavar="DURATION",
            parser=lambda text: parse_duration(text),
        ),
    )
    batch_size: int | None = field(
        default=None,
        metadata=option(
            "images per optimizer step (the global batch under torchrun)", group="optimization", check=positive_int
        ),
    )
    lr: float | None = field(
        default=None,
        metadata=option(
            "peak learning rate (the schedule's maximum); the dataset's default is scaled with the batch size; "
            "find: the lr range test's suggestion (train only, see docs/sweeps.md)",
            group="optimization",
            check=positive,
            commands=("train", "compare", "finetune", "sweep"),  # lr-find sets the lr itself
            parser=lambda text: parse_lr(text),
        ),
    )
    # `--lr find`: how the lr was found (cnnlab.lrfind.summary: the suggestion, its rule, the range); None = given
    lr_find: dict | None = field(
        default=None, metadata=option("how --lr find chose the lr", group="optimization", flag=None)
    )
    optimizer: str | None = field(
        default=None,
        metadata=option(
            "sgd (Nesterov momentum), adamw, or muon (Muon for the conv filters at --muon-lr, Nesterov SGD at --lr "
            "for the rest)",
            group="optimization",
            choices=OPTIMIZERS,
        ),
    )
    muon_lr: float = field(
        default=0.02,
        metadata=option(
            "--optimizer muon: the conv filters' peak lr (their orthogonalized update has rows of unit norm, so "
            "its scale is not SGD's)",
            group="optimization",
            check=positive,
        ),
    )
    schedule: str = field(
        default="onecycle",
        metadata=option(
            "lr shape over all steps: onecycle, cosine, step (/10 at 50% and 75%) or constant",
            group="optimization",
            choices=SCHEDULES,
        ),
    )
    momentum: float = field(
        default=0.9, metadata=option("SGD momentum, or AdamW's beta1", group="optimization", check=fraction)
    )
    weight_decay: float | None = field(
        default=None,
        metadata=option(
            "decoupled for AdamW, L2 for SGD; not applied to BN/bias parameters",
            group="optimization",
            check=non_negative,
        ),
    )
    label_smoothing: float = field(
        default=0.0,
        metadata=option("cross-entropy target smoothing, 0 = hard labels", group="optimization", check=fraction),
    )
    ema: float = field(
        default=0.0,
        metadata=option(
            "per-step decay of an exponential moving average of the weights, which is evaluated and saved, "
            "e.g. 0.999 (0 = off)",
            group="optimization",
            check=decay,
            metavar="DECAY",
        ),
    )
    lookahead: int = field(
        default=0,
        metadata=option(
            "Lookahead (Zhang et al. 2019): every K optimizer steps a slow copy of the weights moves halfway to them "
            "and they restart from it (0 = off)",
            group="optimization",
            check=non_negative_int,
            metavar="K",
        ),
    )
    augment: bool | None = field(
        default=None, metadata=option("random crops and, where label-preserving, horizontal flips", group="data")
    )
    crop_padding: int | None = field(
        default=None,
        metadata=option(
            "random-crop translation range in pixels (0 = flips only)",
            group="data",
            check=non_negative_int,
            metavar="PIXELS",
        ),
    )
    progressive_resize: int = field(
        default=0,
        metadata=option(
            "train the first half of the steps on smaller images, their side rising linearly from this many pixels "
            "to the dataset's own (fast.ai's DAWNBench trick: early steps cost less); evaluation stays at full size; "
            "needs a network that takes any size (global pooling); 0 = off",
            group="data",
            check=non_negative_int,
            metavar="PIXELS",
        ),
    )
    alternate_flips: bool = field(
        default=False,
        metadata=option(
            "with --augment on a set whose flips keep labels: mirror each image on every other epoch instead of at "
            "random, so every two epochs show it both ways (airbench; its first epoch's side is drawn from --seed)",
            group="data",
        ),
    )
    pca_color: float = field(
        default=0.0,
        metadata=option(
            "AlexNet's colour augmentation (Krizhevsky et al. 2012, sec. 4.1): each training image's pixels shifted by "
            "eigvecs @ (alpha * eigvals) of the training pixels' RGB covariance, alpha ~ N(0, SIGMA) per image "
            "(the paper: 0.1; 0 = off); RGB datasets only",
            group="data",
            check=non_negative,
            metavar="SIGMA",
        ),
    )
    tta: bool = field(
        default=False,
        metadata=option(
            "evaluate on the mean logits of each image and its mirror (label-preserving flips only)", group="evaluation"
        ),
    )
    tta_shift: int = field(
        default=0,
        metadata=option(
            "test-time translations: also classify each image moved this many pixels diagonally, both ways "
            "(reflect padding), the two moved views weighing half (airbench's level-2 test-time augmentation; "
            "with --tta each view is also mirrored); 0 = off",
            group="evaluation",
            check=non_negative_int,
            metavar="PIXELS",
        ),
    )
    # for learning curves only (He et al.'s Fig. 6 plots test error): nothing is chosen on it
    test_every_epoch: bool = field(
        default=False,
        metadata=option(
            "also evaluate the test set after every epoch (learning curves; nothing is chosen on it)",
            group="evaluation",
        ),
    )
    train_subset: int | None = field(
        default=None,
        metadata=option(
            "keep only the first N training images (quick runs)", group="data", check=positive_int, metavar="N"
        ),
    )
    val_fraction: float = field(
        default=0.1,
        metadata=option(
            "share of the training split held out for validation (seeded, stratified)", group="data", check=fraction
        ),
    )
    seed: int = field(
        default=0, metadata=option("seeds the init, the data order and the augmentation", group="run", check=whole)
    )
    precision: str = field(
        default="auto",
        metadata=option(
            "auto (bf16 autocast where the CPU or GPU has native bf16, else fp32, or fp16 on older GPUs), fp32, bf16, "
            "or fp16 (CUDA only, with a GradScaler)",
            group="system",
            choices=PRECISIONS,
        ),
    )
    channels_last: bool = field(
        default=True, metadata=option("NHWC memory layout, faster for convolutions on CPU", group="system")
    )
    compile: bool = field(
        default=False,
        metadata=option(
            "torch.compile the model for the training steps (minutes of compiling first)",
            group="system",
            resumable=True,
        ),
    )
    threads: int | None = field(
        default=None,
        metadata=option(
            "torch intra-op threads (default: the CPUs this process may use)",
            group="system",
            check=positive_int,
            resumable=True,
            metavar="N",
        ),
    )
    out: str | None = field(
        default=None, metadata=option("run directory (default runs/<model>-<dataset>-<time>)", group="run", flag=None)
    )
    checkpoint_every: int = field(
        default=0,
        metadata=option(
            "also checkpoint every N optimizer steps (0 = only at epoch ends)",
            group="run",
            check=positive_int,
            resumable=True,
            metavar="STEPS",
        ),
    )
    keep_checkpoints: int = field(
        default=2,
        metadata=option(
            "checkpoints to keep on disk", group="run", flag="--keep", check=positive_int, resumable=True, metavar="N"
        ),
    )
    weights: str | None = field(
        default=None,
        metadata=option(
            "start from a local weights file: torchvision .pth/.pt (read weights-only) or .safetensors; new runs only",
            group="model",
            commands=("train",),
            metavar="PATH",
        ),
    )
    # resolved once the data is loaded, then saved
    small_input: bool | None = field(
        default=None,
        metadata=option(
            "CIFAR-style stem (3x3 stride 1, no early pooling) for ImageNet-style models (default: when the model's "
            "input is 64 px or more and the images are smaller)",
            group="model",
        ),
    )
    whiten: bool = field(
        default=False,
        metadata=option(
            "start the first conv as a filter bank that whitens the training images' patches (airbench), not random",
            group="model",
            commands=("train", "compare"),
        ),
    )
    dirac: bool = field(
        default=False,
        metadata=option(
            "start each conv that keeps or widens its channels with its first in-channels filters as the identity "
            "(torch.nn.init.dirac_, airbench), the rest random",
            group="model",
            commands=("train", "compare"),
        ),
    )
    model_kwargs: dict = field(
        default_factory=dict,
        metadata=option('extra builder arguments, e.g. {"drop_path_rate": 0.1}', group="model", flag=None),
    )
    # set by the trainer for a network in code (cnnlab.building.code_record), so the run rebuilds from its copy
    model_code: dict | None = field(
        default=None,
        metadata=option("the record of a network in code: reference, sha256, arguments", group="model", flag=None),
    )
    device: str | None = field(
        default=None,
        metadata=option(
            "auto (CUDA, else MPS, else the CPU), cpu, cuda or mps (default: auto, or on --resume the run's)",
            group="system",
            choices=DEVICES,
            resumable=True,
        ),
    )
    sync_bn: bool = field(
        default=False,
        metadata=option(
            "under torchrun: batch-norm statistics over the global batch (SyncBatchNorm, CUDA only)", group="system"
        ),
    )
    tensorboard: bool = field(
        default=False, metadata=option("also write TensorBoard event files to RUN_DIR/tensorboard", group="run")
    )

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


# ------------------------------------------------------------------------------------------------- the option list
@dataclass(frozen=True)
class ConfigOption(Option):
    """One TrainConfig field as the CLI, the Python API and the web lab see it: an `Option` (name: the field and
    the Python API's keyword; flag None: set through the Python API only; default: the dataclass's, None =
    resolved per dataset or at run time) with the recipe's own attributes."""

    resumable: bool = False  # may differ from the run's own value on resume
    commands: tuple[str, ...] = ()  # the CLI commands with this flag
    per_dataset: bool = False  # None is filled from DATASET_DEFAULTS

    @property
    def cli_default(self) -> Any:
        return None  # "not given": only given flags reach the options, the rest take the dataclass's defaults

    @property
    def cli_help(self) -> str:
        """The help with its default, read from the dataclass ('%' escaped for argparse)."""
        if self.default is not None and self.type is bool:
            default = f" (default: {'on' if self.default else 'off'})"
        elif self.per_dataset and self.default is None:
            default = " (default: the dataset's)"
        elif self.default is not None and self.default != {}:
            default = f" (default: {self.default})"
        else:
            default = ""
        return (self.help + default).replace("%", "%%")

    def parse(self, text: str) -> Any:
        """A value from text (a CLI argument, a form field): converted to `type`, checked with the rules the CLI
        applies while parsing. CnnlabError("expected ..., got 'text'") otherwise."""
        if self.parser is not None or self.type not in (int, float):
            return super().parse(text)
        return parse_number(text, self.type, self.check if self.check and self.check.at_parse else None)

    def validate(self, value: Any) -> None:
        """CnnlabError naming the flag when `value` breaks this option's choices or check. None and the default
        (e.g. 0 = off) always pass."""
        if value is None or value == self.default:
            return
        label = self.flag or self.name
        if self.type is bool and not isinstance(value, bool):
            raise CnnlabError(f"{label} takes true or false, got {value!r}")
        if self.choices is not None and value not in self.choices:
            raise unknown_name_error(self.name.replace("_", " "), str(value), self.choices)
        if self.check is not None:
            self.check.validate(label, value)


LR_FIND = "find"  # --lr find: run the lr range test first and train at its suggestion


def parse_lr(text: str) -> float | str:
    """--lr: a positive number, or "find" (the range test's suggestion, cnnlab.lrfind)."""
    if text.strip().lower() == LR_FIND:
        return LR_FIND
    return parse_number(text, float, positive)


def options() -> list[ConfigOption]:
    """Every declared TrainConfig option, in field order: the one source the CLI, the API and the lab read."""
    return list(_options())


@functools.cache
def _options() -> tuple[ConfigOption, ...]:
    hints = typing.get_type_hints(TrainConfig)
    per_dataset = set(GENERIC_DEFAULTS).union(*DATASET_DEFAULTS.values())
    found = []
    for f in fields(TrainConfig):
        declared: _Declared = _for_lr_find(f.name, f.metadata[_KEY])
        kind = next(t for t in typing.get_args(hints[f.name]) or (hints[f.name],) if t is not type(None))
        default = f.default if f.default is not MISSING else None  # None: required (model)
        if f.default_factory is not MISSING:
            default = f.default_factory()
        flag = "--" + f.name.replace("_", "-") if declared.flag is True else declared.flag
        found.append(
            ConfigOption(
                name=f.name,
                flag=flag,
                type=kind,
                default=default,
                help=declared.help,
                choices=declared.choices,
                resumable=declared.resumable,
                group=declared.group,
                commands=declared.commands if flag else (),
                metavar=declared.metavar,
                check=declared.check,
                per_dataset=f.name in per_dataset,
                parser=declared.parser,
                negatable=kind is bool,
            )
        )
    return tuple(found)


def option_named(name: str) -> ConfigOption:
    """The ConfigOption of field `name`; an unknown name lists the closest."""
    for candidate in options():
        if candidate.name == name:
            return candidate
    raise unknown_name_error("training option", name, [o.name for o in options()])


def make_config(model: str, dataset: str | None = None, **given) -> TrainConfig:
    """A TrainConfig from keyword options; a misspelt option is a CnnlabError naming the closest ones (not a
    TypeError). Unresolved: `resolve` fills and checks it."""
    names = {f.name for f in fields(TrainConfig)}
    for name in given:
        if name not in names:
            option_named(name)
    return TrainConfig(model=model, **({"dataset": dataset} if dataset is not None else {}), **given)


def validate(given: dict) -> TrainConfig:
    """The resolved, checked TrainConfig of a dict of options (with "model" and maybe "dataset"), as a new run
    would train it; CnnlabError with the CLI's message otherwise. For forms: check before starting anything."""
    given = dict(given)
    if not isinstance(given.get("model"), str) or not given["model"]:
        raise CnnlabError("choose a model (see cnnlab models)")
    return resolve(make_config(given.pop("model"), given.pop("dataset", None), **given))


# ---------------------------------------------------------------------------------------------- per-dataset values
# Per-dataset recipe defaults. Fashion-MNIST's were chosen by measurement (docs/results.md): for LeNet-5 over 10
# epochs, Nesterov SGD at lr 0.05 without augmentation gave 90.3% test accuracy, against 89.0% for AdamW at 3e-3,
# 88.5% with flips and 86.7% with 2 px crops (short runs underfit; augmentation pays off in longer ones).
# MNIST and KMNIST share that recipe untested (their files are not on this machine).
_MNIST_LIKE = dict(epochs=10, batch_size=64, lr=0.05, optimizer="sgd", weight_decay=5e-4, augment=False)
DATASET_DEFAULTS: dict[str, dict] = {
    "digits": dict(epochs=10, batch_size=64, lr=3e-3, optimizer="adamw", weight_decay=5e-4, augment=False),
    "mnist": _MNIST_LIKE,
    "kmnist": _MNIST_LIKE,
    "fashion-mnist": _MNIST_LIKE,
    "cifar10": dict(
        epochs=30, batch_size=256, lr=0.2, optimizer="sgd", weight_decay=5e-4, augment=True, crop_padding=4
    ),
    "cifar100": dict(
        epochs=30, batch_size=256, lr=0.2, optimizer="sgd", weight_decay=5e-4, augment=True, crop_padding=4
    ),
}
GENERIC_DEFAULTS = dict(epochs=10, batch_size=64, lr=3e-3, optimizer="adamw", weight_decay=5e-4, augment=True)
BUDGET_MAX_EPOCHS = 1000  # --time-budget without --epochs: the plan's cap (the budget, not this, ends the run)
DEFAULT_CROP_PADDING = 2  # pixels; He et al.'s 4 px at 32 is too strong for short runs on 28x28 sets


def resolve(config: TrainConfig) -> TrainConfig:
    """Fill the None fields from the dataset's defaults and validate every value (CnnlabError on bad input)."""
    base = config.dataset.split(":", 1)[0]
    defaults = DATASET_DEFAULTS.get(base, GENERIC_DEFAULTS)
    if config.time_budget is not None and config.epochs is None:  # the budget plans them, up to this cap
        config = replace(config, epochs=BUDGET_MAX_EPOCHS)
    filled = replace(config, **{k: v for k, v in defaults.items() if getattr(config, k) is None})
    if filled.crop_padding is None:
        filled = replace(filled, crop_padding=DEFAULT_CROP_PADDING)
    filled = replace(filled, device=filled.device or "auto")
    for declared in options():
        declared.validate(getattr(filled, declared.name))
    if filled.whiten and filled.weights:
        raise CnnlabError("--whiten sets the first conv's initial filters; --weights already sets them: choose one")
    if filled.image_size is not None and base != "imagefolder":
        # Built-in datasets have one native size; resizing them is not what the flag is for.
        raise CnnlabError(
            f"--image-size applies to imagefolder:PATH datasets; {config.dataset} images have their own size"
        )
    if config.lr is None and filled.batch_size != defaults["batch_size"]:
        lr = scaled_lr(defaults["lr"], filled.batch_size / defaults["batch_size"], filled.optimizer)
        filled = replace(filled, lr=lr)
    return replace(filled, epochs=int(filled.epochs), batch_size=int(filled.batch_size))


def scaled_lr(lr: float, batch_ratio: float, optimizer: str) -> float:
    """The module docstring's rule: `lr` tuned for a batch, moved to a batch `batch_ratio` times as large."""
    return lr * (batch_ratio if optimizer in ("sgd", "muon") else math.sqrt(batch_ratio))  # muon's --lr is SGD's


# --------------------------------------------------------------------------------------------------- the resume rule
# Options a resumed run cannot take at all, whatever their value: they name how a new run starts.
NEW_RUN_ONLY = {
    "weights": "--weights starts a new run; --resume continues from the run's own checkpoint: pass one of them",
    "out": "--out names a new run's directory; --resume continues the run in its own: drop --out",
}


# Why some options cannot change on resume, where the generic message would not say it.
FIXED_ON_RESUME = {
    "time_budget": "--time-budget cannot change on --resume: the run's epochs and schedule were planned for its own "
    "budget, and a resumed run continues with what its earlier sessions left of it (start a new run "
    "for another budget)",
}


def resume_config(
    saved: TrainConfig, model: str | None, dataset: str | None, given: dict, *, run_dir: object = None
) -> TrainConfig:
    """The config a resumed run continues with: `saved` (its config.json) with the options in `given` applied
    where the rule allows (see the module docstring). Given options equal to the run's own pass; None counts as
    not given. Raises CnnlabError for another model or dataset, ResumeConflictError for any other change."""
    where = f" {run_dir}" if run_dir is not None else ""
    for name, value in (("model", model), ("dataset", dataset)):
        if value is not None and value != getattr(saved, name):
            raise CnnlabError(f"cannot resume{where}: it trained {name} '{getattr(saved, name)}', not '{value}'")
    changes = {}
    for name, value in given.items():
        declared = option_named(name)
        if name in NEW_RUN_ONLY and value is not None:
            raise ResumeConflictError(name, getattr(saved, name), value, NEW_RUN_ONLY[name])
        if value is None or value == getattr(saved, name):
            continue
        if not (declared.resumable or name == "epochs"):
            raise ResumeConflictError(name, getattr(saved, name), value, FIXED_ON_RESUME.get(name))
        declared.validate(value)
        if name == "epochs":
            check_longer_run(saved, value)
        changes[name] = value
    return replace(saved, **changes)


def check_longer_run(saved: TrainConfig, epochs: int) -> None:
    """More epochs on resume are well defined only for a constant lr: the other schedules' shapes (warm-up and
    decay, milestones) were laid out over the run's original step count."""
    if epochs < saved.epochs:
        raise ResumeConflictError(
            "epochs",
            saved.epochs,
            epochs,
            f"--epochs can only grow on --resume: the run was set up for {saved.epochs} "
            f"epochs, got {epochs} (start a new run instead)",
        )
    if saved.time_budget is not None:
        raise ResumeConflictError(
            "epochs",
            saved.epochs,
            epochs,
            "--epochs cannot grow on --resume of a "
            "--time-budget run: its budget planned them (start a new run instead)",
        )
    if saved.schedule != "constant":
        raise ResumeConflictError(
            "epochs",
            saved.epochs,
            epochs,
            f"--epochs cannot grow on --resume of a run with the {saved.schedule} schedule: its "
            f"learning rate was laid out over the run's original {saved.epochs} epochs "
            f"(only --schedule constant extends); start a new run with --epochs {epochs} instead",
        )
