"""Progress display: a live bar (loss, accuracy, images/s) in a terminal, one line per epoch elsewhere (logs, CI)."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.progress import Progress as RichProgress


class Progress:
    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        self.console = Console(stderr=True)
        self.live = not quiet and self.console.is_terminal
        self.bar: RichProgress | None = None
        self.task = None

    def start(self, header: str) -> None:
        if not self.quiet:
            self.console.print(header, highlight=False)

    def epoch(self, epoch: int, epochs: int, steps: int, start_step: int) -> None:
        self.label = f"epoch {epoch}/{epochs}"
        if not self.live:
            return
        if self.bar is None:
            self.bar = RichProgress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[stats]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                console=self.console, transient=True,
            )
            self.bar.start()
        if self.task is not None:
            self.bar.remove_task(self.task)
        self.task = self.bar.add_task(self.label, total=steps, completed=start_step, stats="")

    def step(self, loss: float, accuracy: float, images_per_second: float) -> None:
        if self.bar is not None:
            self.bar.update(self.task, advance=1, stats=f"loss {loss:.4f} acc {accuracy:.2%} {images_per_second:,.0f} img/s")

    def end_epoch(self, row: dict) -> None:
        if self.quiet:
            return
        line = (f"{self.label}: train loss {row['train_loss']:.4f} acc {row['train_accuracy']:.2%} | "
                f"val loss {row['val_loss']:.4f} acc {row['val_accuracy']:.2%} | "
                + (f"test acc {row['test_accuracy']:.2%} | " if "test_accuracy" in row else "")
                + f"{row['epoch_seconds']:.1f}s, {row['images_per_second']:,.0f} img/s")
        (self.bar.console if self.bar else self.console).print(line, highlight=False)

    def finish(self, message: str) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None
        if not self.quiet:
            self.console.print(message, highlight=False)
        sys.stderr.flush()
