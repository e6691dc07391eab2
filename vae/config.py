"""Configuration dataclasses: the single source of every setting, for the CLI, the widgets and checkpoints.

A field a person may set is declared once, with `setting(...)`: its default, its type (a `StrEnum` where there
are choices) and a `Setting` in the field's metadata with the wording and range a widget or flag needs.
`user_settings()` reads them back; the CLI's flags and the Train page's widget keys are made from it, and the
checkpoint metadata is the dataclass as JSON. Choices are `StrEnum`s whose values are the strings older
checkpoints hold, so those still load.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal


class Preset(StrEnum):
    DIGITS = "digits"
    DIGITS_2D = "digits-2d"
    PYTORCH_EXAMPLES_MNIST = "pytorch-examples-mnist"


class Likelihood(StrEnum):
    BERNOULLI = "bernoulli"  # on the decoder's logits
    GAUSSIAN = "gaussian"  # with a learned scale


class PosteriorFamily(StrEnum):  # vae.families implements each
    GAUSSIAN = "gaussian"
    LAPLACE = "laplace"
    LOGISTIC = "logistic"
    STUDENT_T = "student-t"


class EncoderGradient(StrEnum):
    PATHWISE = "pathwise"  # through z = loc + scale * noise: the reparameterization trick
    SCORE_FUNCTION = "score_function"  # as if there were no trick


class Device(StrEnum):
    AUTO = "auto"  # the GPU when there is one
    CPU = "cpu"
    CUDA = "cuda"


POSTERIOR_FAMILIES = tuple(PosteriorFamily)  # for the modules that loop over the families
MAX_LATENT_DIM = 64
# Small models made by `python -m vae train` (commands in README.md), so every page works offline at once.
PRETRAINED_DIR = Path(__file__).with_name("pretrained")
PRETRAINED = {"digits": "digits, 8-D latent", "digits-2d": "digits, 2-D latent"}


def pretrained_path(name: str) -> Path:
    """Where the bundled checkpoint `name` (a key of PRETRAINED) lies."""
    return PRETRAINED_DIR / f"{name}.safetensors"


class ConfigError(ValueError):
    """A configuration value out of range; the message is a sentence for the user."""


@dataclass(frozen=True)
class Setting:
    """How a person sets one config field: the Train page's widget and the CLI's flag `--field-name` read it."""

    label: str  # the widget's label, and the flag's help when `help` is empty
    help: str = ""  # the widget's tooltip and the flag's help
    widget: Literal["number", "slider", "select"] | None = "number"  # None: only the CLI sets it
    low: float | None = None  # the range a widget offers; validate() holds what is allowed at all
    high: float | None = None
    step: float | None = None
    format: str | None = None
    choice_labels: Mapping[str, str] = field(default_factory=dict)  # a widget's names for the choices


_SETTING = "setting"  # the metadata key


def setting(default: Any, label: str, **how: Any) -> Any:
    """A dataclass field that a person may set: its default and how a widget or a flag presents it."""
    return field(default=default, metadata={_SETTING: Setting(label, **how)})


@dataclass(frozen=True)
class UserSetting:
    """One setting as the CLI and the Train page see it: a field of `TrainConfig` or of its `ModelConfig`."""

    name: str
    type: Any  # the field's resolved annotation: int, float, str, a StrEnum or tuple[int, ...]
    default: Any
    how: Setting

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def choices(self) -> tuple[str, ...] | None:
        """The allowed values, when the field is a StrEnum."""
        return tuple(member.value for member in self.type) if _is_choice(self.type) else None

    @property
    def is_sequence(self) -> bool:
        return typing.get_origin(self.type) is tuple

    @property
    def item_type(self) -> type:
        """The type of one value: the field's own, or its tuple's items' (`hidden_sizes` holds ints)."""
        return typing.get_args(self.type)[0] if self.is_sequence else self.type


def _is_choice(kind: Any) -> bool:
    return isinstance(kind, type) and issubclass(kind, StrEnum)


def _choice(kind: type[StrEnum], name: str, value: Any) -> StrEnum:
    """`value` as a member of `kind`, or a sentence naming the choices."""
    try:
        return kind(value)
    except ValueError:
        raise ConfigError(f"Unknown {name.replace('_', ' ')} {value!r}; choose one of {', '.join(kind)}.") from None


@functools.cache
def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)  # the annotations are strings (`from __future__ import annotations`)


def _coerce_fields(config: Any) -> None:
    """Give every field its declared type: a StrEnum from its string (JSON, a widget, a flag), a tuple from a
    list. Called from `__post_init__`, so a config that exists has typed choices."""
    for name, kind in _field_types(type(config)).items():
        value = getattr(config, name)
        if _is_choice(kind):
            value = _choice(kind, name, value)
        elif typing.get_origin(kind) is tuple and isinstance(value, list):
            value = tuple(value)
        object.__setattr__(config, name, value)  # frozen: the only way in, and only while constructing


