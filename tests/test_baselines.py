"""vae.baselines: the control variates of the score-function estimator, against values worked by hand, and the
exact variances they give on the toy costs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.toy_settings import SETTINGS
from vae.baselines import MOVING_AVERAGE_DECAY, PILOT_SAMPLES, baseline_values
from vae.control_variates import VARIANCE_REDUCTIONS
from vae.estimators import ESTIMATORS, score_function_gradients
from vae.toy_costs import COSTS, cost_function, exact_variance


def params(loc: float, scale: float) -> dict[str, torch.Tensor]:
    return {"loc": torch.tensor(loc, dtype=torch.float64), "scale": torch.tensor(scale, dtype=torch.float64)}


def no_pilot(count: int):
    raise AssertionError("only the optimal baseline draws a pilot batch")


def test_the_moving_average_is_the_bias_corrected_average_of_earlier_repetitions():
    """b_0 = 0, then b_r = sum_{j<r} (1 - beta) beta^(r-1-j) m_j / (1 - beta^r), by a plain loop, per problem."""
    costs = torch.tensor([[[1.0, 4.0]], [[3.0, 0.0]], [[5.0, 2.0]], [[-1.0, 6.0]]], dtype=torch.float64)  # (R, K=1, 2)
    costs = costs.unsqueeze(-1)  # (R, K, 2, 1): two problems, one element each
    b = baseline_values("moving_average", costs, no_pilot)
    beta, means = MOVING_AVERAGE_DECAY, costs.mean(1)  # (R, 2, 1)
    expected = [torch.zeros(2, 1, dtype=torch.float64)]
    for r in range(1, len(costs)):
        weights = [(1 - beta) * beta ** (r - 1 - j) for j in range(r)]
        expected.append(sum(w * means[j] for j, w in enumerate(weights)) / (1 - beta**r))
    torch.testing.assert_close(b["loc"], torch.stack(expected).unsqueeze(1))  # (R, 1, 2, 1)
    assert b["scale"] is b["loc"]


def test_the_optimal_baseline_is_the_score_weighted_mean_of_the_pilot_costs():
    pilot_costs = torch.tensor([[1.0, 2.0, 4.0]], dtype=torch.float64)  # (1, P)
    scores = {"loc": torch.tensor([[1.0, -1.0, 2.0]], dtype=torch.float64),
              "scale": torch.tensor([[0.0, 3.0, 1.0]], dtype=torch.float64)}

    def pilot(count: int):
        assert count == PILOT_SAMPLES
        return pilot_costs, scores

    b = baseline_values("optimal", torch.zeros(2, 3, dtype=torch.float64), pilot)
    assert float(b["loc"]) == pytest.approx((1 + 2 + 16) / 6)  # E[f s²] / E[s²]
    assert float(b["scale"]) == pytest.approx((18 + 4) / 10)
    assert baseline_values("none", torch.ones(2, 3), no_pilot) == {"loc": 0.0, "scale": 0.0}


def test_an_unknown_baseline_is_a_sentence():
    with pytest.raises(ValueError, match="Unknown baseline 'mean'; choose one of none, moving_average, optimal"):
        baseline_values("mean", torch.ones(2, 3), no_pilot)


@pytest.mark.parametrize("name", list(COSTS))
def test_the_optimal_baseline_never_hurts(name):
    for loc, scale, k in SETTINGS[name]:
        optimal = exact_variance(name, "score_function", loc, scale, k, "optimal")
        for other in ("none", "moving_average"):
            worse = exact_variance(name, "score_function", loc, scale, k, other)
            assert optimal["loc"] <= worse["loc"] + 1e-12 and optimal["scale"] <= worse["scale"] + 1e-12


def test_a_constant_cost_is_cancelled_exactly_by_either_baseline():
    """f = c: the moving average is b_0 = 0, then exactly c (bias-corrected); the optimal b* is exactly c."""
    constant = lambda z: torch.full(z.shape[:2], 3.0, dtype=z.dtype)  # noqa: E731
    run = lambda b: score_function_gradients(constant, params(0.0, 1.0), 4, 6,  # noqa: E731
                                             generator=torch.Generator().manual_seed(0), baseline=b)
    none, moving, optimal = run("none"), run("moving_average"), run("optimal")
    for p in ("loc", "scale"):
        assert torch.equal(moving[p][0], none[p][0])
        assert torch.allclose(moving[p][1:], torch.zeros_like(moving[p][1:]), atol=1e-12)
        assert torch.allclose(optimal[p], torch.zeros_like(optimal[p]), atol=1e-12)


@pytest.mark.parametrize("estimator", ["pathwise", "measure_valued"])
def test_the_pathwise_and_measure_valued_estimators_ignore_the_baseline(estimator):
    runs = [ESTIMATORS[estimator](cost_function("|z-k|", 1.0), params(0.5, 1.0), 3, 10,
                                  generator=torch.Generator().manual_seed(0), baseline=b)
            for b in VARIANCE_REDUCTIONS]
    for run in runs[1:]:
        np.testing.assert_array_equal(run["loc"], runs[0]["loc"])
    assert exact_variance("|z-k|", "pathwise", 0.5, 1.0, 1.0, "optimal") == exact_variance(
        "|z-k|", "pathwise", 0.5, 1.0, 1.0)
