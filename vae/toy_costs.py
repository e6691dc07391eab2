"""The toy of the variance lab: costs f(z; k) of one scalar z ~ N(loc, scale²), their exact gradients and the exact
variance of each single-sample estimator.

Each `ToyCost` carries f, its derivative f' and what it teaches; `cost_function` turns one into the `Cost` the
estimators of `vae.estimators` take. The exact values are expectations over ε ~ N(0, 1) with z = loc + scale ε:
closed form where f is a polynomial (moments of ε) or where E[f] has one, `scipy.integrate.quad` otherwise.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from numpy.polynomial import Polynomial
from scipy import integrate, special

from vae.baselines import check_baseline
from vae.estimators import Cost

Elementwise = Callable[[torch.Tensor, float], torch.Tensor]  # (z, k) -> f(z; k), elementwise
_SHARP = ("With large k the score function can beat the pathwise estimator: f' oscillates or is sharply peaked "
          "while f stays bounded.")


@dataclass(frozen=True)
class ToyCost:
    """A cost f(z; k) of one scalar z, with its derivative f' (for the quadrature) and what it teaches.

    `gradient(loc, scale, k)` is the closed form of (d/dloc, d/dscale) E[f] where one exists; `polynomial(k)` gives
    f's coefficients in z (lowest first) where f is a polynomial, which makes every variance closed form too;
    `kinks(k)` lists the z where f is not smooth (breakpoints for the quadrature).
    """

    name: str
    latex: str
    f: Elementwise
    df: Elementwise
    note: str
    gradient: Callable[[float, float, float], tuple[float, float]] | None = None
    polynomial: Callable[[float], Sequence[float]] | None = None
    kinks: Callable[[float], Sequence[float]] = lambda k: ()
    pathwise_unbiased: bool = True  # False where f jumps: f' misses the jump's contribution
    default_k: float = 1.0
    k_range: tuple[float, float] = (0.0, 5.0)


def _gauss_exp_gradient(loc: float, scale: float, k: float) -> tuple[float, float]:
    """E exp(-k z²) = exp(-k loc²/c) / sqrt(c), c = 1 + 2k scale², differentiated (dc/dscale = 4k scale)."""
    c = 1.0 + 2.0 * k * scale**2
    value = math.exp(-k * loc**2 / c) / math.sqrt(c)
    return value * (-2.0 * k * loc / c), value * 4.0 * k * scale * (k * loc**2 / c**2 - 0.5 / c)


def _cos_gradient(loc: float, scale: float, k: float) -> tuple[float, float]:
    """E cos(kz) = cos(k loc) exp(-k² scale²/2) (the real part of the characteristic function)."""
    damping = math.exp(-(k**2) * scale**2 / 2.0)
    return -k * math.sin(k * loc) * damping, -(k**2) * scale * math.cos(k * loc) * damping


def _exp_gradient(loc: float, scale: float, k: float) -> tuple[float, float]:
    """E exp(kz) = exp(k loc + k² scale²/2) (the moment generating function)."""
    value = math.exp(k * loc + k**2 * scale**2 / 2.0)
    return k * value, k**2 * scale * value


def _abs_gradient(loc: float, scale: float, k: float) -> tuple[float, float]:
    """E|z - k| = scale sqrt(2/pi) exp(-a²/2 scale²) + a (1 - 2 Phi(-a/scale)), a = loc - k (folded normal mean)."""
    t = (loc - k) / scale
    return 2.0 * special.ndtr(t) - 1.0, 2.0 * math.exp(-(t**2) / 2.0) / math.sqrt(2.0 * math.pi)


def _step_gradient(loc: float, scale: float, k: float) -> tuple[float, float]:
    """E 1[z > k] = Phi((loc - k)/scale)."""
    t = (loc - k) / scale
    density = math.exp(-(t**2) / 2.0) / math.sqrt(2.0 * math.pi)
    return density / scale, -t * density / scale


COSTS: dict[str, ToyCost] = {
    "(z-k)^2": ToyCost(
        "(z-k)^2", r"(z-k)^2", lambda z, k: (z - k) ** 2, lambda z, k: 2.0 * (z - k),
        "The lecture's example: f' is linear in z, so the pathwise estimator is far less noisy than the score "
        "function, which multiplies the large, noisy f by the score.",
        gradient=lambda loc, scale, k: (2.0 * (loc - k), 2.0 * scale), polynomial=lambda k: (k**2, -2.0 * k, 1.0),
        k_range=(-3.0, 3.0),
    ),
    "z": ToyCost(
        "z", r"z", lambda z, k: z.clone(), lambda z, k: torch.ones_like(z),
        "k plays no part: the pathwise estimate for mu is exactly 1 with zero variance, while the score function, "
        "blind to f being linear, has variance 2 + mu²/sigma².",
        gradient=lambda loc, scale, k: (1.0, 0.0), polynomial=lambda k: (0.0, 1.0),
    ),
    "exp(-k z^2)": ToyCost(
        "exp(-k z^2)", r"e^{-k z^2}", lambda z, k: torch.exp(-k * z**2),
        lambda z, k: -2.0 * k * z * torch.exp(-k * z**2), _SHARP, gradient=_gauss_exp_gradient, k_range=(0.0, 20.0),
    ),
    "cos(k z)": ToyCost(
        "cos(k z)", r"\cos(k z)", lambda z, k: torch.cos(k * z), lambda z, k: -k * torch.sin(k * z), _SHARP,
        gradient=_cos_gradient, k_range=(0.0, 10.0),
    ),
    "exp(k z)": ToyCost(
        "exp(k z)", r"e^{k z}", lambda z, k: torch.exp(k * z), lambda z, k: k * torch.exp(k * z),
        "Heavy tailed: once k sigma is large, both estimators' variance grows like exp(2 k² sigma²), exploding "
        "with sigma and k, and empirical variances settle slowly (keep k sigma below about 1).",
        gradient=_exp_gradient, default_k=0.5, k_range=(-2.0, 2.0),
    ),
    "|z-k|": ToyCost(
        "|z-k|", r"|z-k|", lambda z, k: (z - k).abs(), lambda z, k: torch.sign(z - k),
        "f has a kink at z = k where f' jumps from -1 to 1, yet the pathwise estimator stays unbiased because f "
        "is continuous.",
        gradient=_abs_gradient, kinks=lambda k: (k,), k_range=(-3.0, 3.0),
    ),
    "1[z>k]": ToyCost(
        "1[z>k]", r"\mathbb{1}[z>k]", lambda z, k: (z > k).to(z.dtype), lambda z, k: torch.zeros_like(z),
        "f jumps at z = k and f' = 0 everywhere else: the pathwise estimator returns 0 for every draw and is "
        "biased, while the score function, which never differentiates f, stays unbiased.",
        gradient=_step_gradient, kinks=lambda k: (k,), pathwise_unbiased=False, k_range=(-3.0, 3.0),
    ),
}


def toy_cost(name: str) -> ToyCost:
    """The registered cost, or a ValueError whose message lists the choices."""
    if name not in COSTS:
        raise ValueError(f"Unknown cost {name!r}; choose one of: {', '.join(COSTS)}.")
    return COSTS[name]


def cost_function(name: str, k: float) -> Cost:
    """The toy cost as a `Cost`: f applied elementwise, then summed over the parameter dimensions.

    For scalar params z is (R, K) and the result is f(z) itself; for params of shape S it is the sum of
    independent toy costs, one per element.
    """
    f = toy_cost(name).f

    def cost(z: torch.Tensor) -> torch.Tensor:
        return f(z, k).reshape(*z.shape[:2], -1).sum(-1)  # (R, K, *shape) -> (R, K)

    return cost


# -- exact values: expectations over eps ~ N(0, 1) of h(f(z), f'(z), eps), z = loc + scale eps --------------------

QUAD_LIMIT = 12.0  # integrate eps over [-12, 12]: the Gaussian mass outside is below 1e-32
Integrand = Callable  # h(f, df, eps) -> value; floats for the quadrature, numpy Polynomials for the closed form
Expectation = Callable[[Integrand], float]

# The score of N(loc, scale²) at z = loc + scale eps: d/dloc log q = eps/scale, d/dscale log q = (eps² - 1)/scale.
_SCORES = {"loc": lambda eps, scale: eps / scale, "scale": lambda eps, scale: (eps**2 - 1.0) / scale}


def _pathwise_single(scale: float, b: Mapping[str, float]) -> dict[str, Integrand]:
    """f'(z) dz/dtheta, with dz/dloc = 1 and dz/dscale = eps (b is ignored)."""
    return {"loc": lambda f, df, eps: df, "scale": lambda f, df, eps: df * eps}


