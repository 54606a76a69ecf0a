"""`cnnlab predict --runtime onnxruntime`: RUN_DIR/model.onnx exported on first use and run in onnxruntime gives
the torch path's top-k, probabilities within 1e-4, on a tiny trained digits run."""

from __future__ import annotations

import json
import os
import sys

import pytest
from PIL import Image

import cnnlab
from cnnlab.cli import main
from cnnlab.errors import CnnlabError
from cnnlab.inference import onnx_runtime

pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install 'cnnlab[export]')")


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """simple_cnn after two epochs on digits (about 95% test accuracy): a network whose calls mean something."""
    out = tmp_path_factory.mktemp("onnx-runtime") / "run"
    cnnlab.train("simple_cnn", "digits", epochs=2, threads=1, out=str(out), quiet=True)
    return out


@pytest.fixture(scope="module")
def images(digits, tmp_path_factory):
    folder = tmp_path_factory.mktemp("digit-images")
    paths = []
    for i in range(12):
        path = folder / f"digit{i}.png"
        Image.fromarray(digits.test_images[i, 0].numpy(), mode="L").save(path)
        paths.append(path)
    return paths


@pytest.mark.slow
def test_onnxruntime_predictions_equal_the_torch_path(trained_run, images, digits):
    onnx_file = trained_run / "model.onnx"
    assert not onnx_file.exists()
    expected = cnnlab.predict(trained_run, images, top_k=10)
    actual = cnnlab.predict(trained_run, images, top_k=10, runtime="onnxruntime")
    assert onnx_file.exists() and (trained_run / "model.onnx.json").exists()  # exported on first use
    assert json.loads((trained_run / "model.onnx.json").read_text())["optimized"] is True
    assert [item["image"] for item in actual] == [item["image"] for item in expected] == [str(p) for p in images]
    for ours, theirs in zip(actual, expected):
        assert ours["top"][0][0] == theirs["top"][0][0]
        probabilities = dict(theirs["top"])  # all 10 classes: compare class by class, whatever the order
        assert len(ours["top"]) == 10
        for name, probability in ours["top"]:
            assert probability == pytest.approx(probabilities[name], abs=1e-4)
    # The network is trained: its calls are mostly right, so the agreement above is about real predictions.
    labels = [str(int(label)) for label in digits.test_labels[: len(images)]]
    assert sum(item["top"][0][0] == label for item, label in zip(actual, labels)) >= 9


@pytest.mark.slow
def test_the_exported_file_is_reused_and_refreshed_when_the_weights_are_newer(trained_run, images):
    cnnlab.predict(trained_run, images[:1], runtime="onnxruntime")
    onnx_file, weights = trained_run / "model.onnx", trained_run / "model.safetensors"
    os.utime(onnx_file, (1_000_000_000, 2_000_000_000))  # a known stamp, newer than any weights written before 2033
    os.utime(weights, (1_000_000_000, 1_900_000_000))
    cnnlab.predict(trained_run, images[:1], runtime="onnxruntime")
    assert onnx_file.stat().st_mtime == 2_000_000_000  # reused as it was
    os.utime(weights, (1_000_000_000, 2_100_000_000))  # as if the run had been resumed after the export
    cnnlab.predict(trained_run, images[:1], runtime="onnxruntime")
    assert onnx_file.stat().st_mtime != 2_000_000_000  # rewritten (stamped now)


@pytest.mark.slow
def test_cli_runtime_flag(trained_run, images, capsys):
    assert main(["predict", str(trained_run), str(images[0]), "--top-k", "2", "--runtime", "onnxruntime"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == str(images[0]) and len(lines) == 3
    assert lines[1].split()[:2] == ["1.", "0"] and lines[2].split()[0] == "2."  # the first test image is a 0


def test_runtime_errors_are_one_line(images, tmp_path, capsys, monkeypatch):
    assert main(["predict", str(tmp_path), str(images[0]), "--runtime", "onnx"]) == 2
    assert capsys.readouterr().err.strip() == "cnnlab: error: unknown runtime 'onnx'; did you mean: onnxruntime?"
    assert main(["predict", str(tmp_path / "nowhere"), str(images[0]), "--runtime", "onnxruntime"]) == 2
    assert capsys.readouterr().err.strip() == f"cnnlab: error: run directory {tmp_path / 'nowhere'} does not exist"
    assert (
        main(["predict", "--model", "resnet50", "--weights", "w.pth", str(images[0]), "--runtime", "onnxruntime"]) == 2
    )
    assert "an ImageNet checkpoint runs in torch" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if the export extra were not installed
    with pytest.raises(
        CnnlabError, match=r"^--runtime onnxruntime needs the onnxruntime package: pip install 'cnnlab\[export\]'$"
    ):
        onnx_runtime.predict(tmp_path, images[:1])  # before anything is read or exported
