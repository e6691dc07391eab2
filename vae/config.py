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
import math
import numbers
import reprlib
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


class PosteriorFamily(StrEnum):  # vae.families implements the continuous ones, vae.categorical the last
    GAUSSIAN = "gaussian"
    LAPLACE = "laplace"
    LOGISTIC = "logistic"
    STUDENT_T = "student-t"
    GAMMA = "gamma"  # z > 0, drawn by implicit reparameterization (vae.families.GAMMA_POSTERIOR)
    CATEGORICAL = "categorical"  # latent_dim variables of `categories` categories each


class EncoderGradient(StrEnum):
    PATHWISE = "pathwise"  # through z = loc + scale * noise: the trick; categorical: through the Gumbel-softmax
    SCORE_FUNCTION = "score_function"  # as if there were no trick
    STRAIGHT_THROUGH = "straight_through"  # categorical only: one-hot forwards, Gumbel-softmax backwards


class Device(StrEnum):
    AUTO = "auto"  # the GPU when there is one
    CPU = "cpu"
    CUDA = "cuda"


# The continuous families, z = g(params, noise) (vae.families): for the modules that loop over them.
POSTERIOR_FAMILIES = tuple(family for family in PosteriorFamily if family != PosteriorFamily.CATEGORICAL)
MAX_CATEGORIES = 64
MAX_LATENT_DIM = 64
# Bounds on what a model may be (a checkpoint from a user declares its own architecture; check before building).
MAX_IMAGE_SIDE = 64  # images up to 64x64 pixels
MAX_HIDDEN_WIDTH = 2048
MAX_HIDDEN_LAYERS = 4
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
    low: float | None = None  # the range a widget offers; for an int, also all that validate() allows
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
    except (ValueError, TypeError):
        what = name.replace("_", " ")
        raise ConfigError(f"Unknown {what} {_shown(value)}; choose one of {', '.join(kind)}.") from None


def _shown(value: Any) -> str:
    """A value for a message, shortened: it may come from a hostile file."""
    return reprlib.repr(value)


@functools.cache
def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)  # the annotations are strings (`from __future__ import annotations`)


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)  # JSON's true is no count


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


_SCALARS = {int: (_is_int, int, "a whole number"), float: (_is_number, float, "a number"),
            str: (lambda value: isinstance(value, str), str, "a string")}


def _typed(kind: Any, name: str, value: Any) -> Any:
    """`value` as the declared `kind` (a StrEnum from its string, a tuple from a list, a float from an int), or a
    ConfigError naming the field: JSON from a user's file may hold anything."""
    if _is_choice(kind):
        return _choice(kind, name, value)
    if typing.get_origin(kind) is tuple:
        return _int_tuple(typing.get_args(kind), name, value)
    if kind in _SCALARS:
        accepts, convert, words = _SCALARS[kind]
        if accepts(value):
            return convert(value)
        raise ConfigError(f"The setting {name} must be {words}, not {_shown(value)}.")
    if isinstance(value, kind):  # the nested ModelConfig
        return value
    raise ConfigError(f"The configuration's {name} is not a JSON object of settings.")


def _int_tuple(items: tuple[Any, ...], name: str, value: Any) -> tuple[int, ...]:
    """`tuple[int, int]` holds exactly two ints, `tuple[int, ...]` any number (validate() bounds it)."""
    length = None if Ellipsis in items else len(items)
    if isinstance(value, (list, tuple)) and all(map(_is_int, value)) and length in (None, len(value)):
        return tuple(int(item) for item in value)
    words = "a list of whole numbers" if length is None else f"a list of {length} whole numbers"
    raise ConfigError(f"The setting {name} must be {words}, not {_shown(value)}.")


def _coerce_fields(config: Any) -> None:
    """Give every field its declared type, or refuse it with a sentence. Called from `__post_init__`, so a config
    that exists has typed fields, whether it came from JSON, a widget or a flag."""
    for name, kind in _field_types(type(config)).items():
        value = _typed(kind, name, getattr(config, name))
        object.__setattr__(config, name, value)  # frozen: the only way in, and only while constructing


def _declared_range(cls: type, name: str) -> tuple[int, int]:
    how = next(f for f in dataclasses.fields(cls) if f.name == name).metadata[_SETTING]
    return int(how.low), int(how.high)


def _check_declared_range(config: Any, name: str, noun: str) -> None:
    """An int setting may be what its widget offers and no more (a seed beyond it would overflow torch's)."""
    low, high = _declared_range(type(config), name)
    value = getattr(config, name)
    if not low <= value <= high:
        raise ConfigError(f"The {noun} must be between {low} and {high}, not {value}.")


def _check_finite(value: float, allowed: bool, message: str) -> None:
    if not (math.isfinite(value) and allowed):
        raise ConfigError(message)


