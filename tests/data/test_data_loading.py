"""cnnlab.data loaders: tiny files in the real IDX / CIFAR-pickle / image-folder formats, read back exactly."""

from __future__ import annotations

import dataclasses
import gzip
import pickle
import struct
import urllib.error
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.datasets
from PIL import Image
from torchvision.datasets.mnist import read_image_file, read_label_file

from cnnlab.data import (
    ImageDataset,
    catalog,
    channel_stats,
    default_cache_dir,
    list_datasets,
    load_dataset,
    split_validation,
)
from cnnlab.errors import CnnlabError

FASHION_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")


# ------------------------------------------------------------------------------------------------ file writers
def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX encoding of a uint8 array: magic 0x0000 08 <ndim>, big-endian dims, raw data."""
    return struct.pack(">I", 0x0800 + array.ndim) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def write_idx(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    content = idx_bytes(array)
    path.write_bytes(gzip.compress(content) if path.suffix == ".gz" else content)
    return path


def make_idx_split(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    return rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), rng.integers(0, 10, n, dtype=np.uint8)


def write_idx_dataset(directory: Path, suffix: str, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    (train_x, train_y), (test_x, test_y) = make_idx_split(rng, 5), make_idx_split(rng, 3)
    write_idx(directory / f"train-images-idx3-ubyte{suffix}", train_x)
    write_idx(directory / f"train-labels-idx1-ubyte{suffix}", train_y)
    write_idx(directory / f"t10k-images-idx3-ubyte{suffix}", test_x)
    write_idx(directory / f"t10k-labels-idx1-ubyte{suffix}", test_y)
    return {"train_x": train_x, "train_y": train_y, "test_x": test_x, "test_y": test_y}


def write_pickle(path: Path, content: dict, protocol: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(content, protocol=protocol))


def cifar_batch(rng: np.random.Generator, n: int, num_classes: int, label_key: bytes) -> tuple[dict, np.ndarray]:
    images = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)  # CHW, as the format stores each row
    labels = rng.integers(0, num_classes, n).tolist()
    batch = {
        b"batch_label": b"test batch",
        label_key: labels,
        b"data": images.reshape(n, 3072),
        b"filenames": [f"img_{i}.png".encode() for i in range(n)],
    }
    return batch, images


def assert_dataset_matches(data: ImageDataset, expected: dict[str, np.ndarray]) -> None:
    assert torch.equal(data.train_images, torch.from_numpy(expected["train_x"]).reshape(data.train_images.shape))
    assert torch.equal(data.test_images, torch.from_numpy(expected["test_x"]).reshape(data.test_images.shape))
    assert data.train_labels.tolist() == list(expected["train_y"])
    assert data.test_labels.tolist() == list(expected["test_y"])
    assert data.train_images.dtype == torch.uint8 and data.train_labels.dtype == torch.int64
    assert data.train_images.is_contiguous()


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch) -> Path:
    """Point the cache at an empty folder so a real ~/.cache never satisfies a test."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("CNNLAB_DATA", str(cache))
    return cache


# --------------------------------------------------------------------------------------------------------- IDX
def test_idx_writer_agrees_with_torchvision_reader(tmp_path):
    # Guards the test's own writer: torchvision's reader must see the same arrays.
    expected = write_idx_dataset(tmp_path, "")
    train_images = read_image_file(str(tmp_path / "train-images-idx3-ubyte"))
    assert torch.equal(train_images, torch.from_numpy(expected["train_x"]))
    assert torch.equal(
        read_label_file(str(tmp_path / "t10k-labels-idx1-ubyte")).to(torch.uint8), torch.from_numpy(expected["test_y"])
    )


