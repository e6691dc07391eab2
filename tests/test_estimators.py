"""vae.estimators: the pathwise and score-function estimators unbiased with the exact variances of vae.toy_costs
(the measure-valued one and the control variates have their own test files), the shared contract kept by every
estimator and variance reduction, and the score function's surrogate the same as the one score-function training
differentiates."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats

from tests.toy_settings import SETTINGS
from vae.baselines import BASELINES, MOVING_AVERAGE_DECAY
from vae.config import POSTERIOR_FAMILIES, ModelConfig
from vae.control_variates import VARIANCE_REDUCTIONS
from vae.elbo import elbo_terms, training_loss
from vae.estimators import (
    ESTIMATORS,
    measure_valued_gradients,
    pathwise_gradients,
    score_function_gradients,
    score_function_surrogate,
)
from vae.families import FAMILIES, posterior_params
from vae.model import build_model
from vae.toy_costs import COSTS, cost_function, exact_gradient, exact_variance

LOCATION_SCALE_POSTERIORS = [family for family in POSTERIOR_FAMILIES if FAMILIES.get(family, None) is not None]

COMBOS = [("pathwise", "none")] + [("score_function", b) for b in BASELINES]
CASES = [(name, setting, est, b) for name, settings_ in SETTINGS.items() for setting in settings_
         for est, b in COMBOS if COSTS[name].pathwise_unbiased or est != "pathwise"]
# Every estimator and every choice of the score function's baseline argument, for the shared contract.
CONTRACT = [("pathwise", "none"), ("measure_valued", "none")] + [("score_function", b) for b in VARIANCE_REDUCTIONS]
SAMPLES = 200_000


def params(loc: float, scale: float, dtype=torch.float64) -> dict[str, torch.Tensor]:
    return {"loc": torch.tensor(loc, dtype=dtype), "scale": torch.tensor(scale, dtype=dtype)}


def estimates(name, setting, estimator, baseline, repetitions=SAMPLES, num_samples=1, seed=0) -> dict[str, np.ndarray]:
    loc, scale, k = setting
    generator = torch.Generator().manual_seed(seed)
    grads = ESTIMATORS[estimator](cost_function(name, k), params(loc, scale), num_samples, repetitions,
                                  generator=generator, baseline=baseline)
    return {p: g.numpy() for p, g in grads.items()}


def cost_variance(name: str, loc: float, scale: float, k: float) -> float:
    """Var f(z) by scipy quadrature, independent of the module's own integrator."""
    f = lambda e: float(COSTS[name].f(torch.tensor(loc + scale * e, dtype=torch.float64), k))  # noqa: E731
    phi = lambda e: math.exp(-e * e / 2) / math.sqrt(2 * math.pi)  # noqa: E731
    points = [(k - loc) / scale] if name in ("|z-k|", "1[z>k]") else None
    m1 = integrate.quad(lambda e: f(e) * phi(e), -12, 12, points=points, limit=200)[0]
    return integrate.quad(lambda e: (f(e) - m1) ** 2 * phi(e), -12, 12, points=points, limit=200)[0]


# ---------------------------------------------------------------------------------------------------------------
# unbiased, and the exact variance is the empirical one
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "setting", "estimator", "baseline"), CASES)
def test_unbiased_with_the_exact_variance(name, setting, estimator, baseline):
    loc, scale, k = setting
    samples = estimates(name, setting, estimator, baseline, seed=CASES.index((name, setting, estimator, baseline)))
    gradient = exact_gradient(name, loc, scale, k)
    variance = exact_variance(name, estimator, loc, scale, k, baseline)
    for p in ("loc", "scale"):
        x = samples[p]
        assert abs(x.mean() - gradient[p]) <= 5 * x.std() / math.sqrt(len(x)) + 1e-12, p
        expected = variance[p]
        if baseline == "moving_average":  # the moving average's own noise: Var[f] E[s²] (1 - beta) / (1 + beta)
            beta, score_square = MOVING_AVERAGE_DECAY, (1.0 if p == "loc" else 2.0) / scale**2
            expected += cost_variance(name, loc, scale, k) * score_square * (1 - beta) / (1 + beta)
        # standard error of the empirical variance: sqrt((m4 - var²) / n); 2% slack for a pilot-estimated b*
        stderr = math.sqrt(max(np.mean((x - x.mean()) ** 4) - x.var() ** 2, 0.0) / len(x))
        slack = 0.02 * expected if baseline == "optimal" else 0.0
        assert abs(x.var() - expected) <= 5 * stderr + slack + 1e-12, (p, x.var(), expected)


