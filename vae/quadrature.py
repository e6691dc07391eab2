"""Integrals over the real line, vectorised, for integrands that live somewhere finite but may be hard there: a
Gaussian weight times a cost that grows (exp(kz)), peaks sharply (exp(-kz²) with k = 20), oscillates (cos(kz)
with kσ = 30) or has kinks (|z - k|). The exact variances of the variance lab are such integrals.

Composite Gauss-Legendre: the line is cut at every given breakpoint (the kinks and peaks of the integrand, which
no panel may straddle) and into panels no wider than `START_WIDTH`; a panel whose 32-point sum disagrees with the
sum over its two halves beyond the tolerance is bisected, until every panel agrees. The range starts at
[-12, 12] and doubles until a doubling adds nothing (tails integrated until they vanish). Where that does not
converge, or the integrand overflows, the answer is nan: "cannot be computed reliably", never a wrong number.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

Integrand = Callable[[np.ndarray], np.ndarray]  # vectorised: x (...) -> g(x) (...), float64

NODES, WEIGHTS = np.polynomial.legendre.leggauss(32)
START_WIDTH = 0.5  # no panel starts wider: 32 nodes then resolve a peak of width 0.05 before any bisection
START_HALF_WIDTH = 12.0
MAX_HALF_WIDTH = 48.0
MAX_BISECTIONS = 48
MAX_PANELS = 8192  # more panels still to bisect than this: rounding noise being chased, not a real feature
RTOL = 1e-12


def integrate(g: Integrand, points: Sequence[float] = (), rtol: float = RTOL, atol: float = 0.0) -> float:
    """∫ g(x) dx over the real line, to rtol of ∫|g| or to atol, whichever is looser; nan where that cannot be
    computed reliably (no convergence, overflow). An integrand made of differences of nearly equal numbers is
    only known to their rounding: `atol` says how much that is, so that rounding noise is not chased forever."""
    half = START_HALF_WIDTH
    total = _integral(g, -half, half, points, rtol, atol)
    while np.isfinite(total) and half < MAX_HALF_WIDTH:
        tails = _integral(g, -2 * half, -half, points, rtol, atol) + _integral(g, half, 2 * half, points, rtol, atol)
        total += tails
        half *= 2
        if abs(tails) <= max(rtol * abs(total), atol):
            return float(total)
    return float("nan")


def antiderivative(g: Integrand, half_width: float = MAX_HALF_WIDTH, points: Sequence[float] = (),
                   rtol: float = RTOL) -> Integrand:
    """G(x) = ∫_0^x g, vectorised, for |x| <= half_width: every panel of g integrated to `rtol` of its own ∫|g|
    (so G is accurate where g is small, even beside a g that grows like exp(6x)); then G at any x is the sum of
    the panels between 0 and x plus the integral, to x, of g's degree-31 Legendre series on x's panel (no more
    evaluations of g). nan if that fails."""
    panels, sums = _adapted_panels(g, _edges(-half_width, half_width, (0.0, *points)), rtol, 0.0, whole_range=False)
    if panels is None:
        return lambda x: np.full(np.shape(x), np.nan)
    order = np.argsort(panels[:, 0])
    panels, sums = panels[order], sums[order]
    starts = np.concatenate([[0.0], np.cumsum(sums)[:-1]])
    starts -= starts[np.searchsorted(panels[:, 0], 0.0)]  # G(0) = 0: 0 is a panel edge
    half = (panels[:, 1] - panels[:, 0]) / 2
    values = g(panels.mean(1)[:, None] + half[:, None] * NODES)  # (P, 32)
    series = (values * WEIGHTS) @ _LEGENDRE_AT_NODES * (np.arange(32) + 0.5)  # (P, 32): g's Legendre coefficients
    integrated = np.polynomial.legendre.legint(series, lbnd=-1, axis=1) * half[:, None]  # (P, 33), 0 at the panel start

    def at(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        i = np.clip(np.searchsorted(panels[:, 0], x, side="right") - 1, 0, len(panels) - 1)
        t = (x - panels[i, 0]) / half[i] - 1.0  # x's place in its panel, in [-1, 1]
        return starts[i] + (_legendre_basis(t, 33) * integrated[i]).sum(-1)

    return at


def _legendre_basis(t: np.ndarray, count: int) -> np.ndarray:
    """P_0(t) ... P_{count-1}(t) by Bonnet's recurrence: (..., count)."""
    basis = [np.ones_like(t), t]
    for n in range(1, count - 1):
        basis.append(((2 * n + 1) * t * basis[n] - n * basis[n - 1]) / (n + 1))
    return np.stack(basis[:count], axis=-1)


