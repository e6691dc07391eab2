"""The toy of the variance lab: costs f(z; k) of one scalar z ~ N(loc, scale²), their exact gradients and the exact
variance of each single-sample estimator.

Each `ToyCost` carries f, its derivative f' and what it teaches; `cost_function` turns one into the `Cost` the
estimators of `vae.estimators` take. The exact values are expectations over ε ~ N(0, 1) with z = loc + scale ε, all
in closed form: each cost writes f, f², f' and f'² as sums of `Term`s, p(z) exp(t z - a z²) with t possibly complex
(cos kz is the real part of exp(ikz)), or p(z) on a half-line (the kink and the jump), and a Term times a polynomial
in ε has a Gaussian integral. `method="quad"` computes the same values by `gaussian_expectation` instead, a
quadrature that finds where its integrand lives, with every variance centred; the tests hold the two together.

Contract, for every value of `exact_gradient` and `exact_variance`: a finite float is right to a relative 1e-6 or
better (typically 1e-12; about 1e-8 where the closed form cancels most inside the slider box, the score function
on cos kz at loc = 0, k = scale = 0.1), and values below the smallest normal double (2.2e-308) are 0. `math.nan`
means "cannot be computed reliably here": the moments overflow the double range (exp(kz) with large k·scale), or a
variance is less than 1e-9 of the terms it is the difference of (cos kz with k·scale below about 1e-2), so that
rounding would decide it. Show "cannot be computed reliably here" instead of a number; `is_reliable(value)` tells
the two apart. Over the whole box the Estimators page's sliders reach (|loc| <= 3, 0.1 <= scale <= 3, k in each
cost's `k_range`, steps of 0.1) every value is finite.
"""

from __future__ import annotations

import functools
import math
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from numpy.polynomial import Polynomial
from scipy import special

from vae.baselines import check_baseline
from vae.estimators import Cost

Elementwise = Callable[[torch.Tensor, float], torch.Tensor]  # (z, k) -> f(z; k), elementwise
_SHARP = ("With large k the score function can beat the pathwise estimator: f' oscillates or is sharply peaked "
          "while f stays bounded.")


def is_reliable(value: float) -> bool:
    """Whether an exact value of this module is a number to show: nan means it cannot be computed reliably."""
    return math.isfinite(value)


# -- closed forms: Terms and their Gaussian integrals --------------------------------------------------------------


@dataclass(frozen=True)
class Term:
    """One piece of a closed form, a function of z = loc + scale ε: p(z) exp(t z - a z²) (the real part, t may be
    complex, a >= 0), or, with `cut` = (r, h), p(z) on the half-line r ε > h only (then t = a = 0)."""

    poly: Polynomial
    t: complex = 0.0
    a: float = 0.0
    cut: tuple[float, float] | None = None


@dataclass(frozen=True)
class Expansion:
    """u = f - offset, u², u' = f' - slope_offset and u'², each a sum of Terms, at one (loc, scale, k).

    The offsets are constants that keep u or u' small where f or f' is nearly constant (a step far to one side):
    the score-function variances do not depend on `offset`, and the pathwise one for loc not on `slope_offset`,
    so taking them out costs nothing and saves the digits that E[f²] - E[f]² would cancel.
    """

    cost: tuple[Term, ...]
    cost_squared: tuple[Term, ...]
    slope: tuple[Term, ...]
    slope_squared: tuple[Term, ...]
    offset: float = 0.0
    slope_offset: float = 0.0


_EPS = Polynomial([0.0, 1.0])
_ONE = Polynomial([1.0])


def _gaussian_moments(count: int) -> np.ndarray:
    """E[ε^n], n < count: (n - 1)!! for even n, 0 for odd."""
    moments = np.ones(count)
    for n in range(1, count):
        moments[n] = (n - 1) * moments[n - 2] if n % 2 == 0 else 0.0
    return moments


_MOMENTS = _gaussian_moments(16)  # the closed forms need E[ε^n] up to n = 8


