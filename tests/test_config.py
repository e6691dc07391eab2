"""Config: presets are valid, replace() reaches model fields, JSON round trips, bad values are sentences."""

import pytest

from vae.config import PRESETS, ConfigError, TrainConfig, preset_config, reference_test_loss


@pytest.mark.parametrize("name", list(PRESETS))
def test_presets_are_valid_and_round_trip(name):
    config = preset_config(name)
    config.validate()
    import json

    assert TrainConfig.from_dict(json.loads(config.to_json())) == config


def test_replace_reaches_model_fields():
    config = preset_config("digits").replace(latent_dim=5, lr=0.1)
    assert config.model.latent_dim == 5 and config.lr == 0.1


@pytest.mark.parametrize(
    "changes, words",
    [({"latent_dim": 0}, "latent dimension"), ({"latent_dim": 65}, "between 1 and 64"), ({"lr": 0}, "learning rate"),
     ({"beta": -1}, "Beta"), ({"batch_size": 0}, "batch size"), ({"device": "tpu"}, "device")],
)
def test_bad_values_are_refused_with_a_sentence(changes, words):
    with pytest.raises(ConfigError, match=words):
        preset_config("digits").replace(**changes).validate()


def test_unknown_preset_names_the_choices():
    with pytest.raises(ConfigError, match="digits-2d"):
        preset_config("nope")


def test_reference_curve_only_for_the_unchanged_example():
    example = preset_config("pytorch-examples-mnist")
    assert reference_test_loss(example)[0] == 127.3
    assert reference_test_loss(example.replace(seed=3, epochs=20)) is not None
    assert reference_test_loss(example.replace(latent_dim=2)) is None
    assert reference_test_loss(example.replace(dataset="digits")) is None
