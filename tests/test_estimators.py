"""vae.estimators: both estimators unbiased, their variances equal to the exact ones, the shared contract kept."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate

from vae.config import POSTERIOR_FAMILIES
from vae.estimators import (
    BASELINES,
    COSTS,
    ESTIMATORS,
    MOVING_AVERAGE_DECAY,
    cost_function,
    exact_gradient,
    exact_variance,
    pathwise_gradients,
    score_function_gradients,
)
from vae.families import FAMILIES, posterior_params

# (mu, sigma, k) per cost: modest for exp(k z), whose empirical variance settles slowly (heavy tails).
SETTINGS = {
    "(z-k)^2": [(0.5, 1.0, 1.0), (-0.3, 0.6, 0.8)],
    "z": [(0.5, 1.0, 0.0), (-1.2, 0.5, 0.0)],
    "exp(-k z^2)": [(0.5, 1.0, 1.0), (0.2, 0.8, 5.0)],
    "cos(k z)": [(0.5, 1.0, 1.0), (0.3, 1.0, 5.0)],
    "exp(k z)": [(0.5, 1.0, 0.5), (-0.3, 0.8, -0.6)],
    "|z-k|": [(0.5, 1.0, 1.0), (0.0, 0.5, 0.0)],
    "1[z>k]": [(0.5, 1.0, 1.0), (-0.4, 0.7, 0.0)],
}
COMBOS = [("pathwise", "none")] + [("score_function", b) for b in BASELINES]
CASES = [(name, setting, est, b) for name, settings_ in SETTINGS.items() for setting in settings_
         for est, b in COMBOS if COSTS[name].pathwise_unbiased or est != "pathwise"]
SAMPLES = 200_000


def params(mu: float, sigma: float, dtype=torch.float64) -> dict[str, torch.Tensor]:
    return {"loc": torch.tensor(mu, dtype=dtype), "scale": torch.tensor(sigma, dtype=dtype)}


def estimates(name, setting, estimator, baseline, repetitions=SAMPLES, num_samples=1, seed=0) -> dict[str, np.ndarray]:
    mu, sigma, k = setting
    generator = torch.Generator().manual_seed(seed)
    grads = ESTIMATORS[estimator](cost_function(name, k), params(mu, sigma), num_samples, repetitions,
                                  generator=generator, baseline=baseline)
    return {p: g.numpy() for p, g in grads.items()}


def cost_variance(name: str, mu: float, sigma: float, k: float) -> float:
    """Var f(z) by scipy quadrature, independent of the module's own integrator."""
    f = lambda e: float(COSTS[name].f(torch.tensor(mu + sigma * e, dtype=torch.float64), k))  # noqa: E731
    phi = lambda e: math.exp(-e * e / 2) / math.sqrt(2 * math.pi)  # noqa: E731
    points = [(k - mu) / sigma] if name in ("|z-k|", "1[z>k]") else None
    m1 = integrate.quad(lambda e: f(e) * phi(e), -12, 12, points=points, limit=200)[0]
    return integrate.quad(lambda e: (f(e) - m1) ** 2 * phi(e), -12, 12, points=points, limit=200)[0]


# ---------------------------------------------------------------------------------------------------------------
# unbiased, and the exact variance is the empirical one
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "setting", "estimator", "baseline"), CASES)
def test_unbiased_with_the_exact_variance(name, setting, estimator, baseline):
    mu, sigma, k = setting
    samples = estimates(name, setting, estimator, baseline, seed=CASES.index((name, setting, estimator, baseline)))
    gradient = exact_gradient(name, mu, sigma, k)
    variance = exact_variance(name, estimator, mu, sigma, k, baseline)
    for p in ("loc", "scale"):
        x = samples[p]
        assert abs(x.mean() - gradient[p]) <= 5 * x.std() / math.sqrt(len(x)) + 1e-12, p
        expected = variance[p]
        if baseline == "moving_average":  # the moving average's own noise: Var[f] E[s²] (1 - beta) / (1 + beta)
            beta, score_square = MOVING_AVERAGE_DECAY, (1.0 if p == "loc" else 2.0) / sigma**2
            expected += cost_variance(name, mu, sigma, k) * score_square * (1 - beta) / (1 + beta)
        # standard error of the empirical variance: sqrt((m4 - var²) / n); 2% slack for a pilot-estimated b*
        stderr = math.sqrt(max(np.mean((x - x.mean()) ** 4) - x.var() ** 2, 0.0) / len(x))
        slack = 0.02 * expected if baseline == "optimal" else 0.0
        assert abs(x.var() - expected) <= 5 * stderr + slack + 1e-12, (p, x.var(), expected)


