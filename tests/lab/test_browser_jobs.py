"""The Train, Runs and Run pages' job and run controls in a real browser (headless Chromium, Selenium, a live
uvicorn server): errors shown at the form field, no empty chart or log before a job, placeholders that fit, Cancel
on a queued and on a running job, Clear finished, deleting a run after a confirmation, the Run page's config values
and downloads. The server runs no job itself (max_jobs=0): queued jobs stay queued, and the running one is a
stand-in process, so no training competes for the cores."""

import json
import subprocess
import sys
import time
import urllib.request

import browser_support
import pytest
from browser_support import BROWSER_MARKS, console_errors, live_server, text_of, wait
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

pytestmark = BROWSER_MARKS
browser = browser_support.browser  # the fixture


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    with live_server(tmp_path_factory.mktemp("browser-jobs") / "runs", max_jobs=0) as running:
        yield running


def call(url: str, method: str = "GET", body: dict | None = None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def write_record(root, job_id: str, run_dir, **fields) -> None:
    folder = root / ".lab" / "jobs"
    folder.mkdir(parents=True, exist_ok=True)
    record = {"id": job_id, "kind": "train", "argv": [], "run_dir": str(run_dir), "run": run_dir.name, "created": 0}
    (folder / f"{job_id}.json").write_text(json.dumps({**record, **fields}))


def make_run(folder, **config) -> None:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"model": "lenet5", "dataset": "digits", **config}))
    (folder / "results.json").write_text(
        json.dumps({"status": "completed", "model": "lenet5", "dataset": "digits", "test_accuracy": 0.5})
    )


PLACEHOLDER_OVERFLOW = """
const canvas = document.createElement("canvas").getContext("2d");
return [...document.querySelectorAll("#train-form input[placeholder]")].filter((input) => {
  const style = getComputedStyle(input);
  canvas.font = style.font;
  const room = input.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
  return canvas.measureText(input.placeholder).width > room;
}).map((input) => `${input.name}: ${input.placeholder}`);
"""


def test_the_train_form_shows_an_error_at_its_field(lab, browser):
    url, _ = lab
    browser.get(url + "/train")
    wait(browser, lambda d: d.find_elements(By.ID, "f-batch_size"), 120)
    assert not browser.find_element(By.ID, "curve").is_displayed()  # no empty chart before a job
    assert not browser.find_element(By.ID, "log").is_displayed()  # no empty black log box
    assert browser.find_element(By.ID, "f-epochs").get_attribute("placeholder") == "10"  # digits' default
    assert browser.find_element(By.ID, "f-lr").get_attribute("placeholder") == "0.003"
    assert browser.execute_script(PLACEHOLDER_OVERFLOW) == []  # every placeholder fits its input

    browser.find_element(By.ID, "f-batch_size").send_keys("5000")
    browser.find_element(By.ID, "start").click()
    note = wait(browser, lambda d: d.find_element(By.ID, "e-batch_size").is_displayed(), 30, "no error at the field")
    assert note
    assert text_of(browser, "e-batch_size") == (
        "Batch size 5,000 is larger than the training split of digits (1,293 images: 1,437 less 144 held out for "
        "validation)."
    )
    assert "invalid" in browser.find_element(By.ID, "f-batch_size").get_attribute("class")
    assert text_of(browser, "form-error") == ""  # shown at the field, not under the form
    assert call(url + "/api/jobs") == []

    # editing a field clears its error
    browser.find_element(By.ID, "f-batch_size").send_keys(Keys.BACKSPACE * 4)
    assert not browser.find_element(By.ID, "e-batch_size").is_displayed()
    browser.find_element(By.ID, "f-epochs").send_keys("1000000000")
    browser.find_element(By.ID, "start").click()
    wait(browser, lambda d: d.find_element(By.ID, "e-epochs").is_displayed(), 30)
    assert text_of(browser, "e-epochs") == "Epochs 1,000,000,000 is more than the lab runs (1,000 at most)."

    # a refused field under "more options" opens its fold
    browser.find_element(By.ID, "f-epochs").send_keys(Keys.BACKSPACE * 10)
    assert not browser.find_element(By.ID, "f-val_fraction").is_displayed()
    browser.execute_script("document.getElementById('f-val_fraction').value = '1.5'")
    browser.find_element(By.ID, "start").click()
    wait(browser, lambda d: d.find_element(By.ID, "e-val_fraction").is_displayed(), 30, "the fold stayed shut")
    assert text_of(browser, "e-val_fraction") == "Val fraction must be in [0, 1), got '1.5'."
    assert call(url + "/api/jobs") == []
    errors = console_errors(browser)  # Chromium logs each refused request; nothing else may go wrong
    assert len(errors) == 3 and all("/api/jobs - Failed to load resource" in e and "400" in e for e in errors), errors


