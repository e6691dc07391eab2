"""Helpers for browser tests: serve the app on a free port and drive Debian's chromium with Playwright."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from playwright.sync_api import Browser, Page, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "tests" / "artifacts"  # screenshots, to look at after a run
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class AppServer(str):
    """The app's URL, with the server's process (to read its threads and memory from /proc)."""

    process: subprocess.Popen
    log: Path

    def threads_named(self, name: str) -> int:
        """How many of the server's OS threads carry `name` (vae.job names its training threads)."""
        count = 0
        for task in Path(f"/proc/{self.process.pid}/task").iterdir():
            with contextlib.suppress(OSError):  # a thread may end while we look
                count += (task / "comm").read_text().strip() == name
        return count

    def resident_mb(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("No VmRSS in /proc")


@contextlib.contextmanager
def serve_app(timeout: float = 60, env: dict[str, str] | None = None) -> Iterator[AppServer]:
    """Start `streamlit run app.py` (with `env` added to the environment) and yield its URL once
    /_stcore/health answers ok."""
    port = free_port()
    command = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
               "--server.port", str(port), "--server.address", "127.0.0.1", "--server.fileWatcherType", "none",
               "--browser.gatherUsageStats", "false"]
    ARTIFACTS.mkdir(exist_ok=True)
    log = open(ARTIFACTS / f"server-{port}.log", "w")
    environment = {**os.environ, **(env or {})}
    server = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=environment)
    url = AppServer(f"http://127.0.0.1:{port}")
    url.process, url.log = server, Path(log.name)
    try:
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(OSError):
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                    break
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError(f"The app did not start; see {log.name}")
            time.sleep(0.2)
        yield url
    finally:
        stop(server)
        log.close()


def stop(server: subprocess.Popen, grace_s: float = 60) -> None:
    """Terminate, and kill if it has not ended within `grace_s` (a busy machine shuts down slowly)."""
    server.terminate()
    try:
        server.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


@contextlib.contextmanager
def browser_page(width: int = 1280, height: int = 720) -> Iterator[Page]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield new_tab(browser, width, height)
        finally:
            browser.close()


def new_tab(browser: Browser, width: int = 1280, height: int = 720) -> Page:
    """A tab of its own session, projector-sized by default, with patient waits."""
    return patient(browser.new_page(viewport={"width": width, "height": height}))


def patient(page: Page, timeout_ms: float = 120_000) -> Page:
    """Generous default limits for every wait and navigation: waits end on their condition, so a busy machine
    only makes them longer, never fails them."""
    page.set_default_timeout(timeout_ms)
    page.set_default_navigation_timeout(timeout_ms)
    return page


def wait_for_idle(page: Page, timeout: float = 120_000) -> None:
    """Wait until the script has finished its run (after a click, pause first: the old run may still read idle)."""
    page.wait_for_timeout(300)
    page.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']", timeout=timeout)


def screenshot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=path, full_page=True)
    return path