def test_pathwise_is_biased_when_f_jumps():
    """1[z>k]: f' = 0 at every draw, so the pathwise estimate is exactly 0; the score function gets it right."""
    loc, scale, k = SETTINGS["1[z>k]"][0]
    gradient = exact_gradient("1[z>k]", loc, scale, k)
    pathwise = estimates("1[z>k]", (loc, scale, k), "pathwise", "none", repetitions=1000)
    assert not COSTS["1[z>k]"].pathwise_unbiased
    assert np.all(pathwise["loc"] == 0) and np.all(pathwise["scale"] == 0) and gradient["loc"] > 0.3
    assert exact_variance("1[z>k]", "pathwise", loc, scale, k) == {"loc": 0.0, "scale": 0.0}


def test_k_draw_estimates_have_the_single_sample_variance_over_k():
    x = estimates("cos(k z)", (0.5, 1.0, 1.0), "pathwise", "none", repetitions=20_000, num_samples=8)
    exact = exact_variance("cos(k z)", "pathwise", 0.5, 1.0, 1.0)
    for p in ("loc", "scale"):
        assert x[p].var() == pytest.approx(exact[p] / 8, rel=0.05)


# ---------------------------------------------------------------------------------------------------------------
# the shared contract
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("estimator", "baseline"), CONTRACT)
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


@pytest.mark.parametrize(("estimator", "baseline"), CONTRACT)
def test_the_generator_makes_it_repeatable_and_the_global_rng_is_untouched(estimator, baseline):
    state = torch.get_rng_state()
    run = lambda seed: estimates("exp(-k z^2)", (0.5, 1.0, 1.0), estimator, baseline, 50, 4, seed)  # noqa: E731
    first, again, other = run(3), run(3), run(4)
    assert torch.equal(torch.get_rng_state(), state)
    for p in ("loc", "scale"):
        np.testing.assert_array_equal(first[p], again[p])
        assert not np.array_equal(first[p], other[p])


def test_every_estimator_and_baseline_sees_the_same_draws():
    seen: dict[str, torch.Tensor] = {}

    def recording(name):
        def cost(z):
            seen.setdefault(name, z.detach().clone())  # the first call holds the main draws
            return z.sum((2, 3))
        return cost

    for estimator, baseline in CONTRACT:
        batch = {"loc": torch.zeros(2, 3), "scale": torch.ones(2, 3)}
        ESTIMATORS[estimator](recording(f"{estimator} {baseline}"), batch, 4, 5,
                              generator=torch.Generator().manual_seed(7), baseline=baseline)
    draws = list(seen.values())
    assert len(draws) == len(CONTRACT) and all(torch.equal(draws[0], d) for d in draws[1:])


@pytest.mark.parametrize(("estimator", "baseline"), CONTRACT)
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


def test_bad_inputs_are_sentences():
    cost, ok = cost_function("z", 0.0), params(0.0, 1.0)
    with pytest.raises(ValueError, match="Unknown baseline 'mean'"):
        pathwise_gradients(cost, ok, 1, 2, baseline="mean")
    with pytest.raises(ValueError, match="one shape"):
        score_function_gradients(cost, {"loc": torch.zeros(2), "scale": torch.ones(3)}, 1, 2)
    with pytest.raises(ValueError, match="positive"):
        pathwise_gradients(cost, params(0.0, -1.0), 1, 2)
    with pytest.raises(ValueError, match="one value per draw"):
        pathwise_gradients(lambda z: z.sum(), ok, 1, 2)


@pytest.mark.parametrize("family", LOCATION_SCALE_POSTERIORS)
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


