"""In Chromium: a page's own URL opens inside the app's navigation, and the Reparameterization page draws;
the computation graph is readable on a 1280x720 projector."""

import pytest
from playwright.sync_api import Locator, Page

from tests.browser import ARTIFACTS, browser_page, screenshot, serve_app, wait_for_idle

GRAPH_HEADING = "The computation graph, before and after"
MIN_FONT_PX = 16

# Every text element of the graph's SVG, as drawn: its font size in screen px (CSS size times the SVG's own
# scaling, which is how a drawing scaled to its column shrinks) and its rectangle; every node's shape; and
# points sampled along every other drawn shape (edges, arrowheads, markers, legend samples).
MEASURE_GRAPH = """svg => {
  const box = e => { const r = e.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; };
  const scale = svg.getScreenCTM().a;
  const texts = [...svg.querySelectorAll('text')].map(t => ({
    text: t.textContent, rect: box(t), size: parseFloat(getComputedStyle(t).fontSize) * scale}));
  const nodes = [...svg.querySelectorAll('g.node')].map(g => ({
    id: g.id, rect: box(g.querySelector('rect, ellipse, polygon, path'))}));
  const shapes = [...svg.querySelectorAll('g.edge *, g.legend *')].filter(s => s instanceof SVGGeometryElement);
  const lines = shapes.map(shape => {
    const ctm = shape.getScreenCTM(), length = shape.getTotalLength(), points = [];
    for (let at = 0; at <= length; at += 1) {
      const p = shape.getPointAtLength(at);
      points.push([ctm.a * p.x + ctm.c * p.y + ctm.e, ctm.b * p.x + ctm.d * p.y + ctm.f]);
    }
    return {owner: shape.closest('g.edge, g.legend').id, points};
  });
  return {svg: box(svg), texts, nodes, lines};
}"""


@pytest.fixture(scope="module")
def app_url():
    with serve_app() as url:  # a fresh server: the first visitor arrives on a page's own URL
        yield url


def graph_svg(page: Page) -> Locator:
    """The SVG that draws the computation graph (the plots' SVGs have no node called encoder)."""
    return page.locator("svg").filter(has=page.locator("text", has_text="encoder")).first


def scroll_section_to_top(page: Page) -> None:
    """Scroll as a teacher would: the section's heading just below Streamlit's fixed top bar."""
    heading = page.get_by_role("heading", name=GRAPH_HEADING)
    heading.evaluate("""h => {
      const bar = document.querySelector("[data-testid='stHeader']");
      h.style.scrollMarginTop = (bar ? bar.getBoundingClientRect().bottom : 0) + 'px';
      h.scrollIntoView({block: 'start'});
    }""")


def overlap(a: list[float], b: list[float], tolerance: float = 0.5) -> bool:
    return a[0] < b[2] - tolerance and b[0] < a[2] - tolerance and a[1] < b[3] - tolerance and b[1] < a[3] - tolerance


def inside(inner: list[float], outer: list[float]) -> bool:
    return outer[0] <= inner[0] and outer[1] <= inner[1] and inner[2] <= outer[2] and inner[3] <= outer[3]


def contains_point(rect: list[float], point: list[float], tolerance: float = 0.5) -> bool:
    return rect[0] + tolerance < point[0] < rect[2] - tolerance and rect[1] + tolerance < point[1] < rect[3] - tolerance


def readability_problems(drawing: dict) -> list[str]:
    """Text under 16 px, labels over labels, labels across a node they are not inside, lines through labels."""
    texts = drawing["texts"]
    problems = [f"{t['text']!r} is {t['size']:.1f} px" for t in texts if t["size"] < MIN_FONT_PX - 0.01]
    problems += [f"{t['text']!r} overlaps {u['text']!r}" for i, t in enumerate(texts) for u in texts[i + 1:]
                 if overlap(t["rect"], u["rect"])]
    problems += [f"{t['text']!r} crosses node {n['id']}" for t in texts for n in drawing["nodes"]
                 if overlap(t["rect"], n["rect"]) and not inside(t["rect"], n["rect"])]
    problems += [f"a line of {line['owner']} runs through {t['text']!r}" for t in texts for line in drawing["lines"]
                 if any(contains_point(t["rect"], p) for p in line["points"])]
    return problems


def check_graph_on_first_screen(page: Page, name: str) -> None:
    scroll_section_to_top(page)
    svg = graph_svg(page)
    svg.wait_for(timeout=120_000)
    drawing = svg.evaluate(MEASURE_GRAPH)
    page.screenshot(path=ARTIFACTS / f"{name}.png")  # the viewport: what the class sees
    assert drawing["texts"] and drawing["nodes"]
    assert readability_problems(drawing) == []
    left, top, right, bottom = drawing["svg"]
    assert left >= 0 and right <= 1280 and bottom <= 720, f"graph at {drawing['svg']}: not all on the first screen"
    assert page.get_by_text("Before the trick", exact=True).bounding_box()["y"] >= 0  # the switch is in view too


def test_direct_url_opens_the_page_with_navigation_and_graphs(app_url):
    with browser_page(height=1000) as page:
        page.goto(f"{app_url}/reparameterization")
        wait_for_idle(page)
        page.get_by_role("heading", name="The reparameterization trick").wait_for(timeout=120_000)
        nav = page.get_by_role("link", name="Train")
        assert nav.count() >= 1  # the app's navigation, not Streamlit's folder-of-pages fallback
        assert page.get_by_text("live plot").count() == 0

        page.get_by_test_id("stSelectbox").first.click()
        page.get_by_role("option", name="Cauchy").click()
        wait_for_idle(page)
        page.get_by_text("Cauchy is sampled through its inverse CDF").wait_for(timeout=120_000)
        page.locator(".js-plotly-plot").first.wait_for()
        screenshot(page, "reparameterization-cauchy")


def test_graph_is_readable_at_1280x720_before_and_after(app_url):
    with browser_page(1280, 720) as page:
        page.goto(f"{app_url}/reparameterization")
        wait_for_idle(page)
        page.get_by_role("heading", name=GRAPH_HEADING).wait_for(timeout=120_000)
        check_graph_on_first_screen(page, "reparameterization-graph-before")
        assert graph_svg(page).get_by_text("through sampling").count() >= 1
        page.get_by_text("After the trick", exact=True).click()
        wait_for_idle(page)
        graph_svg(page).locator("text", has_text="ε ~").first.wait_for(timeout=120_000)
        check_graph_on_first_screen(page, "reparameterization-graph-after")
        assert graph_svg(page).get_by_text("through sampling").count() == 0
