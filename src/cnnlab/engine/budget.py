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
4. The learning-rate schedule is a function of progress p in [0, 1] (`lr_factor`). Step i trains at p(i), a
   piecewise-linear map from step index to progress (`ProgressShape`) whose last planned step is at p = 1, the
   schedule's final value.
5. Re-plans, every `interval` steps (about 2% of the plan) and after each epoch end: the projection uses the seconds
   per step of the steps since the last re-plan and the measured cost of an epoch end. When it passes the deadline,
   the steps left shrink to those that fit and the rest of the schedule is mapped onto them: the decay runs faster
   and still ends at its final lr, never cut off high. The rest is stretched the same way when more than
   `STRETCH` times the steps fit at the slower of the recent and the average pace, before half the progress (the
   first plan guesses what a checkpoint costs; the first epoch end measures it).

Under torchrun every process re-plans at the same steps and takes process 0's decision (`World.broadcast_text`).
The plan's state is saved in each checkpoint (`state_dict`), the schedule's in the scheduler's own state: a
resumed run continues with what its earlier sessions left of the budget.
"""

from __future__ import annotations

import math
import time

import torch

from cnnlab.inference.evaluation import evaluate_arrays
from cnnlab.rundir import RunDir

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
ONECYCLE_FINAL = 1 / 25 / 1e4  # OneCycleLR's defaults: start at peak/25, end at that /1e4
ONECYCLE_WARMUP = 0.25  # the share of progress spent warming up, as trainer.build_scheduler


def margin(budget: float) -> float:
    """Seconds of the budget kept free for what the projection misses."""
    return max(0.5, 0.02 * budget)


# ------------------------------------------------------------------------------------------------ the lr schedule
def cosine_between(start: float, end: float, fraction: float) -> float:
    return end + (start - end) * (1 + math.cos(math.pi * fraction)) / 2


def lr_factor(kind: str, progress: float) -> float:
    """The schedule `kind` (TrainConfig.schedule) at `progress` in [0, 1], as a multiple of the peak lr. The
    shapes of trainer.build_scheduler's torch schedulers, written over progress instead of step counts."""
    p = min(max(progress, 0.0), 1.0)
    if kind == "onecycle":
        if p < ONECYCLE_WARMUP:
            return cosine_between(1 / 25, 1.0, p / ONECYCLE_WARMUP)
        return cosine_between(1.0, ONECYCLE_FINAL, (p - ONECYCLE_WARMUP) / (1 - ONECYCLE_WARMUP))
    if kind == "cosine":
        return cosine_between(1.0, 0.0, p)
    if kind == "step":
        return 1.0 if p < 0.5 else 0.1 if p < 0.75 else 0.01
    return 1.0


class ProgressShape:
    """Step index -> lr factor, for `LambdaLR`. Progress runs linearly from (anchor_step, anchor_progress) to 1 at
    end_step. A plain object, so LambdaLR's state_dict saves its fields and a resumed run gets them back."""

    def __init__(self, kind: str, end_step: int) -> None:
        self.kind = kind
        self.anchor_step, self.anchor_progress, self.end_step = 0, 0.0, end_step

    def progress(self, step: int) -> float:
        if step >= self.end_step:
            return 1.0
        span = self.end_step - self.anchor_step
        return self.anchor_progress + (1 - self.anchor_progress) * (step - self.anchor_step) / span

    def __call__(self, step: int) -> float:
        return lr_factor(self.kind, self.progress(step))

    def remap(self, next_step: int, end_step: int) -> None:
        """Steps next_step..end_step carry the rest of the schedule, from where step next_step - 1 was to p = 1."""
        if next_step > 0:
            self.anchor_step, self.anchor_progress = next_step - 1, self.progress(next_step - 1)
        self.end_step = max(end_step, next_step)


