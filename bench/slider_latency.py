"""Slider-to-picture latency on the Latent space page, as a person feels it in the browser.

Starts the app, opens the Latent space page in headless Chromium, presses an arrow key on the z1 slider N times
(ten right, ten left, ...) and measures, for each press, the milliseconds until the decoded image's inline PNG
changes.
Prints p50 and p95, first with nothing else in the server, then while runs train in it: the tab starts a run on
the Train page and walks to the Latent space page by the sidebar (the run trains on), as a teacher does who
explores while the class's run trains. With --runs N, N - 1 more tabs each start a run and close (their runs train
on for the owner's grace time, as a student's does who closed the lid): with 3 runs on a 2-core server every core
trains, and the page's work competes with them for the CPU. Needs Debian's chromium (tests/install-chromium.sh).

    python bench/slider_latency.py [--presses 50] [--model digits-2d|digits] [--alone-only] [--runs 1,3]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._figures import Figure, emit  # noqa: E402
from tests.browser import browser_page, new_tab, serve_app, wait_for_idle  # noqa: E402
from vae.config import PRETRAINED  # noqa: E402

PICTURE = "img[alt='decoded from z']"
SWING = 10  # presses one way, then as many back
TRAINING_EPOCHS = 5000  # the run beside the sliders never ends during the measurement


def start_training(page, url: str) -> None:
    """Start a run on the Train page that outlasts the measurement."""
    page.goto(f"{url}/train?epochs={TRAINING_EPOCHS}")
    page.get_by_role("button", name="Start").click()
    page.locator(".epoch-counter").filter(has_text="Running").wait_for()


def open_latent_page(page, url: str, runs: int) -> None:
    """The Latent space page in `page`, with `runs` runs training: the first started by this tab, the others by
    tabs (sessions) of the same browser that close once they train."""
    for _ in range(runs - 1):
        other = new_tab(page.context.browser)
        start_training(other, url)
        other.close()
    if runs:
        start_training(page, url)
        page.get_by_role("link", name="Latent space").first.click()  # same session: its run goes on
        page.wait_for_url("**/latent**")
    else:
        page.goto(f"{url}/latent")
    wait_for_idle(page)


def measure(presses: int, model: str, runs: int) -> list[float]:
    with serve_app() as url, browser_page(height=900) as page:
        open_latent_page(page, url, runs)
        if model != "digits-2d" or runs:  # the page opens on the prior's favourite, or on the session's live run
            page.get_by_test_id("stSelectbox").first.click()
            page.get_by_role("option", name=f"Bundled: {PRETRAINED[model]}").first.click()
            wait_for_idle(page)
        slider = page.locator("[data-testid='stSlider']").filter(has_text="z1").first.get_by_role("slider")
        slider.focus()
        page.keyboard.press("ArrowLeft")  # one warm-up step
        page.wait_for_timeout(500)
        latencies = []
        for press in range(presses):
            before = page.locator(PICTURE).get_attribute("src")
            start = time.perf_counter()
            # Back and forth near the prior's centre: far out the decoder saturates, and a step there can leave
            # the picture as it was.
            page.keyboard.press("ArrowRight" if (press // SWING) % 2 == 0 else "ArrowLeft")
            page.wait_for_function(f"b => document.querySelector(\"{PICTURE}\").src !== b", arg=before,
                                   timeout=10_000, polling=5)
            latencies.append((time.perf_counter() - start) * 1000)
            page.wait_for_timeout(150)
        return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presses", type=int, default=50)
    parser.add_argument("--model", default="digits-2d", choices=["digits-2d", "digits"])
    parser.add_argument("--alone-only", action="store_true", help="skip the measurement while a run trains")
    parser.add_argument("--runs", default="1,3", help="how many runs train beside the sliders, one measurement "
                                                      "each (default 1,3)")
    args = parser.parse_args()
    figures = []
    for runs in [0] + ([] if args.alone_only else [int(n) for n in args.runs.split(",")]):
        latencies = np.array(measure(args.presses, args.model, runs))
        beside = {0: "", 1: ", a run training"}.get(runs, f", {runs} runs training")
        print(f"slider -> decoded picture, {args.model}{beside}, {len(latencies)} key presses: "
              f"p50 {np.percentile(latencies, 50):.0f} ms, p95 {np.percentile(latencies, 95):.0f} ms, "
              f"max {latencies.max():.0f} ms", flush=True)
        for name, percentile, target in (("p50", 50, 100.0), ("p95", 95, 250.0)):
            figures.append(Figure(f"slider -> picture {name} ({args.model}{beside})",
                                  float(np.percentile(latencies, percentile)), "ms", target, False,
                                  f"{latencies.min():.0f}-{latencies.max():.0f} over {len(latencies)} presses"))
    emit(figures)


if __name__ == "__main__":
    main()
