"""vae.quadrature: the integrals the exact variances are made of, against closed forms, where they are hard
(a narrow peak, fast oscillation, a growing exponential, a kink), and nan rather than a wrong number."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import special

from vae.quadrature import antiderivative, integrate


def phi(x: np.ndarray) -> np.ndarray:
    return np.exp(-(x**2) / 2) / math.sqrt(2 * math.pi)


@pytest.mark.parametrize(("integrand", "points", "exact"), [
    (lambda x: phi(x) * x**6, (), 15.0),  # E[eps^6]
    (lambda x: phi(x) * np.exp(12 * x), (), math.exp(72)),  # mass centred at x = 12, beyond the first range
    (lambda x: phi(x) * np.exp(-180 * x**2), (0.0,), 1 / math.sqrt(361)),  # a peak of width 0.05
    (lambda x: phi(x) * np.cos(30 * x) ** 2, (), (1 + math.exp(-1800)) / 2),  # 115 periods
    (lambda x: phi(x) * np.abs(x - 0.7), (0.7,), 2 * math.exp(-0.245) / math.sqrt(2 * math.pi)
     + 0.7 * (2 * special.ndtr(0.7) - 1)),
    (lambda x: phi(x) * (x > 0.3), (0.3,), special.ndtr(-0.3)),  # a jump at a breakpoint
])
def test_integrals_over_the_line_match_closed_forms(integrand, points, exact):
    assert integrate(integrand, points) == pytest.approx(exact, rel=1e-11)


def test_antiderivatives_are_exact_far_out_and_beside_a_steep_exponential():
    x = np.linspace(-48, 48, 2001)
    np.testing.assert_allclose(antiderivative(lambda e: np.cos(30 * e))(x), np.sin(30 * x) / 30, rtol=0, atol=1e-13)
    steep = np.array([-40.0, -3.0, -0.1, 0.5, 3.0, 12.0, 40.0])
    np.testing.assert_allclose(antiderivative(lambda e: np.exp(6 * e))(steep), np.expm1(6 * steep) / 6, rtol=1e-12)
    kinked = antiderivative(lambda e: np.abs(e - 0.3), points=(0.3,))(x[::100])
    expected = np.where(x[::100] > 0.3, (x[::100] - 0.3) ** 2 / 2 + 0.045, 0.045 - (0.3 - x[::100]) ** 2 / 2)
    np.testing.assert_allclose(kinked, expected, rtol=1e-12, atol=1e-12)
    assert antiderivative(lambda e: np.cos(e))(np.zeros(1))[0] == pytest.approx(0.0, abs=1e-15)


def test_what_cannot_be_computed_reliably_is_nan():
    with np.errstate(over="ignore"):
        assert math.isnan(integrate(lambda x: np.exp(x**2)))  # overflows
    noise = np.random.default_rng(0)
    assert math.isnan(integrate(lambda x: phi(x) * noise.normal(size=np.shape(x))))  # rounding noise, chased
    assert integrate(lambda x: phi(x) * noise.normal(size=np.shape(x)) * 1e-20, atol=1e-18) == pytest.approx(
        0.0, abs=1e-18)  # ... unless atol says how much of it there is