def _upper_moments(h: float, count: int) -> np.ndarray:
    """∫_h^∞ ε^n φ(ε) dε, n < count, by U_n = h^(n-1) φ(h) + (n - 1) U_(n-2): all terms positive for h >= 0."""
    density = math.exp(-h * h / 2.0) / math.sqrt(2.0 * math.pi)
    moments = np.zeros(max(count, 2))
    moments[0], moments[1] = special.ndtr(-h), density
    for n in range(2, count):
        moments[n] = h ** (n - 1) * density + (n - 1) * moments[n - 2]
    return moments[:count]


def _compose(coef: np.ndarray, a: complex, b: float) -> np.ndarray:
    """The coefficients of p(a + b x) from those of p (Horner's scheme)."""
    out = np.array(coef[-1:], dtype=complex)
    for c in coef[-2::-1]:
        out = np.append(a * out, 0.0) + np.append(0.0, b * out)
        out[0] += c
    return out


def _term_mean(term: Term, weight: Polynomial, loc: float, scale: float) -> complex:
    """E[weight(ε) term], ε ~ N(0, 1)."""
    if term.cut is not None:  # a half-line: truncated moments of ε
        r, h = term.cut
        coef = np.convolve(_compose(term.poly.coef, loc, scale), weight.coef)
        return complex(coef @ (r ** np.arange(len(coef)) * _upper_moments(h, len(coef))))
    # exp(t z - a z²) φ(ε) = exp(log_mass) N(ε; m, 1/c): a Gaussian in ε again, with z = z_hat + scale (ε - m)
    c = 1.0 + 2.0 * term.a * scale**2
    m, tau = scale * (term.t - 2.0 * term.a * loc) / c, 1.0 / math.sqrt(c)
    z_hat = (loc + scale**2 * term.t) / c  # loc + scale m, without its cancellation
    log_mass = (term.t * loc - term.a * loc**2 + scale**2 * term.t**2 / 2.0) / c - math.log(c) / 2.0
    coef = np.convolve(_compose(term.poly.coef, z_hat, scale * tau), _compose(weight.coef, m, tau))
    with np.errstate(over="ignore", invalid="ignore"):
        return complex(np.exp(log_mass) * (coef @ _MOMENTS[: len(coef)]))


def _mean(terms: Sequence[Term], weight: Polynomial, loc: float, scale: float) -> float:
    with np.errstate(over="ignore", invalid="ignore"):
        return float(sum((_term_mean(term, weight, loc, scale) for term in terms), 0j).real)


def _polynomial_expansion(coefficients: Sequence[float]) -> Callable[[float, float, float], Expansion]:
    f = Polynomial(coefficients)
    return lambda loc, scale, k: Expansion((Term(f),), (Term(f**2),), (Term(f.deriv()),), (Term(f.deriv() ** 2),))


def _gauss_exp_expansion(loc: float, scale: float, k: float) -> Expansion:
    """f = exp(-k z²), f' = -2k z f: Gaussian weights of precision 2k and 4k."""
    return Expansion((Term(_ONE, a=k),), (Term(_ONE, a=2 * k),), (Term(Polynomial([0.0, -2 * k]), a=k),),
                     (Term(Polynomial([0.0, 0.0, 4 * k**2]), a=2 * k),))


def _cos_expansion(loc: float, scale: float, k: float) -> Expansion:
    """cos kz = Re exp(ikz), -k sin kz = Re(ik exp(ikz)), cos² = (1 + cos 2kz)/2, sin² = (1 - cos 2kz)/2."""
    half = Term(Polynomial([0.5]))
    return Expansion((Term(_ONE, t=1j * k),), (half, Term(Polynomial([0.5]), t=2j * k)),
                     (Term(Polynomial([1j * k]), t=1j * k),),
                     (Term(Polynomial([k**2 / 2])), Term(Polynomial([-(k**2) / 2]), t=2j * k)))


