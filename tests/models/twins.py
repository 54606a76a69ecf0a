"""Helpers shared by the family tests: parameter counts, torchvision twins with randomised norms, logits
comparison, stage output shapes. Imported as `from twins import ...` (pytest puts tests/models/ on sys.path)."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torchvision
from torch import nn

from cnnlab import create_model

# A reference whose logits vary less than this is too flat for an atol-1e-4 comparison to mean anything.
MIN_LOGITS_STD = 0.05


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def images(side: int, batch: int = 2, chans: int = 3, seed: int = 1) -> torch.Tensor:
    """A seeded random batch [batch, chans, side, side], independent of the global RNG."""
    return torch.randn(batch, chans, side, side, generator=torch.Generator().manual_seed(seed))


def randomize_norms_(model: nn.Module, seed: int = 0, linear: bool = False, max_gain: float = 1.5) -> None:
    """Give every BatchNorm2d non-trivial statistics and affine terms (weights U(0.5, max_gain)); with `linear`,
    also give the linears unit-gain weights N(0, 1/in_features).

    At init a BN is the identity in eval mode, so a model that misplaced or dropped a norm would still match
    its twin's logits. Mobile nets also init their linears with std 0.01, which leaves logits of ~1e-9: any
    atol-1e-4 comparison would pass; after `linear=True` they are O(0.1). Deep residual stacks want
    max_gain < 1: at 1.5 resnet152's 50 blocks compound to logits of ~1e9, at 0.8 they stay below 10.
    """
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.weight.uniform_(0.5, max_gain, generator=generator)
                module.bias.normal_(0.0, 0.2, generator=generator)
                module.running_mean.normal_(0.0, 0.2, generator=generator)
                module.running_var.uniform_(0.5, 1.5, generator=generator)
            elif linear and isinstance(module, nn.Linear):
                module.weight.normal_(0.0, module.in_features**-0.5, generator=generator)


def torchvision_pair(name: str, linear: bool = False, max_gain: float = 1.5) -> tuple[nn.Module, nn.Module]:
    """(ours, torchvision's) `name`, both in eval mode: torchvision's with randomised norms (randomize_norms_)
    and loaded into ours through adapt_state_dict, strictly (every key must map)."""
    torch.manual_seed(0)
    ours = create_model(name).eval()
    theirs = getattr(torchvision.models, name)(weights=None).eval()
    randomize_norms_(theirs, linear=linear, max_gain=max_gain)
    ours.load_state_dict(ours.adapt_state_dict(theirs.state_dict()))
    return ours, theirs


def assert_logits_match(
    ours: nn.Module, theirs: nn.Module, x: torch.Tensor, atol: float = 1e-4, min_std: float = MIN_LOGITS_STD
) -> torch.Tensor:
    """Assert that `ours(x)` equals `theirs(x)` to `atol` (rtol 0) and that the reference logits are far from
    constant (std > min_std), so the comparison could fail; return the reference logits."""
    with torch.no_grad():
        expected = theirs(x)
        actual = ours(x)
    assert expected.std() > min_std  # the comparison below is meaningful
    torch.testing.assert_close(actual, expected, atol=atol, rtol=0)
    return expected


def stage_shapes(
    model: nn.Module, x: torch.Tensor, forward: Callable[[torch.Tensor], torch.Tensor] | None = None
) -> tuple[list[tuple[int, ...]], torch.Tensor]:
    """Run `forward(x)` (the model itself by default) without gradients, hooking `model.stages()`; return the
    shapes of the stages' outputs in call order and the forward's result."""
    shapes: list[tuple[int, ...]] = []
    hooks = [stage.register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape))) for stage in model.stages()]
    try:
        with torch.no_grad():
            out = (forward or model)(x)
    finally:
        for hook in hooks:
            hook.remove()
    return shapes, out
