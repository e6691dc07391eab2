"""Config: every setting is declared once, choices are typed, presets are valid, JSON (old and new) round trips,
and a bad value is refused with a sentence."""

import dataclasses
import json
from enum import StrEnum

import pytest

from vae.config import (
    PRESETS,
    ConfigError,
    Device,
    EncoderGradient,
    Likelihood,
    ModelConfig,
    PosteriorFamily,
    Preset,
    TrainConfig,
    config_from_settings,
    preset_config,
    reference_test_loss,
    user_settings,
)

NOT_SET_BY_A_PERSON = {"model", "input_shape"}  # the nested config, and the shape the data decides

# A checkpoint's config as written before the choices were enums, and before `encoder_gradient` existed.
OLD_JSON = ('{"batch_size": 64, "beta": 1.0, "dataset": "digits", "device": "auto", "epochs": 150, '
            '"kl_warmup_epochs": 0.0, "lr": 0.003, "model": {"hidden_sizes": [256], "input_shape": [8, 8], '
            '"latent_dim": 8, "likelihood": "bernoulli", "posterior": "gaussian"}, "preset": "digits", "seed": 0}')


def test_every_field_is_a_setting_declared_once_or_set_by_the_data():
    train_fields = {f.name for f in dataclasses.fields(TrainConfig)}
    model_fields = {f.name for f in dataclasses.fields(ModelConfig)}
    assert not train_fields & model_fields  # one flat namespace: `replace`, the flags and widget keys rely on it
    assert set(user_settings()) == (train_fields | model_fields) - NOT_SET_BY_A_PERSON
    for spec in user_settings().values():
        assert spec.how.label and spec.default is not dataclasses.MISSING


def test_settings_with_choices_are_enums_and_a_widget_picks_from_them():
    enums = {name: spec.type for name, spec in user_settings().items() if spec.choices}
    assert enums == {"preset": Preset, "likelihood": Likelihood, "posterior": PosteriorFamily,
                     "encoder_gradient": EncoderGradient, "device": Device}
    for name, spec in user_settings().items():
        if spec.choices and spec.how.widget:
            assert spec.how.widget == "select", name
        assert set(spec.how.choice_labels) <= set(spec.choices or ()), name


def test_strings_become_the_enums_and_compare_equal_to_them():
    config = preset_config("digits").replace(posterior="student-t", device="cpu", encoder_gradient="pathwise")
    assert config.model.posterior is PosteriorFamily.STUDENT_T and config.device is Device.CPU
    assert config.model.posterior == "student-t"  # StrEnum: the same string older code and checkpoints use
    assert isinstance(config.preset, StrEnum) and set(PRESETS) == set(Preset)


@pytest.mark.parametrize("name", list(Preset))
def test_presets_are_valid_and_round_trip(name):
    config = preset_config(name)
    config.validate()
    assert TrainConfig.from_json(config.to_json()) == config
    assert config.preset == name


def test_old_json_loads_with_typed_choices_and_defaults_for_newer_fields():
    config = TrainConfig.from_json(OLD_JSON)
    assert config == preset_config("digits")
    assert config.model.likelihood is Likelihood.BERNOULLI and config.device is Device.AUTO
    assert config.encoder_gradient is EncoderGradient.PATHWISE  # not in the old file: the default
    assert config.model.hidden_sizes == (256,) and config.model.input_shape == (8, 8)  # lists become tuples
    assert json.loads(config.to_json()) == json.loads(OLD_JSON) | {"encoder_gradient": "pathwise"}


def test_replace_reaches_model_fields():
    config = preset_config("digits").replace(latent_dim=5, lr=0.1)
    assert config.model.latent_dim == 5 and config.lr == 0.1


def test_settings_apply_on_top_of_their_preset():
    config = config_from_settings({"preset": "digits-2d", "epochs": 3, "beta": None, "posterior": "laplace"})
    assert config == preset_config("digits-2d").replace(epochs=3, posterior=PosteriorFamily.LAPLACE)
    assert config_from_settings({}) == preset_config("digits")
    values = preset_config("pytorch-examples-mnist").setting_values()
    assert set(values) == set(user_settings()) and config_from_settings(values) == preset_config(
        "pytorch-examples-mnist")


@pytest.mark.parametrize(
    "changes, words",
    [({"latent_dim": 0}, "latent dimension"), ({"latent_dim": 65}, "between 1 and 64"), ({"lr": 0}, "learning rate"),
     ({"beta": -1}, "Beta"), ({"batch_size": 0}, "batch size"), ({"epochs": 0}, "epochs"),
     ({"device": "tpu"}, "Unknown device 'tpu'; choose one of auto, cpu, cuda."),
     ({"likelihood": "poisson"}, "Unknown likelihood 'poisson'; choose one of bernoulli, gaussian."),
     ({"posterior": "normal"}, "Unknown posterior 'normal'; choose one of gaussian, laplace, logistic, student-t."),
     ({"encoder_gradient": "reinforce"},
      "Unknown encoder gradient 'reinforce'; choose one of pathwise, score_function."),
     ({"encoder_gradient": "score_function", "posterior": "logistic"}, "exact KL")],
)
def test_bad_values_are_refused_with_a_sentence(changes, words):
    with pytest.raises(ConfigError, match=words.replace(".", r"\.")) as error:
        preset_config("digits").replace(**changes).validate()
    message = str(error.value)
    assert message[0].isupper() and message.endswith(".")


def test_unknown_preset_names_the_choices():
    with pytest.raises(ConfigError, match="choose one of digits, digits-2d, pytorch-examples-mnist"):
        preset_config("nope")


def test_unknown_or_unreadable_json_is_a_sentence():
    with pytest.raises(ConfigError, match="does not know"):
        TrainConfig.from_json(OLD_JSON.replace('"seed"', '"learning_speed"'))
    with pytest.raises(ConfigError, match="not valid JSON"):
        TrainConfig.from_json("{")
    with pytest.raises(ConfigError, match="not a JSON object"):
        TrainConfig.from_json('{"model": [8]}')


def test_reference_curve_only_for_the_unchanged_example():
    example = preset_config("pytorch-examples-mnist")
    assert reference_test_loss(example)[0] == 127.3
    assert reference_test_loss(example.replace(seed=3, epochs=20)) is not None
    assert reference_test_loss(example.replace(latent_dim=2)) is None
    assert reference_test_loss(example.replace(dataset="digits")) is None
