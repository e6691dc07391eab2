"""In Chromium at 1280x720, every page in normal and in presentation mode: no exception, no horizontal scroll,
plot text at least 16 px and never overlapping, and the view a teacher needs on the first screen."""

from __future__ import annotations

import pytest
from playwright.sync_api import Frame, Locator, Page

from tests.browser import browser_page, screenshot, serve_app, wait_for_idle

WIDTH, HEIGHT = 1280, 720
MIN_FONT_PX = 16
MODES = {"normal": "", "presentation": "?present=1"}
LIVE_CHART = "iframe[title='pages._live_plot.live_plot']"
STATIC_CHART = "[data-testid='stPlotlyChart'] .js-plotly-plot"


def formula(tex: str):
    """A displayed formula whose TeX source contains `tex` (KaTeX keeps the source in a MathML annotation)."""
    return lambda page: page.locator(".katex-display").filter(has=page.locator("annotation", has_text=tex))


def css(selector: str):
    return lambda page: page.locator(selector)


def keyed(*keys: str):
    """Elements by key: Streamlit gives each the class st-key-<key> (with ':' written '-'); a key ending in ':'
    names every key that starts with it."""
    classes = [key.replace(":", "-") for key in keys]
    return css(", ".join(f"[class*='st-key-{c}']" if c.endswith("-") else f".st-key-{c}" for c in classes))


# What a teacher needs on the first screen of each page: (page path, heading, {what: its elements}).
PAGES = {
    "lecture": ("/lecture", "The ELBO and the reparameterization trick", {
        "the ELBO": formula(r"\mathrm{KL}"),
        "the blocked gradient": formula(r"\ne"),
    }),
    "train": ("/", "Train a VAE", {
        "Start": css("button:has-text('Start')"),
        "the live curves": css(LIVE_CHART),
        "the pictures": css("[data-testid='stMainBlockContainer'] img[src^='data:image/png']"),
    }),
    "reparameterization": ("/reparameterization", "The reparameterization trick", {
        "the family picker": keyed("reparam:family"),
        "the sliders": keyed("reparam:gaussian:"),
        "the ε → z plot": keyed("reparam:transform"),
    }),
    "estimators": ("/estimators", "Which gradient estimator?", {
        "the lab's cost and sliders": keyed("estimators:cost", "estimators:mu", "estimators:sigma", "estimators:K"),
    }),
    "latent": ("/latent", "Walk the latent space", {
        "the sliders": keyed("latent:slider:"),
        "the decoded picture": css("img[alt='decoded from z']"),
    }),
}

# Every visible text of one plotly chart as drawn: its rendered font size (CSS size times the SVG's scaling; the
# smallest of a <text> and its <tspan>s, such as an exponent) and its box.
CHART_TEXTS = """plot => {
  const box = e => { const r = e.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; };
  const scale = t => Math.hypot(t.getScreenCTM().c, t.getScreenCTM().d);  // vertical scale, rotated or not
  const size = t => Math.min(...[t, ...t.querySelectorAll('tspan')]
                             .map(e => parseFloat(getComputedStyle(e).fontSize) * scale(t)));
  return [...plot.querySelectorAll('.main-svg text')]
    .filter(t => t.textContent.trim() && t.getBoundingClientRect().width > 0)
    .map(t => ({text: t.textContent, kind: t.getAttribute('class') || 'text', box: box(t), size: size(t)}));
}"""


@pytest.fixture(scope="module")
def app_url():
    with serve_app() as url:
        yield url


def overlap(a: list[float], b: list[float], tolerance: float = 1.0) -> bool:
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    return width > tolerance and height > tolerance


def chart_problems(name: str, texts: list[dict]) -> list[str]:
    problems = [f"{name}: {t['kind']} {t['text']!r} is {t['size']:.1f} px" for t in texts
                if t["size"] < MIN_FONT_PX - 0.01]
    problems += [f"{name}: {t['kind']} {t['text']!r} overlaps {u['kind']} {u['text']!r}"
                 for i, t in enumerate(texts) for u in texts[i + 1:] if overlap(t["box"], u["box"])]
    return problems


def chart_texts(page: Page) -> dict[str, list[dict]]:
    """Texts of every chart on the page: static ones, and the live ones inside their component frames."""
    charts = {f"chart {i + 1}": plot.evaluate(CHART_TEXTS) for i, plot in enumerate(page.locator(STATIC_CHART).all())}
    frames: list[Frame] = [handle.content_frame() for handle in page.locator(LIVE_CHART).element_handles()]
    for i, frame in enumerate(frames):
        frame.locator(".js-plotly-plot .main-svg").first.wait_for(timeout=120_000)
        charts[f"live chart {i + 1}"] = frame.locator(".js-plotly-plot").evaluate(CHART_TEXTS)
    return charts


