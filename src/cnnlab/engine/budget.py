"""`--time-budget`: a run sized to a wall-time budget, which ends inside it with its schedule finished.

1. The clock starts when `trainer.run` is called: loading the data, the evaluation passes, the checkpoints and the
   final test pass all count (Python's start-up and imports come before; `cnnlab speedrun` counts those too).
2. Calibration: the first `CALIBRATION_STEPS` optimizer steps (fewer if they take a tenth of the budget) are
   ordinary training steps, nothing is thrown away; those after the first `WARMUP_STEPS` (which pay for one-off
   allocations) are timed. An evaluation of a slice of
   the validation split then measures what an evaluation pass costs per image.
3. The plan: the most steps whose projected cost fits the budget less a margin: steps x seconds per step, one
   validation pass and checkpoint per epoch end, the final test pass and the last files. The run's epochs are
   those steps rounded up (the last epoch may stop part-way); `--epochs` caps them.
4. The learning-rate schedule is a function of progress p in [0, 1] (`optim.lr_factor`). Step i trains at p(i), a
   piecewise-linear map from step index to progress (`optim.ProgressShape`) whose last planned step is at p = 1, the
   schedule's final value.
5. Re-plans, every `interval` steps (about 2% of the plan) and after each epoch end: the projection uses the seconds
   per step of the steps since the last re-plan and the measured cost of an epoch end. When it passes the deadline,
   the steps left shrink to those that fit and the rest of the schedule is mapped onto them: the decay runs faster
   and still ends at its final lr, never cut off high. The rest is stretched the same way when more than
   `STRETCH` times the steps fit at the slower of the recent and the average pace, before half the progress (the
   first plan guesses what a checkpoint costs; the first epoch end measures it).

The planner is an engine hook (`after_step`): it changes the plan only through `Engine.replan`, which re-maps the
schedule (`ProgressSchedule.remap`) and records the epochs; its figures reach results.json through
`Engine.add_results`.

Under torchrun every process re-plans at the same steps and takes process 0's decision (`World.broadcast_text`).
The plan's state is saved in each checkpoint (`state_dict`), the schedule's in the scheduler's own state: a
resumed run continues with what its earlier sessions left of the budget.
"""

from __future__ import annotations

import math
import time
from typing import Any

import torch

from cnnlab.engine.hooks import Hook, RunEvent, StepEvent
from cnnlab.engine.optim import ProgressSchedule, ProgressShape, lr_factor  # noqa: F401 (the schedule's pieces)

CALIBRATION_STEPS = 10  # steps trained before the plan (or the first epoch's, if it has fewer)
CALIBRATION_SHARE = 0.1  # of the budget: calibration ends here even before CALIBRATION_STEPS
WARMUP_STEPS = 3  # of those, the first ones, untimed: one-off allocations and kernel selection
EVAL_SLICE = 256  # validation images timed to price an evaluation pass
FINISH_SECONDS = 1.0  # model.safetensors, results.json and curves.png (matplotlib) at the end
SAVE_SECONDS = 0.3  # a checkpoint, until the first epoch end has been measured
REPLANS = 50  # re-plan points over a plan
MIN_INTERVAL = 5  # steps: fewer make the recent pace too noisy to act on
STRETCH = 1.05  # the rest of the schedule is stretched only when this many times its steps fit
STRETCH_UNTIL = 0.5  # progress: later, more steps would only lengthen the low-lr tail


def build_schedule(optimizer: torch.optim.Optimizer, kind: str, total_steps: int) -> ProgressSchedule:
    """A schedule of `kind` over `total_steps` (each group's peak is its lr now) that a plan can re-map."""
    return ProgressSchedule(optimizer, kind, total_steps)


def margin(budget: float) -> float:
    """Seconds of the budget kept free for what the projection misses."""
    return max(0.5, 0.02 * budget)


