"""Readers for the on-disk formats of the classic datasets: IDX (MNIST family) and the CIFAR pickle batches.

Both validate what they read and raise `CnnlabError` naming the file, so a truncated download or a wrong
file is reported as such instead of surfacing as a reshape error deep in training.
"""

from __future__ import annotations

import gzip
import pickle
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from cnnlab.errors import CnnlabError

# ----------------------------------------------------------------------------------------------------------- IDX
# An IDX file is a big-endian int32 magic number (0x0000 then a type byte, 0x08 for uint8, then the number of
# dimensions), one big-endian int32 per dimension, and the row-major uint8 data.
IDX_IMAGES_MAGIC = 2051  # 0x00000803: uint8, 3 dimensions [N, H, W]
IDX_LABELS_MAGIC = 2049  # 0x00000801: uint8, 1 dimension [N]


def read_bytes(path: Path) -> bytes:
    """The file's content, decompressed when the name ends in .gz."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (OSError, EOFError, zlib.error) as e:  # gzip.BadGzipFile is an OSError; a cut-off .gz is an EOFError
        raise CnnlabError(f"cannot read {path}: {e}") from e


def read_idx(path: str | Path, expected_magic: int) -> Tensor:
    """An IDX file as a uint8 tensor ([N, H, W] for images, [N] for labels), checked against its header."""
    path = Path(path)
    content = read_bytes(path)
    if len(content) < 4:
        raise CnnlabError(f"{path} is not an IDX file: only {len(content)} bytes")
    magic = int.from_bytes(content[:4], "big")
    if magic != expected_magic:
        raise CnnlabError(f"{path} has IDX magic number {magic}, expected {expected_magic}; wrong or corrupt file")
    ndim = content[3]
    header_size = 4 + 4 * ndim
    if len(content) < header_size:
        raise CnnlabError(f"{path} is truncated: {len(content)} bytes, shorter than its {header_size}-byte header")
    shape = [int.from_bytes(content[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    expected_size = header_size + int(np.prod(shape))
    if len(content) != expected_size:
        raise CnnlabError(
            f"{path} is {'truncated' if len(content) < expected_size else 'too long'}: {len(content)} bytes, "
            f"but its header {shape} needs {expected_size}"
        )
    data = np.frombuffer(content, dtype=np.uint8, offset=header_size).reshape(shape)
    return torch.from_numpy(data.copy())  # copy: frombuffer's array is read-only


def read_idx_pair(images_path: Path, labels_path: Path) -> tuple[Tensor, Tensor]:
    """Matching IDX image and label files as (uint8 [N, 1, H, W], int64 [N])."""
    images = read_idx(images_path, IDX_IMAGES_MAGIC)  # [N, H, W]
    labels = read_idx(labels_path, IDX_LABELS_MAGIC)  # [N]
    if images.ndim != 3 or labels.ndim != 1:
        raise CnnlabError(f"{images_path} / {labels_path}: expected [N, H, W] images and [N] labels")
    if len(images) != len(labels):
        raise CnnlabError(f"{images_path} holds {len(images)} images but {labels_path} holds {len(labels)} labels")
    return images.unsqueeze(1), labels.to(torch.int64)  # [N, 1, H, W], [N]


# ---------------------------------------------------------------------------------------------------------- CIFAR
# The CIFAR "python version" files are pickled dicts of bytes, lists and numpy arrays. Unpickling runs whatever
# callables the file names, so only the handful that rebuild a numpy array are allowed; anything else (os.system,
# eval, ...) is refused before it can run.
_ARRAY_REBUILDERS = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),  # numpy < 2 pickles, such as the original CIFAR files
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.numeric", "_frombuffer"),  # pickle protocol 5
    ("numpy._core.numeric", "_frombuffer"),
    ("_codecs", "encode"),  # how Python 3 writes bytes at pickle protocol 2
}


class _ArrayOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ARRAY_REBUILDERS:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def unpickle(path: Path) -> dict[str, Any]:
    """A CIFAR pickle as a dict with str keys, loaded without running any code the file names."""
    try:
        with open(path, "rb") as f:
            # encoding="bytes": the original files come from Python 2, whose str must stay bytes (pixel data).
            content = _ArrayOnlyUnpickler(f, encoding="bytes").load()
    except OSError as e:
        raise CnnlabError(f"cannot read {path}: {e}") from e
    except Exception as e:  # a corrupt pickle can fail in many ways (UnpicklingError, EOFError, ValueError...)
        raise CnnlabError(f"{path} is not a valid CIFAR pickle: {e}") from e
    if not isinstance(content, dict):
        raise CnnlabError(f"{path} is not a valid CIFAR pickle: holds a {type(content).__name__}, not a dict")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in content.items()}


def read_cifar_batch(path: Path, label_key: str, num_classes: int) -> tuple[Tensor, Tensor]:
    """One CIFAR batch file as (uint8 [N, 3, 32, 32], int64 [N]); `label_key` is "labels" or "fine_labels"."""
    batch = unpickle(path)
    data, labels = batch.get("data"), batch.get(label_key)
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        described = f"{data.dtype} {list(data.shape)}" if isinstance(data, np.ndarray) else type(data).__name__
        raise CnnlabError(f"{path}: 'data' must be a uint8 [N, 3072] array, found {described}")
    try:
        labels = torch.as_tensor(np.asarray(labels, dtype=np.int64))
    except (TypeError, ValueError) as e:
        raise CnnlabError(f"{path}: '{label_key}' must be a list of integers") from e
    if labels.shape != (len(data),):
        raise CnnlabError(f"{path}: {len(data)} images but '{label_key}' has shape {list(labels.shape)}")
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise CnnlabError(f"{path}: labels must lie in [0, {num_classes}), found {labels.min()}..{labels.max()}")
    # Each row is the red plane, then green, then blue, each 32x32 row-major: exactly [3, 32, 32].
    images = torch.from_numpy(data.reshape(-1, 3, 32, 32).copy())  # [N, 3, 32, 32]
    return images, labels


def read_cifar_classes(path: Path, key: str, num_classes: int) -> list[str]:
    """The class names from a CIFAR meta file (`label_names` or `fine_label_names`)."""
    names = unpickle(path).get(key)
    if not isinstance(names, list) or len(names) != num_classes:
        raise CnnlabError(f"{path}: '{key}' must list {num_classes} class names")
    return [n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in names]