def _exp_expansion(loc: float, scale: float, k: float) -> Expansion:
    """f = exp(kz), f' = k f: moment generating functions at k and 2k."""
    return Expansion((Term(_ONE, t=k),), (Term(_ONE, t=2 * k),), (Term(Polynomial([k]), t=k),),
                     (Term(Polynomial([k**2]), t=2 * k),))


def _minority_side(loc: float, scale: float, k: float) -> tuple[float, tuple[float, float]]:
    """r and the cut (r, h) of I = 1[r ε > h], the side of z = k with the smaller Gaussian mass (h >= 0)."""
    t = (k - loc) / scale
    r = 1.0 if t > 0 else -1.0
    return r, (r, abs(t))


def _abs_expansion(loc: float, scale: float, k: float) -> Expansion:
    """|z - k| = -r (z - k) + 2r (z - k) I and sign(z - k) = -r + 2r I, I the minority side."""
    r, cut = _minority_side(loc, scale, k)
    d = Polynomial([-k, 1.0])
    return Expansion((Term(-r * d), Term(2 * r * d, cut=cut)), (Term(d**2),), (Term(Polynomial([2 * r]), cut=cut),),
                     (Term(Polynomial([4.0]), cut=cut),), slope_offset=-r)


def _step_expansion(loc: float, scale: float, k: float) -> Expansion:
    """1[z > k] = I, or 1 - I where the step's upper side is the majority; f' = 0."""
    r, cut = _minority_side(loc, scale, k)
    indicator = Term(_ONE, cut=cut)
    if r > 0:
        return Expansion((indicator,), (indicator,), (), ())
    return Expansion((Term(-_ONE, cut=cut),), (indicator,), (), (), offset=1.0)


# -- closed-form gradients: (d/dloc, d/dscale) of E[f] ---------------------------------------------------------------


def _gauss_exp_gradient(loc: float, scale: float, k: float) -> tuple[float, float]:
    """E exp(-k z²) = exp(-k loc²/c) / sqrt(c), c = 1 + 2k scale², differentiated (dc/dscale = 4k scale)."""
    c = 1.0 + 2.0 * k * scale**2
    value = math.exp(-k * loc**2 / c) / math.sqrt(c)
    return value * (-2.0 * k * loc / c), value * 2.0 * k * scale * (2.0 * k * (loc - scale) * (loc + scale) - 1) / c**2


def _cos_gradient(loc: float, scale: float, k: float) -> tuple[float, float]:
    """E cos(kz) = cos(k loc) exp(-k² scale²/2) (the real part of the characteristic function)."""
    damping = math.exp(-(k**2) * scale**2 / 2.0)
    return -k * math.sin(k * loc) * damping, -(k**2) * scale * math.cos(k * loc) * damping


def _exp_gradient(loc: float, scale: float, k: float) -> tuple[float, float]:
    """E exp(kz) = exp(k loc + k² scale²/2) (the moment generating function); nan past the double range."""
    with np.errstate(over="ignore"):
        value = float(np.exp(k * loc + k**2 * scale**2 / 2.0))
    return (k * value, k**2 * scale * value) if math.isfinite(value) else (math.nan, math.nan)


def _abs_gradient(loc: float, scale: float, k: float) -> tuple[float, float]:
    """E|z - k| = scale sqrt(2/pi) exp(-a²/2 scale²) + a (1 - 2 Phi(-a/scale)), a = loc - k (folded normal mean)."""
    t = (loc - k) / scale
    return float(special.erf(t / math.sqrt(2.0))), 2.0 * math.exp(-(t**2) / 2.0) / math.sqrt(2.0 * math.pi)


def _step_gradient(loc: float, scale: float, k: float) -> tuple[float, float]:
    """E 1[z > k] = Phi((loc - k)/scale)."""
    t = (loc - k) / scale
    density = math.exp(-(t**2) / 2.0) / math.sqrt(2.0 * math.pi)
    return density / scale, -t * density / scale


