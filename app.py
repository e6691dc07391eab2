"""reparam-lab: a live, hands-on lecture on VAEs and the reparameterization trick. Run: streamlit run app.py"""

import pandas  # noqa: F401  - imported before any session starts: plotly can hit a half-imported pandas
import streamlit as st

from pages._session import PRESENTING_KEY, presenting
from vae import warmup

st.set_page_config(page_title="reparam-lab", page_icon=":material/school:", layout="wide")

# The top bar (navigation) is about 3.75rem tall: the page starts just under it, so nothing is clipped and the
# live charts fit a 1280x720 projector. The running indicator is hidden: with fragments refreshing twice a second
# it would blink all the time in front of a class. Stale elements keep full opacity for the same reason.
STYLE = """<style>
[data-testid='stMainBlockContainer'] { padding-top: 3.9rem; padding-bottom: 1rem; }
[data-testid='stStatusWidget'] { visibility: hidden; }
[data-stale='true'] { opacity: 1 !important; transition: none !important; }
.st-key-presentation_mode { position: fixed; top: 0.85rem; right: 4rem; z-index: 999991; width: auto !important; }
.epoch-counter { font-size: 1.1rem; line-height: 1.4; }
.epoch-counter b { font-size: 1.6rem; }
</style>"""
# Presentation mode: everything in rem grows with the root font; plots grow in vae.figures.for_projector.
PRESENTATION_STYLE = "<style>html { font-size: 19.5px !important; }</style>"


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


st.html(STYLE)
presentation_switch()
if presenting():
    st.html(PRESENTATION_STYLE)
pages = [
    st.Page("pages/lecture.py", title="Lecture", icon=":material/menu_book:"),
    st.Page("pages/train.py", title="Train", icon=":material/model_training:", default=True),
    st.Page("pages/reparameterization.py", title="Reparameterization", icon=":material/shuffle:"),
    st.Page("pages/estimators.py", title="Estimators", icon=":material/query_stats:"),
    st.Page("pages/latent.py", title="Latent space", icon=":material/explore:"),
]
try:
    st.navigation(pages, position="top").run()  # the sidebar would take a third of a projector
finally:
    warmup.start()  # torch, scipy, sklearn and the first optimiser, in the background, after the first page