def build_schedule(optimizer: torch.optim.Optimizer, kind: str, total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """A schedule of `kind` over `total_steps` (each group's peak is its lr now) that a plan can re-map."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, ProgressShape(kind, total_steps - 1))


# ------------------------------------------------------------------------------------------------------ the plan
class BudgetPlanner:
    """A run's budget: the plan, its re-plans and the wall time used. The trainer calls `after_step` after every
    optimizer step (True: the schedule is done, end the epoch here), `state_dict`/`load_state_dict` with each
    checkpoint, and `results`/`finished` at the end."""

    def __init__(self, budget: float, started: float, clock=time.perf_counter) -> None:
        self.budget, self.started, self.clock = budget, started, clock
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
    def after_step(self, job, state) -> bool:
        """Time the step just taken; plan or re-plan where due. True when the schedule's last step was this one."""
        now = self.clock()
        done = self.steps_done = state.epoch * job.steps_per_epoch + state.step  # steps trained so far
        self.time_step(now, done, first_of_epoch=state.step == 1)
        if self.planned_steps is None:
            if self.calibrated(job, done):
                self.plan(job, state, done)
        elif done % self.interval == 0 or state.step == 1:  # every process alike: same steps, same decisions
            self.replan(job, state, done)
        return self.planned_steps is not None and done > shape_of(state).end_step

    def calibrated(self, job, done: int) -> bool:
        """Enough steps timed, or the calibration's share of the budget spent (a slow model on a busy CPU): process
        0's answer, so that every process plans at the same step."""
        stepping = self.clock() - self.first_step if self.first_step is not None else 0.0
        due = done >= min(CALIBRATION_STEPS, job.steps_per_epoch) or stepping > CALIBRATION_SHARE * self.budget
        return job.world.broadcast_text("1" if due else "") == "1"

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
    def plan(self, job, state, done: int) -> None:
        """The first plan: price the evaluation, then the most steps that fit (capped by --epochs)."""
        self.take_rate()
        if self.rate == 0.0:  # too few steps to time past the warm-up: the average after the first one
            steps = done - self.first_done
            self.rate = (self.clock() - self.first_step) / steps if steps else self.used() / max(done, 1)
        self.price_evaluation(job, state)
        self.max_steps = job.config.epochs * job.steps_per_epoch
        fit = self.steps_that_fit(state.step, job.steps_per_epoch, self.rate)
        steps = agreed(job, min(fit, self.max_steps - done))
        self.planned_steps = done + steps
        self.interval = max(MIN_INTERVAL, self.planned_steps // REPLANS)
        self.previous = [0.0, 0]  # calibration's steps are not the recent pace of later re-plans
        set_end(job, state, done, done + steps - 1)
        self.last_time = self.clock()  # the evaluation just timed is not a step
        say(
            job,
            f"time budget {self.budget:.0f} s: {self.rate * 1e3:.1f} ms/step measured over the first {done} "
            f"steps; planned {self.planned_steps} steps = {self.planned_steps / job.steps_per_epoch:.2f} epochs "
            f"({job.config.epochs} rounded up), {self.used():.1f} s used",
        )

    def replan(self, job, state, done: int) -> None:
        """Compress the rest of the schedule when, at the recent pace, it would end past the deadline; stretch it
        when, before half the progress and at the slower of the recent and the average pace, clearly more fit."""
        cautious = self.take_rate()
        remaining = shape_of(state).end_step + 1 - done
        if remaining <= 0:
            return
        steps = min(remaining, self.steps_that_fit(state.step, job.steps_per_epoch, self.rate))
        if steps == remaining and shape_of(state).progress(done) < STRETCH_UNTIL:
            more = min(self.steps_that_fit(state.step, job.steps_per_epoch, cautious), self.max_steps - done)
            steps = more if more > STRETCH * remaining else remaining
        steps = agreed(job, steps)
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
        set_end(job, state, done, done + steps - 1)
        if steps < 0.9 * remaining:
            say(
                job,
                f"time budget: at {self.rate * 1e3:.1f} ms/step the schedule's last {remaining} steps would end "
                f"past the deadline; compressed into {steps}",
            )

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

    def price_evaluation(self, job, state) -> None:
        """Seconds per image of an evaluation pass, timed on a slice of the validation split (or of the test split
        when there is no validation split): the epoch ends' and the final pass's estimates."""
        splits, config = job.splits, job.config
        images, labels = (
            (splits.val_images, splits.val_labels)
            if len(splits.val_images)
            else (splits.test_images, splits.test_labels)
        )
        images, labels = images[:EVAL_SLICE], labels[:EVAL_SLICE]
        start = self.clock()
        evaluate_arrays(
            state.evaluated,
            images,
            labels,
            job.data,
            dtype=job.dtype,
            channels_last=config.channels_last,
            flip_tta=config.tta,
        )
        per_image = (self.clock() - start) / max(len(images), 1) / job.world.size
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
    def results(self, job, state) -> dict:
        """results.json's budget fields: the budget, the first plan, what ran, and the wall time used so far (the
        trainer's `finish` calls `finished` once its files are written, which records the final figure)."""
        shape, spe, steps = shape_of(state), job.steps_per_epoch, self.steps_done
        last_step = shape.end_step
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
                "last_step_progress": shape.progress(last_step),
                "last_step_lr": state.scheduler.base_lrs[0] * shape(last_step),
            },
        }

    def finished(self, job, results: dict) -> None:
        """Record the wall time used once every file is written, in `results` and results.json (through the run
        directory's one writer of it, as the trainer's)."""
        results["wall_seconds"] = round(self.used(), 3)
        job.world.on_main(lambda: RunDir(job.run_dir).update_results(wall_seconds=results["wall_seconds"]))


# ---------------------------------------------------------------------------------------------------- helpers
def shape_of(state) -> ProgressShape:
    return state.scheduler.lr_lambdas[0]


def agreed(job, steps: int) -> int:
    """Process 0's step count on every process (the same on one process)."""
    return int(job.world.broadcast_text(str(max(1, steps))))


def set_end(job, state, next_step: int, end_step: int) -> None:
    """Map the rest of the schedule onto steps next_step..end_step, set the next step's lr, and size the epochs
    (config.json records them)."""
    shape, scheduler = shape_of(state), state.scheduler
    shape.remap(next_step, end_step)
    for group, base in zip(state.optimizer.param_groups, scheduler.base_lrs):
        group["lr"] = base * shape(next_step)  # the scheduler set it from the previous map
    scheduler._last_lr = [group["lr"] for group in state.optimizer.param_groups]
    job.config.epochs = math.ceil((end_step + 1) / job.steps_per_epoch)
    job.world.on_main(lambda: RunDir(job.run_dir).update_config(epochs=job.config.epochs))


def say(job, line: str) -> None:
    progress = job.progress
    if not progress.quiet:
        (progress.bar.console if progress.bar else progress.console).print(line, highlight=False)
