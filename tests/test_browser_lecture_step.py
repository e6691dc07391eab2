"""In Chromium at 1280x720: Step on the Lecture page walks one minibatch through the SGD loop and shows its numbers,
readable, with the computation graph of that step under them."""

from playwright.sync_api import Page

from tests.browser import ARTIFACTS, browser_page, screenshot, serve_app, wait_for_idle
from tests.test_browser_reparameterization import MEASURE_GRAPH, readability_problems


def scroll_to(page: Page, text: str) -> None:
    """Scroll the element with `text` to just below Streamlit's fixed top bar, as a teacher would."""
    page.get_by_text(text).first.evaluate("""e => {
      const bar = document.querySelector("[data-testid='stHeader']");
      e.style.scrollMarginTop = (bar ? bar.getBoundingClientRect().bottom : 0) + 'px';
      e.scrollIntoView({block: 'start'});
    }""")


def test_step_shows_the_minibatch_and_its_graph_readably():
    with serve_app() as url, browser_page(1280, 720) as page:
        page.goto(f"{url}/lecture")
        wait_for_idle(page)
        page.get_by_text("No run is live").wait_for(timeout=120_000)
        page.get_by_role("button", name="Step").click()
        page.mouse.move(1260, 400)  # off the button: its tooltip would cover the page
        wait_for_idle(page)
        graph = page.locator("svg.computation-graph")
        for shown in (graph, page.get_by_text("paused: Step or Resume continues here"),  # the loop follows the run
                      page.locator("[data-testid='stTable'] tbody tr").nth(8),  # 9 rows of ε, μ, σ and z
                      page.get_by_text("Step 1,", exact=False), page.locator("[data-testid='stMetric']").nth(5)):
            shown.wait_for(timeout=120_000)
        assert page.get_by_text(":orange-background").count() == 0  # the highlight rendered, not its markup
        assert page.get_by_text("No run is live").count() == 0
        assert readability_problems(graph.evaluate(MEASURE_GRAPH)) == []
        box = graph.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= 1280  # no sideways scrolling
        screenshot(page, "lecture-step")  # the whole page
        scroll_to(page, "4 · Training by stochastic gradient ascent")
        page.screenshot(path=ARTIFACTS / "lecture-step-loop.png")  # what a class sees: the loop and the numbers
        scroll_to(page, "Step 1,")
        page.screenshot(path=ARTIFACTS / "lecture-step-numbers.png")
        page.get_by_text("Before the trick", exact=True).click()
        wait_for_idle(page)
        page.locator("svg#graph-before").wait_for(timeout=120_000)
        assert page.locator("svg#graph-before g.node").get_by_text("no gradient", exact=True).count() == 4  # φ μ σ q
        page.locator("svg#graph-before").scroll_into_view_if_needed()
        page.screenshot(path=ARTIFACTS / "lecture-step-graph-before.png")
