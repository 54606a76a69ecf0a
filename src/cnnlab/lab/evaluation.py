"""A run's evaluation for its page: test accuracy, per-class accuracy and the confusion matrix (through
`cnnlab.inference.prediction.evaluate`, which writes eval.json and confusion.png), and a grid of misclassified test
images (misclassified.png), all in the run directory."""

from __future__ import annotations

from pathlib import Path

import torch

from cnnlab.lab import predict
from cnnlab.lab.views import serialized

GRID = 24  # misclassified images shown


@serialized
def evaluate_run(run_dir: Path, cache: predict.Cache) -> dict:
    from cnnlab.inference.prediction import evaluate
    from cnnlab.lab.follow import clean

    loaded = predict.load(run_dir)  # refuses a run without final weights (409) before evaluate would
    result = evaluate(run_dir)
    data = predict._dataset(loaded.config.dataset, loaded.config.data_dir)
    wrong = misclassified(loaded, data)
    if wrong:
        draw_grid(wrong, data.classes, run_dir / "misclassified.png")
    return clean(
        {
            **result,
            "confusion_png": "confusion.png",
            "misclassified": len(wrong),
            "misclassified_png": "misclassified.png" if wrong else None,
        }
    )


@torch.no_grad()
def misclassified(loaded, data, limit: int = GRID) -> list[tuple[torch.Tensor, int, int]]:
    """The first `limit` test images the model gets wrong: (image, true class, predicted class)."""
    from cnnlab.data import normalize

    found = []
    for start in range(0, len(data.test_images), 256):
        images = data.test_images[start : start + 256]
        predicted = loaded.model(normalize(images, loaded.data["mean"], loaded.data["std"])).argmax(dim=1)
        labels = data.test_labels[start : start + 256]
        for i in (predicted != labels).nonzero().flatten().tolist():
            found.append((images[i], int(labels[i]), int(predicted[i])))
            if len(found) == limit:
                return found
    return found


def draw_grid(wrong: list, classes, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = 8
    rows = -(-len(wrong) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(columns * 1.1, rows * 1.3), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (image, truth, guess) in zip(axes.flat, wrong):
        array = image.numpy()
        ax.imshow(array[0] if array.shape[0] == 1 else array.transpose(1, 2, 0), cmap="gray")
        ax.set_title(f"{classes[truth]}→{classes[guess]}", fontsize=7, color="#b00")
    figure.suptitle("misclassified test images (true → predicted)", fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)
