"""Class links on the pages: each page's settings come from its URL and go back into it (vae.links checks them).

A page calls `open_link(SETTINGS)` before its widgets and `update_link()` after them (a fragment with settings
calls it too, as it reruns alone). A link this session has not seen sets the widgets; after that the widgets
lead and the URL follows, so a reload or a copied link opens the same view.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlencode

import streamlit as st

from pages._memory import preset_widget, remembered
from vae.links import GLOBAL_PARAMETERS, LinkSetting, link_query, read_link

SETTINGS_KEY = "link:settings"  # the settings of the page being drawn
SEEN_KEY = "link:seen"  # the query last read or written: a different one is a link just opened
HIDDEN_KEY = "link:hidden"


def query_now() -> dict[str, str]:
    return {name: st.query_params[name] for name in st.query_params}  # a repeated parameter: its last value


def open_link(settings: Sequence[LinkSetting]) -> None:
    """Before the page's widgets: a link just opened sets them; what it cannot use is named in a small notice."""
    query = query_now()
    reading = read_link(query, settings)
    st.session_state[SETTINGS_KEY], st.session_state[HIDDEN_KEY] = tuple(settings), reading.hidden
    if query == st.session_state.get(SEEN_KEY):
        return
    st.session_state[SEEN_KEY] = query
    for key, value in reading.values.items():
        preset_widget(key, value)
    if reading.ignored:
        from pages._session import literal  # noqa: PLC0415 - _session imports this module

        st.caption(":material/link_off: Left out of the link, so at their defaults: "
                   + literal("; ".join(reading.ignored)) + ".")  # a link's text is shown as written, never as Markdown


def hidden(name: str) -> bool:
    """Whether the link hides the control of setting `name` (`?hide=lr,batch_size`)."""
    return name in st.session_state.get(HIDDEN_KEY, ())


def unless_hidden(name: str, key: str, default: Any, draw: Callable[[], Any]) -> Any:
    """The widget `draw()` returns, or, when the link hides setting `name`, the value it would have shown."""
    return remembered(key, default) if hidden(name) else draw()


def update_link() -> None:
    """After the widgets: the URL holds this page's settings that differ from their defaults."""
    settings = st.session_state.get(SETTINGS_KEY, ())
    query = query_now()
    wanted = {name: text for name, text in query.items() if name in GLOBAL_PARAMETERS}
    wanted |= link_query({s.key: remembered(s.key, s.default) for s in settings}, settings)
    if wanted != query:
        st.query_params.from_dict(wanted)
    st.session_state[SEEN_KEY] = wanted


def link_url() -> str:
    """This view as a link (page and settings), for the top bar's "Link" popover."""
    base = (st.context.url or "").split("?")[0]
    query = query_now()
    return base + ("?" + urlencode(query) if query else "")
