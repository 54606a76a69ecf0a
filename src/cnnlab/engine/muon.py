"""Muon for conv filters, Nesterov SGD for the rest: `--optimizer muon`.

Muon (Jordan et al. 2024, "Muon: an optimizer for hidden layers in neural networks"; airbench's CIFAR-10 record
uses it for its conv filters) keeps SGD's Nesterov momentum but does not step along it. It views each filter bank
[out, in, kh, kw] as a matrix [out, in * kh * kw] and replaces the momentum by the nearest semi-orthogonal matrix,
U V^T of its SVD U S V^T: every direction the momentum points in moves by the same amount, so rare directions are
not drowned by the dominant one. Five Newton-Schulz iterations approximate U V^T without an SVD.

torch.optim.Muon takes 2-D parameters only, so this is written out here for 4-D filters; biases, batch-norm
parameters and the linear head step with Nesterov SGD (torch.optim.SGD's update, written out too), all in one
optimizer, so that schedules, checkpoints and Lookahead see a single one.
"""

from __future__ import annotations

import torch

# The quintic iteration's coefficients from Jordan's Muon: chosen to push every singular value into about
# [0.7, 1.2] in 5 steps (fast convergence from small values matters more than landing exactly on 1).
NEWTON_SCHULZ = (3.4445, -4.7750, 2.0315)
NEWTON_SCHULZ_STEPS = 5


def orthogonalize(matrix: torch.Tensor, steps: int = NEWTON_SCHULZ_STEPS) -> torch.Tensor:
    """About U V^T for matrix = U S V^T, by Newton-Schulz iterations on X / |X|_F (all singular values <= 1)."""
    a, b, c = NEWTON_SCHULZ
    x = matrix.float()
    wide = x.shape[0] <= x.shape[1]
    x = x if wide else x.T  # iterate on the smaller Gram matrix
    x = x / (x.norm() + 1e-7)
    for _ in range(steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return (x if wide else x.T).to(matrix.dtype)


class MuonSGD(torch.optim.Optimizer):
    """One optimizer: groups with "muon": True (conv filters) step by Muon at their lr, with decoupled weight decay
    (p -= lr * wd * p) and the update scaled by max(1, rows / cols) ** 0.5 as Jordan's; the other groups step by
    Nesterov SGD with L2 weight decay, exactly as torch.optim.SGD(nesterov=True)."""

    def __init__(self, groups: list[dict], lr: float, momentum: float) -> None:
        super().__init__(groups, {"lr": lr, "momentum": momentum, "weight_decay": 0.0, "muon": False})

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    (self._muon if group["muon"] else self._sgd)(p, group)
        return loss

    def _momentum(self, p: torch.Tensor, grad: torch.Tensor, momentum: float) -> torch.Tensor:
        """The Nesterov direction grad + momentum * buffer, after buffer = momentum * buffer + grad."""
        state = self.state[p]
        if "momentum_buffer" not in state:
            state["momentum_buffer"] = grad.clone()
        else:
            state["momentum_buffer"].mul_(momentum).add_(grad)
        return grad.add(state["momentum_buffer"], alpha=momentum)

    def _muon(self, p: torch.Tensor, group: dict) -> None:
        direction = self._momentum(p, p.grad, group["momentum"])
        update = orthogonalize(direction.reshape(len(p), -1))
        rows, cols = update.shape
        p.mul_(1 - group["lr"] * group["weight_decay"])
        p.add_(update.view_as(p), alpha=-group["lr"] * max(1.0, rows / cols) ** 0.5)

    def _sgd(self, p: torch.Tensor, group: dict) -> None:
        grad = p.grad.add(p, alpha=group["weight_decay"]) if group["weight_decay"] else p.grad
        p.add_(self._momentum(p, grad, group["momentum"]), alpha=-group["lr"])
