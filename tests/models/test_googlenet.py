"""GoogLeNet: torchvision's twin (with and without auxiliary heads), the paper's network, the Inception module."""

import pytest
import torch
import torchvision
from torch import nn
from twins import n_params, randomize_norms_, stage_shapes

from cnnlab import create_model, model_info
from cnnlab.models.googlenet import AUX_LOSS_WEIGHT, GoogLeNetOutputs, InceptionModule

TV_PARAMS = 6_624_904  # torchvision's googlenet without aux heads, /work/shared/reference/anchors.md


@pytest.fixture(scope="module", autouse=True)
def without_onednn():
    """PyTorch's native convolutions: oneDNN compiles a kernel per new conv shape, which costs these tiny
    one-off batches more than the arithmetic (2.4x the CPU time of this file)."""
    previous = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = False
    yield
    torch.backends.mkldnn.enabled = previous


def scramble_(model: nn.Module) -> nn.Module:
    """Give every parameter and BN statistic random values that keep the activations' scale: torchvision's
    std-0.01 init with fresh BN statistics makes the logits ~1e-9, so any atol comparison would be vacuous."""
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu")  # keeps the activations' scale
            if module.bias is not None:
                nn.init.normal_(module.bias, 0, 0.1)
    randomize_norms_(model)
    return model


@pytest.fixture(scope="module")
def twins():
    torch.manual_seed(0)
    tv = torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=False, dropout=0.0, dropout_aux=0.0)
    return scramble_(tv), create_model("googlenet_tv", aux_logits=True, dropout=0.0, aux_dropout=0.0)


def test_parameter_counts():
    assert model_info("googlenet_tv").twin == "googlenet" and model_info("googlenet").twin is None
    torch.manual_seed(0)
    reference = torchvision.models.googlenet(weights=None, aux_logits=False, init_weights=False)
    assert n_params(create_model("googlenet_tv")) == n_params(reference) == TV_PARAMS
    # The paper's: +16 weights per 5x5 conv (sum of 5x5-reduce x 5x5 widths 23,808) and one bias per conv
    # channel (7,280 channels) instead of BN's two.
    assert n_params(create_model("googlenet", aux_logits=False)) == TV_PARAMS + 16 * 23_808 - 7_280 == 6_998_552
    # Each aux head: 1x1 conv 512|528 -> 128 (bias), fc 2048 -> 1024, fc 1024 -> 1000.
    heads = (512 * 128 + 128) + (528 * 128 + 128) + 2 * (2048 * 1024 + 1024 + 1024 * 1000 + 1000)
    assert n_params(create_model("googlenet")) == 6_998_552 + heads == 13_378_280


@torch.no_grad()
def test_identical_logits_in_eval(twins):
    tv, ours = twins
    ours.load_state_dict(ours.adapt_state_dict(tv.state_dict()))  # strict, aux heads included
    tv.eval(), ours.eval()
    x = torch.randn(2, 3, 64, 64)
    expected = tv(x)
    assert expected.std() > 0.1 and (expected[0] - expected[1]).abs().max() > 0.1  # a real signal per sample
    out = ours(x)
    assert isinstance(out, torch.Tensor)  # eval mode: logits only, even with aux heads
    torch.testing.assert_close(out, expected, atol=1e-4, rtol=1e-4)


@torch.no_grad()
def test_identical_aux_outputs_in_train_mode(twins):
    tv, ours = twins
    ours.load_state_dict(tv.state_dict())
    tv.train(), ours.train()  # BN uses batch statistics; dropout is 0 on both sides
    x = torch.randn(2, 3, 64, 64)
    expected, out = tv(x), ours(x)
    assert isinstance(out, GoogLeNetOutputs) and isinstance(out, tuple)
    assert out._fields == ("logits", "aux_logits2", "aux_logits1")
    for ours_logits, tv_logits in zip(out, expected):
        assert ours_logits.shape == (2, 1000)
        torch.testing.assert_close(ours_logits, tv_logits, atol=1e-4, rtol=1e-4)


