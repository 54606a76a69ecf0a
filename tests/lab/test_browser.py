"""The lab in a real browser: Debian's headless Chromium driven by Selenium against a live uvicorn server.

Each page opens without console errors; a 2-epoch digits run started from the Train form gains curve points while it
trains, stops (a checkpoint) and resumes to the end; Runs lists it; Inspect takes a digit drawn on the canvas and
shows the top classes and a Grad-CAM image. Screenshots go to $CNNLAB_LAB_SCREENSHOTS (docs/img for the docs) or a
temporary folder. Skipped, with the reason, where Chromium, chromedriver or selenium is missing.
"""

import browser_support
import pytest
from browser_support import BROWSER_MARKS, console_errors, screenshot, text_of, wait
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

pytestmark = BROWSER_MARKS
browser, server, shots = browser_support.browser, browser_support.server, browser_support.shots  # the fixtures

PAGES = {
    "zoo": "/",
    "train": "/train",
    "runs": "/runs",
    "inspect": "/inspect",
    "widgets": "/widgets",
    "experiments": "/experiments",
}


@pytest.mark.parametrize("name", ["zoo", "widgets", "experiments", "runs"])
def test_page_opens_without_console_errors(server, browser, shots, name):
    url, _ = server
    browser.get_log("browser")  # drop what earlier pages logged
    browser.get(url + PAGES[name])
    ready = {
        "zoo": lambda d: (
            d.find_elements(By.CSS_SELECTOR, "#layers table")
            and d.find_elements(By.CSS_SELECTOR, "#timeline .main-svg")
        ),
        "widgets": lambda d: (
            d.find_elements(By.CSS_SELECTOR, "#bn-eval .main-svg") and "measured output" in text_of(d, "conv-result")
        ),
        "experiments": lambda d: d.find_elements(By.CSS_SELECTOR, "#list table"),
        "runs": lambda d: text_of(d, "board"),
    }[name]
    wait(browser, ready, 120, f"{name} did not finish loading")
    assert console_errors(browser) == []
    screenshot(browser, shots, name)


def test_train_stop_resume_then_runs_and_inspect(server, browser, shots):
    url, root = server
    browser.get(url + "/train")
    wait(browser, lambda d: d.find_elements(By.ID, "f-epochs"), 120)
    browser.find_element(By.ID, "model").clear()
    browser.find_element(By.ID, "model").send_keys("resnet20")
    Select(browser.find_element(By.ID, "f-dataset")).select_by_value("digits")
    browser.find_element(By.ID, "f-epochs").send_keys("2")
    browser.find_element(By.ID, "f-train_subset").send_keys("500")
    browser.find_element(By.ID, "start").click()

    # the curve gains points while the job runs
    points = lambda d: int(d.find_element(By.ID, "curve").get_attribute("data-points") or 0)  # noqa: E731
    wait(
        browser, lambda d: text_of(d, "job-state") == "running" and points(d) >= 1, 240, "no curve point while running"
    )
    first = points(browser)
    wait(browser, lambda d: points(d) > first, 240, "the curve gained no point")

    browser.find_element(By.ID, "stop").click()
    wait(browser, lambda d: text_of(d, "job-state") in ("stopped", "finished", "failed"), 120)
    assert text_of(browser, "job-state") == "stopped", browser.find_element(By.ID, "log").text
    wait(browser, lambda d: d.find_element(By.ID, "resume").is_enabled(), 30, "Resume did not become available")
    browser.find_element(By.ID, "resume").click()
    wait(browser, lambda d: text_of(d, "job-state") in ("finished", "failed"), 300)
    assert text_of(browser, "job-state") == "finished", browser.find_element(By.ID, "log").text
    screenshot(browser, shots, "train")
    run = browser.find_element(By.ID, "run-link").get_attribute("href").split("/runs/", 1)[1]
    assert (root / run / "results.json").is_file()
    assert console_errors(browser) == []

    browser.get(url + "/runs")
    wait(browser, lambda d: run in text_of(d, "board"), 60, "the run is not on the leaderboard")
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#overlay .scatterlayer .trace"), 60)
    screenshot(browser, shots, "runs")
    browser.find_element(By.LINK_TEXT, run).click()
    wait(
        browser,
        lambda d: "resnet20" in text_of(d, "results") and d.find_elements(By.CSS_SELECTOR, "#curves .main-svg"),
        60,
    )
    browser.find_element(By.ID, "evaluate").click()
    wait(browser, lambda d: d.execute_script("return document.getElementById('confusion').naturalWidth") > 0, 120)
    assert console_errors(browser) == []
    screenshot(browser, shots, "run")

    browser.get(url + f"/inspect?run={run}")
    wait(browser, lambda d: "resnet20 on digits" in text_of(d, "run-info"), 60)
    pad = browser.find_element(By.ID, "pad")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", pad)  # the preview pushed it down
    assert pad.is_displayed(), "the canvas is not offered for a 28x28 grey run"
    # a "7": a stroke across the top, then down to the left
    ActionChains(browser).move_to_element_with_offset(pad, -50, -60).click_and_hold().move_by_offset(
        100, 0
    ).move_by_offset(-60, 130).release().perform()
    assert browser.find_element(By.CSS_SELECTOR, "input[value=draw]").is_selected()
    browser.find_element(By.ID, "predict").click()
    loaded = "const i = document.querySelector('#overlays img[alt=Grad-CAM]'); return i ? i.naturalWidth : 0"
    wait(browser, lambda d: d.execute_script(loaded) > 0, 120, "no Grad-CAM image")
    bars = browser.find_elements(By.CSS_SELECTOR, "#bars .bars .point")
    assert len(bars) == 5  # the top-5 classes
    assert console_errors(browser) == []
    browser.execute_script("window.scrollTo(0, 0)")
    screenshot(browser, shots, "inspect")


