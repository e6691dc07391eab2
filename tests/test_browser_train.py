"""In Chromium, as a person would: press Start, see the chart grow in place, switch page and back."""

import re
import time
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.browser import browser_page, screenshot, serve_app, wait_for_idle
from vae.checkpoints import load_checkpoint

STATUS = re.compile(r"(Running|Paused|Finished) · .+? on \w+ · step ([\d,]+)")


@pytest.fixture(scope="module")
def app_url():
    with serve_app() as url:
        yield url


def status(page) -> tuple[str, int]:
    text = page.get_by_text(STATUS).first.inner_text()
    match = STATUS.search(text)
    return match.group(1), int(match.group(2).replace(",", ""))


def wait_for_step_beyond(page, step: int, timeout: float = 120) -> None:
    """Until the status line shows a step past `step` (a condition, however busy the machine)."""
    deadline = time.monotonic() + timeout
    while status(page)[1] <= step:
        assert time.monotonic() < deadline, f"the run did not pass step {step} within {timeout} s"
        page.wait_for_timeout(100)


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
        page.get_by_text(STATUS).filter(has_text="Running").first.wait_for(timeout=120_000)

        chart = page.frame_locator("iframe[title='pages._live_plot.live_plot']").first.locator(".js-plotly-plot")
        chart.wait_for(timeout=120_000)
        node = chart.element_handle()
        first_picture = chart.screenshot()
        _, first_step = status(page)
        wait_for_step_beyond(page, first_step + 20)
        state, later_step = status(page)
        assert state == "Running" and later_step > first_step
        # the curves grew... (plotly redraws inside the chart's frame just after the counter beside it changes)
        deadline = time.monotonic() + 60
        while chart.screenshot() == first_picture:
            assert time.monotonic() < deadline, "the training curves did not change within 60 s"
            page.wait_for_timeout(200)
        assert node.evaluate("e => e.isConnected")  # ...in the same DOM node: no remount, no flicker

        box = chart.bounding_box()  # drag a zoom box over the middle of the plot
        page.mouse.move(box["x"] + box["width"] * 0.4, box["y"] + box["height"] * 0.3)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + box["height"] * 0.5, steps=5)
        page.mouse.up()
        zoomed = x_range(node)
        wait_for_step_beyond(page, later_step + 20)  # several refreshes with new data
        assert x_range(node) == zoomed
        screenshot(page, "train-running")

        page.get_by_role("link", name="Lecture").first.click()
        wait_for_idle(page)
        live = page.locator("p", has_text="Live:")
        live.wait_for(timeout=120_000)
        assert "Running" in live.inner_text()
        screenshot(page, "lecture-live")

        page.get_by_role("link", name="Train").first.click()
        wait_for_idle(page)
        page.get_by_text(STATUS).first.wait_for(timeout=120_000)
        state, back_step = status(page)
        assert state in ("Running", "Finished") and back_step > later_step
        page.get_by_role("button", name="Pause").click()
        page.get_by_text(STATUS).filter(has_text="Paused").first.wait_for(timeout=120_000)
        screenshot(page, "train-paused")

        download_button = page.get_by_role("button", name="Download checkpoint")
        expect(download_button).to_be_enabled()  # the paused run's file is made, then offered
        wait_for_idle(page)  # a click during a refresh of the row can be lost
        with page.expect_download(timeout=120_000) as download:
            download_button.click()
        checkpoint = load_checkpoint(Path(download.value.path()))
        assert checkpoint.config.dataset == "digits" and checkpoint.metrics["step"] > 0


def test_uploaded_data_trains_and_hostile_files_are_refused_with_a_sentence(app_url, tmp_path):
    """A valid .npz is accepted and trains (the page once said "That file was refused" after Start: the upload
    was read a second time from its end); a decompression bomb is refused with the library's sentence; a file
    over the upload limit is refused by Streamlit, saying the limit."""
    import numpy as np

    from tests.hostile_npz import CASES_BY_ID
    from vae.data import MAX_UPLOAD_MB

    rng = np.random.default_rng(0)
    good = tmp_path / "my digits.npz"
    np.savez(good, x_train=rng.integers(0, 256, (200, 8, 8), dtype=np.uint8),
             x_test=rng.integers(0, 256, (50, 8, 8), dtype=np.uint8))
    bomb = CASES_BY_ID["zeros-bomb-500mb"].make(tmp_path)
    too_big = tmp_path / "too big.npz"
    too_big.write_bytes(bytes((MAX_UPLOAD_MB + 1) * 2**20))
    with browser_page(height=1100) as page:
        page.goto(app_url)
        wait_for_idle(page)
        page.get_by_role("button", name="More").click()
        upload = page.locator("input[type='file'][accept*='.npz']")
        upload.set_input_files(str(bomb))
        page.get_by_text("That file was refused").wait_for(timeout=120_000)
        assert page.locator("[data-testid='stException']").count() == 0
        screenshot(page, "train-upload-bomb")
        upload.set_input_files(str(too_big))
        page.get_by_text(f"{MAX_UPLOAD_MB}.0MB or smaller").or_(page.get_by_text(f"{MAX_UPLOAD_MB} MB")).first.wait_for(
            timeout=120_000)
        upload.set_input_files(str(good))
        page.get_by_text("200 training and 50 held-out images of 8×8").wait_for(timeout=120_000)
        epochs = page.get_by_role("spinbutton", name="Epochs", exact=True)
        epochs.fill("5000")  # still running when Stop is pressed: 200 images are a few steps an epoch
        epochs.press("Enter")
        wait_for_idle(page)
        page.keyboard.press("Escape")
        page.get_by_role("combobox", name="Which data?").click()
        page.get_by_role("option", name="My own .npz file").click()
        wait_for_idle(page)
        page.get_by_role("button", name="Start").click()
        page.get_by_text(STATUS).filter(has_text="Running").first.wait_for(timeout=120_000)
        assert "my digits.npz on" in page.get_by_text(STATUS).first.inner_text()
        page.get_by_role("button", name="More").click()
        page.get_by_text("200 training and 50 held-out images of 8×8").wait_for(timeout=120_000)
        assert page.get_by_text("That file was refused").count() == 0
        page.keyboard.press("Escape")
        wait_for_step_beyond(page, 100)
        screenshot(page, "train-upload-running")
        page.get_by_role("button", name="Stop").click()
