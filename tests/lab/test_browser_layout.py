"""The lab's layout in a real browser, at a desktop (1280x900) and a phone (400x850) window.

Every page (and one run's page) fits the window's width, shows every nav link, keeps the Experiments page's Run
buttons inside their card; the zoo timeline gives each family its own colour and marker with the legend off the
plot; a class folder named `<b>bold<i>` reads as written in the run page's per-class chart. One Chromium for the
module, resized between sizes. Screenshots go to $CNNLAB_LAB_SCREENSHOTS or a temporary folder.
"""

from pathlib import Path

import pytest

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed: pip install -e '.[test]'")
import browser_support  # noqa: E402
from browser_support import SKIP_WITHOUT_CHROMIUM, console_errors, live_server, screenshot, wait  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402

pytestmark = [pytest.mark.slow, SKIP_WITHOUT_CHROMIUM]
browser, shots = browser_support.browser, browser_support.shots  # the fixtures

SIZES = {"desktop": (1280, 900), "phone": (400, 850)}
RUN = "classes-run"
CLASSES = ["<b>bold<i>", "plain & simple"]  # Plotly would read the first as markup
PAGES = {
    "zoo": ("/", "#layers table", "#timeline .main-svg"),
    "design": ("/design", "#layers table"),
    "train": ("/train", "#f-epochs", "#curve"),
    "runs": ("/runs", f"#board a[href='/runs/{RUN}']", "#overlay .scatterlayer .trace"),
    "inspect": ("/inspect", "#run option", "#pad"),
    "widgets": ("/widgets", "#kernels table", "#res-grads .main-svg", "#bn-eval .main-svg", "#res-table table"),
    "experiments": ("/experiments", "#list table"),
    "sweeps": ("/sweeps", "#sweeps p"),
    "run": (f"/runs/{RUN}", "#curves .main-svg", "#per-class .xtick"),
}

# Every rectangle in CSS pixels of the viewport; clientWidth leaves out a vertical scrollbar.
LAYOUT = """
const page = document.documentElement;
const box = (e) => { const r = e.getBoundingClientRect(); return {left: r.left, right: r.right, top: r.top,
                                                                   bottom: r.bottom, width: r.width}; };
return {scrollWidth: page.scrollWidth, clientWidth: page.clientWidth,
        nav: [...document.querySelectorAll("nav a")].map((a) => ({text: a.textContent, ...box(a)}))};
"""
BUTTONS = """
return [...document.querySelectorAll("#list button")].map((b) => {
  const r = b.getBoundingClientRect(), c = b.closest(".card").getBoundingClientRect();
  return {button: [r.left, r.right, r.top, r.bottom], card: [c.left, c.right, c.top, c.bottom],
          viewport: document.documentElement.clientWidth};
});
"""


def make_run(root: Path, data: Path) -> None:
    """A 1-epoch lenet5 on a 2-class image folder (20 images, seconds on a CPU), evaluated so its page has charts."""
    import numpy as np
    from PIL import Image

    from cnnlab import train
    from cnnlab.lab import predict
    from cnnlab.lab.evaluation import evaluate_run

    rng = np.random.default_rng(0)
    for k, name in enumerate(CLASSES):
        (data / name).mkdir(parents=True)
        for i in range(10):
            pixels = rng.random((28, 28)) * (120 + 120 * k)
            Image.fromarray(pixels.astype("uint8")).save(data / name / f"{i}.png")
    train("lenet5", f"imagefolder:{data}", epochs=1, batch_size=4, out=str(root / RUN), quiet=True)
    evaluate_run(root / RUN, predict.Cache(root))


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    folder = tmp_path_factory.mktemp("layout")
    make_run(folder / "runs", folder / "data")
    with live_server(folder / "runs") as (url, _):
        yield url


def open_page(browser, url: str, size: str, page: str) -> None:
    browser.set_window_size(*SIZES[size])
    browser.get_log("browser")  # drop what earlier pages logged
    path, *ready = PAGES[page]
    browser.get(url + path)
    found = lambda d: all(d.find_elements(By.CSS_SELECTOR, selector) for selector in ready)  # noqa: E731
    wait(browser, found, 120, f"{page} did not finish loading at {size} size")


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("page", PAGES)
def test_page_fits_the_window(lab, browser, shots, size, page):
    open_page(browser, lab, size, page)
    layout = browser.execute_script(LAYOUT)
    screenshot(browser, shots, f"{page}-{size}")
    assert layout["scrollWidth"] <= layout["clientWidth"], f"{page} scrolls sideways at {size} size"
    assert [link["text"] for link in layout["nav"]] == [
        "Zoo",
        "Design",
        "Train",
        "Runs",
        "Inspect",
        "Widgets",
        "Experiments",
        "Sweeps",
    ]
    for link in layout["nav"]:
        assert link["width"] > 0 and 0 <= link["left"] and link["right"] <= layout["clientWidth"], link
    assert console_errors(browser) == []


