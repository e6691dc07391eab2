"""Soak: a long training run with its Train page open in Chromium. Every `--every` seconds, samples the server's
resident memory and the run's steps/s (from the step counter the page shows: steps between samples over the
time between them). Prints one row per sample and a summary: memory after warm-up (first 5 minutes) should stay
flat, and so should the speed. A run that finishes (the page's most epochs, 10,000, of the digits take about six
minutes on a 2-core machine) is followed by a new one from the same page; a sample that spans the change has no
speed.

    python bench/soak.py --minutes 30 --every 30
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.browser import CHROMIUM, CHROMIUM_ARGS, new_tab, serve_app, wait_for_idle  # noqa: E402

STEP = re.compile(r"step ([\d,]+)")
WARM_UP_S = 300


def start_long_run(page) -> None:
    page.get_by_role("button", name="More").click()
    epochs = page.get_by_role("spinbutton", name="Epochs", exact=True)
    epochs.fill("10000")  # more than the soak lasts
    epochs.press("Enter")
    wait_for_idle(page)
    page.keyboard.press("Escape")
    page.get_by_role("button", name="Start").click()
    page.locator(".epoch-counter").filter(has_text="Running").wait_for(timeout=120_000)


def step_shown(page) -> int:
    return int(STEP.search(page.locator(".epoch-counter").inner_text()).group(1).replace(",", ""))


def is_running(page) -> bool:
    return "Running" in page.locator(".epoch-counter").inner_text()


def start_again(page) -> None:
    """A new run with the same settings (the page keeps them), once the last one has finished."""
    page.get_by_role("button", name="Start").click()
    page.locator(".epoch-counter").filter(has_text="Running").wait_for(timeout=120_000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--every", type=float, default=30, help="seconds between samples")
    args = parser.parse_args()
    with serve_app() as server, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = new_tab(browser)
        page.goto(server)
        wait_for_idle(page, timeout=120_000)
        start_long_run(page)
        started = time.monotonic()
        last_time, last_step = started, step_shown(page)
        rows, runs = [], 1
        print(f"{'minute':>7} {'resident MB':>12} {'steps/s':>9}")
        while time.monotonic() - started < args.minutes * 60:
            time.sleep(args.every)
            now, step, running = time.monotonic(), step_shown(page), is_running(page)
            speed = (step - last_step) / (now - last_time) if running else None  # None: the run ended meanwhile
            rows.append((now - started, server.resident_mb(), speed))
            print(f"{rows[-1][0] / 60:7.1f} {rows[-1][1]:12.0f} "
                  f"{'new run' if speed is None else f'{speed:.0f}':>9}", flush=True)
            if not running:
                start_again(page)
                runs += 1
                now, step = time.monotonic(), step_shown(page)
            last_time, last_step = now, step
        browser.close()
    settled = [row for row in rows if row[0] >= WARM_UP_S] or rows
    memory, speed = [row[1] for row in settled], [row[2] for row in settled if row[2] is not None]
    print(f"after the first {WARM_UP_S // 60} minutes: resident memory {min(memory):.0f} to {max(memory):.0f} MB "
          f"(growth {memory[-1] - memory[0]:+.0f} MB); steps/s median {statistics.median(speed):.0f}, "
          f"range {min(speed):.0f} to {max(speed):.0f}; {runs} run(s) one after another")


if __name__ == "__main__":
    main()