# ------------------------------------------------------------------------------------------------------ the plan
class BudgetPlanner(Hook):
    """A run's budget: the plan, its re-plans and the wall time used. An engine hook: `after_step` after every
    optimizer step, its state in each checkpoint (`key`), its figures added to the results at the end."""

    key = "time_budget"

    def __init__(self, budget: float, started: float, engine: Any = None, clock=time.perf_counter) -> None:
        self.budget, self.started, self.clock = budget, started, clock
        self.engine = (
            engine  # cnnlab.engine.trainer.Engine (which imports this module): what the plan reads and changes
        )
        self.used_before = 0.0  # seconds earlier sessions of a resumed run used
        self.planned_steps: int | None = None  # the first plan's step count, once planned
        self.interval = 1  # steps between re-plans
        self.rate = 0.0  # seconds per step
        self.epoch_end = SAVE_SECONDS  # seconds an epoch end (validation, checkpoint) costs
        self.final = FINISH_SECONDS  # seconds the final test pass and the last files cost
        self.replans: list[dict] = []
        self.steps_done = 0
        self.last_time: float | None = None  # when the previous step ended (this session)
        self.first_step: float | None = None  # when this session's first step ended, and the steps done then
        self.first_done = 0
        self.window = [0.0, 0]  # seconds, steps since the last re-plan (epoch-end gaps excluded)
        self.previous = [0.0, 0]  # the window before
        self.since_plan = [0.0, 0]  # the same since the first plan: the average pace
        self.max_steps = 0  # --epochs' cap, in steps

    @property
    def deadline(self) -> float:
        return self.started + self.budget - self.used_before

    def used(self) -> float:
        return self.used_before + self.clock() - self.started

    # -------------------------------------------------------------------------------------------- per step
    def after_step(self, event: StepEvent) -> None:
        """Time the step just taken; plan or re-plan where due."""
        now = self.clock()
        done = self.steps_done = event.global_step  # steps trained so far
        self.time_step(now, done, first_of_epoch=event.step == 1)
        if self.planned_steps is None:
            if self.calibrated(done):
                self.plan(event.step, done)
        elif done % self.interval == 0 or event.step == 1:  # every process alike: same steps, same decisions
            self.replan(event.step, done)

    def calibrated(self, done: int) -> bool:
        """Enough steps timed, or the calibration's share of the budget spent (a slow model on a busy CPU): process
        0's answer, so that every process plans at the same step."""
        stepping = self.clock() - self.first_step if self.first_step is not None else 0.0
        due = done >= min(CALIBRATION_STEPS, self.engine.steps_per_epoch) or stepping > CALIBRATION_SHARE * self.budget
        return self.engine.world.broadcast_text("1" if due else "") == "1"

    def time_step(self, now: float, done: int, first_of_epoch: bool) -> None:
        if self.first_step is None:
            self.first_step, self.first_done = now, done
        if self.last_time is not None:
            seconds = now - self.last_time
            if first_of_epoch:  # the gap holds the previous epoch's end: validation and a checkpoint
                self.epoch_end = max(0.0, seconds - self.rate)
            elif done > WARMUP_STEPS:
                self.window = [self.window[0] + seconds, self.window[1] + 1]
        self.last_time = now

    def take_rate(self) -> float:
        """Set `rate` to the recent pace (the last two windows'); return the slower of it and the average pace
        since the plan."""
        recent = [self.window[0] + self.previous[0], self.window[1] + self.previous[1]]
        if recent[1]:
            self.rate = recent[0] / recent[1]
        if self.planned_steps is not None:
            self.since_plan = [self.since_plan[0] + self.window[0], self.since_plan[1] + self.window[1]]
        self.previous, self.window = self.window, [0.0, 0]
        return max(self.rate, self.since_plan[0] / max(self.since_plan[1], 1))

    # -------------------------------------------------------------------------------------------- planning
    def plan(self, step_in_epoch: int, done: int) -> None:
        """The first plan: price the evaluation, then the most steps that fit (capped by --epochs)."""
        engine = self.engine
        self.take_rate()
        if self.rate == 0.0:  # too few steps to time past the warm-up: the average after the first one
            steps = done - self.first_done
            self.rate = (self.clock() - self.first_step) / steps if steps else self.used() / max(done, 1)
        self.price_evaluation()
        self.max_steps = engine.epochs * engine.steps_per_epoch
        fit = self.steps_that_fit(step_in_epoch, engine.steps_per_epoch, self.rate)
        steps = self.agreed(min(fit, self.max_steps - done))
        self.planned_steps = done + steps
        self.interval = max(MIN_INTERVAL, self.planned_steps // REPLANS)
        self.previous = [0.0, 0]  # calibration's steps are not the recent pace of later re-plans
        engine.replan(done, done + steps - 1)
        self.last_time = self.clock()  # the evaluation just timed is not a step
        engine.say(
            f"time budget {self.budget:.0f} s: {self.rate * 1e3:.1f} ms/step measured over the first {done} "
            f"steps; planned {self.planned_steps} steps = {self.planned_steps / engine.steps_per_epoch:.2f} epochs "
            f"({engine.epochs} rounded up), {self.used():.1f} s used",
        )

    def replan(self, step_in_epoch: int, done: int) -> None:
        """Compress the rest of the schedule when, at the recent pace, it would end past the deadline; stretch it
        when, before half the progress and at the slower of the recent and the average pace, clearly more fit."""
        engine, spe = self.engine, self.engine.steps_per_epoch
        cautious = self.take_rate()
        remaining = engine.last_planned_step() + 1 - done
        if remaining <= 0:
            return
        steps = min(remaining, self.steps_that_fit(step_in_epoch, spe, self.rate))
        if steps == remaining and engine.progress_at(done) < STRETCH_UNTIL:
            more = min(self.steps_that_fit(step_in_epoch, spe, cautious), self.max_steps - done)
            steps = more if more > STRETCH * remaining else remaining
        steps = self.agreed(steps)
        if steps == remaining:
            return
        self.replans.append(
            {
                "at_step": done,
                "steps_left_before": remaining,
                "steps_left_after": steps,
                "seconds_used": round(self.used(), 2),
            }
        )
        engine.replan(done, done + steps - 1)
        if steps < 0.9 * remaining:
            engine.say(
                f"time budget: at {self.rate * 1e3:.1f} ms/step the schedule's last {remaining} steps would end "
                f"past the deadline; compressed into {steps}",
            )

    def agreed(self, steps: int) -> int:
        """Process 0's step count on every process (the same on one process)."""
        return int(self.engine.world.broadcast_text(str(max(1, steps))))

    def steps_that_fit(self, step_in_epoch: int, steps_per_epoch: int, rate: float) -> int:
        """The most steps (at least 1: the schedule must reach its end) whose projected cost at `rate` seconds per
        step, with the epoch ends they cross, the final pass and the margin, ends by the deadline."""
        left = self.deadline - self.clock() - margin(self.budget) - self.final

        def cost(steps: int) -> float:
            epoch_ends = math.ceil((step_in_epoch + steps) / steps_per_epoch)
            return steps * rate + epoch_ends * self.epoch_end

        low, high = 1, 2
        while cost(high) <= left and high < 2**40:
            low, high = high, high * 2
        while high - low > 1:  # cost(low) fits (or low == 1), cost(high) does not
            middle = (low + high) // 2
            low, high = (middle, high) if cost(middle) <= left else (low, middle)
        return low

    def price_evaluation(self) -> None:
        """Seconds per image of an evaluation pass, timed on a slice of the validation split (or of the test split
        when there is no validation split): the epoch ends' and the final pass's estimates."""
        engine = self.engine
        splits, config = engine.splits, engine.config
        images, labels = (
            (splits.val_images, splits.val_labels)
            if len(splits.val_images)
            else (splits.test_images, splits.test_labels)
        )
        images, labels = images[:EVAL_SLICE], labels[:EVAL_SLICE]
        start = self.clock()
        engine.evaluate_sample(images, labels)
        per_image = (self.clock() - start) / max(len(images), 1) / engine.world.size
        test_pass = per_image * len(splits.test_images)
        self.epoch_end = SAVE_SECONDS + per_image * len(splits.val_images)
        self.epoch_end += test_pass if config.test_every_epoch else 0.0
        self.final = FINISH_SECONDS + (0.0 if config.test_every_epoch else test_pass)

    # -------------------------------------------------------------------------------------------- persistence
    def state_dict(self) -> dict:
        return {
            "used_seconds": self.used(),
            "planned_steps": self.planned_steps,
            "interval": self.interval,
            "rate": self.rate,
            "epoch_end": self.epoch_end,
            "final": self.final,
            "replans": list(self.replans),
            "steps_done": self.steps_done,
            "since_plan": list(self.since_plan),
            "max_steps": self.max_steps,
        }

    def load_state_dict(self, saved: dict) -> None:
        self.used_before = saved["used_seconds"]
        self.planned_steps, self.interval = saved["planned_steps"], saved["interval"]
        self.rate, self.epoch_end, self.final = saved["rate"], saved["epoch_end"], saved["final"]
        self.replans, self.steps_done = list(saved["replans"]), saved["steps_done"]
        self.since_plan, self.max_steps = list(saved["since_plan"]), saved["max_steps"]

    # -------------------------------------------------------------------------------------------- the record
    def results(self) -> dict:
        """results.json's budget fields: the budget, the first plan, what ran, and the wall time used so far."""
        engine, spe, steps = self.engine, self.engine.steps_per_epoch, self.steps_done
        last_step = engine.last_planned_step()
        return {
            "time_budget": self.budget,
            "planned_epochs": round((self.planned_steps or 0) / spe, 3),
            "wall_seconds": round(self.used(), 3),
            "budget_plan": {
                "planned_steps": self.planned_steps,
                "steps_per_epoch": spe,
                "steps_trained": steps,
                "epochs_trained": round(steps / spe, 3),
                "seconds_per_step": self.rate,
                "epoch_end_seconds": self.epoch_end,
                "final_seconds": self.final,
                "margin_seconds": margin(self.budget),
                "replans": self.replans,
                "last_step_progress": engine.progress_at(last_step),
                "last_step_lr": engine.lr_at(last_step),
            },
        }

    def end_of_run(self, event: RunEvent) -> None:
        """The budget's figures, with the wall time used once every file is written, added to the results."""
        self.engine.add_results(**self.results())
