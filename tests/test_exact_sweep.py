"""vae.toy_costs is exact over the whole box the Estimators page's sliders reach: every exact gradient and
single-sample variance, for every cost, estimator, baseline and parameter, against

* an independent quadrature: Gauss-Legendre panels over z (not eps), meshed here from what each cost looks like
  (the Gaussian's width, a peak's width, an oscillation's period, a kink, the tilt of exp(2kz)), with every
  variance centred (E[(g - E g)²], no cancellation), on a dense seeded sweep that includes the box's corners;
* mpmath at 20 digits at the settings issue 12 found wrong, and where values are tiny or cancel;
* the estimators' own Monte Carlo, within 5 standard errors.
"""

from __future__ import annotations

import itertools
import math
import sys

import mpmath
import numpy as np
import pytest
import torch

from vae.baselines import BASELINES, MOVING_AVERAGE_DECAY
from vae.estimators import ESTIMATORS
from vae.toy_costs import COSTS, cost_function, exact_gradient, exact_variance

RELATIVE = 1e-6
# Below this fraction of its natural size (E|f s| for a gradient; E[g²] for a pathwise variance, E[(|f| + |b|)² s²]
# for a score-function one) a value is zero to double precision: a zero by symmetry (mu = 0), a constant f (k = 0),
# a stationary point the grid happens to hit, or an integral that cancels that far (cos kz damped by
# exp(-k² sigma²/2)). No quadrature in doubles resolves it relatively; there the exact value must be as small.
ZERO = 1e-9
PARAMS = ("loc", "scale")
MU = np.round(np.arange(-30, 31) / 10, 1)  # the sliders: mu in [-3, 3], sigma in [0.1, 3], k in k_range, step 0.1
SIGMA = np.round(np.arange(1, 31) / 10, 1)


def k_values(name: str) -> np.ndarray:
    low, high = COSTS[name].k_range
    return np.round(np.arange(round(10 * low), round(10 * high) + 1) / 10, 1)


def sweep_settings(name: str, random_count: int = 200) -> list[tuple[float, float, float]]:
    """The corners and edges of the box (mu = -3, 0, 3; sigma = 0.1, 1, 3; k at both ends, 0 and the default), then
    random slider positions (seeded)."""
    ks = k_values(name)
    edge_ks = sorted({float(ks[0]), float(ks[-1]), COSTS[name].default_k, *([0.0] if ks[0] <= 0 <= ks[-1] else [])})
    corners = list(itertools.product((-3.0, 0.0, 3.0), (0.1, 1.0, 3.0), edge_ks))
    rng = np.random.default_rng(list(COSTS).index(name))
    interior = zip(rng.choice(MU, random_count), rng.choice(SIGMA, random_count), rng.choice(ks, random_count),
                   strict=True)
    return corners + [(float(m), float(s), float(k)) for m, s, k in interior]


# ---------------------------------------------------------------------------------------------------------------
# the independent quadrature: Gauss-Legendre panels over z
# ---------------------------------------------------------------------------------------------------------------

GL_NODES, GL_WEIGHTS = np.polynomial.legendre.leggauss(20)
TAIL = 12.0  # Gaussian widths beyond the integrands' centres: the mass outside is below exp(-72)


def panel_edges(name: str, loc: float, scale: float, k: float) -> np.ndarray:
    """Edges in z: panels at most half a Gaussian width wide (and half a period of cos² kz), finer panels over
    the peak of exp(-k z²), an edge at the kink, and a range that covers every integrand's mass."""
    centres, width, regions = [loc], scale / 2, []
    if name == "exp(k z)":
        centres.append(loc + 2 * k * scale**2)  # f² = exp(2kz) tilts the density: its mass moves by 2k sigma²
    if name == "exp(-k z^2)" and k > 0:
        centres.append(0.0)  # the peak of f, where f times the density may live
        peak = 1 / math.sqrt(4 * k)  # the width of f² = exp(-2k z²)
        regions.append(np.linspace(-TAIL * peak, TAIL * peak, 4 * round(TAIL) + 1))
    if name == "cos(k z)" and k > 0:
        width = min(width, math.pi / (2 * k))  # cos² kz has period pi/k
    if name in ("|z-k|", "1[z>k]"):
        centres.append(k)  # the kink, and the tail beyond it however far out
        regions.append(np.array([k]))
    low, high = min(centres) - TAIL * scale, max(centres) + TAIL * scale
    edges = np.union1d(np.linspace(low, high, math.ceil((high - low) / width) + 1), np.concatenate([[], *regions]))
    return edges[(edges >= low) & (edges <= high)]


