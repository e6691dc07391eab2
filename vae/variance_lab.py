"""What the Estimators page shows on the toy problem z ~ N(loc, scale²): many gradient estimates from each
estimator, their variance against the number of samples K (empirical beside exact), and the cost of each."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch

from vae.estimators import ESTIMATORS, Estimator
from vae.toy_costs import cost_function, exact_gradient, exact_variance

PARAMETERS = {"loc": "μ", "scale": "σ"}


@dataclass(frozen=True)
class ToySetting:
    """One point of the variance lab: a cost f(z; k) and the Gaussian z ~ N(loc, scale²) it is averaged over."""

    cost: str
    loc: float
    scale: float
    k: float
    baseline: str = "none"

    def params(self) -> dict[str, torch.Tensor]:
        return {"loc": torch.tensor(self.loc, dtype=torch.float64), "scale": torch.tensor(self.scale,
                                                                                          dtype=torch.float64)}


def gradient_estimates(setting: ToySetting, num_samples: int, repetitions: int, seed: int = 0
                       ) -> dict[str, dict[str, np.ndarray]]:
    """{estimator: {"loc": (R,), "scale": (R,)}}: R estimates, each averaging K = num_samples draws. Both
    estimators get equally seeded generators (the same draws), so only the estimator differs."""
    cost = cost_function(setting.cost, setting.k)
    results = {}
    for name, estimator in ESTIMATORS.items():
        generator = torch.Generator().manual_seed(seed)
        gradients = estimator(cost, setting.params(), num_samples, repetitions, generator=generator,
                              baseline=setting.baseline)
        results[name] = {param: values.numpy() for param, values in gradients.items()}
    return results


@dataclass(frozen=True)
class VarianceCurve:
    """Variance of a K-sample estimate for each K: empirical (from `repetitions` estimates) and exact (the
    single-sample variance divided by K, since the K draws are independent)."""

    num_samples: np.ndarray  # (n,)
    empirical: dict[str, np.ndarray]  # estimator -> (n,)
    exact: dict[str, np.ndarray]  # estimator -> (n,)


def variance_curve(setting: ToySetting, parameter: str, sample_counts: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64,
                   128, 256), repetitions: int = 400, seed: int = 0) -> VarianceCurve:
    counts = np.array(sample_counts)
    empirical: dict[str, list[float]] = {name: [] for name in ESTIMATORS}
    for count in sample_counts:
        for name, estimates in gradient_estimates(setting, int(count), repetitions, seed + int(count)).items():
            empirical[name].append(float(np.var(estimates[parameter], ddof=1)))
    exact = {name: exact_single_sample_variance(setting, name)[parameter] / counts for name in ESTIMATORS}
    return VarianceCurve(counts, {n: np.array(v) for n, v in empirical.items()}, exact)


def exact_single_sample_variance(setting: ToySetting, estimator: str) -> dict[str, float]:
    return exact_variance(setting.cost, estimator, setting.loc, setting.scale, setting.k,
                          baseline=setting.baseline if estimator == "score_function" else "none")


# Timing. A single timed call is at the mercy of the machine: on two cores with a training run in the background,
# one estimator's call can wait milliseconds for a busy core, and the work-normalised ratio of the lecture's own
# example was seen at 0.95x on one visit and 4.1x on another. So each estimator is timed on one CPU thread (its
# own work, not how busy the other core is), on a fixed batch large enough that call overhead is small, after
# warm-up, over many rounds; the rounds interleave the estimators, and each round's ratio compares calls made
# back to back, so a slow stretch of the machine slows both sides of a ratio alike.
TIMING_ROUNDS = 15
TIMING_WARMUP = 3
TIMED_DRAWS = 65_536  # draws per timed call (R x K): a few milliseconds of work


@dataclass(frozen=True)
class Spread:
    """A median with the middle half of its values around it (the 25th to 75th percentile)."""

    values: np.ndarray  # (N,)

    @classmethod
    def of(cls, values: np.ndarray) -> Spread:
        return cls(np.asarray(values, dtype=np.float64))

    @property
    def median(self) -> float:
        return float(np.median(self.values))

    @property
    def low(self) -> float:
        return float(np.percentile(self.values, 25))

    @property
    def high(self) -> float:
        return float(np.percentile(self.values, 75))

    @property
    def count(self) -> int:
        return len(self.values)

    def side_of(self, value: float) -> int:
        """1 if the whole interval lies above `value`, -1 if below, 0 if it straddles it (too close to call)."""
        return 1 if self.low > value else -1 if self.high < value else 0


def paired_timings(calls: Mapping[str, Callable[[], object]], rounds: int = TIMING_ROUNDS,
                   warmup: int = TIMING_WARMUP, clock: Callable[[], float] = time.perf_counter
                   ) -> dict[str, np.ndarray]:
    """{name: (rounds,) seconds of one call}: `warmup` untimed rounds, then `rounds` timed ones in which every
    call runs once, in alternating order (a call that warms a cache for the next one favours each side alike)."""
    for _ in range(warmup):
        for call in calls.values():
            call()
    seconds = {name: np.zeros(rounds) for name in calls}
    for i in range(rounds):
        for name in list(calls)[:: 1 if i % 2 == 0 else -1]:
            start = clock()
            calls[name]()
            seconds[name][i] = clock() - start
    return seconds


@dataclass(frozen=True)
class EstimatorTiming:
    """Seconds per K-sample estimate of each estimator, one value per timed round (rounds are paired)."""

    seconds: dict[str, np.ndarray]  # estimator -> (N,)

    def median_seconds(self) -> dict[str, float]:
        return {name: float(np.median(values)) for name, values in self.seconds.items()}

    def work_ratio(self, variance: Mapping[str, float]) -> Spread:
        """Score function over pathwise of variance x seconds, round by round: above 1 the pathwise estimator
        gives the lower variance for the same compute time (one twice as slow must be less than half as noisy)."""
        work = {name: variance[name] * self.seconds[name] for name in ("pathwise", "score_function")}
        with np.errstate(divide="ignore", invalid="ignore"):
            return Spread.of(work["score_function"] / work["pathwise"])


def time_estimators(setting: ToySetting, num_samples: int, rounds: int = TIMING_ROUNDS, warmup: int = TIMING_WARMUP,
                    draws: int = TIMED_DRAWS) -> EstimatorTiming:
    """Each estimator on one fixed batch of max(16, draws / K) K-sample estimates (the same seed every call; the
    pathwise one also differentiates f), timed by `paired_timings` on one CPU thread."""
    cost = cost_function(setting.cost, setting.k)
    repetitions = max(16, draws // num_samples)

    def call(estimator: Estimator) -> Callable[[], object]:
        return lambda: estimator(cost, setting.params(), num_samples, repetitions,
                                 generator=torch.Generator().manual_seed(0), baseline=setting.baseline)

    with _one_thread():
        seconds = paired_timings({name: call(e) for name, e in ESTIMATORS.items()}, rounds, warmup)
    return EstimatorTiming({name: values / repetitions for name, values in seconds.items()})


@contextmanager
def _one_thread() -> Iterator[None]:
    """torch on one intra-op thread for this OS thread while timing (the setting is per thread)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@dataclass(frozen=True)
