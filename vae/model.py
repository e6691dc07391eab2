"""The VAE: an MLP encoder for q_phi(z|x) = family(loc(x), scale(x)) and an MLP decoder p_theta(x|z)."""

from __future__ import annotations

import threading

import numpy as np
import torch
from torch import nn
from torch.distributions import Bernoulli, Independent, Normal

from vae.config import ModelConfig
from vae.discrete import one_hot_codes
from vae.families import posterior_mean, posterior_rsample

# nn.Linear initialises from the global RNG, which every thread shares: build models one at a time.
_INIT_LOCK = threading.Lock()


def mlp(sizes: list[int]) -> nn.Sequential:
    """Linear layers of the given widths with ReLU between them (none after the last)."""
    layers: list[nn.Module] = []
    for width_in, width_out in zip(sizes[:-1], sizes[1:], strict=True):
        layers += [nn.Linear(width_in, width_out), nn.ReLU()]
    return nn.Sequential(*layers[:-1])


class VAE(nn.Module):
    """Encoder -> (loc, scale) of q(z|x) -> z -> decoder -> parameters of p(x|z), as in pytorch/examples' VAE.
    q(z|x) is a Gaussian by default, or another family of vae.families (config.posterior). A categorical
    posterior has no loc and scale: the encoder gives logits (`encode_logits`) and vae.categorical draws z."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        config.validate()
        self.config = config
        hidden = list(config.hidden_sizes)
        self.encoder = nn.Sequential(mlp([config.input_dim, *hidden]), nn.ReLU())
        if config.categorical:
            self.to_logits = nn.Linear(hidden[-1], config.code_size)  # (N variables x K categories)
        else:
            self.to_loc = nn.Linear(hidden[-1], config.latent_dim)
            # log sigma^2, as in the reference example: scale = exp(log_var / 2) is positive by construction.
            self.to_log_var = nn.Linear(hidden[-1], config.latent_dim)
        self.decoder = mlp([config.code_size, *reversed(hidden), config.input_dim])
        if config.likelihood == "gaussian":
            self.log_scale_x = nn.Parameter(torch.zeros(()))  # one learned pixel noise level

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, D) -> loc (B, K), scale (B, K) of q(z|x)."""
        if self.config.categorical:
            raise TypeError("A categorical posterior has logits, not a location and scale: use encode_logits.")
        hidden = self.encoder(x)  # (B, H)
        return self.to_loc(hidden), torch.exp(0.5 * self.to_log_var(hidden))

    def encode_logits(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, D) -> the logits (B, N, K) of N independent categoricals (a categorical posterior)."""
        return self.to_logits(self.encoder(x)).unflatten(-1, (self.config.latent_dim, self.config.categories))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The encoder (so torch.func.functional_call can swap its weights); the decoder is called by name."""
        return self.encode(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, K), or one-hot codes (B, N, K) -> decoder output (B, D): Bernoulli logits, or the Gaussian mean
        before a sigmoid."""
        return self.decoder(z.flatten(-2) if self.config.categorical else z)

    def likelihood(self, decoded: torch.Tensor) -> torch.distributions.Distribution:
        """p(x|z) as a distribution over the D pixels of each example."""
        # No argument validation: it syncs with the device every call, and Bernoulli's would refuse grey pixels
        # (its log_prob is the cross-entropy, which is what we want for x in [0, 1]).
        if self.config.likelihood == "bernoulli":
            return Independent(Bernoulli(logits=decoded, validate_args=False), 1)
        return Independent(Normal(torch.sigmoid(decoded), self.log_scale_x.exp(), validate_args=False), 1)

    def mean_image(self, decoded: torch.Tensor) -> torch.Tensor:
        """The expected pixel values under p(x|z), in [0, 1], for pictures."""
        return torch.sigmoid(decoded)


def build_model(config: ModelConfig, seed: int) -> VAE:
    """A freshly initialised VAE; the same seed gives the same weights even with other threads training."""
    with _INIT_LOCK, torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return VAE(config)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def reconstruct(model: VAE, x: torch.Tensor) -> torch.Tensor:
    """Decode each x from its posterior mean E[z|x] (mu(x); alpha/beta for a Gamma; a categorical posterior: each
    variable's likeliest category):
    (B, D) -> (B, D) pixel means, noise-free for pictures."""
    if model.config.categorical:
        logits = model.encode_logits(x)  # (B, N, K)
        return model.mean_image(model.decode(one_hot_codes(logits.argmax(-1), logits.shape[-1], logits.dtype)))
    loc, scale = model.encode(x)
    return model.mean_image(model.decode(posterior_mean(model.config.posterior, loc, scale)))


@torch.no_grad()
def sample_prior(model: VAE, count: int, seed: int = 0) -> torch.Tensor:
    """Decode `count` fixed draws z ~ p(z) (the posterior's family at loc 0, scale 1; N(0, I) by default):
    the same seed gives the same z, so a grid of samples evolves smoothly as the model trains."""
    generator = torch.Generator().manual_seed(seed)
    if model.config.categorical:  # uniform categories, one per variable
        shape = (count, model.config.latent_dim)
        choices = torch.randint(model.config.categories, shape, generator=generator)
        return model.mean_image(model.decode(one_hot_codes(choices, model.config.categories)))
    zeros = torch.zeros(count, model.config.latent_dim)  # (count, K)
    z = posterior_rsample(model.config.posterior, zeros, torch.ones_like(zeros), generator)
    return model.mean_image(model.decode(z))


@torch.no_grad()
def reconstruction_pairs(model: VAE, images: np.ndarray) -> np.ndarray:
    """Held-out `images` (N, D) over their reconstructions from mu(x): (2N, H, W) in [0, 1], for a picture."""
    x = torch.as_tensor(images, dtype=torch.float32)  # (N, D)
    return torch.cat([x, reconstruct(model, x)]).reshape(-1, *model.config.input_shape).numpy()


@torch.no_grad()
def prior_pictures(model: VAE, count: int) -> np.ndarray:
    """`count` decoded fixed prior draws (count, H, W) in [0, 1]."""
    return sample_prior(model, count).reshape(-1, *model.config.input_shape).numpy()


def progress_pictures(model: VAE, images: np.ndarray, samples: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """What the Train page shows of a model: `reconstruction_pairs` of `images`, and `samples` prior pictures."""
    return reconstruction_pairs(model, images), prior_pictures(model, samples)
