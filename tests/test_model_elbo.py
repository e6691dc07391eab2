"""Model shapes and the ELBO's terms against closed forms and torch's own losses."""

import math

import pytest
import torch
import torch.nn.functional as F

from vae.config import POSTERIOR_FAMILIES, ModelConfig, preset_config
from vae.elbo import elbo_terms, training_loss
from vae.families import posterior_rsample
from vae.model import VAE, build_model, count_parameters, reconstruct, sample_prior


def test_pytorch_examples_preset_has_the_reference_architecture():
    model = VAE(preset_config("pytorch-examples-mnist").model)
    # fc1 784-400, fc21 and fc22 400-20, fc3 20-400, fc4 400-784, with biases.
    expected = (784 * 400 + 400) + 2 * (400 * 20 + 20) + (20 * 400 + 400) + (400 * 784 + 784)
    assert count_parameters(model) == expected


def test_encode_decode_shapes():
    model = VAE(ModelConfig(input_shape=(8, 8), hidden_sizes=(32, 16), latent_dim=3))
    loc, scale = model.encode(torch.rand(5, 64))
    assert loc.shape == scale.shape == (5, 3)
    assert (scale > 0).all()
    assert model.decode(loc).shape == (5, 64)


def test_bernoulli_reconstruction_is_minus_binary_cross_entropy():
    model = VAE(ModelConfig(hidden_sizes=(16,), latent_dim=2))
    x = torch.rand(6, 64)
    logits = torch.randn(6, 64)
    expected = -F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)
    torch.testing.assert_close(model.likelihood(logits).log_prob(x), expected)


def test_gaussian_likelihood_log_density():
    model = VAE(ModelConfig(hidden_sizes=(16,), latent_dim=2, likelihood="gaussian"))
    x, decoded = torch.rand(3, 64), torch.randn(3, 64)
    mean = torch.sigmoid(decoded)  # learned scale starts at exp(0) = 1
    expected = (-0.5 * (x - mean) ** 2 - 0.5 * math.log(2 * math.pi)).sum(-1)
    torch.testing.assert_close(model.likelihood(decoded).log_prob(x), expected)


def test_reparameterized_sample_moments_and_gradients():
    loc = torch.tensor([1.5, -2.0], requires_grad=True)
    scale = torch.tensor([0.5, 2.0], requires_grad=True)
    generator = torch.Generator().manual_seed(0)
    z = posterior_rsample("gaussian", loc.expand(200_000, 2), scale.expand(200_000, 2), generator)
    torch.testing.assert_close(z.mean(0), loc.detach(), atol=0.02, rtol=0)
    torch.testing.assert_close(z.std(0), scale.detach(), atol=0.02, rtol=0)
    z.sum().backward()  # dz/dmu = 1 per draw, dz/dsigma = eps, whose mean is ~0
    torch.testing.assert_close(loc.grad, torch.full((2,), 200_000.0))
    assert scale.grad.abs().max() < 2_000  # sum of 200k standard normals: ~450 typical


def test_elbo_terms_are_repeatable_with_a_seeded_generator():
    model = build_model(ModelConfig(hidden_sizes=(16,), latent_dim=2), seed=1)
    x = torch.rand(4, 64)
    first = elbo_terms(model, x, torch.Generator().manual_seed(3))
    second = elbo_terms(model, x, torch.Generator().manual_seed(3))
    torch.testing.assert_close(first.elbo, second.elbo)
    torch.testing.assert_close(first.elbo, first.reconstruction - first.kl)
    assert first.reconstruction.shape == first.kl.shape == (4,)


def test_training_loss_weights_the_kl_by_beta():
    model = build_model(ModelConfig(hidden_sizes=(16,), latent_dim=2), seed=1)
    terms = elbo_terms(model, torch.rand(4, 64), torch.Generator().manual_seed(0))
    torch.testing.assert_close(training_loss(terms, 1.0), -terms.elbo.mean())
    torch.testing.assert_close(training_loss(terms, 0.0), -terms.reconstruction.mean())


def test_same_seed_same_initial_weights():
    config = ModelConfig(hidden_sizes=(16,), latent_dim=2)
    a, b, c = build_model(config, 5), build_model(config, 5), build_model(config, 6)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    assert not torch.equal(a.to_loc.weight, c.to_loc.weight)


def test_reconstruct_and_prior_samples_are_pixel_means():
    model = build_model(ModelConfig(hidden_sizes=(16,), latent_dim=2), seed=0)
    images = reconstruct(model, torch.rand(3, 64))
    samples = sample_prior(model, 5, seed=2)
    assert images.shape == (3, 64) and samples.shape == (5, 64)
    assert 0 <= images.min() and images.max() <= 1
    torch.testing.assert_close(samples, sample_prior(model, 5, seed=2))


@pytest.mark.parametrize("family", POSTERIOR_FAMILIES)
def test_every_posterior_family_trains_and_improves_the_held_out_elbo(family, digits):
    """A short run per family on the bundled digits: the ELBO must rise (KL analytic or Monte Carlo)."""
    from vae.config import TrainConfig
    from vae.job import JobStatus, TrainingJob

    config = TrainConfig(model=ModelConfig(hidden_sizes=(64,), latent_dim=4, posterior=family), epochs=6,
                         batch_size=64, lr=3e-3, device="cpu")
    job = TrainingJob(config, digits)
    job.start()
    snap = job.wait_until(lambda s: not s.is_alive, timeout=120)
    assert snap.status == JobStatus.FINISHED, snap.message
    first, last = snap.held_out[0], snap.held_out[-1]
    assert last.elbo > first.elbo + 0.5
    assert all(math.isfinite(m.kl) and m.kl > -0.5 for m in snap.held_out)  # an MC KL can dip below 0, not far


def test_prior_samples_follow_the_posterior_family():
    """p(z) is the posterior's family at loc 0, scale 1: a Laplace model's prior draws are Laplace, not Gaussian,
    and its samples are the decoder's means at exactly those draws."""
    from scipy import stats

    from vae.families import posterior_rsample

    model = build_model(ModelConfig(hidden_sizes=(16,), latent_dim=2, posterior="laplace"), seed=0)
    zeros = torch.zeros(4000, 2)
    z = posterior_rsample("laplace", zeros, torch.ones_like(zeros), torch.Generator().manual_seed(1)).flatten()
    assert stats.kstest(z.numpy(), stats.laplace.cdf).pvalue > 1e-3
    assert stats.kstest(z.numpy(), stats.norm.cdf).pvalue < 1e-6
    first = posterior_rsample("laplace", zeros[:4], torch.ones(4, 2), torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = model.mean_image(model.decode(first))
    torch.testing.assert_close(sample_prior(model, 4, seed=1), expected)
