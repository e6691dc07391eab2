"""The ELBO, L(theta, phi) = E_q[log p_theta(x|z)] - KL(q_phi(z|x) || p(z)), term by term, in nats per example."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from vae.families import posterior_kl, posterior_rsample
from vae.model import VAE


@dataclass(frozen=True)
class ElboTerms:
    """Per-example terms (B,): the ELBO is `reconstruction - kl`."""

    reconstruction: torch.Tensor  # single-sample Monte Carlo estimate of E_q[log p(x|z)]
    kl: torch.Tensor  # KL(q(z|x) || p(z)): analytic for Gaussian and Laplace posteriors, else Monte Carlo

    @property
    def elbo(self) -> torch.Tensor:
        return self.reconstruction - self.kl


def elbo_terms(model: VAE, x: torch.Tensor, generator: torch.Generator | None = None) -> ElboTerms:
    """One reparameterized draw z ~ q(z|x) per example; x (B, D) in [0, 1].

    The KL is analytic where torch.distributions has it (Gaussian, Laplace) and otherwise the single-sample
    Monte Carlo estimate log q(z|x) - log p(z) at that same z (Kingma & Welling 2014, eqs. 6-7).
    """
    family = model.config.posterior
    loc, scale = model.encode(x)  # (B, K) each
    z = posterior_rsample(family, loc, scale, generator)  # (B, K): z = g(loc, scale, noise)
    reconstruction = model.likelihood(model.decode(z)).log_prob(x)  # (B,)
    return ElboTerms(reconstruction=reconstruction, kl=posterior_kl(family, loc, scale, z))


def training_loss(terms: ElboTerms, beta: float = 1.0) -> torch.Tensor:
    """The quantity SGD minimises: -(E_q[log p(x|z)] - beta * KL), averaged over the minibatch."""
    return -(terms.reconstruction - beta * terms.kl).mean()
