"""--time-budget: the duration flag, the progress schedule and its re-mapping, and budget runs on digits that end
inside their budget with the schedule finished, also when the machine slows down mid-run or the run is resumed."""

import csv
import json
import math
import time
from dataclasses import replace

import pytest
import torch

import cnnlab
from cnnlab.checkpoint import read_state
from cnnlab.cli import main
from cnnlab.engine import budget, trainer  # imported up front: the budget's clock starts inside train()
from cnnlab.engine.config import TrainConfig, option_named, parse_duration, resume_config
from cnnlab.errors import CnnlabError, ResumeConflictError

DIGITS_LR = 3e-3  # digits' default peak lr (adamw)


def slack(seconds: float) -> float:
    """The margin the issue allows over a budget: generous, for a CPU shared with other jobs."""
    return seconds + max(3.0, 0.3 * seconds)


# ------------------------------------------------------------------------------------------------ the flag
@pytest.mark.parametrize("text, seconds", [("90s", 90), ("10m", 600), ("1.5h", 5400), ("45", 45), (" 2M ", 120)])
def test_durations_parse_to_seconds(text, seconds):
    assert parse_duration(text) == seconds
    assert option_named("time_budget").parse(text) == seconds


@pytest.mark.parametrize("text", ["abc", "-5m", "0s", "m", "", "10 minutes", "nanm"])
def test_bad_durations_are_one_line_errors(text):
    with pytest.raises(CnnlabError, match="expected a positive duration"):
        parse_duration(text)


def test_every_training_command_has_the_flag_and_a_bad_value_is_exit_2(capsys):
    declared = option_named("time_budget")
    assert set(declared.commands) == {"train", "compare", "finetune", "sweep"} and not declared.resumable
    assert main(["train", "lenet5", "--time-budget", "10x"]) == 2
    error = capsys.readouterr().err.strip()
    assert "--time-budget" in error and "10x" in error and len(error.splitlines()) == 1


def test_a_budget_cannot_change_on_resume():
    saved = trainer.resolve(TrainConfig(model="lenet5", time_budget=10.0))
    with pytest.raises(ResumeConflictError, match="planned for its own budget"):
        resume_config(saved, "lenet5", "digits", {"time_budget": 20.0})
    with pytest.raises(ResumeConflictError):  # nor be added to a run trained without one
        resume_config(replace(saved, time_budget=None), "lenet5", "digits", {"time_budget": 10.0})
    assert resume_config(saved, "lenet5", "digits", {"time_budget": 10.0}).time_budget == 10.0  # the same: fine
    constant = replace(saved, schedule="constant", epochs=4)  # the budget planned 4: more cannot be asked for
    with pytest.raises(ResumeConflictError, match="its budget planned them"):
        resume_config(constant, "lenet5", "digits", {"epochs": 8})


def test_without_epochs_the_budget_plans_them_and_epochs_cap_the_plan():
    assert trainer.resolve(TrainConfig(model="lenet5", time_budget=10.0)).epochs == 1000  # the cap, not a plan
    assert trainer.resolve(TrainConfig(model="lenet5", time_budget=10.0, epochs=3)).epochs == 3


# ------------------------------------------------------------------------------------------------ the schedule
def test_onecycle_over_progress_starts_peaks_and_ends_where_torch_onecycle_does():
    factors = [budget.lr_factor("onecycle", p / 100) for p in range(101)]
    assert factors[0] == pytest.approx(1 / 25) and factors[25] == pytest.approx(1.0)
    assert factors[100] == pytest.approx(1 / 25 / 1e4)
    assert all(a < b for a, b in zip(factors[:25], factors[1:26]))  # warm-up rises
    assert all(a > b for a, b in zip(factors[25:], factors[26:]))  # then decays all the way
    # torch's OneCycleLR with the trainer's settings ends at the same final value
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    onecycle = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=0.1, total_steps=100, pct_start=0.25, cycle_momentum=False
    )
    for _ in range(99):
        optimizer.step()
        onecycle.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.1 * factors[100])


@pytest.mark.parametrize("kind, final", [("onecycle", 4e-6), ("cosine", 0.0), ("step", 0.01), ("constant", 1.0)])
def test_every_schedule_reaches_its_final_value_at_the_last_planned_step(kind, final):
    shape = budget.ProgressShape(kind, end_step=99)
    assert shape(99) == pytest.approx(final, abs=1e-12) and shape(150) == shape(99)


def test_compressing_maps_the_rest_of_the_schedule_onto_fewer_steps_continuously():
    shape = budget.ProgressShape("onecycle", end_step=99)
    shape.remap(40, 59)  # 60 steps left -> 20
    after = [shape.progress(step) for step in range(39, 60)]
    assert after[0] == pytest.approx(39 / 99) and after[-1] == 1.0  # from where step 39 was, to the end
    steps = [b - a for a, b in zip(after, after[1:])]
    assert all(d == pytest.approx(steps[0]) for d in steps)  # evenly spread over the 20 steps
    assert steps[0] == pytest.approx((1 - 39 / 99) / 20)
    assert shape(59) == pytest.approx(4e-6)
    shape.remap(50, 80)  # and stretched again
    assert shape.progress(49) == pytest.approx(after[10]) and shape.progress(80) == 1.0


