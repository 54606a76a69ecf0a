"""Issue #22: a network named as a file reference, a layer spec or a zoo name (the control) goes through the same
commands with consistent results; a run keeps its code, refuses a foreign run's code without --trust-code, and
every bad input is one line with exit 2."""

from __future__ import annotations

import json
import shutil

import numpy as np
import ownnet_support
import pytest
import torch
from ownnet_support import NET, SPEC, one_line_error

import cnnlab
from cnnlab.cli import main

RECIPE = ["--dataset", "digits", "--epochs", "1", "--train-subset", "200", "--schedule", "constant", "--quiet"]
workdir = ownnet_support.workdir


@pytest.mark.slow
@pytest.mark.parametrize("model", ["my_cnn.py:MyCNN", SPEC, "lenet5"], ids=["file", "spec", "zoo"])
def test_every_command_agrees(workdir, capsys, model):
    assert main(["summary", model, "--input", "1x28x28"]) == 0
    assert main(["train", model, *RECIPE, "--out", "run"]) == 0
    results = json.loads((workdir / "run" / "results.json").read_text())
    evaluation = cnnlab.evaluate("run")
    assert evaluation["test_accuracy"] == pytest.approx(results["test_accuracy"])
    top = cnnlab.predict("run", ["digit.png"], top_k=3)[0]
    assert len(top["top_k"]) == 3 if "top_k" in top else len(top) >= 1
    assert main(["visualize", "run", "--from-test", "1", "--show", "gradcam"]) == 0
    assert list((workdir / "run" / "visualize").glob("gradcam*.png"))
    exported = cnnlab.export("run", "onnx")
    check_onnx_matches_torch(exported["path"], "run")
    assert main(["train", model, *RECIPE[:2], "--epochs", "2", *RECIPE[4:], "--resume", "run"]) == 0
    assert len((workdir / "run" / "metrics.csv").read_text().strip().splitlines()) == 3  # header + 2 epochs
    rows = cnnlab.compare(["lenet5", model], "digits", "cmp", epochs=1, train_subset=200, quiet=True)
    assert [r["model"] for r in rows] == ["lenet5", model]


def check_onnx_matches_torch(path, run_dir):
    import onnxruntime

    from cnnlab.inference.prediction import load_run

    model = load_run(run_dir).model
    x = torch.randn(3, 1, 28, 28)
    with torch.no_grad():
        expected = model(x).numpy()
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    np.testing.assert_allclose(got, expected, atol=1e-4)


@pytest.mark.slow
def test_run_keeps_its_code(workdir, capsys, monkeypatch):
    assert main(["train", "my_cnn.py:MyCNN", *RECIPE, "--out", "run"]) == 0
    config = json.loads((workdir / "run" / "config.json").read_text())
    code = config["model_code"]
    assert code["reference"] == "my_cnn.py:MyCNN"
    assert code["arguments"] == {"num_classes": 10, "in_chans": 1}
    assert (workdir / "run" / "model_source.py").read_text() == NET
    before = cnnlab.evaluate("run")["test_accuracy"]
    (workdir / "my_cnn.py").write_text("raise RuntimeError('edited')\n")  # the original, broken: no matter
    shutil.move("run", "moved")
    assert cnnlab.evaluate("moved")["test_accuracy"] == before
    monkeypatch.setenv("CNNLAB_STATE_DIR", str(workdir / "someone-else"))
    err = one_line_error(capsys, ["eval", "moved"])
    assert "--trust-code" in err and code["sha256"][:12] in err
    with pytest.raises(cnnlab.models.trust.UntrustedCode):
        cnnlab.evaluate("moved")
    assert cnnlab.evaluate("moved", trust_code=True)["test_accuracy"] == before
    assert main(["eval", "moved", "--trust-code"]) == 0


def test_spec_run_stores_the_spec_and_no_code(workdir):
    cnnlab.train(SPEC, "digits", epochs=1, train_subset=200, out="run", quiet=True)
    config = json.loads((workdir / "run" / "config.json").read_text())
    assert config["model"] == SPEC and config["model_code"] is None
    assert not (workdir / "run" / "model_source.py").exists()