@dataclass(frozen=True)
class ModelConfig:
    """What is needed to rebuild a VAE: an MLP encoder and decoder around a latent of `latent_dim`."""

    input_shape: tuple[int, int] = (8, 8)  # set by the data, not by a person
    hidden_sizes: tuple[int, ...] = setting((256,), "Hidden layer widths", widget=None,
                                            help="One width per hidden layer, e.g. 400, or 256 128.")
    latent_dim: int = setting(8, "Latent dimension (size of z)", widget="slider", low=1, high=MAX_LATENT_DIM)
    likelihood: Likelihood = setting(Likelihood.BERNOULLI, "Likelihood p(x|z)", widget="select")
    posterior: PosteriorFamily = setting(
        PosteriorFamily.GAUSSIAN, "Posterior q(z|x)", widget="select",
        help="The prior p(z) is the same family at location 0, scale 1. The KL is exact for Gaussian and Laplace, "
             "a Monte Carlo estimate for the others.",
        choice_labels={"gaussian": "Gaussian", "laplace": "Laplace", "logistic": "Logistic",
                       "student-t": "Student-t"},
    )

    def __post_init__(self) -> None:
        _coerce_fields(self)

    @property
    def input_dim(self) -> int:
        return self.input_shape[0] * self.input_shape[1]

    def validate(self) -> None:
        if not 1 <= self.latent_dim <= MAX_LATENT_DIM:
            raise ConfigError(f"The latent dimension must be between 1 and {MAX_LATENT_DIM}, not {self.latent_dim}.")
        if not self.hidden_sizes or min(self.hidden_sizes) < 1:
            raise ConfigError("The encoder and decoder need at least one hidden layer of positive width.")
        if min(self.input_shape) < 1:
            raise ConfigError(f"The input shape {self.input_shape} is empty.")


@dataclass(frozen=True)
class TrainConfig:
    """A training run: data, model, optimiser (Adam) and the ELBO's beta weight with optional KL warm-up."""

    preset: Preset = setting(
        Preset.DIGITS, "Which model?", widget="select", help="The starting point: a setting left out is the preset's.",
        choice_labels={"digits": "Digits (default, readable in ~30 s)", "digits-2d": "Digits, 2-D latent",
                       "pytorch-examples-mnist": "pytorch/examples MNIST (784-400-20)"},
    )
    # A name in vae.data.DATASET_NAMES, or an .npz file's (a path, on the CLI): not a closed choice, so a str.
    dataset: str = setting(
        "digits", "Which data?", widget="select",
        help="digits is bundled; mnist and fashion-mnist are downloaded once; or the path of your own .npz file.",
    )
    model: ModelConfig = field(default_factory=ModelConfig)
    epochs: int = setting(150, "Epochs", low=1, high=10_000)
    batch_size: int = setting(64, "Batch size", low=1, high=4096)
    lr: float = setting(3e-3, "Learning rate (Adam)", low=1e-5, high=10.0, step=1e-4, format="%.0e")
    beta: float = setting(1.0, "β (KL weight)", low=0.0, high=10.0, step=0.1,
                          help="The loss is −(E_q[log p(x|z)] − β·KL). β = 1 is the ELBO.")
    kl_warmup_epochs: float = setting(0.0, "KL warm-up (epochs)", low=0.0, high=1000.0, step=1.0,
                                      help="β ramps linearly from 0 over this many epochs.")
    # The Estimators page races the two; the Train page always trains pathwise.
    encoder_gradient: EncoderGradient = setting(
        EncoderGradient.PATHWISE, "Encoder gradient", widget=None,
        help="How the encoder's gradient of E_q[log p(x|z)] is estimated: pathwise (the reparameterization "
             "trick) or score_function (as if there were no trick).",
    )
    seed: int = setting(0, "Seed", low=0, high=2**31 - 1)
    device: Device = setting(Device.AUTO, "Device", widget="select", help="auto uses the GPU when one is present.")

    def __post_init__(self) -> None:
        _coerce_fields(self)

    def validate(self) -> None:
        self.model.validate()
        checks = [
            (self.epochs >= 1, f"The number of epochs must be at least 1, not {self.epochs}."),
            (self.batch_size >= 1, f"The batch size must be at least 1, not {self.batch_size}."),
            (self.lr > 0, f"The learning rate must be positive, not {self.lr}."),
            (self.beta >= 0, f"Beta must be zero or positive, not {self.beta}."),
            (self.kl_warmup_epochs >= 0, "The KL warm-up cannot be negative."),
        ]
        if self.encoder_gradient == "score_function":
            # torch's KL registry decides which KLs are exact (vae.kl); imported here, as only a run that is about
            # to train asks, so the first screen never waits for torch
            from vae.kl import ANALYTIC_KL_FAMILIES

            if self.model.posterior not in ANALYTIC_KL_FAMILIES:
                raise ConfigError("Score-function training needs a posterior with an exact KL "
                                  f"({' or '.join(ANALYTIC_KL_FAMILIES)}).")
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with top-level fields or model fields (`latent_dim=...`) changed."""
        model_changes = {k: changes.pop(k) for k in list(changes) if k in _MODEL_FIELDS}
        model = dataclasses.replace(self.model, **model_changes)
        return dataclasses.replace(self, model=model, **changes)

    def setting_values(self) -> dict[str, Any]:
        """Every user setting's value by name, model fields included (the inverse of `config_from_settings`)."""
        return {name: getattr(self.model if name in _MODEL_FIELDS else self, name) for name in user_settings()}

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)  # a StrEnum is written as its string

    @classmethod
    def from_json(cls, text: str) -> TrainConfig:
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            raise ConfigError("The configuration is not valid JSON.") from None
        if not isinstance(data, dict) or not isinstance(data.get("model", {}), dict):
            raise ConfigError("The configuration is not a JSON object of settings.")
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        """Inverse of `asdict`; refuses unknown keys so a stale checkpoint fails loudly."""
        data = dict(data)
        try:
            return cls(model=ModelConfig(**data.pop("model", {})), **data)
        except TypeError as error:
            raise ConfigError(f"The configuration has fields this version does not know: {error}.") from None


