"""Datasets held in memory as uint8 tensors, and batched normalisation and augmentation for the trainer.

data = load_dataset("fashion-mnist")          # or "digits" (offline), "cifar10", "imagefolder:PATH"...
train_x, train_y, val_x, val_y = split_validation(data.train_images, data.train_labels, 0.1, seed=0)
x = normalize(train_x[:256], data.mean, data.std)  # float32 [256, 1, 28, 28]
x = random_hflip(random_crop(x, 4, generator), generator)
"""

from cnnlab.data.augment import PixelPCA, normalize, pca_color, pixel_pca, random_crop, random_hflip
from cnnlab.data.catalog import list_datasets, load_dataset
from cnnlab.data.dataset import ImageDataset, channel_stats, default_cache_dir, split_validation

__all__ = [
    "ImageDataset",
    "PixelPCA",
    "channel_stats",
    "default_cache_dir",
    "list_datasets",
    "load_dataset",
    "normalize",
    "pca_color",
    "pixel_pca",
    "random_crop",
    "random_hflip",
    "split_validation",
]
