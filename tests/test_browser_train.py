"""In Chromium, as a person would: press Start, see the chart grow in place, switch page and back."""

import re
from pathlib import Path

import pytest

from tests.browser import browser_page, screenshot, serve_app, wait_for_idle
from vae.checkpoints import load_checkpoint

STATUS = re.compile(r"(Running|Paused|Finished) · on \w+ · epoch (\d+)/(\d+) · step ([\d,]+)")


@pytest.fixture(scope="module")
def app_url():
    with serve_app() as url:
        yield url


def status(page) -> tuple[str, int]:
    text = page.locator("h4").filter(has_text=STATUS).first.inner_text()
    match = STATUS.search(text)
    return match.group(1), int(match.group(4).replace(",", ""))


def test_start_grow_switch_page_and_back(app_url):
    with browser_page(height=1100) as page:
        page.goto(app_url)
        wait_for_idle(page)
        page.get_by_role("button", name="Start").click()
        page.locator("h4").filter(has_text="Running").wait_for(timeout=30_000)

        chart = page.locator("[data-testid='stVegaLiteChart']").first
        chart.wait_for()
        node = chart.element_handle()
        first_picture = chart.screenshot()
        _, first_step = status(page)
        page.wait_for_timeout(2_000)
        state, later_step = status(page)
        assert state == "Running" and later_step > first_step
        assert chart.screenshot() != first_picture  # the curves grew...
        assert node.evaluate("e => e.isConnected")  # ...in the same DOM node: no remount, no flicker
        screenshot(page, "train-running")

        page.get_by_test_id("stSidebarNavItems").get_by_role("link", name="Lecture").click()
        wait_for_idle(page)
        live = page.locator("p", has_text="Live:")
        live.wait_for(timeout=10_000)
        assert "Running" in live.inner_text()
        screenshot(page, "lecture-live")

        page.get_by_test_id("stSidebarNavItems").get_by_role("link", name="Train").click()
        wait_for_idle(page)
        page.locator("h4").filter(has_text=STATUS).first.wait_for(timeout=10_000)
        state, back_step = status(page)
        assert state in ("Running", "Finished") and back_step > later_step
        page.get_by_role("button", name="Pause").click()
        page.locator("h4").filter(has_text="Paused").wait_for(timeout=10_000)
        screenshot(page, "train-paused")

        with page.expect_download() as download:
            page.get_by_role("button", name="Download checkpoint").click()
        checkpoint = load_checkpoint(Path(download.value.path()))
        assert checkpoint.config.dataset == "digits" and checkpoint.metrics["step"] > 0
