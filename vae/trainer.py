"""SGD on a VAE, one minibatch at a time, with no thread: the loop the training job runs, and what tests and
benchmarks call directly. It reads top to bottom like the lecture's pseudocode:

    trainer = Trainer(config, dataset)
    for step in range(trainer.steps_per_epoch * config.epochs):
        metrics = trainer.step()          # x <- minibatch; z = g(mu, sigma, eps); L; backprop; Adam
        ...
    held_out = trainer.evaluate()

Everything random comes from one private generator seeded by the config, so a seed gives the same run whatever
else the process is doing. Metrics stay on the training device; the caller decides when to read them back.
`step(record=True)` also keeps what the step did, number by number (`last_record`, a `StepRecord`): only when
asked, since recording reads everything back.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch

from vae.categorical import temperature_at
from vae.config import TrainConfig
from vae.data import Dataset
from vae.elbo import elbo_terms, training_loss
from vae.encoder_gradients import categorical_gradient_samples, encoder_gradient_samples, mean_variance
from vae.metrics import TRAIN_METRICS, EpochMetrics
from vae.model import VAE, build_model
from vae.step_inspection import StepRecord, StepRecorder

BASELINE_DECAY = 0.9  # score-function training: moving average of log p(x|z), the control variate
CYCLE_RAMP = 0.5  # the part of each annealing cycle over which β ramps up (Fu et al.'s R)
STEP_METRICS = (*TRAIN_METRICS, "finite")  # the row `step` returns, in order


def resolve_device(name: str) -> torch.device:
    """'auto' picks the GPU when one is present."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("No CUDA GPU is available here; use --device cpu or auto.")
    return torch.device(name)


@dataclass(frozen=True)
class TrainerState:
    """What undoing steps needs: the step count, the weights and Adam's moments (copies)."""

    step: int
    weights: dict[str, torch.Tensor]
    optimizer: dict


