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
    newer = {"encoder_gradient": "pathwise", "kl_cycles": 0, "free_bits": 0.0,  # not in the old file: the defaults
             "temperature": 1.0, "final_temperature": 0.5}
    expected = json.loads(OLD_JSON) | newer
    expected["model"] = expected["model"] | {"categories": 10}
    assert json.loads(config.to_json()) == expected


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
     ({"posterior": "normal"},
      "Unknown posterior 'normal'; choose one of gaussian, laplace, logistic, student-t, gamma, categorical."),
     ({"encoder_gradient": "reinforce"},
      "Unknown encoder gradient 'reinforce'; choose one of pathwise, score_function, straight_through."),
     ({"encoder_gradient": "score_function", "posterior": "logistic"}, "exact KL"),
     ({"encoder_gradient": "straight_through"}, "Straight-through gradients are for a categorical posterior"),
     ({"categories": 1}, "number of categories must be between 2 and 64"),
     ({"categories": 65, "posterior": "categorical"}, "number of categories"),
     ({"temperature": 0.05}, "temperature must be a number from 0.1 to 5"),
     ({"final_temperature": float("nan")}, "final temperature")],
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


@pytest.mark.parametrize(
    "model, fields, words",
    [({"latent_dim": "8"}, {}, "The setting latent_dim must be a whole number, not '8'."),
     ({"latent_dim": True}, {}, "The setting latent_dim must be a whole number, not True."),
     ({"latent_dim": 8.0}, {}, "The setting latent_dim must be a whole number, not 8.0."),
     ({"input_shape": [8]}, {}, "The setting input_shape must be a list of 2 whole numbers, not [8]."),
     ({"input_shape": [8, 8, 8]}, {}, "The setting input_shape must be a list of 2 whole numbers"),
     ({"input_shape": "8x8"}, {}, "The setting input_shape must be a list of 2 whole numbers"),
     ({"hidden_sizes": ["16"]}, {}, "The setting hidden_sizes must be a list of whole numbers, not ['16']."),
     ({"hidden_sizes": [16.0]}, {}, "The setting hidden_sizes must be a list of whole numbers"),
     ({"hidden_sizes": [16, False]}, {}, "The setting hidden_sizes must be a list of whole numbers"),
     ({"hidden_sizes": 16}, {}, "The setting hidden_sizes must be a list of whole numbers, not 16."),
     ({"likelihood": 3}, {}, "Unknown likelihood 3; choose one of bernoulli, gaussian."),
     ({"posterior": ["gaussian"]}, {}, "Unknown posterior ['gaussian']"),
     ({}, {"lr": "0.1"}, "The setting lr must be a number, not '0.1'."),
     ({}, {"beta": True}, "The setting beta must be a number, not True."),
     ({}, {"epochs": True}, "The setting epochs must be a whole number, not True."),
     ({}, {"epochs": 2.5}, "The setting epochs must be a whole number, not 2.5."),
     ({}, {"seed": None}, "The setting seed must be a whole number, not None."),
     ({}, {"dataset": 5}, "The setting dataset must be a string, not 5."),
     ({}, {"model": [8]}, "The configuration's model is not a JSON object of settings."),
     ({}, {"learning_speed": 3}, "The configuration has fields this version does not know: learning_speed."),
     ({"depth": 3}, {}, "The configuration has fields this version does not know: depth.")],
)
def test_a_field_of_the_wrong_type_is_refused_naming_it(model, fields, words):
    data = json.loads(OLD_JSON)
    data["model"].update(model)
    data.update(fields)
    with pytest.raises(ConfigError) as error:
        TrainConfig.from_json(json.dumps(data))
    assert str(error.value).startswith(words.removesuffix(".")) and str(error.value).endswith(".")


def test_a_config_that_is_not_an_object_is_a_sentence():
    for text in ("[8, 8]", '"digits"', "8", "null"):
        with pytest.raises(ConfigError, match="The configuration is not a JSON object of settings."):
            TrainConfig.from_json(text)
    with pytest.raises(ConfigError, match="not a JSON object of settings"):
        TrainConfig.from_dict([("epochs", 3)])
    with pytest.raises(ConfigError, match="not valid JSON"):
        TrainConfig.from_json("[" * 100_000)  # deeper than the parser's recursion


def test_numbers_take_their_declared_type():
    config = TrainConfig.from_json(OLD_JSON.replace('"lr": 0.003', '"lr": 1'))
    assert config.lr == 1.0 and isinstance(config.lr, float)
    assert ModelConfig(input_shape=[28, 28], hidden_sizes=[400]).input_shape == (28, 28)


@pytest.mark.parametrize(
    "changes, words",
    [({"beta": float("inf")}, "Beta must be a finite number, zero or more, not inf."),
     ({"beta": float("nan")}, "Beta must be a finite number, zero or more, not nan."),
     ({"kl_warmup_epochs": float("nan")}, "The KL warm-up must be a finite number of epochs, zero or more, not nan."),
     ({"kl_warmup_epochs": -1.0}, "The KL warm-up must be a finite number of epochs, zero or more, not -1.0."),
     ({"lr": float("nan")}, "The learning rate must be a positive finite number, not nan."),
     ({"lr": float("inf")}, "The learning rate must be a positive finite number, not inf."),
     ({"seed": 2**64}, "The seed must be between 0 and 2147483647, not 18446744073709551616."),
     ({"seed": -1}, "The seed must be between 0 and 2147483647, not -1."),
     ({"epochs": 10**12}, "The number of epochs must be between 1 and 10000, not 1000000000000."),
     ({"batch_size": 10**9}, "The batch size must be between 1 and 4096, not 1000000000."),
     ({"hidden_sizes": (16,) * 5}, "The encoder and decoder need 1 to 4 hidden layers, not 5."),
     ({"hidden_sizes": ()}, "The encoder and decoder need 1 to 4 hidden layers, not 0."),
     ({"hidden_sizes": (2049,)}, "Hidden layer widths must be between 1 and 2048, not 2049."),
     ({"hidden_sizes": (16, 0)}, "Hidden layer widths must be between 1 and 2048, not 0."),
     ({"input_shape": (65, 8)}, "Images must be 1 to 64 pixels on a side, not 65x8."),
     ({"input_shape": (0, 8)}, "Images must be 1 to 64 pixels on a side, not 0x8.")],
)
def test_values_out_of_bounds_are_refused_naming_the_limit(changes, words):
    with pytest.raises(ConfigError) as error:
        preset_config("digits").replace(**changes).validate()
    assert str(error.value) == words


def test_the_widest_values_the_bounds_allow_are_valid():
    preset_config("digits").replace(epochs=10_000, batch_size=4096, seed=2**31 - 1, latent_dim=64,
                                    hidden_sizes=(2048,) * 4, input_shape=(64, 64), lr=100.0, beta=0.0).validate()
