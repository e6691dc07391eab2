"""What a training run publishes, readable without PyTorch: its status, per-step metric history and held-out
metrics, and the snapshot a UI polls. The Train page's first screen draws from these before torch is imported."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from vae.config import TrainConfig

TRAIN_METRICS = ("elbo", "reconstruction", "kl", "grad_norm")
SPEED_WINDOW_S = 5.0  # steps/s is measured over about this many seconds: steady, yet it follows a change


class JobStatus(StrEnum):
    IDLE = "idle"  # built, not started
    QUEUED = "queued"  # started, waiting for a free training slot (vae.scheduler)
    RUNNING = "running"
    PAUSED = "paused"
    FINISHED = "finished"  # ran all its epochs
    STOPPED = "stopped"
    FAILED = "failed"  # an unexpected error; the message says which


# How often a view of a run redraws itself, by the run's status. A training run moves every second; a queued one only
# moves up the queue; a stopped, finished or failed one never changes again (absent: no redraws). A class's tabs
# share one server, and each redraw of each tab costs it and that tab's browser.
REDRAW_PERIOD_S = {JobStatus.IDLE: 1.0, JobStatus.RUNNING: 1.0, JobStatus.PAUSED: 1.0, JobStatus.QUEUED: 2.0}


@dataclass(frozen=True)
class EpochMetrics:
    """Held-out ELBO terms after an epoch, nats per example."""

    epoch: int
    elbo: float
    reconstruction: float
    kl: float


class MetricHistory:
    """Per-step metrics with bounded memory: when full, every other point is dropped and the stride doubles,
    so an hour-long run keeps an evenly thinned curve of at most `capacity` points, in two arrays allocated once
    (a list of rows kept each flush's whole read-back alive, and a snapshot had to stack them again)."""

    def __init__(self, names: tuple[str, ...], capacity: int = 4000) -> None:
        self.names, self.capacity, self.stride = names, capacity, 1
        self._steps = np.empty(capacity + 1, dtype=np.int64)
        self._rows = np.empty((capacity + 1, len(names)), dtype=np.float64)
        self._size = 0

    def extend(self, first_step: int, rows: np.ndarray) -> None:
        """Append rows (n, len(names)) for steps first_step, first_step + 1, ..."""
        for offset, row in enumerate(rows):
            step = first_step + offset
            if step % self.stride == 0:
                self._steps[self._size], self._rows[self._size] = step, row
                self._size += 1
            if self._size > self.capacity:
                self._thin()

    def _thin(self) -> None:
        self.stride *= 2
        kept = np.flatnonzero(self._steps[: self._size] % self.stride == 0)
        self._steps[: len(kept)], self._rows[: len(kept)] = self._steps[kept], self._rows[kept]
        self._size = len(kept)

    def truncate(self, last_step: int) -> None:
        """Forget points after `last_step` (after a rewind to good weights)."""
        self._size = int(np.searchsorted(self._steps[: self._size], last_step, side="right"))

    def arrays(self) -> dict[str, np.ndarray]:
        rows = self._rows[: self._size].copy()
        return {"step": self._steps[: self._size].copy(), **{n: rows[:, i] for i, n in enumerate(self.names)}}


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
        return self.status in (JobStatus.IDLE, JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.PAUSED)

    @property
    def is_training(self) -> bool:
        """Its weights may still move (waiting to start, queued or running): not paused, not ended."""
        return self.is_alive and self.status != JobStatus.PAUSED

    @property
    def progress(self) -> float:
        return min(1.0, self.step / max(1, self.epochs * self.steps_per_epoch))

    @property
    def status_line(self) -> str:
        """One line for a UI: status, data, device, step and speed (the epoch gets its own counter)."""
        if self.status == JobStatus.QUEUED:
            return f"Queued · {self.message}"
        parts = [self.status.value.capitalize(), f"{self.config.dataset} on {self.device}", f"step {self.step:,}"]
        if self.status == JobStatus.RUNNING and self.steps_per_second:
            parts.append(f"{self.steps_per_second:,.0f} steps/s")
        return " · ".join(parts)


class RunPublisher:
    """What a run shows other threads, behind one lock: status, the per-step history, held-out metrics and the
    speed. The training thread writes it; any thread takes a consistent `snapshot`."""

    def __init__(self, config: TrainConfig, steps_per_epoch: int, device: str, history_capacity: int = 4000,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.config, self.steps_per_epoch, self.device = config, steps_per_epoch, device
        self.lock = threading.Lock()
        self.status, self.message, self.diverged = JobStatus.IDLE, "", False
        self.learning_rate = config.lr
        self.step = 0
        self.history = MetricHistory(TRAIN_METRICS, history_capacity)
        self.variance_history = MetricHistory(("variance",), history_capacity)
        self.held_out: list[EpochMetrics] = []
        self._now = clock
        self._speed_marks: deque[tuple[float, int]] = deque([(clock(), 0)])  # (time, step) over the last seconds

    def set_status(self, status: JobStatus, message: str = "", diverged: bool = False) -> None:
        with self.lock:
            self.status, self.message, self.diverged = status, message, diverged
            if status == JobStatus.RUNNING:
                self._speed_marks = deque([(self._now(), self.step)])  # the speed counts running time only

    def publish_steps(self, first_step: int, rows: np.ndarray) -> None:
        """Rows (n, len(TRAIN_METRICS)) for steps first_step .. first_step + n - 1."""
        now = self._now()
        with self.lock:
            self.history.extend(first_step, rows)
            self.step = first_step + len(rows) - 1
            self._speed_marks.append((now, self.step))
            while len(self._speed_marks) > 2 and now - self._speed_marks[1][0] >= SPEED_WINDOW_S:
                self._speed_marks.popleft()

    def publish_epoch(self, elbo: float, reconstruction: float, kl: float) -> None:
        with self.lock:
            self.held_out.append(EpochMetrics(len(self.held_out) + 1, elbo, reconstruction, kl))

    def publish_variance(self, step: int, variance: float) -> None:
        with self.lock:
            self.variance_history.extend(step, np.array([[variance]]))

    def rewind(self, good_step: int, message: str) -> None:
        """Forget what came after `good_step` and say why the run paused."""
        with self.lock:
            self.history.truncate(good_step)
            self.variance_history.truncate(good_step)
            self.step = good_step
            self.status, self.message, self.diverged = JobStatus.PAUSED, message, True

    def _steps_per_second(self) -> float:
        """Steps over time across the last `SPEED_WINDOW_S` seconds: the rate the step counter shows. (An average
        of per-interval rates reads high: the short intervals between two flushes count as much as the long ones.)"""
        (started, first), (now, last) = self._speed_marks[0], self._speed_marks[-1]
        return (last - first) / (now - started) if now > started and last > first else 0.0

    @property
    def last_variance_step(self) -> int | None:
        with self.lock:
            steps = self.variance_history.arrays()["step"]
            return int(steps[-1]) if len(steps) else None

    @property
    def epochs_done(self) -> int:
        with self.lock:
            return len(self.held_out)

    def snapshot(self) -> JobSnapshot:
        with self.lock:
            return JobSnapshot(
                status=self.status, message=self.message, step=self.step, epoch=len(self.held_out),
                epochs=self.config.epochs, steps_per_epoch=self.steps_per_epoch,
                steps_per_second=self._steps_per_second(), device=self.device, train=self.history.arrays(),
                gradient_variance=self.variance_history.arrays(), held_out=tuple(self.held_out), config=self.config,
                learning_rate=self.learning_rate, diverged=self.diverged,
            )
