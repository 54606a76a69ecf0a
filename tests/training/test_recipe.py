"""The training recipe's pieces against their formulas: the learning-rate schedules, weight decay only on conv and
linear weights, label smoothing, the fp16 loss scaler's skipped step, and the stop on a non-finite loss."""

from __future__ import annotations

import csv
import json
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import cnnlab
from cnnlab import checkpoint, create_model
from cnnlab.engine.config import TrainConfig, resolve
from cnnlab.engine.trainer import build_optimizer, build_scheduler, classification_loss, run
from cnnlab.errors import CnnlabError, NonFiniteLoss

LR = 0.1
STEPS = 20


def small_net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))


def recipe(**overrides) -> TrainConfig:
    return resolve(TrainConfig(model="lenet5", dataset="digits", **{"lr": LR, "optimizer": "sgd", **overrides}))


def learning_rates(schedule: str, total_steps: int = STEPS) -> list[list[float]]:
    """The lr of every param group before each step, and after the last: total_steps + 1 rows."""
    optimizer = build_optimizer(small_net(), recipe(schedule=schedule))
    scheduler = build_scheduler(optimizer, recipe(schedule=schedule), total_steps)
    rates = []
    for _ in range(total_steps):
        rates.append([group["lr"] for group in optimizer.param_groups])
        optimizer.step()  # no gradients: the weights stay, only the schedule advances
        scheduler.step()
    return rates + [[group["lr"] for group in optimizer.param_groups]]


def test_cosine_schedule_follows_half_a_cosine_to_zero():
    rates = learning_rates("cosine")
    for t, groups in enumerate(rates):
        expected = LR * (1 + math.cos(math.pi * t / STEPS)) / 2
        assert groups == pytest.approx([expected, expected], abs=1e-12), t
    assert rates[STEPS // 2][0] == pytest.approx(LR / 2) and rates[STEPS][0] == pytest.approx(0.0, abs=1e-12)


def test_step_schedule_divides_by_ten_at_half_and_three_quarters():
    rates = [groups[0] for groups in learning_rates("step")]
    expected = [LR] * 10 + [LR / 10] * 5 + [LR / 100] * 6  # milestones at steps 10 and 15 of 20
    assert rates == pytest.approx(expected, rel=1e-12)


def test_constant_schedule_keeps_the_peak():
    assert {lr for groups in learning_rates("constant") for lr in groups} == {LR}


def test_onecycle_warms_up_to_the_peak_then_anneals():
    rates = [groups[0] for groups in learning_rates("onecycle")][:STEPS]  # OneCycleLR defines steps 0..T-1
    peak = STEPS // 4 - 1  # warm-up over 25% of the steps
    assert rates[0] == pytest.approx(LR / 25)  # OneCycleLR's div_factor
    assert rates.index(max(rates)) == peak and rates[peak] == pytest.approx(LR)
    assert rates[-1] == pytest.approx(LR / 25 / 1e4)  # its final_div_factor
    assert all(a >= b for a, b in zip(rates[peak:], rates[peak + 1 :]))  # never rises after the peak


def test_a_run_s_epoch_end_lr_is_the_cosine_formula(tmp_path, digits):
    # 540 training images (600 minus the 10% validation split) in batches of 64: 8 steps per epoch.
    results = cnnlab.train(
        "lenet5",
        dataset="digits",
        out=str(tmp_path / "run"),
        epochs=3,
        train_subset=600,
        schedule="cosine",
        optimizer="sgd",
        lr=LR,
        threads=1,
        quiet=True,
    )
    with open(tmp_path / "run" / "metrics.csv", newline="") as handle:
        logged = [float(row["lr"]) for row in csv.DictReader(handle)]
    total = 3 * 8
    assert results["status"] == "completed"
    assert logged == pytest.approx([LR * (1 + math.cos(math.pi * 8 * e / total)) / 2 for e in (1, 2, 3)], abs=1e-12)


def test_weight_decay_groups_hold_conv_and_linear_weights_only():
    net = small_net()
    optimizer = build_optimizer(net, recipe(weight_decay=5e-4))
    by_decay = {group["weight_decay"]: {id(p) for p in group["params"]} for group in optimizer.param_groups}
    conv, bn, linear = net[0], net[1], net[4]
    assert by_decay == {
        5e-4: {id(conv.weight), id(linear.weight)},
        0.0: {id(conv.bias), id(bn.weight), id(bn.bias), id(linear.bias)},
    }


@pytest.mark.parametrize("optimizer", ["sgd", "adamw", "muon"])
def test_a_step_on_zero_gradients_decays_weights_but_not_bn_or_biases(optimizer):
    net = small_net()
    decay, momentum = 0.5, 0.9
    torch_optimizer = build_optimizer(net, recipe(optimizer=optimizer, weight_decay=decay, momentum=momentum))
    before = {name: p.detach().clone() for name, p in net.named_parameters()}
    for p in net.parameters():
        p.grad = torch.zeros_like(p)
    torch_optimizer.step()
    # SGD (Nesterov) adds decay * w to the gradient, and momentum once more on the first step; AdamW decays the
    # weight itself by lr * decay, and its update of a zero gradient is zero.
    # Muon: the conv filters decay like AdamW's weights, at --muon-lr; the linear weight steps by Nesterov SGD.
    shrink = 1 - LR * decay * (1 + momentum) if optimizer in ("sgd", "muon") else 1 - LR * decay
    for name, p in net.named_parameters():
        if optimizer == "muon" and p.ndim == 4:
            muon_lr = torch_optimizer.param_groups[1]["lr"]
            assert muon_lr == 0.02  # the default --muon-lr
            torch.testing.assert_close(p.detach(), before[name] * (1 - muon_lr * decay), rtol=1e-6, atol=0)
        elif p.ndim > 1:
            torch.testing.assert_close(p.detach(), before[name] * shrink, rtol=1e-6, atol=0)
        else:
            assert torch.equal(p.detach(), before[name]), name  # BN scale and shift, biases: untouched


def test_label_smoothing_equals_its_formula():
    torch.manual_seed(0)
    logits, targets, eps = torch.randn(6, 5), torch.tensor([0, 1, 2, 3, 4, 0]), 0.2
    loss, returned = classification_loss(logits, targets, label_smoothing=eps, aux_weight=0.3)
    log_p = logits.log_softmax(dim=1)
    # the target: 1 - eps on the true class plus eps spread evenly over all 5 classes
    expected = (-(1 - eps) * log_p[torch.arange(6), targets] - eps / 5 * log_p.sum(dim=1)).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6) and returned is logits
    # GoogLeNet's auxiliary heads: each adds aux_weight x its own smoothed loss
    aux = torch.randn(6, 5)
    total, _ = classification_loss((logits, aux), targets, label_smoothing=eps, aux_weight=0.3)
    expected_aux = F.cross_entropy(aux, targets, label_smoothing=eps)
    assert total.item() == pytest.approx(expected.item() + 0.3 * expected_aux.item(), rel=1e-6)


