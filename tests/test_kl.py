"""vae.kl: the posterior's KL against the prior, analytic (torch's registry) against Monte Carlo and quadrature."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats
from torch.distributions import kl_divergence

from vae.config import POSTERIOR_FAMILIES
from vae.families import FAMILIES, POSTERIOR_DF, posterior_family, posterior_params, posterior_rsample
from vae.kl import ANALYTIC_KL_FAMILIES, monte_carlo_kl, posterior_kl

# ---------------------------------------------------------------------------------------------------------------
# posterior KL
# ---------------------------------------------------------------------------------------------------------------

LOC = torch.tensor([[0.0, 0.8, -1.5], [2.0, -0.3, 0.1]], dtype=torch.float64)  # (B=2, K=3)
SCALE = torch.tensor([[1.0, 0.5, 2.0], [0.3, 1.4, 0.9]], dtype=torch.float64)


@pytest.mark.parametrize("name", ANALYTIC_KL_FAMILIES)
def test_analytic_kl_equals_large_sample_monte_carlo(name):
    exact = posterior_kl(name, LOC, SCALE)  # (B,)
    g = torch.Generator().manual_seed(4)
    n = 40_000
    z = posterior_rsample(name, LOC.expand(n, 2, 3), SCALE.expand(n, 2, 3), g)  # (n, B, K)
    mc = monte_carlo_kl(name, LOC, SCALE, z)  # (n, B)
    assert exact.shape == (2,)
    stderr = mc.std(0) / math.sqrt(n)
    assert ((mc.mean(0) - exact).abs() < 4 * stderr + 1e-6).all(), (mc.mean(0), exact, stderr)


def _quad_kl(name: str, loc: float, scale: float) -> float:
    family = FAMILIES[name]
    df = {"df": POSTERIOR_DF} if name == "student-t" else {}
    q = family.scipy_dist({"loc": loc, "scale": scale, **df})
    p = family.scipy_dist({"loc": 0.0, "scale": 1.0, **df})
    return integrate.quad(lambda x: q.pdf(x) * (q.logpdf(x) - p.logpdf(x)), -np.inf, np.inf)[0]


@pytest.mark.parametrize("name", [n for n in POSTERIOR_FAMILIES if n not in ANALYTIC_KL_FAMILIES])
def test_monte_carlo_kl_matches_quadrature(name):
    g = torch.Generator().manual_seed(5)
    n = 40_000
    z = posterior_rsample(name, LOC.expand(n, 2, 3), SCALE.expand(n, 2, 3), g)  # (n, B, K)
    mc = posterior_kl(name, LOC, SCALE, z)  # (n, B)
    exact = torch.tensor([sum(_quad_kl(name, m, s) for m, s in zip(row_m, row_s, strict=True))
                          for row_m, row_s in zip(LOC.tolist(), SCALE.tolist(), strict=True)], dtype=torch.float64)
    stderr = mc.std(0) / math.sqrt(n)
    assert ((mc.mean(0) - exact).abs() < 4 * stderr + 1e-6).all(), (mc.mean(0), exact, stderr)


@pytest.mark.parametrize("name", POSTERIOR_FAMILIES)
def test_kl_is_zero_at_the_prior_and_differentiable(name):
    loc, scale = torch.zeros(5, 4, requires_grad=True), torch.ones(5, 4, requires_grad=True)
    z = posterior_rsample(name, loc, scale, torch.Generator().manual_seed(6))
    torch.testing.assert_close(monte_carlo_kl(name, loc, scale, z), torch.zeros(5))
    kl = posterior_kl(name, loc, scale, z)
    torch.testing.assert_close(kl, torch.zeros(5))
    kl.sum().backward()
    assert loc.grad is not None and torch.isfinite(loc.grad).all() and torch.isfinite(scale.grad).all()


def test_monte_carlo_kl_needs_a_sample_and_a_known_family():
    with pytest.raises(ValueError, match="sample"):
        posterior_kl("logistic", LOC, SCALE)
    with pytest.raises(ValueError, match="posterior family"):
        posterior_kl("cauchy", LOC, SCALE)


def test_gaussian_kl_matches_closed_form():
    loc, scale = torch.randn(7, 4), torch.rand(7, 4) + 0.1
    closed_form = 0.5 * (loc**2 + scale**2 - 1 - torch.log(scale**2)).sum(-1)
    torch.testing.assert_close(posterior_kl("gaussian", loc, scale), closed_form)
    assert posterior_kl("gaussian", torch.zeros(1, 3), torch.ones(1, 3)).item() == pytest.approx(0.0, abs=1e-7)


def test_the_analytic_families_are_those_torchs_registry_computes():
    """Gaussian, Laplace and Gamma pairs are registered; Student-t is not, and the Logistic's (a
    TransformedDistribution) entry refuses transforms that differ, as q's and p's do."""
    assert ANALYTIC_KL_FAMILIES == ("gaussian", "laplace", "gamma")
    for name in POSTERIOR_FAMILIES:
        family = posterior_family(name)
        q = family.torch_dist(posterior_params(name, torch.tensor(0.5), torch.tensor(2.0)))
        p = family.torch_dist(posterior_params(name, torch.tensor(0.0), torch.tensor(1.0)))
        if name in ANALYTIC_KL_FAMILIES:
            assert torch.isfinite(kl_divergence(q, p))
        else:
            with pytest.raises(NotImplementedError):
                kl_divergence(q, p)


@pytest.mark.parametrize("loc", [-2.0, 0.0, 2.0])
@pytest.mark.parametrize("scale", [0.1, 1.0, 3.0])
def test_the_gamma_posteriors_kl_is_exact_against_quadrature(loc, scale):
    """q = Gamma(alpha = e^loc, beta = 1/scale) against p = Gamma(1, 1), integrated by scipy over z > 0."""
    q, p = stats.gamma(math.exp(loc), scale=scale), stats.expon()
    lower, upper = q.ppf(1e-12), q.ppf(1 - 1e-12)
    exact = integrate.quad(lambda z: q.pdf(z) * (q.logpdf(z) - p.logpdf(z)), lower, upper, limit=200,
                           points=[q.median()])[0]
    kl = posterior_kl("gamma", torch.tensor([[loc]], dtype=torch.float64), torch.tensor([[scale]], dtype=torch.float64))
    assert kl.item() == pytest.approx(exact, rel=1e-6, abs=1e-9)
