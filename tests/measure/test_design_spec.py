"""The layer spec as a design language: the tutorials' own networks written as specs, with their exact counts, and
a residual network equal to the registered tiny_resnet layer by layer."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlab import CnnlabError, create_model
from cnnlab.measure import build_layer_spec, count_params, summarize

LENET5 = "conv 6 k5; {a}; avgpool k2; conv 16 k5; {a}; avgpool k2; flatten; fc 120; {a}; fc 84; {a}; fc 10"
SECTION1_CNN = "conv 16 k3 p1; relu; maxpool k2; conv 32 k3 p1; relu; maxpool k2; flatten; fc 128; relu; fc 10"
BLOCK = "res(conv {c} k3 s{s} p1 b0; bn; relu; conv {c} k3 p1 b0; bn); relu"
TINY_RESNET = "; ".join(
    [
        "conv 32 k3 p1 b0; bn; relu",
        f"2*({BLOCK.format(c=32, s=1)})",
        *(f"{BLOCK.format(c=c, s=2)}; {BLOCK.format(c=c, s=1)}" for c in (64, 128, 256)),
        "gap; fc 10",
    ]
)


def copy_weights(source: nn.Module, target: nn.Module) -> None:
    """Every tensor of `source`'s state, in order, into `target`'s (the layouts must match one to one)."""
    pairs = list(zip(source.state_dict().values(), target.state_dict().values(), strict=True))
    assert all(a.shape == b.shape for a, b in pairs)
    target.load_state_dict(dict(zip(target.state_dict(), (a.clone() for a, _ in pairs))))


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_lenet5_as_a_spec_has_the_papers_counts(activation):
    spec = LENET5.format(a=activation)
    assert summarize(spec, (1, 32, 32)).total_params == 61_706
    assert summarize(spec, (1, 28, 28)).total_params == 44_426
    assert summarize(spec, (1, 28, 28)).rows[1].kind == {"tanh": "Tanh", "relu": "ReLU"}[activation]


def test_the_section1_cnn_as_a_spec_is_simple_cnn():
    model, reference = build_layer_spec(SECTION1_CNN, 1), create_model("simple_cnn")
    assert summarize(model, (1, 28, 28)).total_params == 206_922 == count_params(reference)
    copy_weights(reference, model)
    x = torch.randn(4, 1, 28, 28)
    torch.testing.assert_close(model(x), reference(x), rtol=0, atol=0)


def test_a_residual_spec_equals_tiny_resnet_layer_by_layer():
    model = build_layer_spec(TINY_RESNET, 1)
    reference = create_model("tiny_resnet", in_chans=1, num_classes=10, input_size=28)
    ours = [(tuple(v.shape), v.dtype) for v in model.state_dict().values()]
    assert ours == [(tuple(v.shape), v.dtype) for v in reference.state_dict().values()]
    assert count_params(model) == count_params(reference) == 2_797_034
    copy_weights(reference, model)
    model.eval(), reference.eval()
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x), rtol=1e-5, atol=1e-5)
    names = [n for n, _ in model.named_modules()]
    assert "res3.skip.0" in names and "res1.skip" in names  # a projection where it downsamples, else identity
    assert isinstance(model.res1.skip, nn.Identity) and model.res3.skip[0].stride == (2, 2)


def test_gap_dropout_lrn_and_the_activations():
    spec = "conv 96 k11 s4 p2; relu; lrn; maxpool k3 s2; conv 10 k1; gelu; sigmoid; dropout 0.5; gap; fc 5; tanh"
    summary = summarize(spec, (3, 224, 224))
    kinds = [r.kind for r in summary.rows]
    assert kinds == [
        "Conv2d", "ReLU", "LocalResponseNorm", "MaxPool2d", "Conv2d", "GELU", "Sigmoid", "Dropout",
        "GlobalAvgPool", "Linear", "Tanh",
    ]  # fmt: skip
    lrn = build_layer_spec(spec, 3).lrn1
    assert (lrn.size, lrn.alpha, lrn.beta, lrn.k) == (5, 1e-4, 0.75, 2.0)  # AlexNet's
    assert summary.rows[8].output_shape == (10,) and summary.rows[9].params == 10 * 5 + 5
    assert build_layer_spec("dropout 0.25", 3).dropout1.p == 0.25
    assert build_layer_spec("lrn n3", 3).lrn1.size == 3


def test_parallel_branches_concatenate_like_inception_3a():
    branches = (
        "conv 64 k1",
        "conv 96 k1; relu; conv 128 k3 p1",
        "conv 16 k1; relu; conv 32 k5 p2",
        "maxpool k3 s1 p1; conv 32 k1",
    )
    spec = f"cat({' | '.join(branches)})"
    summary = summarize(spec, (192, 28, 28))
    convs = [(192, 64, 1), (192, 96, 1), (96, 128, 3), (192, 16, 1), (16, 32, 5), (192, 32, 1)]
    assert summary.total_params == sum(i * o * k * k + o for i, o, k in convs)
    assert summary.rows[-1].output_shape == (32, 28, 28)
    model = build_layer_spec(spec, 192)
    assert model(torch.zeros(1, 192, 28, 28)).shape == (1, 64 + 128 + 32 + 32, 28, 28)
    assert [n for n, _ in model.cat1.named_children()] == ["branch1", "branch2", "branch3", "branch4"]


def test_a_projection_without_batchnorm_has_a_bias_and_repeats_have_their_own_weights():
    model = build_layer_spec("res(conv 8 k3 s2 p1; relu; conv 8 k3 p1); 3*(conv 8 k3 p1; relu)", 4)
    assert model.res1.skip.bias is not None and model.res1.skip.stride == (2, 2)
    assert [n for n, _ in model.named_children()] == ["res1", "conv1", "relu1", "conv2", "relu2", "conv3", "relu3"]
    assert model.conv1.weight.data_ptr() != model.conv2.weight.data_ptr()
    assert summarize(model, (4, 16, 16)).rows[-1].output_shape == (8, 8, 8)


@pytest.mark.parametrize(
    ("spec", "named"),
    [
        ("res(conv 8 k3 p1", "never closed"),
        ("conv 8 k3)", "closes nothing"),
        ("res(conv 8 k3 p1; flatten)", "keep a feature map"),
        ("flatten; res(relu)", "flattened it before"),
        ("cat(conv 8 k1 | gap)", "keep a feature map"),
        ("dropout 1.5", "probability"),
        ("dropout", "probability"),
        ("0*(relu)", "repeat count"),
        ("100*(relu)", "at most 64"),
        ("flatten; gap", "flattened it before"),
        ("conv 8 k3 b2", "b takes 0"),
        ("tanh 2", "no arguments"),
    ],
)
def test_bad_specs_point_at_the_layer(spec, named):
    with pytest.raises(CnnlabError) as error:
        build_layer_spec(spec, in_chans=4)
    assert named in str(error.value) and "res(LAYERS)" in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize(
    ("spec", "named"),
    [
        ("res(conv 8 k3)", "pad each conv"),  # the body shrinks the map, the skip does not
        ("cat(conv 8 k3 | conv 8 k1)", "different sizes"),
    ],
)
def test_shape_mismatches_inside_blocks_are_one_line_errors(spec, named):
    with pytest.raises(CnnlabError, match=named):
        summarize(spec, (8, 16, 16))


def resnet18_spec(skips: bool = True) -> str:
    """ResNet-18 for ImageNet as docs/design.md writes it; without skips, `res(` becomes a plain group `(`."""
    block = BLOCK if skips else BLOCK.replace("res(", "(")
    stages = [f"{block.format(c=c, s=1 if c == 64 else 2)}; {block.format(c=c, s=1)}" for c in (64, 128, 256, 512)]
    return "conv 64 k7 s2 p3 b0; bn; relu; maxpool k3 s2 p1; " + "; ".join(stages) + "; gap; fc 1000"


def test_resnet18_as_a_spec_equals_torchvision_and_loses_only_its_projections_without_skips():
    import torchvision

    model, reference = build_layer_spec(resnet18_spec(), 3), torchvision.models.resnet18()
    assert count_params(model) == count_params(reference) == 11_689_512
    copy_weights(reference, model)
    model.eval(), reference.eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x), rtol=1e-4, atol=1e-4)
    plain = summarize(resnet18_spec(skips=False), (3, 224, 224))
    assert plain.total_params == 11_689_512 - 173_824  # the three 1x1 projections and their BN go with the skips
    assert summarize(model, (3, 224, 224)).total_macs == 1_814_073_344


def test_the_exercises_in_docs_design_md():
    ex1 = summarize("conv 64 k7 s2 p3; maxpool k3 s2 p1; conv 128 k3 p1", (3, 224, 224))
    assert [r.output_shape for r in ex1.rows] == [(64, 112, 112), (64, 56, 56), (128, 56, 56)]
    assert (ex1.total_params, ex1.total_macs) == (83_328, 349_224_960)
    lenet = summarize(LENET5.format(a="relu"), (1, 28, 28))
    assert (lenet.total_params, lenet.total_macs) == (44_426, 281_640)
    stages = [BLOCK.format(c=c, s=1 if c == 32 else 2) for c in (32, 64, 128, 256)]
    design = summarize("conv 32 k3 p1 b0; bn; relu; " + "; ".join(stages) + "; gap; dropout 0.2; fc 50", (3, 100, 100))
    assert (design.total_params, design.total_macs) == (1_239_250, 634_750_976)
    assert [r.output_shape for r in design.rows if r.name.endswith("body.conv2")][-1] == (256, 13, 13)
