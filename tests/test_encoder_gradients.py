"""The estimator question inside the VAE: batched VJPs agree with plain autograd; both estimators agree on
the mean; the score function is the noisy one; score-function training works and is probed along the way."""

import numpy as np
import pytest
import torch

from vae.config import POSTERIOR_FAMILIES, ModelConfig, TrainConfig
from vae.encoder_gradients import encoder_gradient_samples, encoder_parameters, gradient_noise, mean_variance
from vae.estimators import score_function_gradients
from vae.families import posterior_family, posterior_params, posterior_rsample
from vae.model import build_model


@pytest.fixture(scope="module")
def model_and_batch(digits):
    model = build_model(ModelConfig(hidden_sizes=(32,), latent_dim=3), seed=0)
    return model, torch.as_tensor(digits.x_test[:16])


def test_one_pathwise_estimate_is_autograd_through_the_same_draw(model_and_batch):
    model, x = model_and_batch
    samples = encoder_gradient_samples(model, x, "pathwise", 1, generator=torch.Generator().manual_seed(5))
    eps = torch.randn((16, 3), generator=torch.Generator().manual_seed(5))  # the same draw, (B, K)
    loc, scale = model.encode(x)
    reconstruction = model.likelihood(model.decode(loc + scale * eps)).log_prob(x).mean()
    names = list(encoder_parameters(model))
    expected = torch.autograd.grad(reconstruction, [dict(model.named_parameters())[n] for n in names])
    assert set(samples) == set(names) and not any(n.startswith("decoder") for n in names)
    for name, gradient in zip(names, expected, strict=True):
        torch.testing.assert_close(samples[name][0], gradient, rtol=1e-4, atol=1e-6)


def test_both_estimators_agree_on_the_mean_and_differ_in_variance(model_and_batch):
    model, x = model_and_batch
    runs = {name: encoder_gradient_samples(model, x, name, 4000, generator=torch.Generator().manual_seed(1),
                                           baseline="optimal")
            for name in ("pathwise", "score_function")}
    bias = runs["score_function"]["to_loc.bias"].double()  # (R, K): a small tensor, to check the means closely
    reference = runs["pathwise"]["to_loc.bias"].double()
    stderr = (bias.var(0) / len(bias) + reference.var(0) / len(reference)).sqrt()
    assert ((bias.mean(0) - reference.mean(0)).abs() < 5 * stderr).all()
    assert mean_variance(runs["score_function"]) > 2 * mean_variance(runs["pathwise"])


def test_per_example_costs_pair_each_score_with_its_own_cost():
    """Two independent problems: a summed cost lets problem 2's cost add noise to problem 1's estimate."""
    params = {"loc": torch.zeros(2, 1, dtype=torch.float64), "scale": torch.ones(2, 1, dtype=torch.float64)}
    offsets = torch.tensor([[0.0], [50.0]], dtype=torch.float64)

    def per_problem(z):  # (R, K, 2, 1) -> (R, K, 2)
        return ((z - 1.0) ** 2 + offsets).squeeze(-1)

    def summed(z):  # (R, K, 2, 1) -> (R, K)
        return per_problem(z).sum(-1)

    separate = score_function_gradients(per_problem, params, 1, 20_000, generator=torch.Generator().manual_seed(0))
    together = score_function_gradients(summed, params, 1, 20_000, generator=torch.Generator().manual_seed(0))
    exact_loc = -2.0  # d/dmu E[(z - 1)^2] at mu = 0
    assert abs(float(separate["loc"][:, 0, 0].mean()) - exact_loc) < 5 * float(separate["loc"][:, 0, 0].std()) / 141
    assert float(separate["loc"][:, 0, 0].var()) < 0.2 * float(together["loc"][:, 0, 0].var())


def test_gradient_noise_summaries():
    samples = {"w": torch.tensor([[1.0, 0.0], [3.0, 0.0]]), "b": torch.tensor([[2.0], [2.0]])}
    rows = {row.name: row for row in gradient_noise(samples)}
    assert rows["w"].size == 2 and rows["w"].variance == pytest.approx(1.0)  # var([1, 3]) = 2, var([0, 0]) = 0
    assert rows["w"].snr == pytest.approx(2 / np.sqrt(2))  # only the element with spread counts
    assert rows["b"].variance == 0.0 and rows["b"].snr == float("inf")
    assert mean_variance(samples) == pytest.approx(2.0 / 3)