def nodes(name: str, loc: float, scale: float, k: float) -> tuple[np.ndarray, np.ndarray]:
    """z and the weights of the N(loc, scale²) expectation."""
    edges = panel_edges(name, loc, scale, k)
    half, middle = np.diff(edges)[:, None] / 2, (edges[1:] + edges[:-1])[:, None] / 2
    z = (middle + half * GL_NODES).ravel()
    density = np.exp(-((z - loc) ** 2) / (2 * scale**2)) / (scale * math.sqrt(2 * math.pi))
    return z, (half * GL_WEIGHTS).ravel() * density


def independent_values(name: str, loc: float, scale: float, k: float) -> dict[str, dict[str, tuple[float, float]]]:
    """{"gradient" | estimator or baseline: {param: (value, natural size)}} by the panels above."""
    z, weights = nodes(name, loc, scale, k)
    z_tensor = torch.from_numpy(z)
    f, df = COSTS[name].f(z_tensor, k).numpy(), COSTS[name].df(z_tensor, k).numpy()
    mean = lambda x: float(weights @ x)  # noqa: E731

    def centred(g: np.ndarray, size: np.ndarray) -> tuple[float, float]:
        m = mean(g)
        return mean((g - m) ** 2), mean(size**2)

    scores = {"loc": (z - loc) / scale**2, "scale": ((z - loc) ** 2 - scale**2) / scale**3}
    slopes = {"loc": df, "scale": df * (z - loc) / scale}  # pathwise: f'(z) dz/dtheta
    optimal = {p: mean(f * s**2) / mean(s**2) for p, s in scores.items()}
    values = {"gradient": {p: (mean(f * s), mean(np.abs(f * s))) for p, s in scores.items()},
              "pathwise": {p: centred(g, g) for p, g in slopes.items()}}
    for baseline, b in (("none", dict.fromkeys(PARAMS, 0.0)), ("moving_average", dict.fromkeys(PARAMS, mean(f))),
                        ("optimal", optimal)):
        values[baseline] = {p: centred((f - b[p]) * s, (np.abs(f) + abs(b[p])) * s) for p, s in scores.items()}
    return values


def library_values(name: str, loc: float, scale: float, k: float) -> dict[str, dict[str, float]]:
    values = {"gradient": exact_gradient(name, loc, scale, k),
              "pathwise": exact_variance(name, "pathwise", loc, scale, k)}
    for baseline in BASELINES:
        values[baseline] = exact_variance(name, "score_function", loc, scale, k, baseline)
    return values


def disagreement(exact: float, truth: float, size: float) -> bool:
    """Not a number, or off by more than RELATIVE; zeros (see ZERO, and below the smallest normal double, where
    the library returns 0) must be as small."""
    if not math.isfinite(exact):
        return True
    floor = max(ZERO * size, sys.float_info.min)
    if abs(truth) <= floor:
        return abs(exact) > floor
    return abs(exact - truth) > RELATIVE * abs(truth)


@pytest.mark.parametrize("name", list(COSTS))
def test_exact_values_over_the_slider_box(name):
    failures = []
    for loc, scale, k in sweep_settings(name):
        truth, exact = independent_values(name, loc, scale, k), library_values(name, loc, scale, k)
        for what, param in itertools.product(truth, PARAMS):
            value, size = truth[what][param]
            if disagreement(exact[what][param], value, size):
                failures.append(f"mu={loc} sigma={scale} k={k} {what} {param}: {exact[what][param]!r}, "
                                f"independent {value!r}")
    assert not failures, f"{len(failures)} wrong, e.g.\n" + "\n".join(failures[:15])


def test_the_independent_quadrature_knows_the_closed_forms():
    """The panels themselves, against values worked by hand: E exp(-k z²) and its gradient, Var f'(z) for exp(kz)."""
    loc, scale, k = 0.4, 3.0, 20.0
    c = 1 + 2 * k * scale**2
    gradient = independent_values("exp(-k z^2)", loc, scale, k)["gradient"]["loc"][0]
    assert gradient == pytest.approx(math.exp(-k * loc**2 / c) / math.sqrt(c) * (-2 * k * loc / c), rel=1e-10)
    loc, scale, k = -3.0, 3.0, 2.0
    pathwise = independent_values("exp(k z)", loc, scale, k)["pathwise"]["loc"][0]
    assert pathwise == pytest.approx(k**2 * math.exp(2 * k * loc + k**2 * scale**2) * math.expm1(k**2 * scale**2),
                                     rel=1e-10)


