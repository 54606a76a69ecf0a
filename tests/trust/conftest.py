"""Fixtures of the trust tests (helpers are in trust_helpers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from trust_helpers import RECIPE

from cnnlab.cli import main


@pytest.fixture(autouse=True)
def restore_threads():
    # In-process runs with --threads 1 set torch's global thread count; give the next test what it had.
    previous = torch.get_num_threads()
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def reference_run(tmp_path_factory) -> Path:
    """The uninterrupted run every interrupted-and-resumed run must reproduce bit for bit."""
    out = tmp_path_factory.mktemp("reference") / "run"
    previous = torch.get_num_threads()
    assert main(["train", "lenet5", *RECIPE, "--out", str(out)]) == 0
    torch.set_num_threads(previous)
    return out
