"""`imagefolder:PATH`: the user's own images, one subfolder per class, loaded into an `ImageDataset`.

Every image is decoded once with PIL and brought to `image_size` x `image_size`. Below `CROP_FROM` pixels (the
default is 32) it is squashed to that size, with no cropping, so nothing of a small object is cut off. From
`CROP_FROM` up, photos get torchvision's ImageNet evaluation preprocessing: the shorter side resized to
int(size / 0.875) (256 for 224), then the central size x size crop. The set becomes grayscale only when every image
is. The train/test split is a seeded, stratified 80/20 (`TEST_FRACTION`, `SPLIT_SEED`).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from cnnlab.data.dataset import ImageDataset, stratified_indices
from cnnlab.errors import CnnlabError

# The extensions torchvision's ImageFolder accepts; other files (READMEs, .DS_Store) are ignored, not "corrupt".
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
GRAYSCALE_MODES = {"1", "L", "LA", "I", "I;16", "F"}
TEST_FRACTION = 0.2
SPLIT_SEED = 0
DEFAULT_IMAGE_SIZE = 32
CROP_FROM = 64  # from this side up: resize + center-crop (photos); below: squash (small images, icons, scans)
CROP_RATIO = 0.875  # torchvision's ImageNet evaluation: resize to 256, crop 224


def fit_image(img: Image.Image, image_size: int) -> Image.Image:
    """`img` (same mode) at image_size x image_size: squashed below CROP_FROM, else torchvision's Resize(int(size /
    0.875)) of the shorter side (bilinear, antialiased) and CenterCrop(size). Training and prediction share it."""
    if image_size < CROP_FROM:
        return img.resize((image_size, image_size), Image.Resampling.BILINEAR)
    import torchvision.transforms.functional as TF  # here: importing torchvision costs every command a second

    resized = TF.resize(img, int(image_size / CROP_RATIO), interpolation=TF.InterpolationMode.BILINEAR, antialias=True)
    return TF.center_crop(resized, image_size)


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def load_imagefolder(root: str | Path, image_size: int = DEFAULT_IMAGE_SIZE, name: str | None = None) -> ImageDataset:
    """Load `root/<class>/<image>` files as a dataset; class names are the sorted subfolder names."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise CnnlabError(f"image folder {root} does not exist or is not a directory")
    if image_size < 1:
        raise CnnlabError(f"image size must be positive, got {image_size}")
    class_files = {d.name: _image_files(d) for d in sorted(root.iterdir()) if d.is_dir() and not d.name.startswith(".")}
    class_files = {cls: files for cls, files in class_files.items() if files}
    if not class_files:
        raise CnnlabError(f"image folder {root} holds no images; expected one subfolder of images per class")
    if len(class_files) < 2:
        raise CnnlabError(
            f"image folder {root} has one class ({next(iter(class_files))}); a classifier needs at least two "
            "subfolders of images"
        )

    resized: list[np.ndarray] = []  # each [S, S, 3] uint8; decoded and shrunk one at a time to bound memory
    labels: list[int] = []
    all_grayscale = True
    corrupt: list[str] = []
    for label, files in enumerate(class_files.values()):
        for path in files:
            try:
                with Image.open(path) as img:
                    grayscale = img.mode in GRAYSCALE_MODES
                    rgb = fit_image(img.convert("RGB"), image_size)
            except (OSError, UnidentifiedImageError, ValueError, SyntaxError):  # PIL's decoders raise all of these
                corrupt.append(str(path.relative_to(root)))
                continue
            resized.append(np.asarray(rgb))
            labels.append(label)
            all_grayscale &= grayscale
    if corrupt:
        shown = ", ".join(corrupt[:5]) + (f" and {len(corrupt) - 5} more" if len(corrupt) > 5 else "")
        warnings.warn(f"skipped {len(corrupt)} unreadable image file(s) in {root}: {shown}", stacklevel=2)
    if not resized:
        raise CnnlabError(f"none of the image files in {root} could be read")

    tensor = torch.from_numpy(np.stack(resized)).permute(0, 3, 1, 2)  # [N, 3, S, S]
    # A grayscale image converted to RGB has three equal channels; keep one when every image is grayscale.
    tensor = (tensor[:, :1] if all_grayscale else tensor).contiguous()  # [N, C, S, S]
    label_tensor = torch.tensor(labels, dtype=torch.int64)
    train, test = stratified_indices(label_tensor, TEST_FRACTION, SPLIT_SEED)
    return ImageDataset(
        name=name or f"imagefolder:{root}",
        train_images=tensor[train],
        train_labels=label_tensor[train],
        test_images=tensor[test],
        test_labels=label_tensor[test],
        classes=list(class_files),
        hflip=True,  # photos of objects are mirror-symmetric as a class; use dataclasses.replace for text or digits
    )
