"""The ELBO, L(theta, phi) = E_q[log p_theta(x|z)] - KL(q_phi(z|x) || p(z)), term by term, in nats per example."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from vae.categorical import categorical_terms
from vae.estimators import score_function_surrogate
from vae.families import posterior_family, posterior_params, posterior_rsample
from vae.kl import posterior_kl_per_dimension
from vae.model import VAE


@dataclass(frozen=True)
class ElboTerms:
    """Per-example terms (B,): the ELBO is `reconstruction - kl`."""

    reconstruction: torch.Tensor  # single-sample Monte Carlo estimate of E_q[log p(x|z)]
    kl: torch.Tensor  # KL(q(z|x) || p(z)): analytic for Gaussian and Laplace posteriors, else Monte Carlo
    score_surrogate: torch.Tensor | None = None  # (log p(x|z) - b) log q(z|x): its gradient is the REINFORCE estimate
    kl_per_dimension: torch.Tensor | None = None  # (B, K), summing to `kl`: what free bits act on

    @property
    def elbo(self) -> torch.Tensor:
        return self.reconstruction - self.kl


def elbo_terms(
    model: VAE,
    x: torch.Tensor,
    generator: torch.Generator | None = None,
    encoder_gradient: str = "pathwise",
    baseline: torch.Tensor | float = 0.0,
    temperature: float | None = None,
) -> ElboTerms:
    """One draw z ~ q(z|x) per example; x (B, D) in [0, 1].

    The KL is analytic where torch.distributions has it (Gaussian, Laplace) and otherwise the single-sample
    Monte Carlo estimate log q(z|x) - log p(z) at that same z (Kingma & Welling 2014, eqs. 6-7).
    With encoder_gradient="score_function" the draw is detached, as if there were no trick: the encoder then
    learns from E_q[log p(x|z)] only through the score, (log p(x|z) - baseline) * d/dphi log q(z|x).
    A categorical posterior (vae.categorical) relaxes its draw at `temperature` while training; None decodes the
    one-hot draw (held-out numbers).
    """
    if model.config.categorical:
        reconstruction, kl_per_variable, surrogate = categorical_terms(model, x, generator, encoder_gradient,
                                                                       baseline, temperature)
        return ElboTerms(reconstruction, kl_per_variable.sum(-1), surrogate, kl_per_variable)
    family = model.config.posterior
    loc, scale = model.encode(x)  # (B, K) each
    z = posterior_rsample(family, loc, scale, generator)  # (B, K): z = g(loc, scale, noise)
    if encoder_gradient == "score_function":
        z = z.detach()  # the sampling step blocks the gradient
    reconstruction = model.likelihood(model.decode(z)).log_prob(x)  # (B,)
    surrogate = None
    if encoder_gradient == "score_function":
        log_q = posterior_family(family).log_prob(z, posterior_params(family, loc, scale)).sum(-1)  # (B,)
        surrogate = score_function_surrogate(log_q, reconstruction, baseline)  # (B,)
    kl_per_dimension = posterior_kl_per_dimension(family, loc, scale, z)  # (B, K)
    return ElboTerms(reconstruction, kl_per_dimension.sum(-1), surrogate, kl_per_dimension)


def training_loss(terms: ElboTerms, beta: float = 1.0, free_bits: float = 0.0) -> torch.Tensor:
    """The quantity SGD minimises: -(E_q[log p(x|z)] - beta * KL), averaged over the minibatch. A score-function
    surrogate adds its gradient and nothing to the value (s - s.detach() is zero).

    With `free_bits` λ > 0 (Kingma et al. 2016, eq. 15) the KL term is sum_k max(λ, mean over the minibatch of
    KL_k): a latent dimension whose KL is below λ nats costs a constant, so nothing pushes it to carry nothing."""
    if free_bits > 0:
        kl = torch.clamp(terms.kl_per_dimension.mean(0), min=free_bits).sum()  # one number for the minibatch
        objective = terms.reconstruction.mean() - beta * kl
    else:
        objective = (terms.reconstruction - beta * terms.kl).mean()
    if terms.score_surrogate is not None:
        objective = objective + (terms.score_surrogate - terms.score_surrogate.detach()).mean()
    return -objective
