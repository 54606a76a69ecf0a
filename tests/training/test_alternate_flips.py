"""--alternate-flips (airbench): each training image mirrored on every other epoch, its first side drawn from the
seed, instead of a coin per image per step; and the batch-level flip that carries it."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

import cnnlab.engine.trainer as trainer
from cnnlab.batches import prepare_batch
from cnnlab.engine.config import TrainConfig


def test_a_flip_mask_mirrors_exactly_its_images_and_draws_no_random_numbers(digits):
    mirrorable = replace(digits, hflip=True)
    images = digits.train_images[:6]
    mask = torch.tensor([True, False, False, True, True, False])
    generator = torch.Generator().manual_seed(3)
    before = generator.get_state()
    x = prepare_batch(images, mirrorable, channels_last=False, flip=mask, generator=generator)
    plain = prepare_batch(images, mirrorable, channels_last=False)
    assert torch.equal(generator.get_state(), before)
    for row, mirrored in enumerate(mask.tolist()):
        assert torch.equal(x[row], plain[row].flip(2) if mirrored else plain[row])


def flips_by_epoch(monkeypatch, data, **options) -> list[list[tuple[torch.Tensor, torch.Tensor]]]:
    """Train, recording each step's (uint8 images, flip mask); returns them per epoch."""
    seen = []
    real = trainer.prepare_batch

    def spy(images, data, channels_last, crop_padding=0, flip=False, *args, **kwargs):
        seen.append((images.clone(), flip.clone() if isinstance(flip, torch.Tensor) else flip))
        return real(images, data, channels_last, crop_padding, flip, *args, **kwargs)

    monkeypatch.setattr(trainer, "prepare_batch", spy)
    config = TrainConfig(model="lenet5", dataset="digits", epochs=2, batch_size=50, train_subset=200, threads=1)
    config = replace(config, augment=True, crop_padding=0, alternate_flips=True, out=options.pop("out"), **options)
    trainer.run(config, overwrite=True, quiet=True, data=data)
    steps = len(seen) // 2
    return [seen[:steps], seen[steps:]]


def test_each_image_is_mirrored_in_one_of_two_epochs(monkeypatch, tmp_path, digits):
    first, second = flips_by_epoch(monkeypatch, replace(digits, hflip=True), out=str(tmp_path / "run"))
    sides = {bytes(image.numpy()): bool(flip) for images, mask in first for image, flip in zip(images, mask)}
    compared = 0
    for images, mask in second:
        assert isinstance(mask, torch.Tensor) and mask.dtype == torch.bool
        for image, flip in zip(images, mask):
            if bytes(image.numpy()) in sides:
                assert bool(flip) != sides[bytes(image.numpy())]
                compared += 1
    assert compared >= 100  # the two epochs' orders differ, but most of the 150 training images come in both
    share = sum(sides.values()) / len(sides)
    assert 0.35 < share < 0.65  # about half start mirrored


def test_alternate_flips_need_augmented_mirrorable_images(tmp_path, digits):
    from cnnlab.errors import OptionValueError

    config = TrainConfig(model="lenet5", dataset="digits", epochs=1, train_subset=200, alternate_flips=True)
    with pytest.raises(OptionValueError, match="^--alternate-flips mirrors augmented images, but mirroring can"):
        trainer.run(replace(config, augment=True, out=str(tmp_path / "a")), overwrite=True, quiet=True, data=digits)
    with pytest.raises(OptionValueError, match="^--alternate-flips mirrors augmented images, but --augment is off$"):
        mirrorable = replace(digits, hflip=True)
        trainer.run(replace(config, augment=False, out=str(tmp_path / "b")), quiet=True, data=mirrorable)
