"""Inspect in a real browser (Debian's headless Chromium, Selenium, a live uvicorn server over a trained digits run):
the chosen test image and an upload are previewed before Predict; the Grad-CAM is labelled with the class it
explains, and choosing another class (the select, or a bar of the chart) recomputes it; a feature map opens
enlarged and closes by click or Escape. Skipped, with the reason, where Chromium, chromedriver or selenium is
missing. The screenshot goes to $CNNLAB_LAB_SCREENSHOTS or a temporary folder.
"""

import re
import urllib.request
from pathlib import Path

import pytest
from PIL import Image

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed: pip install -e '.[test]'")
import browser_support  # noqa: E402
from browser_support import BROWSER_MARKS, console_errors, live_server, screenshot, text_of, wait  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import Select  # noqa: E402

pytestmark = BROWSER_MARKS
browser, shots = browser_support.browser, browser_support.shots  # the fixtures
LABEL = re.compile(r"Grad-CAM for class '(\d)' \((top-1|rank \d+), p = (\d\.\d\d)\)")


@pytest.fixture(scope="module")
def server(digits_run):
    """A live server over the runs root that holds the trained digits run: (base URL, run name)."""
    root, run = digits_run
    with live_server(root) as (url, _):
        yield url, run


def natural_width(driver, selector: str) -> int:
    script = "const i = document.querySelector(arguments[0]); return i && i.complete ? i.naturalWidth : 0"
    return driver.execute_script(script, selector)


def gradcam(driver) -> tuple[str, str]:
    """The Grad-CAM label and the overlay's URL, once the overlay has loaded."""
    wait(driver, lambda d: natural_width(d, "#overlays img[alt=Grad-CAM]") > 0, 120, "no Grad-CAM image")
    src = driver.find_element(By.CSS_SELECTOR, "#overlays img[alt=Grad-CAM]").get_attribute("src")
    return text_of(driver, "cam-label"), src


def check_previews(driver, digits, tmp_path) -> None:
    """A test image by number, updated as the number changes, then an upload, each shown before Predict."""
    wait(driver, lambda d: natural_width(d, "#preview") > 0, 60, "no preview of test image 0")
    assert text_of(driver, "preview-caption") == f"test image 0: class '{digits.classes[digits.test_labels[0]]}'"
    first = driver.find_element(By.ID, "preview").get_attribute("src")
    number = driver.find_element(By.ID, "test-index")
    number.clear()
    number.send_keys("5")
    wanted = f"test image 5: class '{digits.classes[digits.test_labels[5]]}'"
    wait(driver, lambda d: text_of(d, "preview-caption") == wanted, 60, "the preview did not follow the number")
    changed = lambda d: d.find_element(By.ID, "preview").get_attribute("src") != first  # noqa: E731
    wait(driver, lambda d: changed(d) and natural_width(d, "#preview") > 0, 60, "the new preview did not load")
    Image.fromarray(digits.test_images[7][0].numpy()).save(tmp_path / "seven.png")
    driver.find_element(By.ID, "upload").send_keys(str(tmp_path / "seven.png"))
    wait(driver, lambda d: text_of(d, "preview-caption") == "upload: seven.png", 30, "no preview of the upload")
    assert driver.find_element(By.ID, "preview").get_attribute("src").startswith("blob:")
    wait(driver, lambda d: natural_width(d, "#preview") > 0, 30, "the upload's preview did not load")
    driver.find_element(By.CSS_SELECTOR, "input[value=test]").click()  # back to test image 5 for Predict
    wait(driver, lambda d: text_of(d, "preview-caption") == wanted, 60)


def check_other_class(driver, url: str) -> None:
    """Predict, then explain another class from the select, then a third by clicking its bar."""
    driver.find_element(By.ID, "predict").click()
    label, src = gradcam(driver)
    match = LABEL.fullmatch(label)
    assert match and match.group(2) == "top-1", label
    top = match.group(1)
    other = "3" if top != "3" else "8"
    Select(driver.find_element(By.ID, "target")).select_by_value(other)
    wait(driver, lambda d: text_of(d, "cam-label") != label, 120, "the label did not change")
    new_label, new_src = gradcam(driver)
    match = LABEL.fullmatch(new_label)
    assert match and match.group(1) == other and match.group(2).startswith("rank "), new_label
    assert new_src != src
    read = lambda u: urllib.request.urlopen(u).read()  # noqa: E731
    assert read(new_src) != read(src), "the Grad-CAM image did not change"
    assert f"Grad-CAM: '{other}'" in text_of(driver, "overlays")

    bar = driver.find_elements(By.CSS_SELECTOR, "#bars .bars .point")[-1]  # the top bar: the top class
    ActionChains(driver).move_to_element(bar).pause(0.3).click().perform()
    wait(driver, lambda d: LABEL.fullmatch(text_of(d, "cam-label")).group(1) == top, 120, "a bar click did nothing")
    assert Select(driver.find_element(By.ID, "target")).first_selected_option.text == top


def check_lightbox(driver, shots: Path) -> None:
    thumbnail = driver.find_element(By.CSS_SELECTOR, "#maps img.zoomable")
    wait(driver, lambda d: natural_width(d, "#maps img.zoomable") > 0, 60, "no feature map")
    thumbnail.click()
    box = driver.find_element(By.ID, "lightbox")
    wait(driver, lambda d: box.is_displayed() and natural_width(d, "#lightbox-image") > 0, 30, "no enlarged view")
    enlarged = driver.find_element(By.ID, "lightbox-image")
    assert enlarged.get_attribute("src") == thumbnail.get_attribute("src")
    assert enlarged.size["width"] > 1.5 * thumbnail.size["width"], (enlarged.size, thumbnail.size)
    assert text_of(driver, "lightbox-caption") == thumbnail.get_attribute("alt")
    screenshot(driver, shots, "inspect-enlarged")
    ActionChains(driver).send_keys(Keys.ESCAPE).perform()
    wait(driver, lambda d: not box.is_displayed(), 10, "Escape did not close it")
    thumbnail.click()
    wait(driver, lambda d: box.is_displayed(), 10)
    box.click()
    wait(driver, lambda d: not box.is_displayed(), 10, "a click did not close it")


def test_inspect_previews_labels_the_gradcam_and_enlarges_feature_maps(server, browser, shots, digits, tmp_path):
    url, run = server
    browser.get_log("browser")  # drop what earlier pages logged
    browser.get(url + f"/inspect?run={run}")
    wait(browser, lambda d: "lenet5 on digits" in text_of(d, "run-info"), 60)
    check_previews(browser, digits, tmp_path)
    check_other_class(browser, url)
    screenshot(browser, shots, "inspect-target")
    check_lightbox(browser, shots)
    assert console_errors(browser) == []
