"""`--runtime auto`: the faster of torch and onnxruntime for a model, batch and CPU kind, measured once and cached in
cnnlab's state directory, on a tiny lenet5 digits run. The timer is replaced where a test needs a known winner:
timings on a shared test machine prove nothing, the choice following them does."""

from __future__ import annotations

import json
import math
import sys

import pytest
from PIL import Image

import cnnlab
from cnnlab.cli import main
from cnnlab.errors import CnnlabError
from cnnlab.inference import runtime

pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install 'cnnlab[export]')")


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """lenet5 after one epoch on digits: a few seconds of training, a network whose predictions mean something."""
    out = tmp_path_factory.mktemp("runtime-auto") / "run"
    cnnlab.train("lenet5", "digits", epochs=1, threads=1, out=str(out), quiet=True)
    return out


@pytest.fixture(scope="module")
def images(digits, tmp_path_factory):
    folder = tmp_path_factory.mktemp("digit-images")
    paths = []
    for i in range(4):
        path = folder / f"digit{i}.png"
        Image.fromarray(digits.test_images[i, 0].numpy(), mode="L").save(path)
        paths.append(path)
    return paths


@pytest.fixture
def state(tmp_path, monkeypatch):
    """An empty state directory of this test's own: no choice cached yet."""
    monkeypatch.setenv("CNNLAB_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "state"


class Timer:
    """runtime.measure replaced: counts its calls and reports the given seconds per call."""

    def __init__(self, torch_s: float, onnxruntime_s: float) -> None:
        self.seconds = {"torch": torch_s, "onnxruntime": onnxruntime_s}
        self.shapes: list[tuple[int, ...]] = []

    def __call__(self, forwards, x):
        assert set(forwards) == {"torch", "onnxruntime"}
        for forward in forwards.values():
            assert forward(x).shape == (x.shape[0], 10)  # both candidates are real forwards of the run's model
        self.shapes.append(tuple(x.shape))
        return dict(self.seconds)


def entries(state) -> dict:
    return json.loads((state / runtime.CACHE_FILE).read_text())["entries"]


def test_the_choice_is_measured_once_then_reused(trained_run, images, state, monkeypatch):
    spy = Timer(torch_s=2e-3, onnxruntime_s=1e-3)
    monkeypatch.setattr(runtime, "measure", spy)
    first = cnnlab.predict(trained_run, images[:2], top_k=3)
    second = cnnlab.predict(trained_run, images[:2], top_k=3)
    assert spy.shapes == [(2, 1, 28, 28)]  # measured once, on random input of the run's shape and this batch
    assert first[0]["runtime"] == second[0]["runtime"] == "onnxruntime"
    assert second[0]["runtime_reason"] == "2.0x faster than torch here, measured once and cached"
    (entry,) = entries(state).values()
    assert entry == {"runtime": "onnxruntime", "torch_s": 2e-3, "onnxruntime_s": 1e-3}


def test_the_real_timer_runs_once_and_caches_a_valid_entry(trained_run, images, state, monkeypatch):
    calls = []
    real = runtime.measure
    monkeypatch.setattr(runtime, "measure", lambda forwards, x: calls.append(x.shape) or real(forwards, x))
    chosen = cnnlab.predict(trained_run, images[:1])[0]["runtime"]
    assert cnnlab.predict(trained_run, images[:1])[0]["runtime"] == chosen
    assert len(calls) == 1
    (entry,) = entries(state).values()
    assert runtime.valid_entry(entry) and entry["runtime"] == chosen
    assert entry["runtime"] == ("onnxruntime" if entry["onnxruntime_s"] < entry["torch_s"] else "torch")


@pytest.mark.parametrize(("torch_s", "onnxruntime_s", "expected"), [(1.0, 0.5, "onnxruntime"), (0.5, 1.0, "torch")])
def test_the_faster_runtime_is_chosen(trained_run, images, state, monkeypatch, torch_s, onnxruntime_s, expected):
    monkeypatch.setattr(runtime, "measure", Timer(torch_s, onnxruntime_s))
    result = cnnlab.predict(trained_run, images[:1])[0]
    other = "torch" if expected == "onnxruntime" else "onnxruntime"
    assert result["runtime"] == expected
    assert result["runtime_reason"] == f"2.0x faster than {other} here, measured once and cached"


def test_a_tie_goes_to_torch():
    assert runtime.faster(1.0, 1.0) == "torch"


def test_auto_predictions_equal_the_chosen_runtimes(trained_run, images, state, monkeypatch):
    for torch_s, onnxruntime_s, chosen in ((1.0, 0.5, "onnxruntime"), (0.5, 1.0, "torch")):
        monkeypatch.setenv("CNNLAB_STATE_DIR", str(state / chosen))
        monkeypatch.setattr(runtime, "measure", Timer(torch_s, onnxruntime_s))
        auto = cnnlab.predict(trained_run, images, top_k=10)
        direct = cnnlab.predict(trained_run, images, top_k=10, runtime=chosen)
        assert {item["runtime"] for item in auto} == {chosen}
        assert [item["top"] for item in auto] == [item["top"] for item in direct]
        assert direct[0]["runtime_reason"] == f"asked for with --runtime {chosen}"


def test_without_onnxruntime_auto_is_torch(trained_run, images, state, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` fails, as if it were not installed
    monkeypatch.setattr(runtime, "measure", Timer(1.0, 0.5))
    result = cnnlab.predict(trained_run, images[:1])[0]
    assert result["runtime"] == "torch"
    assert result["runtime_reason"] == "onnxruntime is not installed (pip install 'cnnlab[export]' to let auto compare)"
    assert runtime.measure.shapes == [] and not (state / runtime.CACHE_FILE).exists()
    with pytest.raises(CnnlabError, match=r"^--runtime onnxruntime needs the onnxruntime package"):
        cnnlab.predict(trained_run, images[:1], runtime="onnxruntime")


def test_a_model_onnxruntime_cannot_run_is_torch(trained_run, images, state, monkeypatch):
    def broken(run_dir):
        raise RuntimeError("Exporting the operator 'aten::weird' to ONNX is not supported")

    monkeypatch.setattr(runtime, "onnx_forward", broken)
    monkeypatch.setattr(runtime, "measure", Timer(1.0, 0.5))
    result = cnnlab.predict(trained_run, images[:1])[0]
    assert result["runtime"] == "torch"
    assert result["runtime_reason"].startswith("onnxruntime could not run this model (RuntimeError: Exporting")


BROKEN_ENTRIES = {
    "not an object": "[1, 2]",
    "missing time": {"runtime": "onnxruntime", "torch_s": 1.0},
    "unknown runtime": {"runtime": "tensorrt", "torch_s": 1.0, "onnxruntime_s": 0.5},
    "negative time": {"runtime": "torch", "torch_s": -1.0, "onnxruntime_s": 0.5},
    "infinite time": {"runtime": "torch", "torch_s": 1.0, "onnxruntime_s": math.inf},
    "not a number": {"runtime": "torch", "torch_s": math.nan, "onnxruntime_s": 0.5},
    "contradicted by its times": {"runtime": "torch", "torch_s": 1.0, "onnxruntime_s": 0.5},
    "text for a time": {"runtime": "onnxruntime", "torch_s": "1.0", "onnxruntime_s": 0.5},
}


def key_of(trained_run, batch: int) -> str:
    weights = runtime.weights_identity(trained_run / "model.safetensors")
    return runtime.cache_key(weights, (1, 28, 28), batch, "fp32")


@pytest.mark.parametrize("kind", list(BROKEN_ENTRIES))
def test_a_broken_entry_is_measured_again(trained_run, images, state, monkeypatch, kind):
    state.mkdir()
    key = key_of(trained_run, 1)
    other = {"runtime": "torch", "torch_s": 1.0, "onnxruntime_s": 2.0}  # another model's entry, kept
    cache = {"version": runtime.CACHE_VERSION, "entries": {key: BROKEN_ENTRIES[kind], "other": other}}
    (state / runtime.CACHE_FILE).write_text(json.dumps(cache))  # Python's json writes NaN and Infinity
    spy = Timer(1.0, 0.25)
    monkeypatch.setattr(runtime, "measure", spy)
    with pytest.warns(runtime.RuntimeCacheRebuilt, match="broken entry"):
        result = cnnlab.predict(trained_run, images[:1])[0]
    assert result["runtime"] == "onnxruntime" and len(spy.shapes) == 1
    assert entries(state) == {key: {"runtime": "onnxruntime", "torch_s": 1.0, "onnxruntime_s": 0.25}, "other": other}


@pytest.mark.parametrize(
    "text", ["{not json", "[]", '{"version": 1, "entries": []}', '{"version": 99, "entries": {}}', ""]
)
def test_a_broken_cache_file_is_replaced(trained_run, images, state, monkeypatch, text):
    state.mkdir()
    (state / runtime.CACHE_FILE).write_text(text)
    monkeypatch.setattr(runtime, "measure", Timer(0.5, 1.0))
    with pytest.warns(runtime.RuntimeCacheRebuilt, match="is not a runtime cache: replacing it"):
        assert cnnlab.predict(trained_run, images[:1])[0]["runtime"] == "torch"
    data = json.loads((state / runtime.CACHE_FILE).read_text())
    assert data == {
        "version": runtime.CACHE_VERSION,
        "entries": {key_of(trained_run, 1): {"runtime": "torch", "torch_s": 0.5, "onnxruntime_s": 1.0}},
    }


def test_the_key_changes_with_batch_size_and_cpu_kind(trained_run, images, state, monkeypatch):
    assert key_of(trained_run, 1) != key_of(trained_run, 8)
    monkeypatch.setattr(runtime, "cpu_kind", lambda: "amx-bf16")
    amx = key_of(trained_run, 1)
    monkeypatch.setattr(runtime, "cpu_kind", lambda: "no-native-bf16")
    assert amx != key_of(trained_run, 1)
    assert "no-native-bf16" in key_of(trained_run, 1) and "batch 1" in key_of(trained_run, 1)
    # Each batch size and CPU kind is measured on its own, then reused.
    spy = Timer(1.0, 0.5)
    monkeypatch.setattr(runtime, "measure", spy)
    for _ in range(2):
        cnnlab.predict(trained_run, images[:1])
        cnnlab.predict(trained_run, images[:3])
    monkeypatch.setattr(runtime, "cpu_kind", lambda: "amx-bf16")
    cnnlab.predict(trained_run, images[:1])
    assert spy.shapes == [(1, 1, 28, 28), (3, 1, 28, 28), (1, 1, 28, 28)]
    assert len(entries(state)) == 3


def test_the_key_names_the_weights_and_versions(trained_run):
    import torch

    key = key_of(trained_run, 1)
    assert key.startswith("sha256:") and len(key.split(" | ")[0]) == len("sha256:") + 64
    assert f"torch {torch.__version__}" in key and f"onnxruntime {runtime.onnxruntime_version()}" in key


def test_cli_predict_json_shows_the_runtime(trained_run, images, state, monkeypatch, capsys):
    monkeypatch.setattr(runtime, "measure", Timer(1.0, 0.5))
    assert main(["predict", str(trained_run), str(images[0]), "--json", "--top-k", "2"]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert result["runtime"] == "onnxruntime"
    assert result["runtime_reason"] == "2.0x faster than torch here, measured once and cached"
    assert [item["image"] for item in result["predictions"]] == [str(images[0])]
    assert len(result["predictions"][0]["top"]) == 2
    assert captured.err == "runtime: onnxruntime (2.0x faster than torch here, measured once and cached)\n"


def test_cli_eval_json_shows_the_runtime_and_both_runtimes_agree(trained_run, state, monkeypatch, capsys):
    monkeypatch.setattr(runtime, "measure", Timer(1.0, 0.5))
    assert main(["eval", str(trained_run), "--json"]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert result["runtime"] == "onnxruntime" and captured.err.startswith("runtime: onnxruntime (2.0x faster")
    key = next(iter(entries(state)))
    assert "batch 360" in key and "channels_last" in key  # digits' 360 test images: one evaluation batch
    torch_result = cnnlab.evaluate(trained_run, runtime="torch")
    assert torch_result["runtime"] == "torch"
    assert result["test_accuracy"] == pytest.approx(torch_result["test_accuracy"], abs=1 / 360)
    assert result["test_accuracy"] > 0.5  # a trained network: the agreement is about real predictions


def test_unknown_runtime_is_a_one_line_error(trained_run, images, capsys):
    assert main(["predict", str(trained_run), str(images[0]), "--runtime", "fast"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("cnnlab: error: unknown runtime 'fast'") and "\n" not in err
    assert main(["eval", str(trained_run), "--runtime", "onnx"]) == 2
    assert capsys.readouterr().err.strip() == "cnnlab: error: unknown runtime 'onnx'; did you mean: onnxruntime?"
