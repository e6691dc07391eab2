"""Exact single-sample variances on the toy costs of `vae.toy_costs` (z ~ N(loc, scale²)) for every estimator of
`vae.estimators` and every variance reduction: `vae.toy_costs` gives the pathwise and score-function ones with a
constant baseline; this module the measure-valued estimator and the delta-method control variates, as integrals
over one variable computed by `vae.quadrature` (breakpoints at the costs' kinks and at z = 0, where exp(-k z²)
peaks). nan means "cannot be computed reliably" (the quadrature did not converge, or f overflows).

With φ the standard normal density and x the standard variable of each law:

* measure-valued, loc: g = c (f(loc + scale W) - f(loc - scale W)), c = 1/(scale √(2π)), W Rayleigh (density
  w e^(-w²/2) on w > 0): Var g = ∫ w e^(-w²/2) (g(w) - E g)² dw, one integral.
* measure-valued, scale: g = (f(loc + scale M) - f(loc + scale ε)) / scale with the coupled (M, ε), whose joint
  density is |m| φ(m) for ε between 0 and m. With f̃ = f - f(loc) (so that nothing cancels as scale -> 0) and
  G(m) = ∫_0^m f̃(loc + scale e) de,  E[(scale g)²] = ∫ φ(m) ((m² + 1) f̃(m)² - 2 m f̃(m) G(m)) dm: the Maxwell
  side, the Gaussian side, and their coupling through G.
* score function with a control variate: g = (f(z) - β h(z)) s(x) + β ∇E[h], s the score; Var g = ∫ φ (g - E g)².
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import numpy as np
import torch

from vae.control_variates import CONTROL_VARIATES, DeltaMethod, check_variance_reduction
from vae.estimators import ESTIMATORS
from vae.quadrature import antiderivative, integrate
from vae.toy_costs import exact_variance as constant_baseline_variance
from vae.toy_costs import toy_cost

Line = Callable[[np.ndarray], np.ndarray]  # vectorised function of the standard variable x
NOISE = 1e-14  # relative rounding of the integrands' differences: a variance below NOISE x its scale is 0


def exact_variance(name: str, estimator: str, loc: float, scale: float, k: float, baseline: str = "none"
                   ) -> dict[str, float]:
    """Var[g] of the single-sample estimator g of `estimator` ({"loc", "scale"}), the score function using
    `baseline` (a constant baseline or a control variate); the other estimators ignore `baseline`."""
    if estimator not in ESTIMATORS:
        raise ValueError(f"Unknown estimator {estimator!r}; choose one of {', '.join(ESTIMATORS)}.")
    check_variance_reduction(baseline)
    if not scale > 0:
        raise ValueError(f"scale must be positive; got {scale}.")
    if estimator == "measure_valued":
        return dict(zip(("loc", "scale"), _measure_valued(name, float(loc), float(scale), float(k)), strict=True))
    if estimator == "score_function" and baseline in CONTROL_VARIATES:
        return dict(zip(("loc", "scale"), _control_variate(name, float(loc), float(scale), float(k), baseline),
                        strict=True))
    return constant_baseline_variance(name, estimator, loc, scale, k, baseline if estimator == "score_function"
                                      else "none")


# ---------------------------------------------------------------------------------------------------------------
# the measure-valued estimator
# ---------------------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=4096)  # sliders revisit the same settings
def _measure_valued(name: str, loc: float, scale: float, k: float) -> tuple[float, float]:
    f, points = _cost_on_line(name, loc, scale, k)
    return _measure_valued_loc(f, scale, points), _measure_valued_scale(f, scale, points)


def _measure_valued_loc(f: Line, scale: float, points: tuple[float, ...]) -> float:
    """∫_0^∞ w e^(-w²/2) (c (f(w) - f(-w)) - mean)² dw: W's two sides meet f's breakpoints at ±x."""
    c = 1.0 / (scale * math.sqrt(2.0 * math.pi))
    at_w = tuple(sorted({0.0, *points, *(-p for p in points)}))

    def rayleigh(w: np.ndarray) -> np.ndarray:
        return np.where(w > 0, w * np.exp(-(w**2) / 2.0), 0.0)

    def g(w: np.ndarray) -> np.ndarray:
        return c * (f(w) - f(-w))

    size = integrate(lambda w: rayleigh(w) * c * (np.abs(f(w)) + np.abs(f(-w))), at_w)  # before the difference
    mean = integrate(lambda w: rayleigh(w) * g(w), at_w, atol=NOISE * size)
    size_squared = integrate(lambda w: rayleigh(w) * (c * (np.abs(f(w)) + np.abs(f(-w))) + abs(mean)) ** 2, at_w)
    variance = integrate(lambda w: rayleigh(w) * (g(w) - mean) ** 2, at_w, atol=NOISE * size_squared)
    return _or_zero(variance, NOISE * size_squared)


def _measure_valued_scale(f: Line, scale: float, points: tuple[float, ...]) -> float:
    """(E[(f(M) - f(ε))²] - (E f(M) - E f(ε))²) / scale², the first through the antiderivative of f."""
    at_x = tuple(sorted({0.0, *points}))
    centre = float(f(np.zeros(1))[0])

    def shifted(x: np.ndarray) -> np.ndarray:  # f̃ = f - f(loc)
        return f(x) - centre

    raw_antiderivative = antiderivative(f, points=at_x)  # of f itself, which has no rounding to chase

    def coupled(m: np.ndarray) -> np.ndarray:
        g = raw_antiderivative(m) - centre * m  # G(m) = ∫_0^m f̃
        return _phi(m) * ((m**2 + 1.0) * shifted(m) ** 2 - 2.0 * m * shifted(m) * g)

    size = integrate(lambda x: _phi(x) * (x**2 + 1.0) * (np.abs(f(x)) + abs(centre)) ** 2, at_x)
    # E f(M) - E f(ε) = scale ∂E[f]/∂scale
    difference = integrate(lambda x: _phi(x) * (x**2 - 1.0) * f(x), at_x, atol=NOISE * math.sqrt(size))
    second = integrate(coupled, at_x, atol=NOISE * size)
    return _or_zero((second - difference**2) / scale**2, NOISE * size / scale**2)


# ---------------------------------------------------------------------------------------------------------------
# the score function with a delta-method control variate
# ---------------------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=4096)
def _control_variate(name: str, loc: float, scale: float, k: float, control: str) -> tuple[float, float]:
    method = CONTROL_VARIATES[control]
    f, points = _cost_on_line(name, loc, scale, k)
    value, slope, curvature = _taylor(name, loc, k, method)
    at_x = tuple(sorted({0.0, *points}))

    def h(x: np.ndarray) -> np.ndarray:
        return value + slope * scale * x + 0.5 * curvature * (scale * x) ** 2

    scores = {"loc": lambda x: x / scale, "scale": lambda x: (x**2 - 1.0) / scale}
    known = {"loc": slope, "scale": curvature * scale}  # ∇E[h], Var ε = 1
    return tuple(_score_variance(f, h, scores[p], known[p], method.optimal_coefficient, at_x)
                 for p in ("loc", "scale"))


def _score_variance(f: Line, h: Line, s: Line, known: float, optimal: bool, points: tuple[float, ...]) -> float:
    """Var[(f - β h) s + β known] under φ, with β = 1 or β* = Cov(f s, h s) / Var(h s)."""
    mean = integrate(lambda x: _phi(x) * f(x) * s(x), points)
    beta = 1.0
    if optimal:
        h_size = integrate(lambda x: _phi(x) * (np.abs(h(x) * s(x)) + abs(known)) ** 2, points)
        spread = integrate(lambda x: _phi(x) * (h(x) * s(x) - known) ** 2, points, atol=NOISE * h_size)
        together = integrate(lambda x: _phi(x) * (f(x) * s(x) - mean) * (h(x) * s(x) - known), points)
        beta = together / spread if spread > NOISE * h_size else 0.0
    size = integrate(lambda x: _phi(x) * (np.abs(s(x)) * (np.abs(f(x)) + abs(beta) * np.abs(h(x)))
                                          + abs(beta * known) + abs(mean)) ** 2, points)
    variance = integrate(lambda x: _phi(x) * ((f(x) - beta * h(x)) * s(x) + beta * known - mean) ** 2, points,
                         atol=NOISE * size)
    return _or_zero(variance, NOISE * size)


def _taylor(name: str, loc: float, k: float, method: DeltaMethod) -> tuple[float, float, float]:
    """f(loc), f'(loc) and (order 2) f''(loc) from the toy cost's own f and f' (autograd through f' for f'')."""
    toy = toy_cost(name)
    z = torch.tensor(loc, dtype=torch.float64, requires_grad=True)
    slope = toy.df(z, k)
    curvature = 0.0
    if method.order > 1 and slope.requires_grad:
        curvature = float(torch.autograd.grad(slope, z)[0])
    return float(toy.f(z.detach(), k)), float(slope.detach()), curvature


# ---------------------------------------------------------------------------------------------------------------


def _cost_on_line(name: str, loc: float, scale: float, k: float) -> tuple[Line, tuple[float, ...]]:
    """f(loc + scale x) as a vectorised function of x, and its breakpoints in x (kinks and z = 0)."""
    toy = toy_cost(name)

    def f(x: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore", invalid="ignore"):
            return toy.f(torch.from_numpy(np.asarray(loc + scale * x, dtype=np.float64)), k).numpy()

    return f, tuple((z - loc) / scale for z in (*toy.kinks(k), 0.0))


def _phi(x: np.ndarray) -> np.ndarray:
    return np.exp(-(x**2) / 2.0) / math.sqrt(2.0 * math.pi)


def _or_zero(variance: float, noise: float) -> float:
    """0 for a variance within rounding of 0 (h = f exactly, say), the variance otherwise (nan stays nan)."""
    return 0.0 if abs(variance) <= noise else variance
