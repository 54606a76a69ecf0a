"""cnnlab.data batched transforms: normalize, random_crop, random_hflip."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from cnnlab.data import normalize, random_crop, random_hflip


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def distinct_batch(b: int = 64, c: int = 3, h: int = 8, w: int = 8) -> torch.Tensor:
    """Every pixel value different (and nonzero), so each crop window is identifiable."""
    return (torch.arange(b * c * h * w, dtype=torch.float32) + 1).view(b, c, h, w)


def test_normalize_matches_the_formula():
    batch = torch.randint(0, 256, (2, 3, 5, 5), generator=seeded(0), dtype=torch.uint8)
    mean, std = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
    out = normalize(batch, mean, std)
    expected = (batch.double() / 255 - torch.tensor(mean, dtype=torch.float64).view(1, 3, 1, 1)) / torch.tensor(
        std, dtype=torch.float64
    ).view(1, 3, 1, 1)
    assert out.dtype == torch.float32 and out.shape == (2, 3, 5, 5)
    torch.testing.assert_close(out.double(), expected, rtol=0, atol=1e-6)
    # 255 in a channel with mean 0.5, std 0.25 -> (1 - 0.5) / 0.25 = 2.
    assert normalize(torch.full((1, 1, 1, 1), 255, dtype=torch.uint8), (0.5,), (0.25,)).item() == pytest.approx(2.0)


def test_random_crop_padding_zero_is_identity():
    batch = distinct_batch()
    assert torch.equal(random_crop(batch, 0, seeded(0)), batch)


@pytest.mark.parametrize("dtype", [torch.float32, torch.uint8])
def test_random_crop_takes_one_zero_padded_window_per_sample(dtype):
    batch = (
        distinct_batch(h=8, w=6).to(dtype)
        if dtype == torch.float32
        else torch.randint(1, 256, (64, 3, 8, 6), generator=seeded(1), dtype=torch.uint8)
    )
    padding = 2
    out = random_crop(batch, padding, seeded(0))
    assert out.shape == batch.shape and out.dtype == dtype
    padded = F.pad(batch, (padding,) * 4)
    offsets = []
    for sample, result in zip(padded, out):  # the reference: torchvision's RandomCrop, one image at a time
        windows = [
            (dy, dx)
            for dy in range(2 * padding + 1)
            for dx in range(2 * padding + 1)
            if torch.equal(sample[:, dy : dy + 8, dx : dx + 6], result)
        ]
        assert windows, "an output sample is not a crop of its padded input"
        offsets.append(windows[0])
    # Offsets are per sample: 64 samples over 25 possible windows use many of them.
    assert len(set(offsets)) > 10
    assert (out == 0).any()  # some crops reach into the zero padding


def test_random_crop_is_reproducible():
    batch = distinct_batch()
    assert torch.equal(random_crop(batch, 4, seeded(7)), random_crop(batch, 4, seeded(7)))
    assert not torch.equal(random_crop(batch, 4, seeded(7)), random_crop(batch, 4, seeded(8)))


def test_random_hflip_per_sample_and_its_own_inverse():
    batch = distinct_batch()
    out = random_hflip(batch, seeded(3))
    flipped = [torch.equal(o, b.flip(2)) for o, b in zip(out, batch)]
    kept = [torch.equal(o, b) for o, b in zip(out, batch)]
    assert all(f != k for f, k in zip(flipped, kept))  # each sample is either mirrored or untouched
    assert 10 < sum(flipped) < 54  # p = 0.5 over 64 samples
    assert torch.equal(random_hflip(out, seeded(3)), batch)  # the same draws undo the flips
    assert torch.equal(random_hflip(batch, seeded(3)), out)
    assert torch.equal(random_hflip(batch, seeded(0), p=0.0), batch)
    assert torch.equal(random_hflip(batch, seeded(0), p=1.0), batch.flip(3))