_LEGENDRE_AT_NODES = _legendre_basis(NODES, 32)  # (32 nodes, 32 degrees)


# ---------------------------------------------------------------------------------------------------------------


def _edges(low: float, high: float, points: Sequence[float]) -> np.ndarray:
    """low, the breakpoints inside (low, high), high; then each gap cut into panels no wider than START_WIDTH."""
    cuts = np.unique([low, high, *(p for p in points if low < p < high)])
    pieces = [np.linspace(a, b, int(np.ceil((b - a) / START_WIDTH)) + 1)[:-1]
              for a, b in zip(cuts[:-1], cuts[1:], strict=True)]
    return np.concatenate([*pieces, [high]])


def _integral(g: Integrand, low: float, high: float, points: Sequence[float], rtol: float, atol: float) -> float:
    panels, sums = _adapted_panels(g, _edges(low, high, points), rtol, atol, whole_range=True)
    return float("nan") if panels is None else float(sums.sum())


def _adapted_panels(g: Integrand, edges: np.ndarray, rtol: float, atol: float, whole_range: bool
                    ) -> tuple[np.ndarray | None, np.ndarray]:
    """Panels (P, 2) and their integrals (P,) once each 32-point sum agrees with its two halves' sum. A panel
    passes when the disagreement is below rtol times its own ∫|g|, or below its share, by width, of atol and
    (if `whole_range`) of rtol times the whole range's ∫|g| (a far tail need not be known to 12 digits of itself)."""
    todo = np.stack([edges[:-1], edges[1:]], axis=1)  # (P, 2)
    whole = _gauss_legendre(g, todo[:, 0], todo[:, 1])[0]
    width = edges[-1] - edges[0]
    done, sums, magnitude = [], [], 0.0
    for _ in range(MAX_BISECTIONS):
        middle = todo.mean(1)
        (left, left_size), (right, right_size) = _gauss_legendre(g, todo[:, 0], middle), _gauss_legendre(
            g, middle, todo[:, 1])
        size = left_size + right_size
        if not np.all(np.isfinite(whole + left + right + size)):
            return None, np.zeros(0)
        magnitude = max(magnitude, float(size.sum()) + sum(float(np.abs(s).sum()) for s in sums))
        share = (todo[:, 1] - todo[:, 0]) / width
        allowed = np.maximum(rtol * size, share * (atol + (rtol * magnitude if whole_range else 0.0)))
        passed = np.abs(whole - (left + right)) <= allowed
        done.append(todo[passed])
        sums.append((left + right)[passed])
        todo = np.concatenate([np.stack([todo[~passed, 0], middle[~passed]], 1),
                               np.stack([middle[~passed], todo[~passed, 1]], 1)])
        whole = np.concatenate([left[~passed], right[~passed]])  # a half's sum is its own whole next round
        if not len(todo):
            return np.concatenate(done), np.concatenate(sums)
        if len(todo) > MAX_PANELS:
            break
    return None, np.zeros(0)


def _gauss_legendre(g: Integrand, low: np.ndarray, high: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """32-point Gauss-Legendre sums of g and of |g| over each [low, high]: (P,) each from (P,) bounds."""
    low, high = np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64)
    half = (high - low)[..., None] / 2
    values = g((low[..., None] + high[..., None]) / 2 + half * NODES)  # (P, 32)
    return (values * WEIGHTS).sum(-1) * half[..., 0], (np.abs(values) * WEIGHTS).sum(-1) * half[..., 0]
