"""Slider-to-picture latency on the Latent space page, as a person feels it in the browser.

Starts the app, opens the Latent space page in headless Chromium, presses an arrow key on the z1 slider N times
(ten right, ten left, ...) and measures, for each press, the milliseconds until the decoded image's inline PNG
changes.
Prints p50 and p95, first with nothing else in the server, then while a run trains in it: a second tab of the
same browser opens the Train page and presses Start, as a teacher does who explores while the class's run
trains. Needs Debian's chromium (tests/install-chromium.sh).

    python bench/slider_latency.py [--presses 50] [--model digits-2d|digits] [--alone-only]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._figures import Figure, emit  # noqa: E402
from tests.browser import browser_page, patient, serve_app, wait_for_idle  # noqa: E402

PICTURE = "img[alt='decoded from z']"
SWING = 10  # presses one way, then as many back
TRAINING_EPOCHS = 5000  # the run beside the sliders never ends during the measurement


def start_training(page, url: str) -> None:
    """Open the Train page in a second tab (its own session) of `page`'s browser and start a run that outlasts
    the measurement."""
    train = patient(page.context.browser.new_page(viewport={"width": 1280, "height": 720}))
    train.goto(f"{url}/train?epochs={TRAINING_EPOCHS}")
    train.get_by_role("button", name="Start").click()
    train.locator(".epoch-counter").filter(has_text="Running").wait_for()


def measure(presses: int, model: str, while_training: bool) -> list[float]:
    with serve_app() as url, browser_page(height=900) as page:
        if while_training:
            start_training(page, url)
        page.goto(f"{url}/latent")
        wait_for_idle(page)
        if model != "digits-2d":
            page.get_by_test_id("stSelectbox").first.click()
            page.get_by_role("option", name=f"Bundled: {model}", exact=False).first.click()
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
    args = parser.parse_args()
    figures = []
    for while_training in (False,) if args.alone_only else (False, True):
        latencies = np.array(measure(args.presses, args.model, while_training))
        beside = ", a run training" if while_training else ""
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