def test_pathwise_is_biased_when_f_jumps():
    """1[z>k]: f' = 0 at every draw, so the pathwise estimate is exactly 0; the score function gets it right."""
    mu, sigma, k = SETTINGS["1[z>k]"][0]
    gradient = exact_gradient("1[z>k]", mu, sigma, k)
    pathwise = estimates("1[z>k]", (mu, sigma, k), "pathwise", "none", repetitions=1000)
    assert not COSTS["1[z>k]"].pathwise_unbiased
    assert np.all(pathwise["loc"] == 0) and np.all(pathwise["scale"] == 0) and gradient["loc"] > 0.3
    assert exact_variance("1[z>k]", "pathwise", mu, sigma, k) == {"loc": 0.0, "scale": 0.0}


def test_k_draw_estimates_have_the_single_sample_variance_over_k():
    x = estimates("cos(k z)", (0.5, 1.0, 1.0), "pathwise", "none", repetitions=20_000, num_samples=8)
    exact = exact_variance("cos(k z)", "pathwise", 0.5, 1.0, 1.0)
    for p in ("loc", "scale"):
        assert x[p].var() == pytest.approx(exact[p] / 8, rel=0.05)


# ---------------------------------------------------------------------------------------------------------------
# exact values: closed forms against quadrature and against formulas worked by hand
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(COSTS))
def test_closed_form_gradients_agree_with_quadrature(name):
    for mu, sigma, k in [*SETTINGS[name], (-1.0, 1.5, COSTS[name].default_k)]:
        closed = exact_gradient(name, mu, sigma, k, method="closed_form")
        quad = exact_gradient(name, mu, sigma, k, method="quad")
        for p in ("loc", "scale"):
            assert closed[p] == pytest.approx(quad[p], rel=1e-8, abs=1e-10)


@pytest.mark.parametrize("name", ["(z-k)^2", "z"])
@pytest.mark.parametrize(("estimator", "baseline"), COMBOS)
def test_closed_form_variances_agree_with_quadrature(name, estimator, baseline):
    for mu, sigma, k in SETTINGS[name]:
        closed = exact_variance(name, estimator, mu, sigma, k, baseline, method="closed_form")
        quad = exact_variance(name, estimator, mu, sigma, k, baseline, method="quad")
        for p in ("loc", "scale"):
            assert closed[p] == pytest.approx(quad[p], rel=1e-8, abs=1e-10)


@settings(max_examples=25, deadline=None)
@given(mu=st.floats(-2, 2), sigma=st.floats(0.2, 2), k=st.floats(-2, 2))
def test_quadratic_variances_match_the_hand_worked_formulas(mu, sigma, k):
    """f = (z-k)², a = mu - k, b = 0: moments of eps (E eps^2n = (2n-1)!!) worked out by hand."""
    a = mu - k
    pathwise = exact_variance("(z-k)^2", "pathwise", mu, sigma, k)
    score = exact_variance("(z-k)^2", "score_function", mu, sigma, k)
    assert pathwise["loc"] == pytest.approx(4 * sigma**2)
    assert pathwise["scale"] == pytest.approx(4 * a**2 + 8 * sigma**2)
    assert score["loc"] == pytest.approx((a**4 + 18 * a**2 * sigma**2 + 15 * sigma**4) / sigma**2 - 4 * a**2)
    assert score["scale"] == pytest.approx((2 * a**4 + 60 * a**2 * sigma**2 + 78 * sigma**4) / sigma**2
                                           - 4 * sigma**2)
    assert exact_gradient("(z-k)^2", mu, sigma, k) == pytest.approx({"loc": 2 * a, "scale": 2 * sigma})


