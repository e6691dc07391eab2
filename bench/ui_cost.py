"""The cost of the UI: a training job's steps/s while its Train page is open in Chromium and redrawing, against
the same job with no server and no browser, in one run (the two kinds of round alternate).

A UI round starts the app, opens the Train page at 1280x720, presses Start (the digits preset, which the page
trains by default) and counts the steps the page's counter reports over a window; a headless round trains the
same configuration in this process with `vae.job.TrainingJob`, as the page does (one thread), and counts its
steps over the same window. Needs Debian's chromium (tests/install-chromium.sh).

    python bench/ui_cost.py [--rounds 3] [--window 30]
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._figures import emit, median_figure  # noqa: E402
from tests.browser import browser_page, serve_app  # noqa: E402

EPOCHS = 5000  # no run ends inside a window
WARM_UP_S = 5.0  # after the first steps: imports, the first epoch's set-up and the page's first redraws are done
STEP = re.compile(r"step ([\d,]+)")


def counter_step(page) -> int | None:
    match = STEP.search(page.locator(".epoch-counter").first.inner_text())
    return int(match.group(1).replace(",", "")) if match else None


def next_counter_step(page) -> tuple[float, int]:
    """The moment the counter shows a new step, and that step: read as it changes, so it is at most one redraw
    old rather than up to a whole redraw period."""
    before = counter_step(page)
    while (now := counter_step(page)) == before:
        page.wait_for_timeout(20)
    return time.perf_counter(), now


def with_the_page_open(window: float) -> float:
    with serve_app() as url, browser_page() as page:
        page.goto(f"{url}/train?epochs={EPOCHS}")
        page.get_by_role("button", name="Start").click()
        page.locator(".epoch-counter").filter(has_text="Running").wait_for()
        page.wait_for_timeout(WARM_UP_S * 1000)
        start, first = next_counter_step(page)
        page.wait_for_timeout(window * 1000)
        end, last = next_counter_step(page)
        return (last - first) / (end - start)


def headless(window: float) -> float:
    from vae.config import preset_config
    from vae.data import load_digits_dataset
    from vae.job import JobStatus, TrainingJob

    job = TrainingJob(preset_config("digits").replace(epochs=EPOCHS), load_digits_dataset())
    job.start()
    try:
        job.wait_until(lambda snap: snap.status == JobStatus.RUNNING and snap.step > 0, timeout=120)
        time.sleep(WARM_UP_S)
        start, first = time.perf_counter(), job.snapshot().step
        time.sleep(window)
        end, last = time.perf_counter(), job.snapshot().step
        return (last - first) / (end - start)
    finally:
        job.stop()
        job.join(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--window", type=float, default=30.0, help="seconds of training counted per round")
    args = parser.parse_args()
    costs = []
    for round_number in range(args.rounds):
        alone, shown = headless(args.window), with_the_page_open(args.window)
        costs.append(100 * (1 - shown / alone))
        print(f"round {round_number + 1}: {alone:.0f} steps/s headless, {shown:.0f} steps/s with the Train page "
              f"open: {costs[-1]:.1f}% slower", flush=True)
    emit([median_figure("UI cost: steps/s lost with the Train page open", costs, "%", 15.0, False, digits=1)])


if __name__ == "__main__":
    main()
