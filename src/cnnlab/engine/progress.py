"""Progress display: a live bar (loss, accuracy, images/s) in a terminal or a Jupyter notebook, one line per epoch
elsewhere (logs, CI). The notebook's bar is one HTML output rewritten in place (no widgets, nothing to install).

With CNNLAB_PROGRESS_FILE set (`cnnlab lab` sets it for the jobs it starts), the same events are also appended to
that file as JSON lines, so another process can follow the run without sharing memory with it.
"""

from __future__ import annotations

import math
import os
import sys
import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.progress import Progress as RichProgress

from cnnlab.engine.hooks import EpochEvent, Hook, RunEvent, StepEvent
from cnnlab.notebook import in_notebook, notebook_output
from cnnlab.rundir.metrics import append_event


class NotebookBar:
    """An epoch's bar in a notebook: `<progress>` and the running numbers, redrawn at most every `interval` s
    (each redraw is a message to the browser) and always at an epoch's end."""

    def __init__(self, interval: float = 0.25) -> None:
        self.show, self.interval, self.drawn_at = notebook_output(), interval, 0.0
        self.began = time.monotonic()

    def draw(self, label: str, done: int, total: int, stats: str, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.drawn_at < self.interval:
            return
        self.drawn_at = now
        self.show(
            f'<div style="font-family:monospace"><progress value="{done}" max="{total}" style="width:40%">'
            f"</progress> {label} {done}/{total} {stats} {now - self.began:,.1f}s</div>"
        )


class Progress:
    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        self.console = Console(stderr=True)
        self.live = not quiet and self.console.is_terminal
        self.notebook: NotebookBar | None = None  # made at the first epoch, when not live and inside a kernel
        self.done = self.steps = 0
        self.stats = ""
        self.bar: RichProgress | None = None
        self.task = None
        self.log = ProgressLog.from_environment()

    def start(self, header: str) -> None:
        if self.log is not None:
            self.log.write("start", header=header)
        if not self.quiet:
            self.console.print(header, highlight=False)

    def epoch(self, epoch: int, epochs: int, steps: int, start_step: int) -> None:
        self.current, self.epochs = epoch, epochs
        self.label = f"epoch {epoch}/{epochs}"
        if self.log is not None:
            self.log.epoch(epoch, epochs, steps, start_step)
        self.done, self.steps = start_step, steps
        if not self.quiet and not self.live and (self.notebook is not None or in_notebook()):
            self.notebook = self.notebook or NotebookBar()
            self.notebook.draw(self.label, self.done, self.steps, self.stats, force=True)
        if not self.live:
            return
        if self.bar is None:
            self.bar = RichProgress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[stats]}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=self.console,
                transient=True,
            )
            self.bar.start()
        if self.task is not None:
            self.bar.remove_task(self.task)
        self.task = self.bar.add_task(self.label, total=steps, completed=start_step, stats="")

    def step(self, loss: float, accuracy: float, images_per_second: float) -> None:
        if self.log is not None:
            self.log.step(loss, accuracy, images_per_second)
        self.done += 1
        self.stats = f"loss {loss:.4f} acc {accuracy:.2%} {images_per_second:,.0f} img/s"
        if self.bar is not None:
            self.bar.update(self.task, advance=1, stats=self.stats)
        if self.notebook is not None:
            self.notebook.draw(self.label, self.done, self.steps, self.stats, force=self.done == self.steps)

    def retotal(self, epochs: int) -> None:
        """The run was resized mid-epoch (a --time-budget plan): the label, and the bar's, say the new total, so
        the first epoch of a budget run does not end as "epoch 1/1000" (the cap before the plan)."""
        if epochs == self.epochs:
            return
        self.epochs, self.label = epochs, f"epoch {self.current}/{epochs}"
        if self.bar is not None and self.task is not None:
            self.bar.update(self.task, description=self.label)

    def end_epoch(self, row: dict) -> None:
        if self.log is not None:
            self.log.write("epoch", **row)
        if self.quiet:
            return
        line = (
            f"{self.label}: train loss {row['train_loss']:.4f} acc {row['train_accuracy']:.2%} | "
            f"val loss {row['val_loss']:.4f} acc {row['val_accuracy']:.2%} | "
            + (f"test acc {row['test_accuracy']:.2%} | " if "test_accuracy" in row else "")
            + f"{row['epoch_seconds']:.1f}s, {row['images_per_second']:,.0f} img/s"
        )
        (self.bar.console if self.bar else self.console).print(line, highlight=False)

    def finish(self, message: str) -> None:
        if self.log is not None:
            self.log.write("finish", message=message)
        if self.bar is not None:
            self.bar.stop()
            self.bar = None
        if self.notebook is not None:  # where the run stopped (a budget's last epoch may end before its steps)
            self.notebook.draw(self.label, self.done, self.steps, self.stats, force=True)
            self.notebook = None
        if not self.quiet:
            self.console.print(message, highlight=False)
        sys.stderr.flush()