def test_the_schedule_state_round_trips_through_lambdalr():
    weights = torch.zeros(1, requires_grad=True)
    first = budget.build_schedule(torch.optim.SGD([weights], lr=0.1), "onecycle", 100)
    first.lr_lambdas[0].remap(30, 49)
    second = budget.build_schedule(torch.optim.SGD([weights], lr=0.1), "onecycle", 100)
    second.load_state_dict(first.state_dict())
    assert vars(second.lr_lambdas[0]) == vars(first.lr_lambdas[0])


# ------------------------------------------------------------------------------------------------ budget runs
def timed_train(**options) -> tuple[dict, float]:
    start = time.perf_counter()
    results = cnnlab.train("lenet5", dataset="digits", quiet=True, **options)
    return results, time.perf_counter() - start


@pytest.mark.slow
def test_a_budget_run_ends_inside_its_budget_at_the_schedules_final_lr(tmp_path):
    results, wall = timed_train(time_budget=10.0, out=str(tmp_path / "run"))
    assert wall <= slack(10.0)
    assert results["time_budget"] == 10.0 and 0 < results["wall_seconds"] <= slack(10.0)
    plan = results["budget_plan"]
    assert results["planned_epochs"] == pytest.approx(plan["planned_steps"] / plan["steps_per_epoch"], abs=1e-3)
    assert plan["steps_per_epoch"] == 20  # 1,437 images -> 1,293 train, batches of 64
    assert results["epochs"] == math.ceil(plan["steps_trained"] / 20) >= 2
    assert json.loads((tmp_path / "run" / "config.json").read_text())["epochs"] == results["epochs"]
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert saved["wall_seconds"] == results["wall_seconds"] and saved["time_budget"] == 10.0
    # The last step trained at progress 1: onecycle's final lr, peak / 25 / 1e4.
    assert plan["last_step_progress"] == 1.0
    assert plan["last_step_lr"] == pytest.approx(DIGITS_LR / 25 / 1e4)
    rows = list(csv.DictReader((tmp_path / "run" / "metrics.csv").open()))
    assert len(rows) == results["epochs"] and float(rows[-1]["lr"]) == pytest.approx(DIGITS_LR / 25 / 1e4)
    assert results["test_accuracy"] >= 0.9


def test_a_budget_run_labels_its_epochs_with_the_planned_total_not_the_cap(tmp_path, capsys):
    # The first epoch starts before the plan (the planner times its first steps): its line still says the plan.
    results = cnnlab.train("lenet5", dataset="digits", time_budget=4.0, out=str(tmp_path / "run"))
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("epoch ")]
    assert lines[0].startswith("epoch 1/") and not any("/1000" in line for line in lines)
    assert lines[-1].startswith(f"epoch {results['epochs']}/{results['epochs']}: ")


@pytest.mark.slow
def test_a_machine_that_slows_mid_run_still_ends_by_the_deadline_with_the_schedule_finished(tmp_path, monkeypatch):
    """After a third of the plan every step costs 25 ms more (several times a lenet5 step): the planner must
    compress the rest of the schedule, not overrun and not stop at a high lr."""
    real_step, slowed = trainer.train_step, {}

    def slow_step(job, state, *args):
        planner = next(hook for hook in state.hooks if isinstance(hook, budget.BudgetPlanner))
        if planner.planned_steps is not None and planner.steps_done >= planner.planned_steps / 3:
            slowed.setdefault("from", planner.steps_done)
            time.sleep(0.025)
        return real_step(job, state, *args)

    monkeypatch.setattr(trainer, "train_step", slow_step)
    results, wall = timed_train(time_budget=12.0, out=str(tmp_path / "run"))
    assert wall <= slack(12.0) and "from" in slowed
    plan = results["budget_plan"]
    compressed = [
        r for r in plan["replans"] if r["at_step"] > slowed["from"] and r["steps_left_after"] < r["steps_left_before"]
    ]
    assert compressed, plan["replans"]
    # Fewer steps than were planned when the slowdown began (the first plan can be lower still when the machine
    # was busy while it was measured, as under a parallel test run) ...
    before = [r for r in plan["replans"] if r["at_step"] <= slowed["from"]]
    planned = before[-1]["at_step"] + before[-1]["steps_left_after"] if before else plan["planned_steps"]
    assert plan["steps_trained"] < planned
    assert plan["last_step_progress"] == 1.0  # ... and the schedule still finished
    assert plan["last_step_lr"] == pytest.approx(DIGITS_LR / 25 / 1e4)


