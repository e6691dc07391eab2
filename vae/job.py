"""A training run in a background thread that a UI polls: start, pause, resume, step, stop, snapshot.

The thread owns the model, the optimiser and a private random generator. Everything another thread
may read (status, metrics history) sits behind one lock; the job never calls Streamlit. Metrics stay on
the training device and are read back every `sync_every` steps, so a GPU is never synchronised per step.
"""

from __future__ import annotations

import atexit
import copy
import math
import threading
import time
import weakref
from typing import Any

import numpy as np
import torch

from vae.checkpoints import checkpoint_bytes
from vae.config import TrainConfig
from vae.data import Dataset, load_dataset
from vae.elbo import ElboTerms, elbo_terms, training_loss
from vae.encoder_gradients import encoder_gradient_samples, mean_variance
from vae.metrics import TRAIN_METRICS, EpochMetrics, JobSnapshot, JobStatus, MetricHistory
from vae.model import VAE, build_model, progress_pictures

MAX_ACTIVE_JOBS = 4  # threads alive at once in this process: 2 cores cannot serve more usefully
_active_jobs = threading.BoundedSemaphore(MAX_ACTIVE_JOBS)
_workers: weakref.WeakSet[_Worker] = weakref.WeakSet()


@atexit.register
def _stop_all_workers() -> None:
    """A training thread still inside torch when the interpreter exits aborts the process noisily."""
    for worker in list(_workers):
        worker.request_stop()
    for worker in list(_workers):
        if worker.thread is not None:
            worker.thread.join(timeout=2)

class JobLimitError(RuntimeError):
    """Too many trainings are alive in this process."""


