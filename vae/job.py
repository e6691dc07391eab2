"""A training run in a background thread that a UI polls: start, pause, resume, step, stop, snapshot.

Three parts, each readable alone: `vae.trainer.Trainer` takes SGD steps (no thread), `vae.metrics.RunPublisher`
holds what other threads may read (status, history, held-out metrics) behind its lock, and `_Runner` here owns the
thread and its commands. The job never calls Streamlit. Metrics stay on the training device and are read back
every `sync_every` steps, so a GPU is never synchronised per step.
"""

from __future__ import annotations

import atexit
import ctypes
import math
import os
import sys
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from enum import Enum, auto
from typing import Any

import numpy as np
import torch

from vae import scheduler
from vae.checkpoints import checkpoint_bytes
from vae.config import TrainConfig
from vae.data import Dataset, load_dataset
from vae.metrics import EpochMetrics, JobSnapshot, JobStatus, MetricHistory, RunPublisher
from vae.model import VAE, progress_pictures
from vae.scheduler import CapacityError, OwnerWatch, Ticket, TrainingSlots, default_capacity
from vae.step_inspection import StepRecord
from vae.trainer import DivergenceGuard, Trainer, resolve_device

__all__ = ["CapacityError", "EpochMetrics", "JobSnapshot", "JobStatus", "MetricHistory", "StepRecord",
           "TrainingJob", "metrics_summary", "owners_with_live_jobs", "resolve_device", "start_together",
           "stop_jobs_of", "warm_up", "watch_owners"]

# A server's runs yield the CPU to its pages (a slider's picture, a chart's redraw) when both want it: Linux nice
# 19 weighs a thread about 1/68 of a normal one (nice 10, 1/9, left a slider beside three runs 10-15% slower); a run
# with a core to itself loses nothing. The CLI trains in the foreground, at 0.
BACKGROUND_NICENESS = 19
SLOTS = TrainingSlots(default_capacity())  # trainings at once in this process; the others queue (vae.scheduler)
_workers: weakref.WeakSet[_Runner] = weakref.WeakSet()


@atexit.register
def _stop_all_workers() -> None:
    """A training thread still inside torch when the interpreter exits aborts the process noisily."""
    for worker in list(_workers):
        worker.request_stop()
    for worker in list(_workers):
        if worker.thread is not None:
            worker.thread.join(timeout=2)


def owners_with_live_jobs() -> set[str]:
    """The owners (browser sessions) that have a run training, paused or queued."""
    return {worker.owner for worker in list(_workers) if worker.owner is not None and worker.is_alive()}


def stop_jobs_of(owner: str) -> int:
    """Stop every run of `owner` and let each drop its weights when its thread ends (nobody will look at them:
    the owner is gone). Returns how many were stopped."""
    workers = [worker for worker in list(_workers) if worker.owner == owner and worker.is_alive()]
    for worker in workers:
        worker.release_on_exit = True
        worker.request_stop()
    return len(workers)


def watch_owners(is_present: Callable[[str], bool], grace_s: float = 300.0, poll_s: float = 2.0) -> OwnerWatch:
    """Start a thread that stops the runs of owners absent for more than `grace_s` (see `vae.scheduler`)."""
    return OwnerWatch(owners_with_live_jobs, is_present, stop_jobs_of, grace_s, poll_s).start()


def start_together(jobs: Sequence[TrainingJob], paused: bool = False) -> None:
    """Start runs that must train side by side (a race): they take their slots at the same moment, or wait in the
    queue together. `CapacityError` when this server cannot train that many at once."""
    slots = SLOTS
    ticket = slots.enqueue(len(jobs))
    for job in jobs:
        job._worker.start(paused, ticket, slots)


def warm_up() -> None:
    """Build one optimiser now: the first import of its machinery takes seconds, better at start-up."""
    torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1e-3, fused=True).step()


