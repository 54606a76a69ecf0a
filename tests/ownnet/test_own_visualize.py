"""`cnnlab visualize IMAGE --model NET [--weights W]` with your own network (issue #22 §1): a layer spec or
`file.py:Name`, at its random initialisation (to look inside before training) or with a state dict of its own;
weights of another shape are one line, exit 2."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ownnet_support import SPEC, one_line_error
from ownnet_support import workdir as workdir  # noqa: F401 (the fixture, bound here)
from PIL import Image
from safetensors.torch import save_file

from cnnlab.building import build_own
from cnnlab.cli import main
from cnnlab.visualization.loading import own_subject


@pytest.fixture
def image(workdir):  # noqa: F811
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (28, 28), dtype=np.uint8)).save(workdir / "d28.png")
    return workdir / "d28.png"


@pytest.mark.parametrize("model", ["my_cnn.py:MyCNN", SPEC], ids=["file", "spec"])
def test_visualize_model_draws_your_network_at_its_random_init(image, model):
    out = image.parent / "pictures"
    argv = ["visualize", str(image), "--model", model, "--show", "filters,featuremaps,gradcam", "--out", str(out)]
    assert main(argv) == 0
    assert sorted(p.name for p in out.glob("*.png")) == ["featuremaps-d28.png", "filters.png", "gradcam-d28.png"]


def test_visualize_model_loads_your_weights_and_refuses_a_misfit(image, capsys):
    torch.manual_seed(3)
    trained = build_own("my_cnn.py:MyCNN", None, (1, 28, 28))
    save_file(trained.state_dict(), image.parent / "mine.safetensors")
    subject = own_subject("my_cnn.py:MyCNN", image.parent / "mine.safetensors", image)
    assert subject.in_chans == 1 and subject.name == "MyCNN (my_cnn.py)"
    loaded = subject.model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in trained.state_dict().items())

    save_file(build_own(SPEC, None, (1, 28, 28)).state_dict(), image.parent / "other.safetensors")
    argv = ["visualize", str(image), "--model", "my_cnn.py:MyCNN", "--weights", "other.safetensors"]
    assert "does not fit MyCNN (my_cnn.py)" in one_line_error(capsys, argv)
