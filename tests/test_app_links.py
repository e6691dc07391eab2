"""A class link round-trips every page's settings: a link with every setting away from its default opens the
page with exactly those values, the page writes the same link back, and that link opens the same view again."""

from __future__ import annotations

from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from pages._session import literal
from tests.conftest import open_app_page
from vae.links import LinkSetting

PAGES = ["pages/lecture.py", "pages/train.py", "pages/reparameterization.py", "pages/estimators.py",
         "pages/latent.py"]


def other_value(setting: LinkSetting) -> Any:
    """A value the setting accepts that is not its default: another option, or the low end of its range (the
    high end if the default sits there). Low ends keep the page cheap (50 repetitions, 5 epochs)."""
    if isinstance(setting.default, str) or len(setting.domain) != 2:
        return next(option for option in setting.domain if option != setting.default)
    low, high = setting.domain
    value = low if low != setting.default else high
    return type(setting.default)(value)


def linked_values(settings: tuple[LinkSetting, ...]) -> dict[str, Any]:
    """Widget key -> value: every independent setting moved, then the dependent ones that apply."""
    chosen = {s.name: other_value(s) for s in settings if s.when is None}
    values = {s.key: chosen[s.name] for s in settings if s.when is None}
    for setting in settings:
        if setting.when and str(chosen.get(setting.when[0])) == setting.when[1]:
            values[setting.key] = other_value(setting)
    return values


def open_with(path: str, query: dict[str, str]) -> AppTest:
    at = open_app_page()
    at.switch_page(path)
    at.query_params.clear()
    at.query_params.update(query)
    at.run()
    assert not at.exception
    return at


def query_of(at: AppTest) -> dict[str, str]:
    return {name: value[-1] if isinstance(value, list) else value for name, value in at.query_params.items()}


@pytest.mark.parametrize("path", PAGES)
def test_a_class_link_round_trips_every_setting_of_the_page(path):
    settings = open_app_page(path).session_state["link:settings"]
    assert settings, f"{path} declares no settings for class links"
    values = linked_values(settings)
    by_key = {s.key: s for s in settings}
    query = {by_key[key].name: by_key[key].show(value) for key, value in values.items()}

    at = open_with(path, query)
    assert not [c.value for c in at.caption if "Left out of the link" in c.value]
    assert {key: at.session_state[key] for key in values} == values  # the widgets show what the link says
    assert query_of(at) == query  # and the page writes the same link back

    again = open_with(path, query_of(at))
    assert {key: again.session_state[key] for key in values} == values


def test_moving_a_widget_updates_the_link_and_bad_parameters_get_a_notice_not_an_error():
    at = open_with("pages/estimators.py", {"mu": "9", "sigma": "0.5", "colour": "red"})
    notice = next(c.value for c in at.caption if "Left out of the link" in c.value)
    assert literal("mu='9': it must be between -3 and 3") in notice
    assert literal("colour='red': this page has no such setting") in notice
    assert at.session_state["estimators:mu"] == 1.0 and at.session_state["estimators:sigma"] == 0.5
    at.slider(key="estimators:mu").set_value(-1.5).run()
    assert query_of(at) == {"mu": "-1.5", "sigma": "0.5"}  # the bad ones are gone from the URL too


def test_a_hostile_link_is_shown_as_written_never_as_markup():
    at = open_with("pages/lecture.py", {"[x](javascript:alert(1))": "**bold**", "graph": "<img src=x>"})
    notice = next(c.value for c in at.caption if "Left out of the link" in c.value)
    assert "](javascript" not in notice and "**bold**" not in notice  # escaped: no link, no emphasis
    assert literal("graph='<img src=x>'") in notice


def test_hide_leaves_controls_out_but_keeps_their_linked_values():
    at = open_with("pages/train.py", {"hide": "lr,batch_size", "lr": "0.01"})
    labels = [widget.label for widget in at.number_input] + [widget.label for widget in at.slider]
    assert not any("Learning rate" in label or "Batch size" in label for label in labels)
    assert any("Epochs" in label for label in labels)
    assert at.session_state["train:lr"] == 0.01
    next(button for button in at.button if button.label == "Start").click().run()
    job = at.session_state["training_job"]
    try:
        assert job.config.lr == 0.01  # the hidden setting still trains with the link's value
    finally:
        job.stop()
