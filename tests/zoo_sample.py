"""The zoo sample that `make test-fast` keeps: one model per family, its smallest by parameter count.

Tests parametrized by a registered model name sweep the zoo. `make test` runs them for every model; for the
others tests/conftest.py adds the `slow` marker, so the inner loop checks every family once.
tests/models/test_builders.py checks that this list is still each family's smallest.
"""

FAMILY_REPRESENTATIVES = frozenset({
    "alexnet_paper", "convnext_tiny", "densenet_bc_100_12", "efficientnet_b0", "googlenet_tv", "lenet5", "mini_vgg",
    "mobilenet_v3_small", "nin", "preact_resnet18", "regnet_y_400mf", "resnext50_32x4d", "simple_cnn",
    "simple_resnet", "speednet_small", "squeezenet1_1", "wrn40_4",
})  # fmt: skip
