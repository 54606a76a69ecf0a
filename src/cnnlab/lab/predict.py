"""Inspect: an image (upload, canvas drawing or test image) through a run's model: top-k, Grad-CAM, saliency and
feature maps, drawn as PNGs into RUNS/.lab/cache and served from /files.

Uploads are decoded by Pillow with its decompression-bomb guard made strict (its warning is an error here), after a
size limit the server applies before reading further.
"""

from __future__ import annotations

import functools
import io
import secrets
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from cnnlab.errors import CnnlabError
from cnnlab.lab.security import LabRequestError, relative_name
from cnnlab.lab.views import serialized
from cnnlab.visualization.images import JET_ALPHA, heat_colours, image_array, scale_each, tile_sheet
from cnnlab.visualization.kernels import filter_tiles

MAX_UPLOAD_BYTES = 10 * 1024 * 1024
CACHE_DIR = Path(".lab") / "cache"
CACHE_KEEP = 300  # generated PNGs kept; older ones are deleted
SHOW_SIDE = 168  # overlays are drawn this many pixels wide
MAP_TILE = 64  # a feature map or filter is scaled up (by a whole factor) to at least this many pixels a side


def decode_image(data: bytes, in_chans: int, image_size: int) -> torch.Tensor:
    """Upload bytes as uint8 [C, H, W] at the model's size; LabRequestError (400/413) for anything else."""
    if len(data) > MAX_UPLOAD_BYTES:
        raise LabRequestError(f"the image is {len(data):,} bytes; the limit is {MAX_UPLOAD_BYTES:,}", 413)
    if not data:
        raise LabRequestError("the image is empty", 400)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                image.load()
                converted = image.convert("L" if in_chans == 1 else "RGB")
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise LabRequestError(f"the image is too large to decode safely ({error})", 413) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise LabRequestError("the upload is not an image Pillow can read (PNG, JPEG, BMP, GIF, ...)", 400) from None
    array = np.asarray(converted.resize((image_size, image_size), Image.BILINEAR), dtype=np.uint8)
    array = array[None] if array.ndim == 2 else array.transpose(2, 0, 1)
    return torch.from_numpy(array.copy())


@functools.lru_cache(maxsize=4)
def _loaded(run_dir: str, stamp: float):
    from cnnlab.visualization.loading import run_subject

    return run_subject(run_dir)


def subject(run_dir: Path):
    """The run as the visualisation functions take it (model, classes, preprocessing), cached until its weights
    file changes, so one prediction's Grad-CAM, saliency, feature maps and filters share one loaded model."""
    weights = run_dir / "model.safetensors"
    if not weights.is_file():
        raise LabRequestError(f"run '{run_dir.name}' has no model.safetensors yet (still training, or stopped)", 409)
    return _loaded(str(run_dir), weights.stat().st_mtime)


def load(run_dir: Path):
    """The run's LoadedRun (config, data metadata, model in eval mode), from the same cache."""
    return subject(run_dir).run


@functools.lru_cache(maxsize=2)
def run_dataset(name: str, data_dir: str | None):
    """A run's dataset (its test split is what Inspect and the evaluation grid show), kept for the next request."""
    from cnnlab.data import load_dataset

    return load_dataset(name, data_dir, download=False)


def test_image(run, index: int) -> tuple[torch.Tensor, str]:
    """Test image `index` of the run's dataset (uint8 [C, H, W]) and its true class."""
    data = run_dataset(run.config.dataset, run.config.data_dir)
    if not 0 <= index < len(data.test_images):
        raise LabRequestError(f"test image {index} does not exist: the test split has {len(data.test_images)}", 404)
    return data.test_images[index], data.classes[int(data.test_labels[index])]


def png_bytes(image: torch.Tensor) -> bytes:
    """uint8 [C, H, W] as PNG bytes."""
    buffer = io.BytesIO()
    Image.fromarray(image_array(image)).save(buffer, format="PNG")
    return buffer.getvalue()


def overlay(image: torch.Tensor, heat: torch.Tensor) -> Image.Image:
    """A [H, W] map in [0, 1] drawn over the image with matplotlib's 'jet' colours, half transparent."""
    base = Image.fromarray(image_array(image)).convert("RGB").resize((SHOW_SIDE, SHOW_SIDE), Image.NEAREST)
    coloured = Image.fromarray(heat_colours(heat)).resize((SHOW_SIDE, SHOW_SIDE), Image.BILINEAR)
    return Image.blend(base, coloured, JET_ALPHA)


