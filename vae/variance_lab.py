"""What the Estimators page shows on the toy problem z ~ N(loc, scale²): many gradient estimates from each
estimator, their variance against the number of samples K (empirical beside exact), and the cost of each, in
evaluations of f and in time. An exact value that cannot be computed reliably is nan (`vae.toy_variances`)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch

from vae.estimators import ESTIMATORS, EVALUATIONS_PER_SAMPLE, Estimator
from vae.toy_costs import COSTS, cost_function, exact_gradient
from vae.toy_variances import exact_variance

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
    """{estimator: {"loc": (R,), "scale": (R,)}}: R estimates, each averaging K = num_samples draws. Every
    estimator gets an equally seeded generator (the same draws), so only the estimator differs."""
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
    """{"loc", "scale"}: the exact variance of one draw's estimate (nan where not reliable)."""
    return exact_variance(setting.cost, estimator, setting.loc, setting.scale, setting.k, setting.baseline)


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
        return self._percentile(25)

    @property
    def high(self) -> float:
        return self._percentile(75)

    def _percentile(self, q: float) -> float:
        # Interpolating between two infinite values would give nan: take the nearest value then.
        method = "linear" if np.all(np.isfinite(self.values)) else "nearest"
        return float(np.percentile(self.values, q, method=method))

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

    def work_ratio(self, variance: Mapping[str, float], estimator: str = "score_function",
                   reference: str = "pathwise") -> Spread:
        """`estimator` over `reference` of variance x seconds, round by round: above 1 the reference gives the
        lower variance for the same compute time (one twice as slow must be less than half as noisy)."""
        if variance[reference] == 0:  # two zero variances are alike; any other is infinitely worse
            return Spread.of(np.full(len(self.seconds[reference]), 1.0 if variance[estimator] == 0 else np.inf))
        work = {name: variance[name] * self.seconds[name] for name in (estimator, reference)}
        with np.errstate(divide="ignore", invalid="ignore"):
            return Spread.of(work[estimator] / work[reference])


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
    """Everything the toy section of the Estimators page shows for one setting and one parameter. Exact values
    that cannot be computed reliably are nan."""

    exact_gradient: float
    estimates: dict[str, np.ndarray]  # estimator -> (R,) K-sample estimates
    curve: VarianceCurve
    variance: dict[str, float]  # estimator -> exact variance of a K-sample estimate
    timing: EstimatorTiming  # seconds per K-sample estimate, per estimator and timed round
    evaluations: dict[str, int]  # estimator -> evaluations of f (or f') per K-sample estimate


def toy_lab_results(setting: ToySetting, num_samples: int, parameter: str, repetitions: int = 3000) -> ToyLab | None:
    """The toy lab's numbers, or None where the estimates themselves overflow (exp(k z) with large k * sigma):
    nothing to show. Exact values that cannot be computed reliably are nan, and the rest still shows."""
    try:
        estimates = gradient_estimates(setting, num_samples, repetitions)
        lab = ToyLab(
            exact_gradient=exact_gradient(setting.cost, setting.loc, setting.scale, setting.k)[parameter],
            estimates={name: values[parameter] for name, values in estimates.items()},
            curve=variance_curve(setting, parameter),
            variance={name: exact_single_sample_variance(setting, name)[parameter] / num_samples
                      for name in ESTIMATORS},
            timing=time_estimators(setting, num_samples),
            evaluations={name: count * num_samples for name, count in EVALUATIONS_PER_SAMPLE.items()},
        )
    except (OverflowError, FloatingPointError):
        return None
    measured = np.concatenate([*lab.curve.empirical.values(), *lab.estimates.values()])
    return lab if np.all(np.isfinite(measured)) else None


@dataclass(frozen=True)
class WorkComparison:
    """Variance times work of each unbiased estimator, relative to the least of them (1 = the best for the same
    budget; nan where an exact variance cannot be computed reliably)."""

    by_evaluations: dict[str, float]  # estimator -> variance x evaluations of f, over the best's
    by_time: dict[str, Spread]  # estimator -> variance x seconds over the best's, round by round

    def best(self, measure: str) -> str | None:
        """The estimator with the least variance for the same evaluations ("evaluations") or time ("time")."""
        values = self.by_evaluations if measure == "evaluations" else {n: s.median for n, s in self.by_time.items()}
        finite = {name: value for name, value in values.items() if np.isfinite(value)}
        return min(finite, key=finite.get) if finite else None

    def too_close_to_call(self) -> bool:
        """Whether another estimator's middle half of time ratios reaches down to the best's 1."""
        best = self.best("time")
        return any(spread.side_of(1.0) <= 0 for name, spread in self.by_time.items()
                   if name != best and np.isfinite(spread.median))


def unbiased_estimators(cost: str) -> list[str]:
    """The estimators whose mean is the gradient for this cost (the pathwise one misses a jump of f)."""
    return [name for name in ESTIMATORS if name != "pathwise" or COSTS[cost].pathwise_unbiased]


def work_comparison(lab: ToyLab, estimators: list[str]) -> WorkComparison:
    """`WorkComparison` of `estimators`: by evaluations against the least variance x evaluations, by time against
    the least variance x median seconds."""
    by_evaluations = _relative_to_least({name: lab.variance[name] * lab.evaluations[name] for name in estimators})
    by_median_time = {name: lab.variance[name] * float(np.median(lab.timing.seconds[name])) for name in estimators}
    finite = {name: value for name, value in by_median_time.items() if np.isfinite(value)}
    fastest = min(finite, key=finite.get) if finite else estimators[0]
    return WorkComparison(by_evaluations, {name: lab.timing.work_ratio(lab.variance, name, fastest)
                                           for name in estimators})


def _relative_to_least(values: dict[str, float]) -> dict[str, float]:
    finite = [value for value in values.values() if np.isfinite(value)]
    least = min(finite) if finite else float("nan")
    return {name: _ratio(value, least) for name, value in values.items()}


def _ratio(value: float, reference: float) -> float:
    if reference == 0:
        return 1.0 if value == 0 else float("inf")
    return value / reference
