"""The Run page's "Fine-tune this run" in a real browser (headless Chromium, Selenium, a live uvicorn server): the
form fills and submits a two-phase fine-tuning job of a trained digits run, the Train page follows it to its end
with the phase boundary on its live curve, and the new run's page shows finetune.json's facts and its curves with
the boundary marked as curves.png marks it (a dashed line labelled "phase 2: all")."""

import browser_support
import pytest
from browser_support import BROWSER_MARKS, console_errors, live_server, screenshot, text_of, wait
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

pytestmark = BROWSER_MARKS
browser = browser_support.browser  # the fixtures
shots = browser_support.shots

PHASES = "head:1:adamw:1e-3,all:1:adamw:1e-4"
# What a chart's layout holds for its phase marks: each shape's dash and x, each annotation's text and x.
MARKS = """
const layout = document.getElementById(arguments[0]).layout || {};
return {
  shapes: (layout.shapes || []).map((s) => [s.line.dash, s.x0, s.x1]),
  labels: (layout.annotations || []).map((a) => [a.text, a.x]),
  drawn: document.querySelectorAll(`#${arguments[0]} .shapelayer path`).length,
};
"""


@pytest.fixture(scope="module")
def lab(digits_run):
    """The lab over the session's trained LeNet-5 on digits (conftest), running one job at a time."""
    root, name = digits_run
    with live_server(root) as (url, _):
        yield url, root, name


def fill(browser, name: str, value: str) -> None:
    field = browser.find_element(By.CSS_SELECTOR, f"#finetune-fields [name={name}]")
    if field.tag_name == "select":
        Select(field).select_by_value(value)
    else:
        field.clear()
        field.send_keys(value)


def test_fine_tune_this_run_from_its_page(lab, browser, shots):
    url, root, name = lab
    browser.get(f"{url}/runs/{name}")
    wait(browser, lambda d: d.find_element(By.ID, "finetune-card").is_displayed(), 60, "no fine-tune form")
    assert "fine-tuned from" not in text_of(browser, "results")  # a run trained from scratch
    for field, value in (("dataset", "digits"), ("head", "linear"), ("phases", PHASES)):
        fill(browser, field, value)
    browser.find_element(By.ID, "finetune").click()

    wait(browser, lambda d: "/train?job=" in d.current_url, 30, "the job did not start")
    wait(browser, lambda d: text_of(d, "job-state") in ("finished", "failed"), 180, "the job did not end")
    assert text_of(browser, "job-state") == "finished", text_of(browser, "log")
    assert text_of(browser, "job-result").startswith("test accuracy ")
    live = browser.execute_script(MARKS, "curve")
    steps = int(browser.find_element(By.ID, "curve").get_attribute("data-points"))
    # Two epochs of equal steps: phase 2 begins where epoch 1 ends, halfway along the step axis.
    assert live["shapes"] == [["dash", steps / 2, steps / 2]] and live["labels"] == [["phase 2: all", steps / 2]]
    assert live["drawn"] == 1
    screenshot(browser, shots, "finetune-train")

    browser.find_element(By.ID, "run-link").click()
    wait(browser, lambda d: browser.execute_script(MARKS, "curves")["drawn"], 30, "no phase mark on the run's curves")
    assert browser.execute_script(MARKS, "curves") == {
        "shapes": [["dash", 1.5, 1.5]],
        "labels": [["phase 2: all", 1.5]],
        "drawn": 1,
    }
    facts = dict(
        (cell.text for cell in row.find_elements(By.TAG_NAME, "td"))
        for row in browser.find_elements(By.CSS_SELECTOR, "#results tbody tr")
    )
    # lenet5's whole classifier is fc3 (84 -> 10): its 850 parameters train in the head phase.
    assert facts["trainable params"] == "850"
    assert facts["fine-tuned from"] == name and facts["head"] == "linear" and facts["bn stats"] == "frozen"
    assert facts["phases"] == "head:1:adamw:1e-3, all:1:adamw:1e-4"
    source = browser.find_element(By.ID, "finetune-source")
    assert source.get_attribute("href") == f"{url}/runs/{name}"
    screenshot(browser, shots, "finetuned-run")
    assert console_errors(browser) == []
    browser.set_window_size(400, 850)  # a phone: the facts wrap, nothing scrolls sideways
    results = browser.find_element(By.ID, "results")
    assert browser.execute_script(FITS, results), "the results table is wider than its card at phone size"


# Whether the page scrolls sideways or the element pokes out of its card.
FITS = """
const page = document.documentElement, box = arguments[0].getBoundingClientRect();
return page.scrollWidth <= page.clientWidth && box.right <= arguments[0].closest(".card").getBoundingClientRect().right;
"""
