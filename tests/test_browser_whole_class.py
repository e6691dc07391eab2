"""A whole class on one server: eight tabs press Start within seconds. Nobody is refused: runs beyond the
server's capacity wait in a visible queue and start by themselves; the capacity is never exceeded; and once the
tabs are closed, every training thread ends and the memory comes back.

The file's name sorts last among the browser tests, so it runs when the other worker has mostly finished: eight
tabs and two trainings on two cores are load enough (beside the rest of the suite, tabs froze)."""

from __future__ import annotations

import itertools
import re
import time
from collections import Counter
from collections.abc import Callable

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.browser import CHROMIUM, CHROMIUM_ARGS, new_tab, screenshot, serve_app, wait_for_idle

# The grace outlasts a connection that drops and comes back on a loaded machine (CI saw one reaped at 5 s).
SESSIONS, CAPACITY, GRACE_S = 8, 2, 60
EPOCHS = 5000  # hours on two cores: a run ends only when its tab stops it or goes away
QUEUED = re.compile(rf"Queued · number (\d+) in the queue for one of {CAPACITY} training slots")
STATE = re.compile(r"· (Running|Queued|Paused|Stopped|Finished) ·")


def wait_until(condition: Callable[[], bool], timeout: float, what: str,
               seen: Callable[[], object] = lambda: None) -> None:
    """Poll `condition`; on timeout, say what was awaited and what `seen` shows now."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"Not within {timeout} s: {what} (seen: {seen()})")
        time.sleep(0.25)


def counter_text(page: Page) -> str:
    counter = page.locator(".epoch-counter")
    return counter.first.inner_text() if counter.count() else ""


def state_of(page: Page) -> str | None:
    match = STATE.search(counter_text(page))
    return match.group(1) if match else None


CONNECTION_NEWS: list[str] = []  # what the tabs' consoles said about their connections, to explain a failure
CONNECTION_WORDS = re.compile(r"connect|heartbeat|websocket", re.IGNORECASE)
TAB_NUMBERS = itertools.count()


def open_session(browser: Browser, url: str) -> Page:
    page = new_tab(browser)
    tab = next(TAB_NUMBERS)
    page.on("console", lambda message: CONNECTION_WORDS.search(message.text)
            and CONNECTION_NEWS.append(f"{time.strftime('%X')} tab {tab}: {message.text[:200]}"))
    page.goto(f"{url}/train?epochs={EPOCHS}")  # a class link: no run finishes while the test watches
    page.get_by_role("button", name="Start").wait_for(timeout=300_000)  # a loaded 2-core machine is slow
    wait_for_idle(page, timeout=300_000)
    return page


def press_start(page: Page, server) -> None:
    """Press Start; if the tab cannot be pressed, say what covers it (a dialog) and what the server logged."""
    try:
        page.get_by_role("button", name="Start").click()
    except Exception as error:
        shot = screenshot(page, "whole-class-start-not-pressed")
        dialogs = page.locator("[role='dialog']")
        covering = [dialogs.nth(i).inner_text() for i in range(dialogs.count())]
        raise AssertionError(f"Start could not be pressed ({shot}); dialogs: {covering}; consoles: "
                             f"{CONNECTION_NEWS[-30:]}; server log: "
                             f"{server.log.read_text()[-3000:]}") from error


def states(pages: list[Page]) -> Counter:
    return Counter(state_of(page) for page in pages)


@pytest.mark.timeout(1500)  # about five minutes on an idle 2-core machine; a loaded one takes several times that
def test_eight_sessions_queue_never_exceed_the_cap_and_leave_nothing_behind():
    env = {"REPARAM_LAB_MAX_TRAININGS": str(CAPACITY), "REPARAM_LAB_SESSION_GRACE_S": str(GRACE_S)}
    with serve_app(env=env) as server, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        # One run first, so torch, the optimiser and the dataset are loaded before memory is measured.
        first = open_session(browser, server)
        press_start(first, server)
        wait_until(lambda: state_of(first) == "Running", 300, "the warm-up run trains")
        first.context.close()
        wait_until(lambda: server.threads_named("vae-training") == 0, 120, "the warm-up run's thread ends")
        baseline_mb = server.resident_mb()

        pages = [open_session(browser, server) for _ in range(SESSIONS)]
        for page in pages:  # every tab presses Start within a few seconds
            press_start(page, server)
        running_seen = []

        def all_placed() -> bool:
            counts = states(pages)
            running_seen.append(counts["Running"])
            return counts["Running"] == CAPACITY and counts["Queued"] == SESSIONS - CAPACITY

        wait_until(all_placed, 480, f"{CAPACITY} tabs train and {SESSIONS - CAPACITY} wait in the queue",
                   lambda: ([counter_text(p) for p in pages], server.log.read_text()[-2000:]))
        screenshot(pages[-1], "many-sessions-queued")
        positions = sorted(int(QUEUED.search(counter_text(p)).group(1)) for p in pages if state_of(p) == "Queued")
        assert positions == list(range(1, SESSIONS - CAPACITY + 1))  # each tab is told its own place

        # Two training tabs press Stop: the first two in the queue start by themselves.
        for page in [p for p in pages if state_of(p) == "Running"][:2]:
            page.get_by_role("button", name="Stop").click()
        wait_until(lambda: states(pages)["Running"] == CAPACITY and states(pages)["Queued"] == SESSIONS
                   - CAPACITY - 2, 300, "two queued runs start when two runs stop",
                   lambda: [counter_text(p) for p in pages])
        # What the tabs showed while the runs were placed. Not a reading taken right after the stops: a tab that
        # fell behind (its connection closed and came back) shows its last frame, "Running", for a moment after
        # its run stopped, beside the two queued runs that took the freed slots.
        assert max(running_seen) <= CAPACITY, running_seen
        assert server.threads_named("vae-training") <= SESSIONS

        for page in pages:
            page.context.close()
        wait_until(lambda: server.threads_named("vae-training") == 0, GRACE_S + 240,
                   "every training thread ends once its tab is gone")
        browser.close()
        wait_until(lambda: server.resident_mb() < baseline_mb + 120, 60,
                   f"memory returns near {baseline_mb:.0f} MB (now {server.resident_mb():.0f} MB)")
        print(f"resident memory: {baseline_mb:.0f} MB before the eight tabs, {server.resident_mb():.0f} MB after")
        log = server.log.read_text()  # the app's own errors (a closed tab's socket may log one of Streamlit's)
        for sign in ("Uncaught app execution", "Unexpected error", "changed size during iteration"):
            assert sign not in log, log[-3000:]
