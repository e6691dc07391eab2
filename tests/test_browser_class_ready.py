"""In front of a class, at 1280x720: the settings keep their values, the Train page fits one screen, nothing
blinks while a run goes on, and nothing on a page moves after it first appears."""

from __future__ import annotations

import json
import re

import pytest

from tests.browser import browser_page, screenshot, serve_app, wait_for_idle
from vae.config import preset_config

WIDTH, HEIGHT = 1280, 720
MORE_SETTINGS = {"Learning rate (Adam)": "lr", "Batch size": "batch_size", "Epochs": "epochs"}
EPOCH_COUNTER = re.compile(r"Epoch [\d,]+ / [\d,]+")


@pytest.fixture(scope="module")
def app_url():
    with serve_app() as url:
        yield url


def expected_more_settings() -> dict[str, float]:
    config = preset_config("digits")
    return {label: float(getattr(config, field)) for label, field in MORE_SETTINGS.items()}


def read_more_settings(page) -> dict[str, float]:
    """Open the More popover, read its numbers, close it."""
    page.get_by_role("button", name="More").click()
    values = {}
    for label in MORE_SETTINGS:
        field = page.get_by_role("spinbutton", name=label, exact=True)
        field.wait_for()
        values[label] = float(field.input_value())
    page.keyboard.press("Escape")
    page.get_by_role("spinbutton", name="Epochs", exact=True).wait_for(state="hidden")
    return values


def set_beta(page, value: str) -> None:
    """Any change that reruns the page before More is first opened."""
    beta = page.get_by_role("spinbutton", name="β (KL weight)")
    beta.fill(value)
    beta.press("Enter")
    wait_for_idle(page)


def press(page, name: str, then: str) -> None:
    page.get_by_role("button", name=name, exact=True).click()
    page.get_by_text(then).first.wait_for(timeout=120_000)


def test_more_settings_keep_the_presets_values_through_a_lesson(app_url):
    """The popover's widgets mount only when it opens; drawn without explicit values they showed their minimums
    (learning rate 1e-5, batch size 1, epochs 1), and the next Start trained with them."""
    expected = expected_more_settings()
    seen = []
    with browser_page(WIDTH, HEIGHT) as page:
        for _ in range(2):
            page.goto(app_url)
            wait_for_idle(page)
            set_beta(page, "1.5")  # a rerun before the popover is first opened
            seen.append(("after a rerun", read_more_settings(page)))
            page.get_by_role("link", name="Lecture").first.click()
            wait_for_idle(page)
            page.get_by_role("link", name="Train").first.click()
            wait_for_idle(page)
            seen.append(("after a page visit", read_more_settings(page)))
            press(page, "Start", "Running")
            seen.append(("right after Start", read_more_settings(page)))
            press(page, "Pause", "Paused")
            seen.append(("after Pause", read_more_settings(page)))
            page.get_by_role("button", name="Stop", exact=True).click()
            page.get_by_text("Stopped").first.wait_for()
            page.reload()
            wait_for_idle(page)
            set_beta(page, "2")
            seen.append(("after a reload", read_more_settings(page)))
    assert [(moment, values) for moment, values in seen if values != expected] == []


def boxes(page, selectors: dict[str, str]) -> dict[str, dict]:
    found = {}
    for name, selector in selectors.items():
        locator = page.locator(selector)
        assert locator.count() >= 1, f"{name} is missing"
        found[name] = [locator.nth(i).bounding_box() for i in range(locator.count())]
    return found


MAIN = "[data-testid='stMainBlockContainer']"  # not the top bar (a busy server shows its own "Stop" there)
TRAIN_ESSENTIALS = {
    "title": f"{MAIN} h3:has-text('Train a VAE')",
    "start": f"{MAIN} button:has-text('Start')",
    "stop": f"{MAIN} button:has-text('Stop')",
    "charts": "iframe[title='pages._live_plot.live_plot']",
    "pictures": f"{MAIN} img[src^='data:image/png']",
}


def assert_on_first_screen(page, top_bar_bottom: float) -> None:
    found = boxes(page, TRAIN_ESSENTIALS)
    assert len(found["charts"]) == 2 and len(found["pictures"]) == 2
    for name, rects in found.items():
        for rect in rects:
            assert rect["y"] >= top_bar_bottom - 1, f"{name} is under the top bar: {rect}"
            assert rect["y"] + rect["height"] <= HEIGHT, f"{name} is below the fold: {rect}"
            assert rect["x"] >= 0 and rect["x"] + rect["width"] <= WIDTH, f"{name} is cut at the side: {rect}"


def top_bar_bottom(page) -> float:
    header = page.locator("header[data-testid='stHeader']").bounding_box()
    return header["y"] + header["height"]


@pytest.mark.parametrize("mode", ["normal", "presentation"])
def test_the_train_page_fits_one_projector_screen(app_url, mode):
    """Controls, both curves and the pictures without scrolling, the title clear of the top bar: on the bundled
    run the page opens on, and while a run trains."""
    with browser_page(WIDTH, HEIGHT) as page:
        page.goto(app_url + ("/?present=1" if mode == "presentation" else ""))
        wait_for_idle(page)
        page.locator("iframe[title='pages._live_plot.live_plot']").nth(1).wait_for()
        assert page.get_by_role("switch", name="Presentation mode").is_checked() == (mode == "presentation")
        bar = top_bar_bottom(page)
        assert_on_first_screen(page, bar)
        screenshot(page, f"train-bundled-{mode}")
        press(page, "Start", "Running")
        page.get_by_text(re.compile(r"Epoch [1-9][\d,]* / ")).wait_for()  # the live run has curves and pictures
        assert_on_first_screen(page, bar)
        assert page.evaluate("document.scrollingElement.scrollTop") == 0
        screenshot(page, f"train-running-{mode}")
        page.get_by_role("button", name="Stop", exact=True).click()
        page.get_by_text("Stopped").first.wait_for()


