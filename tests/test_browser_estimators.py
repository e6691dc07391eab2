"""In Chromium at 1280x720: the toy lab's controls and its histogram of all three estimators on the first screen,
every chart of the Estimators page readable on a projector (no clipped or overlapping text, nothing under 16 px),
and the estimator race running live, both curves on one chart."""

from __future__ import annotations

import pytest
from playwright.sync_api import Frame, Page

from tests.browser import browser_page, screenshot, serve_app, wait_for_idle

MIN_FONT_PX = 16
WIDTH, HEIGHT = 1280, 720
LIVE_CHART = "iframe[title='pages._live_plot.live_plot']"
# What a teacher needs on the first screen: the cost, the sliders, and the histogram of the three estimators.
FIRST_SCREEN = (".st-key-estimators-cost", ".st-key-estimators-mu", ".st-key-estimators-sigma",
                "[class*='st-key-estimators-k-']", ".st-key-estimators-K", ".st-key-estimators-histogram")
ESTIMATOR_NAMES = ("pathwise", "score function", "measure-valued")

# Every visible text of one plotly chart: its class (xtick, ytitle, legendtext...), box and smallest font size
# (a <tspan> such as an exponent's superscript can be smaller than its <text>), and the box of the chart's svg.
CHART_TEXTS = """(plot) => {
  const box = (el) => { const r = el.getBoundingClientRect();
                        return {left: r.left, top: r.top, right: r.right, bottom: r.bottom}; };
  const kind = (el) => el.getAttribute('class') || el.parentNode.getAttribute('class') || 'text';
  const size = (el) => Math.min(...[el, ...el.querySelectorAll('tspan')]
                                .map(e => parseFloat(getComputedStyle(e).fontSize)));
  const texts = [...plot.querySelectorAll('svg text')]
    .filter(t => t.textContent.trim() && t.getBoundingClientRect().width > 0)
    .map(t => ({text: t.textContent, kind: kind(t), box: box(t), size: size(t)}));
  return {svg: box(plot.querySelector('.svg-container')), texts: texts};
}"""


def chart_problems(name: str, chart: dict) -> list[str]:
    """Sentences for each text that is clipped by the chart's svg, overlaps another text, or is too small."""
    svg, texts, problems = chart["svg"], chart["texts"], []
    for text in texts:
        box = text["box"]
        if box["left"] < svg["left"] - 0.5 or box["right"] > svg["right"] + 0.5 or \
                box["top"] < svg["top"] - 0.5 or box["bottom"] > svg["bottom"] + 0.5:
            problems.append(f"{name}: {text['kind']} {text['text']!r} is clipped ({box} outside {svg})")
        if text["size"] < MIN_FONT_PX:
            problems.append(f"{name}: {text['kind']} {text['text']!r} is {text['size']} px")
    for i, first in enumerate(texts):
        for second in texts[i + 1:]:
            if _overlap(first["box"], second["box"]):
                problems.append(f"{name}: {first['kind']} {first['text']!r} overlaps {second['kind']} "
                                f"{second['text']!r}")
    return problems


def _overlap(a: dict, b: dict, tolerance: float = 1.0) -> bool:
    width = min(a["right"], b["right"]) - max(a["left"], b["left"])
    height = min(a["bottom"], b["bottom"]) - max(a["top"], b["top"])
    return width > tolerance and height > tolerance


def has_axis_texts(chart: dict) -> bool:
    kinds = {text["kind"] for text in chart["texts"]}
    return {"xtitle", "ytitle"} <= kinds and any("tick" in kind for kind in kinds)


def off_the_first_screen(page: Page) -> list[str]:
    """The first screen's elements that are not wholly inside the 1280x720 viewport."""
    problems = []
    for selector in FIRST_SCREEN:
        box = page.locator(selector).first.bounding_box()
        if box is None or box["x"] < 0 or box["y"] < 0 or box["x"] + box["width"] > WIDTH or \
                box["y"] + box["height"] > HEIGHT:
            problems.append(f"{selector} is not on the first screen: {box}")
    return problems


def legend_names(chart: dict) -> set[str]:
    return {name for text in chart["texts"] if "legend" in text["kind"] for name in ESTIMATOR_NAMES
            if text["text"].startswith(name)}


def static_charts(page: Page) -> list[dict]:
    return [plot.evaluate(CHART_TEXTS) for plot in page.locator("[data-testid='stPlotlyChart'] .js-plotly-plot").all()]


def live_frames(page: Page) -> list[Frame]:
    return [handle.content_frame() for handle in page.locator(LIVE_CHART).element_handles()]


def wait_for_race_data(frame: Frame, points: int = 2) -> None:
    """Until every trace of the live chart has `points` points (the race has run for a while)."""
    frame.wait_for_function(
        "(n) => { const p = document.querySelector('.js-plotly-plot');"
        " return p && p.calcdata && p.calcdata.length >= 2 && p.calcdata.every(c => c.length >= n); }",
        arg=points, timeout=180_000)


@pytest.mark.parametrize("mode", ["normal", "presentation"])
def test_estimator_charts_are_readable_at_1280x720_and_the_race_runs_live(mode):
    query = "?present=1" if mode == "presentation" else ""
    with serve_app() as url, browser_page() as page:
        page.goto(f"{url}/estimators{query}")
        page.get_by_role("heading", name="Which gradient estimator?").wait_for(timeout=120_000)
        wait_for_idle(page, timeout=120_000)
        page.locator("[data-testid='stPlotlyChart']").nth(2).wait_for(timeout=120_000)  # toy lab and the VAE
        page.wait_for_timeout(1000)  # the charts' last layout pass
        screenshot(page, f"estimators-{mode}-first-screen")
        problems = off_the_first_screen(page)
        charts = static_charts(page)
        assert len(charts) >= 3 and all(has_axis_texts(chart) for chart in charts)
        assert legend_names(charts[0]) == legend_names(charts[1]) == set(ESTIMATOR_NAMES)  # histogram, curve
        problems += [p for i, chart in enumerate(charts) for p in chart_problems(f"chart {i + 1}", chart)]
        for i, chart in enumerate(page.locator("[data-testid='stPlotlyChart']").all()):
            chart.scroll_into_view_if_needed()
            screenshot(page, f"estimators-{mode}-chart-{i + 1}")

        page.get_by_role("button", name="Start the race").click()
        wait_for_idle(page, timeout=120_000)
        page.locator(LIVE_CHART).nth(1).wait_for(timeout=120_000)
        frames = live_frames(page)
        for frame in frames:
            wait_for_race_data(frame)
        page.locator(LIVE_CHART).first.scroll_into_view_if_needed()
        screenshot(page, f"estimators-{mode}-race")
        legend = frames[0].locator(".legendtext").all_text_contents()
        assert any("pathwise" in t for t in legend) and any("score function" in t for t in legend)
        for i, frame in enumerate(frames):
            chart = frame.locator(".js-plotly-plot").evaluate(CHART_TEXTS)
            assert has_axis_texts(chart)
            problems += chart_problems(f"race chart {i + 1}", chart)
        page.get_by_role("button", name="Stop").click()
        assert not problems, "\n".join(problems)