_MODEL_FIELDS = frozenset(f.name for f in dataclasses.fields(ModelConfig))


@functools.cache
def user_settings() -> dict[str, UserSetting]:
    """Every field a person may set, by name, in declaration order (the model's where `model` is declared).
    Names are unique across both classes, so `TrainConfig.replace` and the flags can be flat."""
    settings: dict[str, UserSetting] = {}
    for outer in dataclasses.fields(TrainConfig):
        owner = ModelConfig if outer.name == "model" else TrainConfig
        for f in dataclasses.fields(ModelConfig) if owner is ModelConfig else (outer,):
            if _SETTING in f.metadata:
                settings[f.name] = UserSetting(f.name, _field_types(owner)[f.name], f.default, f.metadata[_SETTING])
    return settings


def config_from_settings(values: Mapping[str, Any]) -> TrainConfig:
    """The preset `values` name (else the default one) with every other given value on top; a value of None
    means "the preset's". The CLI's flags and the Train page's widgets both end here."""
    given = {name: value for name, value in values.items() if value is not None}
    return preset_config(given.pop("preset", Preset.DIGITS)).replace(**given)


# Test loss (-ELBO, nats per example) per epoch of one published run of pytorch/examples' VAE on MNIST.
PYTORCH_EXAMPLES_TEST_LOSS = (127.3, 115.8, 112.2, 109.6, 108.5, 107.7, 107.1, 106.7, 106.0, 105.6)

PRESETS: dict[Preset, TrainConfig] = {
    # Readable digits within about 30 s on a 2-core CPU.
    Preset.DIGITS: TrainConfig(),
    # A 2-D latent, for pictures of the latent space.
    Preset.DIGITS_2D: TrainConfig(
        preset=Preset.DIGITS_2D, model=ModelConfig(hidden_sizes=(256, 128), latent_dim=2), epochs=200
    ),
    # pytorch/examples' VAE: 784-400-20, Bernoulli, Adam 1e-3, batch 128, 10 epochs.
    Preset.PYTORCH_EXAMPLES_MNIST: TrainConfig(
        preset=Preset.PYTORCH_EXAMPLES_MNIST,
        dataset="mnist",
        model=ModelConfig(input_shape=(28, 28), hidden_sizes=(400,), latent_dim=20),
        epochs=10,
        batch_size=128,
        lr=1e-3,
    ),
}


def preset_config(name: str) -> TrainConfig:
    """The preset's configuration; `ConfigError` names the valid presets."""
    return PRESETS[_choice(Preset, "preset", name)]


def reference_test_loss(config: TrainConfig) -> tuple[float, ...] | None:
    """The published per-epoch test loss to draw as a reference, when this run reproduces that example."""
    reference = PRESETS[Preset.PYTORCH_EXAMPLES_MNIST]
    # Seed, length and device do not change the expected curve; anything else does.
    comparable = dataclasses.replace(config, seed=reference.seed, epochs=reference.epochs, device=reference.device)
    return PYTORCH_EXAMPLES_TEST_LOSS if comparable == reference else None
