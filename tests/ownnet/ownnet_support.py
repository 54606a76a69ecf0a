"""What the tests of networks of your own share: a network in a file, a layer spec, a working folder holding the
file, and the one-line-error check. A test module binds the fixture to a module name (`workdir =
ownnet_support.workdir`) so pytest finds it."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cnnlab.cli import main

NET = """from torch import nn


class MyCNN(nn.Module):
    def __init__(self, num_classes=10, in_chans=1):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(in_chans, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(8 * 14 * 14, num_classes))

    def forward(self, x):
        return self.head(self.features(x))
"""
SPEC = "conv 8 k3 p1; relu; maxpool k2; flatten; fc 10"


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A fresh folder as the working directory, with my_cnn.py (NET) and a digit.png, and its own trust store."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CNNLAB_STATE_DIR", str(tmp_path / "state"))
    (tmp_path / "my_cnn.py").write_text(NET)
    Image.fromarray(np.full((8, 8), 200, dtype=np.uint8)).save(tmp_path / "digit.png")
    return tmp_path


def one_line_error(capsys, argv) -> str:
    """`cnnlab ARGV` fails with exit 2 and one line on stderr; returns that line."""
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("cnnlab: error: "), err
    return err
