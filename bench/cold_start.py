"""Cold start, as a class sees it: `streamlit run` to an interactive Train page in Chromium, and to the bundled
model's first picture on screen, against a bare Streamlit page that only imports torch and draws one button.

Each round starts both servers from nothing, one after the other (the order alternates), with a fresh browser
profile, and times from the server's launch to the moment the page shows its Start button (and, for the app,
its first picture) visible and clickable. Prints each round and the median ratio with its spread.

    python bench/cold_start.py --rounds 5
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench._figures import emit, median_figure  # noqa: E402
from tests.browser import CHROMIUM, CHROMIUM_ARGS, free_port  # noqa: E402

BARE_PAGE = 'import streamlit as st\nimport torch  # noqa: F401\n\nst.button("Start")\n'
# Shown, not just present: the app hides the page (opacity 0) until nothing on it is still loading.
SHOWN = "e => e.checkVisibility({opacityProperty: true, visibilityProperty: true}) && !e.disabled"


def wait_until_healthy(url: str, server: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=1).read() == b"ok":
                return
        if server.poll() is not None:
            raise RuntimeError("the server exited")
        time.sleep(0.05)
    raise TimeoutError("the server never answered")


def time_cold_start(script: Path, browser, with_picture: bool) -> dict[str, float]:
    """Seconds from `streamlit run` to the Start button shown (and to the first picture shown)."""
    port = free_port()
    command = [sys.executable, "-m", "streamlit", "run", str(script), "--server.headless", "true", "--server.port",
               str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
               "--server.fileWatcherType", "none"]
    context = browser.new_context(viewport={"width": 1280, "height": 720})  # empty cache, like a first visit
    page = context.new_page()
    started = time.monotonic()
    server = subprocess.Popen(command, cwd=script.parent, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_healthy(url, server)
        page.goto(url)
        start = page.get_by_role("button", name="Start", exact=True)
        start.wait_for(timeout=120_000)
        page.wait_for_function(f"() => [...document.querySelectorAll('button')].some(b => "
                               f"b.textContent.includes('Start') && ({SHOWN})(b))", timeout=120_000, polling="raf")
        times = {"interactive": time.monotonic() - started}
        if with_picture:
            page.wait_for_function(f"() => [...document.querySelectorAll(\"img[src^='data:image/png']\")]"
                                   f".some({SHOWN})", timeout=120_000, polling="raf")
            times["picture"] = time.monotonic() - started
        return times
    finally:
        context.close()
        server.terminate()
        server.wait(timeout=20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--app", type=Path, default=ROOT / "app.py", help="the app to time (e.g. an older checkout's)")
    parser.add_argument("--no-picture", action="store_true", help="for an app that shows no picture before Start")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder, sync_playwright() as playwright:
        bare = Path(folder) / "bare.py"
        bare.write_text(BARE_PAGE)
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        rounds = []
        for index in range(args.rounds):
            order = [("bare", bare), ("app", args.app.resolve())]
            measured = {name: time_cold_start(path, browser, name == "app" and not args.no_picture)
                        for name, path in (order if index % 2 == 0 else order[::-1])}
            rounds.append(measured)
            picture = measured["app"].get("picture", float("nan"))
            print(f"round {index + 1}: bare page {measured['bare']['interactive']:.2f} s; app interactive "
                  f"{measured['app']['interactive']:.2f} s, first picture {picture:.2f} s", flush=True)
        browser.close()
    figures = []
    for figure, target in (("interactive", 1.2), ("picture", 1.5)):
        if figure not in rounds[0]["app"]:
            continue
        ratios = [r["app"][figure] / r["bare"]["interactive"] for r in rounds]
        print(f"app {figure} / bare page: median {statistics.median(ratios):.2f}x "
              f"(min {min(ratios):.2f}, max {max(ratios):.2f}; target <= {target}x)")
        figures.append(median_figure(f"cold start: app {figure} / bare torch page", ratios, "x", target, False))
    print(f"bare page: median {statistics.median(r['bare']['interactive'] for r in rounds):.2f} s")
    emit(figures)


if __name__ == "__main__":
    main()
