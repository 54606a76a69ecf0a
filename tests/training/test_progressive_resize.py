"""--progressive-resize: the training images' side rises linearly from the given pixels to the dataset's own over
the first half of the steps, evaluation stays at full size, and what cannot work is refused before training."""

from __future__ import annotations

from dataclasses import replace

import pytest

import cnnlab.engine.trainer as trainer
from cnnlab.engine.config import TrainConfig
from cnnlab.errors import OptionValueError
from cnnlab.registry import create_model


def test_the_side_rises_from_the_start_to_full_over_the_first_half(tmp_path, digits):
    model = create_model("resnet20", num_classes=10, in_chans=1)
    sides: list[tuple[bool, int]] = []
    model.register_forward_pre_hook(lambda module, args: sides.append((module.training, args[0].shape[-1])))
    config = TrainConfig(
        model="resnet20", dataset="digits", epochs=2, batch_size=64, train_subset=640, threads=1,
        progressive_resize=16, out=str(tmp_path / "run"),
    )  # fmt: skip
    results = trainer.run(config, overwrite=True, quiet=True, data=digits, model=model)
    training = [side for in_training, side in sides if in_training]
    steps = len(training)
    assert steps == 2 * (576 // 64)  # 640 - 64 held out for validation
    assert training[0] == 16 and training == sorted(training) and len(set(training)) >= 5
    assert set(training[steps // 2 :]) == {28} and training[steps // 2 - 1] < 28
    assert sides[0] == (False, 16)  # the check before training: the network takes the start side
    first = next(i for i, (in_training, _) in enumerate(sides) if in_training)
    assert {side for in_training, side in sides[first:] if not in_training} == {28}  # evaluation at full size
    assert results["test_accuracy"] > 0.1


@pytest.mark.parametrize(
    ("model", "start", "message"),
    [
        ("resnet20", 28, "--progressive-resize 28 is not below the 28-pixel side of digits images"),
        (
            "lenet5",
            16,
            "--progressive-resize 16: on 16-pixel images, the forward pass failed in layer 'fc1' (input 2x"
            "|CnnlabError: input 1x16x16 is too small for lenet5: the minimum is 1x28x28; it needs a network that "
            "takes any size (global pooling before its classifier)",
        ),
    ],
)
def test_a_start_side_that_cannot_work_is_refused_before_training(tmp_path, digits, model, start, message):
    config = TrainConfig(model=model, dataset="digits", epochs=1, progressive_resize=start, out=str(tmp_path / "r"))
    with pytest.raises(OptionValueError) as refused:
        trainer.run(replace(config), overwrite=True, quiet=True, data=digits)
    head, _, tail = message.partition("|")
    assert str(refused.value).startswith(head) and str(refused.value).endswith(tail)
    assert not (tmp_path / "r").exists()
