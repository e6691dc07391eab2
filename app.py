"""reparam-lab: a live, hands-on lecture on VAEs and the reparameterization trick. Run: streamlit run app.py"""

import pandas  # noqa: F401  - imported before any session starts: plotly can hit a half-imported pandas
import streamlit as st

from pages._connection import close_overflowing_connections
from pages._session import PRESENTING_KEY, leave_legacy_multipage_mode, presenting, show_failure, wait_for_torch
from pages._tour import STEP_KEY as TOUR_STEP_KEY
from pages._tour import follow_tour, start_tour, tour_panel
from vae import warmup

leave_legacy_multipage_mode()
close_overflowing_connections()  # a tab that fell behind reconnects instead of freezing (pages/_connection.py)
st.set_page_config(page_title="reparam-lab", page_icon="🎓", layout="wide")

# Streamlit draws styles, the switch and formulas with scripts it loads on first use, a moment after the text
# around them. So that nothing moves once it has appeared: those live in a 1 px tall box at the top of the page,
# an eager blank cover hides the page until the style below has arrived (it removes the cover), and the page stays
# hidden while anything on it is still loading (formulas arrived last and pushed the text down). Hidden copies of
# every lazily drawn kind the pages use, drawn after the page, load the other scripts once it is shown, so no
# later page or run is hidden: nothing blinks.
# The page starts just under the top bar, so the live charts fit a 1280x720 projector. The running indicator is
# hidden and stale elements keep full opacity: with fragments refreshing twice a second they would blink.
STYLE = """<style>
[data-testid='stLayoutWrapper']:has(> .st-key-app_cover) { display: none; }
[data-testid='stMainBlockContainer'] { padding-top: 3.9rem; padding-bottom: 1rem; }
[data-testid='stStatusWidget'] { visibility: hidden; }
[data-stale='true'] { opacity: 1 !important; transition: none !important; }
.st-key-presentation_mode { position: fixed; top: 0.85rem; right: 4rem; z-index: 999991; width: auto !important; }
.st-key-top_tools { position: fixed; top: 0.7rem; right: 17rem; z-index: 999991; width: auto !important;
  align-items: center; }
.st-key-tour_panel { position: fixed; bottom: 1rem; right: 1rem; width: 26rem; z-index: 999990; background: white;
  padding: 0.9rem 1rem; border-radius: 0.8rem; box-shadow: 0 4px 24px rgba(0, 0, 0, 0.25); gap: 0.6rem; }
.st-key-tour_panel [data-testid='stMarkdownContainer'] p { margin: 0 0 0.3rem 0; }
.copy-link { font: inherit; font-size: 0.9rem; padding: 0.2rem 0.7rem; border-radius: 0.5rem; cursor: pointer;
  border: 1px solid rgba(49, 51, 63, 0.2); background: white; }
.st-key-app_preload { display: none; }
[data-testid='stMainBlockContainer']:has([data-testid='stSkeleton']:not(:is(.st-key-app_chrome, .st-key-app_preload,
  [class*='st-key-live-frame-']) *)) { opacity: 0; }
.st-key-train_page, .st-key-train_page [data-testid='stVerticalBlock'] { gap: 0.6rem; }
.st-key-train_page h3 { padding-top: 0; }
.epoch-counter { font-size: 1.1rem; line-height: 1.4; }
.epoch-counter b { font-size: 1.6rem; }
</style>"""
FIRST_SCREEN_SECONDS = 2.0  # about how long a browser takes to draw the first page; Start never waits for this
# Presentation mode: everything in rem grows with the root font; plots grow in vae.figures.for_projector.
PRESENTATION_STYLE = """<style>html { font-size: 19.5px !important; }
[data-testid='stMainBlockContainer'] h1 { font-size: 2.1rem; padding-top: 0; }</style>"""


def presentation_switch() -> None:
    """One switch in the top bar for every page; `?present=1` in a link opens the app in presentation mode."""
    if PRESENTING_KEY not in st.session_state:
        st.session_state[PRESENTING_KEY] = st.query_params.get("present") == "1"
    st.toggle("Presentation mode", key=PRESENTING_KEY, on_change=_keep_in_url,
              help="Larger text and plots, advanced controls hidden: for a projector.")