def _grid(tiles: torch.Tensor) -> Image.Image:
    """Up to 32 tiles in [0, 1] (grey [n, h, w] or RGB [n, h, w, 3]) as one sheet, scaled up by a whole factor
    with nearest-neighbour pixels, so an 8x8 map stays 8x8 sharp squares, not a blur."""
    tiles = tiles[:32]
    grid = Image.fromarray(tile_sheet(tiles))
    scale = -(-MAP_TILE // max(tiles.shape[1:3]))
    return grid.resize((grid.width * scale, grid.height * scale), Image.NEAREST)


class Cache:
    """RUNS/.lab/cache: the PNGs a prediction draws, named at random, served at /files/.lab/cache/<name>."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.folder = root / CACHE_DIR

    def save(self, image: Image.Image, label: str) -> str:
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{secrets.token_hex(8)}-{label}.png"
        image.save(path)
        self._prune()
        return f"/files/{relative_name(self.root, path)}"

    def _prune(self) -> None:
        files = sorted(self.folder.glob("*.png"), key=lambda p: p.stat().st_mtime)
        for old in files[:-CACHE_KEEP]:
            old.unlink(missing_ok=True)


def resolve_target(text: object, classes: list[str]) -> int | None:
    """The class index the overlays explain: None (the top class) for no `target` field, else a class name or
    an index. A name wins over an index, so an image folder's class "10" means that class, not index 10."""
    if text is None or text == "":
        return None
    if not isinstance(text, str):
        raise LabRequestError("'target' is a class name or index, not a file", 400)
    if text in classes:
        return classes.index(text)
    if text.isdigit() and int(text) < len(classes):
        return int(text)
    names = ", ".join(classes[:12]) + (", ..." if len(classes) > 12 else "")
    raise LabRequestError(
        f"unknown target class {text[:40]!r}: give a class name ({names}) or an index 0 to {len(classes) - 1}", 400
    )


def explained(probabilities: torch.Tensor, classes: list[str], index: int) -> dict:
    """The class an overlay explains, with its probability and rank (1 = the top class)."""
    p = float(probabilities[index])
    rank = 1 + int((probabilities > probabilities[index]).sum())
    return {"index": index, "class": classes[index], "probability": p, "rank": rank}


@serialized
def predict(
    run, image: torch.Tensor, cache: Cache, top_k: int = 5, target: object = None, runtime: str | None = None
) -> dict:
    """Top-k classes, Grad-CAM and saliency overlays and per-stage feature maps of one uint8 image. `target` (a
    class name or index; None: the top class) is the class both overlays explain, echoed as result["target"].
    `runtime` (None: `cnnlab predict`'s default, auto) computes the top classes, as `cnnlab predict --runtime`;
    the overlays need gradients, so they stay in torch."""
    from cnnlab.inference import runtime as runtimes
    from cnnlab.inference.prediction import top_classes
    from cnnlab.options.commands import command

    data = run.data
    index = resolve_target(target, data["classes"])  # a bad target costs no forward pass
    requested = runtime or command("predict").option("runtime").default
    try:
        choice = runtimes.choose_for_run(requested, run.run_dir, 1, lambda: run.model)
    except CnnlabError as error:  # an unknown runtime, or onnxruntime asked for and not installed
        raise LabRequestError(str(error), 400) from None
    batch = _inputs(run, image)
    with torch.no_grad():
        logits = runtimes.onnx_forward(run.run_dir)(batch) if choice.runtime == "onnxruntime" else run.model(batch)
    top = top_classes(logits, data["classes"], ["image"], top_k)[0]["top"]
    index = int(logits.argmax()) if index is None else index
    shown = Image.open(io.BytesIO(png_bytes(image))).resize((SHOW_SIDE, SHOW_SIDE), Image.NEAREST)
    result = {
        "top": [{"class": name, "probability": p} for name, p in top],
        "target": explained(torch.softmax(logits[0].float(), 0), data["classes"], index),
        "input": cache.save(shown, "input"),
        **choice.fields(),
    }
    for method in ("gradcam", "saliency"):
        heat = attribution_map(subject(run.run_dir), image, method, index)
        result[method] = cache.save(overlay(image, heat), method)
    result["feature_maps"] = [
        {"layer": name, "shape": list(maps.shape), "url": cache.save(_grid(scale_each(maps)), "maps")}
        for name, maps in stage_maps(subject(run.run_dir), image).items()
    ]
    layer, weights = first_filters(subject(run.run_dir))
    result["filters"] = {
        "layer": layer,
        "shape": list(weights.shape),
        "url": cache.save(_grid(filter_tiles(weights)), "filters"),  # as `cnnlab visualize` draws them: RGB or grey
    }
    return result


@serialized
def run_layers(run) -> dict:
    """The run's layer table (as the Design page and the zoo show one), measured on its model at its input size:
    the layers Inspect can show one by one."""
    from cnnlab.lab.views import summary_view
    from cnnlab.measure import summarize

    data = run.data
    return summary_view(summarize(run.model, (data["in_chans"], data["image_size"], data["image_size"])))


@serialized
def layer_view(run, image: torch.Tensor, layer: str, cache: Cache, target: object = None) -> dict:
    """One layer of the run's model for one uint8 image: its output (maps, or a vector drawn as a strip), its
    kernels when it is a convolution, and Grad-CAM weighed at it when its output is maps. A layer that has no
    kernels or no maps says so in `filters_note` / `gradcam_note` rather than failing."""
    import cnnlab
    from cnnlab.visualization.activations import resolve_layers
    from cnnlab.visualization.kernels import conv_weights

    model = subject(run.run_dir).model
    module = resolve_layers(model, [layer])[layer]  # UnknownLayerError lists the layers
    output = cnnlab.feature_maps(subject(run.run_dir), image[None], [layer])[layer][0]
    if output.dim() == 3:
        maps = output
    else:  # a vector: its values as one strip, repeated down to an eighth of its length so it can be seen
        values = output.reshape(1, 1, -1)
        maps = values.expand(1, max(1, -(-values.shape[-1] // 8)), values.shape[-1])
    result = {
        "layer": layer,
        "kind": type(module).__name__,
        "shape": list(output.shape),
        "maps": cache.save(_grid(scale_each(maps)), "layer"),
    }
    if isinstance(module, torch.nn.Conv2d):
        _, weights = conv_weights(model, layer)
        result["filters"] = {"shape": list(weights.shape), "url": cache.save(_grid(filter_tiles(weights)), "kernels")}
    else:
        result["filters_note"] = f"a {type(module).__name__} has no kernels to draw"
    if output.dim() == 3:
        index = resolve_target(target, run.data["classes"])
        if index is None:
            with torch.no_grad():
                index = int(model(_inputs(run, image)).argmax())
        heat = attribution_map(subject(run.run_dir), image, "gradcam", index, layer)
        result["gradcam"] = cache.save(overlay(image, heat), "gradcam")
        result["target"] = run.data["classes"][index]
    else:
        result["gradcam_note"] = f"its output is {len(output):,} numbers, not maps: Grad-CAM weighs maps"
    return result


def _inputs(run, image: torch.Tensor) -> torch.Tensor:
    from cnnlab.data import normalize

    return normalize(image[None], run.data["mean"], run.data["std"])


def first_filters(source) -> tuple[str, torch.Tensor]:
    """The first conv layer's kernels [out, in, kh, kw], through cnnlab.visualization.filters; shown averaged over
    the input channels."""
    from cnnlab.visualization import filters

    name, weights = filters(source)
    return name, weights.detach().float()


def attribution_map(source, image: torch.Tensor, method: str, target: int, layer: str | None = None) -> torch.Tensor:
    """[H, W] in [0, 1] for one uint8 image, through cnnlab.attribution (the visualisation package); `layer`:
    Grad-CAM's (None: the last stage)."""
    import cnnlab

    return cnnlab.attribution(source, image[None], method=method, target=target, layer=layer)[0].detach().float()


def stage_maps(source, image: torch.Tensor) -> dict[str, torch.Tensor]:
    """Feature maps [C, h, w] of one uint8 image per stage, through cnnlab.feature_maps."""
    import cnnlab

    maps = cnnlab.feature_maps(source, image[None])
    return {name: value[0].detach() for name, value in maps.items() if value.dim() == 4}
