"""`cnnlab trace residual`: the Chapter 14 skip-connection slider, on a scalar block.

The widget's block is Conv + BN + ReLU, then Conv + BN, on one number. For a scalar each conv + BN pair is an affine
map, so the block is F(x) = w2 * ReLU(w1 * x + b1) + b2, the residual block H(x) = ReLU(F(x) + x) and the plain
block (no skip) P(x) = ReLU(F(x)). The widget does not give its weights; the defaults w1 = 1, b1 = -0.5, w2 = 1,
b2 = -0.4 reproduce its one reading, F(2.0) = 1.10. Their b2 < 0 lets F go negative: with w2 >= 0 and b2 >= 0 (as in
0.5, 0.1, 1, 0, which also give 1.10) F(x) >= 0 everywhere, so P = ReLU(F) = F and the plain block shows nothing of its
own. Everything else is computed: by hand (NumPy, the derivative by the chain rule) and by torch (nn.Linear layers,
autograd).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from cnnlab.errors import OptionValueError
from cnnlab.scratch import relu
from cnnlab.traces.common import max_diff, result

MAX_DEPTH = 1000  # blocks in the stack the gradient flows back through
SWEEP = np.round(np.linspace(-3, 3, 61), 2)  # the slider's range, for plots (data["sweep"])


def parse_weights(text: str) -> tuple[float, float, float, float]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 4 or not all(np.isfinite(values)):
        raise OptionValueError(
            "weights",
            f"takes four numbers w1,b1,w2,b2 (F(x) = w2 * ReLU(w1 * x + b1) + b2), got '{text}'",
        )
    return values


def by_hand(x: float, w1: float, b1: float, w2: float, b2: float) -> dict[str, float]:
    """Forward values and derivatives of one block, in NumPy and the chain rule. ReLU'(0) = 0, as torch has it."""
    z = w1 * x + b1
    f = w2 * float(relu(np.float64(z))) + b2
    d_f = w2 * w1 * float(z > 0)
    return {
        "z": z,
        "a": float(relu(np.float64(z))),
        "f": f,
        "sum": f + x,
        "h": max(f + x, 0.0),
        "plain": max(f, 0.0),
        "dF": d_f,
        "dH": (d_f + 1) * float(f + x > 0),
        "dP": d_f * float(f > 0),
    }


