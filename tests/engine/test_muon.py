"""--optimizer muon: Newton-Schulz orthogonalization, Muon's step on conv filters, torch's Nesterov SGD on the rest,
and a run that trains, checkpoints and resumes with it."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlab.engine.muon import MuonSGD, orthogonalize
from cnnlab.engine.optim import create_optimizer


@pytest.mark.parametrize("shape", [(16, 144), (144, 16), (64, 64)])
def test_newton_schulz_gives_about_u_v_transposed(shape):
    matrix = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
    u, _, vh = torch.linalg.svd(matrix, full_matrices=False)
    result = orthogonalize(matrix)
    singular = torch.linalg.svdvals(result)
    # every direction moves by about the same amount: Jordan's coefficients trade exactness for speed, and the
    # few smallest singular values of a square random matrix are still on their way up after 5 steps
    assert singular.max() < 1.25 and ((singular > 0.6).float().mean() > 0.9)
    cosine = (result * (u @ vh)).sum() / (result.norm() * (u @ vh).norm())
    assert cosine > 0.95


def small_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 4 * 4, 5))


def step_twice(model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
    x, y = torch.randn(4, 3, 6, 6, generator=torch.Generator().manual_seed(1)), torch.tensor([0, 1, 2, 3])
    for _ in range(2):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()


def test_everything_but_the_filters_steps_exactly_as_torch_nesterov_sgd():
    ours, theirs = small_net(), small_net()
    theirs[0].weight.requires_grad_(False)  # as the filters at muon_lr 0: the rest must then step alike
    step_twice(ours, create_optimizer(ours, "muon", lr=0.1, weight_decay=5e-4, momentum=0.9, muon_lr=0.0))
    step_twice(theirs, create_optimizer(theirs, "sgd", lr=0.1, weight_decay=5e-4, momentum=0.9))
    for (name, a), b in zip(ours.named_parameters(), theirs.parameters()):
        if a.ndim == 4:
            assert torch.equal(a, small_net().get_parameter(name))  # muon_lr 0: the filters stay put
        else:
            torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


def test_a_filter_moves_by_its_orthogonalized_momentum_at_muon_lr():
    model = small_net()
    before = model[0].weight.detach().clone()
    optimizer = create_optimizer(model, "muon", lr=0.1, weight_decay=0.0, momentum=0.9, muon_lr=0.02)
    assert isinstance(optimizer, MuonSGD)
    x, y = torch.randn(4, 3, 6, 6, generator=torch.Generator().manual_seed(1)), torch.tensor([0, 1, 2, 3])
    nn.functional.cross_entropy(model(x), y).backward()
    grad = model[0].weight.grad.clone()
    optimizer.step()
    step = (model[0].weight.detach() - before).reshape(8, -1)
    expected = -0.02 * orthogonalize(grad.reshape(8, -1) * 1.9)  # first Nesterov step: grad + 0.9 * grad
    torch.testing.assert_close(step, expected, rtol=1e-4, atol=1e-6)
    assert torch.linalg.svdvals(step / 0.02).max() < 1.25  # 8 x 27: wide, so the scale factor is 1


def test_lenet5_learns_digits_with_muon_and_resumes_exactly(tmp_path):
    import cnnlab
    from cnnlab.checkpoint import read_weights

    recipe = dict(dataset="digits", optimizer="muon", lr=0.05, epochs=5, threads=1, quiet=True, seed=1)
    whole = cnnlab.train("lenet5", out=str(tmp_path / "whole"), **recipe)
    assert whole["test_accuracy"] >= 0.9
    cut = cnnlab.train("lenet5", out=str(tmp_path / "cut"), checkpoint_every=25, keep_checkpoints=100, **recipe)
    run = tmp_path / "cut"
    (run / "model.safetensors").unlink()
    (run / "checkpoints" / "latest").write_text("step-00000050")  # as if stopped there, mid-epoch 3
    resumed = cnnlab.train("lenet5", resume=str(run), quiet=True)
    assert resumed["test_accuracy"] == cut["test_accuracy"] == whole["test_accuracy"]
    a, b = read_weights(tmp_path / "whole" / "model.safetensors"), read_weights(run / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
