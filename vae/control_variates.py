"""Control variates of the score-function estimator beyond a constant baseline: the delta method (Mohamed et al.
2020, sec. 7.4; Paisley et al. 2012).

A control variate is a function h whose expected gradient is known. The estimator

    (f(z) - β h(z)) ∇θ log q(z; θ) + β ∇θ E_q[h]

is unbiased for any β that does not depend on the draws it multiplies, and the closer β h follows f, the lower its
variance. A constant h = b is the baseline of `vae.baselines` (∇θ E[b] = 0). The delta method takes f's Taylor
expansion about the mean, the expansion point held fixed at loc (it is not differentiated):

    linear     h(z) = f(loc) + f'(loc) (z - loc)                  ∇_loc E[h] = f'(loc),  ∇_scale E[h] = 0
    quadratic  h(z) = ... + ½ f''(loc) (z - loc)²                 ∇_scale E[h] = f''(loc) scale Var[ε]

(E[(z - loc)²] = scale² Var[ε], ε the family's standard draw). For a vector z, f' is the gradient and f'' the
diagonal of the Hessian: h need not be f's best quadratic, only one whose expectation is known. f is
differentiated at loc only, once per batch of estimates; where it has a kink or a jump there, f' is what autograd
says (0 for |z - k| at k and for a step), and the estimator stays unbiased whatever h is.

β: 1 (the plain delta method), or the variance-minimising β* = Cov(f s, h s) / Var(h s) for each parameter
element's score s, estimated from an independent pilot batch of `PILOT_SAMPLES` draws taken after the main draws,
as the optimal baseline's is: still unbiased.

`VARIANCE_REDUCTIONS` lists every choice of the estimators' `baseline` argument: a constant baseline or one of
these control variates.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from vae.baselines import BASELINES, PILOT_SAMPLES
from vae.families import prior_law


@dataclass(frozen=True)
class DeltaMethod:
    """h = f's Taylor expansion of `order` 1 or 2 at loc, scaled by β = 1 or by the pilot's β*."""

    order: int
    optimal_coefficient: bool = False


CONTROL_VARIATES: dict[str, DeltaMethod] = {
    "delta": DeltaMethod(1),
    "delta_optimal": DeltaMethod(1, optimal_coefficient=True),
    "delta_quadratic": DeltaMethod(2),
}
VARIANCE_REDUCTIONS = (*BASELINES, *CONTROL_VARIATES)

# A pilot: a number of fresh draws P -> z (1, P, *shape), costs (1, P, *shape[:n], 1, ...), scores {"loc", "scale"}.
Pilot = Callable[[int], tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]]


def check_variance_reduction(name: str) -> None:
    """A ValueError whose message lists the choices, for a name that is not one of `VARIANCE_REDUCTIONS`."""
    if name not in VARIANCE_REDUCTIONS:
        raise ValueError(f"Unknown baseline {name!r}; choose one of {', '.join(VARIANCE_REDUCTIONS)}.")


def base_variance(family: str) -> float:
    """Var[ε] of the family's standard member (1 for the Gaussian, 2 for the Laplace, 3 for Student-t(3))."""
    return float(prior_law(family).var())


@dataclass(frozen=True)
class Expansion:
    """f's Taylor coefficients at loc: `value` f(loc) per problem (*shape[:n]), `gradient` and `curvature` (the
    Hessian's diagonal) per element (*shape); `order` 1 leaves the curvature at zero."""

    loc: torch.Tensor
    value: torch.Tensor
    gradient: torch.Tensor
    curvature: torch.Tensor

    def at(self, z: torch.Tensor) -> torch.Tensor:
        """h(z) for draws (R, K, *shape), one value per problem, shaped as the score weights:
        (R, K, *shape[:n], 1, ..., 1)."""
        step = z - self.loc  # (R, K, *shape)
        per_element = self.gradient * step + 0.5 * self.curvature * step**2
        trailing = tuple(range(2 + self.value.dim(), z.dim()))  # the elements of one problem
        if trailing:  # (torch's sum over no dimensions would sum over all of them)
            per_element = per_element.sum(trailing, keepdim=True)
        return self.value.reshape(self.value.shape + (1,) * len(trailing)) + per_element

    def expected_gradient(self, scale: torch.Tensor, variance: float) -> dict[str, torch.Tensor]:
        """∇θ E[h] per element, the expansion point held fixed: f'(loc) and f''(loc) scale Var[ε]."""
        return {"loc": self.gradient, "scale": self.curvature * scale * variance}


def control_variate_terms(method: DeltaMethod, expansion: Expansion, z: torch.Tensor, scale: torch.Tensor,
                          variance: float, pilot: Pilot) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """What the score function subtracts from f and adds back: ({"loc": β h(z), "scale": ...}, broadcastable to
    the scores (R, K, *shape)) and ({"loc": β ∇E[h], ...}, (*shape) each)."""
    coefficient = optimal_coefficients(expansion, pilot) if method.optimal_coefficient else {"loc": 1.0, "scale": 1.0}
    h = expansion.at(z)
    known = expansion.expected_gradient(scale, variance)
    return ({name: beta * h for name, beta in coefficient.items()},
            {name: beta * known[name] for name, beta in coefficient.items()})


def optimal_coefficients(expansion: Expansion, pilot: Pilot) -> dict[str, torch.Tensor]:
    """β* = Cov(f s, h s) / Var(h s) per parameter element (0 where h s does not vary), from the pilot batch."""
    z, costs, scores = pilot(PILOT_SAMPLES)
    h = expansion.at(z)
    coefficients = {}
    for name, s in scores.items():
        fs, hs = costs * s, h * s  # (1, P, *shape)
        fs, hs = fs - fs.mean(1, keepdim=True), hs - hs.mean(1, keepdim=True)
        spread = (hs**2).sum((0, 1))
        varies = spread > 0
        coefficients[name] = torch.where(varies, (fs * hs).sum((0, 1)) / torch.where(varies, spread, 1.0), 0.0)
    return coefficients
