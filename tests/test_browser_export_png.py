"""Each figure saves as PNG from plotly's own toolbar: a static chart (the Estimators histogram) and a live one
(the Train page's curves, drawn in their own frame). The file that arrives is a PNG of the chart's size."""

from __future__ import annotations

import struct

import pytest
from playwright.sync_api import Locator, Page

from tests.browser import browser_page, serve_app, wait_for_idle

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SAVE_BUTTON = "[data-title='Download plot as a png' i]"


def saved_png(page: Page, chart: Locator) -> bytes:
    chart.hover()  # plotly shows its toolbar on hover
    with page.expect_download() as download:
        chart.locator(SAVE_BUTTON).click()
    return download.value.path().read_bytes()


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG_MAGIC, data[:16]
    return struct.unpack(">II", data[16:24])  # the IHDR chunk: width, height


@pytest.mark.timeout(600)
def test_static_and_live_charts_save_as_png():
    with serve_app() as server, browser_page() as page:
        page.goto(f"{server}/estimators")
        page.get_by_text("The variance lab").wait_for()
        wait_for_idle(page)
        histogram = page.locator(".st-key-estimators-histogram .js-plotly-plot").first
        histogram.wait_for()
        width, height = png_size(saved_png(page, histogram))
        assert width >= 400 and height >= 300

        page.goto(server)
        page.get_by_role("button", name="Start").wait_for()
        wait_for_idle(page)
        frame = page.frame_locator(".st-key-live-frame-train-step_chart iframe")
        curves = frame.locator(".js-plotly-plot").first
        curves.wait_for()
        width, height = png_size(saved_png(page, curves))
        assert width >= 300 and height >= 200