class TrainingJob:
    """Public face of a training run. It waits in the queue for a free slot (`SLOTS`) and then trains. Dropping
    the last reference stops its thread, and so does `stop_jobs_of(owner)` once its browser session is gone."""

    def __init__(
        self,
        config: TrainConfig,
        dataset: Dataset | None = None,
        *,
        num_threads: int | None = 1,
        sync_every: int = 10,
        history_capacity: int = 4000,
        variance_probe_every: int = 0,
        owner: str | None = None,
        niceness: int = BACKGROUND_NICENESS,
    ) -> None:
        config.validate()
        dataset = dataset if dataset is not None else load_dataset(config.dataset)
        # The data decides the input shape and the dataset name recorded in checkpoints.
        self.config = config.replace(dataset=dataset.name, input_shape=tuple(dataset.image_shape))
        self.dataset = dataset
        self._worker = _Runner(self.config, dataset, num_threads, sync_every, history_capacity)
        self._worker.niceness = niceness
        self._worker.owner = owner  # who may see this run: when they are gone for good, it stops
        # Every this many steps, measure how noisy the encoder's gradient estimate is (the estimator race).
        self._worker.variance_probe_every = variance_probe_every
        weakref.finalize(self, self._worker.request_stop)

    def start(self, paused: bool = False) -> None:
        """Start the thread (once): it trains as soon as a slot is free, and is QUEUED until then."""
        self._worker.start(paused)

    def pause(self) -> None:
        self._worker.command(pause=True)

    def resume(self) -> None:
        self._worker.command(pause=False)

    def step(self, count: int = 1) -> None:
        """Run `count` minibatches, then stay paused (starts the job paused if needed). Each is recorded number by
        number: see `last_step_record`."""
        if self._worker.thread is None:
            self._worker.start(paused=True)
        self._worker.command(pause=True, steps=count)

    def last_step_record(self) -> StepRecord | None:
        """What the latest `step()` minibatch did (images, noise, loc, scale, z, ELBO terms, gradient and update
        norms); None before the first. It is in place before the snapshot shows that step."""
        return self._worker.last_record

    def wait_for_step_record(self, after: int, timeout: float = 10.0) -> StepRecord | None:
        """The record of a `step()` past step `after`, once the snapshot shows that step too; None if none came
        within `timeout` s (the run is queued, has ended, or rewound that step)."""

        def newer(record: StepRecord | None) -> bool:
            return record is not None and record.step > after

        def arrived(snap: JobSnapshot) -> bool:  # the record is in place before its step is published: wait for both
            if self.config.model.categorical:  # no record is kept for a categorical z: the step itself will do
                return not snap.is_alive or snap.step > after
            record = self.last_step_record()
            return not snap.is_alive or (newer(record) and snap.step >= record.step)

        try:
            self.wait_until(arrived, timeout)
        except TimeoutError:
            return None
        record = self.last_step_record()
        return record if newer(record) else None

    def set_learning_rate(self, lr: float) -> None:
        """Applied before the next step, e.g. after a divergence paused the run."""
        self._worker.command(lr=lr)

    def stop(self) -> None:
        self._worker.request_stop()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the thread to end; True when it has."""
        thread = self._worker.thread
        if thread is not None:
            thread.join(timeout)
        return thread is None or not thread.is_alive()

    def wait_until(self, predicate, timeout: float = 120.0, poll: float = 0.01) -> JobSnapshot:
        """Poll `snapshot()` until predicate(snapshot) holds; TimeoutError otherwise (for tests and the CLI)."""
        deadline = time.monotonic() + timeout
        while True:
            snap = self.snapshot()
            if predicate(snap):
                return snap
            if time.monotonic() > deadline:
                raise TimeoutError(f"The job did not get there in {timeout} s: {snap.status_line}.")
            time.sleep(poll)

    @property
    def status(self) -> JobStatus:
        """The run's status now, without a snapshot's copy of every curve (the pages ask it on every redraw)."""
        return self._worker.publisher.status

    def snapshot(self) -> JobSnapshot:
        return self._worker.snapshot()

    def model(self) -> VAE | None:
        """A CPU copy of the latest weights (None before the first step is prepared). Every page reads this."""
        return self._worker.model_copy()

    def pictures(self, images: int = 10, samples: int = 20) -> tuple[np.ndarray, np.ndarray] | None:
        """The first `images` held-out images over their reconstructions, and decoded prior samples, from the
        latest weights (see `progress_pictures`); None before the first step is prepared."""
        model = self.model()
        return None if model is None else progress_pictures(model, self.dataset.x_test[:images], samples)

    def checkpoint(self) -> bytes | None:
        """The latest weights as checkpoint bytes, with the config and held-out metrics as metadata."""
        model = self.model()
        if model is None:
            return None
        return checkpoint_bytes(model, self.config, metrics_summary(self.snapshot()))


class Action(Enum):
    """What the training thread does next."""

    STOP = auto()
    RUN = auto()  # keep training
    ONE_STEP = auto()  # one minibatch of a Step request, then show it at once


class _Runner:
    """The thread and its commands. The loop is `_run`; the maths is in `Trainer`, what others see in
    `RunPublisher`. Commands arrive from any thread under `_commands`; only the thread touches the trainer."""

    def __init__(self, config: TrainConfig, dataset: Dataset, num_threads, sync_every, history_capacity) -> None:
        self.config, self.dataset = config, dataset
        self.num_threads, self.sync_every = num_threads, max(1, sync_every)
        self.device = resolve_device(config.device)
        self.steps_per_epoch = math.ceil(len(dataset.x_train) / config.batch_size)
        self.publisher = RunPublisher(config, self.steps_per_epoch, str(self.device), history_capacity)
        self.variance_probe_every = 0
        self.niceness = 0
        self.owner: str | None = None
        self.release_on_exit = False  # drop the weights when the thread ends (nobody is left to look at them)
        self.thread: threading.Thread | None = None
        self._ticket: Ticket | None = None
        self._slots: TrainingSlots | None = None
        self._commands = threading.Condition()
        self._want_pause = self._want_stop = False
        self._pending_steps, self._new_lr = 0, None
        # Held while weights change, so a reader never copies half an update.
        self._model_lock = threading.Lock()
        self._trainer: Trainer | None = None
        self._model_copy: tuple[int, VAE] | None = None
        self.last_record: StepRecord | None = None  # replaced whole by the thread: readers need no lock
        _workers.add(self)

    # --- control, from any thread -------------------------------------------------------------
    def start(self, paused: bool, ticket: Ticket | None = None, slots: TrainingSlots | None = None) -> None:
        with self._commands:
            if self.thread is not None:
                return
            self._slots = slots or SLOTS  # the slots it waits in are the ones it frees, even if SLOTS is replaced
            self._ticket = ticket or self._slots.enqueue(1)
            self._want_pause = paused
            self.thread = threading.Thread(target=self._run, name="vae-training", daemon=True)
            self.thread.start()

    def command(self, pause: bool | None = None, steps: int = 0, lr: float | None = None) -> None:
        with self._commands:
            if pause is not None:
                self._want_pause = pause
            self._pending_steps += steps
            self._new_lr = lr if lr is not None else self._new_lr
            self._commands.notify_all()

    def request_stop(self) -> None:
        with self._commands:
            self._want_stop = True
            self._commands.notify_all()
        if self._slots is not None:
            self._slots.wake()  # a run waiting in the queue leaves it now

    def is_alive(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def snapshot(self) -> JobSnapshot:
        return self.publisher.snapshot()

    def model_copy(self) -> VAE | None:
        with self._model_lock:
            trainer = self._trainer
            if trainer is None:
                return None
            if self._model_copy is None or self._model_copy[0] != trainer.step_count:
                model = VAE(self.config.model)
                model.load_state_dict({k: v.to("cpu") for k, v in trainer.model.state_dict().items()})
                self._model_copy = (trainer.step_count, model.eval().requires_grad_(False))
            return self._model_copy[1]

    # --- the thread -----------------------------------------------------------------------------
    def _run(self) -> None:
        _name_os_thread(b"vae-training")
        _lower_os_priority(self.niceness)
        if not self._slots.wait(self._ticket, self._show_queue_position, lambda: self._want_stop):
            self.publisher.set_status(JobStatus.STOPPED, "Stopped while waiting for a free training slot.")
            return
        try:
            if self.num_threads:
                torch.set_num_threads(self.num_threads)  # per OS thread: leaves a core for the server
            with self._model_lock:
                self._trainer = trainer = Trainer(self.config, self.dataset, self.device)
            guard, pending = DivergenceGuard(trainer), []
            while (action := self._next_action(trainer, guard, pending)) is not Action.STOP:
                one_step = action is Action.ONE_STEP
                scheduler.PAGES_FIRST.give_way()
                with self._model_lock:
                    pending.append(trainer.step(record=one_step))  # (5,) on the device: no sync per step
                if one_step:  # kept before the flush publishes the step: whoever sees the step finds its record
                    self.last_record = trainer.last_record
                if len(pending) >= self.sync_every or one_step:
                    self._flush(trainer, guard, pending)
                if trainer.epoch_done and self._end_epoch(trainer, guard, pending):
                    self.publisher.set_status(JobStatus.FINISHED, f"Finished {self.config.epochs} epochs.")
                    return
            self._flush(trainer, guard, pending)
            why = " (its browser tab had been gone too long)" if self.release_on_exit else ""
            self.publisher.set_status(JobStatus.STOPPED, f"Stopped at step {trainer.step_count}{why}.")
        except Exception as error:  # noqa: BLE001 - reported in the status, never lost in a dead thread
            self.publisher.set_status(JobStatus.FAILED, f"Training failed: {type(error).__name__}: {error}")
        finally:
            self._slots.release()
            if self.release_on_exit:
                with self._model_lock:
                    self._trainer = self._model_copy = None

    def _show_queue_position(self, position: int) -> None:
        self.publisher.set_status(JobStatus.QUEUED, f"number {position} in the queue for one of {self._slots.capacity} "
                                                    "training slots")

    def _next_action(self, trainer: Trainer, guard: DivergenceGuard, pending: list[torch.Tensor]) -> Action:
        """Block while paused; then stop, take one requested step, or keep running."""
        while True:
            with self._commands:
                self._apply_new_lr(trainer)
                if self._want_stop:
                    return Action.STOP
                if self._pending_steps:
                    self._pending_steps -= 1
                    return Action.ONE_STEP
                if not self._want_pause:
                    if self.publisher.status != JobStatus.RUNNING:
                        self.publisher.set_status(JobStatus.RUNNING)
                    return Action.RUN
            self._flush(trainer, guard, pending)  # make everything up to the pause visible before sleeping
            with self._commands:
                if self._want_pause and not self._pending_steps and not self._want_stop:
                    if self.publisher.status != JobStatus.PAUSED:
                        publisher = self.publisher
                        publisher.set_status(JobStatus.PAUSED, publisher.message or
                                             f"Paused at step {trainer.step_count}.", publisher.diverged)
                    self._commands.wait()

    def _apply_new_lr(self, trainer: Trainer) -> None:
        if self._new_lr is not None:
            trainer.set_learning_rate(self._new_lr)
            self.publisher.learning_rate, self._new_lr = self._new_lr, None

    def _flush(self, trainer: Trainer, guard: DivergenceGuard, pending: list[torch.Tensor]) -> None:
        """Read pending metrics back (one device sync); rewind to the last good weights if any were not finite."""
        if not pending:
            return
        rows = torch.stack(pending).cpu().numpy()  # (n, 5)
        pending.clear()
        first_step = trainer.step_count - len(rows) + 1
        with self._model_lock:
            message = guard.check((rows[:, -1] != 0).tolist(), first_step)
        if message is not None:
            with self._commands:
                self._want_pause, self._pending_steps = True, 0
            self.publisher.rewind(trainer.step_count, message)
            return
        self.publisher.publish_steps(first_step, rows[:, :-1])
        self._maybe_probe_variance(trainer)

    def _maybe_probe_variance(self, trainer: Trainer) -> None:
        """Every `variance_probe_every` steps: the variance of this run's own encoder-gradient estimator."""
        every = self.variance_probe_every
        if not every or self.config.model.posterior not in ("gaussian", "categorical"):
            return
        last = self.publisher.last_variance_step
        if last is not None and trainer.step_count // every <= last // every:
            return
        with self._model_lock:
            variance = trainer.encoder_gradient_variance()
        self.publisher.publish_variance(trainer.step_count, variance)

    def _end_epoch(self, trainer: Trainer, guard: DivergenceGuard, pending: list[torch.Tensor]) -> bool:
        """Evaluate on the held-out data; True when that was the last epoch."""
        self._flush(trainer, guard, pending)
        if trainer.step_count // self.steps_per_epoch <= self.publisher.epochs_done:  # a rewind undid the epoch
            return False
        with self._model_lock:
            metrics = trainer.evaluate()
        self.publisher.publish_epoch(metrics.elbo, metrics.reconstruction, metrics.kl)
        return self.publisher.epochs_done >= self.config.epochs