@dataclass(frozen=True)
class ModelConfig:
    """What is needed to rebuild a VAE: an MLP encoder and decoder around a latent of `latent_dim`."""

    input_shape: tuple[int, int] = (8, 8)  # set by the data, not by a person
    hidden_sizes: tuple[int, ...] = setting((256,), "Hidden layer widths", widget=None,
                                            help="One width per hidden layer, e.g. 400, or 256 128.")
    latent_dim: int = setting(8, "Latent dimension (size of z)", widget="slider", low=1, high=MAX_LATENT_DIM,
                              help="For a categorical posterior: how many categorical variables.")
    likelihood: Likelihood = setting(Likelihood.BERNOULLI, "Likelihood p(x|z)", widget="select")
    posterior: PosteriorFamily = setting(
        PosteriorFamily.GAUSSIAN, "Posterior q(z|x)", widget="select",
        help="The prior p(z) is the same family at location 0, scale 1 (for the Gamma: Gamma(1, 1)). The KL is "
             "exact for Gaussian, Laplace and Gamma, a Monte Carlo estimate for the others.",
        choice_labels={"gaussian": "Gaussian", "laplace": "Laplace", "logistic": "Logistic",
                       "student-t": "Student-t", "gamma": "Gamma (z > 0, implicit gradients)",
                       "categorical": "Categorical (discrete z)"},
    )
    categories: int = setting(10, "Categories per latent variable", low=2, high=MAX_CATEGORIES,
                              help="Categorical posterior only: each of the latent variables takes one of this "
                                   "many values; the prior is uniform over them.")

    def __post_init__(self) -> None:
        _coerce_fields(self)

    @property
    def categorical(self) -> bool:
        return self.posterior == PosteriorFamily.CATEGORICAL

    @property
    def code_size(self) -> int:
        """What the decoder reads: z itself, or the latent variables' one-hot (or relaxed) codes side by side."""
        return self.latent_dim * self.categories if self.categorical else self.latent_dim

    @property
    def input_dim(self) -> int:
        return self.input_shape[0] * self.input_shape[1]

    def validate(self) -> None:
        """Within the bounds on a model, so that one from a user's file is small enough to build."""
        _check_declared_range(self, "latent_dim", "latent dimension")
        _check_declared_range(self, "categories", "number of categories")
        if not 1 <= len(self.hidden_sizes) <= MAX_HIDDEN_LAYERS:
            raise ConfigError(f"The encoder and decoder need 1 to {MAX_HIDDEN_LAYERS} hidden layers, "
                              f"not {len(self.hidden_sizes)}.")
        for width in self.hidden_sizes:
            if not 1 <= width <= MAX_HIDDEN_WIDTH:
                raise ConfigError(f"Hidden layer widths must be between 1 and {MAX_HIDDEN_WIDTH}, not {width}.")
        if not all(1 <= side <= MAX_IMAGE_SIDE for side in self.input_shape):
            height, width = self.input_shape
            raise ConfigError(f"Images must be 1 to {MAX_IMAGE_SIDE} pixels on a side, not {height}x{width}.")


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
    # Remedies for posterior collapse (the Latent space page counts the active units).
    kl_cycles: int = setting(0, "KL cycles (cyclical annealing)", low=0, high=100,
                             help="Fu et al. 2019: β restarts from 0 this many times over the run, ramping up over "
                                  "the first half of each cycle. 0 is off (then the warm-up above applies).")
    free_bits: float = setting(0.0, "Free bits (nats per latent dimension)", low=0.0, high=10.0, step=0.1,
                               help="Kingma et al. 2016: a latent dimension's KL (its minibatch mean) below this "
                                    "costs nothing, so SGD has no reason to switch it off. The KL shown is the "
                                    "true one.")
    # The Estimators page races pathwise and score function; the Train page offers all three for a categorical z.
    encoder_gradient: EncoderGradient = setting(
        EncoderGradient.PATHWISE, "Encoder gradient", widget="select",
        help="How the encoder's gradient of E_q[log p(x|z)] is estimated: pathwise (the reparameterization "
             "trick; for a categorical z, through the Gumbel-softmax relaxation), score_function (as if there "
             "were no trick), or straight_through (categorical z only).",
        choice_labels={"pathwise": "pathwise (Gumbel-softmax for a categorical z)",
                       "score_function": "score function", "straight_through": "straight-through (categorical)"},
    )
    temperature: float = setting(1.0, "Gumbel-softmax τ at the start", low=0.1, high=5.0, step=0.1,
                                 help="Categorical z only: the relaxation's temperature at the first step.")
    final_temperature: float = setting(0.5, "Gumbel-softmax τ at the end", low=0.1, high=5.0, step=0.1,
                                       help="τ falls geometrically to this over the run (Jang et al. 2017 anneal "
                                            "to 0.5); the same as the start keeps it fixed.")
    seed: int = setting(0, "Seed", low=0, high=2**31 - 1)
    device: Device = setting(Device.AUTO, "Device", widget="select", help="auto uses the GPU when one is present.")

    def __post_init__(self) -> None:
        _coerce_fields(self)

    def validate(self) -> None:
        """Every value allowed, before anything trains: the CLI and the Train page both ask here."""
        self.model.validate()
        _check_declared_range(self, "epochs", "number of epochs")
        _check_declared_range(self, "batch_size", "batch size")
        _check_declared_range(self, "seed", "seed")
        _check_declared_range(self, "kl_cycles", "number of KL cycles")
        _check_finite(self.free_bits, 0 <= self.free_bits <= 10,
                      f"Free bits must be a finite number of nats from 0 to 10, not {self.free_bits}.")
        _check_finite(self.lr, self.lr > 0, f"The learning rate must be a positive finite number, not {self.lr}.")
        _check_finite(self.beta, self.beta >= 0, f"Beta must be a finite number, zero or more, not {self.beta}.")
        _check_finite(self.kl_warmup_epochs, self.kl_warmup_epochs >= 0,
                      f"The KL warm-up must be a finite number of epochs, zero or more, not {self.kl_warmup_epochs}.")
        for name, value in (("temperature", self.temperature), ("final temperature", self.final_temperature)):
            _check_finite(value, 0.1 <= value <= 5, f"The {name} must be a number from 0.1 to 5, not {value}.")
        if self.encoder_gradient == "straight_through" and not self.model.categorical:
            raise ConfigError("Straight-through gradients are for a categorical posterior; a continuous z has the "
                              "pathwise gradient itself.")
        if self.encoder_gradient == "score_function" and not self.model.categorical:
            # torch's KL registry decides which KLs are exact (vae.kl); imported here, as only a run that is about
            # to train asks, so the first screen never waits for torch
            from vae.kl import ANALYTIC_KL_FAMILIES

            if self.model.posterior not in ANALYTIC_KL_FAMILIES:
                raise ConfigError("Score-function training needs a posterior with an exact KL "
                                  f"({' or '.join(ANALYTIC_KL_FAMILIES)}).")

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
        except (ValueError, RecursionError):  # JSONDecodeError, an int too long to convert, nesting too deep
            raise ConfigError("The configuration is not valid JSON.") from None
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        """Inverse of `asdict`; refuses unknown keys so a stale checkpoint fails loudly, and a value of the wrong
        type with a sentence naming its field."""
        data = dict(_settings(data, "The configuration is not a JSON object of settings."))
        model = _settings(data.pop("model", {}), "The configuration's model is not a JSON object of settings.")
        _refuse_unknown(data, cls)
        _refuse_unknown(model, ModelConfig)
        return cls(model=ModelConfig(**model), **data)


