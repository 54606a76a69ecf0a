import pytest
import torch

# The tests run many tiny forwards, where a second thread costs more in synchronisation than it saves (measured
# 10-100x slower per forward on a loaded 2-core machine); one thread also makes timings stable.
torch.set_num_threads(1)


@pytest.fixture(scope="session", autouse=True)
def state_dir(tmp_path_factory):
    """cnnlab's state directory (code trust, `--runtime auto`'s cache) in a temporary folder: the tests write
    nothing into the user's own, and inherit nothing from it."""
    with pytest.MonkeyPatch.context() as patch:
        folder = tmp_path_factory.mktemp("cnnlab-state")
        patch.setenv("CNNLAB_STATE_DIR", str(folder))
        yield folder


@pytest.fixture(scope="session")
def digits():
    from cnnlab.data import load_dataset

    return load_dataset("digits")


def pytest_collection_modifyitems(items):
    """A test parametrized by a registered model name, for a model outside the zoo sample, is slow: the sample
    (one model per family) runs in `make test-fast`, the whole zoo in `make test` (but the big variants, which
    tests/zoo_sample.py skips in the loops that build and run every model: `make test-zoo` runs them too)."""
    from zoo_sample import FAMILY_REPRESENTATIVES

    from cnnlab.registry import list_models

    swept = set(list_models()) - FAMILY_REPRESENTATIVES
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec and any(isinstance(value, str) and value in swept for value in callspec.params.values()):
            item.add_marker(pytest.mark.slow)
