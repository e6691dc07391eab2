"""Discrete latents: the three estimators' bias and variance against exact enumeration over the categories, and the
Gumbel-max and Gumbel-softmax draws themselves."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from vae.discrete import (
    MAX_TEMPERATURE,
    MIN_TEMPERATURE,
    DiscreteEstimator,
    DiscreteProblem,
    discrete_race,
    estimator_quality,
    gradient_samples,
    gumbel_max,
    gumbel_noise,
    gumbel_softmax,
    relaxed_draws,
    straight_through,
    toy_problem,
)

PROBLEM = DiscreteProblem((0.5, -0.3, 0.1), (0.1, 0.2, 0.7))
# The corners a user can reach: the fewest and most categories, logits flat and far apart.
CORNERS = [toy_problem(k, spread) for k, spread in itertools.product((2, 3, 10), (0.0, 3.0))]


def autograd_exact_gradient(problem: DiscreteProblem) -> np.ndarray:
    """An independent route: autograd through sum_k softmax(theta)_k f(e_k)."""
    logits = torch.tensor(problem.logits, dtype=torch.float64, requires_grad=True)
    corners = torch.eye(problem.categories, dtype=torch.float64)
    costs = ((corners - torch.tensor(problem.target, dtype=torch.float64)) ** 2).sum(dim=1)
    (torch.softmax(logits, 0) @ costs).backward()
    return logits.grad.numpy()


@pytest.mark.parametrize("problem", [PROBLEM, *CORNERS])
def test_the_exact_gradient_matches_autograd_through_the_enumerated_sum(problem):
    np.testing.assert_allclose(problem.exact_gradient(), autograd_exact_gradient(problem), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("problem", [PROBLEM, *CORNERS])
def test_the_score_function_is_unbiased_with_the_enumerated_variance(problem):
    samples = gradient_samples(problem, DiscreteEstimator.SCORE_FUNCTION, 1.0, 40_000,
                               torch.Generator().manual_seed(1)).numpy()
    standard_error = samples.std(axis=0, ddof=1) / np.sqrt(len(samples))
    assert np.all(np.abs(samples.mean(axis=0) - problem.exact_gradient()) <= 5 * standard_error + 1e-12)
    spread = ((samples - samples.mean(axis=0)) ** 2).sum(axis=1)  # its mean is the total variance
    assert abs(spread.mean() - problem.score_function_variance()) <= 5 * spread.std() / np.sqrt(len(spread)) + 1e-12


@pytest.mark.parametrize("problem", [PROBLEM, *CORNERS])
def test_the_score_function_variance_matches_autograd_category_by_category(problem):
    """The estimate depends only on the category drawn: autograd gives it for each k, and the variance is the
    p-weighted spread of those K vectors around the exact gradient."""
    p, exact = problem.probabilities(), problem.exact_gradient()
    baseline = problem.exact_value()
    spread = 0.0
    for k, corner_cost in enumerate(problem.corner_costs()):
        logits = torch.tensor(problem.logits, dtype=torch.float64, requires_grad=True)
        ((corner_cost - baseline) * torch.log_softmax(logits, 0)[k]).backward()
        spread += p[k] * np.sum((logits.grad.numpy() - exact) ** 2)
    assert problem.score_function_variance() == pytest.approx(spread, rel=1e-9, abs=1e-15)


def test_the_gumbel_softmax_bias_shrinks_as_the_temperature_falls_while_its_variance_grows():
    qualities = [estimator_quality(PROBLEM, DiscreteEstimator.GUMBEL_SOFTMAX, tau) for tau in (5.0, 1.0, 0.5)]
    biases = [q.bias for q in qualities]
    variances = [q.variance for q in qualities]
    assert biases[0] > biases[1] > biases[2]
    assert variances[0] < variances[1] < variances[2]
    assert qualities[1].bias > 10 * qualities[1].bias_standard_error  # biased: not noise


def test_straight_through_is_biased_and_the_score_function_is_not():
    straight = estimator_quality(PROBLEM, DiscreteEstimator.STRAIGHT_THROUGH, 1.0)
    score = estimator_quality(PROBLEM, DiscreteEstimator.SCORE_FUNCTION, 1.0)
    assert straight.bias > 10 * straight.bias_standard_error
    assert score.bias < 4 * score.bias_standard_error


def test_straight_through_is_one_hot_forwards_and_relaxed_backwards():
    logits = torch.tensor([[0.3, -1.0, 0.8]], dtype=torch.float64, requires_grad=True)
    gumbel = gumbel_noise((1, 3), torch.Generator().manual_seed(0))
    forwards = straight_through(logits, gumbel, 0.7)
    torch.testing.assert_close(forwards.detach(), gumbel_max(logits.detach(), gumbel))
    weights = torch.tensor([1.0, 2.0, -1.0], dtype=torch.float64)
    (straight,) = torch.autograd.grad((forwards * weights).sum(), logits)
    (relaxed,) = torch.autograd.grad((gumbel_softmax(logits, gumbel, 0.7) * weights).sum(), logits)
    torch.testing.assert_close(straight, relaxed)


def test_gumbel_max_draws_each_category_with_its_probability():
    draws = relaxed_draws((1.0, -0.5, 0.2, 0.0), 1.0, count=40_000)
    p = draws.probabilities
    assert np.all(np.abs(draws.frequencies() - p) <= 5 * np.sqrt(p * (1 - p) / 40_000))


@pytest.mark.parametrize("temperature", [MIN_TEMPERATURE, 1.0, MAX_TEMPERATURE])
def test_relaxed_draws_lie_in_the_simplex_and_near_its_corners_only_when_cold(temperature):
    draws = relaxed_draws((0.5, -0.3, 0.1), temperature)
    np.testing.assert_allclose(draws.relaxed.sum(axis=1), 1.0, rtol=1e-12)
    assert np.all(draws.relaxed >= 0)
    nearest_corner = draws.relaxed.max(axis=1)
    if temperature == MIN_TEMPERATURE:
        assert np.median(nearest_corner) > 0.99
        assert np.mean(draws.relaxed.argmax(axis=1) == draws.hard) == 1.0  # same noise, same category
    if temperature == MAX_TEMPERATURE:
        assert np.max(nearest_corner) < 0.8  # all drawn towards the middle


@pytest.mark.parametrize("anneal", [False, True])
def test_every_estimator_lowers_the_exact_cost_in_the_race(anneal):
    problem = toy_problem(3, 0.0)
    race = discrete_race(problem, 1.0, anneal=anneal, steps=150)
    for estimator, values in race.values.items():
        assert values[-20:].mean() < values[0] - 0.2, estimator
        assert np.all(values >= race.best - 1e-12)  # nothing beats the best corner
    if anneal:
        assert race.temperatures[0] == 1.0 and race.temperatures[-1] == pytest.approx(MIN_TEMPERATURE)
