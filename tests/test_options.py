"""The one options layer (cnnlab.options): every command's options are declared once, and the CLI's parser, the
Python API's keyword checks and the lab's job bodies all come from those declarations."""

from __future__ import annotations

import pytest

import cnnlab
from cnnlab.cli import build_parser, recipe_options
from cnnlab.engine.config import ConfigOption
from cnnlab.errors import CnnlabError
from cnnlab.options import Command, Option, positive_int
from cnnlab.options.commands import command, commands, experiment_options

REQUIRED_SAMPLES = {"budget": "10s", "format": "onnx", "dataset": "digits"}  # valid values of the required flags


def minimal_argv(declared: Command) -> list[str]:
    """The command with a value for each required positional and flag, nothing else."""
    argv = [declared.name]
    for option in declared.options:
        if option.positional and option.nargs in (None, "+"):
            argv.append("x")
        elif option.required:
            argv += [option.flag, REQUIRED_SAMPLES[option.name]]
    return argv


@pytest.mark.parametrize("name", list(commands()))
def test_each_declared_option_is_a_flag_with_its_declared_default(name):
    declared = command(name)
    args = build_parser().parse_args(minimal_argv(declared))
    assert args.command == name
    for option in declared.options:
        if option.positional and option.nargs in (None, "+") or option.required:
            continue
        expected = [] if option.nargs == "*" else option.cli_default  # argparse's empty list of none given
        assert getattr(args, option.name) == expected, (name, option.name)
        assert isinstance(option, ConfigOption) == (option.cli_default is None and option.group is not None)


def test_the_cli_commands_are_the_declared_ones_in_order(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--help"])
    text = capsys.readouterr().out
    listed = text[text.index("{") + 1 : text.index("}")].split(",")
    assert listed == list(commands()) and "speedrun" in listed and "visualize" in listed


def test_argv_from_values_parses_back_to_the_same_values():
    values = {"model": "lenet5", "epochs": 3, "lr": 0.05, "augment": False, "tta": True, "time_budget": 90.0}
    argv = command("train").argv({**values, "out": "runs/x"})
    assert argv[:2] == ["train", "lenet5"] and "--no-augment" in argv and "--tta" in argv
    args = build_parser().parse_args(argv)
    assert recipe_options(args) == {k: v for k, v in values.items() if k != "model"} | {"out": "runs/x"}
    experiment = command("experiment").argv({"name": "kernels", "quick": True, "seeds": "0,1", "out": "o", "seed": 0})
    assert experiment == ["experiment", "kernels", "--quick", "--out", "o", "--seed", "0", "--seeds", "0,1"]
    parsed = build_parser().parse_args(experiment)
    assert (parsed.name, parsed.quick, parsed.seeds, parsed.out, parsed.models) == ("kernels", True, (0, 1), "o", None)
    with pytest.raises(CnnlabError, match="unknown experiment option 'epoch'; did you mean: epochs"):
        command("experiment").argv({"name": "kernels", "epoch": 2})


def test_option_parse_keeps_the_cli_words():
    plain = Option("seed", int)
    assert plain.parse("7") == 7
    with pytest.raises(CnnlabError, match=r"^invalid int value: 'x'$"):  # argparse's own wording
        plain.parse("x")
    checked = Option("top_k", int, 5, check=positive_int)
    with pytest.raises(CnnlabError, match=r"^expected a positive whole number, got 0$"):
        checked.parse("0")
    assert Option("json", bool).parse("on") is True


def test_the_api_refuses_a_misspelt_keyword_with_the_closest_names():
    with pytest.raises(CnnlabError, match=r"unknown experiment option 'epoch'; did you mean: epochs\?"):
        cnnlab.experiment("kernels", epoch=1)
    with pytest.raises(CnnlabError, match=r"unknown experiment option 'qiuck'; did you mean: quick\?"):
        cnnlab.experiment("kernels", qiuck=True)
    with pytest.raises(CnnlabError, match=r"unknown training option 'bach_size'; did you mean: batch_size"):
        cnnlab.train("lenet5", bach_size=8)


def test_each_experiment_has_its_own_options():
    from cnnlab.experiments import experiment_options as of_experiment
    from cnnlab.experiments import run_experiment

    common = [o.name for o in experiment_options(())]
    assert common == ["dataset", "data_dir", "epochs", "quick", "out", "seed", "seeds", "repeats"]
    assert [o.name for o in of_experiment("kernels")] == common
    assert [o.name for o in of_experiment("degradation")] == [*common, "models"]
    assert {"models", "weights"} <= {o.name for o in of_experiment("drop-block")}
    with pytest.raises(CnnlabError, match="experiment kernels takes no --models"):
        run_experiment("kernels", models="resnet18", quick=True)


def test_api_defaults_are_the_declared_ones():
    import inspect

    predict = inspect.signature(cnnlab.predict).parameters
    assert predict["top_k"].default == command("predict").option("top_k").default == 5
    assert predict["runtime"].default == command("predict").option("runtime").default == "auto"
    evaluate = inspect.signature(cnnlab.evaluate).parameters
    assert evaluate["runtime"].default == command("eval").option("runtime").default == "auto"
    assert inspect.signature(cnnlab.export).parameters["optimize"].default is False


def test_every_declared_command_has_its_cli_function():
    from cnnlab import cli

    assert set(cli.COMMANDS) == set(commands())
