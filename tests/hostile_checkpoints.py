"""Hostile checkpoints: files a user could upload, each with the sentence `load_checkpoint` refuses it with.

`CASES` is shared: a catalogue runs each case through the library, the CLI and the pages. Every `make` is
deterministic and cheap (a few KB, well under a second); the one over the size cap is `bytes(n)`, zero pages
the kernel hands out only when something reads them, and it is refused on its length alone.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from vae.checkpoints import FORMAT, MAX_CHECKPOINT_BYTES, MAX_CHECKPOINT_MB, MAX_HEADER_BYTES
from vae.config import ModelConfig, TrainConfig
from vae.model import build_model

SMALL = TrainConfig(model=ModelConfig(hidden_sizes=(16,), latent_dim=3), epochs=2)
NOT_SAFETENSORS = "not a safetensors checkpoint"


@dataclass(frozen=True)
class HostileCase:
    case_id: str
    make: Callable[[], bytes]
    expected: str  # a regex the CheckpointError's message matches (re.search)


@functools.cache
def _small_state() -> dict[str, torch.Tensor]:
    return {name: t.detach().contiguous() for name, t in build_model(SMALL.model, seed=0).state_dict().items()}


def small_tensors(**replaced: torch.Tensor) -> dict[str, torch.Tensor]:
    """The small model's weights (a fresh dict), with some tensors replaced."""
    return _small_state() | replaced


_DTYPES = {torch.float32: "F32", torch.float64: "F64"}


def safetensors_bytes(tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> bytes:
    """A safetensors file as `safetensors.torch.save` writes one, but the same bytes every time (save writes the
    metadata table in a random order)."""
    header: dict[str, Any] = {} if metadata is None else {"__metadata__": metadata}
    chunks, offset = [], 0
    for name in sorted(tensors):
        raw = tensors[name].contiguous().numpy().tobytes()
        header[name] = {"dtype": _DTYPES[tensors[name].dtype], "shape": list(tensors[name].shape),
                        "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    return framed(text + b" " * (-len(text) % 8), b"".join(chunks))  # padded, as safetensors aligns the data


def checkpoint(tensors: dict[str, torch.Tensor] | None = None, **metadata: str | None) -> bytes:
    """A checkpoint of the small model as `save_checkpoint` writes it; metadata values replace (None: removes)."""
    fields = {"format": FORMAT, "config": SMALL.to_json(), "metrics": "{}"} | metadata
    return safetensors_bytes(small_tensors() if tensors is None else tensors,
                             {key: value for key, value in fields.items() if value is not None})


def with_config(model: dict[str, Any] | None = None, **fields: Any) -> bytes:
    """The small model's checkpoint with config fields (and `model` fields) replaced, the tensors unchanged."""
    config = json.loads(SMALL.to_json())
    config.update(fields)
    config["model"].update(model or {})
    return checkpoint(config=json.dumps(config))


def framed(header: bytes, data: bytes = b"") -> bytes:
    """safetensors' framing: the header's length (8 bytes, little-endian), the header, the tensors' bytes."""
    return len(header).to_bytes(8, "little") + header + data


def with_header(edit: Callable[[dict[str, Any]], None]) -> bytes:
    """The small model's checkpoint with its JSON header edited in place by `edit`, the tensor bytes unchanged."""
    data = checkpoint()
    size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + size])
    edit(header)
    return framed(json.dumps(header).encode(), data[8 + size :])


def _offsets_beyond_the_file(header: dict[str, Any]) -> None:
    entry = header["to_loc.bias"]
    entry["data_offsets"] = [10**6, 10**6 + 12]


def _shape_not_a_list(header: dict[str, Any]) -> None:
    header["to_loc.bias"]["shape"] = "3"


