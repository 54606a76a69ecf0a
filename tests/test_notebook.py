"""Issue #22 §5: the API's results show themselves in a notebook (a run, a comparison, a summary), training draws
its bar there, and examples/your-own-cnn.ipynb runs top to bottom in a real kernel on this interpreter and this
source tree."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import pytest

import cnnlab
from cnnlab.cli import main
from cnnlab.engine import progress

NOTEBOOK = Path(__file__).parents[1] / "examples" / "your-own-cnn.ipynb"
SPEC = "conv 8 k3 p1; relu; maxpool k2; flatten; fc 10"
MY_CNN_PARAMS = "9,098"  # the notebook's MyCNN: 80 + 1,168 + 7,850


def test_summary_shows_its_layer_table(capsys):
    summary = cnnlab.summary("lenet5")  # its own input, 1x32x32: the paper's LeNet-5
    assert summary.total_params == 61706
    html = summary._repr_html_()
    assert html.startswith("<table>") and "<th" in html
    assert "61,706" in html and "lenet5 at 1x32x32" in html
    assert html.count("<tr>") == 1 + len(summary.rows) + 1  # header, one per layer, totals
    assert "61,706" in repr(summary) and "conv1" in repr(summary)
    assert main(["summary", "lenet5"]) == 0
    assert "61,706" in capsys.readouterr().out
    assert cnnlab.summary(SPEC, (1, 28, 28)).total_params == cnnlab.summary(SPEC, "1x28x28").total_params == 15770


def test_run_result_is_the_dict_and_shows_its_run(tmp_path):
    result = cnnlab.train(SPEC, "digits", epochs=2, train_subset=200, out=str(tmp_path / "run"), quiet=True)
    assert isinstance(result, dict)
    assert json.loads(json.dumps(result)) == json.loads((tmp_path / "run" / "results.json").read_text())
    html = result._repr_html_()
    accuracy = f"{result['test_accuracy']:.2%}"
    assert accuracy in html and accuracy in repr(result)
    assert "15,770" in html  # params
    assert html.count("data:image/png;base64,") == 1  # curves.png inline
    epochs_table = html.split("</table>")[1]
    assert epochs_table.count("<tr>") == 1 + 2  # header and the two epochs


def test_seeds_result_is_the_dict_and_shows_its_table(tmp_path):
    from cnnlab.repeats import Spread, format_spread

    result = cnnlab.train(SPEC, "digits", epochs=1, train_subset=200, seeds=[0, 1], out=str(tmp_path), quiet=True)
    assert isinstance(result, dict)
    assert json.loads(json.dumps(result)) == json.loads((tmp_path / "seeds.json").read_text())
    accuracies = [run["test_accuracy"] for run in result["runs"]]
    mean = format_spread("test_accuracy", Spread.of(accuracies))
    html = result._repr_html_()
    assert mean in html and mean in repr(result)
    assert "seed 0" in html and "seed 1" in html and f"{accuracies[1]:.2%}" in html
    assert html.count("data:image/png;base64,") == 1  # seeds.png


def test_notebook_bar_redraws_one_output(monkeypatch):
    drawn: list[str] = []
    monkeypatch.setattr(progress, "in_notebook", lambda: True)
    monkeypatch.setattr(progress, "notebook_output", lambda: drawn.append)
    bar = progress.Progress()
    assert not bar.live  # pytest captures stderr: no terminal
    bar.epoch(1, 2, 5, 0)
    for _ in range(5):
        bar.step(0.5, 0.75, 1000.0)
    assert drawn[0].count('value="0" max="5"') == 1
    assert 'value="5" max="5"' in drawn[-1] and "epoch 1/2" in drawn[-1] and "loss 0.5000 acc 75.00%" in drawn[-1]
    assert len(drawn) < 7  # the start, perhaps one step within the interval, and the epoch's end
    bar.epoch(2, 2, 5, 0)
    bar.step(0.25, 0.9, 1000.0)
    bar.finish("stopped")  # a run may end mid-epoch (a time budget): the bar shows where
    assert 'value="1" max="5"' in drawn[-1] and "epoch 2/2" in drawn[-1] and bar.notebook is None
    quiet = progress.Progress(quiet=True)
    quiet.epoch(1, 1, 5, 0)
    assert quiet.notebook is None


def test_matplotlib_keeps_the_notebooks_backend(monkeypatch):
    import matplotlib

    from cnnlab import notebook

    switched: list[str] = []
    monkeypatch.setattr(matplotlib, "use", switched.append)
    monkeypatch.setattr(notebook, "in_notebook", lambda: True)
    notebook.use_file_backend()
    assert switched == []
    monkeypatch.setattr(notebook, "in_notebook", lambda: False)
    notebook.use_file_backend()
    assert switched == ["Agg"]


# ---------------------------------------------------------------------------------------------- the notebook
def kernel_spec(folder: Path) -> str:
    """A kernel on this interpreter and this source tree (not whatever `python3` kernel the machine has)."""
    source = str(Path(cnnlab.__file__).parents[1])
    env = {
        "PYTHONPATH": os.pathsep.join(filter(None, [source, os.environ.get("PYTHONPATH")])),
        "MPLBACKEND": "module://matplotlib_inline.backend_inline",  # as a notebook server's kernel has it
        "OMP_NUM_THREADS": "1",
        "CNNLAB_STATE_DIR": str(folder / "state"),
    }
    spec = folder / "jupyter" / "kernels" / "cnnlab-test"
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    spec.joinpath("kernel.json").write_text(json.dumps({"argv": argv, "display_name": "cnnlab", "env": env}))
    return "cnnlab-test"


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    nbformat = pytest.importorskip("nbformat", reason="the notebook test needs nbformat (pip install -e .[test])")
    nbclient = pytest.importorskip("nbclient", reason="the notebook test needs nbclient (pip install -e .[test])")
    pytest.importorskip("ipykernel", reason="the notebook test needs ipykernel (pip install -e .[test])")
    folder = tmp_path_factory.mktemp("notebook")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("JUPYTER_PATH", str(folder / "jupyter"))
        patch.setenv("JUPYTER_RUNTIME_DIR", str(folder / "runtime"))
        notebook = nbformat.read(NOTEBOOK, as_version=4)
        client = nbclient.NotebookClient(
            notebook, kernel_name=kernel_spec(folder), timeout=180, resources={"metadata": {"path": str(folder)}}
        )
        client.execute()  # a cell that raises fails here, naming it
    return {index: cell.get("outputs", []) for index, cell in enumerate(notebook.cells) if cell.cell_type == "code"}


def outputs_of(executed, source_part: str) -> list[dict]:
    notebook = json.loads(NOTEBOOK.read_text())
    index = next(i for i, cell in enumerate(notebook["cells"]) if source_part in "".join(cell["source"]))
    return executed[index]


def texts(outputs, kind: str) -> list[str]:
    return [o["data"][kind] for o in outputs if kind in o.get("data", {})]


@pytest.mark.slow
def test_notebook_runs_and_shows_everything(executed):
    assert not [o for outputs in executed.values() for o in outputs if o["output_type"] == "error"]
    summary = "".join(texts(outputs_of(executed, "cnnlab.summary("), "text/html"))
    assert MY_CNN_PARAMS in summary and "my_cnn.py:MyCNN at 1x28x28" in summary

    trained = outputs_of(executed, "cnnlab.train(")
    bars = [html for html in texts(trained, "text/html") if "<progress" in html]
    assert bars and 'value="' in bars[-1] and "epoch 3/3" in bars[-1]
    done = re.search(r'value="(\d+)" max="(\d+)"', bars[-1])
    assert done.group(1) == done.group(2)  # the last epoch's bar ends full
    printed = "".join(o.get("text", "") for o in trained if o["output_type"] == "stream")
    accuracy = re.search(r"test accuracy (\d+\.\d+)%", printed).group(1)
    assert float(accuracy) > 80
    run_html = texts(trained, "text/html")[-1]
    assert f"{accuracy}%" in run_html and "data:image/png;base64," in run_html

    assert texts(outputs_of(executed, "plt.subplots(figsize=(5, 3))"), "image/png")  # the inline backend drew it
    pictures = outputs_of(executed, "cnnlab.visualize(")
    assert len(texts(pictures, "image/png")) == 5  # filters, 2 images' feature maps, 2 Grad-CAMs
    assert not [o for o in pictures if o.get("name") == "stderr"]  # no warning from captum's tqdm import
    arrays = outputs_of(executed, "cnnlab.attribution(")
    assert "(4, 28, 28)" in "".join(o.get("text", "") for o in arrays) and texts(arrays, "image/png")
    compared = "".join(texts(outputs_of(executed, "cnnlab.compare("), "text/html"))
    assert "my_cnn.py:MyCNN" in compared and "lenet5" in compared and MY_CNN_PARAMS in compared
