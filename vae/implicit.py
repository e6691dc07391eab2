"""Implicit reparameterization (Figurnov, Mohamed & Mnih 2018): families with no simple g(params, noise).

Gamma and Beta have no closed-form z = g(params, eps), yet a draw z still moves smoothly with the parameters.
Hold the draw's quantile u = F(z; alpha) fixed while alpha moves: differentiating F(z(alpha); alpha) = u gives

    dz/dalpha = -(dF/dalpha) / (dF/dz) = -(dF/dalpha) / q(z; alpha),

a gradient that needs the CDF and the density, never g. torch.distributions' `Gamma.rsample` and `Beta.rsample`
backpropagate exactly this (computed inside torch); `implicit_gradients` reads it with autograd and
`cdf_gradients` computes the same ratio independently, from scipy's CDF by central finite differences.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import torch
from scipy import stats
from torch.distributions import Beta, Distribution, Gamma

from vae.families import Param, ScipyDist

FINITE_DIFFERENCE_STEP = 1e-5  # relative to the parameter: central differences of a smooth CDF, ~1e-9 accurate
# torch's Gamma and Beta samplers take no generator: seed torch's global one inside fork_rng, one caller at a time,
# so a draw repeats and nobody else's random stream moves.
_GLOBAL_RNG = threading.Lock()


@dataclass(frozen=True)
class ImplicitFamily:
    """A family sampled with implicit reparameterization gradients; params use torch's names."""

    name: str
    params: tuple[Param, ...]
    support: str  # for the page's sentence
    torch_law: Callable[..., Distribution]
    scipy_law: Callable[..., ScipyDist]

    def resolve(self, params: Mapping[str, float]) -> dict[str, float]:
        return {p.name: float(params.get(p.name, p.default)) for p in self.params}


IMPLICIT_FAMILIES: dict[str, ImplicitFamily] = {
    "gamma": ImplicitFamily(
        "Gamma", (Param("concentration", r"\alpha", 2.0, 0.2, 10.0), Param("rate", r"\beta", 1.0, 0.2, 5.0)),
        "z > 0", Gamma, lambda concentration, rate: stats.gamma(concentration, scale=1.0 / rate)),
    "beta": ImplicitFamily(
        "Beta", (Param("concentration1", r"\alpha", 2.0, 0.2, 10.0), Param("concentration0", r"\beta", 3.0, 0.2, 10.0)),
        "0 < z < 1", Beta, lambda concentration1, concentration0: stats.beta(concentration1, concentration0)),
}


@dataclass(frozen=True)
class ImplicitDraws:
    """`count` draws z ~ q(z; params), sorted, with dz/dparam at each draw (one array per parameter name)."""

    z: np.ndarray  # (count,)
    gradients: dict[str, np.ndarray]  # name -> (count,)


def implicit_draws(family: ImplicitFamily, params: Mapping[str, float], count: int = 2000,
                   seed: int = 0) -> ImplicitDraws:
    """Seeded `rsample` draws and, by autograd through them, torch's implicit dz/dparam for each draw.

    Each draw gets its own copy of the parameters, so the gradient of the sum is each draw's own derivative."""
    leaves = {name: torch.full((count,), value, dtype=torch.float64, requires_grad=True)
              for name, value in family.resolve(params).items()}
    with _GLOBAL_RNG, torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        z = family.torch_law(**leaves).rsample()
    grads = torch.autograd.grad(z.sum(), list(leaves.values()))
    order = torch.argsort(z.detach())
    return ImplicitDraws(z.detach()[order].numpy(),
                         {name: g[order].numpy() for name, g in zip(leaves, grads, strict=True)})


def cdf_gradients(family: ImplicitFamily, params: Mapping[str, float], z: np.ndarray) -> dict[str, np.ndarray]:
    """dz/dparam = -(dF/dparam)/q(z) at each z, with dF/dparam from central finite differences of scipy's CDF:
    an independent computation of what torch backpropagates."""
    resolved = family.resolve(params)
    density = family.scipy_law(**resolved).pdf(z)
    gradients = {}
    for name, value in resolved.items():
        step = FINITE_DIFFERENCE_STEP * value
        above = family.scipy_law(**{**resolved, name: value + step}).cdf(z)
        below = family.scipy_law(**{**resolved, name: value - step}).cdf(z)
        gradients[name] = -(above - below) / (2 * step) / density
    return gradients


@dataclass(frozen=True)
class Agreement:
    """How closely torch's implicit dz/dparam matches the CDF's over a set of draws (relative differences)."""

    median: float
    worst: float


def agreement(family: ImplicitFamily, params: Mapping[str, float], draws: ImplicitDraws) -> Agreement:
    """Torch's implicit gradients at `draws` against the CDF's, every parameter together. Typically they agree to
    1e-10; in a few regions torch switches to an approximation good to about 1e-3 (the page says so). Draws so far
    in a tail that their density underflows are left out."""
    reference = cdf_gradients(family, params, draws.z)
    differences = []
    for name, torch_values in draws.gradients.items():
        usable = np.isfinite(reference[name])
        scale = np.maximum(np.abs(reference[name][usable]), 1e-3)  # near a zero crossing: absolute, not relative
        differences.append(np.abs(torch_values[usable] - reference[name][usable]) / scale)
    everything = np.concatenate(differences)
    return Agreement(float(np.median(everything)), float(np.max(everything)))


@dataclass(frozen=True)
class ImplicitView:
    """What the Reparameterization page draws for an implicit family: draws with torch's gradients, and on a grid
    over the central 99% the exact density and the CDF's gradients."""

    draws: ImplicitDraws
    grid: np.ndarray  # (points,)
    density: np.ndarray  # (points,)
    cdf_gradients: dict[str, np.ndarray]  # name -> (points,)
    agreement: Agreement

    @property
    def density_ceiling(self) -> float:
        """Where the density plot's y axis stops: a U-shaped Beta's infinite spikes would squash the rest."""
        return float(min(self.density.max(), 4 * np.percentile(self.density, 75))) * 1.05


def implicit_view(family: ImplicitFamily, params: Mapping[str, float], count: int = 2000,
                  seed: int = 0) -> ImplicitView:
    law = family.scipy_law(**family.resolve(params))
    grid = law.ppf(np.linspace(0.005, 0.995, 300))
    draws = implicit_draws(family, params, count, seed)
    return ImplicitView(draws, grid, law.pdf(grid), cdf_gradients(family, params, grid),
                        agreement(family, params, draws))
