"""cnnlab.reporting: one way to format a number and draw a table, version stamps, output folders, and every
results file (experiments, compare, bench) written through the atomic writer."""

from __future__ import annotations

import csv
import importlib.metadata
import io
import json
import re

import pytest
import torch

import cnnlab
from cnnlab import files, reporting
from cnnlab.errors import CnnlabError
from cnnlab.experiments.common import ExperimentOptions, ExperimentResult, write_result
from cnnlab.workflows.comparison import format_row, write_outputs

RESULT = {
    "model": "lenet5",
    "params": 44_426,
    "macs": 429_000,
    "test_accuracy": 0.9751,
    "train_seconds": 12.34,
    "train_images_per_second": 3141.6,
    "epochs": 2,
    "batch_size": 64,
    "optimizer": "sgd",
    "lr": 0.1,
}


def test_metric_cells_by_column():
    cells = {column: reporting.format_metric(column, value) for column, value in RESULT.items()}
    assert cells == {
        "model": "lenet5",
        "params": "44,426",
        "macs": "0.43M",
        "test_accuracy": "97.51%",
        "train_seconds": "12.3s",
        "train_images_per_second": "3,142",
        "epochs": "2",
        "batch_size": "64",
        "optimizer": "sgd",
        "lr": "0.1",
    }
    assert reporting.format_metric("test_loss", 0.123456) == "0.1235"
    assert reporting.format_metric("accuracy_drop", 0.62343) == "62.34%"  # a drop in accuracy's units (drop-block)
    assert reporting.format_metric("test_accuracy_pct", 91.2033) == "91.20"  # a percentage column: 2 places
    assert reporting.format_metric("test_accuracy", None) == "-" == reporting.format_metric("test_loss", float("nan"))
    assert format_row(RESULT) == ["lenet5", "44,426", "0.43M", "97.51%", "12.3s", "3,142"]


def test_number_cells_by_type():
    assert [reporting.format_number(v) for v in (1_234_567, 12, 1234.5, 0.0123456, True, None, "a|b")] == [
        "1,234,567",
        "12",
        "1,234",
        "0.01235",
        "True",
        "",
        "a|b",
    ]


def test_markdown_table_escapes_pipes_and_csv_keeps_raw_values():
    table = reporting.markdown_table(["name", "value"], [["a|b", 1_000], ["c", 0.5]])
    assert table == "| name | value |\n|---|---|\n| a\\|b | 1,000 |\n| c | 0.5 |"
    text = reporting.csv_text(["name", "value"], [{"name": "a", "value": 0.123456789, "ignored": 1}])
    assert list(csv.DictReader(io.StringIO(text))) == [{"name": "a", "value": "0.123456789"}]


def test_rich_table_has_the_rows():
    from rich.console import Console

    console = Console(file=io.StringIO(), width=80)
    console.print(reporting.rich_table(["model", "acc"], [["lenet5", "97.51%"]], title="t"))
    assert "lenet5" in console.file.getvalue() and "97.51%" in console.file.getvalue()


def test_versions_and_output_folders():
    stamp = reporting.versions()
    assert stamp["cnnlab"] == cnnlab.__version__ == importlib.metadata.version("cnnlab")
    assert stamp["torch"] == torch.__version__
    folder = reporting.timestamped_dir("compare", "folder:/data/x", root="runs")
    assert re.fullmatch(r"runs/compare-folder-_data_x-\d{8}-\d{6}", folder.as_posix())


@pytest.fixture
def atomic_paths(monkeypatch):
    """The names of the files written through cnnlab.files.atomic_write while the test runs."""
    written = []
    real = files.atomic_write

    def recording(path, write):
        written.append(path.name)
        return real(path, write)

    monkeypatch.setattr(files, "atomic_write", recording)
    return written


def test_experiment_results_are_written_atomically(tmp_path, atomic_paths):
    result = ExperimentResult(title="T", columns=["a", "b"], rows=[{"a": 1, "b": "x|y"}], findings=["F."])
    write_result(result, tmp_path, ExperimentOptions(quick=True, out=tmp_path))
    assert sorted(atomic_paths) == ["config.json", "results.csv", "results.md"]
    assert (tmp_path / "results.md").read_text() == "# T\n\n| a | b |\n|---|---|\n| 1 | x\\|y |\n\nF.\n\n"
    assert json.loads((tmp_path / "config.json").read_text())["versions"] == reporting.versions()
    assert not list(tmp_path.glob(".*"))  # no temp file left behind


def test_comparison_results_are_written_atomically(tmp_path, atomic_paths):
    write_outputs([RESULT, {**RESULT, "model": "simple_cnn", "test_accuracy": 0.99}], tmp_path, "digits: 2 epochs")
    assert sorted(atomic_paths) == ["results.csv", "results.md"]
    markdown = (tmp_path / "results.md").read_text()
    assert markdown.startswith("# Comparison on digits: 2 epochs\n\n| model | params | MACs/image |")
    assert "| lenet5 | 44,426 | 0.43M | 97.51% | 12.3s | 3,142 |" in markdown
    assert "Best test accuracy: simple_cnn (99.00%)." in markdown


def test_bench_records_are_written_atomically(tmp_path, atomic_paths, monkeypatch):
    from bench import common

    monkeypatch.setattr(common, "RESULTS", tmp_path)
    path = common.write("unit", {"value": 1})
    assert atomic_paths == ["unit.json"]
    record = json.loads(path.read_text())
    assert record["value"] == 1 and record["machine"]["cnnlab"] == cnnlab.__version__


def test_a_failed_write_keeps_the_old_results(tmp_path, monkeypatch):
    reporting.write_text(tmp_path / "results.md", "old\n")

    def broken(handle):
        handle.write(b"half")
        raise OSError(28, "No space left on device")

    with pytest.raises(CnnlabError, match="could not write .*results.md: No space left on device"):
        files.atomic_write(tmp_path / "results.md", broken)
    assert (tmp_path / "results.md").read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["results.md"]


def test_the_version_comes_from_the_installed_metadata(monkeypatch):
    import importlib

    from cnnlab import _version

    assert _version.__version__ == importlib.metadata.version("cnnlab") == cnnlab.__version__

    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", not_installed)
    try:
        assert importlib.reload(_version).__version__ == "0+unknown"  # a source tree that pip never installed
    finally:
        monkeypatch.undo()
        importlib.reload(_version)
    assert _version.__version__ == cnnlab.__version__