def test_api_takes_the_class(workdir, monkeypatch):
    monkeypatch.syspath_prepend(str(workdir))
    import my_cnn

    result = cnnlab.train(my_cnn.MyCNN, "digits", epochs=1, train_subset=200, out="run", quiet=True)
    assert result["model"].endswith("my_cnn.py:MyCNN")
    assert (workdir / "run" / "model_source.py").read_text() == NET


BAD = {
    "missing file": ("nope.py:MyCNN", "no file nope.py"),
    "missing name": ("my_cnn.py:Other", "no 'Other' in it; it defines: MyCNN"),
    "import error": ("broken.py:Net", "broken.py:2: NameError"),
    "not a module": ("plain.py:make", "returned a int, not an nn.Module"),
    "forward error": ("shapes.py:Net", "in layer '3' (input 2x392): RuntimeError"),
    "wrong output": ("wide.py:Net", "the output is [2, 3] for 2 images; it must be [N, num_classes] = [2, 10]"),
    "bad spec": ("conv 8 k3; maxpool 2", "unknown option '2' for maxpool"),
    "zoo-only weights": ("my_cnn.py:MyCNN --weights w.pth", "is your own network"),
}
FILES = {
    "broken.py": "import torch\nx = nn.Linear(1, 1)\n",
    "plain.py": "def make():\n    return 3\n",
    "shapes.py": "from torch import nn\n\nclass Net(nn.Sequential):\n    def __init__(self):\n"
    "        super().__init__(nn.Conv2d(1, 2, 3, padding=1), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(5, 10))\n"
    "",
    "wide.py": "from torch import nn\n\ndef Net(in_chans):\n"
    "    return nn.Sequential(nn.Flatten(), nn.Linear(in_chans * 784, 3))\n",
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_one_line(workdir, capsys, case):
    for name, text in FILES.items():
        (workdir / name).write_text(text)
    model, expected = BAD[case]
    model, *more = model.split(" --") if case.startswith("zoo") else (model,)
    extra = ("--" + more[0]).split(" ") if more else []
    err = one_line_error(capsys, ["train", model, *RECIPE, *extra])
    assert expected in err


def test_seeing_inside_takes_an_own_module_instance(workdir, monkeypatch):
    """Issue #22 §1: visualize, feature_maps, attribution and receptive_field take the nn.Module itself (your class,
    which has no in_chans or stages; a spec's Sequential), not only a run or a zoo name."""
    monkeypatch.syspath_prepend(str(workdir))
    import my_cnn

    from cnnlab.building import build_own

    torch.manual_seed(0)
    images = torch.randint(0, 256, (2, 1, 28, 28), dtype=torch.uint8)
    mine = my_cnn.MyCNN()
    spec = build_own("conv 8 k3 p1; relu; maxpool k2; res(conv 8 k3 p1; relu); flatten; fc 10", 10, (1, 28, 28))
    maps = {name: tuple(m.shape) for name, m in cnnlab.feature_maps(mine, images).items()}
    assert maps == {"features.0": (2, 8, 28, 28)}  # its one conv's maps: the channels read from the module
    maps = {name: tuple(m.shape) for name, m in cnnlab.feature_maps(spec, images).items()}
    assert maps == {"conv1": (2, 8, 28, 28), "res1.body.conv1": (2, 8, 14, 14)}
    for net in (mine, spec):
        for method in ("gradcam", "saliency"):
            heat = cnnlab.attribution(net, images, method=method)
            assert heat.shape == (2, 28, 28) and heat.min() >= 0 and heat.max() == pytest.approx(1.0)
    # conv 3x3 -> 3; max-pool 2 -> 4 (jump 2); the res block's 3x3 conv -> 4 + 2 * 2 = 8.
    assert cnnlab.receptive_field(mine, (1, 28, 28)) == 4
    assert cnnlab.receptive_field(spec, (1, 28, 28)) == 8
    written = cnnlab.visualize(spec, images, show="featuremaps,gradcam", out=workdir / "seen")
    assert sorted(path.name for path in written) == [
        "featuremaps-image0.png",
        "featuremaps-image1.png",
        "gradcam-image0.png",
        "gradcam-image1.png",
    ]
    assert all(path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for path in written)
