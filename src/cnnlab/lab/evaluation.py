"""A run's evaluation for its page: test accuracy, per-class accuracy and the confusion matrix (through
`cnnlab.inference.prediction.evaluate`, which writes eval.json and confusion.png), and a grid of misclassified test
images (misclassified.png), all in the run directory."""

from __future__ import annotations

from pathlib import Path

from cnnlab.lab import predict
from cnnlab.lab.views import serialized

GRID = 24  # misclassified images shown


@serialized
def evaluate_run(run_dir: Path, cache: predict.Cache) -> dict:
    """`evaluate` once (autocast and test-time flips as the run trained): its predictions give the per-class
    numbers, the confusion matrix and the list of misclassified test images, whose first GRID the grid shows."""
    from cnnlab.inference.prediction import evaluate
    from cnnlab.lab.follow import clean

    loaded = predict.load(run_dir)  # refuses a run without final weights (409) before evaluate would
    result = evaluate(run_dir)
    data = predict.run_dataset(loaded.config.dataset, loaded.config.data_dir)
    wrong = [(data.test_images[i], int(data.test_labels[i]), guess) for i, guess in result["misclassified"][:GRID]]
    if wrong:
        draw_grid(wrong, data.classes, run_dir / "misclassified.png")
    return clean(
        {
            **result,
            "confusion_png": "confusion.png",
            "misclassified": len(wrong),  # how many the grid shows (at most GRID); eval.json lists them all
            "misclassified_png": "misclassified.png" if wrong else None,
        }
    )


def draw_grid(wrong: list, classes, path: Path) -> None:
    from cnnlab.notebook import use_file_backend

    use_file_backend()
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
