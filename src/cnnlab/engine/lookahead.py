"""Lookahead (Zhang, Lucas, Hinton and Ba 2019, "Lookahead Optimizer: k steps forward, 1 step back",
arXiv:1907.08610) around any optimizer.

The optimizer's weights (the "fast" ones) take `k` ordinary steps; then a second copy (the "slow" weights) moves
`alpha` of the way toward them, and the fast weights start again from there. The slow weights average out the
fast ones' oscillation across a valley, which the paper finds makes SGD less sensitive to its learning rate.
The optimizer's own state (momentum) is kept across the reset, as in the paper's experiments.
"""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.engine.hooks import Hook, StepEvent

ALPHA = 0.5  # the slow weights' step toward the fast ones; the paper's default, robust across its tasks


class Lookahead:
    """Call `step()` after every optimizer step; every `k`-th call syncs the slow and fast weights."""

    def __init__(self, model: nn.Module, k: int, alpha: float = ALPHA) -> None:
        self.k, self.alpha = k, alpha
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.slow = [p.detach().clone() for p in self.params]
        self.steps = 0  # optimizer steps so far

    @torch.no_grad()
    def step(self) -> None:
        self.steps += 1
        if self.steps % self.k:
            return
        for slow, fast in zip(self.slow, self.params):
            slow.lerp_(fast.detach(), self.alpha)  # slow += alpha * (fast - slow)
            fast.copy_(slow)

    def state_dict(self) -> dict:
        return {"steps": self.steps, "slow": [s.cpu() for s in self.slow]}  # k and alpha come from the config

    def load_state_dict(self, state: dict) -> None:
        self.steps = state["steps"]
        for slow, saved in zip(self.slow, state["slow"]):
            slow.copy_(saved)


class LookaheadHook(Hook):
    """--lookahead as an engine hook: `Lookahead.step()` after every optimizer step; its slow weights are saved in
    each checkpoint."""

    key = "lookahead"

    def __init__(self, model: nn.Module, k: int) -> None:
        self.lookahead = Lookahead(model, k)

    def after_step(self, event: StepEvent) -> None:
        self.lookahead.step()

    def state_dict(self) -> dict:
        return self.lookahead.state_dict()

    def load_state_dict(self, saved: dict) -> None:
        self.lookahead.load_state_dict(saved)
