"""--tensorboard: the event files, read back with tensorboard's own reader, hold the run's scalars, a grid of its
misclassified test images and its hyperparameters."""

import csv
import json
import sys

import pytest
import torch

import cnnlab
from cnnlab.cli import main
from cnnlab.engine.tensorboard_log import GRID_COLUMNS, GRID_PADDING

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
STEPS = 8  # 540 train images in batches of 64


@pytest.fixture(scope="module")
def logged_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("tb") / "run"
    previous = torch.get_num_threads()
    results = cnnlab.train(
        "lenet5",
        dataset="digits",
        train_subset=600,
        epochs=1,
        threads=1,
        precision="fp32",
        tensorboard=True,
        out=str(out),
        quiet=True,
    )
    torch.set_num_threads(previous)
    events = event_accumulator.EventAccumulator(str(out / "tensorboard"), size_guidance={"scalars": 0, "images": 0})
    events.Reload()
    return out, results, events


def test_scalars_are_the_metrics(logged_run):
    out, _, events = logged_run
    row = next(csv.DictReader((out / "metrics.csv").open()))
    for tag, column in (
        ("loss/train", "train_loss"),
        ("accuracy/train", "train_accuracy"),
        ("loss/val", "val_loss"),
        ("accuracy/val", "val_accuracy"),
        ("lr/epoch_end", "lr"),
        ("speed/images_per_second", "images_per_second"),
    ):
        [event] = events.Scalars(tag)
        assert event.step == STEPS and event.value == pytest.approx(float(row[column]), rel=1e-6), tag
    batch_losses = events.Scalars("loss/train_batch")
    assert [e.step for e in batch_losses] == list(range(1, STEPS + 1))
    assert [e.step for e in events.Scalars("lr/step")] == list(range(1, STEPS + 1))
    # the epoch's mean train loss is the mean of its batch losses (equal batches)
    assert sum(e.value for e in batch_losses) / STEPS == pytest.approx(float(row["train_loss"]), rel=1e-5)


def test_misclassified_grid_shows_every_wrong_test_image_up_to_64(logged_run):
    out, results, events = logged_run
    matrix = torch.tensor(cnnlab.evaluate(out)["confusion_matrix"])
    wrong = int(matrix.sum() - matrix.diag().sum())
    assert wrong == round((1 - results["test_accuracy"]) * 360) and wrong > 0
    [image] = events.Images("test/misclassified")
    shown = min(wrong, 64)
    rows, columns = -(-shown // GRID_COLUMNS), min(shown, GRID_COLUMNS)
    assert (image.height, image.width) == (
        rows * (28 + GRID_PADDING) + GRID_PADDING,
        columns * (28 + GRID_PADDING) + GRID_PADDING,
    )
    [text] = events.Tensors("test/misclassified/text_summary")
    assert text.tensor_proto.string_val[0].decode().startswith(f"{wrong} of 360 test images wrong")


def test_hyperparameters_sit_beside_the_final_metrics(logged_run):
    from tensorboard.plugins.hparams import plugin_data_pb2

    out, results, events = logged_run
    content = events.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    hparams = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info.hparams
    config = json.loads((out / "config.json").read_text())
    assert hparams["model"].string_value == "lenet5" and hparams["lr"].number_value == pytest.approx(config["lr"])
    assert (
        hparams["batch_size"].number_value == 64 and hparams["tensorboard"].number_value == 1
    )  # torch logs bools as 0/1
    assert hparams["data_dir"].string_value == "none" and hparams["model_kwargs"].string_value == "{}"
    [accuracy] = events.Scalars("hparam/test_accuracy")
    assert accuracy.value == pytest.approx(results["test_accuracy"])


def test_without_the_package_the_flag_is_one_line(capsys, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # what `import tensorboard` meets when it is not installed
    code = main(["train", "lenet5", "--tensorboard", "--epochs", "1", "--quiet", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert (
        code == 2
        and err == "cnnlab: error: --tensorboard needs the tensorboard package: pip install 'cnnlab[tensorboard]'\n"
    )
    assert not (tmp_path / "run").exists()