def _settings(data: Any, message: str) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise ConfigError(message)
    return data


def _refuse_unknown(data: Mapping[str, Any], cls: type) -> None:
    unknown = sorted(map(str, set(data) - set(_field_types(cls))))
    if unknown:
        names = ", ".join(name[:40] for name in unknown[:5]) + (", ..." if len(unknown) > 5 else "")  # from a file
        raise ConfigError(f"The configuration has fields this version does not know: {names}.")


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


# The Estimators page's race: the digits VAE once per encoder gradient, all from the same initial weights. A
# racer is named by its estimator (for a categorical z, the pathwise gradient is the Gumbel-softmax relaxation's).
RACES: dict[PosteriorFamily, dict[str, EncoderGradient]] = {
    PosteriorFamily.GAUSSIAN: {"pathwise": EncoderGradient.PATHWISE, "score_function": EncoderGradient.SCORE_FUNCTION},
    PosteriorFamily.CATEGORICAL: {"gumbel_softmax": EncoderGradient.PATHWISE,
                                  "straight_through": EncoderGradient.STRAIGHT_THROUGH,
                                  "score_function": EncoderGradient.SCORE_FUNCTION},
}


def race_configs(epochs: int, posterior: str = PosteriorFamily.GAUSSIAN) -> dict[str, TrainConfig]:
    """The race's runs by racer name: the digits preset with a `posterior` z, alike but for the encoder gradient."""
    config = preset_config(Preset.DIGITS).replace(epochs=epochs, posterior=PosteriorFamily(posterior))
    racers = RACES[config.model.posterior]
    return {racer: config.replace(encoder_gradient=gradient) for racer, gradient in racers.items()}


def reference_test_loss(config: TrainConfig) -> tuple[float, ...] | None:
    """The published per-epoch test loss to draw as a reference, when this run reproduces that example."""
    reference = PRESETS[Preset.PYTORCH_EXAMPLES_MNIST]
    # Seed, length and device do not change the expected curve; anything else does.
    comparable = dataclasses.replace(config, seed=reference.seed, epochs=reference.epochs, device=reference.device)
    return PYTORCH_EXAMPLES_TEST_LOSS if comparable == reference else None
