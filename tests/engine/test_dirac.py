"""--dirac: a conv that keeps its channels starts as the identity, one that widens passes its input through beside
its random filters; depthwise and even-kernel convs are left alone; a run with it trains."""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.engine.dirac import dirac_init


def test_keeping_widening_and_other_convs():
    torch.manual_seed(0)
    keep = nn.Conv2d(16, 16, 3, padding=1, bias=False)
    widen = nn.Conv2d(16, 32, 3, stride=2, padding=1, bias=False)
    depthwise = nn.Conv2d(16, 16, 3, padding=1, groups=16, bias=False)
    narrow, even = nn.Conv2d(16, 8, 3, padding=1), nn.Conv2d(16, 16, 2)
    untouched = [m.weight.clone() for m in (depthwise, narrow, even)]
    random_half = widen.weight[16:].clone()
    assert dirac_init(nn.Sequential(keep, widen, depthwise, narrow, even)) == 2
    x = torch.randn(2, 16, 8, 8)
    with torch.no_grad():
        assert torch.equal(keep(x), x)
        assert torch.equal(widen(x)[:, :16], x[:, :, ::2, ::2])
    assert torch.equal(widen.weight[16:], random_half)
    assert all(torch.equal(m.weight, w) for m, w in zip((depthwise, narrow, even), untouched))


def test_a_plain_net_trains_with_dirac_filters(tmp_path):
    import cnnlab

    results = cnnlab.train(
        "plain20", dataset="digits", dirac=True, epochs=3, threads=1, quiet=True, out=str(tmp_path / "run")
    )
    assert results["test_accuracy"] >= 0.9