@pytest.mark.slow  # fp16 on a CPU computes slowly
@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)` before `optimizer.step\\(\\)`")
def test_the_fp16_path_skips_each_overflowed_step_and_halves_the_scale(tmp_path, digits, monkeypatch):
    """The trainer's fp16 branch (CUDA only: refused on a CPU) run on the CPU, whose autocast computes fp16 too.
    A loss scale of 2^24 overflows fp16 gradients: each such step is skipped (the optimizer does not count it)
    and halves the scale; the others train."""
    from cnnlab.engine import trainer

    cpu_scaler = torch.amp.GradScaler
    monkeypatch.setattr(trainer, "check_precision", lambda precision, device: None)
    monkeypatch.setattr(trainer, "autocast_dtype", lambda precision, device_type="cpu": torch.float16)
    monkeypatch.setattr(torch.amp, "GradScaler", lambda device: cpu_scaler("cpu", init_scale=2.0**24))
    results = cnnlab.train(
        "simple_cnn",
        dataset="digits",
        out=str(tmp_path / "run"),
        epochs=2,
        train_subset=600,
        precision="fp16",
        threads=1,
        quiet=True,
    )
    assert results["status"] == "completed" and results["precision"] == "fp16"
    state = checkpoint.read_state(tmp_path / "run" / "checkpoints" / "step-00000016.state.pt")  # 2 x 8 steps
    skipped = math.log2(2.0**24 / state["scaler"]["scale"])
    taken = int(state["optimizer"]["state"][0]["step"])
    assert skipped == int(skipped) and skipped >= 1 and taken >= 1 and taken + skipped == 16
    assert results["test_accuracy"] > 0.4  # the steps taken learned (10 classes: chance is 0.1)


class NaNAfter(nn.Module):
    """A model whose output turns NaN from its `bad_call`-th training forward on."""

    def __init__(self, model: nn.Module, bad_call: int) -> None:
        super().__init__()
        self.model, self.bad_call, self.calls = model, bad_call, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(x)
        if self.training:
            self.calls += 1
            if self.calls >= self.bad_call:
                return out * float("nan")
        return out


def test_a_nan_output_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path, digits):
    torch.manual_seed(0)
    model = NaNAfter(create_model("simple_cnn", num_classes=10, in_chans=1), bad_call=3)
    config = TrainConfig(
        model="simple_cnn",
        dataset="digits",
        epochs=1,
        train_subset=600,
        checkpoint_every=2,
        precision="fp32",
        threads=1,
        out=str(tmp_path / "run"),
    )
    folder = tmp_path / "run" / "checkpoints"
    with pytest.raises(
        CnnlabError,
        match=rf"^the loss became nan at epoch 1, step 3; the last good checkpoint is "
        rf"kept in {folder}; try a lower --lr",
    ):
        run(config, quiet=True, data=digits, model=model)
    assert (folder / "latest").read_text() == "step-00000002"
    weights = checkpoint.read_weights(folder / "step-00000002.safetensors")
    assert all(torch.isfinite(tensor).all() for tensor in weights.values())
    assert json.loads((tmp_path / "run" / "results.json").read_text())["status"] == "failed"


def test_a_huge_learning_rate_raises_non_finite_loss_with_where_and_what(tmp_path, digits):
    """lr 1e12 on plain SGD: the loss overflows within the first epoch. The error is its own type (experiments
    catch exactly it), with the place, the loss value and the lr as attributes, and its message as before."""
    config = TrainConfig(
        model="simple_cnn",
        dataset="digits",
        epochs=2,
        train_subset=600,
        optimizer="sgd",
        lr=1e12,
        precision="fp32",
        threads=1,
        out=str(tmp_path / "run"),
    )
    with pytest.raises(NonFiniteLoss) as caught:
        run(config, quiet=True, data=digits)
    error = caught.value
    assert isinstance(error, CnnlabError) and error.quantity == "loss" and math.isnan(error.loss)
    assert (error.epoch, error.step, error.lr, error.metrics) == (1, 2, 1e12, [])
    assert str(error) == (
        f"the loss became {error.loss} at epoch 1, step {error.step}; no checkpoint had been written yet; "
        "try a lower --lr (now 1e+12)"
    )
    assert json.loads((tmp_path / "run" / "results.json").read_text())["error"] == str(error)
