"""A VAE with discrete latents: N categorical variables of K categories each, under a uniform prior (Jang, Gu &
Poole 2017; Maddison, Mnih & Teh 2017). The encoder gives logits (B, N, K); z is a one-hot code per variable
(or its Gumbel-softmax relaxation while training); the decoder reads the N codes side by side.

The KL to the uniform prior is exact, a sum over the categories: KL(q || U) = sum_k q_k log(q_k K). The encoder's
gradient of E_q[log p(x|z)] comes one of three ways (`EncoderGradient`):

* pathwise: through the relaxed sample y = softmax((logits + G) / tau) fed to the decoder (biased, low variance);
* straight_through: the one-hot z forwards, the relaxed sample's gradient backwards (biased);
* score_function: the one-hot z, detached, and (log p(x|z) - b) * d log q(z|x) (unbiased, noisy).

The temperature falls geometrically from `temperature` to `final_temperature` over the run. Held-out numbers
always decode the one-hot z: the ELBO of the discrete model, not of its relaxation.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from vae.config import TrainConfig
from vae.discrete import gumbel_max, gumbel_noise, gumbel_softmax, one_hot_codes, straight_through
from vae.estimators import score_function_surrogate
from vae.model import VAE


def temperature_at(config: TrainConfig, step: int, total_steps: int) -> float:
    """tau after `step` of `total_steps`: geometric from the start value to the final one, then held."""
    start, end = config.temperature, config.final_temperature
    fraction = min(1.0, step / total_steps) if total_steps > 0 else 1.0
    return start * (end / start) ** fraction


def kl_to_uniform(logits: torch.Tensor) -> torch.Tensor:
    """KL(q || Uniform(K)) per variable, exactly: (B, N, K) logits -> (B, N) nats."""
    log_q = torch.log_softmax(logits, dim=-1)
    return (log_q.exp() * (log_q + math.log(logits.shape[-1]))).sum(-1)


def categorical_terms(model: VAE, x: torch.Tensor, generator: torch.Generator | None, encoder_gradient: str,
                      baseline: torch.Tensor | float, temperature: float | None
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """One draw per variable and example: the reconstruction term (B,), the KL per variable (B, N) and, for the
    score function, its surrogate (B,). `temperature` None (evaluation) decodes the one-hot draw."""
    logits = model.encode_logits(x)  # (B, N, K)
    gumbel = gumbel_noise(tuple(logits.shape), generator, logits.dtype, logits.device)
    surrogate = None
    if temperature is None or encoder_gradient == "score_function":
        z = gumbel_max(logits.detach(), gumbel)  # the exact draw; no gradient flows through argmax
    elif encoder_gradient == "straight_through":
        z = straight_through(logits, gumbel, temperature)
    else:
        z = gumbel_softmax(logits, gumbel, temperature)
    reconstruction = model.likelihood(model.decode(z)).log_prob(x)  # (B,)
    if encoder_gradient == "score_function" and temperature is not None:
        log_q = (torch.log_softmax(logits, dim=-1) * z).sum((-1, -2))  # (B,)
        surrogate = score_function_surrogate(log_q, reconstruction, baseline)
    return reconstruction, kl_to_uniform(logits), surrogate


@torch.no_grad()
def decode_categories(model: VAE, choices: list[int]) -> torch.Tensor:
    """The image (D,) in [0, 1] that the decoder draws for one category per latent variable."""
    codes = one_hot_codes(torch.as_tensor(choices), model.config.categories)  # (N, K)
    return model.mean_image(model.decode(codes.unsqueeze(0)))[0]


@torch.no_grad()
def likeliest_categories(model: VAE, x: np.ndarray) -> list[int]:
    """Each latent variable's likeliest category for one image x (D,): where the Latent page's pickers start."""
    return model.encode_logits(torch.as_tensor(x).unsqueeze(0))[0].argmax(-1).tolist()


@torch.no_grad()
def kl_per_variable(model: VAE, x: torch.Tensor | np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """The mean over the images x (N, D) of each latent variable's exact KL to the uniform prior, (latent_dim,):
    a variable whose KL is near 0 gives every image the same categories (it collapsed)."""
    x = torch.as_tensor(x)
    totals = sum(kl_to_uniform(model.encode_logits(x[i : i + batch_size])).sum(0)
                 for i in range(0, len(x), batch_size))
    return (totals / len(x)).numpy()
