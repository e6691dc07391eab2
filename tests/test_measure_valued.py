"""The measure-valued gradient: the paper's constants (finite differences of the Gaussian density), each family's
two laws and their coupling (KS against scipy), the estimator unbiased with the exact variances of
vae.toy_variances at the slider box's corners and inside it, those variances against mpmath, and its cost."""

from __future__ import annotations

import json
import math

import mpmath as mp
import numpy as np
import pytest
import torch
from scipy import stats

from tests.toy_oracles import BOX_CASES, MP_COSTS, breakpoints, check_against_monte_carlo, phi
from vae.cli import main
from vae.estimators import ESTIMATORS, EVALUATIONS_PER_SAMPLE, measure_valued_gradients
from vae.families import FAMILIES, posterior_params
from vae.measure_valued import WEAK_DERIVATIVES
from vae.toy_costs import cost_function
from vae.toy_variances import exact_variance


def test_the_gaussian_density_derivatives_are_the_papers_weibull_and_maxwell_differences():
    """d/dmu N(z; mu, sigma²) = (W(z - mu) - W(mu - z)) / (sigma √(2π)) with W the Weibull of scale √2 sigma and
    shape 2; d/dsigma N = (double-sided Maxwell - N) / sigma: central differences of scipy's density."""
    mu, sigma, h = 0.3, 1.7, 1e-5
    z = mu + np.linspace(-6.0, 6.0, 241) * sigma
    weibull = stats.weibull_min(2, scale=math.sqrt(2) * sigma)
    d_loc = (stats.norm.pdf(z, mu + h, sigma) - stats.norm.pdf(z, mu - h, sigma)) / (2 * h)
    np.testing.assert_allclose(d_loc, (weibull.pdf(z - mu) - weibull.pdf(mu - z)) / (sigma * math.sqrt(2 * math.pi)),
                               atol=1e-9)
    maxwell = stats.maxwell.pdf(np.abs(z - mu) / sigma) / (2 * sigma)  # double-sided: half the mass each side
    d_scale = (stats.norm.pdf(z, mu, sigma + h) - stats.norm.pdf(z, mu, sigma - h)) / (2 * h)
    np.testing.assert_allclose(d_scale, (maxwell - stats.norm.pdf(z, mu, sigma)) / sigma, atol=1e-9)
    assert WEAK_DERIVATIVES["gaussian"].peak == pytest.approx(1 / math.sqrt(2 * math.pi))


@pytest.mark.parametrize("family", list(WEAK_DERIVATIVES))
def test_each_familys_two_laws_and_their_coupling(family):
    """With p the standard density: P(W > w) = p(w)/p(0) (so W's density is -p'/p(0)); |M| has the CDF
    2 (F(t) - 1/2 - t p(t)) (density -2 t p'(t)); given M, the draw ε is uniform between 0 and M; and ε is a
    draw of p itself. For the Gaussian, W is scipy's Weibull(√2, 2) and |M| its Maxwell."""
    law = FAMILIES[family].scipy_dist(posterior_params(family, 0.0, 1.0))
    weak = WEAK_DERIVATIVES[family]
    generator = torch.Generator().manual_seed(0)
    noise = FAMILIES[family].sample_base(20_000, generator, {"loc": torch.zeros((), dtype=torch.float64)})
    eps = FAMILIES[family].transform(posterior_params(family, 0.0, 1.0), noise)
    log_v = torch.log(torch.rand(20_000, generator=generator, dtype=torch.float64))
    w, m = weak.location_part(log_v).numpy(), weak.scale_part(log_v, eps).numpy()
    assert weak.peak == pytest.approx(law.pdf(0.0))
    grid = torch.linspace(0.0, 6.0, 61, dtype=torch.float64)
    np.testing.assert_allclose(torch.exp(weak.log_ratio(grid)).numpy(), law.pdf(grid.numpy()) / law.pdf(0.0),
                               rtol=1e-12)
    np.testing.assert_allclose(weak.radius(weak.log_ratio(grid)).numpy(), grid.numpy(), atol=1e-7)
    assert stats.kstest(w, lambda x: 1 - law.pdf(x) / law.pdf(0.0)).pvalue > 1e-3
    assert stats.kstest(np.abs(m), lambda t: 2 * (law.cdf(t) - 0.5 - t * law.pdf(t))).pvalue > 1e-3
    assert stats.kstest(eps.numpy() / m, "uniform").pvalue > 1e-3
    assert stats.kstest(eps.numpy(), law.cdf).pvalue > 1e-3
    if family == "gaussian":
        assert stats.kstest(w, stats.weibull_min(2, scale=math.sqrt(2)).cdf).pvalue > 1e-3
        assert stats.kstest(np.abs(m), stats.maxwell.cdf).pvalue > 1e-3


@pytest.mark.parametrize(("name", "setting"), BOX_CASES)
def test_unbiased_with_the_exact_variance_at_the_corners_and_inside(name, setting):
    check_against_monte_carlo(name, setting, "measure_valued", "none", seed=BOX_CASES.index((name, setting)))


def test_coupling_lowers_the_variance():
    """The same W on both sides of the loc difference, against two independent draws (what the paper's coupling
    saves): for cos(k z) near a peak of f the coupled variance is several times smaller."""
    loc, scale, k = 0.2, 0.5, 1.0
    coupled = exact_variance("cos(k z)", "measure_valued", loc, scale, k)["loc"]
    generator = torch.Generator().manual_seed(0)
    w1, w2 = (WEAK_DERIVATIVES["gaussian"].location_part(torch.log(torch.rand(200_000, generator=generator,
                                                                              dtype=torch.float64)))
              for _ in range(2))
    independent = ((torch.cos(k * (loc + scale * w1)) - torch.cos(k * (loc - scale * w2)))
                   / (scale * math.sqrt(2 * math.pi))).var()
    assert coupled < float(independent) / 3


