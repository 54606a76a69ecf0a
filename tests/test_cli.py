"""The `cnnlab` command: tables for the inspection commands, and one clear line + exit code 2 on bad input."""

import subprocess
import sys

import pytest
from PIL import Image

from cnnlab.cli import main


def run_cli(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_models_lists_the_zoo_with_counts(capsys):
    code, out, _ = run_cli(capsys, "models", "lenet*")
    assert code == 0
    assert "lenet5" in out and "61,706" in out and "1998" in out and "1x32x32" in out


def test_summary_prints_the_lenet_dimension_flow(capsys):
    code, out, _ = run_cli(capsys, "summary", "lenet5", "--input", "1x28x28")
    assert code == 0
    for text in ("6x24x24", "6x12x12", "16x8x8", "16x4x4", "120", "84", "44,426", "281,640"):
        assert text in out


def test_summary_of_a_layer_spec(capsys):
    code, out, _ = run_cli(capsys, "summary", "conv 64 k7 s2 p3; maxpool k3 s2 p1", "--input", "3x224x224")
    assert code == 0 and "64x112x112" in out and "64x56x56" in out and "9,472" in out


def test_summary_counts_the_cifar_resnet50_as_torchvision_with_the_small_input_stem(capsys):
    """Learning-to-Read exercise 2 in one command: resnet50 for 10 classes with the stem `cnnlab train` gives it on
    32 px images (3x3 stride 1, max-pool removed), counted against torchvision's resnet50 altered the same way."""
    import torchvision
    from torch import nn

    import cnnlab
    from cnnlab.measure import summarize

    reference = torchvision.models.resnet50(num_classes=10)
    reference.conv1 = nn.Conv2d(3, 64, 3, stride=1, padding=1, bias=False)
    reference.maxpool = nn.Identity()
    expected = summarize(reference, (3, 32, 32))
    assert expected.total_params == 23_520_842
    ours = cnnlab.summary("resnet50", "3x32x32", num_classes=10, small_input=True)
    assert (ours.total_params, ours.total_macs) == (expected.total_params, expected.total_macs)
    assert cnnlab.summary("resnet50", (3, 32, 32), num_classes=10).total_params == 23_528_522  # the 7x7 stem
    code, out, _ = run_cli(capsys, "summary", "resnet50", "--num-classes", "10", "--small-input", "--input", "3x32x32")
    assert code == 0 and "23,520,842" in out and f"{expected.total_macs:,}"[:9] in out


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["train", "resnt18"], "did you mean"),
        (["train", "lenet5", "--dataset", "fashon-mnist"], "did you mean: fashion-mnist"),
        (["train", "lenet5", "--epochs", "0"], "--epochs"),
        (["train", "lenet5", "--epochs", "-3"], "--epochs"),
        (["train", "lenet5", "--epochs", "ten"], "--epochs"),
        (["train", "lenet5", "--batch-size", "0"], "--batch-size"),
        (["train", "lenet5", "--lr", "-0.1"], "--lr"),
        (["train", "lenet5", "--optimizer", "adam"], "did you mean: adamw"),
        (["train", "lenet5", "--schedule", "cosin"], "did you mean: cosine"),
        (["train", "lenet5", "--batch-size", "5000"], "larger than the training split"),
        (["train", "lenet5", "--dataset", "mnist", "--data-dir", "/nonexistent/cnnlab"], "does not exist"),
        (["summary", "lenet5", "--input", "3x224"], "CxHxW"),
        (["summary", "lenet5", "--input", "1x8x8"], "at least 16x16"),
        (["summary", "nosuchnet"], "unknown model"),
        (["summary", "resnet50", "--num-classes", "0"], "--num-classes"),
        (["summary", "resnet50", "--num-classes", "ten"], "--num-classes"),
        (["summary", "conv 8 k3", "--small-input"], "your own network"),
        (["summary", "conv 8 k3; flatten; fc 10", "--num-classes", "10"], "its last fc layer"),
        (["models", "zzz*"], "no model matches"),
        (["eval", "/nonexistent/run"], "does not exist"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_bad_input_gives_one_line_and_exit_code_2(capsys, argv, expected):
    code, _, err = run_cli(capsys, *argv)
    assert code == 2
    assert expected in err
    assert err.count("\n") == 1 and "Traceback" not in err


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    import cnnlab

    out = tmp_path_factory.mktemp("cli") / "run"
    cnnlab.train("lenet5", dataset="digits", epochs=1, train_subset=200, out=str(out), quiet=True)
    return out


def test_predict_refuses_missing_and_non_image_files(capsys, tiny_run, tmp_path):
    not_an_image = tmp_path / "notes.png"
    not_an_image.write_text("this is text")
    code, _, err = run_cli(capsys, "predict", str(tiny_run), str(not_an_image))
    assert code == 2 and "is not an image" in err
    code, _, err = run_cli(capsys, "predict", str(tiny_run), str(tmp_path / "missing.png"))
    assert code == 2 and "does not exist" in err


def test_predict_prints_top_k(capsys, tiny_run, tmp_path):
    image = tmp_path / "seven.png"
    Image.new("RGB", (40, 30), (255, 255, 255)).save(image)  # wrong size and mode: converted, not refused
    code, out, _ = run_cli(capsys, "predict", str(tiny_run), str(image), "--top-k", "3")
    assert code == 0 and out.count("%") == 3


def test_an_existing_run_is_not_overwritten(capsys, tiny_run):
    code, _, err = run_cli(capsys, "train", "lenet5", "--out", str(tiny_run))
    assert code == 2 and "already holds a run" in err


def test_resume_with_another_model_is_refused(capsys, tiny_run):
    code, _, err = run_cli(capsys, "train", "simple_cnn", "--resume", str(tiny_run))
    assert code == 2 and "lenet5" in err and "simple_cnn" in err


def test_console_script_exits_2_without_traceback():
    result = subprocess.run(
        [sys.executable, "-m", "cnnlab", "train", "lenet5", "--epochs", "0"], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr
