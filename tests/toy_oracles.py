"""Independent answers for the exact-variance tests of the measure-valued estimator and the control variates: the
toy costs written again for mpmath, with their antiderivatives, settings at the corners and inside of the slider
box, and the Monte Carlo check within 5 standard errors."""

from __future__ import annotations

import math

import mpmath as mp
import numpy as np
import torch

from vae.estimators import ESTIMATORS
from vae.toy_costs import cost_function, exact_gradient
from vae.toy_variances import exact_variance

mp.mp.dps = 20

# f(z; k) and an antiderivative F with F' = f, for mpmath (not the module's torch code).
MP_COSTS = {
    "(z-k)^2": (lambda z, k: (z - k) ** 2, lambda z, k: (z - k) ** 3 / 3),
    "z": (lambda z, k: z, lambda z, k: z**2 / 2),
    "exp(-k z^2)": (lambda z, k: mp.exp(-k * z**2), lambda z, k: mp.sqrt(mp.pi / k) * mp.erf(mp.sqrt(k) * z) / 2),
    "cos(k z)": (lambda z, k: mp.cos(k * z), lambda z, k: mp.sin(k * z) / k),
    "exp(k z)": (lambda z, k: mp.exp(k * z), lambda z, k: mp.exp(k * z) / k),
    "|z-k|": (lambda z, k: abs(z - k), lambda z, k: (z - k) * abs(z - k) / 2),
    "1[z>k]": (lambda z, k: mp.mpf(1) if z > k else mp.mpf(0), lambda z, k: max(z - k, 0)),
}
KINKS = {"|z-k|": True, "1[z>k]": True}

# (loc, scale, k): the box's corners (sigma = 0.1 and 3, mu = -3 and 3, k at its ends) and one inside point per
# cost; exp(k z) keeps |k| sigma <= 0.6, where 200,000 draws pin a variance down (its tails are heavy).
BOX = {
    "(z-k)^2": [(-3.0, 0.1, 3.0), (3.0, 3.0, -3.0), (0.5, 1.0, 1.0)],
    "z": [(-3.0, 3.0, 0.0), (3.0, 0.1, 0.0), (0.5, 1.0, 0.0)],
    "exp(-k z^2)": [(0.0, 3.0, 20.0), (0.3, 0.1, 20.0), (0.5, 1.0, 1.0)],
    "cos(k z)": [(-3.0, 3.0, 10.0), (3.0, 0.1, 10.0), (0.5, 1.0, 1.0)],
    "exp(k z)": [(-3.0, 0.1, 2.0), (3.0, 0.3, -2.0), (0.5, 1.0, 0.5)],
    "|z-k|": [(-3.0, 0.1, 3.0), (3.0, 3.0, -3.0), (0.0, 0.5, 0.0)],
    "1[z>k]": [(-3.0, 3.0, 3.0), (3.0, 0.1, 3.0), (-0.4, 0.7, 0.0)],
}
BOX_CASES = [(name, setting) for name, settings in BOX.items() for setting in settings]
SAMPLES = 200_000


def phi(x):
    return mp.exp(-(x**2) / 2) / mp.sqrt(2 * mp.pi)


def breakpoints(name: str, loc: float, scale: float, k: float, *, mirrored: bool = False) -> list:
    """Where to cut an mpmath integral over the standard variable: every unit out to where the Gaussian weight
    and exp(k z)'s growth are done, around exp(-k z²)'s peak, and at f's kink (mirrored too, for an integrand in
    f(-x))."""
    reach = 12 + (3 * abs(k) * scale if name == "exp(k z)" else 0)  # where exp(2 k z) moves the mass
    cuts = [mp.mpf(x) for x in np.arange(-reach, reach + 1.0, 1.0)]
    if name == "exp(-k z^2)":  # its peak at z = 0, of width 1 / sqrt(2 k)
        width = 1 / (scale * math.sqrt(2 * max(k, 1e-3)))
        cuts += [mp.mpf(-loc / scale + s * width * j) for s in (-1, 1) for j in (0.5, 1, 2, 4)]
    if name in KINKS:
        kink = mp.mpf(k - loc) / scale
        cuts += [kink, -kink] if mirrored else [kink]
    return [-mp.inf, *sorted(set(cuts)), mp.inf]


def check_against_monte_carlo(name: str, setting: tuple[float, float, float], estimator: str, baseline: str,
                              seed: int, slack: float = 0.0) -> None:
    """200,000 single-draw estimates: their mean within 5 standard errors of the exact gradient, their variance
    within 5 standard errors (sqrt((m4 - var²) / n)) of the exact variance, plus `slack` of it."""
    loc, scale, k = setting
    params = {"loc": torch.tensor(loc, dtype=torch.float64), "scale": torch.tensor(scale, dtype=torch.float64)}
    grads = ESTIMATORS[estimator](cost_function(name, k), params, 1, SAMPLES,
                                  generator=torch.Generator().manual_seed(seed), baseline=baseline)
    gradient = exact_gradient(name, loc, scale, k)
    variance = exact_variance(name, estimator, loc, scale, k, baseline)
    for p in ("loc", "scale"):
        x = grads[p].numpy()
        centred = x - x.mean()
        scale_of_x = max(abs(x).max(), 1e-300)
        assert abs(x.mean() - gradient[p]) <= 5 * x.std() / math.sqrt(len(x)) + 1e-12 * scale_of_x, (p, x.mean())
        stderr = math.sqrt(max(np.mean(centred**4) - x.var() ** 2, 0.0) / len(x))
        assert abs(x.var() - variance[p]) <= 5 * stderr + slack * variance[p] + 1e-12 * scale_of_x**2, (
            p, x.var(), variance[p], stderr)
