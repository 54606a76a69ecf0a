"""The named datasets: where their files are looked for, how they are downloaded, and `load_dataset`.

Search order for a dataset's files: the `data_dir` argument (and `data_dir/<name>`), then
`default_cache_dir()/<name>`, then system-wide copies (Fashion-MNIST's Debian package). In each directory the
files may sit directly or in the subfolder torchvision's download creates (`MNIST/raw`, `cifar-10-batches-py`...).
When nothing is found and `download=True`, torchvision downloads into the cache; if that fails too, one
`CnnlabError` names every place looked and how to get the data.

`digits` needs no files: scikit-learn bundles it, so it is the offline default.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from cnnlab.data.dataset import ImageDataset, default_cache_dir, stratified_indices
from cnnlab.data.formats import read_cifar_batch, read_cifar_classes, read_idx_pair
from cnnlab.data.imagefolder import DEFAULT_IMAGE_SIZE, load_imagefolder
from cnnlab.errors import CnnlabError, unknown_name_error

IMAGEFOLDER_PREFIX = "imagefolder:"
DIGITS_TEST_FRACTION = 0.2  # 1,797 images -> 1,437 train / 360 test
DIGITS_SPLIT_SEED = 0
DIGITS_SIZE = 28  # upsampled from 8x8 to MNIST's side, so every MNIST-sized model runs on it unchanged

IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
CIFAR10_TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))


@dataclass(frozen=True)
class Source:
    """A dataset distributed as files: their layout, where to look, how to get them."""

    name: str
    file_names: tuple[str, ...]  # the files that must all be present (IDX ones may also end in .gz)
    subfolders: tuple[str, ...]  # where torchvision's download puts the files, relative to its root
    torchvision_class: str  # the torchvision.datasets class that downloads it
    url: str  # where the files can be downloaded by hand
    hflip: bool
    classes: tuple[str, ...] = ()  # empty: read from the dataset's meta file
    system_dirs: tuple[Path, ...] = ()
    install_hint: str = ""  # a package that installs the files, if any


SOURCES: dict[str, Source] = {
    "mnist": Source(
        "mnist",
        tuple(IDX_FILES.values()),
        ("MNIST/raw",),
        "MNIST",
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        hflip=False,
        classes=tuple(str(d) for d in range(10)),
    ),
    "fashion-mnist": Source(
        "fashion-mnist",
        tuple(IDX_FILES.values()),
        ("FashionMNIST/raw",),
        "FashionMNIST",
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        hflip=True,
        classes=(
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
        ),
        system_dirs=(Path("/usr/share/datasets/fashion-mnist"),),
        install_hint="apt-get install dataset-fashion-mnist",
    ),
    "kmnist": Source(
        "kmnist",
        tuple(IDX_FILES.values()),
        ("KMNIST/raw",),
        "KMNIST",
        "http://codh.rois.ac.jp/kmnist/dataset/kmnist/",
        hflip=False,
        # The romanised readings of the ten hiragana, in label order.
        classes=("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"),
    ),
    "cifar10": Source(
        "cifar10",
        (*CIFAR10_TRAIN_BATCHES, "test_batch", "batches.meta"),
        ("cifar-10-batches-py",),
        "CIFAR10",
        "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        hflip=True,
    ),
    "cifar100": Source(
        "cifar100",
        ("train", "test", "meta"),
        ("cifar-100-python",),
        "CIFAR100",
        "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        hflip=True,
    ),
}
ALIASES = {"fashionmnist": "fashion-mnist", "fmnist": "fashion-mnist", "cifar-10": "cifar10", "cifar-100": "cifar100"}


def list_datasets() -> list[str]:
    """The built-in dataset names. Any folder of images also loads, as "imagefolder:PATH" (one subfolder per class)."""
    return sorted([*SOURCES, "digits"])


# ----------------------------------------------------------------------------------------------- finding files
def _find_file(directory: Path, file_name: str) -> Path | None:
    # IDX files ship gzipped; torchvision keeps both; some mirrors write "train-images.idx3-ubyte".
    variants = [file_name]
    if "-idx" in file_name:
        variants.append(file_name.replace("-idx", ".idx"))
    for variant in variants:
        for candidate in (directory / variant, directory / f"{variant}.gz"):
            if candidate.is_file():
                return candidate
    return None


def find_files(source: Source, directory: Path) -> dict[str, Path] | None:
    """The source's files in `directory` or one of its torchvision subfolders, or None when any is missing."""
    for folder in (directory, *(directory / sub for sub in source.subfolders)):
        found = {name: _find_file(folder, name) for name in source.file_names}
        if all(found.values()):
            return found  # type: ignore[return-value]
    return None


def search_dirs(source: Source, data_dir: Path | None) -> list[Path]:
    """Where `source` is looked for, in order."""
    dirs = [data_dir, data_dir / source.name] if data_dir is not None else []
    return [*dirs, default_cache_dir() / source.name, *source.system_dirs]


def download_with_torchvision(source: Source, root: Path) -> str | None:
    """Download with torchvision into `root`; returns why it failed (one line), or None on success."""
    import torchvision.datasets  # imported here: only a download needs it

    try:
        # One instance downloads and extracts the whole dataset, test split included.
        getattr(torchvision.datasets, source.torchvision_class)(str(root), train=True, download=True)
    except Exception as e:  # no network, a mirror down, a full disk...: each means "download failed"
        return " ".join(f"{type(e).__name__}: {e}".split())
    return None


