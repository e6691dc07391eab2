"""What a training run publishes, readable without PyTorch: its status, per-step metric history and held-out
metrics, and the snapshot a UI polls. The Train page's first screen draws from these before torch is imported."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from vae.config import TrainConfig

TRAIN_METRICS = ("elbo", "reconstruction", "kl", "grad_norm")


class JobStatus(StrEnum):
    IDLE = "idle"  # built, not started
    RUNNING = "running"
    PAUSED = "paused"
    FINISHED = "finished"  # ran all its epochs
    STOPPED = "stopped"
    FAILED = "failed"  # an unexpected error; the message says which


@dataclass(frozen=True)
class EpochMetrics:
    """Held-out ELBO terms after an epoch, nats per example."""

    epoch: int
    elbo: float
    reconstruction: float
    kl: float


class MetricHistory:
    """Per-step metrics with bounded memory: when full, every other point is dropped and the stride doubles,
    so an hour-long run keeps an evenly thinned curve of at most `capacity` points."""

    def __init__(self, names: tuple[str, ...], capacity: int = 4000) -> None:
        self.names, self.capacity, self.stride = names, capacity, 1
        self._steps: list[int] = []
        self._rows: list[np.ndarray] = []

    def extend(self, first_step: int, rows: np.ndarray) -> None:
        """Append rows (n, len(names)) for steps first_step, first_step + 1, ..."""
        for offset, row in enumerate(rows):
            step = first_step + offset
            if step % self.stride == 0:
                self._steps.append(step)
                self._rows.append(row)
            if len(self._steps) > self.capacity:
                self._thin()

    def _thin(self) -> None:
        self.stride *= 2
        kept = [i for i, step in enumerate(self._steps) if step % self.stride == 0]
        self._steps = [self._steps[i] for i in kept]
        self._rows = [self._rows[i] for i in kept]

    def truncate(self, last_step: int) -> None:
        """Forget points after `last_step` (after a rewind to good weights)."""
        while self._steps and self._steps[-1] > last_step:
            self._steps.pop()
            self._rows.pop()

    def arrays(self) -> dict[str, np.ndarray]:
        rows = np.array(self._rows, dtype=np.float64).reshape(-1, len(self.names))
        return {"step": np.array(self._steps, dtype=np.int64), **{n: rows[:, i] for i, n in enumerate(self.names)}}


@dataclass(frozen=True)
class JobSnapshot:
    """A consistent copy of a job's state, safe to read from any thread."""

    status: JobStatus
    message: str
    step: int
    epoch: int  # completed epochs
    epochs: int
    steps_per_epoch: int
    steps_per_second: float
    device: str
    train: dict[str, np.ndarray]  # "step" and TRAIN_METRICS, per step (thinned)
    gradient_variance: dict[str, np.ndarray]  # "step", "variance": the variance probe, when one was asked for
    held_out: tuple[EpochMetrics, ...]
    config: TrainConfig
    learning_rate: float
    diverged: bool  # paused by the NaN guard, on restored weights

    @property
    def is_alive(self) -> bool:
        return self.status in (JobStatus.IDLE, JobStatus.RUNNING, JobStatus.PAUSED)

    @property
    def progress(self) -> float:
        return min(1.0, self.step / max(1, self.epochs * self.steps_per_epoch))

    @property
    def status_line(self) -> str:
        """One line for a UI: status, data, device, step and speed (the epoch gets its own counter)."""
        parts = [self.status.value.capitalize(), f"{self.config.dataset} on {self.device}", f"step {self.step:,}"]
        if self.status == JobStatus.RUNNING and self.steps_per_second:
            parts.append(f"{self.steps_per_second:,.0f} steps/s")
        return " · ".join(parts)
