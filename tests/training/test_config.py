"""TrainConfig's field metadata is the one declaration of each option: the `train`, `compare` and `finetune` flags
are generated from it, with its help, defaults and checks, and every given flag reaches the Python API."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

import cnnlab.api
from cnnlab.cli import build_parser, main
from cnnlab.engine.config import (
    DATASET_DEFAULTS,
    GROUPS,
    ConfigOption,
    TrainConfig,
    make_config,
    option_named,
    options,
    resolve,
    validate,
)
from cnnlab.errors import CnnlabError

FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}


def subparser(command: str) -> argparse.ArgumentParser:
    actions = build_parser()._actions
    return next(a for a in actions if isinstance(a, argparse._SubParsersAction)).choices[command]


def flag_actions(command: str) -> dict[str, argparse.Action]:
    return {s: a for a in subparser(command)._actions for s in a.option_strings if s.startswith("--")}


def dataclass_default(name: str):
    f = FIELDS[name]
    if f.default is not dataclasses.MISSING:
        return f.default
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else None  # model: required


def test_every_field_is_declared_once_with_its_dataclass_default():
    declared = options()
    assert [o.name for o in declared] == list(FIELDS)
    for option in declared:
        assert option.default == dataclass_default(option.name), option.name
        assert option.group in GROUPS and option.help and "\n" not in option.help
    # Only these are set from Python alone: the positional model, the command's --out, a dict of builder args and
    # the record --lr find writes.
    assert {o.name for o in declared if o.flag is None} == {"model", "out", "model_kwargs", "lr_find", "model_code"}
    assert {o.name for o in declared if o.resumable} == {
        "device",
        "threads",
        "data_dir",
        "checkpoint_every",
        "keep_checkpoints",
        "compile",
    }


@pytest.mark.parametrize("command", ["train", "compare", "finetune"])
def test_each_command_has_a_generated_flag_per_option(command):
    actions = flag_actions(command)
    for option in options():
        if command in option.commands:
            action = actions[option.flag]
            assert action.dest == option.name and action.default is None  # None: "not given"
            assert isinstance(action, argparse.BooleanOptionalAction) == (option.type is bool)
        elif option.flag:
            assert option.flag not in actions, (command, option.flag)
    assert ("--weights" in actions) == (command == "train")  # one weights file cannot start several models


def test_help_shows_the_metadata_help_and_the_dataclass_default(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    for option in options():
        if "train" in option.commands:
            assert " ".join(option.help.split()) in text, option.name
    for name in ("momentum", "val_fraction", "keep_checkpoints", "schedule", "precision"):
        assert f"(default: {dataclass_default(name)})" in text, name
    assert "(default: on)" in text and "(default: the dataset's)" in text


def sample_value(option: ConfigOption):
    """A valid value for the option that differs from its default, and its command-line text."""
    if option.type is bool:
        value = not option.default if option.default is not None else True
        return value, [option.flag if value else f"--no-{option.flag[2:]}"]
    if option.choices:
        value = next(c for c in reversed(option.choices) if c != option.default)
    else:
        value = {int: 3, float: 0.25, str: "some-value"}[option.type]
    return value, [option.flag, str(value)]


class Captured(Exception):
    pass


@pytest.mark.parametrize("option", [o for o in options() if "train" in o.commands], ids=lambda o: o.name)
def test_every_given_train_flag_reaches_the_trainer(option, monkeypatch):
    seen = {}

    def fake_run(config, **kwargs):
        seen["config"] = config
        raise Captured

    monkeypatch.setattr(cnnlab.api, "run", fake_run)
    value, argv = sample_value(option)
    with pytest.raises(Captured):
        main(["train", "lenet5", *argv])
    assert getattr(seen["config"], option.name) == value
    assert seen["config"] == dataclasses.replace(TrainConfig("lenet5"), **{option.name: value})  # nothing else set


def test_no_flag_means_the_dataclass_defaults(monkeypatch):
    seen = {}
    monkeypatch.setattr(cnnlab.api, "run", lambda config, **kwargs: seen.setdefault("config", config) and {})
    assert main(["train", "lenet5"]) == 0
    assert seen["config"] == TrainConfig("lenet5")


def test_compare_passes_every_given_flag_on(monkeypatch):
    import cnnlab.workflows.comparison as comparison

    seen = {}

    def fake_compare(models, **kwargs):
        seen.update(kwargs, models=models)
        raise Captured

    monkeypatch.setattr(comparison, "compare", fake_compare)
    with pytest.raises(Captured):
        main(
            [
                "compare",
                "lenet5",
                "simple_cnn",
                "--device",
                "cpu",
                "--threads",
                "1",
                "--epochs",
                "2",
                "--no-augment",
                "--out",
                "somewhere",
                "--quiet",
            ]
        )
    assert seen == {
        "models": ["lenet5", "simple_cnn"],
        "device": "cpu",
        "threads": 1,
        "epochs": 2,
        "augment": False,
        "out": "somewhere",
        "quiet": True,
        "overwrite": False,
    }


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["--momentum", "abc"], "argument --momentum: expected a number, got 'abc'"),
        (["--seed", "1.5"], "argument --seed: expected a whole number, got '1.5'"),
        (["--threads", "0"], "argument --threads: expected a positive whole number, got 0"),
        (["--train-subset", "-5"], "argument --train-subset: expected a positive whole number, got -5"),
        (["--augment", "yes"], "unrecognized arguments: yes"),
        (["--momentum", "1.5"], "--momentum must be in [0, 1), got 1.5"),
        (["--val-fraction", "1"], "--val-fraction must be in [0, 1), got 1.0"),
        (["--weight-decay", "-1"], "--weight-decay must be zero or positive, got -1.0"),
        (["--crop-padding", "-1"], "--crop-padding must be zero or a positive whole number, got -1"),
        (["--precision", "fp8"], "unknown precision 'fp8'; did you mean"),
        (["--device", "gpu"], "unknown device 'gpu'; did you mean: cpu?"),
    ],
)
def test_bad_values_are_one_line_naming_the_flag(capsys, argv, expected):
    code = main(["train", "lenet5", "--train-subset", "200", "--epochs", "1", "--quiet", *argv])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith("cnnlab: error: "), err
    assert expected in err


def test_the_python_api_names_a_misspelt_option():
    with pytest.raises(CnnlabError, match=r"unknown training option 'epoch'; did you mean: epochs"):
        make_config("lenet5", epoch=3)
    with pytest.raises(CnnlabError, match=r"unknown training option 'learning_rate'"):
        cnnlab.api.train("lenet5", learning_rate=0.1)


def test_validate_gives_the_resolved_config_or_the_clis_message():
    digits = DATASET_DEFAULTS["digits"]
    config = validate({"model": "lenet5", "epochs": 3})
    assert (config.epochs, config.lr, config.optimizer, config.device) == (3, digits["lr"], digits["optimizer"], "auto")
    assert config == resolve(TrainConfig("lenet5", epochs=3))
    with pytest.raises(CnnlabError, match=r"^--lr must be a positive number, got -1$"):
        validate({"model": "lenet5", "lr": -1})
    with pytest.raises(CnnlabError, match=r"^--epochs must be a positive whole number, got 2.5$"):
        validate({"model": "lenet5", "epochs": 2.5})
    with pytest.raises(CnnlabError, match=r"^--batch-size must be a positive whole number, got '64'$"):
        validate({"model": "lenet5", "batch_size": "64"})  # text is not a number: forms parse with ConfigOption.parse
    with pytest.raises(CnnlabError, match=r"^--augment takes true or false, got 'yes'$"):
        validate({"model": "lenet5", "augment": "yes"})
    with pytest.raises(CnnlabError, match="choose a model"):
        validate({"epochs": 3})


def test_a_default_is_always_valid():
    # checkpoint_every's check is "positive", but its default 0 means "off" and passes.
    assert resolve(TrainConfig("lenet5")).checkpoint_every == 0 == dataclass_default("checkpoint_every")
    with pytest.raises(CnnlabError, match="--checkpoint-every must be a positive whole number, got -2"):
        resolve(TrainConfig("lenet5", checkpoint_every=-2))


def test_parse_turns_form_text_into_values():
    assert option_named("epochs").parse("12") == 12
    assert option_named("lr").parse("0.05") == 0.05
    assert [option_named("augment").parse(t) for t in ("on", "False", "1", "no")] == [True, False, True, False]
    assert option_named("model_kwargs").parse('{"drop_path_rate": 0.1}') == {"drop_path_rate": 0.1}
    assert option_named("optimizer").parse("sgd") == "sgd"
    for name, text, message in (
        ("epochs", "0", "expected a positive whole number, got 0"),
        ("lr", "fast", "expected a positive number, got 'fast'"),
        ("augment", "maybe", "expected true or false, got 'maybe'"),
        ("model_kwargs", "[1]", "expected a JSON object"),
    ):
        with pytest.raises(CnnlabError, match=message.replace("[", r"\[")):
            option_named(name).parse(text)
    with pytest.raises(CnnlabError, match="unknown training option 'epoc'; did you mean: epochs"):
        option_named("epoc")


def test_image_size_is_refused_for_a_built_in_dataset(capsys):
    # A flag that cannot apply is an error, never ignored: digits and Fashion-MNIST have one native size.
    with pytest.raises(CnnlabError, match="^--image-size applies to imagefolder:PATH datasets; digits images"):
        resolve(TrainConfig("lenet5", dataset="digits", image_size=64))
    assert resolve(TrainConfig("lenet5", dataset="imagefolder:/data/x", image_size=64)).image_size == 64
    assert main(["train", "lenet5", "--dataset", "digits", "--image-size", "64"]) == 2
    assert capsys.readouterr().err.startswith("cnnlab: error: --image-size applies to imagefolder:PATH")