def not_on_first_screen(what: str, elements: Locator, top: float) -> list[str]:
    """Each element must lie wholly between the top bar and y = 720, and be what one sees at its centre (not
    covered by anything, not hidden)."""
    problems = []
    for i in range(elements.count()):
        element = elements.nth(i)
        box = element.bounding_box()
        if box is None or box["y"] < top - 1 or box["y"] + box["height"] > HEIGHT or box["x"] < 0 \
                or box["x"] + box["width"] > WIDTH:
            problems.append(f"{what} ({i + 1}) is not on the first screen: {box}")
        elif not element.evaluate(SEEN_AT_CENTRE):
            problems.append(f"{what} ({i + 1}) is hidden or covered")
    return problems


SEEN_AT_CENTRE = """element => {
  const r = element.getBoundingClientRect(), seen = document.elementFromPoint(r.x + r.width / 2, r.y + r.height / 2);
  return element.checkVisibility({opacityProperty: true, visibilityProperty: true})
    && (element === seen || element.contains(seen));
}"""
# Anything too wide for its room: the page or a box that scrolls sideways (a formula, a graph, a row of controls),
# and text cut off with an ellipsis (a button's label).
TOO_WIDE = """() => [...document.querySelectorAll('*')]
  .filter(e => e.scrollWidth > e.clientWidth + 1)
  .filter(e => ['auto', 'scroll'].includes(getComputedStyle(e).overflowX)
               || getComputedStyle(e).textOverflow === 'ellipsis')
  .map(e => `${e.getAttribute('data-testid') || e.className || e.tagName} (${e.textContent.slice(0, 40)})`)
  .concat(document.scrollingElement.scrollWidth > innerWidth ? ['the document'] : [])"""
# The app shows a page once its style has arrived and nothing on it is still loading (see app.py).
PAGE_SHOWN = """() => {
  const main = document.querySelector("[data-testid='stMainBlockContainer']");
  const cover = document.querySelector('.st-key-app_cover');
  return main && main.checkVisibility({opacityProperty: true, visibilityProperty: true})
    && (!cover || cover.getBoundingClientRect().height === 0);
}"""


def open_page(page: Page, url: str, heading: str, essentials: dict) -> None:
    page.goto(url)
    page.get_by_role("heading", name=heading).first.wait_for(timeout=120_000)
    wait_for_idle(page, timeout=120_000)
    for elements in essentials.values():
        elements(page).first.wait_for(timeout=120_000)
    page.wait_for_function(PAGE_SHOWN, timeout=120_000)
    page.wait_for_function("document.fonts.status === 'loaded'")


def top_bar_bottom(page: Page) -> float:
    box = page.locator("header[data-testid='stHeader']").bounding_box()
    return box["y"] + box["height"]


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("name", list(PAGES))
def test_every_page_fits_a_projector(app_url, name, mode):
    path, heading, essentials = PAGES[name]
    with browser_page(WIDTH, HEIGHT) as page:
        open_page(page, app_url + path + MODES[mode], heading, essentials)
        assert page.get_by_role("switch", name="Presentation mode").is_checked() == (mode == "presentation")
        problems = []
        for what, elements in essentials.items():
            problems += not_on_first_screen(what, elements(page), top_bar_bottom(page))
        charts = chart_texts(page)
        problems += [p for chart, texts in charts.items() for p in chart_problems(chart, texts)]
        if page.locator("[data-testid='stException']").count():
            problems.append("an exception: " + page.locator("[data-testid='stException']").first.inner_text())
        problems += [f"{box} is too wide for its room" for box in page.evaluate(TOO_WIDE)]
        screenshot(page, f"page-{name}-{mode}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("address", ["/train?epochs=7", "/?epochs=7"])
def test_the_train_address_opens_the_train_page_with_its_link(app_url, address):
    """/train, the address a teacher writes, showed "Page not found" over the page in every session after the
    server's first (the Train page was the default one, which answers only to the root address). Both addresses
    open the Train page at /train, the link's settings read."""
    with browser_page(WIDTH, HEIGHT) as page:  # the server has served a session before the one under test
        page.goto(app_url)
        wait_for_idle(page)
    with browser_page(WIDTH, HEIGHT) as page:
        page.goto(app_url + address)
        page.get_by_role("heading", name="Train a VAE").wait_for()
        wait_for_idle(page)
        assert page.get_by_text("Page not found").count() == 0
        # The link's setting was read: the page writes back into the address what differs from the defaults.
        assert page.url.endswith("/train?epochs=7")