def test_linear_cost_variances_match_the_hand_worked_formulas():
    mu, sigma = 0.7, 0.5
    assert exact_variance("z", "pathwise", mu, sigma, 0.0) == pytest.approx({"loc": 0.0, "scale": 1.0}, abs=1e-12)
    assert exact_variance("z", "score_function", mu, sigma, 0.0) == pytest.approx(
        {"loc": 2 + mu**2 / sigma**2, "scale": 10 + 2 * mu**2 / sigma**2})
    for baseline in ("moving_average", "optimal"):  # both give b = mu here: g_loc = eps², g_scale = eps³ - eps
        assert exact_variance("z", "score_function", mu, sigma, 0.0, baseline) == pytest.approx(
            {"loc": 2.0, "scale": 10.0})


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
    for mu, sigma, k in [(0.0, 1.0, 1.0), (1.0, 0.5, -1.0), (2.0, 2.0, 0.0)]:
        pathwise = exact_variance("(z-k)^2", "pathwise", mu, sigma, k)
        score = exact_variance("(z-k)^2", "score_function", mu, sigma, k)
        assert pathwise["loc"] < score["loc"] and pathwise["scale"] < score["scale"]
    pathwise = exact_variance("(z-k)^2", "pathwise", 0.0, 1.0, 1.0)
    score = exact_variance("(z-k)^2", "score_function", 0.0, 1.0, 1.0)
    assert score["loc"] > 5 * pathwise["loc"] and score["scale"] > 10 * pathwise["scale"]


def test_the_score_function_wins_for_a_fast_oscillating_cost():
    for mu in (0.0, 0.3, 1.0):
        pathwise = exact_variance("cos(k z)", "pathwise", mu, 1.0, 5.0)
        score = exact_variance("cos(k z)", "score_function", mu, 1.0, 5.0)
        assert score["loc"] < pathwise["loc"] / 5 and score["scale"] < pathwise["scale"] / 5
    peaked = exact_variance("exp(-k z^2)", "pathwise", 0.0, 1.0, 20.0)
    assert exact_variance("exp(-k z^2)", "score_function", 0.0, 1.0, 20.0)["loc"] < peaked["loc"] / 100
    assert "score function can beat the pathwise" in COSTS["cos(k z)"].note


@pytest.mark.parametrize("name", list(COSTS))
def test_the_optimal_baseline_never_hurts(name):
    for mu, sigma, k in SETTINGS[name]:
        optimal = exact_variance(name, "score_function", mu, sigma, k, "optimal")
        for other in ("none", "moving_average"):
            worse = exact_variance(name, "score_function", mu, sigma, k, other)
            assert optimal["loc"] <= worse["loc"] + 1e-12 and optimal["scale"] <= worse["scale"] + 1e-12


def test_exp_kz_variance_explodes_with_sigma_and_k():
    for estimator in ESTIMATORS:
        by_sigma = [exact_variance("exp(k z)", estimator, 0.0, s, 1.0)["loc"] for s in (0.75, 1.0, 1.25, 1.5)]
        by_k = [exact_variance("exp(k z)", estimator, 0.0, 1.0, k)["scale"] for k in (0.5, 0.75, 1.0, 1.25)]
        assert np.all(np.diff(np.log(by_sigma)) > 0.5) and np.all(np.diff(np.log(by_k)) > 0.5)


# ---------------------------------------------------------------------------------------------------------------
# the shared contract
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("estimator", "baseline"), COMBOS)
def test_shapes_and_dtype(estimator, baseline):
    scalar = ESTIMATORS[estimator](cost_function("cos(k z)", 1.0), params(0.0, 1.0, torch.float32), 3, 5,
                                   generator=torch.Generator().manual_seed(0), baseline=baseline)
    assert {p: (g.shape, g.dtype) for p, g in scalar.items()} == {p: ((5,), torch.float32) for p in ("loc", "scale")}
    loc, scale = torch.zeros(4, 2), torch.ones(4, 2)
    batched = ESTIMATORS[estimator](cost_function("cos(k z)", 1.0), {"loc": loc, "scale": scale}, 3, 5,
                                    generator=torch.Generator().manual_seed(0), baseline=baseline)
    assert {p: tuple(g.shape) for p, g in batched.items()} == {"loc": (5, 4, 2), "scale": (5, 4, 2)}


