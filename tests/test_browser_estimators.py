"""In Chromium: the estimator race runs live, both curves on one chart."""

from tests.browser import browser_page, screenshot, serve_app, wait_for_idle


def test_race_runs_live():
    with serve_app() as url, browser_page(height=1100) as page:
        page.goto(f"{url}/estimators")
        wait_for_idle(page)
        page.get_by_role("heading", name="Which gradient estimator?").wait_for(timeout=30_000)
        screenshot(page, "estimators-toy")
        page.get_by_role("button", name="Start the race").click()
        wait_for_idle(page)
        frames = page.frame_locator("iframe[title='pages._live_plot.live_plot']")
        frames.first.locator(".js-plotly-plot").wait_for(timeout=30_000)
        page.wait_for_timeout(4_000)
        elbo_chart = page.locator("iframe[title='pages._live_plot.live_plot']").first
        elbo_chart.scroll_into_view_if_needed()
        legend = frames.first.locator(".legendtext").all_text_contents()
        assert any("pathwise" in t for t in legend) and any("score function" in t for t in legend)
        screenshot(page, "estimators-race")