def mp_variances(name: str, loc: float, scale: float, k: float) -> dict[str, float]:
    """Both single-draw variances at 20 digits, by another route than the module's: the loc one over W's
    density; the scale one as E[f(M)²] - 2 E[f(M) f(ε)] + E[f(ε)²], nothing shifted, with f's own antiderivative
    in closed form for the coupled term E[f(M) f(ε)] = ∫ φ(m) m f(m) (F(m) - F(0)) / scale dm."""
    f, big_f = MP_COSTS[name]
    loc, scale, k = mp.mpf(loc), mp.mpf(scale), mp.mpf(k)
    at = lambda x: f(loc + scale * x, k)  # noqa: E731
    c = 1 / (scale * mp.sqrt(2 * mp.pi))
    cuts = [x for x in breakpoints(name, loc, scale, k, mirrored=True) if x >= 0 or x == -mp.inf][1:]
    cuts = [mp.mpf(0), *[x for x in cuts if x > 0]]
    loc_mean = mp.quad(lambda w: w * mp.exp(-(w**2) / 2) * c * (at(w) - at(-w)), cuts)
    loc_variance = mp.quad(lambda w: w * mp.exp(-(w**2) / 2) * (c * (at(w) - at(-w)) - loc_mean) ** 2, cuts)
    cuts = breakpoints(name, loc, scale, k)
    antiderivative = lambda m: (big_f(loc + scale * m, k) - big_f(loc, k)) / scale  # noqa: E731
    both = mp.quad(lambda m: phi(m) * ((m**2 + 1) * at(m) ** 2 - 2 * m * at(m) * antiderivative(m)), cuts)
    difference = mp.quad(lambda m: phi(m) * (m**2 - 1) * at(m), cuts)
    return {"loc": float(loc_variance), "scale": float((both - difference**2) / scale**2)}


@pytest.mark.parametrize(("name", "setting"), [
    ("cos(k z)", (0.3, 2.0, 3.0)), ("exp(-k z^2)", (0.0, 3.0, 20.0)), ("|z-k|", (-0.5, 0.7, 0.4)),
    ("exp(k z)", (1.0, 3.0, 2.0)), ("1[z>k]", (3.0, 0.1, 3.0)), ("(z-k)^2", (-3.0, 0.1, 3.0)),
])
@pytest.mark.slow  # mpmath at 20 digits: seconds per setting
def test_the_exact_variance_is_mpmaths(name, setting):
    exact = exact_variance(name, "measure_valued", *setting)
    assert exact == pytest.approx(mp_variances(name, *setting), rel=1e-6)


def test_four_evaluations_of_f_per_draw_and_one_more_call_per_coordinate():
    """Scalar z: f(z), f(loc ± scale W), f(loc + scale M). A minibatch (B, D) with one cost per example moves
    one coordinate of every example at once: 1 + D calls, (1 + 3 D) B evaluations per draw."""
    calls = []

    def counted(cost):
        def wrapped(z):
            calls.append(tuple(z.shape))
            return cost(z)
        return wrapped

    scalar = {"loc": torch.tensor(0.2, dtype=torch.float64), "scale": torch.tensor(1.1, dtype=torch.float64)}
    measure_valued_gradients(counted(cost_function("cos(k z)", 1.0)), scalar, 5, 7)
    assert sum(math.prod(shape) for shape in calls) == EVALUATIONS_PER_SAMPLE["measure_valued"] * 5 * 7
    calls.clear()
    batch = {"loc": torch.zeros(4, 3, dtype=torch.float64), "scale": torch.ones(4, 3, dtype=torch.float64)}
    measure_valued_gradients(counted(lambda z: torch.cos(z).sum(-1)), batch, 5, 7)  # (R, K, 4, 3) -> (R, K, 4)
    assert len(calls) == 1 + 3 and sum(math.prod(shape) // 3 for shape in calls) == (1 + 3 * 3) * 4 * 5 * 7


def test_moving_every_examples_coordinate_at_once_changes_nothing():
    """Per-example costs (one coordinate of every example moved together) give the estimates of the summed cost
    (each element moved alone), draw for draw."""
    loc = torch.tensor([[0.0, 1.0], [0.5, -1.0], [2.0, 0.3]], dtype=torch.float64)
    params = {"loc": loc, "scale": torch.full_like(loc, 0.7)}
    per_example = measure_valued_gradients(lambda z: torch.cos(z).sum(-1), params, 3, 4,
                                           generator=torch.Generator().manual_seed(2))
    summed = measure_valued_gradients(lambda z: torch.cos(z).sum((-2, -1)), params, 3, 4,
                                      generator=torch.Generator().manual_seed(2))
    for p in ("loc", "scale"):
        torch.testing.assert_close(per_example[p], summed[p], rtol=0, atol=1e-14)


def test_the_cli_lists_the_measure_valued_estimator(capsys):
    """`python -m vae variance --json`: the third estimator beside the other two, near its exact variance."""
    assert main(["variance", "--cost", "cos(k z)", "--mu", "0.5", "--samples", "20000", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)["estimators"]
    assert set(summary) == set(ESTIMATORS) == {"pathwise", "score_function", "measure_valued"}
    exact = exact_variance("cos(k z)", "measure_valued", 0.5, 1.0, 1.0)
    for symbol, p in (("mu", "loc"), ("sigma", "scale")):
        assert summary["measure_valued"][symbol]["exact_variance"] == pytest.approx(exact[p])
        assert summary["measure_valued"][symbol]["variance"] == pytest.approx(exact[p], rel=0.1)
