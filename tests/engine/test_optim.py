"""The optimizer and scheduler factories on their own, without the trainer or a TrainConfig."""

import pytest
import torch
from torch import nn

from cnnlab.engine.optim import ProgressSchedule, create_optimizer, create_scheduler
from cnnlab.errors import CnnlabError


def model() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.LazyLinear(2))


def test_weight_decay_falls_on_weights_only_and_sgd_is_nesterov():
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4))
    optimizer = create_optimizer(net, "sgd", lr=0.1, weight_decay=5e-4, momentum=0.9)
    decayed, plain = optimizer.param_groups
    assert [p.ndim for p in decayed["params"]] == [4] and decayed["weight_decay"] == 5e-4
    assert all(p.ndim == 1 for p in plain["params"]) and plain["weight_decay"] == 0.0
    assert isinstance(optimizer, torch.optim.SGD) and optimizer.defaults["nesterov"]


def test_adamw_and_param_groups_with_their_own_lr_and_frozen_parameters_left_out():
    net = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 2))
    net[0].bias.requires_grad = False
    groups = lambda m: [{"params": m[0].parameters(), "lr": 0.01}, {"params": m[1].parameters()}]  # noqa: E731
    optimizer = create_optimizer(net, "adamw", lr=0.1, param_groups=groups)
    assert isinstance(optimizer, torch.optim.AdamW)
    assert [g["lr"] for g in optimizer.param_groups] == [0.01, 0.01, 0.1, 0.1]
    assert sum(len(g["params"]) for g in optimizer.param_groups) == 3  # the frozen bias is not there


def test_unknown_names_and_nothing_to_train_are_cnnlab_errors():
    net = nn.Linear(2, 2)
    with pytest.raises(CnnlabError, match="unknown optimizer"):
        create_optimizer(net, "lamb", lr=0.1)
    for p in net.parameters():
        p.requires_grad = False
    with pytest.raises(CnnlabError, match="nothing to train"):
        create_optimizer(net, "sgd", lr=0.1)
    with pytest.raises(CnnlabError, match="unknown schedule"):
        create_scheduler(torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1), "linear", 10)


@pytest.mark.parametrize("name", ["onecycle", "cosine", "step", "constant"])
def test_each_schedule_steps_per_optimizer_step(name):
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    scheduler = create_scheduler(optimizer, name, total_steps=20)
    lrs = []
    for _ in range(20):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert max(lrs) <= 0.1 + 1e-12
    assert (lrs[-1] < 0.1) == (name != "constant")


def test_a_replannable_schedule_remaps_its_rest_and_sets_the_next_lr():
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    scheduler = create_scheduler(optimizer, "cosine", total_steps=100, replannable=True)
    assert isinstance(scheduler, ProgressSchedule) and scheduler.end_step == 99
    for _ in range(10):
        optimizer.step()
        scheduler.step()
    scheduler.remap(10, 19)  # the rest of the cosine in 10 steps
    assert scheduler.end_step == 19 and optimizer.param_groups[0]["lr"] == pytest.approx(scheduler.lr_at(10))
    assert scheduler.get_last_lr() == [optimizer.param_groups[0]["lr"]]
    assert scheduler.lr_at(19) == pytest.approx(0.0, abs=1e-12)
