"""Checkpoints: safetensors weights plus the training config and final metrics as JSON metadata.

Never pickle: a checkpoint is tensors and strings only, so opening an untrusted upload runs no code. And a file
from a user is hostile until validated: its size, its header, its config and the tensor shapes the header
declares are checked, in that order, before a tensor is read or a model's memory is allocated.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import reprlib
import stat
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load, save

from vae.config import PRETRAINED, ConfigError, TrainConfig, pretrained_path
from vae.model import VAE

FORMAT = "reparam-lab/1"
# Every model within vae.config's bounds fits (the largest, 4x2048 wide on 64x64 images, is ~170 MB); the
# bundled ones are under 1 MB and pytorch/examples' MNIST model 2.6 MB. The app's upload cap is lower still.
MAX_CHECKPOINT_MB = 256
MAX_CHECKPOINT_BYTES = MAX_CHECKPOINT_MB * 2**20
MAX_HEADER_BYTES = 2**20  # the JSON header: a config, metrics and a dozen tensor entries take a few KB
# A temporary this old is a killed writer's (no save takes minutes), so removing it breaks no concurrent save.
STALE_TEMPORARY_SECONDS = 600
_TEMPORARY_SUFFIX = ".tmp"  # a temporary is named `.<target name>.<random>.tmp`, beside its target
_SAFETENSORS_DTYPES = {torch.float32: "F32", torch.float64: "F64", torch.float16: "F16", torch.bfloat16: "BF16"}
_NOT_SAFETENSORS = "This file is not a safetensors checkpoint"


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
    """Write atomically: a hidden temporary beside `path`, renamed into place only when complete, so a crash or
    a kill leaves the old file whole. Stale temporaries of earlier, killed saves of `path` are removed."""
    path = Path(path)
    payload = checkpoint_bytes(model, config, metrics)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_temporaries(path)
        _write_atomically(path, payload)
    except OSError as error:
        raise CheckpointError(f"Could not write the checkpoint {path}: {error.strerror or error}.") from None
    return path


def _write_atomically(path: Path, payload: bytes) -> None:
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=_temporary_prefix(path), suffix=_TEMPORARY_SUFFIX)
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(payload)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    _sync_folder(path.parent)


def _sync_folder(folder: Path) -> None:
    """Make the rename itself survive a crash (best effort: not every system can open a folder)."""
    with contextlib.suppress(OSError):
        handle = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(handle)
        finally:
            os.close(handle)


def _temporary_prefix(path: Path) -> str:
    return f".{path.name}."  # hidden, and named after its target


def _remove_stale_temporaries(path: Path) -> None:
    """Remove the temporaries killed saves of `path` left: only files of its own pattern, and only old ones, so
    a concurrent writer's temporary survives."""
    # tempfile's random part has no dot, so the temporaries of a target `a.b` beside `a` never match `a`'s
    own = re.compile(re.escape(_temporary_prefix(path)) + r"\w+" + re.escape(_TEMPORARY_SUFFIX), re.ASCII)
    cutoff = time.time() - STALE_TEMPORARY_SECONDS
    for entry in os.scandir(path.parent):
        if not own.fullmatch(entry.name):
            continue
        with contextlib.suppress(OSError):  # removed meanwhile by another save, or not ours to remove
            info = entry.stat(follow_symlinks=False)
            if stat.S_ISREG(info.st_mode) and info.st_mtime < cutoff:
                os.unlink(entry.path)


# ---------------------------------------------------------------------------------------------------------------
# load: size, header, config, declared shapes; only then tensors and the model
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Entry:
    """One tensor as the header declares it."""

    dtype: str
    shape: tuple[int, ...]
    begin: int  # byte offsets into the data after the header
    end: int


@dataclass(frozen=True)
class _Header:
    metadata: dict[str, str]
    tensors: dict[str, _Entry]
    data_size: int  # the bytes after the header


