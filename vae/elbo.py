"""The ELBO, L(theta, phi) = E_q[log p_theta(x|z)] - KL(q_phi(z|x) || p(z)), term by term, in nats per example."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.distributions import Normal, kl_divergence

from vae.model import VAE


@dataclass(frozen=True)
class ElboTerms:
    """Per-example terms (B,): the ELBO is `reconstruction - kl`."""

    reconstruction: torch.Tensor  # single-sample Monte Carlo estimate of E_q[log p(x|z)]
    kl: torch.Tensor  # KL(q(z|x) || p(z)), analytic for the Gaussian

    @property
    def elbo(self) -> torch.Tensor:
        return self.reconstruction - self.kl


def reparameterized_sample(
    loc: torch.Tensor, scale: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """z = mu + sigma * eps, eps ~ N(0, I): the randomness enters from outside, so dz/dmu and dz/dsigma exist."""
    eps = torch.randn(loc.shape, generator=generator, device=loc.device, dtype=loc.dtype)  # (B, K)
    return loc + scale * eps


def gaussian_kl(loc: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """KL(N(loc, scale^2) || N(0, 1)) summed over latent dimensions: (B, K) -> (B,)."""
    q = Normal(loc, scale, validate_args=False)  # validation would sync with the GPU every step
    prior = Normal(torch.zeros_like(loc), torch.ones_like(scale), validate_args=False)
    return kl_divergence(q, prior).sum(-1)


def elbo_terms(model: VAE, x: torch.Tensor, generator: torch.Generator | None = None) -> ElboTerms:
    """One reparameterized draw of z per example; x (B, D) in [0, 1]."""
    loc, scale = model.encode(x)  # (B, K) each
    z = reparameterized_sample(loc, scale, generator)  # (B, K)
    reconstruction = model.likelihood(model.decode(z)).log_prob(x)  # (B,)
    return ElboTerms(reconstruction=reconstruction, kl=gaussian_kl(loc, scale))


def training_loss(terms: ElboTerms, beta: float = 1.0) -> torch.Tensor:
    """The quantity SGD minimises: -(E_q[log p(x|z)] - beta * KL), averaged over the minibatch."""
    return -(terms.reconstruction - beta * terms.kl).mean()
