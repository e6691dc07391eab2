"""Checkpoints: a round trip rebuilds the same model; anything that does not fit is refused with a reason."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import save

from vae.checkpoints import CheckpointError, checkpoint_bytes, load_checkpoint, save_checkpoint
from vae.config import Device, ModelConfig, PosteriorFamily, TrainConfig
from vae.model import build_model

CONFIG = TrainConfig(model=ModelConfig(hidden_sizes=(16,), latent_dim=3), epochs=2)


@pytest.fixture
def model():
    return build_model(CONFIG.model, seed=0)


def test_round_trip_rebuilds_the_same_model(tmp_path, model):
    path = save_checkpoint(tmp_path / "m.safetensors", model, CONFIG, {"held_out": [{"epoch": 1, "elbo": -30.0}]})
    loaded = load_checkpoint(path)
    assert loaded.config == CONFIG
    assert loaded.metrics["held_out"][0]["elbo"] == -30.0
    x = torch.rand(4, 64)
    torch.testing.assert_close(loaded.model.encode(x)[0], model.encode(x)[0])
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]  # no temporary file left behind
    assert load_checkpoint(path.read_bytes()).config == CONFIG


def test_a_failed_write_leaves_no_file(tmp_path, model, monkeypatch):
    import vae.checkpoints as checkpoints

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(checkpoints.os, "replace", broken_replace)
    with pytest.raises(OSError):
        save_checkpoint(tmp_path / "m.safetensors", model, CONFIG)
    assert list(tmp_path.iterdir()) == []


def test_corrupt_or_truncated_files_are_refused(model):
    data = checkpoint_bytes(model, CONFIG)
    for bad in (b"", b"not a checkpoint at all", data[: len(data) // 2]):
        with pytest.raises(CheckpointError, match="not a safetensors checkpoint"):
            load_checkpoint(bad)


def test_foreign_safetensors_file_is_refused(model):
    data = save({"weight": torch.zeros(2)}, metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match="not written by reparam-lab"):
        load_checkpoint(data)


def test_tensors_that_do_not_match_the_config_are_refused(model):
    other = TrainConfig(model=ModelConfig(hidden_sizes=(16,), latent_dim=4))
    with pytest.raises(CheckpointError, match="shape"):
        load_checkpoint(checkpoint_bytes(model, other))
    tensors = {k: v.contiguous() for k, v in model.state_dict().items() if k != "to_loc.bias"}
    data = save(tensors, metadata={"format": "reparam-lab/1", "config": CONFIG.to_json()})
    with pytest.raises(CheckpointError, match="missing"):
        load_checkpoint(data)


def test_bad_metadata_and_nan_weights_are_refused(model):
    tensors = {k: v.contiguous() for k, v in model.state_dict().items()}
    broken_config = json.loads(CONFIG.to_json()) | {"learning_speed": 3}
    data = save(tensors, metadata={"format": "reparam-lab/1", "config": json.dumps(broken_config)})
    with pytest.raises(CheckpointError, match="configuration"):
        load_checkpoint(data)
    tensors["to_loc.weight"] = torch.full_like(tensors["to_loc.weight"], np.nan)
    with pytest.raises(CheckpointError, match="NaN"):
        load_checkpoint(save(tensors, metadata={"format": "reparam-lab/1", "config": CONFIG.to_json()}))


def test_missing_file_gives_a_sentence(tmp_path):
    with pytest.raises(CheckpointError, match="Could not read"):
        load_checkpoint(tmp_path / "nope.safetensors")


def test_a_job_checkpoint_loads_back(small_digits, small_config):
    from vae.job import TrainingJob

    job = TrainingJob(small_config, small_digits)
    job.step(4)
    job.wait_until(lambda s: s.step == 4)
    loaded = load_checkpoint(job.checkpoint())
    assert loaded.config == job.config and loaded.metrics["step"] == 4
    torch.testing.assert_close(loaded.model.to_loc.weight, job.model().to_loc.weight)
    job.stop()


def test_config_metadata_is_plain_json_strings(model):
    metadata = header_metadata(checkpoint_bytes(model, CONFIG))
    config = json.loads(metadata["config"])
    assert config["model"]["posterior"] == "gaussian" and config["device"] == "auto"  # an enum's value, as before
    assert TrainConfig.from_dict(config) == CONFIG


def test_a_checkpoint_written_before_the_enums_loads(model):
    """The metadata of a checkpoint from before the choices were enums and before `encoder_gradient` existed."""
    old_config = ('{"batch_size": 64, "beta": 1.0, "dataset": "digits", "device": "auto", "epochs": 2, '
                  '"kl_warmup_epochs": 0.0, "lr": 0.003, "model": {"hidden_sizes": [16], "input_shape": [8, 8], '
                  '"latent_dim": 3, "likelihood": "bernoulli", "posterior": "gaussian"}, "preset": "digits", '
                  '"seed": 0}')
    tensors = {k: v.contiguous() for k, v in model.state_dict().items()}
    loaded = load_checkpoint(save(tensors, metadata={"format": "reparam-lab/1", "config": old_config}))
    assert loaded.config == CONFIG
    assert loaded.config.model.posterior is PosteriorFamily.GAUSSIAN and loaded.config.device is Device.AUTO


def test_an_unknown_choice_in_the_metadata_is_a_sentence(model):
    tensors = {k: v.contiguous() for k, v in model.state_dict().items()}
    config = json.loads(CONFIG.to_json())
    config["model"]["posterior"] = "normal"
    with pytest.raises(CheckpointError, match="Unknown posterior 'normal'; choose one of gaussian, laplace"):
        load_checkpoint(save(tensors, metadata={"format": "reparam-lab/1", "config": json.dumps(config)}))


def header_metadata(data: bytes) -> dict[str, str]:
    header_size = int.from_bytes(data[:8], "little")
    return json.loads(data[8 : 8 + header_size])["__metadata__"]
