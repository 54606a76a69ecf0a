"""The Train page's "find lr" and sweep section, and the Sweeps page, in a real browser (headless Chromium, Selenium,
a live uvicorn server running real `cnnlab lr-find` and `cnnlab sweep` jobs on a few hundred digits: a minute or
two on a CPU)."""

import json
import urllib.request

import browser_support
import pytest
from browser_support import BROWSER_MARKS, console_errors, live_server, screenshot, text_of, wait
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from cnnlab.rundir import LrFindFolder

pytestmark = BROWSER_MARKS
browser, shots = browser_support.browser, browser_support.shots  # the fixtures


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    with live_server(tmp_path_factory.mktemp("browser-sweeps") / "runs") as running:
        yield running


def call(url: str):
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


def open_train(browser, url: str) -> None:
    browser.get(url + "/train")
    wait(
        browser,
        lambda d: d.find_elements(By.ID, "f-train_subset") and d.find_elements(By.CSS_SELECTOR, ".param-name"),
        120,
    )
    browser.find_element(By.ID, "f-train_subset").send_keys("200")
    browser.find_element(By.ID, "f-epochs").send_keys("1")


def test_find_lr_draws_the_curve_and_fills_the_lr_field(lab, browser, shots):
    url, root = lab
    open_train(browser, url)
    assert browser.find_element(By.ID, "f-lr").get_attribute("value") == ""
    browser.find_element(By.ID, "find-lr").click()
    wait(browser, lambda d: d.find_element(By.ID, "f-lr").get_attribute("value"), 300, "the lr field stayed empty")
    (job,) = call(url + "/api/jobs")
    assert job["kind"] == "lr-find" and job["state"] == "finished"
    found = LrFindFolder(root / job["run"]).read_record()
    assert float(browser.find_element(By.ID, "f-lr").get_attribute("value")) == found["suggestion"]
    curve = browser.execute_script(
        "const p = document.getElementById('lr-curve');"
        "return {type: p._fullLayout.xaxis.type, traces: p.data.map((t) => [t.name, t.x.length])};"
    )
    assert curve["type"] == "log"
    assert curve["traces"][1][1] == found["steps_run"] > 10  # the smoothed loss, a point per step
    assert curve["traces"][2] == [f"suggestion {found['suggestion']:.3g} (steepest)", 1]
    assert text_of(browser, "lr-note").startswith(f"suggested lr {found['suggestion']:.3g} (now in the lr field)")
    screenshot(browser, shots, "train-find-lr")
    assert console_errors(browser) == []


def test_a_sweep_from_the_train_page_shows_on_the_sweeps_page(lab, browser, shots):
    url, root = lab
    open_train(browser, url)
    browser.find_element(By.ID, "sweep-trials").clear()
    browser.find_element(By.ID, "sweep-trials").send_keys("500")
    browser.find_element(By.ID, "sweep-start").click()  # refused first: past the cap
    wait(browser, lambda d: text_of(d, "sweep-error"), 30, "no refusal shown")
    assert text_of(browser, "sweep-error") == "Trials must be a whole number from 1 to 200, got '500'."
    browser.find_element(By.ID, "sweep-trials").clear()
    browser.find_element(By.ID, "sweep-trials").send_keys("2")
    row = browser.find_element(By.CSS_SELECTOR, ".sweep-row")
    assert [row.find_element(By.CSS_SELECTOR, c).get_attribute("value") for c in (".param-low", ".param-high")] == [
        "0.001",
        "0.1",
    ]
    assert row.find_element(By.CSS_SELECTOR, ".param-log").is_selected()
    # no pruner: with 1 epoch the median pruner may stop the second trial, and this test wants 2 complete ones
    Select(browser.find_element(By.ID, "sweep-pruner")).select_by_value("none")
    browser.find_element(By.ID, "sweep-start").click()
    wait(browser, lambda d: d.find_element(By.ID, "sweep-link").is_displayed(), 30, "no link to the Sweeps page")
    browser.find_element(By.ID, "sweep-link").click()
    wait(browser, lambda d: d.current_url.endswith("/sweeps"), 30)
    rows = "return [...document.querySelectorAll('.sweep tbody tr')]"
    done = rows + ".filter((r) => r.cells[1].textContent === 'COMPLETE').length"
    wait(browser, lambda d: d.execute_script(done) == 2, 600, "the Sweeps page never showed 2 complete trials")
    (sweep,) = call(url + "/api/sweeps")
    assert sweep["space"] == {"lr": "0.001:0.1:log"} and len(sweep["trials"]) == 2
    points = "return document.querySelector('.sweep .history').dataset.points"
    wait(browser, lambda d: d.execute_script(points) == "2", 30, "the chart did not draw both trials")
    best = max(float(t["val_accuracy"]) for t in sweep["trials"])
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".sweep pre.command"), 30)
    line = browser.find_element(By.CSS_SELECTOR, ".sweep pre.command").text
    assert line.startswith("cnnlab train lenet5 --dataset digits --epochs 1 --lr ") and "--train-subset 200" in line
    assert sweep["best"]["val_accuracy"] == best
    # the job ends once it has written sweep.md and the plots (and leaves no process behind this module)
    wait(browser, lambda d: call(url + "/api/sweeps")[0]["job"]["state"] == "finished", 120, "the job never ended")
    assert call(url + "/api/sweeps")[0]["report"] is True
    screenshot(browser, shots, "sweeps")
    errors = console_errors(browser)  # only the refused start (a 400) may be logged
    assert all("/api/sweeps - Failed to load resource" in e and "400" in e for e in errors), errors