def load_checkpoint(source: str | Path | bytes) -> Checkpoint:
    """Rebuild the model from a file or bytes; `CheckpointError` for anything that does not match. Nothing is
    allocated for the model until the header declares exactly the tensors its config needs."""
    data = _read_capped(Path(source)) if isinstance(source, (str, Path)) else _capped(source)
    header = _parse_header(data)
    if header.metadata.get("format") != FORMAT:
        raise CheckpointError(f"This safetensors file was not written by reparam-lab (expected format {FORMAT}).")
    config, metrics = _config_from(header.metadata), _metrics_from(header.metadata)
    with torch.device("meta"):  # the model's tensor names, shapes and dtypes, with no memory behind them
        model = VAE(config.model)
    expected = model.state_dict()
    _check_declared(header, expected)
    _check_offsets(header, expected)
    tensors = _tensors(data)
    model.load_state_dict(tensors, assign=True)  # the loaded tensors become the parameters: no second copy
    return Checkpoint(model=model.eval(), config=config, metrics=metrics)


def _check_size(size: int) -> None:
    if size > MAX_CHECKPOINT_BYTES:
        raise CheckpointError(f"The file is larger than {MAX_CHECKPOINT_MB} MB, the most a checkpoint may be.")


def _capped(data: bytes) -> bytes:
    _check_size(len(data))
    return data


def _read_capped(path: Path) -> bytes:
    """The file's bytes, its size checked before it is read (and again after: it may grow meanwhile)."""
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):  # a folder, or a pipe that would block or never end
            raise CheckpointError(f"The checkpoint {path} is not a regular file.")
        _check_size(info.st_size)
        with path.open("rb") as file:
            return _capped(file.read(MAX_CHECKPOINT_BYTES + 1))
    except OSError as error:
        raise CheckpointError(f"Could not read the checkpoint: {error.strerror or error}.") from None


def _malformed(reason: str) -> CheckpointError:
    return CheckpointError(f"{_NOT_SAFETENSORS}: {reason}.")


def _parse_header(data: bytes) -> _Header:
    """safetensors' framing, read here rather than by the library, so nothing is loaded before it is checked:
    8 bytes of little-endian header length, a JSON object of tensor entries and `__metadata__`, the data."""
    size = int.from_bytes(data[:8], "little")
    if size > MAX_HEADER_BYTES:
        raise _malformed(f"its header would be {size:,} bytes, over the {MAX_HEADER_BYTES:,} allowed")
    if len(data) < 8 or 8 + size > len(data):
        raise CheckpointError(f"{_NOT_SAFETENSORS} (it may be truncated or corrupt).")
    try:
        header = json.loads(data[8 : 8 + size].decode("utf-8"))
    except (ValueError, RecursionError):  # not UTF-8, not JSON, or nested too deep
        raise _malformed("its header is not JSON") from None
    if not isinstance(header, dict):
        raise _malformed("its header is not a JSON object")
    metadata = header.pop("__metadata__", {})
    if not isinstance(metadata, dict) or not all(isinstance(value, str) for value in metadata.values()):
        raise _malformed("its metadata is not a table of strings")
    tensors = {name: _entry(name, value) for name, value in header.items()}
    return _Header(metadata, tensors, len(data) - 8 - size)


def _counts(value: Any, length: int | None = None) -> bool:
    """A JSON list of non-negative ints (of `length` items)."""
    return (isinstance(value, list) and all(type(item) is int and item >= 0 for item in value)
            and length in (None, len(value)))


def _entry(name: str, value: Any) -> _Entry:
    if not (isinstance(value, dict) and isinstance(value.get("dtype"), str) and _counts(value.get("shape"))
            and _counts(value.get("data_offsets"), 2)):
        raise _malformed(f"the entry for {reprlib.repr(name)} is not a tensor's dtype, shape and data_offsets")
    begin, end = value["data_offsets"]
    return _Entry(value["dtype"], tuple(value["shape"]), begin, end)


