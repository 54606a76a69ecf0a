import os

import pytest
import torch

# Two cores: one torch thread per test process keeps timings stable and leaves a core for the OS.
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(scope="session")
def digits():
    from cnnlab.data import load_dataset

    return load_dataset("digits")
