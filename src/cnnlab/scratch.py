"""From-scratch references of the tutorials' building blocks, checked against torch in tests/test_scratch.py.

NumPy versions show the arithmetic with nothing hidden; `BatchNorm2dScratch` and `LayerNormScratch` are plain
torch modules (no nn.BatchNorm / nn.LayerNorm inside) whose buffers and parameters carry torch's own names, so
their state dicts load into the real layers and back.

All arrays are batch-first: images are (N, C, H, W), conv weights (O, C, kH, kW).
"""

from __future__ import annotations

import numpy as np
import torch
from numpy.lib.stride_tricks import sliding_window_view
from torch import nn

# ---------------------------------------------------------------------------------------------------- shapes


def conv_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> int:
    """Output side of a conv or pool: floor((H + 2p - d(k - 1) - 1) / s) + 1, i.e. floor((H + 2p - k) / s) + 1
    for d = 1. Below 1 the kernel no longer fits the (padded) input."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def _windows(x: np.ndarray, kernel: int, stride: int) -> np.ndarray:
    """All kernel x kernel windows of x (N, C, H, W), taken every `stride` pixels: (N, C, Ho, Wo, k, k), a view."""
    return sliding_window_view(x, (kernel, kernel), axis=(2, 3))[:, :, ::stride, ::stride]


# ---------------------------------------------------------------------------------------------------- conv and pooling


def conv2d(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None, stride: int = 1, padding: int = 0) -> np.ndarray:
    """2-D cross-correlation as nn.Conv2d computes it: (N, C, H, W) * (O, C, k, k) + b -> (N, O, Ho, Wo)."""
    kernel = w.shape[-1]
    x = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))  # zero padding, like torch
    patches = _windows(x, kernel, stride)  # [N, C, Ho, Wo, k, k]
    out = np.einsum("nchwij,ocij->nohw", patches, w)  # every output pixel: a dot product over C x k x k
    return out if b is None else out + b.reshape(1, -1, 1, 1)


def max_pool2d(x: np.ndarray, k: int, s: int | None = None) -> np.ndarray:
    """Max over each k x k window, stride s (default k), no padding: (N, C, H, W) -> (N, C, Ho, Wo)."""
    return _windows(x, k, s or k).max(axis=(-2, -1))


def avg_pool2d(x: np.ndarray, k: int, s: int | None = None) -> np.ndarray:
    """Mean over each k x k window, stride s (default k), no padding: (N, C, H, W) -> (N, C, Ho, Wo)."""
    return _windows(x, k, s or k).mean(axis=(-2, -1))


# ---------------------------------------------------------------------------------------------------- normalisation


def batch_norm_2d(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    """Training-mode BatchNorm of (N, C, H, W): per channel, statistics over N, H and W with the biased variance
    (divide by N*H*W, as nn.BatchNorm2d normalises). gamma and beta: one value per channel, (C,) or (1, C, 1, 1)."""
    mean = x.mean(axis=(0, 2, 3), keepdims=True)  # [1, C, 1, 1]
    var = x.var(axis=(0, 2, 3), keepdims=True)  # [1, C, 1, 1], numpy's default ddof=0 is the biased estimate
    x_hat = (x - mean) / np.sqrt(var + eps)
    return np.reshape(gamma, (1, -1, 1, 1)) * x_hat + np.reshape(beta, (1, -1, 1, 1))


class BatchNorm2dScratch(nn.Module):
    """nn.BatchNorm2d in plain tensor arithmetic, with the same parameters, buffers and train/eval behaviour.

    Training: normalise with the batch's biased variance, and move the running statistics towards the batch's,
        running = (1 - momentum) * running + momentum * batch
    (PyTorch's convention; Keras's `momentum` is our 1 - momentum), where running_var tracks the UNBIASED batch
    variance (divide by N*H*W - 1). momentum=None makes it a cumulative average, 1 / num_batches_tracked.
    Eval: normalise with the running statistics, a fixed affine map.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1) -> None:
        super().__init__()
        self.eps, self.momentum = eps, momentum
        self.weight = nn.Parameter(torch.ones(num_features))  # gamma
        self.bias = nn.Parameter(torch.zeros(num_features))  # beta
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [N, C, H, W]
        if self.training:
            mean = x.mean(dim=(0, 2, 3))  # [C]
            var = x.var(dim=(0, 2, 3), correction=0)  # [C], biased: what the batch is normalised with
            count = x.numel() // x.shape[1]  # N*H*W values per channel
            if count < 2:
                raise ValueError(
                    f"expected more than 1 value per channel when training, got input of shape {list(x.shape)}"
                )
            with torch.no_grad():
                self.num_batches_tracked += 1
                factor = 1.0 / self.num_batches_tracked.item() if self.momentum is None else self.momentum
                self.running_mean.mul_(1 - factor).add_(factor * mean)
                self.running_var.mul_(1 - factor).add_(factor * var * count / (count - 1))  # unbiased
        else:
            mean, var = self.running_mean, self.running_var
        x_hat = (x - mean[None, :, None, None]) / torch.sqrt(var[None, :, None, None] + self.eps)
        return self.weight[None, :, None, None] * x_hat + self.bias[None, :, None, None]  # [N, C, H, W]


def layer_norm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    """LayerNorm: normalise each sample over its last gamma.ndim axes (biased variance), then scale and shift.
    No batch statistics, so training and inference behave the same."""
    axes = tuple(range(x.ndim - gamma.ndim, x.ndim))
    mean = x.mean(axis=axes, keepdims=True)
    var = x.var(axis=axes, keepdims=True)
    return gamma * (x - mean) / np.sqrt(var + eps) + beta


class LayerNormScratch(nn.Module):
    """nn.LayerNorm(normalized_shape) in plain tensor arithmetic, with the same `weight` and `bias`."""

    def __init__(self, normalized_shape: int | tuple[int, ...], eps: float = 1e-5) -> None:
        super().__init__()
        shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(shape))
        self.bias = nn.Parameter(torch.zeros(shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dims = tuple(range(-self.weight.dim(), 0))  # the trailing normalized_shape axes
        mean = x.mean(dim=dims, keepdim=True)
        var = x.var(dim=dims, keepdim=True, correction=0)
        return self.weight * (x - mean) / torch.sqrt(var + self.eps) + self.bias


# ---------------------------------------------------------------------------------------------------- residual


def relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0)


def channel_mix(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """A 1x1 convolution without bias: each pixel's channel vector times w. (C, H, W) x (O, C) -> (O, H, W)."""
    return np.einsum("oc,chw->ohw", w, x)


def residual_block_numpy(x: np.ndarray, w1: np.ndarray, w2: np.ndarray, preact: bool = False) -> np.ndarray:
    """A residual block on one (C, H, W) map with 1x1 channel mixes w1, w2 of shape (C, C).

    preact=False, the original design (He et al. 2015): y = relu(x + w2 relu(w1 x)), ReLU after the add. With
    zero weights the residual branch is 0 and y = relu(x): the identity on the non-negative maps a previous ReLU
    produces, but negative entries are clipped.
    preact=True, the pre-activation design (He et al. 2016): y = x + w2 relu(w1 relu(x)), nothing after the add.
    With zero weights y = x exactly, which is why pre-activation stacks pass signals through unchanged.
    """
    if preact:
        return x + channel_mix(relu(channel_mix(relu(x), w1)), w2)
    return relu(x + channel_mix(relu(channel_mix(x, w1)), w2))
