"""Inspect through the API on a small trained digits run: the class the Grad-CAM explains is echoed, can be chosen
(by name or index, a bad one is a 400 with one line), and its overlay is captum's Grad-CAM for that class; feature
maps come back scaled up by whole factors with nearest-neighbour pixels."""

import io

import numpy as np
import pytest
import torch
from PIL import Image

from cnnlab.lab.predict import MAP_TILE, overlay


@pytest.fixture
def inspect_client(digits_run, make_client):
    root, run = digits_run
    return make_client(root), run


def png_array(client, url: str) -> np.ndarray:
    response = client.get(url)
    assert response.status_code == 200, url
    return np.asarray(Image.open(io.BytesIO(response.content)))


def test_image(client, run: str, index: int) -> torch.Tensor:
    """Test image `index` as uint8 [1, H, W], as the preview shows it."""
    return torch.from_numpy(png_array(client, f"/api/test-image?run={run}&index={index}").copy())[None]


test_image.__test__ = False  # a helper, not a test


def captum_gradcam(run_dir, image: torch.Tensor, target: int) -> torch.Tensor:
    """Grad-CAM of the last stage for `target`, straight from captum: the reference the lab's overlay must match."""
    from captum.attr import LayerAttribution, LayerGradCam

    from cnnlab.data import normalize
    from cnnlab.visualization.activations import stage_names
    from cnnlab.visualization.loading import load_run

    run = load_run(run_dir)
    inputs = normalize(image[None], run.data["mean"], run.data["std"]).requires_grad_(True)
    layer = run.model.get_submodule(stage_names(run.model)[-1])
    cam = LayerGradCam(run.model.eval(), layer).attribute(inputs, target=target, relu_attributions=True)
    cam = LayerAttribution.interpolate(cam.detach(), tuple(image.shape[-2:]), interpolate_mode="bilinear")[0, 0]
    cam = cam.clamp_min(0)
    return cam / cam.max().clamp_min(1e-12)


def test_gradcam_explains_the_chosen_class(inspect_client, digits_run):
    client, run = inspect_client
    form = {"run": run, "test_index": "5"}
    top = client.post("/api/predict", data=form).json()
    first, second = top["top"][0], top["top"][1]
    assert top["target"] == {
        "index": int(first["class"]),  # digits' classes are "0" to "9", in order
        "class": first["class"],
        "probability": pytest.approx(first["probability"], abs=1e-6),
        "rank": 1,
    }
    by_name = client.post("/api/predict", data={**form, "target": second["class"]}).json()
    by_index = client.post("/api/predict", data={**form, "target": str(int(second["class"]))}).json()
    assert by_name["target"] == by_index["target"]
    assert by_name["target"]["class"] == second["class"] and by_name["target"]["rank"] == 2
    assert by_name["target"]["probability"] == pytest.approx(second["probability"], abs=1e-6)
    assert by_name["top"] == top["top"]  # the prediction itself does not change

    image = test_image(client, run, 5)
    cams = {t: captum_gradcam(digits_run[0] / run, image, t) for t in (int(first["class"]), int(second["class"]))}
    assert (cams[int(first["class"])] - cams[int(second["class"])]).abs().max() > 0.1  # two different pictures
    for body, cam in ((top, cams[int(first["class"])]), (by_name, cams[int(second["class"])])):
        shown = png_array(client, body["gradcam"]).astype(int)
        assert np.abs(shown - np.asarray(overlay(image, cam)).astype(int)).max() <= 1  # PNG rounding at most
    assert np.abs(png_array(client, top["gradcam"]).astype(int) - png_array(client, by_name["gradcam"])).max() > 50


@pytest.mark.parametrize("target", ["eleven", "10", "-1", "3.0", " 3"])
def test_a_bad_target_is_a_400_with_one_line(inspect_client, target):
    client, run = inspect_client
    response = client.post("/api/predict", data={"run": run, "test_index": "0", "target": target})
    error = response.json()["error"]
    assert response.status_code == 400 and "\n" not in error
    assert error.startswith(f"unknown target class {target!r}: give a class name (0, 1, 2,") and "0 to 9" in error


def test_a_target_sent_as_a_file_is_a_400(inspect_client):
    client, run = inspect_client
    response = client.post(
        "/api/predict", data={"run": run, "test_index": "0"}, files={"target": ("t.txt", b"3", "text/plain")}
    )
    assert response.status_code == 400 and response.json() == {"error": "'target' is a class name or index, not a file"}


def test_feature_maps_are_scaled_up_with_sharp_pixels(inspect_client):
    client, run = inspect_client
    body = client.post("/api/predict", data={"run": run, "test_index": "5"}).json()
    for entry in [*body["feature_maps"], body["filters"]]:  # filters: [out, in, kh, kw], drawn as out maps
        channels, h, w = entry["shape"][0], *entry["shape"][-2:]
        scale = -(-MAP_TILE // max(h, w))
        columns, rows = min(8, channels), -(-min(channels, 32) // 8)
        sheet = png_array(client, entry["url"])
        assert sheet.shape == (rows * (h + 1) * scale, columns * (w + 1) * scale), entry
        assert h * scale >= MAP_TILE and (h * scale < 2 * MAP_TILE or scale == 1)
        small = sheet[::scale, ::scale]  # every scale x scale block is one source pixel
        assert np.array_equal(np.repeat(np.repeat(small, scale, 0), scale, 1), sheet), entry


def test_inspect_names_its_runtime_and_both_give_the_same_top_classes(inspect_client, monkeypatch, tmp_path):
    """Inspect's runtime is `cnnlab predict`'s (auto by default); torch and onnxruntime agree on the top classes."""
    pytest.importorskip("onnxruntime")
    from cnnlab.inference import runtime

    monkeypatch.setenv("CNNLAB_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setattr(runtime, "measure", lambda forwards, x: {"torch": 1.0, "onnxruntime": 0.25})
    client, run = inspect_client
    auto = client.post("/api/predict", data={"run": run, "test_index": "3"}).json()
    assert auto["runtime"] == "onnxruntime"
    assert auto["runtime_reason"] == "4.0x faster than torch here, measured once and cached"
    torch_top = client.post("/api/predict", data={"run": run, "test_index": "3", "runtime": "torch"}).json()
    assert torch_top["runtime"] == "torch"
    assert [t["class"] for t in auto["top"]] == [t["class"] for t in torch_top["top"]]
    for ours, theirs in zip(auto["top"], torch_top["top"]):
        assert ours["probability"] == pytest.approx(theirs["probability"], abs=1e-4)
    response = client.post("/api/predict", data={"run": run, "test_index": "3", "runtime": "fast"})
    assert response.status_code == 400 and response.json()["error"].startswith("unknown runtime 'fast'")


def test_the_inspect_page_offers_the_declared_runtimes(inspect_client):
    client, _ = inspect_client
    page = client.get("/inspect").text
    assert '<option value="auto">auto</option><option value="torch">torch</option>' in page
