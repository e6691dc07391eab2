"""Checkpoints: a round trip rebuilds the same model; anything that does not fit is refused with a reason."""

import json
import os
import re
import stat
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save

from vae.checkpoints import (
    STALE_TEMPORARY_SECONDS,
    CheckpointError,
    checkpoint_bytes,
    load_checkpoint,
    save_checkpoint,
)
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
    with pytest.raises(CheckpointError, match="Could not write the checkpoint .*m.safetensors: disk full."):
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
    with pytest.raises(CheckpointError, match="unknown posterior 'normal'; choose one of gaussian, laplace"):
        load_checkpoint(save(tensors, metadata={"format": "reparam-lab/1", "config": json.dumps(config)}))


def header_metadata(data: bytes) -> dict[str, str]:
    header_size = int.from_bytes(data[:8], "little")
    return json.loads(data[8 : 8 + header_size])["__metadata__"]


def test_temporaries_are_hidden_and_named_after_their_target(tmp_path, model, monkeypatch):
    import vae.checkpoints as checkpoints

    replaced = []
    real_replace = checkpoints.os.replace
    monkeypatch.setattr(checkpoints.os, "replace", lambda src, dst: replaced.append(src) or real_replace(src, dst))
    save_checkpoint(tmp_path / "m.safetensors", model, CONFIG)
    assert re.fullmatch(r"\.m\.safetensors\.\w+\.tmp", Path(replaced[0]).name)


def test_a_save_removes_only_its_own_stale_temporaries(tmp_path, model):
    stale = time.time() - STALE_TEMPORARY_SECONDS - 60
    names = [".m.safetensors.abc_123.tmp", ".m.safetensors.young.tmp", ".other.safetensors.abc.tmp",
             ".m.safetensors.x.y.tmp", "m.safetensors.tmp", "m.safetensorsab12cd.tmp", ".m.safetensors..tmp"]
    for name in names:
        (tmp_path / name).write_bytes(b"partial")
        if name != ".m.safetensors.young.tmp":  # a concurrent writer's, still being written
            os.utime(tmp_path / name, (stale, stale))
    folder = tmp_path / ".m.safetensors.folder.tmp"
    folder.mkdir()
    os.utime(folder, (stale, stale))
    save_checkpoint(tmp_path / "m.safetensors", model, CONFIG)
    left = {path.name for path in tmp_path.iterdir()}
    assert left == {"m.safetensors", folder.name} | set(names) - {".m.safetensors.abc_123.tmp"}


def test_the_folder_is_synced_after_the_rename(tmp_path, model, monkeypatch):
    import vae.checkpoints as checkpoints

    synced = []
    real_fsync = checkpoints.os.fsync
    monkeypatch.setattr(checkpoints.os, "fsync",
                        lambda fd: synced.append(stat.S_ISDIR(os.fstat(fd).st_mode)) or real_fsync(fd))
    save_checkpoint(tmp_path / "m.safetensors", model, CONFIG)
    assert synced == [False, True]  # the file's bytes, then the folder's entry for it


def test_a_loaded_model_has_trainable_cpu_parameters(model):
    loaded = load_checkpoint(checkpoint_bytes(model, CONFIG)).model
    assert all(isinstance(p, torch.nn.Parameter) and p.requires_grad and p.device.type == "cpu"
               for p in loaded.parameters())
    assert not loaded.training


def test_a_path_that_is_not_a_regular_file_is_a_sentence(tmp_path):
    with pytest.raises(CheckpointError, match="is not a regular file"):
        load_checkpoint(tmp_path)
    if hasattr(os, "mkfifo"):
        os.mkfifo(tmp_path / "pipe.safetensors")
        with pytest.raises(CheckpointError, match="is not a regular file"):  # refused, not read forever
            load_checkpoint(tmp_path / "pipe.safetensors")