def _name_os_thread(name: bytes) -> None:
    """Name the OS thread (Linux), so `top -H` and /proc/PID/task show which threads train."""
    try:
        ctypes.CDLL(None).prctl(15, name, 0, 0, 0)  # 15: PR_SET_NAME
    except (OSError, AttributeError):  # not Linux
        pass


def _lower_os_priority(niceness: int) -> None:
    """Raise this OS thread's nice value (Linux: per thread, and the threads it starts inherit it). Anyone may
    lower their own priority; elsewhere the call would address a process, so it is left out."""
    if niceness <= 0 or not sys.platform.startswith("linux"):
        return
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, max(os.getpriority(os.PRIO_PROCESS, tid), niceness))
    except OSError:  # a sandbox that forbids it: train at the usual priority
        pass


def metrics_summary(snapshot: JobSnapshot, curve_points: int = 300) -> dict[str, Any]:
    """Per-epoch held-out metrics and the per-step ELBO terms thinned to about `curve_points` points, as plain data
    (the CLI's JSON and checkpoint metadata: a checkpoint carries the curves of the run that made it)."""
    stride = max(1, -(-len(snapshot.train["step"]) // curve_points))
    curve = {name: snapshot.train[name][::stride].tolist() for name in ("step", "elbo", "reconstruction", "kl")}
    return {"step": snapshot.step, "epoch": snapshot.epoch, "held_out": [vars(m) for m in snapshot.held_out],
            "train": curve}