def _lowercase_first(sentence: str) -> str:
    """A sentence continued after a colon (an acronym such as KL keeps its capitals)."""
    return sentence[:1].lower() + sentence[1:] if sentence[1:2].islower() else sentence


def _config_from(metadata: dict[str, str]) -> TrainConfig:
    """The config JSON as `TrainConfig.to_json` wrote it; its choices are plain strings, so files written before
    they were enums read the same."""
    if "config" not in metadata:
        raise CheckpointError("The checkpoint has no configuration to rebuild its model from.")
    try:
        config = TrainConfig.from_json(metadata["config"])
        config.validate()
    except ConfigError as error:
        reason = _lowercase_first(str(error))
        raise CheckpointError(f"The checkpoint's configuration cannot be read: {reason}") from None
    return config


def _metrics_from(metadata: dict[str, str]) -> dict[str, Any]:
    try:
        metrics = json.loads(metadata.get("metrics", "{}"))  # older checkpoints have none
    except (ValueError, RecursionError):
        metrics = None
    if not isinstance(metrics, dict):
        raise CheckpointError("The checkpoint's metrics are not a JSON object.")
    return metrics


def _names(names: list[str]) -> str:
    return reprlib.repr(names)  # at most a few: a hostile header may declare thousands


def _check_declared(header: _Header, expected: dict[str, torch.Tensor]) -> None:
    """The header declares exactly the tensors, shapes and dtypes the config's model has."""
    missing, extra = sorted(set(expected) - set(header.tensors)), sorted(set(header.tensors) - set(expected))
    if missing or extra:
        raise CheckpointError(
            f"The checkpoint's tensors do not match its model (missing {_names(missing)}, unexpected {_names(extra)})."
        )
    for name, tensor in expected.items():
        entry, dtype = header.tensors[name], _SAFETENSORS_DTYPES[tensor.dtype]
        if entry.shape != tuple(tensor.shape) or entry.dtype != dtype:
            raise CheckpointError(f"Tensor {name} has shape {reprlib.repr(entry.shape)} ({entry.dtype[:16]}); "
                                  f"the model needs {tuple(tensor.shape)} ({dtype}).")


def _check_offsets(header: _Header, expected: dict[str, torch.Tensor]) -> None:
    """Each tensor's bytes fit its shape and lie inside the file, and together they fill it exactly."""
    for name, tensor in expected.items():
        entry = header.tensors[name]
        if entry.end > header.data_size:
            raise _malformed(f"the data of tensor {name} lies beyond the end of the file (it may be truncated)")
        if entry.end - entry.begin != tensor.numel() * tensor.element_size():
            raise _malformed(f"the data_offsets of tensor {name} do not match its shape")
    spans = sorted((entry.begin, entry.end) for entry in header.tensors.values())
    starts, ends = [begin for begin, _ in spans], [end for _, end in spans]
    if starts != [0, *ends[:-1]] or ends[-1] != header.data_size:
        raise _malformed("its tensors' data does not fill the file exactly")


def _tensors(data: bytes) -> dict[str, torch.Tensor]:
    """The tensors, once the header is known to be sound, refused if any holds NaN or infinity."""
    try:
        tensors = load(data)
    except (SafetensorError, ValueError):
        raise CheckpointError(f"{_NOT_SAFETENSORS} (it may be truncated or corrupt).") from None
    for name, tensor in tensors.items():
        if not torch.isfinite(tensor).all():
            raise CheckpointError(f"Tensor {name} contains NaN or infinite values.")
    return tensors


def load_pretrained(name: str) -> Checkpoint:
    """One of the bundled checkpoints in `PRETRAINED`."""
    if name not in PRETRAINED:
        raise CheckpointError(f"There is no bundled checkpoint {name!r}; choose one of {', '.join(PRETRAINED)}.")
    return load_checkpoint(pretrained_path(name))
