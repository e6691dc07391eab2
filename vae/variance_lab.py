"""What the Estimators page shows on the toy problem z ~ N(mu, sigma^2): many gradient estimates from each
estimator, their variance against the number of samples K (empirical beside exact), and the cost of each."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from vae.estimators import ESTIMATORS, cost_function, exact_gradient, exact_variance

PARAMETERS = {"loc": "μ", "scale": "σ"}


@dataclass(frozen=True)
class ToySetting:
    """One point of the variance lab: a cost f(z; k) and the Gaussian z ~ N(mu, sigma^2) it is averaged over."""

    cost: str
    mu: float
    sigma: float
    k: float
    baseline: str = "none"

    def params(self) -> dict[str, torch.Tensor]:
        return {"loc": torch.tensor(self.mu, dtype=torch.float64), "scale": torch.tensor(self.sigma,
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
    return exact_variance(setting.cost, estimator, setting.mu, setting.sigma, setting.k,
                          baseline=setting.baseline if estimator == "score_function" else "none")


def true_gradient(setting: ToySetting) -> dict[str, float]:
    return exact_gradient(setting.cost, setting.mu, setting.sigma, setting.k)


def seconds_per_estimate(setting: ToySetting, num_samples: int, repetitions: int = 2000, seed: int = 0
                         ) -> dict[str, float]:
    """Wall time of one K-sample estimate, measured on a batch of R (the pathwise one also differentiates f)."""
    cost = cost_function(setting.cost, setting.k)
    timings = {}
    for name, estimator in ESTIMATORS.items():
        estimator(cost, setting.params(), num_samples, 8, generator=torch.Generator().manual_seed(seed))  # warm up
        start = time.perf_counter()
        estimator(cost, setting.params(), num_samples, repetitions, generator=torch.Generator().manual_seed(seed),
                  baseline=setting.baseline)
        timings[name] = (time.perf_counter() - start) / repetitions
    return timings


def work_normalised_variance(variance: dict[str, float], seconds: dict[str, float]) -> dict[str, float]:
    """Variance times compute time per estimate: lower is better for a fixed budget of seconds (an estimator
    twice as slow must have less than half the variance to be worth it)."""
    return {name: variance[name] * seconds[name] for name in variance}


@dataclass(frozen=True)
class ToyLab:
    """Everything the toy section of the Estimators page shows for one setting and one parameter."""

    exact_gradient: float
    estimates: dict[str, np.ndarray]  # estimator -> (R,) K-sample estimates
    curve: VarianceCurve
    variance: dict[str, float]  # estimator -> exact variance of a K-sample estimate
    seconds: dict[str, float]  # estimator -> seconds per K-sample estimate


def toy_lab_results(setting: ToySetting, num_samples: int, parameter: str, repetitions: int = 3000) -> ToyLab | None:
    """The toy lab's numbers, or None where they overflow (exp(k z) with large k * sigma): no number to show."""
    try:
        estimates = gradient_estimates(setting, num_samples, repetitions)
        lab = ToyLab(
            exact_gradient=true_gradient(setting)[parameter],
            estimates={name: values[parameter] for name, values in estimates.items()},
            curve=variance_curve(setting, parameter),
            variance={name: exact_single_sample_variance(setting, name)[parameter] / num_samples
                      for name in ESTIMATORS},
            seconds=seconds_per_estimate(setting, num_samples),
        )
    except (OverflowError, FloatingPointError):
        return None
    numbers = [lab.exact_gradient, *lab.variance.values(), *np.concatenate([*lab.curve.exact.values(),
                                                                            *lab.estimates.values()])]
    return lab if np.all(np.isfinite(numbers)) else None
