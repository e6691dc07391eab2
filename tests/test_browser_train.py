"""In Chromium, as a person would: press Start, see the chart grow in place, switch page and back."""

import re
from pathlib import Path

import pytest

from tests.browser import browser_page, screenshot, serve_app, wait_for_idle
from vae.checkpoints import load_checkpoint

STATUS = re.compile(r"(Running|Paused|Finished) · \S+ on \w+ · step ([\d,]+)")


@pytest.fixture(scope="module")
def app_url():
    with serve_app() as url:
        yield url


def status(page) -> tuple[str, int]:
    text = page.get_by_text(STATUS).first.inner_text()
    match = STATUS.search(text)
    return match.group(1), int(match.group(2).replace(",", ""))


def x_range(plot) -> list[float]:
    return plot.evaluate("p => p._fullLayout.xaxis.range.slice()")


def test_start_grow_switch_page_and_back(app_url):
    with browser_page(height=1100) as page:
        page.goto(app_url)
        wait_for_idle(page)
        page.get_by_role("button", name="More").click()
        epochs = page.get_by_role("spinbutton", name="Epochs", exact=True)
        epochs.fill("5000")  # long enough to still be running after the page visits
        epochs.press("Enter")
        wait_for_idle(page)
        page.keyboard.press("Escape")  # close the popover
        page.get_by_role("button", name="Start").click()
        page.get_by_text(STATUS).filter(has_text="Running").first.wait_for(timeout=30_000)

        chart = page.frame_locator("iframe[title='pages._live_plot.live_plot']").first.locator(".js-plotly-plot")
        chart.wait_for(timeout=30_000)
        node = chart.element_handle()
        first_picture = chart.screenshot()
        _, first_step = status(page)
        page.wait_for_timeout(2_000)
        state, later_step = status(page)
        assert state == "Running" and later_step > first_step
        assert chart.screenshot() != first_picture  # the curves grew...
        assert node.evaluate("e => e.isConnected")  # ...in the same DOM node: no remount, no flicker

        box = chart.bounding_box()  # drag a zoom box over the middle of the plot
        page.mouse.move(box["x"] + box["width"] * 0.4, box["y"] + box["height"] * 0.3)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + box["height"] * 0.5, steps=5)
        page.mouse.up()
        zoomed = x_range(node)
        page.wait_for_timeout(1_500)  # three refreshes with new data
        assert status(page)[1] > later_step and x_range(node) == zoomed
        screenshot(page, "train-running")

        page.get_by_role("link", name="Lecture").first.click()
        wait_for_idle(page)
        live = page.locator("p", has_text="Live:")
        live.wait_for(timeout=10_000)
        assert "Running" in live.inner_text()
        screenshot(page, "lecture-live")

        page.get_by_role("link", name="Train").first.click()
        wait_for_idle(page)
        page.get_by_text(STATUS).first.wait_for(timeout=10_000)
        state, back_step = status(page)
        assert state in ("Running", "Finished") and back_step > later_step
        page.get_by_role("button", name="Pause").click()
        page.get_by_text(STATUS).filter(has_text="Paused").first.wait_for(timeout=10_000)
        screenshot(page, "train-paused")

        with page.expect_download() as download:
            page.get_by_role("button", name="Download checkpoint").click()
        checkpoint = load_checkpoint(Path(download.value.path()))
        assert checkpoint.config.dataset == "digits" and checkpoint.metrics["step"] > 0
