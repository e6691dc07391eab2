"""`live_plotly_chart`: a plotly chart that updates in place (st.plotly_chart remounts on every data change,
which flickers and drops the user's zoom). A small local component; plotly.js comes from the plotly package,
so it works offline."""

from __future__ import annotations

import shutil
from pathlib import Path

import plotly
import plotly.graph_objects as go
import pooch
import streamlit as st
import streamlit.components.v1 as components

_SOURCE = Path(__file__).with_name("_live_plot") / "index.html"
_PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
_BUILD = Path(pooch.os_cache("reparam-lab")) / f"live-plot-{plotly.__version__}"


def _build_component_folder() -> Path:
    """The component's page and plotly.js side by side (plotly.js is 5 MB: copied, never committed)."""
    _BUILD.mkdir(parents=True, exist_ok=True)
    if not (_BUILD / "plotly.min.js").exists():
        temporary = _BUILD / "plotly.min.js.tmp"
        shutil.copyfile(_PLOTLY_JS, temporary)
        temporary.replace(_BUILD / "plotly.min.js")
    shutil.copyfile(_SOURCE, _BUILD / "index.html")
    return _BUILD


_component = components.declare_component("live_plot", path=str(_build_component_folder()))


def live_plotly_chart(figure: go.Figure, key: str, height: int = 380) -> None:
    """Draw `figure`; later calls with the same key update the same chart in place.

    The chart sits in a box of its final height from the start: the browser shows a small placeholder until
    plotly.js has loaded in the chart's frame, and nothing around it may move when the chart replaces it (the app
    also does not hide the page for this placeholder, see app.py)."""
    with st.container(height=height, border=False, key=f"live-frame-{key}"):
        _component(figure=figure.to_json(), height=height, key=key, default=None)