@pytest.mark.parametrize("estimator", list(ESTIMATORS))
def test_batched_params_give_each_element_its_own_gradient(estimator):
    """(B, D) params with a cost summed over elements: element (b, d)'s estimate is unbiased for its own gradient."""
    loc = torch.tensor([[0.0, 1.0, -1.0], [0.5, 2.0, 0.2]], dtype=torch.float64)
    scale = torch.tensor([[1.0, 0.5, 2.0], [0.3, 1.0, 1.5]], dtype=torch.float64)
    grads = ESTIMATORS[estimator](cost_function("(z-k)^2", 1.0), {"loc": loc, "scale": scale}, 1, 20_000,
                                  generator=torch.Generator().manual_seed(1), baseline="optimal")
    for p, exact in (("loc", 2 * (loc - 1.0)), ("scale", 2 * scale)):
        stderr = grads[p].std(0) / math.sqrt(20_000)
        assert torch.all((grads[p].mean(0) - exact).abs() <= 5 * stderr + 1e-12), p


@pytest.mark.parametrize(("estimator", "baseline"), COMBOS)
def test_the_generator_makes_it_repeatable_and_the_global_rng_is_untouched(estimator, baseline):
    state = torch.get_rng_state()
    run = lambda seed: estimates("exp(-k z^2)", (0.5, 1.0, 1.0), estimator, baseline, 50, 4, seed)  # noqa: E731
    first, again, other = run(3), run(3), run(4)
    assert torch.equal(torch.get_rng_state(), state)
    for p in ("loc", "scale"):
        np.testing.assert_array_equal(first[p], again[p])
        assert not np.array_equal(first[p], other[p])


def test_both_estimators_and_every_baseline_see_the_same_draws():
    seen: dict[str, torch.Tensor] = {}

    def recording(name):
        def cost(z):
            seen.setdefault(name, z.detach().clone())  # the first call holds the main draws
            return z.sum((2, 3))
        return cost

    for estimator, baseline in COMBOS:
        batch = {"loc": torch.zeros(2, 3), "scale": torch.ones(2, 3)}
        ESTIMATORS[estimator](recording(f"{estimator} {baseline}"), batch, 4, 5,
                              generator=torch.Generator().manual_seed(7), baseline=baseline)
    draws = list(seen.values())
    assert len(draws) == 4 and all(torch.equal(draws[0], d) for d in draws[1:])


@pytest.mark.parametrize(("estimator", "baseline"), COMBOS)
def test_the_callers_tensors_are_untouched(estimator, baseline):
    loc = torch.tensor([0.3, -0.2], requires_grad=True)
    scale = torch.tensor([1.0, 0.5], requires_grad=True)
    scale.grad = torch.full((2,), 9.0)
    ESTIMATORS[estimator](cost_function("(z-k)^2", 1.0), {"loc": loc, "scale": scale}, 2, 3,
                          generator=torch.Generator().manual_seed(0), baseline=baseline)
    assert loc.grad is None and torch.equal(scale.grad, torch.full((2,), 9.0))
    assert torch.equal(loc.detach(), torch.tensor([0.3, -0.2]))
    assert torch.equal(scale.detach(), torch.tensor([1.0, 0.5]))
    assert loc.requires_grad and loc.is_leaf and scale.requires_grad and scale.is_leaf


def test_a_constant_cost_is_cancelled_exactly_by_either_baseline():
    """f = c: the moving average is b_0 = 0, then exactly c (bias-corrected); the optimal b* is exactly c."""
    constant = lambda z: torch.full(z.shape[:2], 3.0, dtype=z.dtype)  # noqa: E731
    run = lambda b: score_function_gradients(constant, params(0.0, 1.0), 4, 6,  # noqa: E731
                                             generator=torch.Generator().manual_seed(0), baseline=b)
    none, moving, optimal = run("none"), run("moving_average"), run("optimal")
    for p in ("loc", "scale"):
        assert torch.equal(moving[p][0], none[p][0])
        assert torch.allclose(moving[p][1:], torch.zeros_like(moving[p][1:]), atol=1e-12)
        assert torch.allclose(optimal[p], torch.zeros_like(optimal[p]), atol=1e-12)


