"""Receptive fields: the closed formula, and the per-layer values summarize reads off a forward pass."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from cnnlab import CnnlabError
from cnnlab.inspect import receptive_field, summarize
from cnnlab.scratch import conv_output_size


def test_stacked_3x3_convs_match_larger_kernels():
    assert receptive_field([(3, 1), (3, 1)]) == 5  # VGG's argument: two 3x3 see what one 5x5 sees
    assert receptive_field([(3, 1)] * 3) == 7
    assert receptive_field([(7, 2), (3, 2)]) == 11  # ResNet stem: 7 + (3 - 1) * 2
    assert receptive_field([]) == 1
    with pytest.raises(CnnlabError):
        receptive_field([(3, 0)])


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_summarize_agrees_with_the_formula(depth):
    summary = summarize("; ".join(["conv 4 k3 p1"] * depth), (1, 16, 16))
    assert [row.receptive_field for row in summary.rows] == [receptive_field([(3, 1)] * (i + 1)) for i in range(depth)]


class _FunctionalPool(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)
        self.conv2 = nn.Conv2d(2, 2, 3)

    def forward(self, x):
        return self.conv2(F.max_pool2d(self.conv(x), 2))  # a pool with no module of its own still widens the field


class _Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 3, padding=1)

    def forward(self, x):
        return x + self.conv(x)


def test_functional_ops_count_and_merging_paths_give_none():
    assert [row.receptive_field for row in summarize(_FunctionalPool(), (1, 16, 16)).rows] == [3, 3 + 1 + 2 * 2]
    assert [row.receptive_field for row in summarize(_Residual(), (2, 8, 8)).rows] == [None]


def test_adaptive_and_global_pools():
    # 8x8 input, 3x3 conv -> 6x6; a global pool then covers all of it: 3 + (6 - 1) = 8 = the whole image.
    chain = nn.Sequential(nn.Conv2d(1, 2, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2, 2))
    assert [row.receptive_field for row in summarize(chain, (1, 8, 8)).rows] == [3, 8, None, None]
    even = nn.Sequential(nn.Conv2d(1, 2, 3), nn.AdaptiveMaxPool2d(3))  # 6 -> 3: windows 2, stride 2
    assert [row.receptive_field for row in summarize(even, (1, 8, 8)).rows] == [3, 4]
    uneven = nn.Sequential(nn.Conv2d(1, 2, 3), nn.AdaptiveAvgPool2d(4))  # 6 -> 4: windows of 2 and 3
    assert [row.receptive_field for row in summarize(uneven, (1, 8, 8)).rows] == [3, None]


@settings(max_examples=50, deadline=None)
@given(
    size=st.integers(1, 40), kernel=st.integers(1, 7), stride=st.integers(1, 4),
    padding=st.integers(0, 3), dilation=st.integers(1, 3),
)
def test_output_size_formula_matches_torch_modules(size, kernel, stride, padding, dilation):
    # Valid ranges only: the dilated kernel must fit the padded input, and torch caps pool padding at half the kernel.
    expected = conv_output_size(size, kernel, stride, padding, dilation)
    if expected < 1:
        return
    x = torch.zeros(1, 1, size, size)
    conv = nn.Conv2d(1, 1, kernel, stride=stride, padding=padding, dilation=dilation)
    assert conv(x).shape[-2:] == (expected, expected)
    if 2 * padding <= kernel:
        pool = nn.MaxPool2d(kernel, stride=stride, padding=padding, dilation=dilation)
        assert pool(x).shape[-2:] == (expected, expected)
    if dilation == 1:  # the tutorials' formula floor((H + 2p - k) / s) + 1
        assert expected == (size + 2 * padding - kernel) // stride + 1