# Records, on every animation frame, whether anything flickers: Streamlit's running indicator shown, an element
# faded while the fragment that draws it reruns, or the page hidden while something on it loads.
FLICKER_PROBE = """() => {
  window.flicker = {frames: 0, indicator: 0, faded: 0, hidden: 0};
  const main = () => document.querySelector("[data-testid='stMainBlockContainer']");
  const tick = () => {
    window.flicker.frames += 1;
    const status = document.querySelector("[data-testid='stStatusWidget']");
    if (status && status.checkVisibility({visibilityProperty: true, opacityProperty: true})
        && status.getBoundingClientRect().width > 0) window.flicker.indicator += 1;
    if (!main().checkVisibility({visibilityProperty: true, opacityProperty: true})) window.flicker.hidden += 1;
    for (const element of document.querySelectorAll("[data-stale='true']")) {
      if (parseFloat(getComputedStyle(element).opacity) < 0.99) { window.flicker.faded += 1; break; }
    }
    requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
}"""


def test_nothing_blinks_while_a_run_trains(app_url):
    """The header's running indicator flashed on every 2 Hz refresh; nothing may flicker in front of a class."""
    with browser_page(WIDTH, HEIGHT) as page:
        page.goto(app_url)
        wait_for_idle(page)
        press(page, "Start", "Running")
        counter = page.get_by_text(EPOCH_COUNTER).first
        counter.wait_for()
        page.evaluate(FLICKER_PROBE)
        header = page.locator("header[data-testid='stHeader']")
        first_header = header.screenshot()
        seen = {counter.inner_text()}
        while len(seen) < 8:  # eight refreshes of the live view, however long a busy machine takes
            page.wait_for_function("text => !document.body.innerText.includes(text)", arg=counter.inner_text())
            seen.add(counter.inner_text())
            assert header.screenshot() == first_header  # the top bar never changes while the run goes on
        flicker = page.evaluate("window.flicker")
        page.get_by_role("button", name="Stop", exact=True).click()
    assert flicker["frames"] > 20
    assert flicker["indicator"] == flicker["faded"] == flicker["hidden"] == 0, flicker


# Where each heading and paragraph first appeared on screen and where it is now; a formula or chart that pops in
# pushes the text below it.
# Text of the page itself: the app's chrome (the top bar's switch) lives in a 1 px box that clips it until styled.
TEXT = "[data-testid='stMainBlockContainer'] :is(h1, h2, h3, p):not(.st-key-app_chrome *)"
# Texts are keyed by their words and which occurrence of those words they are: a page may show "Family" or a
# slider's "0.00" twice, and two different elements are not one element that moved.
KEYED_TEXTS = """selector => {
  const seen = {};
  return [...document.querySelectorAll(selector)].map(text => {
    const words = text.textContent.slice(0, 80);
    seen[words] = (seen[words] || 0) + 1;
    return [`${words} #${seen[words]}`, text];
  });
}"""
LAYOUT_PROBE = f"""selector => {{
  const keyedTexts = {KEYED_TEXTS};
  window.firstSeen = {{}};
  const tick = () => {{
    for (const [key, text] of keyedTexts(selector)) {{
      const top = text.getBoundingClientRect().top;
      const shown = text.checkVisibility({{visibilityProperty: true, opacityProperty: true}});
      const onScreen = shown && top >= 0 && top < innerHeight;
      if (onScreen && !(key in window.firstSeen)) window.firstSeen[key] = top + document.scrollingElement.scrollTop;
    }}
    requestAnimationFrame(tick);
  }};
  tick();
}}"""
NOW = f"""selector => Object.fromEntries(({KEYED_TEXTS})(selector).map(
  ([key, text]) => [key, text.getBoundingClientRect().top + document.scrollingElement.scrollTop]))"""


@pytest.mark.parametrize(("path", "formulas"), [("/lecture", 5), ("/reparameterization", 1)])
def test_nothing_moves_after_it_first_appears(path, formulas):
    """Formulas were drawn a second or two after the text around them and pushed it down. A fresh server and
    browser each time: the formula script must not be in the browser's cache already."""
    with serve_app() as url, browser_page(WIDTH, HEIGHT) as page:
        page.add_init_script(f"({LAYOUT_PROBE})({json.dumps(TEXT)})")
        page.goto(url + path)
        wait_for_idle(page)
        page.wait_for_function(f"document.querySelectorAll('.katex').length >= {formulas}")
        page.wait_for_function("Object.keys(window.firstSeen).length >= 3")
        page.wait_for_function("document.fonts.status === 'loaded'")
        page.evaluate("() => new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))")
        first, now = page.evaluate("window.firstSeen"), page.evaluate(NOW, TEXT)
        assert page.locator("[data-testid='stException']").count() == 0
    moved = {text: (first[text], now[text]) for text in first if text in now and abs(first[text] - now[text]) > 1}
    assert moved == {}