def _not_found_error(source: Source, dirs: list[Path], download_failure: str | None) -> CnnlabError:
    needed = ", ".join(f"{n}[.gz]" if "idx" in n else n for n in source.file_names)
    cache = default_cache_dir() / source.name
    attempt = f"downloading failed ({download_failure})" if download_failure else "download was not enabled"
    ways = [
        f"run `python -c \"import torchvision; torchvision.datasets.{source.torchvision_class}('{cache}', "
        f'download=True)"` with network access',
        f"download the files from {source.url} into one of those directories (or pass --data-dir)",
    ]
    if source.install_hint:
        ways.insert(0, f"`{source.install_hint}`")
    subfolders = ", ".join(source.subfolders)
    return CnnlabError(
        f"{source.name} not found: looked for {needed} in {', '.join(str(d) for d in dirs)} "
        f"(and their {subfolders} subfolders); {attempt}. To get it: {'; or '.join(ways)}"
    )


# ---------------------------------------------------------------------------------------------------- loading
def _load_idx(source: Source, files: dict[str, Path]) -> ImageDataset:
    splits = []
    for split in ("train", "test"):
        labels_path = files[IDX_FILES[f"{split}_labels"]]
        images, labels = read_idx_pair(files[IDX_FILES[f"{split}_images"]], labels_path)
        if len(labels) and labels.max() >= len(source.classes):
            raise CnnlabError(
                f"{labels_path}: label {int(labels.max())} is out of range for {len(source.classes)} classes"
            )
        splits += [images, labels]
    return ImageDataset(source.name, *splits, list(source.classes), hflip=source.hflip)


def _load_cifar10(source: Source, files: dict[str, Path]) -> ImageDataset:
    batches = [read_cifar_batch(files[name], "labels", 10) for name in CIFAR10_TRAIN_BATCHES]
    test_images, test_labels = read_cifar_batch(files["test_batch"], "labels", 10)
    classes = read_cifar_classes(files["batches.meta"], "label_names", 10)
    return ImageDataset(
        source.name,
        torch.cat([images for images, _ in batches]),  # [50000, 3, 32, 32]
        torch.cat([labels for _, labels in batches]),
        test_images,
        test_labels,
        classes,
        hflip=source.hflip,
    )


def _load_cifar100(source: Source, files: dict[str, Path]) -> ImageDataset:
    # CIFAR-100 also has 20 coarse superclasses; the 100 fine labels are the benchmark's.
    train_images, train_labels = read_cifar_batch(files["train"], "fine_labels", 100)
    test_images, test_labels = read_cifar_batch(files["test"], "fine_labels", 100)
    classes = read_cifar_classes(files["meta"], "fine_label_names", 100)
    return ImageDataset(source.name, train_images, train_labels, test_images, test_labels, classes, hflip=source.hflip)


READERS: dict[str, Callable[[Source, dict[str, Path]], ImageDataset]] = {
    "mnist": _load_idx,
    "fashion-mnist": _load_idx,
    "kmnist": _load_idx,
    "cifar10": _load_cifar10,
    "cifar100": _load_cifar100,
}


def load_digits() -> ImageDataset:
    """scikit-learn's 1,797 8x8 handwritten digits (values 0..16) as 28x28 uint8, split 1,437 / 360.

    Pixels are scaled to 0..255 and bilinearly upsampled; the split is stratified 80/20 with seed 0.
    """
    from sklearn.datasets import load_digits as sklearn_digits  # imported here: scikit-learn is slow to import

    bunch = sklearn_digits()
    small = torch.from_numpy(bunch.images).to(torch.float32).unsqueeze(1) * (255.0 / 16.0)  # [1797, 1, 8, 8]
    large = F.interpolate(small, size=(DIGITS_SIZE, DIGITS_SIZE), mode="bilinear", align_corners=False)
    images = large.round().clamp(0, 255).to(torch.uint8)  # [1797, 1, 28, 28]
    labels = torch.from_numpy(bunch.target).to(torch.int64)
    train, test = stratified_indices(labels, DIGITS_TEST_FRACTION, DIGITS_SPLIT_SEED)
    return ImageDataset(
        "digits", images[train], labels[train], images[test], labels[test], [str(d) for d in range(10)], hflip=False
    )


def load_dataset(
    name: str, data_dir: str | Path | None = None, download: bool = True, *, image_size: int | None = None
) -> ImageDataset:
    """Load a dataset by name (`list_datasets()`, or "imagefolder:PATH") into memory.

    `data_dir` is searched first for the files (digits and imagefolder ignore it); `image_size` is the side
    imagefolder images are brought to (None: 32; see `load_imagefolder`); the built-in sets ignore it.
    Missing files are downloaded into `default_cache_dir()` when `download`.
    """
    if name.startswith(IMAGEFOLDER_PREFIX):
        path = name[len(IMAGEFOLDER_PREFIX) :]
        if not path:
            raise CnnlabError("imagefolder needs a path: imagefolder:PATH, with one subfolder of images per class")
        return load_imagefolder(path, image_size=image_size or DEFAULT_IMAGE_SIZE, name=name)
    key = name.strip().lower().replace("_", "-")
    key = ALIASES.get(key, key)
    if key == "digits":
        return load_digits()
    if key not in SOURCES:
        raise unknown_name_error("dataset", name, list_datasets())
    source = SOURCES[key]

    directory = None
    if data_dir is not None:
        directory = Path(data_dir).expanduser()
        if not directory.is_dir():
            raise CnnlabError(f"data directory {directory} does not exist")
    dirs = search_dirs(source, directory)
    for candidate in dirs:
        files = find_files(source, candidate)
        if files is not None:
            return READERS[key](source, files)

    failure = None
    if download:
        root = default_cache_dir() / source.name
        failure = download_with_torchvision(source, root)
        files = find_files(source, root) if failure is None else None
        if files is not None:
            return READERS[key](source, files)
        failure = failure or f"torchvision finished but the files are not in {root}"
    raise _not_found_error(source, dirs, failure)
