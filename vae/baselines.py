"""Baselines (control variates) of the score-function estimator: a constant b subtracted from the cost.

The score-function estimator (f(z) - b) ∇θ log q(z; θ) stays unbiased for any b that does not depend on the draws it
multiplies, since E[∇θ log q] = 0; a good b lowers its variance (Mohamed et al. 2020, sec. 7.4: control variates).
`BASELINES` names the choices; `baseline_values` computes one:

* "none": b = 0.
* "moving_average": b for repetition r is an exponential moving average (decay 0.9) of the mean cost of
  repetitions 0 .. r-1, bias-corrected as in Adam (b_r = Σ_{j<r} 0.1·0.9^(r-1-j) m_j / (1 - 0.9^r), so b_1 is
  m_0 rather than 0.1 m_0), and b_0 = 0. It uses only earlier repetitions, so each estimate is unbiased given the
  ones before it: the R estimates stay uncorrelated (no longer independent). b tends to E[f]; its own noise adds
  about Var[f] E[s²] (1 - 0.9) / ((1 + 0.9) K²) to the variance of a K-draw estimate.
* "optimal": per parameter element, the variance-minimising constant b* = E[f s²] / E[s²] (s the score of that
  element), estimated from an independent pilot batch of 4096 draws. The estimator takes those draws from its
  generator AFTER the main draws (so the main draws are the same as with any other baseline): unbiased. All R
  repetitions share that one b*.

Every function takes the costs already shaped to multiply the scores, (R, K, *shape[:n], 1, ..., 1), and returns
{"loc": b, "scale": b}, each b broadcastable to the scores (R, K, *shape).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from scipy import signal

BASELINES = ("none", "moving_average", "optimal")
MOVING_AVERAGE_DECAY = 0.9
PILOT_SAMPLES = 4096  # draws of the pilot batch that estimates the optimal baseline

# A pilot: a number of fresh draws P -> their costs (1, P, *shape[:n], 1, ...) and scores {"loc", "scale"} of
# (1, P, *shape) each. Only the optimal baseline calls it.
Pilot = Callable[[int], tuple[torch.Tensor, dict[str, torch.Tensor]]]
Baseline = Callable[[torch.Tensor, Pilot], dict[str, torch.Tensor]]


def check_baseline(name: str) -> None:
    """A ValueError whose message lists the choices, for a name that is not one of `BASELINES`."""
    if name not in BASELINES:
        raise ValueError(f"Unknown baseline {name!r}; choose one of {', '.join(BASELINES)}.")


def baseline_values(name: str, costs: torch.Tensor, pilot: Pilot) -> dict[str, torch.Tensor]:
    """b for the loc and scale scores: costs (R, K, *shape[:n], 1, ...) -> {"loc": b, "scale": b}."""
    check_baseline(name)
    return _BY_NAME[name](costs, pilot)


def _zero(costs: torch.Tensor, pilot: Pilot) -> dict[str, torch.Tensor]:
    zero = costs.new_zeros(())
    return {"loc": zero, "scale": zero}


def _moving_average(costs: torch.Tensor, pilot: Pilot) -> dict[str, torch.Tensor]:
    """b_r = bias-corrected EMA of the mean costs m_0 .. m_{r-1}, b_0 = 0 (per problem when the cost gives one per
    problem): (R, 1, *shape[:n], 1, ...)."""
    beta = MOVING_AVERAGE_DECAY
    means = costs.mean(1).double().cpu().numpy()  # m_r, (R, *shape[:n], 1, ...)
    ema = signal.lfilter([1.0 - beta], [1.0, -beta], means, axis=0)  # ema_r = beta ema_{r-1} + (1 - beta) m_r
    correction = 1.0 - beta ** np.arange(1, len(means) + 1)  # bias correction: weights sum to one
    ema /= correction.reshape(-1, *([1] * (means.ndim - 1)))
    b = np.concatenate([np.zeros_like(ema[:1]), ema[:-1]])  # shift: repetition r sees only m_0 .. m_{r-1}
    b = torch.as_tensor(b, dtype=costs.dtype, device=costs.device).unsqueeze(1)  # (R, 1, *shape[:n], 1, ...)
    return {"loc": b, "scale": b}


def _optimal(costs: torch.Tensor, pilot: Pilot) -> dict[str, torch.Tensor]:
    """b* = E[f s²] / E[s²] per parameter element, from the pilot batch: (*shape) each."""
    pilot_costs, pilot_scores = pilot(PILOT_SAMPLES)  # (1, P, *shape[:n], 1, ...); (1, P, *shape)
    return {name: (pilot_costs * s**2).sum((0, 1)) / (s**2).sum((0, 1)) for name, s in pilot_scores.items()}


_BY_NAME: dict[str, Baseline] = {"none": _zero, "moving_average": _moving_average, "optimal": _optimal}