class ScalarBlock(nn.Module):
    """The same block from torch.nn: two 1 -> 1 linear layers (a scalar conv + BN) and ReLUs."""

    def __init__(self, w1: float, b1: float, w2: float, b2: float, skip: bool) -> None:
        super().__init__()
        self.first, self.second, self.relu, self.skip = nn.Linear(1, 1), nn.Linear(1, 1), nn.ReLU(), skip
        with torch.no_grad():
            for layer, (w, b) in ((self.first, (w1, b1)), (self.second, (w2, b2))):
                layer.weight.fill_(w)
                layer.bias.fill_(b)

    def residual(self, x: torch.Tensor) -> torch.Tensor:  # F(x)
        return self.second(self.relu(self.first(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.residual(x) + x) if self.skip else self.relu(self.residual(x))


def _torch_values(x: float, weights: tuple, depth: int) -> dict[str, float]:
    res, plain = ScalarBlock(*weights, skip=True), ScalarBlock(*weights, skip=False)
    xt = torch.tensor([[x]], dtype=torch.float64, requires_grad=True)
    res, plain = res.double(), plain.double()
    z = res.first(xt)
    f = res.residual(xt)
    h, p = res(xt), plain(xt)
    grad = lambda out: torch.autograd.grad(out.sum(), xt, retain_graph=True)[0].item()  # noqa: E731
    values = {
        "z": z.item(),
        "a": res.relu(z).item(),
        "f": f.item(),
        "sum": (f + xt).item(),
        "h": h.item(),
        "plain": p.item(),
        "dF": grad(f),
        "dH": grad(h),
        "dP": grad(p),
    }
    deep_res, deep_plain = nn.Sequential(*[res] * depth), nn.Sequential(*[plain] * depth)
    values["deep_res"], values["deep_plain"] = grad(deep_res(xt)), grad(deep_plain(xt))
    return values


def _deep_by_hand(x: float, weights: tuple, depth: int, skip: bool) -> float:
    """d(block^depth)/dx by the chain rule: the product of each block's derivative at its own input."""
    gradient = 1.0
    for _ in range(depth):
        step = by_hand(x, *weights)
        gradient *= step["dH"] if skip else step["dP"]
        x = step["h"] if skip else step["plain"]
    return gradient


DEFAULT_WEIGHTS = "1,-0.5,1,-0.4"  # w1,b1,w2,b2: F(2.0) = 1.10 as in the tutorial, and F < 0 for x < 0.9


def _plus(b: float) -> str:
    """A bias as the formula reads it: "+ 0.1", "- 0.4" rather than "+ -0.4"."""
    return f"- {-b:g}" if b < 0 else f"+ {b:g}"


def residual_trace(x: float = 2.0, weights: str = DEFAULT_WEIGHTS, depth: int = 10) -> dict:
    w = parse_weights(weights)
    if not np.isfinite(x):
        raise OptionValueError("x", f"must be a finite number, got {x}")
    if not 1 <= depth <= MAX_DEPTH:
        raise OptionValueError("depth", f"must be 1 to {MAX_DEPTH}, got {depth}")
    hand, auto = by_hand(x, *w), _torch_values(x, w, depth)
    w1, b1, w2, b2 = w
    steps = [
        ("input x", x, x),
        (f"first layer z = {w1:g} * x {_plus(b1)}", hand["z"], auto["z"]),
        ("ReLU(z)", hand["a"], auto["a"]),
        (f"F(x) = {w2:g} * ReLU(z) {_plus(b2)}", hand["f"], auto["f"]),
        ("identity path: x", x, x),
        ("F(x) + x", hand["sum"], auto["sum"]),
        ("residual block H(x) = ReLU(F(x) + x)", hand["h"], auto["h"]),
        ("plain block P(x) = ReLU(F(x)), no skip", hand["plain"], auto["plain"]),
        ("dF/dx (the conv path alone)", hand["dF"], auto["dF"]),
        ("dH/dx = (dF/dx + 1) * ReLU'(F(x) + x)", hand["dH"], auto["dH"]),
        ("dP/dx = dF/dx * ReLU'(F(x)), plain block", hand["dP"], auto["dP"]),
        (f"d/dx through {depth} residual blocks", _deep_by_hand(x, w, depth, True), auto["deep_res"]),
        (f"d/dx through {depth} plain blocks", _deep_by_hand(x, w, depth, False), auto["deep_plain"]),
    ]
    rows = [[i, name, a, b, max_diff(a, b)] for i, (name, a, b) in enumerate(steps, start=1)]
    sweep = [by_hand(float(v), *w) for v in SWEEP]
    data = {"x": SWEEP, **{key: [s[key] for s in sweep] for key in ("f", "h", "plain", "dF", "dH", "dP")}}
    notes = [
        "by hand: NumPy and the chain rule; torch: nn.Linear(1, 1) layers (a scalar conv + BN is affine) and autograd.",
        "The skip adds exactly 1 to the block's derivative before the final ReLU: where the conv path's dF/dx is "
        "near 0, the residual block still passes the gradient, the plain block does not.",
        "The slider's weights are not in the tutorial; the defaults reproduce its reading F(2.0) = 1.10, "
        "1.10 + 2.0 = 3.10, ReLU -> 3.10, with b2 < 0 so that F(x) < 0 somewhere and P = ReLU(F) differs from F "
        "there. data holds F, H, P and their derivatives for x from -3 to 3.",
    ]
    title = f"Residual block at x = {x:g}: F(x) = {w2:g} * ReLU({w1:g} * x {_plus(b1)}) {_plus(b2)}"
    return result("residual", title, ["step", "quantity", "by hand", "torch", "max |diff|"], rows, notes, data)