@pytest.mark.parametrize("estimator", ["pathwise", "score_function"])
@pytest.mark.parametrize(("loc", "scale"), [(0.5, 0.8), (-1.5, 0.3), (1.5, 2.0)])
def test_a_gamma_posterior_is_estimated_without_bias(estimator, loc, scale):
    """d/d(loc, scale) E[cos z], z ~ Gamma(alpha = e^loc, beta = 1/scale), against central differences of
    scipy's expectation (quadrature): the pathwise estimate goes through the implicit gradient of the quantile."""
    def expectation(loc: float, scale: float) -> float:
        law = stats.gamma(math.exp(loc), scale=scale)
        return law.expect(np.cos, lb=0.0, ub=law.ppf(1 - 1e-13), limit=500, epsabs=1e-13, epsrel=1e-12)

    h = 1e-4
    exact = {"loc": (expectation(loc + h, scale) - expectation(loc - h, scale)) / (2 * h),
             "scale": (expectation(loc, scale + h) - expectation(loc, scale - h)) / (2 * h)}
    grads = ESTIMATORS[estimator](cost_function("cos(k z)", 1.0), params(loc, scale), 1, 100_000,
                                  generator=torch.Generator().manual_seed(0), family="gamma")
    for name, values in grads.items():
        stderr = float(values.std()) / math.sqrt(len(values))
        assert abs(float(values.mean()) - exact[name]) < 5 * stderr + 1e-6, (name, float(values.mean()), exact[name])


def test_the_measure_valued_estimator_refuses_a_gamma_posterior_with_a_sentence():
    with pytest.raises(ValueError, match="symmetric location-scale families"):
        measure_valued_gradients(cost_function("z", 0.0), params(0.0, 1.0), 1, 2, family="gamma")


def test_an_unknown_family_is_a_sentence():
    with pytest.raises(ValueError, match="not a posterior family"):
        pathwise_gradients(cost_function("z", 0.0), params(0.0, 1.0), 1, 2, family="cauchy")


# ---------------------------------------------------------------------------------------------------------------
# one surrogate for the score function, in the estimator and in training
# ---------------------------------------------------------------------------------------------------------------


def test_the_surrogates_gradient_is_the_cost_times_the_score():
    """d/d(loc, scale) of (f - b) log N(z; loc, scale) at fixed z: (f - b)(z - loc)/scale² and
    (f - b)((z - loc)² - scale²)/scale³, the Gaussian's score worked by hand."""
    loc = torch.tensor([0.3, -1.0], dtype=torch.float64, requires_grad=True)
    scale = torch.tensor([0.5, 2.0], dtype=torch.float64, requires_grad=True)
    z, f, b = torch.tensor([1.1, 0.4], dtype=torch.float64), torch.tensor([2.0, -3.0], dtype=torch.float64), 0.5
    log_q = torch.distributions.Normal(loc, scale).log_prob(z)
    surrogate = score_function_surrogate(log_q, f.requires_grad_(), b)
    d_loc, d_scale, d_f = torch.autograd.grad(surrogate.sum(), (loc, scale, f), allow_unused=True)
    a = (z - loc).detach()
    torch.testing.assert_close(d_loc, (f.detach() - b) * a / scale.detach() ** 2)
    torch.testing.assert_close(d_scale, (f.detach() - b) * (a**2 - scale.detach() ** 2) / scale.detach() ** 3)
    assert d_f is None  # f is held constant: no gradient reaches it


@pytest.mark.parametrize("family", POSTERIOR_FAMILIES)
def test_the_training_surrogate_and_score_function_gradients_agree(digits, family):
    """The encoder gradient that score-function training follows (elbo_terms' surrogate through training_loss,
    beta = 0 so the KL's own gradient stays out) equals `score_function_gradients` of the reconstruction pulled
    back through the encoder, draw for draw: with equally seeded generators both see the same z."""
    model = build_model(ModelConfig(hidden_sizes=(16,), latent_dim=2, posterior=family), seed=0)
    x = torch.as_tensor(digits.x_test[:8])
    weights = [p for name, p in model.named_parameters() if not name.startswith("decoder")]

    def reconstruction(z: torch.Tensor) -> torch.Tensor:  # (R, K, B, latent) -> (R, K, B): per example
        return model.likelihood(model.decode(z)).log_prob(x) / len(x)

    for seed in range(3):
        terms = elbo_terms(model, x, torch.Generator().manual_seed(seed), "score_function")
        training = torch.autograd.grad(-training_loss(terms, beta=0.0), weights)
        loc, scale = model.encode(x)  # (B, latent) each
        estimate = score_function_gradients(reconstruction, {"loc": loc, "scale": scale}, 1, 1, family=family,
                                            generator=torch.Generator().manual_seed(seed))  # (1, B, latent) each
        pulled_back = torch.autograd.grad((loc * estimate["loc"][0]).sum() + (scale * estimate["scale"][0]).sum(),
                                          weights)
        for ours, theirs in zip(training, pulled_back, strict=True):
            torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-6)
