"""KL(q(z|x) || p(z)) of a VAE's posterior q = family(loc(x), scale(x)) against its prior p = family(0, 1).

The ELBO's second term (Kingma & Welling 2014, eq. 7 where the KL has a closed form, eq. 6 where it does not):
torch.distributions' `kl_divergence` where torch registers the pair, else the single-sample Monte Carlo estimate
log q(z|x) - log p(z) at the reparameterized draw z the reconstruction term uses.
"""

from __future__ import annotations

import torch
from torch.distributions import kl_divergence

from vae.config import POSTERIOR_FAMILIES
from vae.families import posterior_family, posterior_params


def _prior_params(family_name: str, like: torch.Tensor) -> dict[str, torch.Tensor | float]:
    """p(z) = the family at loc 0, scale 1 (nu = POSTERIOR_DF for the Student-t), shaped like the posterior."""
    return posterior_params(family_name, torch.zeros_like(like), torch.ones_like(like))


def _has_closed_form(family_name: str) -> bool:
    """Whether torch's KL registry computes KL(family(0.5, 2) || family(0, 1)).

    A probe rather than a lookup of the classes in `torch.distributions.kl._KL_REGISTRY`: the registry's entry for
    two TransformedDistributions (the Logistic) only handles equal transforms, and raises for any other pair.
    """
    family = posterior_family(family_name)
    q = family.torch_dist(posterior_params(family_name, torch.tensor(0.5), torch.tensor(2.0)))
    try:
        kl_divergence(q, family.torch_dist(_prior_params(family_name, torch.tensor(0.0))))
    except NotImplementedError:
        return False
    return True


# The posterior families whose KL is exact (torch.distributions registers the pair): ("gaussian", "laplace").
ANALYTIC_KL_FAMILIES: tuple[str, ...] = tuple(name for name in POSTERIOR_FAMILIES if _has_closed_form(name))


def monte_carlo_kl(family_name: str, loc: torch.Tensor, scale: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Single-sample estimate log q(z|x) - log p(z) at a reparameterized z ~ q, summed over latents: (B, K) -> (B,).

    Unbiased for KL(q || p) and differentiable through z (Kingma & Welling 2014, eq. 6, "SGVB estimator A").
    """
    return _monte_carlo_kl_per_dimension(family_name, loc, scale, z).sum(-1)


def _monte_carlo_kl_per_dimension(family_name: str, loc: torch.Tensor, scale: torch.Tensor,
                                  z: torch.Tensor) -> torch.Tensor:
    family = posterior_family(family_name)
    q = posterior_params(family_name, loc, scale)
    return family.log_prob(z, q) - family.log_prob(z, _prior_params(family_name, loc))  # (B, K)


def posterior_kl(
    family_name: str, loc: torch.Tensor, scale: torch.Tensor, z: torch.Tensor | None = None
) -> torch.Tensor:
    """KL(q(z|x) || p(z)) summed over latents: (B, K) -> (B,). See `posterior_kl_per_dimension`."""
    return posterior_kl_per_dimension(family_name, loc, scale, z).sum(-1)


def posterior_kl_per_dimension(
    family_name: str, loc: torch.Tensor, scale: torch.Tensor, z: torch.Tensor | None = None
) -> torch.Tensor:
    """KL(q(z|x) || p(z)) with q = family(loc, scale) and p = family(0, 1), per latent dimension: (B, K).

    Analytic via `torch.distributions.kl_divergence` for the families in ANALYTIC_KL_FAMILIES (z is ignored
    there); otherwise the Monte Carlo estimate log q(z|x) - log p(z) at the given reparameterized sample z, which
    is then required.
    """
    q_params = posterior_params(family_name, loc, scale)  # also rejects a non-posterior family
    if family_name in ANALYTIC_KL_FAMILIES:
        family = posterior_family(family_name)
        p = family.torch_dist(_prior_params(family_name, loc))
        return kl_divergence(family.torch_dist(q_params), p)  # (B, K)
    if z is None:
        raise ValueError(f"KL for a {family_name!r} posterior has no closed form here: pass a sample z ~ q")
    return _monte_carlo_kl_per_dimension(family_name, loc, scale, z)
