"""The weak derivatives behind the measure-valued gradient (Mohamed et al. 2020, sec. 6), for the posterior
families: each derivative of the density in a parameter, written as a constant times a difference of two laws,

    ∂/∂θ q(z; θ) = c_θ (q⁺_θ(z) - q⁻_θ(z)),   so   ∂/∂θ E_q[f] = c_θ (E_{q⁺}[f] - E_{q⁻}[f]).

For q = N(loc, scale²) (the paper's Table 1), with ε ~ N(0, 1):

    loc:    c = 1 / (scale √(2π)),  q± = loc ± scale W,   W ~ Weibull(scale √2, shape 2), i.e. a Rayleigh;
    scale:  c = 1 / scale,          q⁺ = loc + scale M,    M ~ double-sided Maxwell (density ε² φ(ε)),
                                    q⁻ = loc + scale ε,    q itself.

The same holds for every symmetric, unimodal location-scale family with standard density p: for loc, p's
derivative -p'(x) on x > 0 normalised by p(0), c = p(0) / scale; for scale, the density -x p'(x), c = 1 / scale.
So with r(x) = p(x) / p(0) and its inverse R on x >= 0, both laws are one uniform v away:

    W = R(v)                  (P(W > x) = r(x));
    M = sign(ε) R(v r(ε))     (given ε: |M| has density -r'(m)/r(ε) on m > |ε|).

The second draw is the coupling the paper recommends for low variance: M is built from the ε the negative side
uses, and (M, ε) is then distributed as (M, M u) with u ~ Uniform(0, 1), the classic coupling of the Maxwell
and the Gaussian; the two sides of each difference share their randomness, as do loc ± scale W.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from vae.families import POSTERIOR_DF

Tensor = torch.Tensor


@dataclass(frozen=True)
class WeakDerivative:
    """A symmetric location-scale family's weak derivatives, through its standard density p: p(0) (`peak`),
    log r(x) = log p(x)/p(0) (`log_ratio`) and the x >= 0 with log r(x) = ℓ (`radius`)."""

    peak: float
    log_ratio: Callable[[Tensor], Tensor]
    radius: Callable[[Tensor], Tensor]

    def location_part(self, log_v: Tensor) -> Tensor:
        """W >= 0 with density -p'(w)/p(0) (for the Gaussian a Rayleigh: √(-2 log v)), from log v, v uniform."""
        return self.radius(log_v)

    def scale_part(self, log_v: Tensor, eps: Tensor) -> Tensor:
        """M with density -m p'(m) (for the Gaussian the double-sided Maxwell), coupled with the draw ε of p:
        given ε, |M| = R(v r(ε)) >= |ε| with M's sign, so ε is uniform between 0 and M."""
        sign = torch.where(eps >= 0, 1.0, -1.0).to(eps.dtype)
        return sign * self.radius(log_v + self.log_ratio(eps))


def _student_t(nu: float) -> WeakDerivative:
    """p(x) ∝ (1 + x²/ν)^(-(ν+1)/2)."""
    peak = math.exp(math.lgamma((nu + 1) / 2) - math.lgamma(nu / 2)) / math.sqrt(nu * math.pi)
    return WeakDerivative(peak, lambda x: -(nu + 1) / 2 * torch.log1p(x**2 / nu),
                          lambda ell: torch.sqrt(nu * torch.expm1(-2 * ell / (nu + 1))))


WEAK_DERIVATIVES: dict[str, WeakDerivative] = {
    "gaussian": WeakDerivative(1 / math.sqrt(2 * math.pi), lambda x: -(x**2) / 2, lambda ell: torch.sqrt(-2 * ell)),
    "laplace": WeakDerivative(0.5, lambda x: -x.abs(), lambda ell: -ell),
    # p(x) = e^-x / (1 + e^-x)², r(x) = sech²(x/2), so R(ℓ) = 2 arccosh(e^(-ℓ/2)).
    "logistic": WeakDerivative(0.25, lambda x: math.log(4.0) - x.abs() - 2 * torch.log1p(torch.exp(-x.abs())),
                               lambda ell: 2 * torch.acosh(torch.exp(-ell / 2))),
    "student-t": _student_t(POSTERIOR_DF),
}