@pytest.mark.slow
def test_a_resumed_budget_run_keeps_its_plan_and_what_is_left_of_its_budget(tmp_path):
    out = tmp_path / "run"
    full, _ = timed_train(time_budget=10.0, out=str(out), checkpoint_every=5, keep_checkpoints=1000)
    # Pretend the run died right after its second epoch end (step 40): point `latest` there and resume.
    checkpoint = "step-00000040"
    state = read_state(out / "checkpoints" / f"{checkpoint}.state.pt")
    saved_shape = state["scheduler"]["lr_lambdas"][0]
    assert state["time_budget"]["planned_steps"] == full["budget_plan"]["planned_steps"]
    (out / "checkpoints" / "latest").write_text(checkpoint)
    resumed = cnnlab.train("lenet5", resume=str(out), quiet=True)
    plan = resumed["budget_plan"]
    assert plan["planned_steps"] == full["budget_plan"]["planned_steps"]  # the first plan, restored
    assert plan["last_step_progress"] == 1.0 and plan["steps_trained"] > 40
    # The earlier session's seconds count: the total stays inside the budget.
    assert state["time_budget"]["used_seconds"] < resumed["wall_seconds"] <= slack(10.0)
    assert saved_shape["end_step"] >= 40 and saved_shape["kind"] == "onecycle"


# ------------------------------------------------------------------------------------------------ on a fake clock
class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def simulated_run(
    tmp_path, budget_seconds: float, step_seconds, steps_per_epoch: int = 50, epoch_end_seconds: float = 0.2
) -> tuple[budget.BudgetPlanner, list[float], float]:
    """Drive a planner as the trainer does, on a fake clock: `step_seconds(step)` is what step `step` costs.
    Returns the planner, the lr factor each step trained at, and the clock when the run (final pass included)
    would end."""
    from types import SimpleNamespace

    from cnnlab.engine.hooks import StepEvent

    clock = FakeClock()
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    scheduler = budget.build_schedule(optimizer, "onecycle", 1000 * steps_per_epoch)
    config = SimpleNamespace(epochs=1000)

    def remap_plan(next_step, end_step):  # what Engine.replan does, without a run directory
        scheduler.remap(next_step, end_step)
        config.epochs = math.ceil((end_step + 1) / steps_per_epoch)

    class FakeEngine:  # the part of the engine a planner reads and calls
        world = SimpleNamespace(broadcast_text=lambda text: text, size=1)
        last_planned_step = staticmethod(lambda: scheduler.end_step)
        progress_at = staticmethod(lambda step: scheduler.shape.progress(step))
        replan = staticmethod(remap_plan)
        say = staticmethod(lambda line: None)
        epochs = property(lambda self: config.epochs)  # read live, as Engine.epochs

    engine = FakeEngine()
    engine.steps_per_epoch = steps_per_epoch
    planner = budget.BudgetPlanner(budget_seconds, started=0.0, engine=engine, clock=clock)

    def priced():  # what price_evaluation would measure: a known epoch end, a final pass of 1 s
        planner.epoch_end, planner.final = epoch_end_seconds, 1.0

    planner.price_evaluation = priced
    clock.now = 0.5  # setting up and loading the data
    lrs, done, epoch = [], 0, 0
    while epoch < config.epochs:
        step = 0
        while step < steps_per_epoch:
            lrs.append(optimizer.param_groups[0]["lr"])
            clock.now += step_seconds(done)
            optimizer.step()
            scheduler.step()
            step, done = step + 1, done + 1
            planner.after_step(StepEvent(epoch, step, done, steps_per_epoch, config.epochs, None, optimizer))
            if done > engine.last_planned_step():  # the plan's last step: the engine ends the epoch here
                break
        clock.now += epoch_end_seconds
        epoch += 1
    return planner, lrs, clock.now + 1.0


def test_on_a_steady_machine_the_plan_fills_the_budget_and_ends_at_the_final_lr(tmp_path):
    planner, lrs, end = simulated_run(tmp_path, 60.0, lambda step: 0.01)
    assert 60.0 - budget.margin(60.0) - 1.0 < end <= 60.0  # within a second of the margin, never past
    assert lrs[-1] == pytest.approx(4e-6) and max(lrs) == pytest.approx(1.0)
    assert planner.replans == []  # nothing to correct
    assert planner.steps_done == planner.planned_steps


def test_a_slowdown_compresses_the_rest_and_the_run_still_ends_by_the_deadline(tmp_path):
    planner, lrs, end = simulated_run(tmp_path, 60.0, lambda step: 0.01 if step < 1500 else 0.03)
    assert end <= 60.0
    assert planner.steps_done < planner.planned_steps  # fewer steps than planned ...
    assert lrs[-1] == pytest.approx(4e-6)  # ... and the schedule finished
    assert all(r["steps_left_after"] < r["steps_left_before"] for r in planner.replans)
    peak = lrs.index(max(lrs))
    assert all(a >= b for a, b in zip(lrs[peak:], lrs[peak + 1 :]))  # a decay that only ever goes down


def test_a_pessimistic_first_plan_is_stretched_before_half_the_progress(tmp_path):
    # The first 10 steps are slow (a busy start), the rest five times faster: the plan grows back.
    planner, lrs, end = simulated_run(tmp_path, 60.0, lambda step: 0.05 if step < 10 else 0.01)
    assert planner.steps_done > 1.5 * planner.planned_steps
    assert 60.0 - budget.margin(60.0) - 5.0 < end <= 60.0 and lrs[-1] == pytest.approx(4e-6)
