"""The figures of the views beyond the Gaussian: implicit gradients, the simplex, the discrete estimators. Readable
on a projector, each quantity in its colour, and each drawing the data it is given."""

from __future__ import annotations

import numpy as np
import pytest

from vae.discrete import DiscreteEstimator, discrete_race, estimator_quality, relaxed_draws, toy_problem
from vae.figures import (
    CATEGORY_COLOURS,
    FONT_SIZE,
    PALETTE,
    category_bars_figure,
    discrete_quality_figure,
    discrete_race_figure,
    implicit_gradient_figure,
    simplex_figure,
)
from vae.implicit import IMPLICIT_FAMILIES, implicit_view


def figures() -> dict:
    view = implicit_view(IMPLICIT_FAMILIES["gamma"], {})
    draws = relaxed_draws((1.0, 0.0, -0.5), 0.5)
    problem = toy_problem(3)
    qualities = [estimator_quality(problem, e, 1.0, samples=2000) for e in DiscreteEstimator]
    race = discrete_race(problem, 1.0, steps=30)
    return {
        "implicit": implicit_gradient_figure(view.draws.z, view.draws.gradients["concentration"], view.grid,
                                             view.cdf_gradients["concentration"], "α"),
        "simplex": simplex_figure(draws.relaxed, draws.hard),
        "categories": category_bars_figure(draws.probabilities, draws.frequencies(), draws.relaxed_mean()),
        "quality": discrete_quality_figure([q.estimator.value for q in qualities], [q.bias for q in qualities],
                                           [q.variance ** 0.5 for q in qualities]),
        "race": discrete_race_figure(race.steps, {e.value: v for e, v in race.values.items()}, race.best),
    }


@pytest.fixture(scope="module")
def drawn() -> dict:
    return figures()


@pytest.mark.parametrize("name", ["implicit", "simplex", "categories", "quality", "race"])
def test_text_is_projector_sized(drawn, name):
    layout = drawn[name].layout
    assert layout.font.size >= FONT_SIZE and layout.legend.font.size >= FONT_SIZE
    for trace in drawn[name].data:
        if "line" in trace and trace.line.width is not None:
            assert trace.line.width >= 2


def test_the_simplex_draws_every_point_once_in_its_category_colour(drawn):
    draws = relaxed_draws((1.0, 0.0, -0.5), 0.5)
    traces = drawn["simplex"].data
    assert sum(len(t.a) for t in traces) == len(draws.hard)
    assert [t.marker.color for t in traces] == list(CATEGORY_COLOURS)
    for trace in traces:
        np.testing.assert_allclose(np.asarray(trace.a) + np.asarray(trace.b) + np.asarray(trace.c), 1.0)
    assert drawn["simplex"].layout.ternary.aaxis.title.font.size >= FONT_SIZE


def test_the_discrete_figures_name_each_estimator_in_its_colour(drawn):
    race_lines = [t for t in drawn["race"].data]
    assert [t.name for t in race_lines] == ["score function", "Gumbel-softmax", "straight-through"]
    assert [t.line.color for t in race_lines] == [PALETTE[e.value] for e in DiscreteEstimator]
    bias, spread, *legend = drawn["quality"].data
    assert list(spread.marker.color) == [PALETTE[e.value] for e in DiscreteEstimator]
    assert bias.marker.pattern.shape == "/" and not spread.marker.pattern.shape  # hatched: the bias
    assert [t.name for t in legend if t.showlegend is not False] == ["bias", "standard deviation"]
    assert drawn["quality"].layout.yaxis.type == "log"


def test_the_implicit_figure_draws_torch_over_the_cdf(drawn):
    dots, line = drawn["implicit"].data
    assert dots.mode == "markers" and line.mode == "lines" and line.line.dash == "dash"
    assert len(dots.x) == 2000 and len(line.x) == 300
