"""Class links: a page's settings written into its URL and read back, so a teacher can hand out a view as a link.

Each page declares its settings as `LinkSetting`s: the query parameter's name, the widget's key, and how a value
is checked. Reading a link never raises: a value that is unknown, malformed or out of range is left out and
named in `LinkReading.ignored`, so the page opens with its defaults there and a small notice. Writing keeps the
URL short: a setting at its default is left out. No Streamlit here: the pages pass `st.query_params` in.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# Parameters every page understands (app.py and the tour read them); never reported as unknown.
GLOBAL_PARAMETERS = ("present", "hide", "tour")
HIDE_PARAMETER = "hide"


@dataclass(frozen=True)
class LinkSetting:
    """One widget's value in the URL: `?name=value`. `when` = (other setting's name, its value) makes the setting
    apply only then (the σ slider of one family, the k of one cost), so two settings may share a name."""

    name: str
    key: str
    default: Any  # left out of the URL at this value
    parse: Callable[[str], Any]  # the value from its text; ValueError (with the reason) when it is not valid
    show: Callable[[Any], str] = str
    when: tuple[str, str] | None = None
    domain: tuple[Any, ...] = ()  # what parse accepts, for people and tests: the options, or (low, high)


def number(name: str, key: str, default: float, low: float, high: float, *, integer: bool = False,
           when: tuple[str, str] | None = None, choices: Sequence[float] | None = None) -> LinkSetting:
    """A number between `low` and `high` (inclusive), whole if `integer`, one of `choices` if given."""
    kind = int if integer else float

    def parse(text: str) -> float | int:
        try:
            value = float(text)
        except ValueError:
            raise ValueError("it is not a number") from None
        if not math.isfinite(value) or not low <= value <= high:
            raise ValueError(f"it must be between {low:g} and {high:g}")
        if integer and value != int(value):
            raise ValueError("it must be a whole number")
        if choices is not None and value not in choices:
            raise ValueError("it must be one of " + ", ".join(f"{c:g}" for c in choices))
        return kind(value)

    return LinkSetting(name, key, default, parse, _show_number, when, tuple(choices) if choices else (low, high))


def _show_number(value: float | int) -> str:
    return repr(float(value)).removesuffix(".0") if isinstance(value, float) else str(value)  # exact, and short


def choice(name: str, key: str, default: str, options: Iterable[str],
           when: tuple[str, str] | None = None) -> LinkSetting:
    """One of `options`, as written."""
    allowed = tuple(options)

    def parse(text: str) -> str:
        if text not in allowed:
            raise ValueError("it must be one of " + ", ".join(allowed))
        return text

    return LinkSetting(name, key, default, parse, str, when, allowed)


@dataclass
class LinkReading:
    values: dict[str, Any] = field(default_factory=dict)  # widget key -> value
    ignored: list[str] = field(default_factory=list)  # one sentence per parameter left out
    hidden: frozenset[str] = frozenset()  # setting names the link hides


def read_link(query: Mapping[str, str], settings: Sequence[LinkSetting]) -> LinkReading:
    """The settings a URL's query gives, checked; whatever cannot be used is named in `ignored`."""
    reading = LinkReading()
    chosen = {s.name: s.show(s.default) for s in settings if s.when is None}  # for `when`: what applies
    independent = [s for s in settings if s.when is None]
    for group in (independent, None):  # the settings others depend on first
        applicable = group if group is not None else [s for s in settings if s.when and
                                                      chosen.get(s.when[0]) == s.when[1]]
        for setting in applicable:
            if (text := query.get(setting.name)) is None:
                continue
            try:
                reading.values[setting.key] = setting.parse(text)
                chosen[setting.name] = text
            except ValueError as error:
                reading.ignored.append(f"{setting.name}={text!r}: {error}")
    used = {s.name for s in settings if s.when is None or chosen.get(s.when[0]) == s.when[1]}
    names = {setting.name for setting in settings}
    for name, text in query.items():
        if name in GLOBAL_PARAMETERS or name in used:
            continue
        why = "not with the other settings of this link" if name in names else "this page has no such setting"
        reading.ignored.append(f"{name}={text!r}: {why}")
    reading.hidden, unknown = read_hide(query.get(HIDE_PARAMETER, ""), names)
    reading.ignored += [f"hide={name!r}: this page has no such control" for name in unknown]
    return reading


def read_hide(text: str, names: Iterable[str]) -> tuple[frozenset[str], list[str]]:
    """`hide=lr,batch_size`: the names among `names`, and the ones that are not."""
    asked = [name.strip() for name in text.split(",") if name.strip()]
    known = set(names)
    return frozenset(name for name in asked if name in known), [name for name in asked if name not in known]


def link_query(values: Mapping[str, Any], settings: Sequence[LinkSetting]) -> dict[str, str]:
    """The query for `values` (widget key -> value): only what differs from the defaults and can be read back, and
    only settings whose `when` holds."""
    query: dict[str, str] = {}
    written = {setting.name: setting.show(values.get(setting.key, setting.default)) for setting in settings
               if setting.when is None}
    for setting in settings:
        if setting.key not in values or (setting.when and written.get(setting.when[0]) != setting.when[1]):
            continue
        if values[setting.key] != setting.default and _readable(setting, text := setting.show(values[setting.key])):
            query[setting.name] = text
    return query


def _readable(setting: LinkSetting, text: str) -> bool:
    """Whether a link can carry this value (not a live run, nor an uploaded file)."""
    try:
        setting.parse(text)
        return True
    except ValueError:
        return False
