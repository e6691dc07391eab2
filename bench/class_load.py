"""What a class of tabs costs: N tabs open the Train page and press Start on a server that trains C runs at once
(the rest queue). Over a window, per tab: the messages and bytes the server sends and the redraws the tab asks
for; for the machine: the CPU of the training threads, of the rest of the server, and of everything (the tabs'
browser included, as when a class is simulated on one machine). Linux only (reads /proc). Needs Debian's
chromium (tests/install-chromium.sh).

    python bench/class_load.py [--tabs 8] [--capacity 2] [--window 20]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from playwright.sync_api import sync_playwright  # noqa: E402

from tests.browser import CHROMIUM, CHROMIUM_ARGS, new_tab, serve_app  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def machine_busy_s() -> float:
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / TICK  # all but idle and iowait


def server_cpu_s(pid: int) -> tuple[float, float]:
    """CPU seconds of the server's training threads, and of its other threads."""
    training = other = 0.0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # a thread ended while we looked
            continue
        seconds = (int(fields[11]) + int(fields[12])) / TICK
        training, other = (training + seconds, other) if name == "vae-training" else (training, other + seconds)
    return training, other


def count_frames(page, counts: dict[str, int]) -> None:
    def on_socket(socket) -> None:
        socket.on("framereceived", lambda frame: counts.update(received=counts["received"] + 1,
                                                                bytes=counts["bytes"] + len(frame)))
        socket.on("framesent", lambda frame: counts.update(sent=counts["sent"] + 1))
    page.on("websocket", on_socket)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tabs", type=int, default=8)
    parser.add_argument("--capacity", type=int, default=2)
    parser.add_argument("--window", type=float, default=20.0)
    args = parser.parse_args()
    with serve_app(env={"REPARAM_LAB_MAX_TRAININGS": str(args.capacity)}) as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        tabs = []
        for _ in range(args.tabs):
            page = new_tab(browser)
            counts = {"received": 0, "bytes": 0, "sent": 0}
            count_frames(page, counts)
            page.goto(f"{url}/train?epochs=5000")
            page.get_by_role("button", name="Start").wait_for()
            tabs.append((page, counts))
        for page, _ in tabs:
            page.get_by_role("button", name="Start").click()
        tabs[0][0].wait_for_timeout(10_000)  # every tab placed: training or queued
        for page, counts in tabs:
            page.evaluate("1")  # hand over the frames seen so far before the counts are reset
            counts.update(received=0, bytes=0, sent=0)
        server_before, machine_before, start = server_cpu_s(url.process.pid), machine_busy_s(), time.monotonic()
        tabs[0][0].wait_for_timeout(args.window * 1000)  # playwright delivers frame events while it waits
        server_after, machine_after, seconds = server_cpu_s(url.process.pid), machine_busy_s(), time.monotonic() - start
        for page, _ in tabs:
            page.evaluate("1")
        print(f"{args.tabs} tabs, {args.capacity} training slots, {seconds:.0f} s:")
        for number, (page, counts) in enumerate(tabs, 1):
            state = page.locator(".epoch-counter").first.inner_text().split(" · ")[1]
            print(f"  tab {number} ({state}): {counts['received'] / seconds:5.1f} messages/s, "
                  f"{counts['bytes'] / seconds / 1024:6.1f} KiB/s, {counts['sent'] / seconds:.1f} redraws asked/s")
        training, other = (after - before for after, before in zip(server_after, server_before, strict=True))
        print(f"  CPU: training threads {training / seconds:.2f} cores, rest of the server {other / seconds:.2f}, "
              f"whole machine {(machine_after - machine_before) / seconds:.2f} of {os.cpu_count()}")
        browser.close()


if __name__ == "__main__":
    main()
