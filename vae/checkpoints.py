"""Checkpoints: safetensors weights plus the training config and final metrics as JSON metadata.

Never pickle: a checkpoint is tensors and strings only, so opening an untrusted upload runs no code.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load, save

from vae.config import PRETRAINED, ConfigError, TrainConfig, pretrained_path
from vae.model import VAE

FORMAT = "reparam-lab/1"


class CheckpointError(ValueError):
    """A file that is not a checkpoint this version can rebuild; the message says why."""


@dataclass(frozen=True)
class Checkpoint:
    model: VAE
    config: TrainConfig
    metrics: dict[str, Any]


def checkpoint_bytes(model: VAE, config: TrainConfig, metrics: dict[str, Any] | None = None) -> bytes:
    """The checkpoint as bytes (for a download button); `save_checkpoint` writes the same bytes."""
    # safetensors wants contiguous, untied CPU tensors.
    tensors = {name: t.detach().to("cpu").contiguous().clone() for name, t in model.state_dict().items()}
    # safetensors metadata is str -> str: the config goes in as JSON, the dataclass's own fields and values.
    metadata = {"format": FORMAT, "config": config.to_json(), "metrics": json.dumps(metrics or {})}
    return save(tensors, metadata=metadata)


def save_checkpoint(path: str | Path, model: VAE, config: TrainConfig, metrics: dict[str, Any] | None = None) -> Path:
    """Write atomically: a temporary file in the same folder, renamed into place only when complete."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = checkpoint_bytes(model, config, metrics)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(payload)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(source: str | Path | bytes) -> Checkpoint:
    """Rebuild the model from a file or bytes; `CheckpointError` for anything that does not match."""
    if isinstance(source, (str, Path)):
        try:
            source = Path(source).read_bytes()
        except OSError as error:
            raise CheckpointError(f"Could not read the checkpoint: {error.strerror or error}.") from None
    tensors, metadata = _parse(source)
    config = _config_from(metadata)
    model = VAE(config.model)
    _check_tensors(tensors, model.state_dict())
    model.load_state_dict(tensors)
    return Checkpoint(model=model.eval(), config=config, metrics=json.loads(metadata.get("metrics", "{}")))


def _parse(data: bytes) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    try:
        tensors = load(data)
        header_size = int.from_bytes(data[:8], "little")
        metadata = json.loads(data[8 : 8 + header_size]).get("__metadata__") or {}
    except (SafetensorError, ValueError, UnicodeDecodeError, json.JSONDecodeError):
        raise CheckpointError("This file is not a safetensors checkpoint (it may be truncated or corrupt).") from None
    if metadata.get("format") != FORMAT:
        raise CheckpointError(f"This safetensors file was not written by reparam-lab (expected format {FORMAT}).")
    return tensors, metadata


def _config_from(metadata: dict[str, str]) -> TrainConfig:
    """The config JSON as `TrainConfig.to_json` wrote it; its choices are plain strings, so files written before
    they were enums read the same."""
    if "config" not in metadata:
        raise CheckpointError("The checkpoint has no configuration to rebuild its model from.")
    try:
        config = TrainConfig.from_json(metadata["config"])
        config.validate()
    except ConfigError as error:
        raise CheckpointError(f"The checkpoint's configuration cannot be read: {error}") from None
    return config


def _check_tensors(found: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    missing, extra = sorted(set(expected) - set(found)), sorted(set(found) - set(expected))
    if missing or extra:
        raise CheckpointError(
            f"The checkpoint's tensors do not match its model (missing {missing}, unexpected {extra})."
        )
    for name, tensor in expected.items():
        if found[name].shape != tensor.shape or found[name].dtype != tensor.dtype:
            raise CheckpointError(
                f"Tensor {name} has shape {tuple(found[name].shape)} ({found[name].dtype}); "
                f"the model needs {tuple(tensor.shape)} ({tensor.dtype})."
            )
        if not torch.isfinite(found[name]).all():
            raise CheckpointError(f"Tensor {name} contains NaN or infinite values.")


def load_pretrained(name: str) -> Checkpoint:
    """One of the bundled checkpoints in `PRETRAINED`."""
    if name not in PRETRAINED:
        raise CheckpointError(f"There is no bundled checkpoint {name!r}; choose one of {', '.join(PRETRAINED)}.")
    return load_checkpoint(pretrained_path(name))
