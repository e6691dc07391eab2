"""Widget values that outlive a page switch. Streamlit drops a widget's state when a page without it runs, so each
value is also kept under a plain key ("kept:" + the widget's key), which pages draw from and links and the tour set."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import streamlit as st

KEPT = "kept:"


def remembered(key: str, default: Any) -> Any:
    """A widget's value to draw it with: its own state, else the value kept from an earlier page, else `default`.

    Pass it as the widget's `value`/`index` on every run, not only the first. A widget inside a popover or a
    closed expander is mounted in the browser only when first opened, and it then starts from the value its
    element carries: without `value` that is the widget's minimum (learning rate 1e-5, batch size 1), which the
    browser sends back and the next Start trains with."""
    return st.session_state.get(key, st.session_state.get(KEPT + key, default))


def remember_widgets(keys: Iterable[str]) -> None:
    """Keep widget values under plain keys, for the next page that draws them."""
    for key in keys:
        if key in st.session_state:
            st.session_state[KEPT + key] = st.session_state[key]


def preset_widget(key: str, value: Any) -> None:
    """Set a widget's value before its page draws it (a link, a tour step), and the copy that outlives the page."""
    st.session_state[key] = st.session_state[KEPT + key] = value
