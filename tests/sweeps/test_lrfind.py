"""The lr range test: its schedule, its smoothing and stop, its rule, that it leaves the model as it found it, and
that its suggestion trains."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from cnnlab import lrfind


def test_schedule_is_exponential_from_start_to_end():
    start, end, n = 1e-7, 10.0, 100
    lrs = lrfind.schedule(start, end, n)
    assert len(lrs) == n
    for i, lr in enumerate(lrs):
        assert lr == pytest.approx(start * (end / start) ** (i / (n - 1)), rel=1e-12)
    assert lrs[0] == start and lrs[-1] == pytest.approx(end, rel=1e-12)
    ratios = {round(b / a, 9) for a, b in zip(lrs, lrs[1:])}
    assert len(ratios) == 1  # a constant factor per step: (1e8) ** (1/99)
    assert ratios.pop() == pytest.approx(1e8 ** (1 / 99), rel=1e-9)


def _model_and_optimizer():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x, y = torch.randn(8, 1, 8, 8), torch.randint(0, 3, (8,))
    nn.functional.cross_entropy(model(x), y).backward()
    optimizer.step()  # a state to restore: AdamW's moments and step count
    return model, optimizer


def _batches():
    generator = torch.Generator().manual_seed(1)
    while True:
        yield torch.randn(8, 1, 8, 8, generator=generator), torch.randint(0, 3, (8,), generator=generator)


def _loss(model, x, y):
    return nn.functional.cross_entropy(model(x), y)


def test_range_test_leaves_weights_optimizer_and_rng_bit_identical():
    model, optimizer = _model_and_optimizer()
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    moments = {k: {n: t.clone() for n, t in s.items()} for k, s in optimizer.state_dict()["state"].items()}
    groups = [dict(g) for g in optimizer.state_dict()["param_groups"]]
    rng = torch.get_rng_state()
    test = lrfind.range_test(model, optimizer, _batches(), _loss, lrfind.schedule(1e-5, 1.0, 30))
    assert len(test.lrs) >= 3 and test.losses[0] != test.losses[-1]  # it trained
    after = model.state_dict()
    assert all(torch.equal(weights[k], after[k]) for k in weights)  # BN's running stats included
    state = optimizer.state_dict()
    assert state["param_groups"] == groups  # the lr too
    for k, saved in moments.items():
        assert all(torch.equal(saved[n], state["state"][k][n]) for n in saved)
    assert torch.equal(torch.get_rng_state(), rng)


def test_smoothing_is_a_bias_corrected_ema_and_divergence_stops_the_test():
    model, optimizer = _model_and_optimizer()
    values = iter([1.0, 0.5, 0.25, 0.2, 10.0, 50.0, 100.0, 100.0])

    def loss(module, x, y):
        return module(x).sum() * 0 + next(values)  # a given loss, with a graph for backward

    test = lrfind.range_test(model, optimizer, _batches(), loss, lrfind.schedule(1e-4, 1.0, 8))
    average, expected = 0.0, []
    for i, v in enumerate(test.losses):
        average = 0.98 * average + 0.02 * v
        expected.append(average / (1 - 0.98 ** (i + 1)))
    assert test.smoothed == pytest.approx(expected)
    assert test.diverged and test.losses[:5] == pytest.approx([1.0, 0.5, 0.25, 0.2, 10.0])
    assert test.smoothed[-1] > 4 * min(test.smoothed[:-1])  # the step that crossed 4x the minimum ended it
    assert all(s <= 4 * min(test.smoothed[: i + 1]) for i, s in enumerate(test.smoothed[:-1]))


def test_suggestion_is_the_steepest_fall_before_the_minimum():
    lrs = lrfind.schedule(1e-6, 1.0, 121)
    # a loss falling fastest at lr 1e-3 (a tanh step in log10 lr), flat, then rising after 1e-1
    smoothed = [2 - math.tanh(2 * (math.log10(lr) + 3)) + max(0.0, math.log10(lr) + 1) ** 2 * 5 for lr in lrs]
    test = lrfind.RangeTest(lrs, smoothed, smoothed, diverged=False)
    chosen = lrfind.suggest(test)
    assert chosen.rule == "steepest"
    assert chosen.lr == pytest.approx(1e-3, rel=0.13)  # within one step of the grid (a factor 1.12)


@pytest.mark.slow
def test_lr_find_suggestion_trains_lenet5_on_digits_to_95_percent(tmp_path):
    import cnnlab
    from cnnlab.rundir import open_run

    results = cnnlab.train("lenet5", "digits", lr="find", seed=0, out=str(tmp_path / "run"), quiet=True)
    recipe = open_run(tmp_path / "run").read_config().recipe
    found = recipe["lr_find"]
    assert found["rule"] == "steepest" and found["start_lr"] == 1e-7 and found["end_lr"] == 10.0
    assert recipe["lr"] == found["suggestion"] == results["lr"]
    assert 1e-4 < found["suggestion"] < 1.0
    assert results["test_accuracy"] >= 0.95


@pytest.mark.slow
def test_lr_find_command_writes_its_files_and_restores_nothing_else(tmp_path, capsys):
    from cnnlab.cli import main
    from cnnlab.rundir import LrFindFolder

    out = tmp_path / "lrf"
    argv = ["lr-find", "lenet5", "--dataset", "digits", "--train-subset", "400", "--steps", "40", "--out", str(out)]
    assert main(argv) == 0
    record = LrFindFolder(out).read_record()
    assert record["steps"] == 40 and 3 <= record["steps_run"] <= 40 and len(record["lrs"]) == record["steps_run"]
    assert record["lrs"][:3] == pytest.approx(lrfind.schedule(1e-7, 10.0, 40)[:3])
    assert (out / "lr-find.png").stat().st_size > 10_000
    assert f"suggested lr {record['suggestion']:.3g}" in capsys.readouterr().out
    assert main(argv) == 2  # the folder holds a test: --overwrite replaces it
