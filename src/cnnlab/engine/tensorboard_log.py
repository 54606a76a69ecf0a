"""`--tensorboard`: a run's scalars, a grid of its misclassified test images and its hyperparameters as TensorBoard
event files in RUN_DIR/tensorboard (view with `tensorboard --logdir runs`). metrics.csv and results.json stay the
record; this is a view of them.

tensorboard is an optional dependency (`pip install 'cnnlab[tensorboard]'`), imported only when a run asks for it.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from cnnlab.engine.hooks import EpochEvent, Hook, RunEvent, StepEvent
from cnnlab.errors import CnnlabError

LOG_DIR = "tensorboard"  # inside the run directory
GRID_IMAGES = 64  # misclassified test images shown, the first ones in test-split order
GRID_COLUMNS = 8
GRID_PADDING = 2  # white pixels between cells
# metrics.csv column -> scalar tag, grouped so TensorBoard draws train and val on neighbouring charts
EPOCH_SCALARS = {
    "train_loss": "loss/train",
    "val_loss": "loss/val",
    "train_accuracy": "accuracy/train",
    "val_accuracy": "accuracy/val",
    "lr": "lr/epoch_end",
    "images_per_second": "speed/images_per_second",
}
RESULT_METRICS = ("test_accuracy", "test_loss", "best_val_accuracy", "train_images_per_second")


def require() -> None:
    """Fail before training, not at the first write, when the optional package is missing."""
    try:
        import tensorboard  # noqa: F401  (torch.utils.tensorboard writes through it)
    except ImportError:
        raise CnnlabError("--tensorboard needs the tensorboard package: pip install 'cnnlab[tensorboard]'") from None


class TensorBoardLog:
    """One run's event files. `steps_done`: the optimizer steps a resumed run's checkpoint holds; the events an
    earlier process logged after them (the part the resumed run redoes) are dropped, so the curves show one
    timeline. Events are logged at the step they end, so step `steps_done` itself is kept."""

    def __init__(self, log_dir: Path, steps_done: int = 0) -> None:
        require()
        from torch.utils.tensorboard import SummaryWriter

        try:
            self.writer = SummaryWriter(str(log_dir), purge_step=steps_done + 1 if steps_done else None)
        except OSError as error:
            raise CnnlabError(f"cannot write TensorBoard logs to {log_dir}: {error.strerror or error}") from error

    def step(self, step: int, loss: float, lr: float) -> None:
        self.writer.add_scalar("loss/train_batch", loss, step)
        self.writer.add_scalar("lr/step", lr, step)

    def epoch(self, step: int, row: dict) -> None:
        """A metrics.csv row, at the optimizer step the epoch ended on."""
        for column, tag in EPOCH_SCALARS.items():
            self.writer.add_scalar(tag, row[column], step)

    def misclassified(
        self, images: torch.Tensor, labels: torch.Tensor, predicted: torch.Tensor, classes: list[str], step: int
    ) -> int:
        """A grid of the first GRID_IMAGES wrongly predicted test images (uint8 [N, C, H, W]) and a table of their
        true and predicted classes, cell by cell; returns how many images were wrong."""
        from torchvision.utils import make_grid

        wrong = (predicted.cpu() != labels.cpu()).nonzero().flatten()
        shown = wrong[:GRID_IMAGES]
        if len(shown):
            grid = make_grid(images.cpu()[shown], nrow=GRID_COLUMNS, padding=GRID_PADDING, pad_value=255)
            self.writer.add_image("test/misclassified", grid, step)  # uint8 [3, H, W]
            rows = [
                f"| {cell + 1} | {int(index)} | {classes[int(labels[index])]} | {classes[int(predicted[index])]} |"
                for cell, index in enumerate(shown.tolist())
            ]
            table = "\n".join(["| cell | test image | true | predicted |", "|---:|---:|---|---|", *rows])
        else:
            table = "every test image was classified correctly"
        self.writer.add_text("test/misclassified", f"{len(wrong)} of {len(labels)} test images wrong\n\n{table}", step)
        return len(wrong)

    def hparams(self, config: dict, results: dict) -> None:
        """The resolved config beside the final metrics, for TensorBoard's HParams tab."""
        values = {
            key: value
            if isinstance(value, (bool, int, float, str))
            else "none"
            if value is None
            else json.dumps(value, sort_keys=True)
            for key, value in config.items()
        }
        metrics = {f"hparam/{key}": float(results[key]) for key in RESULT_METRICS}
        # run_name ".": in this run's own folder, so TensorBoard pairs the hyperparameters with its curves.
        self.writer.add_hparams(values, metrics, run_name=".")

    def close(self) -> None:
        self.writer.close()


class TensorBoardHook(Hook):
    """--tensorboard as an engine hook (process 0 only): batch loss and lr per step, the metrics rows per epoch, and
    at the end the misclassified test images and the hyperparameters."""

    def __init__(self, log: TensorBoardLog, config, images: torch.Tensor, labels: torch.Tensor, classes: list[str]):
        self.log = log
        self.config = config  # the run's TrainConfig, read at the end (a time budget may have set its epochs)
        self.images, self.labels, self.classes = images, labels, classes  # the test split, for the misclassified grid

    def after_step(self, event: StepEvent) -> None:
        self.log.step(event.global_step, event.loss, event.lr)

    def end_of_epoch(self, event: EpochEvent) -> None:
        self.log.epoch(event.global_step, event.metrics)

    def end_of_run(self, event: RunEvent) -> None:
        self.log.misclassified(self.images, self.labels, event.test_predicted, self.classes, event.global_step)
        self.log.hparams(self.config.to_dict(), event.results)
        self.log.close()

    def close(self) -> None:
        self.log.close()