# Reads the address when pressed (a fragment may have changed it since the page was drawn). A class server is often
# plain http on a LAN, where the clipboard API is missing: then a selected text area is copied the old way.
COPY_LINK = """<button class="copy-link" title="Copy this page's address: it opens this view, settings included.
Add &amp;hide=lr,batch_size to hide controls.">Copy link</button>
<script>
document.querySelectorAll("button.copy-link:not([data-ready])").forEach((button) => {
  button.dataset.ready = "1";
  button.addEventListener("click", () => {
    const url = window.location.href, done = () => { button.textContent = "Link copied";
      setTimeout(() => { button.textContent = "Copy link"; }, 2000); };
    if (navigator.clipboard && window.isSecureContext) { navigator.clipboard.writeText(url).then(done); return; }
    const text = document.createElement("textarea"); text.value = url; document.body.appendChild(text);
    text.select(); document.execCommand("copy"); text.remove(); done();
  });
});
</script>"""


def copy_link_button() -> None:
    """A class link: the page's address holds its settings (pages/_links.py); this copies it."""
    st.html(COPY_LINK, width="content", unsafe_allow_javascript=True)


def _keep_in_url() -> None:
    if st.session_state[PRESENTING_KEY]:
        st.query_params["present"] = "1"
    else:
        st.query_params.pop("present", None)


def preload_lazy_elements() -> None:
    """One hidden element of each light kind Streamlit draws with a script loaded on first use, that may first
    appear after a page is shown (a click, a popover, the next page). Heavy kinds (charts, tables, code) are not
    preloaded: they would slow the first screen, and a page that opens with one stays hidden until it is drawn."""
    st.latex("z")
    st.page_link("pages/train.py", label="Train")
    st.metric("z", 0)
    st.download_button("z", data=b"", key="preload:download")
    st.segmented_control("z", ["z"], key="preload:segmented")
    st.file_uploader("z", key="preload:upload")


PAGES = {  # file -> page
    "pages/lecture.py": st.Page("pages/lecture.py", title="Lecture", icon=":material/menu_book:"),
    "pages/train.py": (TRAIN_PAGE := st.Page("pages/train.py", title="Train", icon=":material/model_training:")),
    "pages/reparameterization.py": st.Page("pages/reparameterization.py", title="Reparameterization",
                                           icon=":material/shuffle:"),
    "pages/estimators.py": st.Page("pages/estimators.py", title="Estimators", icon=":material/query_stats:"),
    "pages/latent.py": st.Page("pages/latent.py", title="Latent space", icon=":material/explore:"),
}
# The root address opens the Train page at its own address, /train, which a teacher writes in a class link (a
# default page answers only to the root: /train was "Page not found" over the page). The link's settings are kept.
ROOT = st.Page(lambda: None, title="Train", url_path="start", default=True, visibility="hidden")
navigation = st.navigation([*PAGES.values(), ROOT], position="top")  # a sidebar would take a third of a projector
if navigation is ROOT:
    st.switch_page(TRAIN_PAGE, query_params=st.query_params.to_dict())
with st.container(height=1, border=False, key="app_chrome"):
    presentation_switch()
    with st.container(key="top_tools", horizontal=True):
        if st.session_state.get(TOUR_STEP_KEY) is None:
            st.button("Guided tour", icon=":material/tour:", key="tour:start", on_click=start_tour,
                      help="Twelve steps through the lecture, each one done in the live app.")
        copy_link_button()
    st.markdown(STYLE + (PRESENTATION_STYLE if presenting() else ""), unsafe_allow_html=True)
st.container(height=2000, border=False, key="app_cover")
tour_page = follow_tour(next(file for file, page in PAGES.items() if page.url_path == navigation.url_path))
if tour_page is not None:  # the tour's step is on another page
    st.switch_page(PAGES[tour_page], query_params={"tour": str(st.session_state[TOUR_STEP_KEY])})
if navigation.url_path != TRAIN_PAGE.url_path:
    wait_for_torch()  # the other pages import torch; the Train page draws its first screen without it
try:
    navigation.run()
except Exception as error:  # noqa: BLE001 - st.rerun and st.stop are BaseExceptions: they pass through
    show_failure(error)
finally:
    tour_panel()
    if st.session_state.setdefault("app:first_run_done", False):  # not with the first screen: it loads first
        with st.container(key="app_preload"):
            preload_lazy_elements()
    st.session_state["app:first_run_done"] = True
    warmup.start(delay=FIRST_SCREEN_SECONDS)  # torch, scipy, sklearn, the first optimiser: once the page is drawn
