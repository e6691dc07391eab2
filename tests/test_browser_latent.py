"""In Chromium: moving a latent slider changes the decoded picture, without rerunning the whole page; the bound
section is readable at 1280x720."""

from playwright.sync_api import TimeoutError as PlaywrightTimeout

from tests.browser import browser_page, screenshot, serve_app, wait_for_idle
from tests.test_browser_estimators import CHART_TEXTS, chart_problems, has_axis_texts


def decoded_picture(page) -> str:
    return page.get_by_role("img", name="decoded from z").get_attribute("src")


def test_slider_changes_the_decoded_image():
    with serve_app() as url, browser_page(height=1000) as page:
        page.goto(f"{url}/latent")
        wait_for_idle(page)
        page.get_by_role("heading", name="Walk the latent space").wait_for(timeout=120_000)
        before = decoded_picture(page)
        slider = page.locator("[data-testid='stSlider']").filter(has_text="z1").first.get_by_role("slider")
        slider.focus()
        for _ in range(10):
            page.keyboard.press("ArrowRight")
        page.wait_for_function("before => document.querySelector(\"img[alt='decoded from z']\").src !== before",
                               arg=before, timeout=120_000)
        assert decoded_picture(page) != before
        screenshot(page, "latent-explorer")
        page.get_by_role("button", name="Random draw").click()
        wait_for_idle(page)
        screenshot(page, "latent-random-draw")


POINT_OF_IMAGE_0 = """el => {
    const trace = el._fullData.find(t => Array.from(t.customdata).includes(0));
    const i = Array.from(trace.customdata).indexOf(0), layout = el._fullLayout;
    const box = el.getBoundingClientRect();
    return [box.left + layout._size.l + layout.xaxis.l2p(trace.x[i]),
            box.top + layout._size.t + layout.yaxis.l2p(trace.y[i]), [trace.x[i], trace.y[i]]];
}"""


def settled_point(page, chart) -> tuple[float, float, list[float]]:
    """Where plotly drew test image 0's point, once the chart has stopped resizing (two equal readings)."""
    previous = None
    while True:
        current = chart.evaluate(POINT_OF_IMAGE_0)
        if current == previous:
            return current
        previous = current
        page.evaluate("() => new Promise(done => setTimeout(done, 250))")  # the next reading, not a fixed wait


def test_clicking_the_map_moves_the_sliders_there():
    with serve_app() as url, browser_page(height=1000) as page:
        page.goto(f"{url}/latent")
        wait_for_idle(page)
        chart = page.locator("[data-testid='stPlotlyChart'] .js-plotly-plot").first
        chart.scroll_into_view_if_needed()
        chart.wait_for(timeout=120_000)
        z1 = page.locator("[data-testid='stSlider']").filter(has_text="z1").first.get_by_role("slider")
        for _ in range(3):  # a click while the chart was still settling can miss the point: aim again
            x, y, point = settled_point(page, chart)
            page.mouse.click(x, y)
            wait_for_idle(page)
            try:
                page.wait_for_function("e => parseFloat(e.value) !== 0", arg=z1.element_handle(), timeout=120_000)
                break
            except PlaywrightTimeout:
                continue
        assert abs(float(z1.input_value()) - point[0]) <= 0.026  # the slider's step is 0.05
        screenshot(page, "latent-clicked")


def test_uploads_are_checked(tmp_path):
    from vae.config import PRETRAINED_DIR

    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"definitely not a checkpoint")
    with serve_app() as url, browser_page(height=1000) as page:
        page.goto(f"{url}/latent")
        wait_for_idle(page)
        page.get_by_test_id("stSelectbox").first.click()
        page.get_by_role("option", name="Upload a checkpoint (.safetensors)").click()
        wait_for_idle(page)
        upload = page.locator("input[type='file'][accept*='.safetensors']")  # not the app's hidden preloaded one
        upload.set_input_files(str(broken))
        page.get_by_text("That checkpoint was refused").wait_for(timeout=120_000)
        assert page.locator("[data-testid='stException']").count() == 0  # a sentence, never a traceback
        screenshot(page, "latent-bad-upload")
        upload.set_input_files(str(PRETRAINED_DIR / "digits.safetensors"))
        page.get_by_role("img", name="decoded from z").wait_for(timeout=120_000)
        assert page.get_by_text("That checkpoint was refused").count() == 0


def test_the_bound_section_is_readable_at_1280x720():
    """The L_K curve and the SNR chart: drawn, every text at least 16 px, nothing clipped or overlapping; in
    presentation mode (larger text) behind an expander."""
    with serve_app() as url, browser_page() as page:
        page.goto(f"{url}/latent")
        heading = page.get_by_role("heading", name="How tight is the bound?")
        heading.wait_for(timeout=180_000)
        wait_for_idle(page, timeout=180_000)
        charts = bound_charts(page)
        assert "nats per example" in {t["text"] for t in charts["bound"]["texts"]}
        assert {"encoder", "decoder"} <= {t["text"] for t in charts["snr"]["texts"]}
        heading.scroll_into_view_if_needed()
        screenshot(page, "latent-bound-1280x720")
        problems = [p for name, chart in charts.items() for p in chart_problems(name, chart)]

        page.goto(f"{url}/latent?present=1")
        wait_for_idle(page, timeout=180_000)
        page.get_by_text("How tight is the bound?").click()  # the expander
        wait_for_idle(page)
        charts = bound_charts(page)
        screenshot(page, "latent-bound-presentation-1280x720")
        problems += [p for name, chart in charts.items() for p in chart_problems(f"presentation {name}", chart)]
        assert page.locator("[data-testid='stException']").count() == 0
        assert not problems, problems


def bound_charts(page) -> dict[str, dict]:
    """The texts of the section's two charts (the last two on the page), scrolled into view."""
    plots = page.locator("[data-testid='stPlotlyChart'] .js-plotly-plot")
    bound, snr = plots.nth(plots.count() - 2), plots.nth(plots.count() - 1)
    bound.scroll_into_view_if_needed()
    charts = {"bound": bound.evaluate(CHART_TEXTS), "snr": snr.evaluate(CHART_TEXTS)}
    assert all(has_axis_texts(chart) for chart in charts.values())
    return charts