def resolve_device(name: str) -> torch.device:
    """'auto' picks the GPU when one is present."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("No CUDA GPU is available here; use --device cpu or auto.")
    return torch.device(name)


def warm_up() -> None:
    """Build one optimiser now: the first import of its machinery takes seconds, better at start-up."""
    torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1e-3, fused=True).step()


class TrainingJob:
    """Public face of a training run. Dropping the last reference stops its thread (a closed browser tab
    must not leave a thread training forever)."""

    def __init__(
        self,
        config: TrainConfig,
        dataset: Dataset | None = None,
        *,
        num_threads: int | None = 1,
        sync_every: int = 10,
        history_capacity: int = 4000,
        variance_probe_every: int = 0,
    ) -> None:
        config.validate()
        dataset = dataset if dataset is not None else load_dataset(config.dataset)
        # The data decides the input shape and the dataset name recorded in checkpoints.
        self.config = config.replace(dataset=dataset.name, input_shape=tuple(dataset.image_shape))
        self.dataset = dataset
        self._worker = _Worker(self.config, dataset, num_threads, sync_every, history_capacity)
        # Every this many steps, measure how noisy the encoder's gradient estimate is (the estimator race).
        self._worker.variance_probe_every = variance_probe_every
        weakref.finalize(self, self._worker.request_stop)

    def start(self, paused: bool = False) -> None:
        """Start the thread (once). `JobLimitError` when too many trainings are alive in this process."""
        self._worker.start(paused)

    def pause(self) -> None:
        self._worker.command(pause=True)

    def resume(self) -> None:
        self._worker.command(pause=False)

    def step(self, count: int = 1) -> None:
        """Run `count` minibatches, then stay paused (starts the job paused if needed)."""
        if self._worker.thread is None:
            self._worker.start(paused=True)
        self._worker.command(pause=True, steps=count)

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

    def wait_until(self, predicate, timeout: float = 30.0, poll: float = 0.01) -> JobSnapshot:
        """Poll `snapshot()` until predicate(snapshot) holds; TimeoutError otherwise (for tests and the CLI)."""
        deadline = time.monotonic() + timeout
        while True:
            snap = self.snapshot()
            if predicate(snap):
                return snap
            if time.monotonic() > deadline:
                raise TimeoutError(f"The job did not get there in {timeout} s: {snap.status_line}.")
            time.sleep(poll)

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


class _Worker:
    """The thread and everything it owns. Only `_run` and its helpers touch the model and optimiser."""

    def __init__(self, config: TrainConfig, dataset: Dataset, num_threads, sync_every, history_capacity) -> None:
        self.config, self.dataset = config, dataset
        self.num_threads, self.sync_every = num_threads, max(1, sync_every)
        self.device = resolve_device(config.device)
        self.thread: threading.Thread | None = None
        self.steps_per_epoch = math.ceil(len(dataset.x_train) / config.batch_size)
        # Shared state, guarded by _cond's lock.
        self._cond = threading.Condition()
        self._status, self._message = JobStatus.IDLE, ""
        self._want_pause = self._want_stop = False
        self._pending_steps, self._new_lr = 0, None
        self._lr, self._diverged = config.lr, False
        self._history = MetricHistory(TRAIN_METRICS, history_capacity)
        self._variance_history = MetricHistory(("variance",), history_capacity)
        self.variance_probe_every = 0
        self._held_out: list[EpochMetrics] = []
        self._published_step, self._steps_per_second = 0, 0.0
        # The model lock is held while weights change, so a reader never copies half an update.
        self._model_lock = threading.Lock()
        self._model: VAE | None = None
        self._model_copy: tuple[int, VAE] | None = None
        _workers.add(self)

    # --- control, from any thread -------------------------------------------------------------
    def start(self, paused: bool) -> None:
        with self._cond:
            if self.thread is not None:
                return
            if not _active_jobs.acquire(blocking=False):
                raise JobLimitError(
                    f"{MAX_ACTIVE_JOBS} trainings are already running on this server; stop one and try again."
                )
            self._want_pause = paused
            self.thread = threading.Thread(target=self._run, name="vae-training", daemon=True)
            self.thread.start()

    def command(self, pause: bool | None = None, steps: int = 0, lr: float | None = None) -> None:
        with self._cond:
            if pause is not None:
                self._want_pause = pause
            self._pending_steps += steps
            self._new_lr = lr if lr is not None else self._new_lr
            self._cond.notify_all()

    def request_stop(self) -> None:
        with self._cond:
            self._want_stop = True
            self._cond.notify_all()

    def snapshot(self) -> JobSnapshot:
        with self._cond:
            return JobSnapshot(
                status=self._status,
                message=self._message,
                step=self._published_step,
                epoch=len(self._held_out),
                epochs=self.config.epochs,
                steps_per_epoch=self.steps_per_epoch,
                steps_per_second=self._steps_per_second,
                device=str(self.device),
                train=self._history.arrays(),
                gradient_variance=self._variance_history.arrays(),
                held_out=tuple(self._held_out),
                config=self.config,
                learning_rate=self._lr,
                diverged=self._diverged,
            )

    def model_copy(self) -> VAE | None:
        with self._model_lock:
            if self._model is None:
                return None
            if self._model_copy is None or self._model_copy[0] != self._step:
                model = VAE(self.config.model)
                model.load_state_dict({k: v.to("cpu") for k, v in self._model.state_dict().items()})
                self._model_copy = (self._step, model.eval().requires_grad_(False))
            return self._model_copy[1]

    # --- the thread -----------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            if self.num_threads:
                torch.set_num_threads(self.num_threads)  # per OS thread: leaves a core for the server
            self._prepare()
            while self._next_action():
                self._train_step()
                if self._step % self.steps_per_epoch == 0:
                    self._end_epoch()
                    if len(self._held_out) >= self.config.epochs:
                        self._set_status(JobStatus.FINISHED, f"Finished {self.config.epochs} epochs.")
                        return
            self._flush()
            self._set_status(JobStatus.STOPPED, f"Stopped at step {self._step}.")
        except Exception as error:  # noqa: BLE001 - reported in the status, never lost in a dead thread
            self._set_status(JobStatus.FAILED, f"Training failed: {type(error).__name__}: {error}")
        finally:
            _active_jobs.release()

    def _prepare(self) -> None:
        config, device = self.config, self.device
        self._generator = torch.Generator(device=device).manual_seed(config.seed)
        # The whole dataset lives on the device: a minibatch is an index slice, no DataLoader.
        self._x_train = torch.as_tensor(self.dataset.x_train, device=device)
        self._x_test = torch.as_tensor(self.dataset.x_test, device=device)
        model = build_model(config.model, config.seed).to(device)
        # Fused Adam: one kernel for all tensors instead of several per tensor (about +20% steps/s on a CPU).
        self._optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, fused=True)
        self._step, self._first_unflushed = 0, 1
        self._baseline: torch.Tensor | float = 0.0  # score-function training: moving average of log p(x|z)
        self._pending: list[torch.Tensor] = []
        self._rate_clock = (time.perf_counter(), 0)
        with self._model_lock:
            self._model = model
        self._save_good_state()

    def _next_action(self) -> bool:
        """Block while paused; True to take one more step, False to stop."""
        while True:
            with self._cond:
                self._apply_new_lr()
                if self._want_stop:
                    return False
                if self._pending_steps:
                    self._pending_steps -= 1
                    self._single_step = True
                    return True
                if not self._want_pause:
                    self._single_step = False
                    if self._status != JobStatus.RUNNING:
                        self._status, self._message, self._diverged = JobStatus.RUNNING, "", False
                        self._rate_clock = (time.perf_counter(), self._step)
                    return True
            self._flush()  # make everything up to the pause visible before sleeping
            with self._cond:
                if self._want_pause and not self._pending_steps and not self._want_stop:
                    if self._status != JobStatus.PAUSED:
                        self._status = JobStatus.PAUSED
                        self._message = self._message or f"Paused at step {self._step}."
                    self._cond.wait()

    def _apply_new_lr(self) -> None:
        if self._new_lr is not None:
            for group in self._optimizer.param_groups:
                group["lr"] = self._new_lr
            self._lr, self._new_lr = self._new_lr, None

    def _beta(self) -> float:
        warmup_steps = self.config.kl_warmup_epochs * self.steps_per_epoch
        ramp = min(1.0, self._step / warmup_steps) if warmup_steps > 0 else 1.0
        return self.config.beta * ramp

    def _train_step(self) -> None:
        """One SGD step on one minibatch; metrics stay on the device until the next flush."""
        position = self._step % self.steps_per_epoch
        if position == 0:
            self._order = torch.randperm(len(self._x_train), generator=self._generator, device=self.device)
        batch = self._x_train[self._order[position * self.config.batch_size : (position + 1) * self.config.batch_size]]
        with self._model_lock:
            terms = elbo_terms(self._model, batch, self._generator, self.config.encoder_gradient, self._baseline)
            loss = training_loss(terms, self._beta())
            self._optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.get_total_norm([p.grad for p in self._model.parameters()])
            self._optimizer.step()
            self._step += 1
        if terms.score_surrogate is not None:  # the baseline never uses the current draws: still unbiased
            mean = terms.reconstruction.mean().detach()
            self._baseline = mean if self._step == 1 else 0.9 * self._baseline + 0.1 * mean
        finite = torch.isfinite(loss) & torch.isfinite(grad_norm)
        row = [terms.elbo.mean(), terms.reconstruction.mean(), terms.kl.mean(), grad_norm, finite]
        self._pending.append(torch.stack(row).detach())  # (5,), still on the device
        if len(self._pending) >= self.sync_every or self._single_step:
            self._flush()

    def _flush(self) -> None:
        """Read pending metrics back (one device sync); rewind to the last good weights if any were not finite."""
        if not self._pending:
            return
        rows = torch.stack(self._pending).cpu().numpy()  # (n, 5)
        self._pending.clear()
        first = self._first_unflushed
        self._first_unflushed = self._step + 1
        bad = np.flatnonzero(rows[:, -1] == 0)
        if bad.size:
            self._rewind(first + int(bad[0]))
            return
        self._save_good_state()
        now = time.perf_counter()
        started, step_then = self._rate_clock
        with self._cond:
            self._history.extend(first, rows[:, :-1])
            self._published_step = self._step
            if now > started and self._step > step_then:
                rate = (self._step - step_then) / (now - started)
                # Smoothed: one slow interval (an evaluation, a busy server) should not make the figure jump.
                previous = self._steps_per_second
                self._steps_per_second = rate if previous == 0 else 0.8 * previous + 0.2 * rate
        self._rate_clock = (now, self._step)
        self._maybe_probe_variance()

    def _maybe_probe_variance(self) -> None:
        """Every `variance_probe_every` steps: the variance of this run's own encoder-gradient estimator on a
        fixed held-out minibatch, at the current weights (32 repetitions, batched)."""
        every = self.variance_probe_every
        if not every or self.config.model.posterior != "gaussian":
            return
        steps = self._variance_history.arrays()["step"]
        if len(steps) and self._step // every <= steps[-1] // every:
            return
        generator = torch.Generator(device=self.device).manual_seed(self.config.seed + 2)
        with self._model_lock:
            samples = encoder_gradient_samples(self._model, self._x_test[:64], self.config.encoder_gradient, 32,
                                               generator=generator, baseline="moving_average")
        with self._cond:
            self._variance_history.extend(self._step, np.array([[mean_variance(samples)]]))

    def _save_good_state(self) -> None:
        with self._model_lock:
            weights = {k: v.detach().clone() for k, v in self._model.state_dict().items()}
        self._good = (self._step, weights, copy.deepcopy(self._optimizer.state_dict()))

    def _rewind(self, bad_step: int) -> None:
        """Divergence: restore the weights and optimiser state of the last good flush, then pause."""
        good_step, weights, optimizer_state = self._good
        with self._model_lock:
            self._model.load_state_dict(weights)
            self._optimizer.load_state_dict(copy.deepcopy(optimizer_state))
            self._step = good_step
        self._first_unflushed = good_step + 1
        message = (
            f"The loss or its gradient became NaN or infinite at step {bad_step}. The weights from step "
            f"{good_step} were restored and training paused: lower the learning rate, then resume."
        )
        with self._cond:
            self._history.truncate(good_step)
            self._variance_history.truncate(good_step)
            self._published_step = good_step
            self._want_pause, self._pending_steps = True, 0
            self._status, self._message, self._diverged = JobStatus.PAUSED, message, True

    @torch.no_grad()
    def _end_epoch(self) -> None:
        self._flush()
        if self._step // self.steps_per_epoch <= len(self._held_out):  # a rewind undid this epoch's end
            return
        # Fixed noise for evaluation, so held-out numbers do not consume or depend on the training draws.
        generator = torch.Generator(device=self.device).manual_seed(self.config.seed + 1)
        totals = torch.zeros(3, device=self.device)
        with self._model_lock:
            for batch in torch.split(self._x_test, 1024):
                terms: ElboTerms = elbo_terms(self._model, batch, generator)
                totals += torch.stack([terms.elbo.sum(), terms.reconstruction.sum(), terms.kl.sum()])
        elbo, reconstruction, kl = (totals / len(self._x_test)).tolist()
        with self._cond:
            self._held_out.append(EpochMetrics(len(self._held_out) + 1, elbo, reconstruction, kl))

    def _set_status(self, status: JobStatus, message: str) -> None:
        with self._cond:
            self._status, self._message = status, message


def metrics_summary(snapshot: JobSnapshot, curve_points: int = 300) -> dict[str, Any]:
    """Per-epoch held-out metrics and the per-step ELBO terms thinned to about `curve_points` points, as plain data
    (the CLI's JSON and checkpoint metadata: a checkpoint carries the curves of the run that made it)."""
    stride = max(1, -(-len(snapshot.train["step"]) // curve_points))
    curve = {name: snapshot.train[name][::stride].tolist() for name in ("step", "elbo", "reconstruction", "kl")}
    return {"step": snapshot.step, "epoch": snapshot.epoch, "held_out": [vars(m) for m in snapshot.held_out],
            "train": curve}
