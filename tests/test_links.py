"""Class links (vae.links): a page's settings written into a URL query and read back, bad values left out with
a reason, never an error."""

from __future__ import annotations

import pytest

from vae import links

SETTINGS = [
    links.choice("family", "p:family", "gaussian", ["gaussian", "laplace"]),
    links.number("scale", "p:gaussian:scale", 1.0, 0.1, 3.0, when=("family", "gaussian")),
    links.number("scale", "p:laplace:scale", 2.0, 0.5, 4.0, when=("family", "laplace")),
    links.number("K", "p:K", 1, 1, 128, integer=True, choices=[1, 2, 4, 128]),
    links.number("epochs", "p:epochs", 150, 1, 10_000, integer=True),
]


def test_a_link_reads_back_what_was_written_including_corners():
    for values in ({"p:family": "laplace", "p:laplace:scale": 0.5, "p:K": 128, "p:epochs": 10_000},
                   {"p:family": "gaussian", "p:gaussian:scale": 3.0, "p:K": 2, "p:epochs": 1},
                   {"p:gaussian:scale": 0.1 + 0.2}):  # a float that prints long must come back exactly
        query = links.link_query(values, SETTINGS)
        reading = links.read_link(query, SETTINGS)
        assert reading.ignored == []
        assert reading.values == {k: v for k, v in values.items() if v != {s.key: s.default for s in SETTINGS}[k]}


def test_defaults_stay_out_of_the_url():
    assert links.link_query({s.key: s.default for s in SETTINGS}, SETTINGS) == {}
    assert links.link_query({"p:family": "laplace", "p:laplace:scale": 2.0}, SETTINGS) == {"family": "laplace"}


def test_a_setting_of_another_choice_is_not_written():
    query = links.link_query({"p:family": "gaussian", "p:laplace:scale": 3.5}, SETTINGS)
    assert query == {}


@pytest.mark.parametrize(("query", "reason"), [
    ({"scale": "3.01"}, "scale='3.01': it must be between 0.1 and 3"),
    ({"scale": "nan"}, "scale='nan': it must be between 0.1 and 3"),
    ({"scale": "inf"}, "scale='inf': it must be between 0.1 and 3"),
    ({"scale": "abc"}, "scale='abc': it is not a number"),
    ({"K": "3"}, "K='3': it must be one of 1, 2, 4, 128"),
    ({"epochs": "2.5"}, "epochs='2.5': it must be a whole number"),
    ({"epochs": "0"}, "epochs='0': it must be between 1 and 10000"),
    ({"family": "<script>"}, "family='<script>': it must be one of gaussian, laplace"),
    ({"lr": "1"}, "lr='1': this page has no such setting"),
    ({"hide": "scale,nosuch"}, "hide='nosuch': this page has no such control"),
])
def test_bad_parameters_are_left_out_with_a_reason(query, reason):
    reading = links.read_link(query, SETTINGS)
    assert reading.values == {}
    assert reading.ignored == [reason]


def test_the_dependent_setting_follows_the_choice_in_the_same_link():
    reading = links.read_link({"family": "laplace", "scale": "4"}, SETTINGS)
    assert reading.values == {"p:family": "laplace", "p:laplace:scale": 4.0}
    # Out of Laplace's range but inside the Gaussian's: the family decides which range applies.
    assert links.read_link({"family": "laplace", "scale": "0.2"}, SETTINGS).values == {"p:family": "laplace"}
    # A bad family falls back to the default's range for the scale.
    reading = links.read_link({"family": "cauchy", "scale": "0.2"}, SETTINGS)
    assert reading.values == {"p:gaussian:scale": 0.2} and len(reading.ignored) == 1


def test_hide_names_the_controls_to_leave_out_and_global_parameters_are_not_errors():
    reading = links.read_link({"hide": " K , epochs,", "present": "1", "tour": "3"}, SETTINGS)
    assert reading.hidden == {"K", "epochs"} and reading.ignored == []


def test_a_value_that_cannot_be_read_back_is_not_written():
    """A live run or an uploaded file cannot travel in a link: the model picker's value is left out."""
    model = links.choice("model", "p:model", "digits-2d", ["digits-2d", "digits"])
    assert links.link_query({"p:model": "live"}, [model]) == {}
    assert links.link_query({"p:model": "digits"}, [model]) == {"model": "digits"}
