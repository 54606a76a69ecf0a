import pytest
import torch

# The tests run many tiny forwards, where a second thread costs more in synchronisation than it saves (measured
# 10-100x slower per forward on a loaded 2-core machine); one thread also makes timings stable.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def digits():
    from cnnlab.data import load_dataset

    return load_dataset("digits")


# The zoo's biggest and deepest models, whose per-model tests (a real forward and backward pass, an export, a
# checkpoint) take seconds each: they count as slow, so `make test-fast` keeps the small members of every family
# and `make test` runs them all. Chosen from `pytest --durations` on the 2-core machine.
SLOW_MODELS = frozenset({
    "resnet1202", "resnet101", "resnet152", "resnext101_32x8d", "wide_resnet50_2",
    "efficientnet_b3", "efficientnet_b4", "efficientnet_b5", "efficientnet_b6", "efficientnet_b7",
    "densenet121", "densenet169", "densenet201", "convnext_small", "convnext_base",
    "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn",
})  # fmt: skip


def pytest_collection_modifyitems(items):
    for item in items:
        params = getattr(item, "callspec", None)
        if params and any(isinstance(value, str) and value in SLOW_MODELS for value in params.params.values()):
            item.add_marker(pytest.mark.slow)