@dataclass(frozen=True)
class ToyCost:
    """A cost f(z; k) of one scalar z, with its derivative f' and what it teaches.

    `gradient(loc, scale, k)` is the closed form of (d/dloc, d/dscale) E[f]; `expansion(loc, scale, k)` writes f,
    f², f' and f'² as Terms, which makes every variance closed form (`polynomial(k)`, f's coefficients in z, lowest
    first, gives one for a polynomial); `kinks(k)` lists the z where f is not smooth and `peaks(k)` those where it
    is sharply peaked (breakpoints for the quadrature).
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
    expansion: Callable[[float, float, float], Expansion] | None = None
    peaks: Callable[[float], Sequence[float]] = lambda k: ()

    def expand(self, loc: float, scale: float, k: float) -> Expansion:
        if self.polynomial is not None:
            return _polynomial_expansion(self.polynomial(k))(loc, scale, k)
        if self.expansion is None:
            raise ValueError(f"{self.name} has no closed form here; use quad.")
        return self.expansion(loc, scale, k)


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
        expansion=_gauss_exp_expansion, peaks=lambda k: (0.0,),
    ),
    "cos(k z)": ToyCost(
        "cos(k z)", r"\cos(k z)", lambda z, k: torch.cos(k * z), lambda z, k: -k * torch.sin(k * z), _SHARP,
        gradient=_cos_gradient, k_range=(0.0, 10.0), expansion=_cos_expansion,
    ),
    "exp(k z)": ToyCost(
        "exp(k z)", r"e^{k z}", lambda z, k: torch.exp(k * z), lambda z, k: k * torch.exp(k * z),
        "Heavy tailed: once k sigma is large, both estimators' variance grows like exp(2 k² sigma²), exploding "
        "with sigma and k, and empirical variances settle slowly (keep k sigma below about 1).",
        gradient=_exp_gradient, default_k=0.5, k_range=(-2.0, 2.0), expansion=_exp_expansion,
    ),
    "|z-k|": ToyCost(
        "|z-k|", r"|z-k|", lambda z, k: (z - k).abs(), lambda z, k: torch.sign(z - k),
        "f has a kink at z = k where f' jumps from -1 to 1, yet the pathwise estimator stays unbiased because f "
        "is continuous.",
        gradient=_abs_gradient, kinks=lambda k: (k,), k_range=(-3.0, 3.0), expansion=_abs_expansion,
    ),
    "1[z>k]": ToyCost(
        "1[z>k]", r"\mathbb{1}[z>k]", lambda z, k: (z > k).to(z.dtype), lambda z, k: torch.zeros_like(z),
        "f jumps at z = k and f' = 0 everywhere else: the pathwise estimator returns 0 for every draw and is "
        "biased, while the score function, which never differentiates f, stays unbiased.",
        gradient=_step_gradient, kinks=lambda k: (k,), pathwise_unbiased=False, k_range=(-3.0, 3.0),
        expansion=_step_expansion,
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


# -- a Gaussian expectation by quadrature --------------------------------------------------------------------------

_GL_NODES, _GL_WEIGHTS = np.polynomial.legendre.leggauss(16)
_SCAN = np.linspace(-40.0, 40.0, 641)  # eps, step 1/8: where the integrand lives is found on this grid
_NEGLIGIBLE = 80.0  # an integrand below exp(-80) of its largest value is left out
_MAX_PANELS = 4096  # per piece; a piece that has not settled by then is not reliable
_RTOL = 1e-13


def gaussian_expectation(h: Callable[[np.ndarray], np.ndarray], loc: float, scale: float,
                         points: Sequence[float] = ()) -> float:
    """E[h(z)], z ~ N(loc, scale²), by quadrature over ε = (z - loc)/scale; nan where it cannot be computed reliably.

    h is elementwise: it takes a float64 array of z and returns an array of the same shape. `points` are the z
    where h is not smooth (a kink, a jump) or has a peak narrower than scale: the quadrature splits there, so
    nothing is missed between nodes. Where h φ lives is found on a grid of ε in [-40, 40] (step 1/8, plus the
    points): the integral runs over the span where |h φ| is within exp(-80) of its largest value, however far the
    growth of h moves it (exp(2kz) moves the mass to ε ≈ 2k scale), split at the points and at the largest value.
    Each piece is composite 16-point Gauss-Legendre with panels halved until two rounds agree to 1e-13 of
    E|h(z)|. nan: h is not finite on that span, or a piece does not settle.
    """
    loc, scale = float(loc), float(scale)
    breaks = np.array([(float(p) - loc) / scale for p in points])
    eps = np.union1d(_SCAN, breaks[np.abs(breaks) < _SCAN[-1]])
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        values = np.asarray(h(loc + scale * eps), dtype=np.float64) * np.exp(-(eps**2) / 2.0) / math.sqrt(2 * math.pi)
        log_size = np.log(np.abs(values))
    if not np.all(np.isfinite(values)):
        return math.nan
    if not np.any(values):
        return 0.0
    live = np.flatnonzero(log_size >= log_size.max() - _NEGLIGIBLE)
    low, high = eps[max(live[0] - 1, 0)], eps[min(live[-1] + 1, len(eps) - 1)]
    edges = np.union1d([low, high, eps[np.argmax(log_size)]], breaks[(breaks > low) & (breaks < high)])
    size = float(np.sum(np.abs(values[:-1]) * np.diff(eps)))  # about E|h|: the yardstick of the tolerance
    return _pieces(lambda e: h(loc + scale * e) * np.exp(-(e**2) / 2.0) / math.sqrt(2 * math.pi), edges, size)


def _pieces(g: Callable[[np.ndarray], np.ndarray], edges: np.ndarray, size: float) -> float:
    total = 0.0
    for low, high in zip(edges[:-1], edges[1:], strict=True):
        total += _settled_piece(g, low, high, _RTOL * size)
    return float(total)


def _settled_piece(g: Callable[[np.ndarray], np.ndarray], low: float, high: float, tolerance: float) -> float:
    """∫_low^high g by Gauss-Legendre on 1, 2, 4, ... panels until two rounds agree; nan if they never do."""
    previous, count = _panel_sum(g, low, high, 1), 2
    while count <= _MAX_PANELS:
        current = _panel_sum(g, low, high, count)
        if abs(current - previous) <= tolerance:
            return current
        previous, count = current, 2 * count
    return math.nan


def _panel_sum(g: Callable[[np.ndarray], np.ndarray], low: float, high: float, count: int) -> float:
    edges = np.linspace(low, high, count + 1)
    half, middle = np.diff(edges)[:, None] / 2, (edges[1:] + edges[:-1])[:, None] / 2
    with np.errstate(over="ignore", invalid="ignore"):
        return float(np.sum(half * _GL_WEIGHTS * g(middle + half * _GL_NODES)))


# -- exact values --------------------------------------------------------------------------------------------------


def _check_exact(method: str, scale: float) -> None:
    if method not in ("auto", "closed_form", "quad"):
        raise ValueError(f"Unknown method {method!r}; choose auto, closed_form or quad.")
    if not scale > 0:
        raise ValueError(f"scale must be positive; got {scale}.")


def _reliable(value: float) -> float:
    """nan for overflow; 0 below the smallest normal double, where subnormals have lost their digits."""
    if not math.isfinite(value):
        return math.nan
    return float(value) if abs(value) >= sys.float_info.min else 0.0


def exact_gradient(name: str, loc: float, scale: float, k: float, *, method: str = "auto") -> dict[str, float]:
    """(d/dloc, d/dscale) E_{z ~ N(loc, scale²)}[f(z; k)] as {"loc", "scale"}; nan where not reliable.

    "auto" and "closed_form" differentiate the closed form of E[f] (e.g. E cos(kz) = cos(k loc) exp(-k² scale²/2));
    "quad" integrates the score-function identity E[f(z) score], which holds for every f here, steps included.
    """
    toy = toy_cost(name)
    _check_exact(method, scale)
    loc, scale, k = float(loc), float(scale), float(k)
    if method != "quad" and toy.gradient is not None:
        return dict(zip(("loc", "scale"), map(_reliable, toy.gradient(loc, scale, k)), strict=True))
    if method == "closed_form":
        raise ValueError(f"{name} has no closed-form gradient here; use quad.")
    expect = _quad_expectation(toy, loc, scale, k)
    return {param: _reliable(expect(lambda f, df, eps, s=score: f * s(eps, scale))) for param, score in _SCORES.items()}


def exact_variance(
    name: str, estimator: str, loc: float, scale: float, k: float, baseline: str = "none", *, method: str = "auto"
) -> dict[str, float]:
    """Var[g] = E[(g - E g)²] of the SINGLE-sample estimator g, for loc and for scale ({"loc", "scale"}); nan where
    not reliable (see the module's contract).

    With z = loc + scale eps:  pathwise  g_loc = f'(z),                g_scale = f'(z) eps;
                              score     g_loc = (f(z) - b) eps/scale, g_scale = (f(z) - b)(eps² - 1)/scale.
    The average of K draws has variance Var[g]/K. Baselines: "none" b = 0; "moving_average" b = E[f], the value
    the moving average converges to (the estimator's own b is a little noisy, so its variance is a little higher:
    see `vae.baselines`); "optimal" b* = E[f s²]/E[s²] per parameter, exact (b*_loc = E[f eps²],
    b*_scale = E[f (eps²-1)²]/2). The pathwise estimator ignores b; for a step (f' = 0) its every estimate is 0.
    "auto" and "closed_form" are closed form for every cost; "quad" integrates the centred definition instead.
    """
    if estimator not in _SINGLE_SAMPLE:
        raise ValueError(f"Unknown estimator {estimator!r}; choose one of {', '.join(_SINGLE_SAMPLE)}.")
    check_baseline(baseline)
    _check_exact(method, scale)
    toy_cost(name)
    loc, scale = _exact_variance(name, estimator, float(loc), float(scale), float(k), baseline, method)
    return {"loc": loc, "scale": scale}


@functools.lru_cache(maxsize=4096)  # sliders revisit the same settings
def _exact_variance(
    name: str, estimator: str, loc: float, scale: float, k: float, baseline: str, method: str
) -> tuple[float, float]:
    if method == "quad":
        variances = _quad_variances(toy_cost(name), estimator, loc, scale, k, baseline)
    else:
        expansion = toy_cost(name).expand(loc, scale, k)
        variances = (_pathwise_variances(expansion, loc, scale) if estimator == "pathwise"
                     else _score_variances(expansion, loc, scale, baseline))
    return _reliable(variances["loc"]), _reliable(variances["scale"])


# -- exact values in closed form, from an Expansion ------------------------------------------------------------------

# Per parameter, the score times scale as a polynomial v(eps) and its square: s_loc = eps/scale,
# s_scale = (eps² - 1)/scale. E[v²] is 1 and 2.
_SCORE_POLYNOMIALS = {"loc": (_EPS, _EPS**2), "scale": (_EPS**2 - 1, (_EPS**2 - 1) ** 2)}
_CANCELLATION = 1e-9  # a variance smaller than this fraction of the terms it is the difference of has lost its digits


def _variance(*terms: float) -> float:
    """The sum of terms that make up a variance; nan where rounding would decide it (the terms cancel to below
    `_CANCELLATION` of their size, or the sum comes out negative); an exact 0 stays 0 (a constant f)."""
    if not all(map(math.isfinite, terms)):  # overflow
        return math.nan
    value, size = math.fsum(terms), math.fsum(map(abs, terms))
    if value == 0.0 or (value > 0 and value >= _CANCELLATION * size):
        return value
    return math.nan


def _pathwise_variances(x: Expansion, loc: float, scale: float) -> dict[str, float]:
    """Var f' = E[u'²] - E[u']², and Var f' eps = E[(u' + c)² eps²] - E[u' eps]², u' = f' - c."""
    mean = functools.partial(_mean, loc=loc, scale=scale)
    c = x.slope_offset
    return {"loc": _variance(mean(x.slope_squared, _ONE), -mean(x.slope, _ONE) ** 2),
            "scale": _variance(mean(x.slope_squared, _EPS**2), 2 * c * mean(x.slope, _EPS**2), c * c,
                               -mean(x.slope, _EPS) ** 2)}


def _score_variances(x: Expansion, loc: float, scale: float, baseline: str) -> dict[str, float]:
    """Var (f - b) s = E[(u - b')² v²]/scale² - E[u v]²/scale², u = f - offset, b' = b - offset, s = v/scale."""
    mean = functools.partial(_mean, loc=loc, scale=scale)
    variances = {}
    for param, (v, v_squared) in _SCORE_POLYNOMIALS.items():
        weight, first = float(v_squared.coef @ _MOMENTS[: len(v_squared.coef)]), mean(x.cost, v_squared)
        b = {"none": -x.offset, "moving_average": mean(x.cost, _ONE), "optimal": first / weight}[baseline]
        variances[param] = _variance(mean(x.cost_squared, v_squared), -2 * b * first, b * b * weight,
                                     -mean(x.cost, v) ** 2) / scale**2
    return variances


# -- the same by quadrature: expectations over eps of h(f(z), f'(z), eps), z = loc + scale eps -----------------------

Integrand = Callable  # h(f, df, eps) -> value, elementwise on arrays
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
    """E[h(f, f', eps)] by `gaussian_expectation`, split at f's kinks and peaks."""
    points = (*toy.kinks(k), *toy.peaks(k))

    def expect(h: Integrand) -> float:
        def integrand(z: np.ndarray) -> np.ndarray:
            z_tensor = torch.from_numpy(np.ascontiguousarray(z, dtype=np.float64))
            return h(toy.f(z_tensor, k).numpy(), toy.df(z_tensor, k).numpy(), (z - loc) / scale)

        return gaussian_expectation(integrand, loc, scale, points)

    return expect


def _quad_variances(toy: ToyCost, estimator: str, loc: float, scale: float, k: float, baseline: str
                    ) -> dict[str, float]:
    expect = _quad_expectation(toy, loc, scale, k)
    singles = _SINGLE_SAMPLE[estimator](scale, _QUAD_BASELINES[baseline](expect, scale))
    variances = {}
    for param, g in singles.items():
        mean = expect(g)
        variances[param] = expect(lambda f, df, eps, g=g, m=mean: (g(f, df, eps) - m) ** 2)  # centred
    return variances


def _zero_baseline(expect: Expectation, scale: float) -> dict[str, float]:
    return {"loc": 0.0, "scale": 0.0}


def _mean_baseline(expect: Expectation, scale: float) -> dict[str, float]:
    """b = E[f]: where the moving average settles."""
    mean_cost = expect(lambda f, df, eps: f)
    return {"loc": mean_cost, "scale": mean_cost}


def _optimal_baseline(expect: Expectation, scale: float) -> dict[str, float]:
    """b* = E[f s²] / E[s²] for each parameter's score s."""
    return {name: expect(lambda f, df, eps, s=score: f * s(eps, scale) ** 2)
            / expect(lambda f, df, eps, s=score: s(eps, scale) ** 2) for name, score in _SCORES.items()}


_QUAD_BASELINES: dict[str, Callable[[Expectation, float], dict[str, float]]] = {
    "none": _zero_baseline,
    "moving_average": _mean_baseline,
    "optimal": _optimal_baseline,
}