def test_cancel_a_queued_and_a_running_job_then_clear_finished(lab, browser):
    url, root = lab
    queued = call(url + "/api/jobs", "POST", {"model": "lenet5", "epochs": 1})
    running_dir, done_dir = root / "stand-in-run", root / "done-run"
    make_run(done_dir)
    running_dir.mkdir()
    # a stand-in training process whose command line names its run directory, as `cnnlab train --out DIR` does
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", str(running_dir)])
    try:
        write_record(root, "20260101-000000-aaaaaa", running_dir, pid=sleeper.pid, label="stand-in")
        write_record(root, "20260101-000000-bbbbbb", done_dir, pid=999_999_999, returncode=0, label="done")
        states = {j["id"]: j["state"] for j in call(url + "/api/jobs")}
        assert states == {
            queued["id"]: "queued",
            "20260101-000000-aaaaaa": "running",
            "20260101-000000-bbbbbb": "finished",
        }
        browser.get(url + "/train")
        cancel = "#jobs button[data-job='{}']"
        wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#jobs button.cancel")) == 2, 60)
        browser.find_element(By.CSS_SELECTOR, cancel.format(queued["id"])).click()
        wait(browser, lambda d: call(url + f"/api/jobs/{queued['id']}")["cancelled"], 30, "the queued job stayed")
        assert call(url + f"/api/jobs/{queued['id']}")["state"] == "stopped"
        wait(browser, lambda d: "cancelled" in text_of(d, "jobs"), 30)

        browser.find_element(By.CSS_SELECTOR, cancel.format("20260101-000000-aaaaaa")).click()
        assert sleeper.wait(timeout=30) == -15  # Cancel sent SIGTERM, which the trainer turns into a checkpoint
        wait(browser, lambda d: not d.find_elements(By.CSS_SELECTOR, "#jobs button.cancel"), 30)
        assert call(url + "/api/jobs/20260101-000000-aaaaaa")["state"] == "stopped"

        wait(browser, lambda d: d.find_element(By.ID, "clear").is_enabled(), 30)
        browser.find_element(By.ID, "clear").click()
        wait(browser, lambda d: "No jobs." in text_of(d, "jobs"), 30, "the finished jobs are still listed")
        assert call(url + "/api/jobs") == []
        assert sorted(p.name for p in (root / ".lab" / "jobs").iterdir()) == [".lock"]
        assert (done_dir / "results.json").is_file()  # the runs stay
        assert console_errors(browser) == []
    finally:
        sleeper.kill()


def test_delete_a_run_from_the_runs_page_after_confirming(lab, browser):
    url, root = lab
    make_run(root / "doomed")
    make_run(root / "kept")
    browser.get(url + "/runs")
    delete = (By.CSS_SELECTOR, "#board button[data-run='doomed']")
    wait(browser, lambda d: d.find_elements(*delete), 60)
    browser.find_element(*delete).click()
    browser.switch_to.alert.dismiss()  # "no": nothing happens
    time.sleep(0.5)
    assert (root / "doomed" / "config.json").is_file() and "doomed" in text_of(browser, "board")
    browser.find_element(*delete).click()
    alert = browser.switch_to.alert
    assert "doomed" in alert.text
    alert.accept()
    wait(browser, lambda d: not d.find_elements(*delete), 30, "the run is still on the board")
    assert not (root / "doomed").exists() and (root / "kept" / "config.json").is_file()
    assert "kept" in text_of(browser, "board") and console_errors(browser) == []


def test_the_run_page_shows_config_values_and_each_download_once(lab, browser):
    pytest.importorskip("onnx", reason="ONNX export needs the export extra")
    import cnnlab

    url, root = lab
    cnnlab.train("lenet5", "digits", epochs=1, train_subset=200, batch_size=32, out=str(root / "tiny"), quiet=True)
    browser.get(url + "/runs/tiny")
    wait(browser, lambda d: d.find_element(By.ID, "export").is_enabled(), 60)
    for _ in range(2):
        browser.find_element(By.ID, "export").click()
        exported = lambda d: "model.onnx" in text_of(d, "downloads") and d.find_element(By.ID, "export").is_enabled()  # noqa: E731
        wait(browser, exported, 120)
    links = [a.text for a in browser.find_elements(By.CSS_SELECTOR, "#downloads a")]
    assert links.count("model.onnx") == 1 and links.count("model.safetensors") == 1
    rows = {
        r.find_elements(By.TAG_NAME, "td")[0].text: r.find_elements(By.TAG_NAME, "td")[1].text
        for r in browser.find_elements(By.CSS_SELECTOR, "#config tbody tr")
    }
    config = json.loads((root / "tiny" / "config.json").read_text())
    assert rows["model"] == "lenet5" and rows["dataset"] == "digits"  # no quotes
    assert rows["augment"] == ("yes" if config["augment"] else "no")
    assert rows["time_budget"] == "–" and config["time_budget"] is None
    assert rows["epochs"] == "1"
    assert not [v for v in rows.values() if v.startswith('"') or v in ("true", "false", "null")]
    assert console_errors(browser) == []