def _score_single(scale: float, b: Mapping[str, float]) -> dict[str, Integrand]:
    """(f(z) - b) times the score."""
    return {name: (lambda f, df, eps, s=score, c=b[name]: (f - c) * s(eps, scale)) for name, score in _SCORES.items()}


# The single-sample estimator for loc and for scale as a function of (f, f', eps), per estimator.
_SINGLE_SAMPLE: dict[str, Callable[[float, Mapping[str, float]], dict[str, Integrand]]] = {
    "pathwise": _pathwise_single,
    "score_function": _score_single,
}


def _quad_expectation(toy: ToyCost, loc: float, scale: float, k: float) -> Expectation:
    """E[h] = integral of h(f, f', eps) N(eps; 0, 1) over [-12, 12], with breakpoints where f is not smooth."""
    points = sorted(e for e in ((c - loc) / scale for c in toy.kinks(k)) if abs(e) < QUAD_LIMIT) or None

    def integrand(eps: float, h: Integrand) -> float:
        z = torch.tensor(loc + scale * eps, dtype=torch.float64)
        return h(float(toy.f(z, k)), float(toy.df(z, k)), eps) * math.exp(-(eps**2) / 2.0) / math.sqrt(2 * math.pi)

    def expect(h: Integrand) -> float:
        value, _ = integrate.quad(integrand, -QUAD_LIMIT, QUAD_LIMIT, args=(h,), points=points, limit=400,
                                  epsabs=1e-13, epsrel=1e-11)
        return value

    return expect


