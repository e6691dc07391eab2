"""Implicit reparameterization: torch's Gamma and Beta rsample gradients against finite differences of the CDF,
over the whole slider box, corners included."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import integrate

from vae.implicit import IMPLICIT_FAMILIES, agreement, cdf_gradients, implicit_draws, implicit_view


def corners_and_middle(family) -> list[dict[str, float]]:
    values = [(p.low, p.default, p.high) for p in family.params]
    return [dict(zip([p.name for p in family.params], chosen, strict=True)) for chosen in itertools.product(*values)]


BOX = [(name, params) for name, family in IMPLICIT_FAMILIES.items() for params in corners_and_middle(family)]


@pytest.mark.parametrize(("name", "params"), BOX, ids=[f"{n}-{'-'.join(map(str, p.values()))}" for n, p in BOX])
def test_torch_implicit_gradients_match_finite_differences_of_the_cdf(name, params):
    family = IMPLICIT_FAMILIES[name]
    found = agreement(family, params, implicit_draws(family, params, count=1000))
    assert found.worst < 5e-3  # torch approximates this derivative in some regions (large concentrations, tails)


@pytest.mark.parametrize("name", IMPLICIT_FAMILIES)
def test_at_the_defaults_the_two_derivatives_agree_to_many_digits(name):
    """Not a close approximation of something else: the very derivative the CDF gives."""
    family = IMPLICIT_FAMILIES[name]
    assert agreement(family, {}, implicit_draws(family, {}, count=1000)).median < 1e-7


def test_the_gamma_rate_gradient_is_the_closed_form_minus_z_over_rate():
    """z = X / rate with X ~ Gamma(alpha, 1), so dz/drate = -z/rate exactly: checks the finite differences too."""
    family, params = IMPLICIT_FAMILIES["gamma"], {"concentration": 3.0, "rate": 2.5}
    draws = implicit_draws(family, params, count=500)
    np.testing.assert_allclose(draws.gradients["rate"], -draws.z / 2.5, rtol=1e-12)
    np.testing.assert_allclose(cdf_gradients(family, params, draws.z)["rate"], -draws.z / 2.5, rtol=1e-6)


def test_the_cdf_gradient_matches_the_derivative_of_the_incomplete_gamma_integral():
    """At alpha = 1 (the exponential), dF/dalpha = integral_0^z ln(t) e^-t dt + gamma_E (1 - e^-z), from
    differentiating P(alpha, z) = gamma(alpha, z) / Gamma(alpha) under the integral: computed here by quadrature."""
    family, params = IMPLICIT_FAMILIES["gamma"], {"concentration": 1.0, "rate": 1.0}
    z = np.array([0.1, 0.5, 1.0, 2.0, 4.0])
    dF = np.array([integrate.quad(lambda t: np.log(t) * np.exp(-t), 0, x)[0] for x in z]) + np.euler_gamma * (
        1 - np.exp(-z))
    np.testing.assert_allclose(cdf_gradients(family, params, z)["concentration"], -dF / np.exp(-z), rtol=1e-6)


def test_draws_repeat_for_a_seed_and_leave_the_global_generator_alone():
    import torch

    family = IMPLICIT_FAMILIES["beta"]
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    first = implicit_draws(family, {}, count=50, seed=7)
    after = torch.rand(3)
    second = implicit_draws(family, {}, count=50, seed=7)
    np.testing.assert_array_equal(first.z, second.z)
    assert torch.equal(after, expected)


def test_the_view_covers_the_draws_and_keeps_a_u_shaped_density_readable():
    family = IMPLICIT_FAMILIES["beta"]
    view = implicit_view(family, {"concentration1": 0.2, "concentration0": 0.2})
    assert np.all((view.draws.z > 0) & (view.draws.z < 1))
    assert np.all(np.diff(view.grid) > 0)
    assert view.density_ceiling < view.density.max()  # the infinite spikes at 0 and 1 are cut
    bell = implicit_view(family, {"concentration1": 5.0, "concentration0": 5.0})
    assert bell.density_ceiling >= bell.density.max()  # an ordinary density is shown whole
