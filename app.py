"""reparam-lab: a live, hands-on lecture on VAEs and the reparameterization trick. Run: streamlit run app.py"""

import pandas  # noqa: F401  - imported before any session starts: plotly can hit a half-imported pandas
import streamlit as st

from pages._session import PRESENTING_KEY, presenting, wait_for_torch
from vae import warmup

st.set_page_config(page_title="reparam-lab", page_icon=":material/school:", layout="wide")

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


pages = [
    st.Page("pages/lecture.py", title="Lecture", icon=":material/menu_book:"),
    TRAIN_PAGE := st.Page("pages/train.py", title="Train", icon=":material/model_training:", default=True),
    st.Page("pages/reparameterization.py", title="Reparameterization", icon=":material/shuffle:"),
    st.Page("pages/estimators.py", title="Estimators", icon=":material/query_stats:"),
    st.Page("pages/latent.py", title="Latent space", icon=":material/explore:"),
]
navigation = st.navigation(pages, position="top")  # the sidebar would take a third of a projector
with st.container(height=1, border=False, key="app_chrome"):
    presentation_switch()
    st.markdown(STYLE + (PRESENTATION_STYLE if presenting() else ""), unsafe_allow_html=True)
st.container(height=2000, border=False, key="app_cover")
if navigation.url_path != TRAIN_PAGE.url_path:
    wait_for_torch()  # the other pages import torch; the Train page draws its first screen without it
try:
    navigation.run()
finally:
    if st.session_state.setdefault("app:first_run_done", False):  # not with the first screen: it loads first
        with st.container(key="app_preload"):
            preload_lazy_elements()
    st.session_state["app:first_run_done"] = True
    warmup.start(delay=FIRST_SCREEN_SECONDS)  # torch, scipy, sklearn, the first optimiser: once the page is drawn