def _polynomial_expectation(toy: ToyCost, loc: float, scale: float, k: float) -> Expectation:
    """E[h] in closed form for a polynomial f: h is a polynomial in eps, and E[eps^n] = (n-1)!! for even n, else 0."""
    f = Polynomial(toy.polynomial(k))
    z, eps = Polynomial([loc, scale]), Polynomial([0.0, 1.0])
    f_eps, df_eps = f(z), f.deriv()(z)

    def expect(h: Integrand) -> float:
        coef = np.atleast_1d(np.asarray(getattr(value := h(f_eps, df_eps, eps), "coef", value), dtype=float))
        moments = np.ones(len(coef))
        for n in range(1, len(coef)):
            moments[n] = (n - 1) * moments[n - 2] if n % 2 == 0 else 0.0
        return float(coef @ moments)

    return expect


def _check_exact(method: str, scale: float) -> None:
    if method not in ("auto", "closed_form", "quad"):
        raise ValueError(f"Unknown method {method!r}; choose auto, closed_form or quad.")
    if not scale > 0:
        raise ValueError(f"scale must be positive; got {scale}.")


def _expectation(toy: ToyCost, loc: float, scale: float, k: float, method: str) -> Expectation:
    _check_exact(method, scale)
    if method == "quad" or (method == "auto" and toy.polynomial is None):
        return _quad_expectation(toy, loc, scale, k)
    if toy.polynomial is None:
        raise ValueError(f"{toy.name} is not a polynomial: its variances have no closed form here; use quad.")
    return _polynomial_expectation(toy, loc, scale, k)


