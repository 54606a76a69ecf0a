"""Design -> Train -> Inspect in a real browser (headless Chromium, Selenium, a live uvicorn server started with
--models): a spec typed in shows its layer table with the exact parameter total, a bad layer is marked where it was
typed, a --models network is offered and tabled, "Train this" opens the Train form with the spec, one epoch on 200
digits trains it, and Inspect shows the layer clicked in the run's table (output, kernels, Grad-CAM there) and the
run's Grad-CAM. Skipped, with the reason, where Chromium, chromedriver or selenium is missing. The screenshot of the
Design page goes to $CNNLAB_LAB_SCREENSHOTS (docs/img/lab-design.png) or a temporary folder.
"""

from urllib.parse import quote

import pytest

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed: pip install -e '.[test]'")
import browser_support  # noqa: E402
from browser_support import BROWSER_MARKS, console_errors, live_server, screenshot, text_of, wait  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select  # noqa: E402

pytestmark = BROWSER_MARKS
browser, shots = browser_support.browser, browser_support.shots  # the fixtures

SPEC = "conv 8 k3 p1; relu; maxpool k2; conv 16 k3 p1; relu; maxpool k2; flatten; fc 10"
SPEC_PARAMS = (8 * 9 + 8) + (16 * 8 * 9 + 16) + (16 * 7 * 7 * 10 + 10)  # 9,098 at 1x28x28
BAD = "conv 8 k3 p1; relu; conv 16 kx; flatten; fc 10"
NETS = """from torch import nn


class TwoConv(nn.Module):
    def __init__(self, num_classes=10, in_chans=1):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(in_chans, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3, groups=4))
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, num_classes))

    def forward(self, x):
        return self.head(self.features(x))
"""
TWOCONV_PARAMS = (4 * 9 + 4) + (4 * 9 + 4) + (4 * 10 + 10)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("design")
    (folder / "my_models.py").write_text(NETS)
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)  # `cnnlab lab --models my_models.py` where the file is
        with live_server(folder / "runs", models=["my_models.py"]) as running:
            yield running


def type_into(driver, element_id: str, text: str) -> None:
    """The text in a field as if typed: all but its last character set at once, the last one typed (one input
    event, not one request per character)."""
    field = driver.find_element(By.ID, element_id)
    driver.execute_script("arguments[0].value = arguments[1]", field, text[:-1])
    field.send_keys(text[-1])


def loaded(driver, selector: str) -> bool:
    script = "const i = document.querySelector(arguments[0]); return !!i && i.complete && i.naturalWidth > 0"
    return driver.execute_script(script, selector)


def check_design(driver, url: str, shots) -> None:
    driver.get(url + "/design")
    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#layers table"), 60, "no table for the preset")
    picker = Select(driver.find_element(By.ID, "network"))
    assert [o.text for o in picker.options] == ["choose one", "my_models.py:TwoConv"]
    picker.select_by_index(1)
    wait(driver, lambda d: f"{TWOCONV_PARAMS:,} parameters" in text_of(d, "totals"), 60, "no table for TwoConv")
    assert driver.find_element(By.ID, "spec").get_attribute("value") == "my_models.py:TwoConv"

    type_into(driver, "input", "1x28x28")
    assert console_errors(driver) == []
    type_into(driver, "spec", BAD)
    wait(driver, lambda d: "bad layer 'conv 16 kx'" in text_of(d, "error"), 60, "no error for the bad layer")
    refused = console_errors(driver)  # the refusal's 400, which Chromium logs, and nothing else
    assert len(refused) == 1 and "/api/summary?spec=conv%208" in refused[0] and "400" in refused[0], refused
    assert driver.find_element(By.CSS_SELECTOR, "#marked mark").text == "conv 16 kx"
    assert not driver.find_elements(By.CSS_SELECTOR, "#layers table") and text_of(driver, "totals") == ""
    assert not driver.find_element(By.ID, "train-this").is_enabled()

    type_into(driver, "spec", SPEC)
    wanted = f"input 1×28×28: {SPEC_PARAMS:,} parameters"
    wait(driver, lambda d: text_of(d, "totals").startswith(wanted), 60, "no table for the spec")
    assert text_of(driver, "error") == "" and not driver.find_element(By.ID, "marked").is_displayed()
    names = [td.text for td in driver.find_elements(By.CSS_SELECTOR, "#layers tbody tr td:first-child")]
    assert names == ["conv1", "relu1", "maxpool1", "conv2", "relu2", "maxpool2", "flatten1", "fc1"], names
    assert picker.first_selected_option.text == "choose one"  # the box holds a spec now, not the network
    screenshot(driver, shots, "design")
    wait(driver, lambda d: d.find_element(By.ID, "train-this").is_enabled(), 10)
    driver.find_element(By.ID, "train-this").click()


def train_one_epoch(driver, url: str) -> str:
    wait(driver, lambda d: d.find_elements(By.ID, "f-epochs"), 60, "the Train form did not load")
    assert driver.current_url == url + "/train?model=" + quote(SPEC, safe="")
    assert driver.find_element(By.ID, "model").get_attribute("value") == SPEC
    Select(driver.find_element(By.ID, "f-dataset")).select_by_value("digits")
    driver.find_element(By.ID, "f-epochs").send_keys("1")
    driver.find_element(By.ID, "f-train_subset").send_keys("200")
    driver.find_element(By.ID, "start").click()
    wait(driver, lambda d: text_of(d, "job-state") in ("finished", "failed", "stopped"), 300, "the job did not end")
    assert text_of(driver, "job-state") == "finished", text_of(driver, "log")
    return driver.find_element(By.ID, "run-link").get_attribute("href").split("/runs/", 1)[1]


def check_inspect(driver, url: str, run: str, shots) -> None:
    driver.get(url + f"/inspect?run={run}")
    wait(driver, lambda d: text_of(d, "run-info").startswith(SPEC), 60, "no run info")
    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#run-layers tbody tr"), 60, "no layer table")
    rows = {
        r.find_element(By.TAG_NAME, "td").text: r for r in driver.find_elements(By.CSS_SELECTOR, "#run-layers tbody tr")
    }
    rows["conv2"].click()
    wait(driver, lambda d: loaded(d, "#layer-view img[alt='Grad-CAM at conv2']"), 120, "no Grad-CAM at conv2")
    assert loaded(driver, "#layer-view img[alt='output of conv2']") and loaded(
        driver, "#layer-view img[alt='kernels of conv2']"
    )
    assert "conv2 (Conv2d) output 16×14×14" in text_of(driver, "layer-view")
    assert "kernels 16×8×3×3" in text_of(driver, "layer-view")
    driver.execute_script("document.getElementById('run-layers').scrollIntoView()")
    screenshot(driver, shots, "inspect-layer")
    rows["fc1"].click()
    wait(driver, lambda d: "a Linear has no kernels to draw" in text_of(d, "layer-notes"), 60, "no notes for fc1")
    assert "fc1 (Linear) output 10" in text_of(driver, "layer-view")
    driver.find_element(By.ID, "predict").click()
    wait(driver, lambda d: loaded(d, "#overlays img[alt=Grad-CAM]"), 120, "no Grad-CAM for the run")
    assert text_of(driver, "cam-label").startswith("Grad-CAM for class '")


def test_design_train_this_then_inspect_any_layer(server, browser, shots):
    url, root = server
    browser.get_log("browser")  # drop what earlier pages logged
    check_design(browser, url, shots)
    run = train_one_epoch(browser, url)
    assert (root / run / "results.json").is_file() and not (root / run / "model_source.py").exists()
    check_inspect(browser, url, run, shots)
    assert console_errors(browser) == []