class Trainer:
    """The model, its optimiser and the data on one device; `step` takes one SGD step."""

    def __init__(self, config: TrainConfig, dataset: Dataset, device: torch.device | None = None) -> None:
        self.config = config
        self.device = device if device is not None else resolve_device(config.device)
        self.steps_per_epoch = math.ceil(len(dataset.x_train) / config.batch_size)
        self.generator = torch.Generator(device=self.device).manual_seed(config.seed)
        # The whole dataset lives on the device: a minibatch is an index slice, no DataLoader.
        self.x_train = torch.as_tensor(dataset.x_train, device=self.device)  # (N, D)
        self.x_test = torch.as_tensor(dataset.x_test, device=self.device)  # (M, D)
        self.model: VAE = build_model(config.model, config.seed).to(self.device)
        # Fused Adam: one kernel for all tensors instead of several per tensor (about +20% steps/s on a CPU).
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr, fused=True)
        self.step_count = 0
        self.baseline: torch.Tensor | float = 0.0
        self._order = torch.arange(0)
        self.last_record: StepRecord | None = None  # of the latest step(record=True)

    @property
    def epoch_done(self) -> bool:
        return self.step_count > 0 and self.step_count % self.steps_per_epoch == 0

    def beta(self) -> float:
        """The KL weight now. With `kl_cycles` (cyclical annealing, Fu et al. 2019) the run is that many cycles:
        in the first half of each, β ramps linearly from 0, then holds at `config.beta`. Otherwise it ramps from 0
        over `kl_warmup_epochs` once, then stays."""
        if self.config.kl_cycles > 0:
            period = self.config.epochs * self.steps_per_epoch / self.config.kl_cycles
            return self.config.beta * min(1.0, (self.step_count % period) / (CYCLE_RAMP * period))
        warmup_steps = self.config.kl_warmup_epochs * self.steps_per_epoch
        ramp = min(1.0, self.step_count / warmup_steps) if warmup_steps > 0 else 1.0
        return self.config.beta * ramp

    def temperature(self) -> float | None:
        """The Gumbel-softmax temperature now (a categorical posterior; None otherwise)."""
        if not self.config.model.categorical:
            return None
        return temperature_at(self.config, self.step_count, self.config.epochs * self.steps_per_epoch)

    def next_indices(self) -> torch.Tensor:
        """The training rows (B,) of the next minibatch, from a fresh random order each epoch."""
        position = self.step_count % self.steps_per_epoch
        if position == 0:
            self._order = torch.randperm(len(self.x_train), generator=self.generator, device=self.device)
        size = self.config.batch_size
        return self._order[position * size : (position + 1) * size]

    def next_batch(self) -> torch.Tensor:
        """The next minibatch (B, D)."""
        return self.x_train[self.next_indices()]

    def step(self, batch: torch.Tensor | None = None, record: bool = False) -> torch.Tensor:
        """One SGD step on `batch` (default: the next minibatch). Returns the metrics row (5,) of STEP_METRICS,
        still on the device: reading it back would synchronise a GPU on every step. With `record`, also sets
        `last_record` to what the step did (a copy of the weights, a replay of the draws, a read back)."""
        indices = None
        if batch is None:
            indices = self.next_indices()
            batch = self.x_train[indices]
        # Before the step's draws and update: the recorder keeps the generator's state and the old weights.
        # A categorical z has no loc, scale and noise to record (vae.step_inspection follows a continuous one).
        recording = record and not self.config.model.categorical
        recorder = StepRecorder(self.model, batch, indices, self.generator) if recording else None
        beta = self.beta()
        terms = elbo_terms(self.model, batch, self.generator, self.config.encoder_gradient, self.baseline,
                           self.temperature())
        loss = training_loss(terms, beta, self.config.free_bits)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.get_total_norm([p.grad for p in self.model.parameters()])
        self.optimizer.step()
        self.step_count += 1
        if terms.score_surrogate is not None:  # the baseline never uses the current draws: still unbiased
            mean = terms.reconstruction.mean().detach()
            decay = BASELINE_DECAY if self.step_count > 1 else 0.0
            self.baseline = decay * self.baseline + (1 - decay) * mean
        finite = torch.isfinite(loss) & torch.isfinite(grad_norm)
        row = torch.stack([terms.elbo.mean(), terms.reconstruction.mean(), terms.kl.mean(), grad_norm, finite])
        if recorder is not None:
            lr = self.optimizer.param_groups[0]["lr"]
            self.last_record = recorder.finish(self.step_count, terms, row, beta, loss, lr)
        return row.detach()  # (5,)

    @torch.no_grad()
    def evaluate(self, epoch: int = 0) -> EpochMetrics:
        """Held-out ELBO terms, nats per example, with fixed noise: the numbers neither consume nor depend on the
        training draws."""
        generator = torch.Generator(device=self.device).manual_seed(self.config.seed + 1)
        totals = torch.zeros(3, device=self.device)
        for batch in torch.split(self.x_test, 1024):
            terms = elbo_terms(self.model, batch, generator)
            totals += torch.stack([terms.elbo.sum(), terms.reconstruction.sum(), terms.kl.sum()])
        elbo, reconstruction, kl = (totals / len(self.x_test)).tolist()
        return EpochMetrics(epoch, elbo, reconstruction, kl)

    def encoder_gradient_variance(self, examples: int = 64, repetitions: int = 32) -> float:
        """How noisy this run's own encoder-gradient estimator is now, on a fixed held-out minibatch."""
        generator = torch.Generator(device=self.device).manual_seed(self.config.seed + 2)
        x, estimator = self.x_test[:examples], self.config.encoder_gradient
        if self.config.model.categorical:  # at this step's temperature, against the run's own baseline
            samples = categorical_gradient_samples(self.model, x, estimator, repetitions, generator=generator,
                                                   temperature=self.temperature(), baseline=self.baseline)
        else:
            samples = encoder_gradient_samples(self.model, x, estimator, repetitions, generator=generator,
                                               baseline="moving_average")
        return mean_variance(samples)

    def set_learning_rate(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def state(self, reuse: TrainerState | None = None) -> TrainerState:
        """A copy of the weights and Adam's state. With `reuse`, an earlier copy of the same layout is overwritten
        in place instead: the divergence guard keeps one every flush, and a deep copy cost ~0.5 ms a step."""
        weights, optimizer = self.model.state_dict(), self.optimizer.state_dict()
        if reuse is not None:
            targets, sources = _tensors_of(reuse.weights, reuse.optimizer), _tensors_of(weights, optimizer)
            if [t.shape for t in targets] == [s.shape for s in sources]:
                for target, source in zip(targets, sources, strict=True):
                    target.copy_(source)
                groups = copy.deepcopy(optimizer["param_groups"])  # the learning rate may have changed
                return TrainerState(self.step_count, reuse.weights, {**reuse.optimizer, "param_groups": groups})
        return TrainerState(self.step_count, {k: v.detach().clone() for k, v in weights.items()},
                            copy.deepcopy(optimizer))

    def restore(self, state: TrainerState) -> None:
        self.model.load_state_dict(state.weights)
        self.optimizer.load_state_dict(copy.deepcopy(state.optimizer))
        self.step_count = state.step


def _tensors_of(weights: dict[str, torch.Tensor], optimizer: dict) -> list[torch.Tensor]:
    """Every tensor of the weights and an optimiser's state dict, in a fixed order: the weights, then each
    parameter's optimiser state."""
    per_parameter = optimizer["state"]
    return [*weights.values(),
            *(value for index in sorted(per_parameter) for _, value in sorted(per_parameter[index].items())
              if isinstance(value, torch.Tensor))]


class DivergenceGuard:
    """Keeps the last state whose steps were all finite; a NaN or infinite loss rewinds to it."""

    def __init__(self, trainer: Trainer) -> None:
        self.trainer = trainer
        self.good = trainer.state()

    def check(self, finite: list[bool], first_step: int) -> str | None:
        """`finite[i]` for steps first_step + i. All finite: remember this state, None. Otherwise rewind and
        return the sentence that says what happened."""
        if all(finite):
            self.good = self.trainer.state(reuse=self.good)
            return None
        bad_step = first_step + finite.index(False)
        self.trainer.restore(self.good)
        return (f"The loss or its gradient became NaN or infinite at step {bad_step}. The weights from step "
                f"{self.good.step} were restored and training paused: lower the learning rate, then resume.")