def test_an_experiments_results_md_renders_on_its_page(server, browser):
    """A past experiment's results.md, rendered by the server (markdown-it) and placed by the page's module: its
    title, table, emphasis and plot, with the file's raw HTML shown as text and nothing logged."""
    from PIL import Image

    url, root = server
    folder = root / "experiment-kernels-browser"
    folder.mkdir(parents=True)
    Image.new("RGB", (40, 20), "#4e79a7").save(folder / "plot.png")
    (folder / "results.md").write_text(
        "# Kernels <script>\n\n| design | params |\n|---|---:|\n| two 3x3 | 73,728 |\n\n"
        "A *finding* <b>here</b>.\n\n![the plot](plot.png)\n"
    )
    browser.get_log("browser")
    browser.get(url + PAGES["experiments"])
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#past tr.clickable"), 60, "no past experiment listed")
    row = next(r for r in browser.find_elements(By.CSS_SELECTOR, "#past tr.clickable") if folder.name in r.text)
    row.click()
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#result img.plot"), 60, "results.md not shown")
    result = browser.find_element(By.ID, "result")
    assert result.find_element(By.TAG_NAME, "h2").text == "Kernels <script>"
    assert [td.text for td in result.find_elements(By.CSS_SELECTOR, "td")] == ["two 3x3", "73,728"]
    assert result.find_element(By.CSS_SELECTOR, "td.num").text == "73,728"  # "---:" as lab.css's class
    assert result.find_element(By.TAG_NAME, "em").text == "finding" and "<b>here</b>" in result.text
    image = result.find_element(By.CSS_SELECTOR, "img.plot")
    assert image.get_attribute("src") == f"{url}/files/{folder.name}/plot.png"
    wait(browser, lambda d: d.execute_script("return document.querySelector('#result img').naturalWidth") == 40)
    assert console_errors(browser) == []


def test_experiment_form_fields_and_the_running_statistics_widget(server, browser):
    """The Experiments page's form has a field per declared option and shows the lab's refusal of a bad value
    (no job starts); the Widgets page's real-data card plots the running mean of 10 digits batches and lists them."""
    from cnnlab.lab.requests import experiment_fields

    url, root = server
    browser.get_log("browser")
    browser.get(url + PAGES["experiments"])
    wait(browser, lambda d: d.find_elements(By.ID, "f-seeds") and d.find_elements(By.CSS_SELECTOR, "#list table"), 120)
    assert all(browser.find_elements(By.ID, f"f-{o.name}") for o in experiment_fields())
    browser.find_element(By.ID, "f-seeds").send_keys("0,x")
    folders = set(root.glob("experiment-*"))  # another test of this server may have left its own
    row = next(r for r in browser.find_elements(By.CSS_SELECTOR, "#list tr") if r.text.startswith("kernels"))
    row.find_element(By.TAG_NAME, "button").click()
    wait(browser, lambda d: "Seeds must be distinct whole numbers" in text_of(d, "error"), 30)
    assert set(root.glob("experiment-*")) == folders  # refused: no folder reserved
    assert [e for e in console_errors(browser) if "/api/jobs" not in e] == []  # the refusal's 400 is logged
    browser.get(url + PAGES["widgets"])
    wait(browser, lambda d: d.find_elements(By.ID, "rs-run"), 120)
    batches = browser.find_element(By.ID, "rs-batches")
    batches.clear()
    batches.send_keys("10")
    browser.find_element(By.ID, "rs-run").click()
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#rs-mean .main-svg, #rs-gap .main-svg"), 120)
    wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#rs-table tbody tr")) == 10, 30)
    assert console_errors(browser) == []
