"""The guided tour, walked in Chromium at 1280x720 with every request outside the app's server blocked: each
step's page opens, its element is outlined and on screen, its action happened (a run started, the graph changed,
a slider moved, the race ran, a minibatch's numbers appeared), a reload keeps the place, and Finish ends it.
A screenshot of every step goes to tests/artifacts/tour-NN.png."""

from __future__ import annotations

import re
from urllib.parse import urlparse

import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Page, sync_playwright

from tests.browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, new_tab, serve_app
from vae.tour import TOUR, Action, css_class

SLIDER = "input[type='range']"


def block_outside_requests(page: Page, server: str) -> list[str]:
    """Abort every request not to the app's own server (the tour needs no network); returns what was tried."""
    own, tried = urlparse(server).netloc, []

    def route(request_route) -> None:
        if urlparse(request_route.request.url).netloc in (own, ""):
            request_route.continue_()
        else:
            tried.append(request_route.request.url)
            request_route.abort()

    page.route("**/*", route)
    return tried


def check_action(page: Page, number: int) -> None:
    """What the step did, beyond the text it expects."""
    step = TOUR[number - 1]
    if step.action is Action.TRAIN:
        page.locator(".epoch-counter").first.wait_for()
        assert re.search(r"Running|Queued|Finished", page.locator(".epoch-counter").first.inner_text())
    for key, value in step.settings.items():
        if isinstance(value, float):  # the tour's sliders: the moved thumb is where the step says
            page.wait_for_function("([selector, want]) => { const s = document.querySelector(selector);"
                                   " return s && Math.abs(Number(s.value) - want) < 1e-9; }",
                                   arg=[f".{css_class(key)} {SLIDER}", value])
    if step.action is Action.STEP:
        page.get_by_text(re.compile(r"minibatch M of \d+ images")).first.wait_for()  # its numbers


def wait_for_step(page: Page, number: int) -> None:
    """Wait for what step `number` shows, not for the page to be idle: the live pages' fragments refresh several
    times a second, so on a busy machine the script is seldom seen idle."""
    try:
        wait_for_step_conditions(page, number)
    except PlaywrightError as error:
        shot = ARTIFACTS / f"tour-{number:02d}-not-shown.png"
        page.screenshot(path=shot)
        raise AssertionError(f"tour step {number} ({TOUR[number - 1].title!r}) did not show ({shot}): "
                             f"{error}") from error


def wait_for_step_conditions(page: Page, number: int) -> None:
    page.get_by_text(f"Tour · step {number} of {len(TOUR)}").wait_for()
    step = TOUR[number - 1]
    page.get_by_text(re.compile(step.shows)).first.wait_for()
    target = page.locator("." + css_class(step.point_at)).first
    target.wait_for(state="visible")
    page.wait_for_function("selector => { const target = document.querySelector(selector); if (!target) return false;"
                           " const box = target.getBoundingClientRect();"
                           " return box.top < innerHeight && box.bottom > 0; }",
                           arg="." + css_class(step.point_at))  # scrolled into view
    assert f"tour={number}" in page.url


@pytest.mark.timeout(900)
def test_the_guided_tour_walks_every_step_offline_and_each_step_acts():
    with serve_app() as server, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = new_tab(browser)
        tried = block_outside_requests(page, server)
        page.goto(server)
        page.get_by_role("button", name="Guided tour").click()
        ARTIFACTS.mkdir(exist_ok=True)
        for number in range(1, len(TOUR) + 1):
            wait_for_step(page, number)
            check_action(page, number)
            page.screenshot(path=ARTIFACTS / f"tour-{number:02d}.png")
            if number == 6:  # a reload (a new session) keeps the place and redoes the step
                page.reload()
                wait_for_step(page, number)
                page.get_by_text("Laplace is a location-scale family").wait_for()
            if number < len(TOUR):
                page.get_by_role("button", name="Next").click()
        page.get_by_role("button", name="Back").click()
        wait_for_step(page, len(TOUR) - 1)
        page.get_by_role("button", name="Next").click()
        wait_for_step(page, len(TOUR))
        page.get_by_role("button", name="Finish").click()
        page.get_by_role("button", name="Guided tour").wait_for()
        page.get_by_text("Tour · step").wait_for(state="detached")
        page.wait_for_function("() => !window.location.search.includes('tour=')")
        assert tried == []  # the whole tour asked for nothing outside the app's own server

        browser.close()