def test_mnist_plain_idx_round_trips(tmp_path):
    expected = write_idx_dataset(tmp_path / "plain", "")
    data = load_dataset("mnist", data_dir=tmp_path / "plain", download=False)
    assert_dataset_matches(data, expected)
    assert data.name == "mnist"
    assert (data.in_chans, data.image_size, data.num_classes) == (1, 28, 10)
    assert data.classes == [str(d) for d in range(10)]
    assert data.hflip is False
    pixels = expected["train_x"].astype(np.float64) / 255
    assert data.mean == pytest.approx((pixels.mean(),), abs=1e-12)
    assert data.std == pytest.approx((pixels.std(),), abs=1e-12)


def test_fashion_mnist_gz_in_torchvision_subfolder(tmp_path):
    expected = write_idx_dataset(tmp_path / "FashionMNIST" / "raw", ".gz", seed=1)
    data = load_dataset("fashion-mnist", data_dir=tmp_path, download=False)
    assert_dataset_matches(data, expected)
    assert data.classes == [
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ]
    assert data.hflip is True


def test_kmnist_from_cache_dir_and_case_insensitive_name(isolated_cache):
    expected = write_idx_dataset(isolated_cache / "kmnist" / "KMNIST" / "raw", ".gz", seed=2)
    data = load_dataset("KMNIST", download=False)
    assert_dataset_matches(data, expected)
    assert data.classes == ["o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"]
    assert data.hflip is False


def test_truncated_idx_names_the_file(tmp_path):
    write_idx_dataset(tmp_path, "")
    images = tmp_path / "train-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:-100])
    # 16 header bytes + 5 * 28 * 28 pixels = 3936 bytes expected.
    expected = r"train-images-idx3-ubyte is truncated: 3836 bytes, but its header \[5, 28, 28\] needs 3936"
    with pytest.raises(CnnlabError, match=expected):
        load_dataset("mnist", data_dir=tmp_path, download=False)


def test_truncated_gzip_names_the_file(tmp_path):
    write_idx_dataset(tmp_path, ".gz")
    labels = tmp_path / "t10k-labels-idx1-ubyte.gz"
    labels.write_bytes(labels.read_bytes()[:15])
    with pytest.raises(CnnlabError, match=r"cannot read .*t10k-labels-idx1-ubyte\.gz"):
        load_dataset("mnist", data_dir=tmp_path, download=False)


def test_wrong_magic_names_the_file(tmp_path):
    write_idx_dataset(tmp_path, "")
    # A label file where the images belong: magic 2049 instead of 2051.
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros(5, dtype=np.uint8))
    with pytest.raises(CnnlabError, match=r"train-images-idx3-ubyte has IDX magic number 2049, expected 2051"):
        load_dataset("mnist", data_dir=tmp_path, download=False)


def test_image_label_count_mismatch(tmp_path):
    write_idx_dataset(tmp_path, "")
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(4, dtype=np.uint8))
    with pytest.raises(CnnlabError, match=r"holds 5 images but .*train-labels-idx1-ubyte holds 4 labels"):
        load_dataset("mnist", data_dir=tmp_path, download=False)


# ------------------------------------------------------------------------------------------------------- CIFAR
def test_cifar10_pickle_batches_round_trip(tmp_path):
    rng = np.random.default_rng(3)
    folder = tmp_path / "cifar-10-batches-py"
    train_images, train_labels = [], []
    for i in range(1, 6):
        batch, images = cifar_batch(rng, 2, 10, b"labels")
        write_pickle(folder / f"data_batch_{i}", batch, protocol=2)  # as Python 2 wrote them: bytes keys
        train_images.append(images)
        train_labels += batch[b"labels"]
    test, test_images = cifar_batch(rng, 3, 10, b"labels")
    write_pickle(folder / "test_batch", test, protocol=2)
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
    write_pickle(folder / "batches.meta", {b"label_names": names, b"num_vis": 3072}, protocol=2)

    data = load_dataset("cifar10", data_dir=tmp_path, download=False)
    assert torch.equal(data.train_images, torch.from_numpy(np.concatenate(train_images)))  # [10, 3, 32, 32]
    assert data.train_labels.tolist() == train_labels
    assert torch.equal(data.test_images, torch.from_numpy(test_images))
    assert data.test_labels.tolist() == test[b"labels"]
    assert data.classes[0] == "airplane" and data.classes[9] == "truck"
    assert (data.in_chans, data.image_size, data.num_classes, data.hflip) == (3, 32, 10, True)
    # The red plane is the first 1024 bytes of a row: pixel (0, 0)'s red value is the row's first byte.
    assert data.test_images[0, 0, 0, 0] == test[b"data"][0, 0]
    assert data.test_images[0, 1, 0, 0] == test[b"data"][0, 1024]


