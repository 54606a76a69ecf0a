"""The one options layer: every command's options are declared once, as `Option`s grouped in a `Command`.

From each declaration come the `cnnlab` CLI's flags (cli.py builds every subparser from `commands.COMMANDS`), the
Python API's keyword checks (`Command.check_keywords`: an unknown keyword names the closest), the lab's forms and
its typed request models (lab/options.py and lab/requests.py read the same declarations), and the parsing of a
value typed as text (`Option.parse`, shared by the CLI and the lab's forms).

An `Option` holds the name (the Python keyword, the argparse dest, the JSON field), the value's type, its default,
its help, its CLI flag (or that it is positional), its choices, the `Check` a number must pass and the parser of a
value written with units. TrainConfig's fields declare theirs in engine/config.py (`ConfigOption` adds the
recipe's own attributes); the other commands' are in `cnnlab.options.commands`, which also says how to add one.

Plain Python, no torch: the CLI's parser and the lab's forms import it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from cnnlab.errors import CnnlabError, unknown_name_error


# --------------------------------------------------------------------------------------------------- value checks
@dataclass(frozen=True)
class Check:
    """A rule for a number: `requirement` completes both "--lr must be ..." (validation) and "expected ..." (the
    CLI's parse error). `at_parse`: the CLI applies it while parsing the flag, so argparse names the flag."""

    requirement: str
    test: Callable[[Any], bool]
    at_parse: bool = False

    def validate(self, flag: str, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not self.test(value):
            raise CnnlabError(f"{flag} must be {self.requirement}, got {value!r}")


def _finite(value) -> bool:
    return isinstance(value, int) or math.isfinite(value)


positive = Check("a positive number", lambda v: _finite(v) and v > 0, at_parse=True)
positive_int = Check("a positive whole number", lambda v: _finite(v) and v > 0 and int(v) == v, at_parse=True)
non_negative = Check("zero or positive", lambda v: _finite(v) and v >= 0)
non_negative_int = Check("zero or a positive whole number", lambda v: _finite(v) and v >= 0 and int(v) == v)
fraction = Check("in [0, 1)", lambda v: 0.0 <= v < 1.0)
decay = Check("in [0, 1), a decay per step such as 0.999", lambda v: 0.0 <= v < 1.0)
whole = Check("a whole number", lambda v: _finite(v) and int(v) == v)


def parse_number(text: str, kind: type, check: Check | None = None) -> int | float:
    """`text` as an int or float that passes `check`; CnnlabError("expected ..., got 'text'") otherwise."""
    try:
        value = kind(text)
    except ValueError:
        requirement = check.requirement if check else ("a whole number" if kind is int else "a number")
        raise CnnlabError(f"expected {requirement}, got '{text}'") from None
    if check is not None and not check.test(value):
        raise CnnlabError(f"expected {check.requirement}, got {text}")
    return value


DURATION_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """Seconds from "90s", "10m", "1.5h" or a bare number of seconds; CnnlabError("expected ...") otherwise."""
    stripped = text.strip().lower()
    unit = DURATION_UNITS.get(stripped[-1:], None) if stripped else None
    number = stripped[:-1] if unit is not None else stripped
    try:
        seconds = float(number) * (unit or 1.0)
    except ValueError:
        seconds = float("nan")
    if not (math.isfinite(seconds) and seconds > 0):
        raise CnnlabError(f"expected a positive duration such as 90s, 10m or 1.5h, got '{text}'")
    return seconds


def parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered not in ("true", "false", "yes", "no", "on", "off", "1", "0"):
        raise CnnlabError(f"expected true or false, got '{text}'")
    return lowered in ("true", "yes", "on", "1")


def parse_object(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        raise CnnlabError(f"expected a JSON object such as {{\"drop_path_rate\": 0.1}}, got '{text}'")
    return value


# ------------------------------------------------------------------------------------------------------ options
@dataclass(frozen=True)
class Option:
    """One option of a command, as the CLI, the Python API and the lab see it."""

    name: str  # the Python keyword, the argparse dest and the JSON field
    type: type = str  # str, int, float, bool, dict or list: the value's type, None aside
    default: Any = None  # None: not given (resolved later, or the command's own rule: see help)
    help: str | None = None  # one line, as --help shows it
    flag: str | None = None  # "--top-k"; None: positional when `positional`, else set through Python alone
    choices: tuple[str, ...] | None = None  # the allowed values of a str option with a fixed set
    check: Check | None = None  # the rule a number must pass (while the CLI parses it)
    metavar: str | None = None  # the CLI's placeholder for the value
    parser: Callable[[str], Any] | None = None  # text -> value, where plain int()/float()/str is not it
    group: str | None = None  # the --help section ("<group> options"); None: the command's own options
    positional: bool = False  # a positional argument (its name is the argparse dest)
    nargs: str | None = None  # "?", "*" or "+": how many values (a list option: "+", values accumulate)
    aliases: tuple[str, ...] = ()  # more flags for the same option ("--model" for "--models")
    required: bool = False  # a flag the CLI requires
    negatable: bool = False  # a bool with --x and --no-x (default None: not given), else a switch

    @property
    def cli_default(self) -> Any:
        """The argparse default: the declared one (ConfigOption: None, "not given", resolved later)."""
        return self.default

    @property
    def cli_help(self) -> str | None:
        return self.help.replace("%", "%%") if self.help else self.help

    def parse(self, text: str) -> Any:
        """A value from text (a CLI argument, a form field), converted to `type` and checked against `check`;
        CnnlabError otherwise (the CLI's parse error, which argparse prefixes with the flag)."""
        if self.parser is not None:
            return self.parser(text)
        if self.type is bool:
            return parse_bool(text)
        if self.type is dict:
            return parse_object(text)
        if self.type not in (int, float):
            return text
        if self.check is not None:
            return parse_number(text, self.type, self.check)
        try:
            return self.type(text)
        except ValueError:  # argparse's own words for a plain int or float
            raise CnnlabError(f"invalid {self.type.__name__} value: {text!r}") from None


@dataclass(frozen=True)
class Command:
    """A command's declaration: its one-line help and its options, in --help order. `check_keywords` is the
    Python API's check; `defaults` what the options left out take."""

    name: str
    help: str
    options: tuple[Option, ...]
    kind: str = "option"  # how an unknown keyword is named: "unknown <kind> 'x'"
    epilog: str | None = None  # --help's closing text (lines kept as written): a recipe, what differs from a tutorial

    def option(self, name: str) -> Option:
        for candidate in self.options:
            if candidate.name == name:
                return candidate
        raise unknown_name_error(self.kind, name, self.names())

    def names(self) -> list[str]:
        return [o.name for o in self.options]

    def check_keywords(self, given: Iterable[str], allowed: Iterable[str] | None = None) -> None:
        """CnnlabError naming the closest options for a keyword this command does not take."""
        names = list(allowed) if allowed is not None else self.names()
        for name in given:
            if name not in names:
                raise unknown_name_error(self.kind, name, names)

    def defaults(self) -> dict[str, Any]:
        return {o.name: o.default for o in self.options}

    def argv(self, values: dict[str, Any]) -> list[str]:
        """The command line that gives these (already checked) values: `cnnlab` parses it back to them. None and
        a switch left off are left out; a negatable bool is --x or --no-x."""
        self.check_keywords(values)
        argv = [self.name]
        for option in self.options:
            value = values.get(option.name)
            if value is None or (option.type is bool and not option.negatable and value == option.default):
                continue
            if option.positional:
                argv += [str(v) for v in value] if option.type is list else [str(value)]
            elif option.type is bool:
                argv.append(option.flag if value or not option.negatable else f"--no-{option.flag[2:]}")
            else:
                argv += [option.flag, *([str(v) for v in value] if option.type is list else [str(value)])]
        return argv


__all__ = [
    "Check",
    "Command",
    "Option",
    "decay",
    "fraction",
    "non_negative",
    "non_negative_int",
    "parse_bool",
    "parse_duration",
    "parse_number",
    "parse_object",
    "positive",
    "positive_int",
    "whole",
]