@pytest.mark.parametrize("size", SIZES)
def test_experiment_run_buttons_sit_inside_their_card(lab, browser, size):
    open_page(browser, lab, size, "experiments")
    buttons = browser.execute_script(BUTTONS)
    assert len(buttons) >= 5  # one per registered experiment
    for b in buttons:
        (left, right, top, bottom), (c_left, c_right, c_top, c_bottom) = b["button"], b["card"]
        assert c_left <= left and right <= c_right and c_top <= top and bottom <= c_bottom, b
        assert 0 <= left and right <= b["viewport"], b


# The trace styles as Plotly drew them, and the legend's, plot area's and axis titles' rectangles.
TIMELINE = """
const plot = document.getElementById("timeline");
const box = (e) => { const r = e.getBoundingClientRect(); return [r.left, r.right, r.top, r.bottom]; };
return {styles: plot._fullData.map((t) => [t.name, t.marker.color, t.marker.symbol]),
        drawn: [...plot.querySelectorAll(".scatterlayer .trace")].map((t) => t.querySelector(".point").style.fill),
        legend: box(plot.querySelector(".legend")), area: box(plot.querySelector(".nsewdrag")),
        titles: [...plot.querySelectorAll(".g-xtitle, .g-ytitle")].map(box),
        modebar: plot.querySelectorAll(".modebar-btn").length};
"""


def overlaps(a, b) -> bool:
    return a[0] < b[1] and b[0] < a[1] and a[2] < b[3] and b[2] < a[3]


@pytest.mark.parametrize("size", SIZES)
def test_timeline_families_have_distinct_styles_and_the_legend_covers_nothing(lab, browser, size):
    open_page(browser, lab, size, "zoo")
    timeline = browser.execute_script(TIMELINE)
    styles = timeline["styles"]
    assert len(styles) >= 17  # the zoo's families
    assert len({(color, symbol) for _, color, symbol in styles}) == len(styles)
    assert len({color for _, color, _ in styles}) == min(len(styles), 20)  # no colour reused up to 20 traces
    assert len(timeline["drawn"]) == len(styles)
    assert not overlaps(timeline["legend"], timeline["area"]), timeline
    assert not any(overlaps(timeline["legend"], title) for title in timeline["titles"]), timeline
    assert timeline["modebar"] == 0  # no toolbar over the data


def test_class_names_read_as_written(lab, browser):
    open_page(browser, lab, "desktop", "run")
    ticks = browser.execute_script(
        "return [...document.querySelectorAll('#per-class .xtick text')].map((t) => t.textContent)"
    )
    assert ticks == CLASSES
    assert browser.find_elements(By.CSS_SELECTOR, "#per-class .xtick text tspan") == []  # no bold or italic run
    # plotText is an export of the plots module (the pages share no globals): imported as the page scripts do.
    escaped = browser.execute_async_script(
        "import('/static/plots.js').then((m) => arguments[0](m.plotText('<b>a & b</b>')))"
    )
    assert escaped == "&lt;b&gt;a &amp; b&lt;/b&gt;"


WIDGETS = """
const visible = (e) => { const r = e.getBoundingClientRect(), c = e.closest(".card").getBoundingClientRect();
                         return c.left <= r.left && r.right <= c.right; };
const header = [...document.querySelectorAll("#kernels th")].find((th) => th.textContent === "B saves");
return {values: document.getElementById("res-values").data.filter((t) => t.name).map((t) => [t.name, t.y]),
        saves: header ? visible(header) : null,
        note: document.querySelector("#kernels p").textContent,
        cells: [...document.querySelectorAll("#res-table td")].map((td) => td.textContent)};
"""