@pytest.mark.parametrize("family", POSTERIOR_FAMILIES)
def test_one_estimate_of_each_estimator_is_autograd_through_the_familys_own_draw(digits, family):
    """Pathwise: autograd through z = posterior_rsample(...); score function: each example's reconstruction
    times autograd's d/dphi log q(z|x) of the family, at the same (detached) draw."""
    model = build_model(ModelConfig(hidden_sizes=(16,), latent_dim=2, posterior=family), seed=0)
    x = torch.as_tensor(digits.x_test[:8])
    names = list(encoder_parameters(model))
    weights = [dict(model.named_parameters())[n] for n in names]
    loc, scale = model.encode(x)
    z = posterior_rsample(family, loc, scale, torch.Generator().manual_seed(3))  # (B, K), the estimators' draw

    def reconstruction(z: torch.Tensor) -> torch.Tensor:  # (B,)
        return model.likelihood(model.decode(z)).log_prob(x) / len(x)

    log_q = posterior_family(family).log_prob(z.detach(), posterior_params(family, loc, scale)).sum(-1)  # (B,)
    expected = {"pathwise": torch.autograd.grad(reconstruction(z).sum(), weights, retain_graph=True),
                "score_function": torch.autograd.grad((reconstruction(z.detach()).detach() * log_q).sum(), weights)}
    for estimator, gradients in expected.items():
        samples = encoder_gradient_samples(model, x, estimator, 1, generator=torch.Generator().manual_seed(3))
        for name, gradient in zip(names, gradients, strict=True):
            torch.testing.assert_close(samples[name][0], gradient, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("family", POSTERIOR_FAMILIES)
def test_every_posterior_family_gives_finite_variances_and_agreeing_means(digits, family):
    model = build_model(ModelConfig(hidden_sizes=(16,), latent_dim=2, posterior=family), seed=0)
    x = torch.as_tensor(digits.x_test[:16])
    runs = {name: encoder_gradient_samples(model, x, name, 2000, generator=torch.Generator().manual_seed(1),
                                           baseline="optimal")
            for name in ("pathwise", "score_function")}
    rows = {name: gradient_noise(samples) for name, samples in runs.items()}
    assert all(np.isfinite(row.variance) and row.variance > 0 for table in rows.values() for row in table)
    score, pathwise = runs["score_function"]["to_loc.bias"].double(), runs["pathwise"]["to_loc.bias"].double()
    stderr = (score.var(0) / len(score) + pathwise.var(0) / len(pathwise)).sqrt()
    assert ((score.mean(0) - pathwise.mean(0)).abs() < 5 * stderr).all()  # both unbiased for the same gradient


def test_score_function_training_learns_and_is_probed(small_digits):
    from vae.job import JobStatus, TrainingJob

    config = TrainConfig(model=ModelConfig(hidden_sizes=(32,), latent_dim=2), epochs=6, batch_size=32, lr=3e-3,
                         device="cpu")
    runs = {}
    for name in ("pathwise", "score_function"):
        job = TrainingJob(config.replace(encoder_gradient=name), small_digits, variance_probe_every=8)
        job.start()
        runs[name] = job.wait_until(lambda s: not s.is_alive, timeout=120)
        assert runs[name].status == JobStatus.FINISHED
    for snap in runs.values():
        assert snap.held_out[-1].elbo > snap.held_out[0].elbo
        assert len(snap.gradient_variance["step"]) == 6  # one probe per 8 steps of 48
    assert np.median(runs["score_function"].gradient_variance["variance"]) > \
        np.median(runs["pathwise"].gradient_variance["variance"])


def test_score_function_training_needs_an_exact_kl():
    from vae.config import ConfigError

    with pytest.raises(ConfigError, match="exact KL"):
        TrainConfig(model=ModelConfig(posterior="logistic"), encoder_gradient="score_function").validate()


def test_the_noise_table_computes_only_the_two_estimators_it_compares(model_and_batch, monkeypatch):
    """A third registered estimator (measure-valued) is not in the table: computing it only made the page slower."""
    import vae.encoder_gradients as module

    model, x = model_and_batch
    computed = []
    original = module.encoder_gradient_samples

    def counting(model, x, estimator, *args, **kwargs):
        computed.append(estimator)
        return original(model, x, estimator, *args, **kwargs)

    monkeypatch.setattr(module, "encoder_gradient_samples", counting)
    table = module.encoder_noise_comparison(model, x, repetitions=4)
    assert sorted(computed) == ["pathwise", "score_function"] and len(table["tensor"]) > 0
