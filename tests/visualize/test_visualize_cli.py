"""`cnnlab visualize`: the PNGs it writes, and one clear line with exit code 2 for each kind of bad input."""

import json
import shutil

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from cnnlab.cli import main


def run_cli(capsys, *argv):
    code = main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def png_size(path) -> tuple[int, int]:
    with Image.open(path) as image:
        assert image.format == "PNG"
        return image.size


def quadrant_image(path, row: int, column: int, mode: str = "L") -> None:
    """A 32x32 grey test image with the patch in one quadrant (RGB mode: a colour one)."""
    image = np.full((32, 32), 20, dtype=np.uint8)
    image[row * 16 + 4 : row * 16 + 12, column * 16 + 4 : column * 16 + 12] = 230
    if mode == "RGB":
        image = np.stack([image, np.zeros_like(image), image // 2], axis=-1)  # magenta: not grey
    Image.fromarray(image, mode=mode).save(path)


def test_from_test_writes_every_picture(quadrant_run, tmp_path, capsys):
    out = tmp_path / "pictures"
    code, stdout, stderr = run_cli(capsys, "visualize", quadrant_run.run_dir, "--from-test", 2, "--out", out)
    assert code == 0, stderr
    names = sorted(path.name for path in out.iterdir())
    assert len(names) == 7 and "filters.png" in names
    stems = sorted(name[len("gradcam-") :] for name in names if name.startswith("gradcam-"))
    assert len(stems) == 2 and all(stem.startswith("test") for stem in stems)
    assert names == sorted(
        ["filters.png", *(f"{kind}-{stem}" for kind in ("featuremaps", "gradcam", "saliency") for stem in stems)]
    )
    assert stdout.count("wrote ") == 7
    # simple_cnn: input + 2 stages = 3 rows of 8 panels; three panels side by side for the maps.
    width, height = png_size(out / f"featuremaps-{stems[0]}")
    assert width >= 800 and height >= 350
    width, height = png_size(out / f"gradcam-{stems[0]}")
    assert width >= 600 and 200 <= height < width
    width, height = png_size(out / "filters.png")  # 16 kernels: 2 rows of 8
    assert width >= 600 and height >= 150


def test_image_files_target_and_default_out(quadrant_run, tmp_path, capsys):
    quadrant_image(tmp_path / "corner.png", 1, 1)
    code, _, stderr = run_cli(
        capsys,
        "visualize",
        quadrant_run.run_dir,
        tmp_path / "corner.png",
        "--show",
        "gradcam,featuremaps",
        "--target",
        0,
        "--layer",
        "conv1",
    )
    assert code == 0, stderr
    written = sorted(path.name for path in (quadrant_run.run_dir / "visualize").iterdir())
    assert "gradcam-corner.png" in written and "featuremaps-corner.png" in written
    assert png_size(quadrant_run.run_dir / "visualize" / "featuremaps-corner.png")[1] < 350  # input + 1 layer


def test_filters_alone_without_images(quadrant_run, tmp_path, capsys):
    code, stdout, _ = run_cli(capsys, "visualize", quadrant_run.run_dir, "--out", tmp_path)
    assert code == 0 and sorted(p.name for p in tmp_path.iterdir()) == ["filters.png"]


def test_erf_calls_the_effective_receptive_field(quadrant_run, tmp_path, capsys):
    code, _, stderr = run_cli(capsys, "visualize", quadrant_run.run_dir, "--show", "erf", "--out", tmp_path)
    assert code == 0, stderr
    assert [p.name for p in tmp_path.iterdir()] == ["erf.png"] and png_size(tmp_path / "erf.png")[0] >= 300


def test_imagenet_checkpoint_with_torchvision_preprocessing(tmp_path, capsys):
    torch.manual_seed(0)
    weights = tmp_path / "squeezenet1_1-b8a52dc0.pth"  # the file name picks torchvision's preprocessing
    torch.save(torchvision.models.squeezenet1_1().state_dict(), weights)
    photo = np.random.default_rng(0).integers(0, 256, (300, 400, 3), dtype=np.uint8)
    Image.fromarray(photo).save(tmp_path / "photo.jpg")
    code, _, stderr = run_cli(
        capsys,
        "visualize",
        tmp_path / "photo.jpg",
        "--model",
        "squeezenet1_1",
        "--weights",
        weights,
        "--show",
        "gradcam,saliency",
        "--out",
        tmp_path / "out",
    )
    assert code == 0, stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["gradcam-photo.png", "saliency-photo.png"]


def broken_data_run(quadrant_run, tmp_path):
    """A copy of the run whose image folder is gone."""
    run_dir = tmp_path / "moved-run"
    shutil.copytree(quadrant_run.run_dir, run_dir)
    config = json.loads((run_dir / "config.json").read_text())
    config["dataset"] = f"imagefolder:{tmp_path / 'deleted-images'}"
    (run_dir / "config.json").write_text(json.dumps(config))
    return run_dir


@pytest.mark.parametrize(
    "case, expected",
    [
        ("layer", "simple_cnn has no layer 'conv9'; its layers are: conv1, "),
        ("target", "--target 4 is out of range: the model has 4 classes, 0 to 3"),
        ("colour", "is in colour but simple_cnn takes 1 grey channel"),
        ("missing data", "--from-test needs the test images of imagefolder:"),
        ("show", "unknown --show 'heat'; choose from: filters,featuremaps,gradcam,saliency,erf"),
        ("all right", "simple_cnn classifies every test image correctly"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(quadrant_run, tmp_path, capsys, case, expected):
    quadrant_image(tmp_path / "grey.png", 0, 1)
    quadrant_image(tmp_path / "colour.png", 0, 1, mode="RGB")
    run, grey = quadrant_run.run_dir, tmp_path / "grey.png"
    if case == "all right" and json.loads((run / "results.json").read_text())["test_accuracy"] < 1:
        pytest.skip("needs a run that is right on every test image; this torch build trained a less perfect one")
    argv = {
        "layer": [run, grey, "--layer", "conv9"],
        "target": [run, grey, "--target", 4],
        "colour": [run, tmp_path / "colour.png"],
        "missing data": [broken_data_run(quadrant_run, tmp_path), "--from-test", 3],
        "show": [run, grey, "--show", "gradcam,heat"],
        "all right": [run, "--from-test", 2, "--misclassified"],  # the quadrant model is 100% right
    }[case]
    code, _, stderr = run_cli(capsys, "visualize", *argv, "--out", tmp_path / "out")
    assert code == 2
    assert stderr.count("\n") == 1 and stderr.startswith("cnnlab: error: ")
    assert expected in stderr
    assert not (tmp_path / "out").exists()  # checked before anything is written
