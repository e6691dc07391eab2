"""reparam-lab: a live, hands-on lecture on VAEs and the reparameterization trick. Run: streamlit run app.py"""

import pandas  # noqa: F401  - imported before any session starts: plotly can hit a half-imported pandas
import streamlit as st

from vae.job import warm_up

st.set_page_config(page_title="reparam-lab", page_icon=":material/school:", layout="wide")


@st.cache_resource(show_spinner="Warming up PyTorch…")
def _warm_up_once() -> bool:
    warm_up()  # the first optimiser imports slow machinery: pay for it now, not on the first click
    return True


_warm_up_once()
# Less empty space above each page: on a 1280x720 projector the live charts should be on the first screen.
st.html("<style>[data-testid='stMainBlockContainer'] { padding-top: 2.5rem; }</style>")
pages = [
    st.Page("pages/lecture.py", title="Lecture", icon=":material/menu_book:"),
    st.Page("pages/train.py", title="Train", icon=":material/model_training:", default=True),
    st.Page("pages/reparameterization.py", title="Reparameterization", icon=":material/shuffle:"),
    st.Page("pages/estimators.py", title="Estimators", icon=":material/query_stats:"),
    st.Page("pages/latent.py", title="Latent space", icon=":material/explore:"),
]
st.navigation(pages, position="top").run()  # the sidebar would take a third of a projector
