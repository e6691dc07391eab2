"""Scaling: steps/s, examples/s and memory of the library's training step as the batch (32 to 4096) and the hidden
width (100 to 2048) grow, around the "pytorch-examples-mnist" preset (784-400-20, Bernoulli, Adam 1e-3); and the
memory a one-hour run's history keeps.

Memory is counted where it is exact on any device: the weights with their gradients and Adam's two moments (four
float32 copies), and the tensors autograd saves for the backward pass (summed by
`torch.autograd.graph.saved_tensors_hooks` during one step): the part that grows with the batch. On a GPU the
allocator's peak is printed as well. The history is a `vae.metrics.RunPublisher` fed an hour of steps at the
fastest rate measured here, ten at a time as the job publishes them; its size is what `tracemalloc` counts.

    python bench/scaling.py [--seconds 1.5] [--device auto|cpu|cuda] [--data DIR] [--markdown]
"""

from __future__ import annotations

import argparse
import sys
import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._figures import Figure, emit, text_table  # noqa: E402
from bench.train_throughput import PRESET, library_dataset, load_images  # noqa: E402
from vae.config import preset_config  # noqa: E402
from vae.data import Dataset  # noqa: E402
from vae.job import resolve_device  # noqa: E402
from vae.metrics import RunPublisher  # noqa: E402
from vae.trainer import Trainer  # noqa: E402

BATCHES = (32, 64, 128, 256, 512, 1024, 2048, 4096)
WIDTHS = (100, 200, 400, 800, 1600, 2048)
HOUR_S = 3600
PUBLISH_EVERY = 10  # steps per flush, as `vae.job.TrainingJob` publishes them
HISTORY_TARGET_MB = 2.0
MB = 2**20


@dataclass(frozen=True)
class Point:
    batch: int
    width: int
    steps_per_s: float
    optimizer_mb: float  # weights, gradients and Adam's moments
    saved_mb: float  # what autograd keeps for the backward pass, one step
    device_peak_mb: float | None  # the CUDA allocator's peak, on a GPU

    @property
    def examples_per_s(self) -> float:
        return self.steps_per_s * self.batch


def saved_for_backward_mb(trainer: Trainer) -> float:
    """The bytes of every tensor autograd saves during one training step (a tensor saved twice counts once)."""
    saved: dict[int, int] = {}

    def keep(tensor: torch.Tensor) -> torch.Tensor:
        saved[tensor.untyped_storage().data_ptr()] = tensor.untyped_storage().nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(keep, lambda tensor: tensor):
        trainer.step()
    return sum(saved.values()) / MB


def measure(dataset: Dataset, device: torch.device, batch: int, width: int, seconds: float) -> Point:
    config = preset_config(PRESET).replace(batch_size=batch, device=device.type, hidden_sizes=(width,))
    trainer = Trainer(config, dataset, device)
    for _ in range(3):  # warm-up: first calls allocate and pick kernels
        trainer.step()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    saved = saved_for_backward_mb(trainer)
    steps, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds or steps < 3:
        row = trainer.step()
        steps += 1
    row.cpu()  # one synchronisation at the end: a GPU's queued steps are inside the interval
    elapsed = time.perf_counter() - start
    parameters = sum(p.numel() * p.element_size() for p in trainer.model.parameters())
    peak = torch.cuda.max_memory_allocated(device) / MB if device.type == "cuda" else None
    return Point(batch, width, steps / elapsed, 4 * parameters / MB, saved, peak)


def history_of_an_hour(steps_per_s: float) -> tuple[float, int]:
    """(MiB, points kept) of a run's published history after an hour at `steps_per_s`."""
    config = preset_config(PRESET)
    rows = np.random.default_rng(0).normal(size=(PUBLISH_EVERY, 4))
    clock = iter(np.arange(0, HOUR_S, PUBLISH_EVERY / steps_per_s))  # the hour's clock, not this program's
    tracemalloc.start()
    publisher = RunPublisher(config, steps_per_epoch=469, device="cpu", clock=lambda: float(next(clock)))
    for first in range(1, int(steps_per_s * HOUR_S) - PUBLISH_EVERY, PUBLISH_EVERY):
        publisher.publish_steps(first, rows.copy())  # a new array per flush, as the job's read-back makes
    size, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return size / MB, len(publisher.history.arrays()["step"])


def table(points: list[Point], markdown: bool) -> str:
    header = ("batch", "width", "steps/s", "examples/s", "weights+Adam MiB", "saved for backward MiB",
              "device peak MiB")
    rows = [(str(p.batch), str(p.width), f"{p.steps_per_s:.1f}", f"{p.examples_per_s:,.0f}", f"{p.optimizer_mb:.1f}",
             f"{p.saved_mb:.1f}", "-" if p.device_peak_mb is None else f"{p.device_peak_mb:.0f}") for p in points]
    return text_table(header, [list(row) for row in rows], markdown, right=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.5, help="timed training per point (default 1.5)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--data", help="folder with MNIST IDX files (default: the library's cache folder)")
    parser.add_argument("--markdown", action="store_true", help="the tables in Markdown, for README")
    args = parser.parse_args()
    device = resolve_device(args.device)
    images = load_images(Path(args.data) if args.data else None)
    dataset = library_dataset(images)
    print(f"Scaling on {device} ({torch.get_num_threads()} torch threads), data: {images.source}")
    by_batch = [measure(dataset, device, batch, 400, args.seconds) for batch in BATCHES]
    print("\nBatch size, hidden width 400:\n" + table(by_batch, args.markdown), flush=True)
    by_width = [measure(dataset, device, 128, width, args.seconds) for width in WIDTHS]
    print("\nHidden width, batch 128:\n" + table(by_width, args.markdown), flush=True)
    fastest = max(p.steps_per_s for p in by_batch + by_width)
    history_mb, points = history_of_an_hour(fastest)
    print(f"\nHistory of a one-hour run at {fastest:.0f} steps/s ({fastest * HOUR_S:,.0f} steps): "
          f"{history_mb:.2f} MiB, {points:,} points kept")
    emit([Figure("scaling: history memory of a one-hour run", history_mb, "MiB", HISTORY_TARGET_MB, False,
                 f"{points:,} points of {fastest * HOUR_S:,.0f} steps")])


if __name__ == "__main__":
    main()