def exact_gradient(name: str, loc: float, scale: float, k: float, *, method: str = "auto") -> dict[str, float]:
    """(d/dloc, d/dscale) E_{z ~ N(loc, scale²)}[f(z; k)] as {"loc", "scale"}.

    "auto" uses the closed form where the cost has one (differentiate E[f]: e.g. E cos(kz) = cos(k loc)
    exp(-k² scale²/2)), else "quad": the score-function identity E[f(z) score] integrated over eps, which holds
    for every f here, steps included.
    """
    toy = toy_cost(name)
    _check_exact(method, scale)
    if method != "quad" and toy.gradient is not None:
        d_loc, d_scale = toy.gradient(float(loc), float(scale), float(k))
        return {"loc": float(d_loc), "scale": float(d_scale)}
    if method == "closed_form":
        raise ValueError(f"{name} has no closed-form gradient here; use quad.")
    expect = _expectation(toy, float(loc), float(scale), float(k), "quad")
    return {param: expect(lambda f, df, eps, s=score: f * s(eps, scale)) for param, score in _SCORES.items()}


def exact_variance(
    name: str, estimator: str, loc: float, scale: float, k: float, baseline: str = "none", *, method: str = "auto"
) -> dict[str, float]:
    """Var[g] = E[(g - E g)²] of the SINGLE-sample estimator g, for loc and for scale ({"loc", "scale"}).

    With z = loc + scale eps:  pathwise  g_loc = f'(z),                g_scale = f'(z) eps;
                              score     g_loc = (f(z) - b) eps/scale, g_scale = (f(z) - b)(eps² - 1)/scale.
    The average of K draws has variance Var[g]/K. Baselines: "none" b = 0; "moving_average" b = E[f], the value
    the moving average converges to (the estimator's own b is a little noisy, so its variance is a little higher:
    see `vae.baselines`); "optimal" b* = E[f s²]/E[s²] per parameter, exact (b*_loc = E[f eps²],
    b*_scale = E[f (eps²-1)²]/2).
    "auto" is closed form for polynomial costs ((z-k)^2, z: moments of eps), quadrature otherwise.
    """
    if estimator not in _SINGLE_SAMPLE:
        raise ValueError(f"Unknown estimator {estimator!r}; choose one of {', '.join(_SINGLE_SAMPLE)}.")
    check_baseline(baseline)
    loc, scale = _exact_variance(name, estimator, float(loc), float(scale), float(k), baseline, method)
    return {"loc": loc, "scale": scale}


@functools.lru_cache(maxsize=4096)  # sliders revisit the same settings; the quadratures take tens of ms
def _exact_variance(
    name: str, estimator: str, loc: float, scale: float, k: float, baseline: str, method: str
) -> tuple[float, float]:
    expect = _expectation(toy_cost(name), loc, scale, k, method)
    singles = _SINGLE_SAMPLE[estimator](scale, _EXACT_BASELINES[baseline](expect, scale))
    variances = []
    for g in (singles["loc"], singles["scale"]):
        mean = expect(g)
        variances.append(expect(lambda f, df, eps, g=g, m=mean: (g(f, df, eps) - m) ** 2))  # centred: no cancellation
    return variances[0], variances[1]


def _exact_zero_baseline(expect: Expectation, scale: float) -> dict[str, float]:
    return {"loc": 0.0, "scale": 0.0}


def _exact_mean_baseline(expect: Expectation, scale: float) -> dict[str, float]:
    """b = E[f]: where the moving average settles."""
    mean_cost = expect(lambda f, df, eps: f)
    return {"loc": mean_cost, "scale": mean_cost}


def _exact_optimal_baseline(expect: Expectation, scale: float) -> dict[str, float]:
    """b* = E[f s²] / E[s²] for each parameter's score s."""
    return {name: expect(lambda f, df, eps, s=score: f * s(eps, scale) ** 2)
            / expect(lambda f, df, eps, s=score: s(eps, scale) ** 2) for name, score in _SCORES.items()}


_EXACT_BASELINES: dict[str, Callable[[Expectation, float], dict[str, float]]] = {
    "none": _exact_zero_baseline,
    "moving_average": _exact_mean_baseline,
    "optimal": _exact_optimal_baseline,
}
