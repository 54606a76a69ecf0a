"""Which zoo models the per-model loops run, in `make test-fast`, `make test` and `make test-zoo`.

FAMILY_REPRESENTATIVES: one model per family, its smallest by parameter count. Tests parametrized by a registered
model name sweep the zoo; for models outside this sample tests/conftest.py adds the `slow` marker, so the inner loop
(`make test-fast`) checks every family once. tests/models/test_builders.py checks that this list is still each
family's smallest.

BIG_VARIANTS: the zoo's deeper and wider variants, each the same builder as a smaller sibling with other numbers
(`Bottleneck, [3, 8, 36, 3]` against `[3, 4, 6, 3]`). Like torchvision's SKIP_BIG_MODEL, the loops that build and
run every model (interface, ONNX export, BatchNorm folding, feature maps and Grad-CAM, the summary property) skip
them in `make test`, where they took about 200 s of the suite's 1,175 s of worker time on 2 cores (2026-12-07, AMD
EPYC), while the sibling runs the same code. Their parameter counts, their builders and their torchvision twins'
equal logits are still checked in every run. `make test-zoo` (CNNLAB_BIG_MODELS=1) runs the loops over them too.
"""

import os

import pytest

FAMILY_REPRESENTATIVES = frozenset({
    "alexnet_paper", "convnext_tiny", "densenet_bc_100_12", "efficientnet_b0", "googlenet_tv", "lenet5", "mini_vgg",
    "mobilenet_v3_small", "nin", "preact_resnet18", "regnet_y_400mf", "resnext50_32x4d", "simple_cnn",
    "simple_resnet", "speednet_small", "squeezenet1_1", "wrn40_4",
})  # fmt: skip

BIG_VARIANTS = {  # variant: the sibling that runs the same code in the loops
    "resnet32": "resnet20",  # He et al.'s CIFAR nets: 6n+2 layers, n the only number that changes
    "resnet44": "resnet20",
    "resnet56": "resnet20",
    "resnet110": "resnet20",
    "resnet1202": "resnet20",
    "plain32": "plain20",
    "plain44": "plain20",
    "plain56": "plain20",
    "plain110": "plain20",
    "resnet101": "resnet50",
    "resnet152": "resnet50",
    "wide_resnet50_2": "resnet50",
    "wrn28_10": "wrn40_4",
    "resnext101_32x8d": "resnext50_32x4d",
    "densenet169": "densenet121",
    "densenet201": "densenet121",
    "efficientnet_b1": "efficientnet_b0",  # compound scaling: B1-B7 are B0 with width, depth and resolution scaled
    "efficientnet_b2": "efficientnet_b0",
    "efficientnet_b3": "efficientnet_b0",
    "efficientnet_b4": "efficientnet_b0",
    "efficientnet_b5": "efficientnet_b0",
    "efficientnet_b6": "efficientnet_b0",
    "efficientnet_b7": "efficientnet_b0",
    "convnext_small": "convnext_tiny",
    "convnext_base": "convnext_tiny",
    "vgg13": "vgg11",
    "vgg16": "vgg11",
    "vgg19": "vgg11",
    "vgg13_bn": "vgg11_bn",
    "vgg16_bn": "vgg11_bn",
    "vgg19_bn": "vgg11_bn",
}
BIG_MODELS_ON = os.environ.get("CNNLAB_BIG_MODELS", "") not in ("", "0")


def zoo_loop(names) -> list:
    """`names` as pytest parameters, each big variant skipped (saying which sibling runs its code) unless
    CNNLAB_BIG_MODELS=1."""
    if BIG_MODELS_ON:
        return list(names)
    return [
        pytest.param(name, marks=pytest.mark.skip(reason=f"{name} is {BIG_VARIANTS[name]}'s code at a bigger size; "
                                                  "CNNLAB_BIG_MODELS=1 (make test-zoo) runs it"))
        if name in BIG_VARIANTS else name
        for name in names
    ]  # fmt: skip