@pytest.mark.parametrize("size", SIZES)
def test_widgets_draw_three_blocks_and_read_as_numbers(lab, browser, size):
    open_page(browser, lab, size, "widgets")
    widgets = browser.execute_script(WIDGETS)
    names = [name for name, _ in widgets["values"]]
    assert names == ["F(x)", "H(x) = ReLU(F(x) + x)", "P(x) = ReLU(F(x))"]
    f, h, p = (y for _, y in widgets["values"])
    assert f != p and h != p and f != h  # F < 0 for x < 0.9, where the plain block's ReLU gives 0
    assert min(f) == pytest.approx(-0.4) and min(p) == 0
    assert widgets["saves"] is True  # the kernel table's saving column shows inside its card, not cut off
    assert "102,464 here, 102,400" in widgets["note"]  # 64 channels: 64·64·25 weights and 64 biases
    assert "1,024" in widgets["cells"]  # 10 residual blocks at x = 2: a gradient of 2 each
    assert not [c for c in widgets["cells"] if any(len(part) > 4 for part in c.split(".")[1:])]  # ≤ 4 decimals


def _type(browser, element_id: str, text: str) -> None:
    field = browser.find_element(By.ID, element_id)
    field.clear()
    field.send_keys(text)
    browser.execute_script("arguments[0].dispatchEvent(new Event('input'))", field)


def test_bad_input_gets_the_pages_words_and_clears_the_stale_result(lab, browser):
    """Errors name the field as the page labels it (not a CLI flag), and the result of the last good input goes."""
    open_page(browser, lab, "desktop", "widgets")
    wait(browser, lambda d: "measured output" in d.find_element(By.ID, "conv-result").text, 60)
    _type(browser, "conv-s", "5000")
    wait(browser, lambda d: d.find_element(By.ID, "conv-error").text, 60, "no error for a stride of 5000")
    assert browser.find_element(By.ID, "conv-error").text == "Stride must be a whole number from 1 to 4,096, got 5,000"
    assert browser.find_element(By.ID, "conv-result").text == ""
    _type(browser, "res-depth", "5000")
    wait(browser, lambda d: d.find_element(By.ID, "res-error").text, 60, "no error for a depth of 5000")
    assert browser.find_element(By.ID, "res-error").text == "Depth must be 1 to 1000, got 5000"
    assert browser.find_elements(By.CSS_SELECTOR, "#res-table table, #res-grads .main-svg") == []

    open_page(browser, lab, "desktop", "zoo")
    _type(browser, "detail-input", "224")
    browser.find_element(By.CSS_SELECTOR, "#models tr.clickable").click()
    wait(browser, lambda d: d.find_element(By.ID, "detail-error").text, 60, "no error for input '224'")
    assert browser.find_element(By.ID, "detail-error").text.startswith("Input size must look like 3x224x224")
    assert "--" not in browser.find_element(By.ID, "detail-error").text
    assert browser.find_elements(By.CSS_SELECTOR, "#layers table") == []
    # Chromium logs each refused request; nothing else may be logged (no script error).
    assert [e for e in console_errors(browser) if "status of 400 (Bad Request)" not in e] == []


def test_the_design_page_updates_as_you_type_and_marks_a_bad_layer(lab, browser, shots):
    open_page(browser, lab, "desktop", "design")
    script = (
        "return [...document.querySelectorAll('#layers tbody tr')].map((r) => r.innerText.split(/\\s+/).slice(0, 2))"
    )
    rows = lambda d: d.execute_script(script)  # noqa: E731  (one read: the table is replaced on every keystroke)
    wait(browser, lambda d: rows(d) and rows(d)[0] == ["conv1", "Conv2d"], 60, "no layer table for the preset")
    assert "61,706 parameters" in browser.find_element(By.ID, "totals").text  # LeNet-5 at 32x32
    _type(browser, "spec", "conv 8 k3 p1; relu; res(conv 8 k3 p1; bn; relu; conv 8 k3 p1; bn); gap; fc 10")
    _type(browser, "input", "1x28x28")
    wait(browser, lambda d: any(r[0].startswith("res1.body") for r in rows(d)), 60, "the table did not follow")
    assert "1,370 parameters" in browser.find_element(By.ID, "totals").text  # 80 + 2 * (584 + 16) + 90
    _type(browser, "spec", "conv 8 k3 p1; relu; convv 8 k3; fc 10")
    wait(browser, lambda d: d.find_element(By.ID, "error").text, 60, "no error for a misspelt layer")
    assert "unknown layer 'convv'" in browser.find_element(By.ID, "error").text
    assert browser.find_element(By.CSS_SELECTOR, "#marked mark").text == "convv 8 k3"
    assert browser.find_elements(By.CSS_SELECTOR, "#layers table") == []
    screenshot(browser, shots, "design-error")
    assert [e for e in console_errors(browser) if "status of 400 (Bad Request)" not in e] == []