class ToyLab:
    """Everything the toy section of the Estimators page shows for one setting and one parameter."""

    exact_gradient: float
    estimates: dict[str, np.ndarray]  # estimator -> (R,) K-sample estimates
    curve: VarianceCurve
    variance: dict[str, float]  # estimator -> exact variance of a K-sample estimate
    timing: EstimatorTiming  # seconds per K-sample estimate, per estimator and timed round


def toy_lab_results(setting: ToySetting, num_samples: int, parameter: str, repetitions: int = 3000) -> ToyLab | None:
    """The toy lab's numbers, or None where they overflow (exp(k z) with large k * sigma): no number to show."""
    try:
        estimates = gradient_estimates(setting, num_samples, repetitions)
        lab = ToyLab(
            exact_gradient=exact_gradient(setting.cost, setting.loc, setting.scale, setting.k)[parameter],
            estimates={name: values[parameter] for name, values in estimates.items()},
            curve=variance_curve(setting, parameter),
            variance={name: exact_single_sample_variance(setting, name)[parameter] / num_samples
                      for name in ESTIMATORS},
            timing=time_estimators(setting, num_samples),
        )
    except (OverflowError, FloatingPointError):
        return None
    numbers = [lab.exact_gradient, *lab.variance.values(), *np.concatenate([*lab.curve.exact.values(),
                                                                            *lab.estimates.values()])]
    return lab if np.all(np.isfinite(numbers)) else None
