"""Discrete latents: where z = g(params, noise) exists but has no useful gradient, and the relaxations that repair it.

A categorical z with probabilities p = softmax(theta) is drawn exactly by the Gumbel-max trick,

    z = one_hot(argmax_k (theta_k + G_k)),  G_k ~ Gumbel(0, 1) independent,

which is a reparameterization, but argmax is piecewise constant: its derivative is zero almost everywhere. The
Gumbel-softmax (Concrete) sample replaces argmax by a softmax at temperature tau (Jang, Gu & Poole 2017; Maddison,
Mnih & Teh 2017),

    y = softmax((theta + G) / tau),

a point inside the simplex that is differentiable in theta and tends to the one-hot z as tau -> 0. Its gradient
is biased at every tau > 0; the straight-through variant uses the one-hot z forwards and the relaxed y backwards.
The score function needs no relaxation at all and stays unbiased, at the price of variance.

Everything here works on a small problem whose expectation is an exact sum over the K categories, so each
estimator's bias and variance can be measured against the truth: one categorical over K categories and the cost
f(y) = ||y - target||^2, defined on the whole simplex (the relaxations evaluate it inside, the truth at corners).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import torch

MIN_TEMPERATURE, MAX_TEMPERATURE = 0.1, 5.0  # the sliders' range


class DiscreteEstimator(StrEnum):
    SCORE_FUNCTION = "score_function"  # (f(z) - b) * d log q(z)/d theta, with the baseline b = E[f]
    GUMBEL_SOFTMAX = "gumbel_softmax"  # d f(y)/d theta through the relaxed sample y
    STRAIGHT_THROUGH = "straight_through"  # f at the one-hot z, the gradient of y backwards


ESTIMATOR_LABELS = {
    DiscreteEstimator.SCORE_FUNCTION: "score function (baseline)",
    DiscreteEstimator.GUMBEL_SOFTMAX: "Gumbel-softmax",
    DiscreteEstimator.STRAIGHT_THROUGH: "straight-through",
}


def gumbel_noise(shape: tuple[int, ...], generator: torch.Generator | None = None,
                 dtype: torch.dtype = torch.float64, device: torch.device | str | None = None) -> torch.Tensor:
    """Standard Gumbel noise G = -log(-log U), U uniform on (0, 1) kept off both ends."""
    tiny = torch.finfo(dtype).tiny
    u = torch.rand(shape, generator=generator, dtype=dtype, device=device).clamp(tiny, 1 - torch.finfo(dtype).eps)
    return -torch.log(-torch.log(u))


def one_hot_codes(index: torch.Tensor, categories: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Category indices (...) as one-hot codes (..., K): what the decoder of a categorical z reads."""
    return torch.nn.functional.one_hot(index, categories).to(dtype)


def gumbel_max(logits: torch.Tensor, gumbel: torch.Tensor) -> torch.Tensor:
    """The exact categorical draw, one-hot: argmax of the perturbed logits (no gradient flows through it)."""
    return one_hot_codes((logits + gumbel).argmax(dim=-1), logits.shape[-1], logits.dtype)


def gumbel_softmax(logits: torch.Tensor, gumbel: torch.Tensor, temperature: float) -> torch.Tensor:
    """The relaxed draw softmax((logits + G) / tau): inside the simplex, differentiable in the logits."""
    return torch.softmax((logits + gumbel) / temperature, dim=-1)


def straight_through(logits: torch.Tensor, gumbel: torch.Tensor, temperature: float) -> torch.Tensor:
    """The one-hot draw forwards, the relaxed draw's gradient backwards."""
    relaxed = gumbel_softmax(logits, gumbel, temperature)
    return gumbel_max(logits, gumbel) + relaxed - relaxed.detach()


@dataclass(frozen=True)
class DiscreteProblem:
    """minimise E_{z ~ Cat(softmax(logits))}[ ||z - target||^2 ] over the logits; every expectation is a sum."""

    logits: tuple[float, ...]
    target: tuple[float, ...]

    @property
    def categories(self) -> int:
        return len(self.logits)

    def probabilities(self) -> np.ndarray:
        logits = np.asarray(self.logits, dtype=np.float64)
        weights = np.exp(logits - logits.max())
        return weights / weights.sum()

    def corner_costs(self) -> np.ndarray:
        """f(e_k) for each category k."""
        target = np.asarray(self.target, dtype=np.float64)
        return np.array([np.sum((np.eye(self.categories)[k] - target) ** 2) for k in range(self.categories)])

    def exact_value(self) -> float:
        return float(self.probabilities() @ self.corner_costs())

    def exact_gradient(self) -> np.ndarray:
        """d/d theta of sum_k p_k f(e_k) = sum_k p_k f(e_k) (e_k - p): the softmax's Jacobian, by enumeration."""
        p, f = self.probabilities(), self.corner_costs()
        return (p * f) - p * float(p @ f)

    def score_function_variance(self) -> float:
        """The exact total variance (trace of the covariance) of one score-function sample with baseline E[f]:
        sum_k p_k (f_k - b)^2 ||e_k - p||^2 - ||gradient||^2, by enumeration."""
        p, f = self.probabilities(), self.corner_costs()
        baseline = float(p @ f)
        distances = np.array([np.sum((np.eye(self.categories)[k] - p) ** 2) for k in range(self.categories)])
        return float(np.sum(p * (f - baseline) ** 2 * distances) - np.sum(self.exact_gradient() ** 2))


