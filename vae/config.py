"""Configuration dataclasses: the single source of defaults for the CLI, the widgets and checkpoints."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LIKELIHOODS = ("bernoulli", "gaussian")
POSTERIOR_FAMILIES = ("gaussian", "laplace", "logistic", "student-t")  # vae.families implements each
POSTERIOR_LABELS = {"gaussian": "Gaussian", "laplace": "Laplace", "logistic": "Logistic", "student-t": "Student-t"}
ANALYTIC_KL_FAMILIES = ("gaussian", "laplace")  # torch.distributions.kl_divergence knows these pairs
ENCODER_GRADIENTS = ("pathwise", "score_function")
DEVICES = ("auto", "cpu", "cuda")
MAX_LATENT_DIM = 64
# Small models made by `python -m vae train` (commands in README.md), so every page works offline at once.
PRETRAINED_DIR = Path(__file__).with_name("pretrained")
PRETRAINED = {"digits": "digits, 8-D latent", "digits-2d": "digits, 2-D latent"}


class ConfigError(ValueError):
    """A configuration value out of range; the message is a sentence for the user."""


@dataclass(frozen=True)
class ModelConfig:
    """What is needed to rebuild a VAE: an MLP encoder and decoder around a latent of `latent_dim`."""

    input_shape: tuple[int, int] = (8, 8)
    hidden_sizes: tuple[int, ...] = (256,)
    latent_dim: int = 8
    likelihood: str = "bernoulli"  # p(x|z): Bernoulli on logits, or Gaussian with a learned scale
    posterior: str = "gaussian"  # family of q(z|x); p(z) is the same family at loc 0, scale 1

    @property
    def input_dim(self) -> int:
        return self.input_shape[0] * self.input_shape[1]

    def validate(self) -> None:
        if not 1 <= self.latent_dim <= MAX_LATENT_DIM:
            raise ConfigError(f"The latent dimension must be between 1 and {MAX_LATENT_DIM}, not {self.latent_dim}.")
        if self.likelihood not in LIKELIHOODS:
            raise ConfigError(f"Unknown likelihood {self.likelihood!r}; choose one of {', '.join(LIKELIHOODS)}.")
        if not self.hidden_sizes or min(self.hidden_sizes) < 1:
            raise ConfigError("The encoder and decoder need at least one hidden layer of positive width.")
        if self.posterior not in POSTERIOR_FAMILIES:
            raise ConfigError(
                f"Unknown posterior family {self.posterior!r}; choose one of {', '.join(POSTERIOR_FAMILIES)}."
            )
        if min(self.input_shape) < 1:
            raise ConfigError(f"The input shape {self.input_shape} is empty.")


@dataclass(frozen=True)
class TrainConfig:
    """A training run: data, model, optimiser (Adam) and the ELBO's beta weight with optional KL warm-up."""

    dataset: str = "digits"
    preset: str = "digits"
    model: ModelConfig = field(default_factory=ModelConfig)
    epochs: int = 150
    batch_size: int = 64
    lr: float = 3e-3
    beta: float = 1.0
    kl_warmup_epochs: float = 0.0  # beta ramps linearly from 0 over this many epochs
    encoder_gradient: str = "pathwise"  # how the encoder's gradient of E_q[log p(x|z)] is estimated
    seed: int = 0
    device: str = "auto"

    def validate(self) -> None:
        self.model.validate()
        checks = [
            (self.epochs >= 1, f"The number of epochs must be at least 1, not {self.epochs}."),
            (self.batch_size >= 1, f"The batch size must be at least 1, not {self.batch_size}."),
            (self.lr > 0, f"The learning rate must be positive, not {self.lr}."),
            (self.beta >= 0, f"Beta must be zero or positive, not {self.beta}."),
            (self.kl_warmup_epochs >= 0, "The KL warm-up cannot be negative."),
            (self.device in DEVICES, f"Unknown device {self.device!r}; choose one of {', '.join(DEVICES)}."),
        ]
        if self.encoder_gradient not in ENCODER_GRADIENTS:
            raise ConfigError(f"Unknown encoder gradient {self.encoder_gradient!r}; choose one of "
                              f"{', '.join(ENCODER_GRADIENTS)}.")
        if self.encoder_gradient == "score_function" and self.model.posterior not in ANALYTIC_KL_FAMILIES:
            raise ConfigError("Score-function training needs a posterior with an exact KL (gaussian or laplace).")
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with top-level fields or model fields (`latent_dim=...`) changed."""
        model_fields = {f.name for f in dataclasses.fields(ModelConfig)}
        model_changes = {k: changes.pop(k) for k in list(changes) if k in model_fields}
        model = dataclasses.replace(self.model, **model_changes)
        return dataclasses.replace(self, model=model, **changes)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Inverse of `asdict`; refuses unknown keys so a stale checkpoint fails loudly."""
        data = dict(data)
        model_data = dict(data.pop("model", {}))
        for key in ("input_shape", "hidden_sizes"):
            if key in model_data:
                model_data[key] = tuple(model_data[key])
        try:
            return cls(model=ModelConfig(**model_data), **data)
        except TypeError as error:
            raise ConfigError(f"The configuration has fields this version does not know: {error}.") from None


# Test loss (-ELBO, nats per example) per epoch of one published run of pytorch/examples' VAE on MNIST.
PYTORCH_EXAMPLES_TEST_LOSS = (127.3, 115.8, 112.2, 109.6, 108.5, 107.7, 107.1, 106.7, 106.0, 105.6)

PRESETS: dict[str, TrainConfig] = {
    # Readable digits within about 30 s on a 2-core CPU.
    "digits": TrainConfig(),
    # A 2-D latent, for pictures of the latent space.
    "digits-2d": TrainConfig(
        preset="digits-2d", model=ModelConfig(hidden_sizes=(256, 128), latent_dim=2), epochs=200
    ),
    # pytorch/examples' VAE: 784-400-20, Bernoulli, Adam 1e-3, batch 128, 10 epochs.
    "pytorch-examples-mnist": TrainConfig(
        dataset="mnist",
        preset="pytorch-examples-mnist",
        model=ModelConfig(input_shape=(28, 28), hidden_sizes=(400,), latent_dim=20),
        epochs=10,
        batch_size=128,
        lr=1e-3,
    ),
}

PRESET_LABELS = {
    "digits": "Digits (default, readable in ~30 s)",
    "digits-2d": "Digits, 2-D latent",
    "pytorch-examples-mnist": "pytorch/examples MNIST (784-400-20)",
}


def preset_config(name: str) -> TrainConfig:
    """The preset's configuration; `ConfigError` names the valid presets."""
    if name not in PRESETS:
        raise ConfigError(f"Unknown preset {name!r}; choose one of {', '.join(PRESETS)}.")
    return PRESETS[name]


def reference_test_loss(config: TrainConfig) -> tuple[float, ...] | None:
    """The published per-epoch test loss to draw as a reference, when this run reproduces that example."""
    reference = PRESETS["pytorch-examples-mnist"]
    # Seed, length and device do not change the expected curve; anything else does.
    comparable = dataclasses.replace(config, seed=reference.seed, epochs=reference.epochs, device=reference.device)
    return PYTORCH_EXAMPLES_TEST_LOSS if comparable == reference else None
