"""A trained run as the Train page's first screen shows it, readable without PyTorch: its curves (from the
checkpoint's metadata) and its pictures (a small .npz beside the checkpoint). The page opens on the bundled run
while PyTorch is still loading in the background.

    python -m vae preview vae/pretrained/digits.safetensors   # writes vae/pretrained/digits.preview.npz
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from safetensors import safe_open

from vae.config import TrainConfig, pretrained_path
from vae.metrics import EpochMetrics

PICTURED_IMAGES = 10  # held-out images shown with their reconstructions
PICTURED_SAMPLES = 20  # decoded prior draws


@dataclass(frozen=True)
class RunPreview:
    config: TrainConfig
    train: dict[str, np.ndarray]  # "step", "elbo", "reconstruction", "kl": per SGD step, thinned
    held_out: tuple[EpochMetrics, ...]
    reconstructions: np.ndarray  # (2N, H, W) in [0, 1]: N held-out images, then their reconstructions
    samples: np.ndarray  # (S, H, W) in [0, 1]: the decoder applied to fixed prior draws


def preview_path(checkpoint: str | Path) -> Path:
    return Path(checkpoint).with_suffix(".preview.npz")


def read_run_metadata(checkpoint: str | Path) -> tuple[TrainConfig, dict]:
    """The config and metrics a checkpoint file carries, read from its header alone (no tensors, no torch)."""
    with safe_open(str(checkpoint), framework="np") as file:
        metadata = file.metadata()
    return TrainConfig.from_json(metadata["config"]), json.loads(metadata.get("metrics", "{}"))


def load_preview(checkpoint: str | Path) -> RunPreview:
    """The run behind `checkpoint`: curves from its metadata, pictures from its .preview.npz."""
    config, metrics = read_run_metadata(checkpoint)
    with np.load(preview_path(checkpoint), allow_pickle=False) as pictures:
        reconstructions, samples = (pictures[name].astype(np.float32) / 255 for name in ("reconstructions", "samples"))
    train = {name: np.asarray(values) for name, values in metrics.get("train", {}).items()}
    held_out = tuple(EpochMetrics(**row) for row in metrics.get("held_out", []))
    return RunPreview(config, train, held_out, reconstructions, samples)


@functools.cache
def bundled_preview(name: str) -> RunPreview:
    """Read once per process: the Train page's first screen redraws it twice a second. Never mutate it."""
    return load_preview(pretrained_path(name))


def preview_pictures(checkpoint: str | Path) -> dict[str, np.ndarray]:
    """Recompute the pictures from the checkpoint's weights (PyTorch), as the 8-bit arrays the .npz stores."""
    from vae.checkpoints import load_checkpoint  # here, not at the top: reading a preview needs no torch
    from vae.data import load_dataset
    from vae.model import progress_pictures

    loaded = load_checkpoint(checkpoint)
    dataset = load_dataset(loaded.config.dataset)
    reconstructions, samples = progress_pictures(loaded.model, dataset.x_test[:PICTURED_IMAGES], PICTURED_SAMPLES)
    return {"reconstructions": to_uint8(reconstructions), "samples": to_uint8(samples)}


def write_preview(checkpoint: str | Path) -> Path:
    path = preview_path(checkpoint)
    np.savez_compressed(path, **preview_pictures(checkpoint))
    return path


def to_uint8(images: np.ndarray) -> np.ndarray:
    return (np.clip(np.nan_to_num(images), 0, 1) * 255).round().astype(np.uint8)