def toy_problem(categories: int = 3, spread: float = 1.0) -> DiscreteProblem:
    """The pages' problem: logits spread evenly over [-spread, spread] (the last category likeliest) and a target
    that favours the first category, so SGD has to move the probability across the simplex."""
    logits = np.linspace(-spread, spread, categories)
    target = np.exp(-2.0 * np.arange(categories) / max(1, categories - 1))
    return DiscreteProblem(tuple(logits.tolist()), tuple((target / target.sum()).tolist()))


def cost(y: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """f(y) = ||y - target||^2 over the last axis: defined on the whole simplex, not only at its corners."""
    return ((y - target) ** 2).sum(dim=-1)


def gradient_samples(problem: DiscreteProblem, estimator: DiscreteEstimator, temperature: float, count: int,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """`count` independent single-sample estimates of the gradient of E[f] with respect to the logits, (count, K).
    Each sample gets its own copy of the logits, so one backward pass gives every sample's own gradient."""
    logits = torch.tensor(problem.logits, dtype=torch.float64).repeat(count, 1).requires_grad_(True)
    target = torch.tensor(problem.target, dtype=torch.float64)
    gumbel = gumbel_noise((count, problem.categories), generator)
    if estimator is DiscreteEstimator.SCORE_FUNCTION:
        z = gumbel_max(logits.detach(), gumbel)
        baseline = problem.exact_value()
        log_q = (torch.log_softmax(logits, dim=-1) * z).sum(dim=-1)
        surrogate = (cost(z, target) - baseline) * log_q
    elif estimator is DiscreteEstimator.GUMBEL_SOFTMAX:
        surrogate = cost(gumbel_softmax(logits, gumbel, temperature), target)
    else:
        surrogate = cost(straight_through(logits, gumbel, temperature), target)
    (gradient,) = torch.autograd.grad(surrogate.sum(), logits)
    return gradient


@dataclass(frozen=True)
class EstimatorQuality:
    """One estimator's single-sample gradient against the exact one: bias (norm of mean - exact, with its standard
    error) and total variance (trace of the covariance), measured from `samples` draws."""

    estimator: DiscreteEstimator
    mean: np.ndarray
    bias: float
    bias_standard_error: float
    variance: float
    samples: int


def estimator_quality(problem: DiscreteProblem, estimator: DiscreteEstimator, temperature: float,
                      samples: int = 20_000, seed: int = 0) -> EstimatorQuality:
    generator = torch.Generator().manual_seed(seed)
    gradients = gradient_samples(problem, estimator, temperature, samples, generator).numpy()
    mean = gradients.mean(axis=0)
    variance = float(gradients.var(axis=0, ddof=1).sum())
    return EstimatorQuality(estimator, mean, float(np.linalg.norm(mean - problem.exact_gradient())),
                            math.sqrt(variance / samples), variance, samples)


@dataclass(frozen=True)
class DiscreteRace:
    """SGD on the logits with each estimator from the same start and the same noise: the exact E[f] after each
    step (and the temperature each step used)."""

    steps: np.ndarray  # (steps + 1,)
    values: dict[DiscreteEstimator, np.ndarray]  # each (steps + 1,)
    temperatures: np.ndarray  # (steps,)
    best: float  # min over the categories of f(e_k): what a one-hot z can reach


def annealed_temperatures(start: float, steps: int, end: float = MIN_TEMPERATURE) -> np.ndarray:
    """Geometric annealing from `start` down to `end` over the run (Jang et al. 2017 anneal exponentially)."""
    return np.geomspace(start, min(start, end), steps) if steps > 1 else np.array([start])


def discrete_race(problem: DiscreteProblem, temperature: float, anneal: bool = False, steps: int = 200,
                  learning_rate: float = 0.5, seed: int = 0) -> DiscreteRace:
    temperatures = annealed_temperatures(temperature, steps) if anneal else np.full(steps, temperature)
    values = {}
    for estimator in DiscreteEstimator:
        generator = torch.Generator().manual_seed(seed)  # the same noise for every estimator
        logits = np.asarray(problem.logits, dtype=np.float64)
        history = [problem.exact_value()]
        for tau in temperatures:
            current = DiscreteProblem(tuple(logits), problem.target)
            logits = logits - learning_rate * gradient_samples(current, estimator, float(tau), 1, generator)[0].numpy()
            history.append(DiscreteProblem(tuple(logits), problem.target).exact_value())
        values[estimator] = np.array(history)
    return DiscreteRace(np.arange(steps + 1), values, temperatures, float(problem.corner_costs().min()))


@dataclass(frozen=True)
class RelaxedDraws:
    """Draws of the same Gumbel noise through argmax (the exact categorical) and through the tempered softmax."""

    probabilities: np.ndarray  # (K,)
    hard: np.ndarray  # (count,) category indices
    relaxed: np.ndarray  # (count, K) points of the simplex

    def frequencies(self) -> np.ndarray:
        """How often each category came out of Gumbel-max: matches `probabilities` (the trick is exact)."""
        return np.bincount(self.hard, minlength=len(self.probabilities)) / len(self.hard)

    def relaxed_mean(self) -> np.ndarray:
        """The mean relaxed draw: equal to `probabilities` only as the temperature goes to 0 (the bias)."""
        return self.relaxed.mean(axis=0)


def relaxed_draws(logits: tuple[float, ...], temperature: float, count: int = 600, seed: int = 0) -> RelaxedDraws:
    generator = torch.Generator().manual_seed(seed)
    theta = torch.tensor(logits, dtype=torch.float64)
    gumbel = gumbel_noise((count, len(logits)), generator)
    hard = (theta + gumbel).argmax(dim=-1)
    relaxed = gumbel_softmax(theta, gumbel, temperature)
    return RelaxedDraws(torch.softmax(theta, 0).numpy(), hard.numpy(), relaxed.numpy())