def test_load_checkpoint_without_aux_heads():
    torch.manual_seed(0)
    tv = scramble_(torchvision.models.googlenet(weights=None, aux_logits=False, init_weights=False)).eval()
    ours = create_model("googlenet_tv").eval()
    ours.load_state_dict(tv.state_dict())
    with torch.no_grad():
        x = torch.randn(2, 3, 32, 32)
        torch.testing.assert_close(ours(x), tv(x), atol=1e-4, rtol=1e-4)
    ours.train()
    assert ours(torch.randn(2, 3, 32, 32)).shape == (2, 1000)  # no heads: a plain tensor in training too


def test_inception_module_standalone():
    # 3a as in the paper: 1x1 192*64+64; 192*96+96, 3x3 96*128*9+128; 192*16+16, 5x5 16*32*25+32; pool 192*32+32
    block = InceptionModule(192, 64, 96, 128, 16, 32, 32)
    assert n_params(block) == 12_352 + 18_528 + 110_720 + 3_088 + 12_832 + 6_176 == 163_696
    assert block.branch3[1].conv.kernel_size == (5, 5) and block.out_chs == 256
    x = torch.randn(2, 192, 9, 9)
    out = block(x)
    assert out.shape == (2, 256, 9, 9)
    torch.testing.assert_close(out[:, 64:192], block.branch2(x))  # concatenated in branch order
    tv_style = InceptionModule(192, 64, 96, 128, 16, 32, 32, branch3_kernel=3, batch_norm=True)
    assert tv_style.branch3[1].conv.kernel_size == (3, 3)
    # a 3x3 has 16 fewer weights per channel pair (16*32 pairs); BN adds 2 and drops 1 bias per channel (368)
    assert n_params(tv_style) == 163_696 - 16 * 16 * 32 + 368


def test_paper_network_train_outputs_and_aux_weight():
    torch.manual_seed(0)
    model = create_model("googlenet", num_classes=10)
    assert model.aux_loss_weight == AUX_LOSS_WEIGHT == 0.3
    assert isinstance(model.lrn1, nn.LocalResponseNorm) and model.maxpool4.kernel_size == 3
    assert model.inception4e.branch3[1].conv.bias is not None  # no BatchNorm in 2014
    model.train()
    out = model(torch.randn(2, 3, 64, 64))  # 4a and 4d at 4x4
    assert isinstance(out, GoogLeNetOutputs) and [t.shape for t in out] == [(2, 10)] * 3
    target = torch.tensor([1, 2])
    loss = nn.functional.cross_entropy(out.logits, target)
    loss = loss + model.aux_loss_weight * sum(nn.functional.cross_entropy(aux, target) for aux in out[1:])
    loss.backward()
    assert model.aux1.fc2.weight.grad.abs().sum() > 0 and model.conv1.conv.weight.grad.abs().sum() > 0
    model.eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, 64, 64)).shape == (2, 10)


@torch.no_grad()
def test_small_input_shapes_and_stages():
    torch.manual_seed(0)
    model = create_model("googlenet_tv", num_classes=10, in_chans=1, small_input=True).eval()
    assert model.stage_names == ("conv3", "inception3b", "inception4e", "inception5b")
    shapes, logits = stage_shapes(model, torch.randn(1, 1, 28, 28))
    assert logits.shape == (1, 10)
    # 28 (stride-1 stem, no first pool) -> 14 -> 7 -> 4 (2x2 ceil-mode pool)
    assert shapes == [(1, 192, 28, 28), (1, 480, 14, 14), (1, 832, 7, 7), (1, 1024, 4, 4)]
    paper = create_model("googlenet", num_classes=10, small_input=True).eval()
    assert paper(torch.randn(1, 3, 32, 32)).shape == (1, 10)


def test_reset_classifier_resets_the_aux_heads_too():
    model = create_model("googlenet_tv", num_classes=10, aux_logits=True, small_input=True)
    model.reset_classifier(4)
    assert model.fc.out_features == model.aux1.fc2.out_features == model.aux2.fc2.out_features == 4
    assert model.num_classes == 4 and model.get_classifier() is model.fc
    with torch.no_grad():
        assert model.eval()(torch.randn(1, 3, 28, 28)).shape == (1, 4)