def test_cifar100_fine_labels_round_trip(tmp_path):
    rng = np.random.default_rng(4)
    train, train_images = cifar_batch(rng, 4, 100, b"fine_labels")
    test, test_images = cifar_batch(rng, 2, 100, b"fine_labels")
    train[b"coarse_labels"] = [0] * 4
    write_pickle(tmp_path / "train", train, protocol=5)  # numpy's protocol-5 path (_frombuffer)
    write_pickle(tmp_path / "test", test, protocol=4)
    fine_names = [f"class{i}".encode() for i in range(100)]
    write_pickle(tmp_path / "meta", {b"fine_label_names": fine_names, b"coarse_label_names": []}, protocol=2)

    data = load_dataset("cifar100", data_dir=tmp_path, download=False)
    assert torch.equal(data.train_images, torch.from_numpy(train_images))
    assert data.train_labels.tolist() == train[b"fine_labels"]
    assert torch.equal(data.test_images, torch.from_numpy(test_images))
    assert data.classes[42] == "class42" and data.num_classes == 100


class _OpensAFile:
    """Unpickling this object would call open(marker, "w"): the stand-in for a malicious payload."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


def test_cifar_unpickler_refuses_code(tmp_path):
    marker = tmp_path / "payload-ran"
    batch, _ = cifar_batch(np.random.default_rng(0), 2, 100, b"fine_labels")
    batch[b"batch_label"] = _OpensAFile(marker)
    write_pickle(tmp_path / "train", batch, protocol=2)
    write_pickle(tmp_path / "test", batch, protocol=2)
    write_pickle(tmp_path / "meta", {b"fine_label_names": [b"x"] * 100}, protocol=2)
    with pytest.raises(CnnlabError, match=r"train is not a valid CIFAR pickle: refusing to load io.open"):
        load_dataset("cifar100", data_dir=tmp_path, download=False)
    assert not marker.exists()


def test_cifar_bad_shape_names_the_file(tmp_path):
    rng = np.random.default_rng(5)
    train, _ = cifar_batch(rng, 2, 100, b"fine_labels")
    write_pickle(tmp_path / "train", train, protocol=2)
    test = {**train, b"data": np.zeros((2, 1000), dtype=np.uint8)}
    write_pickle(tmp_path / "test", test, protocol=2)
    write_pickle(tmp_path / "meta", {b"fine_label_names": [b"x"] * 100}, protocol=2)
    with pytest.raises(CnnlabError, match=r"test: 'data' must be a uint8 \[N, 3072\] array, found uint8 \[2, 1000\]"):
        load_dataset("cifar100", data_dir=tmp_path, download=False)


# --------------------------------------------------------------------------------------- search, download, names
def test_list_datasets():
    assert list_datasets() == ["cifar10", "cifar100", "digits", "fashion-mnist", "kmnist", "mnist"]


def test_default_cache_dir(monkeypatch, tmp_path):
    assert default_cache_dir() == tmp_path / "cache"
    monkeypatch.delenv("CNNLAB_DATA")
    assert default_cache_dir() == Path.home() / ".cache" / "cnnlab" / "data"


def test_unknown_name_suggests_the_closest():
    with pytest.raises(CnnlabError, match=r"unknown dataset 'fashion-mnst'; did you mean: fashion-mnist"):
        load_dataset("fashion-mnst")


def test_missing_data_dir():
    with pytest.raises(CnnlabError, match=r"data directory /no/such/place does not exist"):
        load_dataset("mnist", data_dir="/no/such/place")


def test_missing_data_lists_every_place_looked(tmp_path, isolated_cache):
    (tmp_path / "empty").mkdir()
    with pytest.raises(CnnlabError) as error:
        load_dataset("mnist", data_dir=tmp_path / "empty", download=False)
    message = str(error.value)
    assert "\n" not in message
    places = [tmp_path / "empty", tmp_path / "empty" / "mnist", isolated_cache / "mnist"]
    assert f"in {', '.join(map(str, places))} (and their MNIST/raw subfolders)" in message
    assert "train-images-idx3-ubyte[.gz]" in message and "download was not enabled" in message
    assert f"torchvision.datasets.MNIST('{isolated_cache / 'mnist'}', download=True)" in message
    assert "https://ossci-datasets.s3.amazonaws.com/mnist/" in message


def test_missing_fashion_mnist_names_the_system_package(tmp_path, monkeypatch):
    nowhere = tmp_path / "no-package"
    monkeypatch.setitem(
        catalog.SOURCES, "fashion-mnist", dataclasses.replace(catalog.SOURCES["fashion-mnist"], system_dirs=(nowhere,))
    )
    expected = (
        r"fashion-mnist not found: .*, " + str(nowhere) + r" \(and their FashionMNIST/raw subfolders\).*"
        r"To get it: `apt-get install dataset-fashion-mnist`; or run"
    )
    with pytest.raises(CnnlabError, match=expected):
        load_dataset("fashion-mnist", download=False)


def test_failed_download_becomes_the_not_found_error(isolated_cache, monkeypatch):
    calls = []

    class OfflineKMNIST:
        def __init__(self, root, train=True, download=False):
            calls.append((root, train, download))
            raise urllib.error.URLError("[Errno -3] Temporary failure\nin name resolution")

    monkeypatch.setattr(torchvision.datasets, "KMNIST", OfflineKMNIST)
    with pytest.raises(CnnlabError) as error:
        load_dataset("kmnist")
    assert calls == [(str(isolated_cache / "kmnist"), True, True)]
    message = str(error.value)
    assert "\n" not in message
    assert "kmnist not found: looked for train-images-idx3-ubyte[.gz]" in message
    assert (
        f"in {isolated_cache / 'kmnist'} (and their KMNIST/raw subfolders); downloading failed (URLError: "
        "<urlopen error [Errno -3] Temporary failure in name resolution>)" in message
    )


def test_successful_download_is_loaded(isolated_cache, monkeypatch):
    written = {}

    class FakeMNIST:  # writes the files where torchvision's MNIST puts them
        def __init__(self, root, train=True, download=False):
            written.update(write_idx_dataset(Path(root) / "MNIST" / "raw", ".gz", seed=6))

    monkeypatch.setattr(torchvision.datasets, "MNIST", FakeMNIST)
    data = load_dataset("mnist")
    assert_dataset_matches(data, written)


# -------------------------------------------------------------------------------------------------- imagefolder
def write_png(path: Path, pixels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)


def write_folder(root: Path, per_class: int, grayscale: bool = False, size: int = 4) -> dict[bytes, int]:
    """Images with distinct random pixels; returns {pixels as CHW bytes: label}."""
    rng = np.random.default_rng(7)
    expected = {}
    for label, cls in enumerate(["cat", "dog"]):
        for i in range(per_class):
            pixels = rng.integers(0, 256, (size, size) if grayscale else (size, size, 3), dtype=np.uint8)
            write_png(root / cls / f"{i}.png", pixels)
            chw = pixels[None] if grayscale else pixels.transpose(2, 0, 1)
            expected[np.ascontiguousarray(chw).tobytes()] = label
    return expected


def test_imagefolder_rgb_round_trips(tmp_path):
    expected = write_folder(tmp_path / "pets", per_class=5)
    (tmp_path / "pets" / "dog" / "README.txt").write_text("not an image, and not corrupt either")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the README must not be reported as a corrupt image
        data = load_dataset(f"imagefolder:{tmp_path / 'pets'}", image_size=4)
    assert data.name == f"imagefolder:{tmp_path / 'pets'}"
    assert data.classes == ["cat", "dog"] and data.in_chans == 3 and data.image_size == 4
    # 10 images, ceil(0.2 * 10) = 2 held out, one per class.
    assert (len(data.train_labels), len(data.test_labels)) == (8, 2)
    assert sorted(data.test_labels.tolist()) == [0, 1]
    loaded = {}
    for images, labels in ((data.train_images, data.train_labels), (data.test_images, data.test_labels)):
        loaded.update({image.numpy().tobytes(): int(label) for image, label in zip(images, labels)})
    assert loaded == expected


def test_imagefolder_grayscale_resized(tmp_path):
    write_folder(tmp_path / "gray", per_class=3, grayscale=True, size=8)
    data = load_dataset(f"imagefolder:{tmp_path / 'gray'}", image_size=6)
    assert data.train_images.shape == (4, 1, 6, 6) and data.test_images.shape == (2, 1, 6, 6)


def test_imagefolder_mixed_modes_become_rgb(tmp_path):
    write_folder(tmp_path / "mixed", per_class=2, grayscale=True)
    gray = np.full((4, 4), 200, dtype=np.uint8)
    write_png(tmp_path / "mixed" / "dog" / "rgb.png", np.stack([gray, gray, gray // 2], axis=-1))
    data = load_dataset(f"imagefolder:{tmp_path / 'mixed'}", image_size=4)
    assert data.in_chans == 3
    everything = torch.cat([data.train_images, data.test_images])
    assert any(torch.equal(image[2], torch.full((4, 4), 100, dtype=torch.uint8)) for image in everything)


def test_imagefolder_skips_and_names_corrupt_files(tmp_path):
    write_folder(tmp_path / "pets", per_class=3)
    (tmp_path / "pets" / "cat" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not a png")
    with pytest.warns(UserWarning, match=r"skipped 1 unreadable image file\(s\) in .*pets: cat/broken\.png"):
        data = load_dataset(f"imagefolder:{tmp_path / 'pets'}", image_size=4)
    assert len(data.train_labels) + len(data.test_labels) == 6


def test_imagefolder_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(CnnlabError, match=r"holds no images; expected one subfolder of images per class"):
        load_dataset(f"imagefolder:{tmp_path / 'empty'}")
    write_png(tmp_path / "one" / "cat" / "a.png", np.zeros((4, 4), dtype=np.uint8))
    with pytest.raises(CnnlabError, match=r"has one class \(cat\); a classifier needs at least two"):
        load_dataset(f"imagefolder:{tmp_path / 'one'}")
    for cls in ("cat", "dog"):
        (tmp_path / "bad" / cls).mkdir(parents=True)
        (tmp_path / "bad" / cls / "x.jpg").write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="skipped 2"), pytest.raises(CnnlabError, match="none of the image files"):
        load_dataset(f"imagefolder:{tmp_path / 'bad'}")
    with pytest.raises(CnnlabError, match="does not exist"):
        load_dataset(f"imagefolder:{tmp_path / 'missing'}")
    with pytest.raises(CnnlabError, match="imagefolder needs a path"):
        load_dataset("imagefolder:")


# ------------------------------------------------------------------------------------------------------- digits
def test_digits(digits):
    from sklearn.datasets import load_digits

    data = digits  # the session fixture from tests/conftest.py
    assert (len(data.train_labels), len(data.test_labels)) == (1437, 360)
    assert data.train_images.shape == (1437, 1, 28, 28) and data.train_images.dtype == torch.uint8
    assert data.classes == [str(d) for d in range(10)] and data.hflip is False
    # Stratified: each class's test share is its 20% rounded down or up, and every class is in both splits.
    class_counts = torch.bincount(torch.cat([data.train_labels, data.test_labels]))
    assert class_counts.tolist() == np.bincount(load_digits().target).tolist()
    test_counts = torch.bincount(data.test_labels, minlength=10)
    assert (test_counts >= (0.2 * class_counts).floor()).all() and (test_counts <= (0.2 * class_counts).ceil()).all()
    assert torch.bincount(data.train_labels, minlength=10).min() > 0
    # 16 (the darkest ink) maps to 255; blank pixels stay 0.
    assert int(data.train_images.max()) == 255 and int(data.train_images.min()) == 0
    assert data.mean == pytest.approx((0.3057,), abs=5e-5) and data.std == pytest.approx((0.3247,), abs=5e-5)
    again = load_dataset("digits")
    assert torch.equal(again.train_images, data.train_images) and torch.equal(again.test_labels, data.test_labels)


# -------------------------------------------------------------------------------------------- split and stats
def test_split_validation_is_stratified_seeded_and_ordered():
    labels = torch.tensor([0] * 50 + [1] * 30 + [2] * 20)
    images = torch.arange(100, dtype=torch.uint8).view(100, 1, 1, 1)
    train_x, train_y, val_x, val_y = split_validation(images, labels, 0.1, seed=3)
    assert torch.bincount(val_y).tolist() == [5, 3, 2]
    assert torch.bincount(train_y).tolist() == [45, 27, 18]
    seen = torch.cat([train_x, val_x]).flatten()
    assert sorted(seen.tolist()) == list(range(100))  # disjoint and complete
    assert (train_x.flatten().diff() > 0).all() and (val_x.flatten().diff() > 0).all()  # original order kept
    assert torch.equal(labels[val_x.flatten().long()], val_y)
    assert torch.equal(split_validation(images, labels, 0.1, seed=3)[2], val_x)
    assert not torch.equal(split_validation(images, labels, 0.1, seed=4)[2], val_x)


def test_split_validation_zero_fraction():
    images, labels = torch.zeros(6, 3, 4, 4, dtype=torch.uint8), torch.tensor([0, 1, 0, 1, 0, 1])
    train_x, train_y, val_x, val_y = split_validation(images, labels, 0.0, seed=0)
    assert torch.equal(train_x, images) and torch.equal(train_y, labels)
    assert val_x.shape == (0, 3, 4, 4) and val_x.dtype == torch.uint8 and val_y.shape == (0,)


def test_channel_stats_matches_numpy():
    images = torch.randint(0, 256, (7, 3, 5, 5), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    mean, std = channel_stats(images)
    as_float = images.numpy().astype(np.float64) / 255
    assert mean == pytest.approx(tuple(as_float.mean(axis=(0, 2, 3))), abs=1e-12)
    assert std == pytest.approx(tuple(as_float.std(axis=(0, 2, 3))), abs=1e-12)


# -------------------------------------------------------------------------------------- the real Fashion-MNIST
@pytest.mark.skipif(not FASHION_SYSTEM_DIR.is_dir(), reason="dataset-fashion-mnist is not installed")
def test_real_fashion_mnist(tmp_path):
    data = load_dataset("fashion-mnist", data_dir=FASHION_SYSTEM_DIR, download=False)
    assert data.train_images.shape == (60000, 1, 28, 28) and data.test_images.shape == (10000, 1, 28, 28)
    assert torch.bincount(data.train_labels).tolist() == [6000] * 10
    assert torch.bincount(data.test_labels).tolist() == [1000] * 10
    # The per-channel statistics the literature normalises Fashion-MNIST with.
    assert data.mean == pytest.approx((0.2860,), abs=5e-5) and data.std == pytest.approx((0.3530,), abs=5e-5)
    # Our IDX reader agrees with torchvision's on the test split.
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (tmp_path / name).write_bytes(gzip.decompress((FASHION_SYSTEM_DIR / f"{name}.gz").read_bytes()))
    assert torch.equal(data.test_images[:, 0], read_image_file(str(tmp_path / "t10k-images-idx3-ubyte")))
    assert torch.equal(data.test_labels, read_label_file(str(tmp_path / "t10k-labels-idx1-ubyte")))