PROGRESS_FILE_ENV = "CNNLAB_PROGRESS_FILE"


class ProgressLog:
    """Training events as JSON lines appended to a file: start, epoch_start, step, epoch (the metrics row) and
    finish. Each line carries the wall time `t`; steps carry the run-wide step number and an ETA from this
    process's own pace.

    A step is written when it lands on the run's grid of `points` evenly spaced steps (every step of a run of at
    most `points` steps, so a short run's curve has a point per step), at least every `step_interval` seconds
    (live numbers on a long run), and at each epoch's end; the file stays small either way."""

    def __init__(self, path: str, step_interval: float = 0.5, points: int = 400) -> None:
        self.path, self.step_interval, self.points = path, step_interval, points
        self.began, self.last_write = time.time(), 0.0
        self.epoch_number = self.epochs = self.steps = self.step_number = self.steps_here = 0

    @classmethod
    def from_environment(cls) -> ProgressLog | None:
        path = os.environ.get(PROGRESS_FILE_ENV)
        # Under torchrun process 0 speaks for all (RANK is unset in a single process).
        return cls(path) if path and os.environ.get("RANK", "0") == "0" else None

    def write(self, event: str, **fields) -> None:
        append_event(self.path, {"event": event, "t": round(time.time(), 3), **fields})

    def epoch(self, epoch: int, epochs: int, steps: int, start_step: int) -> None:
        self.epoch_number, self.epochs, self.steps, self.step_number = epoch, epochs, steps, start_step
        self.write("epoch_start", epoch=epoch, epochs=epochs, steps=steps, step=start_step)

    def step(self, loss: float, accuracy: float, images_per_second: float) -> None:
        self.step_number += 1
        self.steps_here += 1
        now = time.time()
        done = (self.epoch_number - 1) * self.steps + self.step_number
        every = max(1, math.ceil(self.epochs * self.steps / self.points))
        if now - self.last_write < self.step_interval and self.step_number < self.steps and done % every:
            return
        self.last_write = now
        left = self.epochs * self.steps - done
        eta = (now - self.began) / self.steps_here * left
        self.write(
            "step",
            epoch=self.epoch_number,
            epochs=self.epochs,
            step=self.step_number,
            steps=self.steps,
            global_step=done,
            total_steps=self.epochs * self.steps,
            loss=loss,
            accuracy=accuracy,
            images_per_second=images_per_second,
            eta_seconds=round(eta, 1),
        )


class ProgressHook(Hook):
    """The progress display (and, through `Progress`, the lab's progress stream) as an engine hook: an epoch's bar
    or line when its first step comes, the running numbers after each step, the metrics row at its end and the
    test accuracy at the run's."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.shown: int | None = None  # the epoch announced last

    def before_step(self, event: StepEvent) -> None:
        if self.shown != event.epoch:
            self.shown = event.epoch
            self.progress.epoch(event.epoch + 1, event.epochs, event.steps_per_epoch, event.step)

    def after_step(self, event: StepEvent) -> None:
        m = event.metrics
        self.progress.step(m["loss"], m["accuracy"], m["images_per_second"])
        self.progress.retotal(event.epochs)  # a time budget's plan may have resized the run

    def end_of_epoch(self, event: EpochEvent) -> None:
        self.progress.end_epoch(event.metrics)

    def end_of_run(self, event: RunEvent) -> None:
        r = event.results
        self.progress.finish(
            f"test accuracy {r['test_accuracy']:.2%} (loss {r['test_loss']:.4f}) in {r['train_seconds']:.1f}s of "
            f"training -> {r['run_dir']}"
        )

    def close(self) -> None:
        self.progress.finish("")
