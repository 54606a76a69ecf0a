"""The search space of `cnnlab sweep`: `--param NAME=SPEC`, parsed and checked as the CLI checks the option.

    lr=1e-4:1e-1:log        a range, sampled log-uniformly (both bounds positive)
    weight_decay=0:1e-3     a range, sampled uniformly
    batch_size=64,128,256   choices (a single value fixes the option)

NAME is a TrainConfig option that `cnnlab train` takes as a flag; a misspelt one lists the closest. Each value
is parsed with the option's own parser and passes its own check (`ConfigOption.parse` and `validate`), so a sweep
refuses what `cnnlab train` would refuse, before any trial starts. An int option's range is sampled as integers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cnnlab.engine import config as recipe
from cnnlab.errors import CnnlabError, unknown_name_error
from cnnlab.options.commands import DEFAULT_SPACES


@dataclass(frozen=True)
class Param:
    """One searched option: a range (`low`..`high`, `log`) or `choices`."""

    name: str
    kind: type  # the option's type: float, int, bool or str
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple | None = None

    def suggest(self, trial) -> Any:
        """This parameter's value for an Optuna trial (its sampler draws it)."""
        if self.choices is not None:
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.kind is int:
            return trial.suggest_int(self.name, int(self.low), int(self.high), log=self.log)
        return trial.suggest_float(self.name, self.low, self.high, log=self.log)

    def spec(self) -> str:
        """The SPEC that gives this parameter (the canonical text a study stores)."""
        if self.choices is not None:
            return ",".join(str(c).lower() if isinstance(c, bool) else str(c) for c in self.choices)
        return f"{self.low:g}:{self.high:g}" + (":log" if self.log else "")


def sweepable() -> list[str]:
    """The options a sweep may search: those `cnnlab train` takes as flags."""
    return [o.name for o in recipe.options() if o.flag and "train" in o.commands and o.name != "lr_find"]


def parse_param(text: str) -> Param:
    """`NAME=SPEC` as a Param; CnnlabError (one line) for an unknown name or a bad value, range or bound."""
    name, equals, spec = text.partition("=")
    name = name.strip().replace("-", "_")
    if not equals or not spec.strip():
        raise CnnlabError(f"--param takes NAME=SPEC such as lr=1e-4:1e-1:log, got '{text}'")
    if name not in sweepable():
        raise unknown_name_error("training option", name, sweepable())
    option = recipe.option_named(name)
    if ":" in spec:
        return _range(option, spec)
    choices = tuple(_value(option, part.strip()) for part in spec.split(",") if part.strip())
    if len(set(choices)) != len(choices):
        raise CnnlabError(f"--param {name}: choices repeat in '{spec}'")
    return Param(name, option.type, choices=choices)


def _value(option, text: str) -> Any:
    try:
        value = option.parse(text)
        option.validate(value)
    except CnnlabError as error:
        raise CnnlabError(f"--param {option.name}: {error}") from None
    if value == recipe.LR_FIND:
        raise CnnlabError(f"--param {option.name}: 'find' is for cnnlab train; a sweep searches numbers")
    return value


def _range(option, spec: str) -> Param:
    name, parts = option.name, spec.split(":")
    log = len(parts) == 3 and parts[2].strip().lower() == "log"
    if len(parts) not in (2, 3) or (len(parts) == 3 and not log):
        raise CnnlabError(f"--param {name}: a range is LOW:HIGH or LOW:HIGH:log, got '{spec}'")
    if option.type not in (int, float):
        raise CnnlabError(f"--param {name}: {option.type.__name__} options take choices (a,b,c), not a range")
    low, high = (_value(option, part.strip()) for part in parts[:2])
    if low >= high:
        raise CnnlabError(f"--param {name}: the range {low:g}:{high:g} is reversed or empty; write LOW:HIGH")
    if log and low <= 0:
        raise CnnlabError(f"--param {name}: a log range needs a positive lower bound, got {low:g}")
    return Param(name, option.type, low=low, high=high, log=log)


def default_space(dataset: str | None, fixed: dict) -> list[str] | None:
    """The dataset's default --param texts, less any option the command fixes; None where it has none."""
    texts = [text for text in DEFAULT_SPACES.get(dataset or "", ()) if text.split("=", 1)[0] not in fixed]
    return texts or None


def parse_space(texts: list[str] | None, fixed: dict) -> dict[str, Param]:
    """Every `--param`, by name; a name given twice, or also as a fixed flag, is refused."""
    if not texts:
        known = ", ".join(sorted(DEFAULT_SPACES))
        raise CnnlabError(
            f"a sweep needs at least one --param NAME=SPEC, e.g. --param lr=1e-4:1e-1:log ({known} has a default)"
        )
    space: dict[str, Param] = {}
    for text in texts:
        param = parse_param(text)
        if param.name in space:
            raise CnnlabError(f"--param {param.name} is given twice")
        if param.name in fixed:
            flag = recipe.option_named(param.name).flag
            raise CnnlabError(f"{param.name} is both searched (--param) and fixed ({flag}): pass one of them")
        space[param.name] = param
    return space


def describe(space: dict[str, Param]) -> dict[str, str]:
    """The space as {name: SPEC}: what a study stores in its user attrs and compares."""
    return {name: param.spec() for name, param in sorted(space.items())}


def difference(stored: dict, given: dict, what: str = "search space") -> str | None:
    """The first difference between a study's stored space (or fixed options) and the command's, as words."""
    for name in sorted(set(stored) | set(given)):
        if name not in given:
            return f"the study's {what} has {name}={stored[name]}, this command has no {name}"
        if name not in stored:
            return f"this command's {what} has {name}={given[name]}, the study's has no {name}"
        if str(stored[name]) != str(given[name]):
            return f"{name}: the study's {what} has {stored[name]}, this command {given[name]}"
    return None