# ---------------------------------------------------------------------------------------------------------------
# mpmath at 20 digits, at the settings issue 12 named and where the values are tiny or cancel
# ---------------------------------------------------------------------------------------------------------------

MP_COSTS = {  # f and f' once more, in mpmath
    "(z-k)^2": (lambda z, k: (z - k) ** 2, lambda z, k: 2 * (z - k)),
    "z": (lambda z, k: z, lambda z, k: mpmath.mpf(1)),
    "exp(-k z^2)": (lambda z, k: mpmath.exp(-k * z**2), lambda z, k: -2 * k * z * mpmath.exp(-k * z**2)),
    "cos(k z)": (lambda z, k: mpmath.cos(k * z), lambda z, k: -k * mpmath.sin(k * z)),
    "exp(k z)": (lambda z, k: mpmath.exp(k * z), lambda z, k: k * mpmath.exp(k * z)),
    "|z-k|": (lambda z, k: abs(z - k), lambda z, k: mpmath.sign(z - k)),
    "1[z>k]": (lambda z, k: mpmath.mpf(z > k), lambda z, k: mpmath.mpf(0)),
}
MP_SETTINGS = [  # (cost, loc, scale, k)
    ("exp(-k z^2)", 0.0, 3.0, 20.0), ("exp(-k z^2)", 1.0, 3.0, 20.0), ("exp(-k z^2)", 3.0, 0.1, 20.0),
    ("exp(k z)", 0.0, 3.0, 2.0), ("exp(k z)", 3.0, 2.9, -2.0), ("cos(k z)", 0.0, 0.1, 0.1),
    ("|z-k|", 3.0, 0.1, -3.0), ("|z-k|", -0.5, 0.1, 0.3), ("1[z>k]", 0.8, 0.1, 0.0), ("1[z>k]", -1.0, 0.2, 1.0),
]


def mp_expectation(name: str, loc, scale, k):
    """E[h(z, eps)] by mpmath.quad over eps, split where the integrand lives: the peak of exp(-k z²) at z = 0 and
    those of f φ and f² φ, the kink at z = k, the tilt of exp(kz) and exp(2kz) to eps = k sigma and 2k sigma."""
    peaks = [loc / (1 + 2 * a * scale**2) for a in (k, 2 * k)] if name == "exp(-k z^2)" else []
    splits = sorted({*((z - loc) / scale for z in (0, k, *peaks)), 2 * k * scale, k * scale, mpmath.mpf(0)})
    grid = [*splits, *mpmath.linspace(-40, 40, 161)]

    def expect(h):
        g = lambda e: h(loc + scale * e, e) * mpmath.exp(-(e**2) / 2) / mpmath.sqrt(2 * mpmath.pi)  # noqa: E731
        size = max(abs(g(e)) for e in grid) or 1  # mpmath.quad stops at an absolute error: integrate g / size
        return size * mpmath.quad(lambda e: g(e) / size, [-mpmath.inf, *splits, mpmath.inf])

    return expect


def mp_variances(name: str, loc: float, scale: float, k: float, estimator: str, baseline: str) -> dict[str, float]:
    """The single-sample variances, centred: E[(g - E g)²]."""
    f, df = MP_COSTS[name]
    loc, scale, k = mpmath.mpf(loc), mpmath.mpf(scale), mpmath.mpf(k)
    expect = mp_expectation(name, loc, scale, k)
    scores = {"loc": lambda z, e: e / scale, "scale": lambda z, e: (e**2 - 1) / scale}
    if estimator == "pathwise":
        singles = {"loc": lambda z, e: df(z, k), "scale": lambda z, e: df(z, k) * e}
    else:
        b = dict.fromkeys(PARAMS, 0)
        if baseline == "moving_average":
            b = dict.fromkeys(PARAMS, expect(lambda z, e: f(z, k)))
        if baseline == "optimal":
            b = {p: expect(lambda z, e, s=s: f(z, k) * s(z, e) ** 2) / expect(lambda z, e, s=s: s(z, e) ** 2)
                 for p, s in scores.items()}
        singles = {p: (lambda z, e, s=s, c=b[p]: (f(z, k) - c) * s(z, e)) for p, s in scores.items()}
    variances = {}
    for p, g in singles.items():
        m = expect(g)
        variances[p] = float(expect(lambda z, e, g=g, m=m: (g(z, e) - m) ** 2))
    return variances


