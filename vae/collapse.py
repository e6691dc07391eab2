"""Posterior collapse and its remedies, side by side: one VAE that collapses at β = 1, trained again with each
remedy a course teaches, and how many latent dimensions each keeps active.

The base run is the digits preset with a 16-dimensional latent for 50 epochs: at β = 1 most of its dimensions
end with q(z_k|x) = p(z_k) (seed 0: 5 of 16 stay active). The remedies are the training settings of vae.config:
a KL warm-up, cyclical annealing (Fu et al. 2019) and free bits (Kingma et al. 2016).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vae.config import TrainConfig, preset_config
from vae.latent import latent_usage
from vae.model import VAE

COLLAPSING = preset_config("digits").replace(latent_dim=16, epochs=50)
REMEDIES: dict[str, dict[str, float]] = {  # name -> the settings that differ from COLLAPSING
    "none (β = 1)": {},
    "KL warm-up, 25 epochs": {"kl_warmup_epochs": 25.0},
    "4 KL cycles": {"kl_cycles": 4},
    "free bits, 0.5 nats": {"free_bits": 0.5},
}


def remedy_configs(base: TrainConfig = COLLAPSING) -> dict[str, TrainConfig]:
    """One config per remedy, all from the same seed and weights as `base`."""
    return {name: base.replace(**settings) for name, settings in REMEDIES.items()}


@dataclass(frozen=True)
class RemedyResult:
    active: int  # latent dimensions whose posterior mean varies over the data (vae.latent.active_units)
    dimensions: int
    kl: float  # nats per example, summed over dimensions


def remedy_result(model: VAE, x_test: np.ndarray) -> RemedyResult:
    """How many dimensions `model` uses on the held-out images."""
    usage = latent_usage(model, x_test)
    return RemedyResult(usage.active_count, len(usage.active), float(usage.kl.sum()))
