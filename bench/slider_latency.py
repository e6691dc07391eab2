"""Slider-to-picture latency on the Latent space page, as a person feels it in the browser.

Starts the app, opens the Latent space page in headless Chromium, presses the right-arrow key on the z1
slider N times and measures, for each press, the milliseconds until the decoded image's inline PNG changes.
Prints p50 and p90. Needs Debian's chromium (tests/install-chromium.sh).

    python bench/slider_latency.py [--presses 30] [--model digits-2d|digits]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._figures import Figure, emit  # noqa: E402
from tests.browser import browser_page, serve_app, wait_for_idle  # noqa: E402

PICTURE = "img[alt='decoded from z']"


def measure(presses: int, model: str) -> list[float]:
    with serve_app() as url, browser_page(height=900) as page:
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
        for _ in range(presses):
            before = page.locator(PICTURE).get_attribute("src")
            start = time.perf_counter()
            page.keyboard.press("ArrowRight")
            page.wait_for_function(f"b => document.querySelector(\"{PICTURE}\").src !== b", arg=before,
                                   timeout=10_000, polling=5)
            latencies.append((time.perf_counter() - start) * 1000)
            page.wait_for_timeout(150)
        return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presses", type=int, default=30)
    parser.add_argument("--model", default="digits-2d", choices=["digits-2d", "digits"])
    args = parser.parse_args()
    latencies, figures = np.array(measure(args.presses, args.model)), []
    print(f"slider -> decoded picture, {args.model}, {len(latencies)} key presses: "
          f"p50 {np.percentile(latencies, 50):.0f} ms, p90 {np.percentile(latencies, 90):.0f} ms, "
          f"max {latencies.max():.0f} ms")
    for name, percentile in (("p50", 50), ("p95", 95)):
        emit_value = float(np.percentile(latencies, percentile))
        figures.append(Figure(f"slider -> picture {name} ({args.model})", emit_value, "ms", 100.0 if name == "p50"
                              else 250.0, False, f"{latencies.min():.0f}-{latencies.max():.0f} over {len(latencies)}"))
    emit(figures)


if __name__ == "__main__":
    main()