CASES: list[HostileCase] = [
    HostileCase("empty", lambda: b"", NOT_SAFETENSORS),
    HostileCase("garbage", lambda: b"not a checkpoint at all", NOT_SAFETENSORS),
    HostileCase("truncated", lambda: checkpoint()[:-100], f"{NOT_SAFETENSORS}.*truncated"),
    HostileCase("cut-inside-header", lambda: checkpoint()[:200], NOT_SAFETENSORS),
    HostileCase("foreign-safetensors", lambda: safetensors_bytes({"weight": torch.zeros(2)}, {"format": "pt"}),
                "not written by reparam-lab"),
    HostileCase("safetensors-without-metadata", lambda: safetensors_bytes({"weight": torch.zeros(2)}),
                "not written by reparam-lab"),
    HostileCase("header-length-huge", lambda: (2**60).to_bytes(8, "little") + b"{}",
                f"{NOT_SAFETENSORS}: its header would be .* bytes, over the {MAX_HEADER_BYTES:,}"),
    HostileCase("header-not-json", lambda: framed(b"{not json}"), f"{NOT_SAFETENSORS}: its header is not JSON"),
    HostileCase("header-json-list", lambda: framed(b"[1, 2]"), f"{NOT_SAFETENSORS}: its header is not a JSON object"),
    HostileCase("header-deeply-nested", lambda: framed(b"[" * 100_000 + b"]" * 100_000),
                f"{NOT_SAFETENSORS}: its header is not JSON"),
    HostileCase("metadata-not-strings", lambda: framed(json.dumps({"__metadata__": {"format": 1}}).encode()),
                f"{NOT_SAFETENSORS}: its metadata is not a table of strings"),
    HostileCase("tensor-entry-malformed", lambda: with_header(_shape_not_a_list),
                f"{NOT_SAFETENSORS}: the entry for 'to_loc.bias' is not"),
    HostileCase("metadata-missing-config", lambda: checkpoint(config=None), "no configuration"),
    HostileCase("config-not-json", lambda: checkpoint(config="{"), "configuration cannot be read: .*not valid JSON"),
    HostileCase("config-json-list", lambda: checkpoint(config="[8, 8]"), "not a JSON object of settings"),
    HostileCase("model-a-list", lambda: checkpoint(config=json.dumps(json.loads(SMALL.to_json()) | {"model": [8]})),
                "the configuration's model is not a JSON object of settings"),
    HostileCase("latent-dim-string", lambda: with_config({"latent_dim": "8"}),
                "the setting latent_dim must be a whole number, not '8'"),
    HostileCase("latent-dim-bool", lambda: with_config({"latent_dim": True}),
                "the setting latent_dim must be a whole number, not True"),
    HostileCase("latent-dim-0", lambda: with_config({"latent_dim": 0}), "latent dimension must be between 1 and 64"),
    HostileCase("latent-dim-65", lambda: with_config({"latent_dim": 65}), "latent dimension must be between 1 and 64"),
    HostileCase("input-shape-length-1", lambda: with_config({"input_shape": [8]}),
                "the setting input_shape must be a list of 2 whole numbers"),
    HostileCase("input-shape-length-3", lambda: with_config({"input_shape": [8, 8, 8]}),
                "the setting input_shape must be a list of 2 whole numbers"),
    HostileCase("input-shape-huge", lambda: with_config({"input_shape": [100_000, 100_000]}),
                "images must be 1 to 64 pixels on a side"),
    HostileCase("hidden-size-string", lambda: with_config({"hidden_sizes": ["16"]}),
                "the setting hidden_sizes must be a list of whole numbers"),
    HostileCase("hidden-size-float", lambda: with_config({"hidden_sizes": [16.5]}),
                "the setting hidden_sizes must be a list of whole numbers"),
    HostileCase("hidden-size-bool", lambda: with_config({"hidden_sizes": [True]}),
                "the setting hidden_sizes must be a list of whole numbers"),
    HostileCase("hidden-size-negative", lambda: with_config({"hidden_sizes": [-16]}),
                "hidden layer widths must be between 1 and 2048, not -16"),
    HostileCase("hidden-width-20000", lambda: with_config({"hidden_sizes": [20_000]}),
                "hidden layer widths must be between 1 and 2048, not 20000"),
    HostileCase("hidden-width-100000", lambda: with_config({"hidden_sizes": [100_000, 100_000]}),
                "hidden layer widths must be between 1 and 2048, not 100000"),
    HostileCase("hidden-layers-10", lambda: with_config({"hidden_sizes": [16] * 10}),
                "1 to 4 hidden layers, not 10"),
    HostileCase("lr-string", lambda: with_config(lr="0.001"), "the setting lr must be a number, not '0.001'"),
    HostileCase("epochs-bool", lambda: with_config(epochs=True), "the setting epochs must be a whole number"),
    HostileCase("seed-huge", lambda: with_config(seed=2**64), "seed must be between 0 and"),
    HostileCase("lr-nan", lambda: with_config(lr=float("nan")), "learning rate must be a positive finite number"),
    HostileCase("unknown-field", lambda: with_config(learning_speed=3), "does not know: learning_speed"),
    HostileCase("unknown-choice", lambda: with_config({"posterior": "normal"}), "unknown posterior 'normal'"),
    HostileCase("metrics-not-json", lambda: checkpoint(metrics="{"), "metrics are not a JSON object"),
    HostileCase("metrics-a-list", lambda: checkpoint(metrics="[1]"), "metrics are not a JSON object"),
    HostileCase("tensor-nan", lambda: checkpoint(small_tensors(**{"to_loc.weight": torch.full((3, 16), torch.nan)})),
                "Tensor to_loc.weight contains NaN or infinite values"),
    HostileCase("tensor-shape-mismatch", lambda: with_config({"latent_dim": 4}),
                r"Tensor to_loc\.weight has shape \(3, 16\) \(F32\); the model needs \(4, 16\) \(F32\)"),
    HostileCase("tensor-dtype-mismatch",
                lambda: checkpoint({name: t.double() for name, t in small_tensors().items()}),
                r"Tensor encoder\.0\.0\.weight has shape \(16, 64\) \(F64\); the model needs \(16, 64\) \(F32\)"),
    HostileCase("tensor-missing",
                lambda: checkpoint({k: v for k, v in small_tensors().items() if k != "to_loc.bias"}),
                r"missing \['to_loc.bias'\]"),
    HostileCase("tensor-unexpected", lambda: checkpoint(small_tensors(extra=torch.zeros(1))),
                r"unexpected \['extra'\]"),
    HostileCase("data-offsets-beyond-file", lambda: with_header(_offsets_beyond_the_file),
                f"{NOT_SAFETENSORS}: the data of tensor to_loc.bias lies beyond the end of the file"),
    HostileCase("over-the-size-cap", lambda: bytes(MAX_CHECKPOINT_BYTES + 1), f"larger than {MAX_CHECKPOINT_MB} MB"),
]
