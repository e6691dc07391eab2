"""vae.toy_costs: the variance lab's exact values, closed forms against quadrature and against formulas worked by
hand, the "not reliable" contract, `gaussian_expectation`, and what the Estimators page teaches with them.
(tests/test_exact_sweep.py checks the exact values over the whole slider box.)"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.toy_settings import SETTINGS
from vae.baselines import BASELINES
from vae.toy_costs import COSTS, cost_function, exact_gradient, exact_variance, gaussian_expectation, is_reliable

COMBOS = [("pathwise", "none")] + [("score_function", b) for b in BASELINES]


# ---------------------------------------------------------------------------------------------------------------
# exact values: closed forms against quadrature and against formulas worked by hand
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(COSTS))
def test_closed_form_gradients_agree_with_quadrature(name):
    for loc, scale, k in [*SETTINGS[name], (-1.0, 1.5, COSTS[name].default_k)]:
        closed = exact_gradient(name, loc, scale, k, method="closed_form")
        quad = exact_gradient(name, loc, scale, k, method="quad")
        for p in ("loc", "scale"):
            assert closed[p] == pytest.approx(quad[p], rel=1e-8, abs=1e-10)


@pytest.mark.parametrize("name", list(COSTS))
@pytest.mark.parametrize(("estimator", "baseline"), COMBOS)
def test_closed_form_variances_agree_with_quadrature(name, estimator, baseline):
    for loc, scale, k in SETTINGS[name]:
        closed = exact_variance(name, estimator, loc, scale, k, baseline, method="closed_form")
        quad = exact_variance(name, estimator, loc, scale, k, baseline, method="quad")
        for p in ("loc", "scale"):
            assert closed[p] == pytest.approx(quad[p], rel=1e-8, abs=1e-10)


@settings(max_examples=25, deadline=None)
@given(loc=st.floats(-2, 2), scale=st.floats(0.2, 2), k=st.floats(-2, 2))
def test_quadratic_variances_match_the_hand_worked_formulas(loc, scale, k):
    """f = (z-k)², a = loc - k, b = 0: moments of eps (E eps^2n = (2n-1)!!) worked out by hand."""
    a = loc - k
    pathwise = exact_variance("(z-k)^2", "pathwise", loc, scale, k)
    score = exact_variance("(z-k)^2", "score_function", loc, scale, k)
    assert pathwise["loc"] == pytest.approx(4 * scale**2)
    assert pathwise["scale"] == pytest.approx(4 * a**2 + 8 * scale**2)
    assert score["loc"] == pytest.approx((a**4 + 18 * a**2 * scale**2 + 15 * scale**4) / scale**2 - 4 * a**2)
    assert score["scale"] == pytest.approx((2 * a**4 + 60 * a**2 * scale**2 + 78 * scale**4) / scale**2
                                           - 4 * scale**2)
    assert exact_gradient("(z-k)^2", loc, scale, k) == pytest.approx({"loc": 2 * a, "scale": 2 * scale})


def test_linear_cost_variances_match_the_hand_worked_formulas():
    loc, scale = 0.7, 0.5
    assert exact_variance("z", "pathwise", loc, scale, 0.0) == pytest.approx({"loc": 0.0, "scale": 1.0}, abs=1e-12)
    assert exact_variance("z", "score_function", loc, scale, 0.0) == pytest.approx(
        {"loc": 2 + loc**2 / scale**2, "scale": 10 + 2 * loc**2 / scale**2})
    for baseline in ("moving_average", "optimal"):  # both give b = loc here: g_loc = eps², g_scale = eps³ - eps
        assert exact_variance("z", "score_function", loc, scale, 0.0, baseline) == pytest.approx(
            {"loc": 2.0, "scale": 10.0})


def test_issue_12s_examples_match_the_hand_worked_formulas():
    """Three values issue 12 found wrong (a narrow peak missed, a tail cut off), against formulas worked by hand."""
    scale, k = 3.0, 20.0  # exp(-k z²), mu = 0: Var f' = E[f'²] = 4k² scale² E[eps² exp(-2k z²)] = 4k² scale² / c^1.5
    c = 1 + 4 * k * scale**2
    assert exact_variance("exp(-k z^2)", "pathwise", 0.0, scale, k)["loc"] == pytest.approx(4 * k**2 * scale**2
                                                                                          / c**1.5, rel=1e-12)
    for loc, scale, k in [(0.0, 3.0, 2.0), (3.0, 2.9, -2.0)]:  # exp(kz): Var f' = k² e^(2k mu + k² s²) (e^(k² s²) - 1)
        exact = k**2 * math.exp(2 * k * loc + k**2 * scale**2) * math.expm1(k**2 * scale**2)
        assert exact_variance("exp(k z)", "pathwise", loc, scale, k)["loc"] == pytest.approx(exact, rel=1e-12)
    loc, scale, k = 1.0, 3.0, 20.0  # the moving average's b = E[f]: Var = E[f² eps²]/s² - 2 E f E[f eps²]/s² + ...
    mean = lambda a, n: gaussian_expectation(lambda z: np.exp(-a * z**2) * ((z - loc) / scale) ** n, loc, scale,  # noqa: E731
                                             (0.0,))
    gradient = exact_gradient("exp(-k z^2)", loc, scale, k)["loc"]
    expected = (mean(2 * k, 2) - 2 * mean(k, 0) * mean(k, 2) + mean(k, 0) ** 2) / scale**2 - gradient**2
    assert exact_variance("exp(-k z^2)", "score_function", loc, scale, k, "moving_average")["loc"] == pytest.approx(
        expected, rel=1e-9)


def test_values_past_the_double_range_are_not_reliable():
    """exp(kz) with k scale = 40: the moments exceed the double range, so nan (shown as "cannot be computed
    reliably"), never an exception or a wrong number; over the slider box every value is reliable."""
    for estimator in ("pathwise", "score_function"):
        assert not any(map(is_reliable, exact_variance("exp(k z)", estimator, 0.0, 20.0, 2.0, "optimal").values()))
    assert not any(map(is_reliable, exact_gradient("exp(k z)", 0.0, 20.0, 40.0).values()))
    assert all(map(is_reliable, exact_variance("exp(k z)", "score_function", 3.0, 3.0, 2.0, "optimal").values()))
    assert is_reliable(0.0) and not is_reliable(math.nan) and not is_reliable(math.inf)


def test_gaussian_expectation_finds_where_the_integrand_lives():
    loc, scale = 0.7, 1.3
    assert gaussian_expectation(lambda z: z**2, loc, scale) == pytest.approx(loc**2 + scale**2, rel=1e-13)
    k = 2.0  # exp(2kz) moves the mass to eps = 2k scale: E exp(2kz) = exp(2k loc + 2k² scale²)
    assert gaussian_expectation(lambda z: np.exp(2 * k * z), 3.0, 3.0) == pytest.approx(
        math.exp(2 * k * 3.0 + 2 * k**2 * 9.0), rel=1e-12)
    k, scale = 20.0, 3.0  # a peak of width 0.05 in eps, found at the given point z = 0
    assert gaussian_expectation(lambda z: np.exp(-k * z**2), 0.4, scale, points=(0.0,)) == pytest.approx(
        math.exp(-k * 0.4**2 / (1 + 2 * k * scale**2)) / math.sqrt(1 + 2 * k * scale**2), rel=1e-12)
    assert gaussian_expectation(lambda z: np.abs(z - 0.5), 0.5, 2.0, points=(0.5,)) == pytest.approx(
        2.0 * math.sqrt(2 / math.pi), rel=1e-13)  # the folded normal's mean, with the kink at the centre
    assert gaussian_expectation(lambda z: 0 * z, 0.0, 1.0) == 0.0
    assert math.isnan(gaussian_expectation(lambda z: np.exp(z**2), 0.0, 1.0))  # infinite: nan, not a number


@pytest.mark.parametrize("name", list(COSTS))
def test_each_derivative_is_the_derivative_of_its_cost(name):
    z = torch.linspace(-2.9, 3.1, 41, dtype=torch.float64, requires_grad=True)  # avoids the kinks at k = 0.7
    cost = COSTS[name]
    total = cost.f(z, 0.7).sum()
    # a step has no autograd graph at all: its derivative is zero wherever it exists
    autograd = torch.autograd.grad(total, z)[0] if total.requires_grad else torch.zeros_like(z)
    torch.testing.assert_close(cost.df(z.detach(), 0.7), autograd)


# ---------------------------------------------------------------------------------------------------------------
# what the Estimators page teaches
# ---------------------------------------------------------------------------------------------------------------


def test_pathwise_is_far_less_noisy_on_the_lectures_quadratic():
    for loc, scale, k in [(0.0, 1.0, 1.0), (1.0, 0.5, -1.0), (2.0, 2.0, 0.0)]:
        pathwise = exact_variance("(z-k)^2", "pathwise", loc, scale, k)
        score = exact_variance("(z-k)^2", "score_function", loc, scale, k)
        assert pathwise["loc"] < score["loc"] and pathwise["scale"] < score["scale"]
    pathwise = exact_variance("(z-k)^2", "pathwise", 0.0, 1.0, 1.0)
    score = exact_variance("(z-k)^2", "score_function", 0.0, 1.0, 1.0)
    assert score["loc"] > 5 * pathwise["loc"] and score["scale"] > 10 * pathwise["scale"]


def test_the_score_function_wins_for_a_fast_oscillating_cost():
    for loc in (0.0, 0.3, 1.0):
        pathwise = exact_variance("cos(k z)", "pathwise", loc, 1.0, 5.0)
        score = exact_variance("cos(k z)", "score_function", loc, 1.0, 5.0)
        assert score["loc"] < pathwise["loc"] / 5 and score["scale"] < pathwise["scale"] / 5
    peaked = exact_variance("exp(-k z^2)", "pathwise", 0.0, 1.0, 20.0)
    assert exact_variance("exp(-k z^2)", "score_function", 0.0, 1.0, 20.0)["loc"] < peaked["loc"] / 100
    assert "score function can beat the pathwise" in COSTS["cos(k z)"].note


def test_exp_kz_variance_explodes_with_sigma_and_k():
    for estimator in ("pathwise", "score_function"):
        by_sigma = [exact_variance("exp(k z)", estimator, 0.0, s, 1.0)["loc"] for s in (0.75, 1.0, 1.25, 1.5)]
        by_k = [exact_variance("exp(k z)", estimator, 0.0, 1.0, k)["scale"] for k in (0.5, 0.75, 1.0, 1.25)]
        assert np.all(np.diff(np.log(by_sigma)) > 0.5) and np.all(np.diff(np.log(by_k)) > 0.5)


def test_bad_inputs_are_sentences():
    with pytest.raises(ValueError, match="choose one of: \\(z-k\\)\\^2, z, exp"):
        cost_function("sin(z)", 1.0)
    with pytest.raises(ValueError, match="Unknown method 'exact'; choose auto, closed_form or quad"):
        exact_variance("cos(k z)", "pathwise", 0.0, 1.0, 1.0, method="exact")
    with pytest.raises(ValueError, match="scale must be positive"):
        exact_gradient("z", 0.0, 0.0, 1.0)
    with pytest.raises(ValueError, match="Unknown estimator"):
        exact_variance("z", "reinforce", 0.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="Unknown baseline 'mean'"):
        exact_variance("z", "score_function", 0.0, 1.0, 1.0, "mean")


def test_cost_function_sums_over_the_parameter_dimensions():
    z = torch.randn(3, 2, 4, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    torch.testing.assert_close(cost_function("cos(k z)", 2.0)(z), torch.cos(2.0 * z).sum((2, 3)))
    torch.testing.assert_close(cost_function("cos(k z)", 2.0)(z[..., 0, 0]), torch.cos(2.0 * z[..., 0, 0]))
