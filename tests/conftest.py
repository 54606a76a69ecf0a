import pytest
import torch

# The tests run many tiny forwards, where a second thread costs more in synchronisation than it saves (measured
# 10-100x slower per forward on a loaded 2-core machine); one thread also makes timings stable.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def digits():
    from cnnlab.data import load_dataset

    return load_dataset("digits")
