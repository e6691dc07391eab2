"""In Chromium: a page's own URL opens inside the app's navigation, and the Reparameterization page draws."""

import pytest

from tests.browser import browser_page, screenshot, serve_app, wait_for_idle


@pytest.fixture(scope="module")
def app_url():
    with serve_app() as url:  # a fresh server: the first visitor arrives on a page's own URL
        yield url


def test_direct_url_opens_the_page_with_navigation_and_graphs(app_url):
    with browser_page(height=1000) as page:
        page.goto(f"{app_url}/reparameterization")
        wait_for_idle(page)
        page.get_by_role("heading", name="The reparameterization trick").wait_for(timeout=20_000)
        nav = page.get_by_role("link", name="Train")
        assert nav.count() >= 1  # the app's navigation, not Streamlit's folder-of-pages fallback
        assert page.get_by_text("live plot").count() == 0

        page.get_by_test_id("stSelectbox").first.click()
        page.get_by_role("option", name="Cauchy").click()
        wait_for_idle(page)
        page.get_by_text("Cauchy: inverse-CDF route").wait_for(timeout=10_000)
        page.locator(".js-plotly-plot").first.wait_for()
        screenshot(page, "reparameterization-cauchy")
        page.get_by_role("heading", name="The computation graph, before and after").scroll_into_view_if_needed()
        page.locator("[data-testid='stGraphVizChart'] svg").first.wait_for(timeout=20_000)
        screenshot(page, "reparameterization-graph-before")
        page.get_by_text("After the trick", exact=True).click()
        wait_for_idle(page)
        page.locator("[data-testid='stGraphVizChart'] svg").first.wait_for(timeout=20_000)
        screenshot(page, "reparameterization-graph-after")
