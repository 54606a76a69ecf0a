"""The from-scratch references equal torch's layers, and the tutorials' worked examples, as the code computes them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.scratch import (
    BatchNorm2dScratch,
    LayerNormScratch,
    avg_pool2d,
    batch_norm_2d,
    conv2d,
    layer_norm,
    max_pool2d,
    relu,
    residual_block_numpy,
)

# The tutorials' 2x2x2x2 batch: channel 0 holds 1..8, channel 1 holds 10..17.
TUTORIAL_BATCH = np.array(
    [
        [[[1.0, 2.0], [3.0, 4.0]], [[10.0, 11.0], [12.0, 13.0]]],
        [[[5.0, 6.0], [7.0, 8.0]], [[14.0, 15.0], [16.0, 17.0]]],
    ]
)


def test_tutorial_batch_norm_example_numpy():
    y = batch_norm_2d(TUTORIAL_BATCH, np.ones(2), np.zeros(2))
    # (x - 4.5) / sqrt(5.25 + 1e-5), as the tutorial traces it; channel 1 is channel 0 shifted by 9, so identical.
    np.testing.assert_allclose(y[0, 0], [[-1.528, -1.091], [-0.655, -0.218]], atol=5e-4)
    np.testing.assert_allclose(y[1, 0], [[0.218, 0.655], [1.091, 1.528]], atol=5e-4)
    np.testing.assert_allclose(y[:, 1], y[:, 0])
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), [0.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(y.var(axis=(0, 2, 3)), [1.0, 1.0], atol=1e-5)


@pytest.mark.parametrize("layer", [nn.BatchNorm2d, BatchNorm2dScratch])
def test_tutorial_batch_norm_example_running_statistics(layer):
    bn = layer(2, eps=1e-5, momentum=0.1)
    x = torch.tensor(TUTORIAL_BATCH, dtype=torch.float32)
    y_train = bn(x)
    # Each channel pools N*H*W = 8 values, so torch.var's unbiased estimate of the normalised output is 8/7 * 5.25 /
    # (5.25 + eps) = 1.1429 (the tutorial states 16/15 = 1.0667).
    torch.testing.assert_close(y_train.var(dim=(0, 2, 3)), torch.full((2,), 8 / 7), atol=1e-4, rtol=0)
    torch.testing.assert_close(bn.running_mean, torch.tensor([0.45, 1.35]))  # 0.9 * 0 + 0.1 * [4.5, 13.5]
    # running_var tracks the UNBIASED batch variance 42 / 7 = 6: 0.9 * 1 + 0.1 * 6 = 1.5 (the tutorial states 1.425,
    # which uses the biased 5.25).
    torch.testing.assert_close(bn.running_var, torch.tensor([1.5, 1.5]))
    bn.eval()
    # (x - 0.45) / sqrt(1.5 + 1e-5) for x = 1..4 (the tutorial, with its 1.425, states about [0.46, 1.30, 2.13, 2.97]).
    torch.testing.assert_close(bn(x)[0, 0], torch.tensor([[0.4491, 1.2656], [2.0821, 2.8986]]), atol=1e-4, rtol=0)


def _random_bn_pair(channels: int, momentum: float | None):
    torch.manual_seed(0)
    reference = nn.BatchNorm2d(channels, momentum=momentum)
    with torch.no_grad():
        reference.weight.uniform_(0.5, 1.5)
        reference.bias.uniform_(-0.5, 0.5)
    scratch = BatchNorm2dScratch(channels, momentum=momentum)
    scratch.load_state_dict(reference.state_dict())  # same names: weight, bias, running_*, num_batches_tracked
    return reference, scratch


@pytest.mark.parametrize("momentum", [0.1, None])
def test_batch_norm_scratch_equals_torch_through_training_and_eval(momentum):
    reference, scratch = _random_bn_pair(3, momentum)
    for step in range(5):
        x = torch.randn(4, 3, 5, 6) * (step + 1) + step  # a drifting distribution moves the running stats
        x_ref, x_scratch = x.clone().requires_grad_(), x.clone().requires_grad_()
        y_ref, y_scratch = reference(x_ref), scratch(x_scratch)
        torch.testing.assert_close(y_scratch, y_ref, atol=1e-5, rtol=0)
        (y_ref * torch.arange(y_ref.numel()).view_as(y_ref)).sum().backward()
        (y_scratch * torch.arange(y_scratch.numel()).view_as(y_scratch)).sum().backward()
        torch.testing.assert_close(x_scratch.grad, x_ref.grad, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(scratch.running_mean, reference.running_mean, atol=1e-5, rtol=0)
    torch.testing.assert_close(scratch.running_var, reference.running_var, atol=1e-5, rtol=0)
    assert scratch.num_batches_tracked.item() == reference.num_batches_tracked.item() == 5
    reference.eval(), scratch.eval()
    x = torch.randn(2, 3, 5, 6)
    torch.testing.assert_close(scratch(x), reference(x), atol=1e-5, rtol=0)
    assert scratch.num_batches_tracked.item() == 5  # eval leaves the statistics alone


def test_batch_norm_numpy_equals_torch_training_mode():
    rng = np.random.default_rng(1)
    x, gamma, beta = rng.normal(2, 3, (3, 4, 5, 5)), rng.normal(1, 0.2, 4), rng.normal(0, 1, 4)
    expected = F.batch_norm(torch.tensor(x), None, None, torch.tensor(gamma), torch.tensor(beta), training=True)
    np.testing.assert_allclose(batch_norm_2d(x, gamma, beta), expected.numpy(), atol=1e-10)


@pytest.mark.parametrize("normalized_shape", [(6,), (4, 6)])
def test_layer_norm_equals_torch(normalized_shape):
    torch.manual_seed(0)
    reference = nn.LayerNorm(normalized_shape)
    with torch.no_grad():
        reference.weight.uniform_(0.5, 1.5)
        reference.bias.uniform_(-0.5, 0.5)
    x = torch.randn(2, 3, 4, 6) * 3 + 1
    scratch = LayerNormScratch(normalized_shape)
    scratch.load_state_dict(reference.state_dict())
    torch.testing.assert_close(scratch(x), reference(x), atol=1e-5, rtol=0)
    numpy_out = layer_norm(
        x.double().numpy(), reference.weight.detach().double().numpy(), reference.bias.detach().double().numpy()
    )
    np.testing.assert_allclose(numpy_out, reference(x).detach().numpy(), atol=1e-5)
    # the tutorials' vector [2, 4, 6, 8]: mean 5, biased variance 5
    np.testing.assert_allclose(
        layer_norm(np.array([2.0, 4, 6, 8]), np.ones(4), np.zeros(4), eps=0), np.array([-3, -1, 1, 3]) / np.sqrt(5)
    )


@pytest.mark.parametrize(
    ("shape", "out_chans", "kernel", "stride", "padding"),
    [((2, 3, 8, 8), 4, 3, 1, 1), ((1, 2, 9, 7), 3, 5, 2, 2), ((2, 1, 6, 6), 2, 1, 1, 0), ((1, 4, 11, 11), 2, 4, 3, 0)],
)
def test_conv2d_equals_torch(shape, out_chans, kernel, stride, padding):
    rng = np.random.default_rng(2)
    x, w, b = rng.normal(size=shape), rng.normal(size=(out_chans, shape[1], kernel, kernel)), rng.normal(size=out_chans)
    expected = F.conv2d(torch.tensor(x), torch.tensor(w), torch.tensor(b), stride=stride, padding=padding).numpy()
    np.testing.assert_allclose(conv2d(x, w, b, stride, padding), expected, atol=1e-10)
    expected = F.conv2d(torch.tensor(x), torch.tensor(w), stride=stride, padding=padding).numpy()
    np.testing.assert_allclose(conv2d(x, w, stride=stride, padding=padding), expected, atol=1e-10)


@pytest.mark.parametrize(
    ("shape", "kernel", "stride"), [((2, 3, 8, 8), 2, None), ((1, 2, 9, 7), 3, 2), ((2, 1, 7, 7), 3, 1)]
)
def test_pools_equal_torch(shape, kernel, stride):
    x = np.random.default_rng(3).normal(size=shape)
    t = torch.tensor(x)
    np.testing.assert_allclose(max_pool2d(x, kernel, stride), F.max_pool2d(t, kernel, stride).numpy())
    np.testing.assert_allclose(avg_pool2d(x, kernel, stride), F.avg_pool2d(t, kernel, stride).numpy(), atol=1e-12)


# The tutorials' 2-channel 3x3 map with negative entries.
TUTORIAL_MAP = np.array(
    [
        [[1.0, -2.0, 3.0], [-1.0, 4.0, -5.0], [6.0, -7.0, 8.0]],
        [[-1.0, 2.0, -3.0], [1.0, -4.0, 5.0], [-6.0, 7.0, -8.0]],
    ]
)


def test_residual_block_with_zero_weights_is_the_identity_of_its_design():
    zeros = np.zeros((2, 2))
    np.testing.assert_array_equal(
        residual_block_numpy(TUTORIAL_MAP, zeros, zeros), relu(TUTORIAL_MAP)
    )  # ReLU after the add
    np.testing.assert_array_equal(residual_block_numpy(TUTORIAL_MAP, zeros, zeros, preact=True), TUTORIAL_MAP)


def test_residual_block_equals_torch_1x1_convs_and_the_tutorial_magnitudes():
    rng = np.random.default_rng(0)
    w1, w2 = rng.standard_normal((2, 2)) * 0.1, rng.standard_normal((2, 2)) * 0.1
    x, k1, k2 = torch.tensor(TUTORIAL_MAP)[None], torch.tensor(w1)[..., None, None], torch.tensor(w2)[..., None, None]
    expected = F.relu(x + F.conv2d(F.relu(F.conv2d(x, k1)), k2))[0].numpy()
    y = residual_block_numpy(TUTORIAL_MAP, w1, w2)
    np.testing.assert_allclose(y, expected, atol=1e-12)
    preact = (x + F.conv2d(F.relu(F.conv2d(F.relu(x), k1)), k2))[0].numpy()
    np.testing.assert_allclose(residual_block_numpy(TUTORIAL_MAP, w1, w2, preact=True), preact, atol=1e-12)
    # Mean |x| is 74 / 18 = 4.111 and the block's output, close to relu(x) (mean 37 / 18 = 2.056), is 2.056; the
    # tutorial prints "~4.5" for both.
    assert np.abs(TUTORIAL_MAP).mean() == pytest.approx(74 / 18)
    assert np.abs(y).mean() == pytest.approx(2.0562, abs=1e-4)
