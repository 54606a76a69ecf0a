"""A resumed run's TensorBoard curves show one timeline: the events its crashed predecessor logged past the last
checkpoint are dropped (purged), and the redone steps are logged once, with the values of an uninterrupted run."""

from __future__ import annotations

import pytest

import cnnlab
from cnnlab.engine import tensorboard_log

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")

STEPS = 16  # 2 epochs of 8 steps: 540 training images in batches of 64
CRASH_AT = 10  # past the checkpoint of step 8 (checkpoint_every 4, and the end of epoch 1)
RECIPE = dict(
    dataset="digits",
    train_subset=600,
    epochs=2,
    checkpoint_every=4,
    threads=1,
    precision="fp32",
    tensorboard=True,
    quiet=True,
)


class Crash(Exception):
    """The process dying mid-epoch, after TensorBoard got the step's scalars onto disk."""


def scalars(run_dir, tag: str) -> list[tuple[int, float]]:
    events = event_accumulator.EventAccumulator(str(run_dir / tensorboard_log.LOG_DIR), size_guidance={"scalars": 0})
    events.Reload()
    return [(event.step, event.value) for event in events.Scalars(tag)]


@pytest.mark.slow
def test_resume_drops_the_events_logged_past_the_checkpoint(tmp_path, monkeypatch):
    reference = tmp_path / "reference"
    cnnlab.train("lenet5", out=str(reference), **RECIPE)

    real_step = tensorboard_log.TensorBoardLog.step

    def step_then_crash(self, step: int, loss: float, lr: float) -> None:
        real_step(self, step, loss, lr)
        if step == CRASH_AT:
            self.writer.flush()
            raise Crash

    crashed = tmp_path / "crashed"
    monkeypatch.setattr(tensorboard_log.TensorBoardLog, "step", step_then_crash)
    with pytest.raises(Crash):
        cnnlab.train("lenet5", out=str(crashed), **RECIPE)
    assert [step for step, _ in scalars(crashed, "loss/train_batch")] == list(range(1, CRASH_AT + 1))
    assert (crashed / "checkpoints" / "latest").read_text() == "step-00000008"

    monkeypatch.setattr(tensorboard_log.TensorBoardLog, "step", real_step)
    cnnlab.train("lenet5", resume=str(crashed), quiet=True, threads=1)
    for tag in ("loss/train_batch", "lr/step", "loss/train", "loss/val", "accuracy/val"):
        resumed, expected = scalars(crashed, tag), scalars(reference, tag)
        assert [step for step, _ in resumed] == [step for step, _ in expected], tag  # each step once, in order
        assert resumed == expected, tag  # the redone steps 9 and 10 hold the resumed run's values
    assert [step for step, _ in scalars(crashed, "loss/train_batch")] == list(range(1, STEPS + 1))
