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


# ------------------------------------------------------------------------------------ AlexNet's PCA colour noise
@pytest.fixture(scope="module")
def rgb_folder(tmp_path_factory):
    """imagefolder of 24 small RGB PNGs in two classes, colours correlated across channels as photos are."""
    import numpy as np
    from PIL import Image

    root = tmp_path_factory.mktemp("rgb") / "pets"
    rng = np.random.default_rng(3)
    for label, name in enumerate(["cat", "dog"]):
        (root / name).mkdir(parents=True)
        for i in range(12):
            grey = rng.integers(0, 200, (8, 8, 1))
            tint = rng.integers(0, 56, (8, 8, 3)) + np.array([40 * label, 0, 20])
            Image.fromarray(np.clip(grey + tint, 0, 255).astype(np.uint8)).save(root / name / f"{i}.png")
    return root


def test_pixel_pca_is_numpys_eigendecomposition_of_the_rgb_covariance(rgb_folder):
    import numpy as np

    from cnnlab.data import load_dataset, pixel_pca

    images = load_dataset(f"imagefolder:{rgb_folder}", image_size=8).train_images
    pca = pixel_pca(images, chunk=5)  # several chunks: the float64 sums must add up as one pass
    pixels = images.permute(0, 2, 3, 1).reshape(-1, 3).double().numpy() / 255
    values, vectors = np.linalg.eigh(np.cov(pixels, rowvar=False, bias=True))
    np.testing.assert_allclose(pca.eigvals.numpy(), values[::-1], rtol=1e-5, atol=1e-8)
    for i in range(3):  # an eigenvector's sign is arbitrary
        ours, theirs = pca.eigvecs[:, i].double().numpy(), vectors[:, 2 - i]
        np.testing.assert_allclose(ours * np.sign(ours @ theirs), theirs, atol=1e-5)
    assert pca.eigvals[0] > pca.eigvals[1] > pca.eigvals[2] > 0


def test_pca_colour_noise_shifts_every_pixel_by_eigvecs_times_alpha_eigvals(rgb_folder):
    """Through prepare_batch, as training draws it: alpha from the batch's generator, one per image and component;
    each image keeps its row (its label's), every pixel of it shifted alike by eigvecs @ (alpha * eigvals)."""
    from cnnlab.batches import prepare_batch
    from cnnlab.data import load_dataset, normalize, pixel_pca
    from cnnlab.data.augment import pca_shift

    data = load_dataset(f"imagefolder:{rgb_folder}", image_size=8)
    pca, images = pixel_pca(data.train_images), data.train_images[:6]
    x = prepare_batch(images, data, False, generator=seeded(5), color=(pca, 0.1))
    alpha = torch.randn(6, 3, generator=seeded(5)) * 0.1
    expected = torch.stack([pca.eigvecs @ (alpha[b] * pca.eigvals) for b in range(6)])  # [6, 3], the paper's form
    torch.testing.assert_close(pca_shift(pca, alpha), expected)
    shift = (x - normalize(images, data.mean, data.std)) * torch.tensor(data.std).view(1, 3, 1, 1)
    torch.testing.assert_close(shift, expected.view(6, 3, 1, 1).expand_as(shift), rtol=0, atol=1e-5)
    assert expected.abs().max() > 1e-3  # a shift there is to see
    alpha = torch.tensor([[1.0, 0.0, 0.0]])  # the first component alone: sqrt-free, its eigenvalue times its vector
    torch.testing.assert_close(pca_shift(pca, alpha)[0], pca.eigvals[0] * pca.eigvecs[:, 0])


def test_training_with_pca_colour_noise_on_rgb_and_its_refusal_on_grayscale(rgb_folder, tmp_path, capsys):
    import cnnlab
    from cnnlab.cli import main
    from cnnlab.rundir import RunDir

    out = tmp_path / "run"
    results = cnnlab.train(
        "lenet5", f"imagefolder:{rgb_folder}", epochs=1, batch_size=8, pca_color=0.1, out=str(out), quiet=True
    )
    assert 0.0 <= results["test_accuracy"] <= 1.0
    assert RunDir(out).read_config().train_config().pca_color == 0.1
    assert main(["train", "lenet5", "--dataset", "digits", "--pca-color", "0.1", "--out", str(tmp_path / "g")]) == 2
    err = capsys.readouterr().err
    assert "--pca-color shifts RGB colours; digits has 1 channel(s)" in err and err.count("\n") == 1
    assert not (tmp_path / "g").exists()
