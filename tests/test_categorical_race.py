"""The race for a categorical z. Its encoder-gradient samples are made the way training makes them: checked on one
categorical variable of three categories, where the expectation is an exact sum, the score function is unbiased,
the Gumbel-softmax relaxation is biased at a warm temperature and nearly unbiased at a cold one, and both
relaxations are far less noisy. The race's runs differ only in their estimator."""

import pytest
import torch

from vae.config import RACES, ModelConfig, race_configs
from vae.encoder_gradients import categorical_gradient_samples, encoder_parameters
from vae.model import build_model

CATEGORIES, REPETITIONS = 3, 2000


@pytest.fixture(scope="module")
def problem(digits):
    """A one-variable categorical VAE, eight digits, and the exact gradient d/dphi of
    (1/B) sum_b sum_k q(k|x_b) log p(x_b|k), flattened."""
    config = ModelConfig(hidden_sizes=(16,), latent_dim=1, posterior="categorical", categories=CATEGORIES)
    model, x = build_model(config, seed=0), torch.as_tensor(digits.x_test[:8])
    phi = [p for n, p in model.named_parameters() if n in encoder_parameters(model)]
    q = torch.softmax(model.encode_logits(x)[:, 0], dim=-1)  # (B, K)
    with torch.no_grad():  # log p(x_b | category k) for every k: the decoder is fixed, only q depends on phi
        one_hot = torch.eye(CATEGORIES)
        costs = torch.stack([model.likelihood(model.decode(one_hot[k].expand(len(x), 1, CATEGORIES))).log_prob(x)
                             for k in range(CATEGORIES)], dim=-1)  # (B, K)
    exact = torch.cat([g.flatten() for g in torch.autograd.grad((q * costs).sum(-1).mean(), phi)])
    return model, x, exact, float(costs.mean())


def flat_samples(problem, estimator: str, temperature: float = 1.0, seed: int = 0) -> torch.Tensor:
    model, x, _, baseline = problem
    samples = categorical_gradient_samples(model, x, estimator, REPETITIONS, temperature=temperature,
                                           baseline=baseline, generator=torch.Generator().manual_seed(seed))
    return torch.cat([values.flatten(1) for values in samples.values()], dim=1)  # (R, parameters)


def squared_error_and_noise(samples: torch.Tensor, exact: torch.Tensor) -> tuple[float, float]:
    """||mean - exact||^2, and what that is expected to be for an unbiased estimator: sum of variances / R."""
    return float(((samples.mean(0) - exact) ** 2).sum()), float(samples.var(0).sum() / len(samples))


def test_the_score_function_is_unbiased_against_the_exact_sum(problem):
    error, noise = squared_error_and_noise(flat_samples(problem, "score_function"), problem[2])
    assert float((problem[2] ** 2).sum()) > 100 * noise  # the gradient stands far clear of the noise: a bias shows
    assert error < 4 * noise


def test_the_gumbel_softmax_is_biased_when_warm_and_nearly_unbiased_when_cold(problem):
    warm_error, warm_noise = squared_error_and_noise(flat_samples(problem, "pathwise", temperature=1.0), problem[2])
    cold_error, cold_noise = squared_error_and_noise(flat_samples(problem, "pathwise", temperature=0.1), problem[2])
    assert warm_error > 100 * warm_noise  # at tau = 1 the relaxed decoder input is far from a category
    assert cold_error < 4 * cold_noise


@pytest.mark.parametrize("relaxation", ["pathwise", "straight_through"])
def test_the_relaxations_are_far_less_noisy_than_the_score_function(problem, relaxation):
    score = flat_samples(problem, "score_function").var(0).sum()
    assert flat_samples(problem, relaxation).var(0).sum() < score / 2


def test_a_samples_draws_come_from_its_generator_only(problem):
    first, again = (flat_samples(problem, "straight_through", seed=3) for _ in range(2))
    assert torch.equal(first, again)
    assert not torch.equal(first, flat_samples(problem, "straight_through", seed=4))


@pytest.mark.parametrize("posterior", list(RACES))
def test_the_racers_differ_only_in_their_encoder_gradient(posterior):
    configs = race_configs(7, posterior)
    assert list(configs) == list(RACES[posterior])
    assert {config.encoder_gradient for config in configs.values()} == set(RACES[posterior].values())
    first = next(iter(configs.values()))
    assert first.model.posterior == posterior and first.epochs == 7
    for config in configs.values():
        assert config.replace(encoder_gradient=first.encoder_gradient) == first