@pytest.mark.parametrize(("name", "loc", "scale", "k"), MP_SETTINGS)
def test_exact_variances_match_mpmath_at_the_hard_corners(name, loc, scale, k):
    for estimator, baseline in [("pathwise", "none"), *(("score_function", b) for b in BASELINES)]:
        with mpmath.workdps(20):
            expected = mp_variances(name, loc, scale, k, estimator, baseline)
        exact = exact_variance(name, estimator, loc, scale, k, baseline)
        assert exact == pytest.approx(expected, rel=RELATIVE, abs=1e-300), (estimator, baseline)


# ---------------------------------------------------------------------------------------------------------------
# the estimators' own Monte Carlo
# ---------------------------------------------------------------------------------------------------------------

MC_DRAWS = 100_000
MC_SETTINGS = [  # (cost, loc, scale, k): corners where 100,000 draws can see the variance (not exp(kz) with large
    # k sigma, whose variance lives in draws too rare to see)
    ("(z-k)^2", -3.0, 3.0, 3.0), ("(z-k)^2", 3.0, 0.1, -3.0), ("z", 0.0, 0.1, 0.0), ("z", -3.0, 3.0, 0.0),
    ("exp(-k z^2)", 0.0, 3.0, 20.0), ("exp(-k z^2)", 1.0, 3.0, 20.0), ("exp(-k z^2)", -0.3, 0.1, 20.0),
    ("exp(-k z^2)", 0.5, 1.0, 5.0), ("cos(k z)", 0.0, 3.0, 10.0), ("cos(k z)", 1.3, 0.1, 10.0),
    ("cos(k z)", -3.0, 1.0, 0.1), ("exp(k z)", -3.0, 0.3, 2.0), ("exp(k z)", 3.0, 0.1, -2.0),
    ("exp(k z)", 0.0, 1.0, 0.5), ("|z-k|", 3.0, 0.1, -3.0), ("|z-k|", 0.0, 3.0, 3.0), ("|z-k|", -0.5, 0.1, -0.4),
    ("1[z>k]", 0.0, 3.0, 3.0), ("1[z>k]", 0.8, 0.1, 0.7), ("1[z>k]", -3.0, 1.5, -3.0),
]


def monte_carlo(name, loc, scale, k, estimator, baseline, seed) -> dict[str, np.ndarray]:
    params = {"loc": torch.tensor(loc, dtype=torch.float64), "scale": torch.tensor(scale, dtype=torch.float64)}
    estimates = ESTIMATORS[estimator](cost_function(name, k), params, 1, MC_DRAWS,
                                      generator=torch.Generator().manual_seed(seed), baseline=baseline)
    return {p: x.numpy() for p, x in estimates.items()}


def cost_variance(name: str, loc: float, scale: float, k: float) -> float:
    """Var f(z), by the independent panels (the moving average's own noise is proportional to it)."""
    z, weights = nodes(name, loc, scale, k)
    f = COSTS[name].f(torch.from_numpy(z), k).numpy()
    return float(weights @ (f - weights @ f) ** 2)


def expected_empirical_variance(name, loc, scale, k, baseline, exact: float, param: str) -> float:
    """The exact variance at b = E[f] plus the moving average's own noise: Var[f] E[s²] (1 - beta) / (1 + beta)."""
    if baseline != "moving_average":
        return exact
    beta, score_square = MOVING_AVERAGE_DECAY, (1.0 if param == "loc" else 2.0) / scale**2
    return exact + cost_variance(name, loc, scale, k) * score_square * (1 - beta) / (1 + beta)


@pytest.mark.parametrize(("name", "loc", "scale", "k"), MC_SETTINGS)
def test_exact_values_match_the_estimators_monte_carlo(name, loc, scale, k):
    gradient = exact_gradient(name, loc, scale, k)
    for seed, (estimator, baseline) in enumerate([("pathwise", "none"), *(("score_function", b) for b in BASELINES)]):
        samples = monte_carlo(name, loc, scale, k, estimator, baseline, seed)
        exact = exact_variance(name, estimator, loc, scale, k, baseline)
        for p, x in samples.items():
            if estimator == "score_function" or COSTS[name].pathwise_unbiased:
                assert abs(x.mean() - gradient[p]) <= 5 * x.std() / math.sqrt(len(x)) + 1e-12, (estimator, p)
            expected = expected_empirical_variance(name, loc, scale, k, baseline, exact[p], p)
            stderr = math.sqrt(max(np.mean((x - x.mean()) ** 4) - x.var() ** 2, 0.0) / len(x))
            slack = 0.02 * expected if baseline == "optimal" else 0.0  # its b* comes from 4096 pilot draws
            assert abs(x.var() - expected) <= 5 * stderr + slack + 1e-12 * (1 + expected), (estimator, baseline, p,
                                                                                           x.var(), expected)