def test_the_pathwise_estimator_ignores_the_baseline():
    runs = [estimates("|z-k|", (0.5, 1.0, 1.0), "pathwise", b, 10, 3) for b in BASELINES]
    for run in runs[1:]:
        np.testing.assert_array_equal(run["loc"], runs[0]["loc"])
    assert exact_variance("|z-k|", "pathwise", 0.5, 1.0, 1.0, "optimal") == exact_variance(
        "|z-k|", "pathwise", 0.5, 1.0, 1.0)


def test_bad_inputs_are_sentences():
    cost, ok = cost_function("z", 0.0), params(0.0, 1.0)
    with pytest.raises(ValueError, match="choose one of: \\(z-k\\)\\^2, z, exp"):
        cost_function("sin(z)", 1.0)
    with pytest.raises(ValueError, match="Unknown baseline 'mean'"):
        pathwise_gradients(cost, ok, 1, 2, baseline="mean")
    with pytest.raises(ValueError, match="one shape"):
        score_function_gradients(cost, {"loc": torch.zeros(2), "scale": torch.ones(3)}, 1, 2)
    with pytest.raises(ValueError, match="positive"):
        pathwise_gradients(cost, params(0.0, -1.0), 1, 2)
    with pytest.raises(ValueError, match="one value per draw"):
        pathwise_gradients(lambda z: z.sum(), ok, 1, 2)
    with pytest.raises(ValueError, match="no closed form"):
        exact_variance("cos(k z)", "pathwise", 0.0, 1.0, 1.0, method="closed_form")
    with pytest.raises(ValueError, match="Unknown estimator"):
        exact_variance("z", "reinforce", 0.0, 1.0, 1.0)


def test_cost_function_sums_over_the_parameter_dimensions():
    z = torch.randn(3, 2, 4, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    torch.testing.assert_close(cost_function("cos(k z)", 2.0)(z), torch.cos(2.0 * z).sum((2, 3)))
    torch.testing.assert_close(cost_function("cos(k z)", 2.0)(z[..., 0, 0]), torch.cos(2.0 * z[..., 0, 0]))


@pytest.mark.parametrize("family", POSTERIOR_FAMILIES)
@pytest.mark.parametrize("estimator", list(ESTIMATORS))
def test_every_posterior_family_is_estimated_without_bias(family, estimator):
    """d/d(loc, scale) E[cos z] for z = loc + scale * eps, eps from the family's standard member: against
    scipy's expectation of -sin(z) and -sin(z) eps (cos is bounded, so even Student-t(3) has finite variance)."""
    loc, scale = 0.5, 0.8
    standard = FAMILIES[family].scipy_dist(posterior_params(family, 0.0, 1.0))
    bounds = {"lb": -200.0, "ub": 200.0, "limit": 1000}  # Student-t(3) tails beyond 200 change nothing visible here
    exact = {"loc": standard.expect(lambda e: -np.sin(loc + scale * e), **bounds),
             "scale": standard.expect(lambda e: -np.sin(loc + scale * e) * e, **bounds)}
    grads = ESTIMATORS[estimator](cost_function("cos(k z)", 1.0), params(loc, scale), 1, 100_000,
                                  generator=torch.Generator().manual_seed(0), family=family)
    for name, values in grads.items():
        stderr = float(values.std()) / math.sqrt(len(values))
        assert abs(float(values.mean()) - exact[name]) < 5 * stderr, (name, float(values.mean()), exact[name])


def test_an_unknown_family_is_a_sentence():
    with pytest.raises(ValueError, match="not a posterior family"):
        pathwise_gradients(cost_function("z", 0.0), params(0.0, 1.0), 1, 2, family="cauchy")
