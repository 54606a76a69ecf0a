"""Smoke test of bench/inference.py's onnxruntime comparison in quick mode: it runs end to end, writes its JSON
record with every path, batch and ratio, and the fp32 paths agree with the eager model. No timing is asserted:
the timings of a quick run on a shared machine mean nothing."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install 'cnnlab[export]')")

PATHS = ["cnnlab fp32", "cnnlab auto", "cnnlab int8", "onnxruntime fp32", "onnxruntime int8"]


@pytest.mark.slow
def test_quick_onnxruntime_comparison_writes_its_record(tmp_path, monkeypatch):
    from bench import common, inference

    monkeypatch.setattr(common, "RESULTS", tmp_path)
    returned = inference.onnxruntime_comparison(quick=True)
    record = json.loads((tmp_path / "inference_onnxruntime-quick.json").read_text())
    assert record["benchmark"] == "inference_onnxruntime-quick" and record["quick"] is True
    assert record["machine"]["cpus"] >= 1 and record["onnxruntime_threads"] >= 1
    assert list(record["models"]) == ["resnet18", "resnet20", "mobilenet_v3_small"]
    inputs = {name: result["input"] for name, result in record["models"].items()}
    assert inputs == {"resnet18": [3, 64, 64], "resnet20": [1, 28, 28], "mobilenet_v3_small": [3, 64, 64]}
    for name, result in record["models"].items():
        assert list(result["agreement"]) == PATHS
        for path in ("cnnlab fp32", "onnxruntime fp32"):
            check = result["agreement"][path]
            assert check["top1_equal"] and check["top1_agreement"] == 1.0, (name, path)
            assert check["max_relative_logit_diff"] < inference.FP32_TOLERANCE, (name, path)
        for path in ("cnnlab int8", "onnxruntime int8"):
            assert 0.0 <= result["agreement"][path]["top1_agreement"] <= 1.0
            assert result["agreement"][path]["max_abs_logit_diff"] > 0  # int8 really rounds: not the fp32 model
        assert list(result["batches"]) == ["1", "8"]  # JSON keys
        for measured in result["batches"].values():
            assert list(measured["paths"]) == PATHS
            speeds = {path: m["images_per_s"] for path, m in measured["paths"].items()}
            best, best_float = measured["best"], measured["best_float"]
            assert best["cnnlab"] == max(PATHS[:3], key=speeds.get)
            assert best["onnxruntime"] == max(PATHS[3:], key=speeds.get)
            assert best["ratio"] == pytest.approx(speeds[best["cnnlab"]] / speeds[best["onnxruntime"]])
            assert best_float["cnnlab"] in ("cnnlab fp32", "cnnlab auto")
            assert best_float["onnxruntime"] == "onnxruntime fp32"
            auto = measured["auto"]  # --runtime auto's own pick between cnnlab auto and onnxruntime fp32
            picked = "cnnlab auto" if auto["runtime"] == "torch" else "onnxruntime fp32"
            assert auto["reason"].endswith("measured once and cached")
            assert auto["ratio_to_onnxruntime_best"] == pytest.approx(speeds[picked] / speeds["onnxruntime fp32"])
            assert auto["right"] == (speeds[picked] == max(speeds["cnnlab auto"], speeds["onnxruntime fp32"]))
    assert returned["table"] == record["table"]
    assert record["table"].count("| resnet20 1x28x28 |") == 2  # batch 1 and 8
    assert "auto: pick, ÷ ORT best float" in record["table"]
