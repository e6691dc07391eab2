"""The importance-weighted bound against known answers: L_1 is the library's ELBO, L_K grows with K, and on a model
with a 1-D latent, whose log p(x) a fine grid integrates, L_K closes in on log p(x) from below. Chunking changes
nothing; the gradients' signal-to-noise ratio moves as Rainforth et al. 2018 say."""

import math

import numpy as np
import pytest
import torch
from scipy import stats
from torch.distributions import Normal

from vae.bounds import (
    MAX_K,
    GroupedLogMeanExp,
    check_ks,
    draw_posterior,
    elbo_per_example,
    gradient_snr,
    importance_weighted_bounds,
    log_weights,
    snr_noise_floor,
)
from vae.checkpoints import load_pretrained
from vae.config import ModelConfig, TrainConfig
from vae.families import FAMILIES, posterior_params
from vae.model import build_model
from vae.trainer import Trainer


@pytest.fixture(scope="module")
def digits_model():
    return load_pretrained("digits").model


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Only small passes here: on a busy 2-core machine two torch threads spin against each other and take many
    times longer than one."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_log_weights_are_log_joint_minus_log_posterior(digits):
    model = build_model(ModelConfig(hidden_sizes=(16,), latent_dim=3), seed=0)
    x = torch.as_tensor(digits.x_test[:5])
    with torch.no_grad():
        z, loc, scale = draw_posterior(model, x, 7, torch.Generator().manual_seed(0))  # (7, 5, 3)
        by_hand = (model.likelihood(model.decode(z)).log_prob(x) + Normal(0.0, 1.0).log_prob(z).sum(-1)
                   - Normal(loc, scale).log_prob(z).sum(-1))
        np.testing.assert_allclose(log_weights(model, x, z, loc, scale), by_hand, rtol=1e-5)


@pytest.mark.parametrize("k", [1, 3, 7, 100])
def test_grouped_log_mean_exp_is_the_same_whatever_the_chunks(k):
    values = torch.randn(100, 3, generator=torch.Generator().manual_seed(k), dtype=torch.float64) * 20  # (S, B)
    groups = 100 // k
    expected = (values[: groups * k].reshape(groups, k, 3).logsumexp(1) - math.log(k)).mean(0)
    for chunk in (1, 4, 33, 100):
        accumulator = GroupedLogMeanExp(k, 3)
        for part in torch.split(values, chunk):
            accumulator.add(part)
        np.testing.assert_allclose(accumulator.estimates(), expected, rtol=1e-12)


def test_chunking_gives_the_same_bounds_for_the_same_seed(digits_model, digits):
    x = digits.x_test[:6]
    whole = importance_weighted_bounds(digits_model, x, (1, 5, 64), seed=3, samples_per_chunk=64)
    chunked = importance_weighted_bounds(digits_model, x, (1, 5, 64), seed=3, samples_per_chunk=3)
    np.testing.assert_allclose(chunked.per_example, whole.per_example, rtol=1e-6)
    other_seed = importance_weighted_bounds(digits_model, x, (1, 5, 64), seed=4)
    assert not np.allclose(other_seed.per_example, whole.per_example)


@pytest.mark.parametrize("posterior", ["logistic", "student-t"])
def test_l1_is_the_library_elbo_draw_for_draw_where_the_kl_is_monte_carlo(posterior, digits):
    """Without a closed-form KL the library's ELBO is log p(x|z) - (log q(z|x) - log p(z)) at its draw: log w."""
    model = build_model(ModelConfig(hidden_sizes=(16,), latent_dim=3, posterior=posterior), seed=0)
    x = digits.x_test[:20]
    bound = importance_weighted_bounds(model, x, [1], seed=5).per_example[0]
    np.testing.assert_allclose(bound, elbo_per_example(model, x, draws=1, seed=5), rtol=1e-5)


def test_l1_is_the_library_elbo_within_its_standard_error(digits_model, digits):
    """With the Gaussian's analytic KL the two differ draw by draw, by log q - log p - KL, which has mean 0."""
    x = digits.x_test[:40]
    l1 = importance_weighted_bounds(digits_model, x, [1, 400], seed=1).per_example[0]  # 400 draws each
    difference = l1 - elbo_per_example(digits_model, x, draws=400, seed=2)
    assert abs(difference.mean()) < 4 * difference.std(ddof=1) / math.sqrt(len(x)) + 1e-3


def test_the_bound_grows_with_k(digits_model, digits):
    curve = importance_weighted_bounds(digits_model, digits.x_test[:32], (1, 4, 16, 64), seed=0)
    steps = np.diff(curve.per_example, axis=0)  # (3, N): L_4 - L_1, L_16 - L_4, L_64 - L_16, paired by example
    assert np.all(steps.mean(axis=1) > -3 * steps.std(axis=1, ddof=1) / math.sqrt(steps.shape[1]))
    gain, stderr = curve.gains()
    assert gain[0] == 0 and gain[-1] > 5 * stderr[-1] > 0  # strictly tighter than the ELBO, far beyond noise
    np.testing.assert_allclose(curve.bounds[0] + gain, curve.bounds)


@pytest.fixture(scope="module")
def one_dimensional_model(digits):
    """A VAE with a 1-D latent, trained briefly: its log p(x) is a 1-D integral."""
    config = TrainConfig(model=ModelConfig(hidden_sizes=(64,), latent_dim=1), batch_size=64, lr=3e-3, device="cpu")
    trainer = Trainer(config, digits)
    for _ in range(200):
        trainer.step()
    return trainer.model.eval()


@torch.no_grad()
def log_marginal_on_a_grid(model, x: torch.Tensor, half_width: float = 9.0, step: float = 1e-3) -> np.ndarray:
    """log p(x) = log of the integral of p(x|z) p(z) dz by the rectangle rule on a fine grid (spectrally accurate
    for a smooth integrand that vanishes at both ends; beyond |z| = 9 the prior's mass is e^-40 of the whole)."""
    z = torch.arange(-half_width, half_width + step / 2, step, dtype=torch.float32)[:, None, None]  # (G, 1, 1)
    log_prior = FAMILIES["gaussian"].log_prob(z, posterior_params("gaussian", 0.0, 1.0)).sum(-1)  # (G, 1)
    log_joint = model.likelihood(model.decode(z)).log_prob(x) + log_prior  # (G, B)
    return (log_joint.double().logsumexp(0) + math.log(step)).numpy()


def test_the_bound_closes_in_on_log_px_from_below(one_dimensional_model, digits):
    """Each estimate is noisy (the weights' tails are heavy: q is narrower than the true posterior's tails), so
    the comparison is of the mean over 6 seeds, within 4 of its standard errors."""
    x = digits.x_test[:5]
    log_px = log_marginal_on_a_grid(one_dimensional_model, torch.as_tensor(x))  # (N,)
    runs = np.stack([importance_weighted_bounds(one_dimensional_model, x, (1, 10, 100, 1000), seed=seed).per_example
                     for seed in range(6)])  # (seeds, 4, N)
    gaps, noise = log_px - runs.mean(axis=0), 4 * runs.std(axis=0, ddof=1) / math.sqrt(len(runs)) + 1e-4  # (4, N)
    assert np.all(gaps > -noise)  # never above log p(x) beyond noise, for any example or K
    mean_gap, mean_noise = gaps.mean(axis=1), np.sqrt((noise**2).mean(axis=1) / len(x))  # (4,) over the examples
    assert mean_gap[0] > 0.02 + mean_noise[0]  # the ELBO's gap, KL(q || p(z|x)), is real here
    assert mean_gap[-1] < 0.1 * mean_gap[0] + mean_noise[-1]  # K = 1000 closes almost all of it
    assert np.all(np.diff(mean_gap) < mean_noise[1:])


def test_ks_are_positive_whole_numbers():
    assert check_ks([100, 1, 10, 10]) == (1, 10, 100)
    for bad in ([], [0], [-3], [1.5], [MAX_K + 1], [True]):
        with pytest.raises(ValueError, match="whole number"):
            check_ks(bad)


@pytest.mark.parametrize("repetitions", [3, 8, 32, 200])
def test_the_snr_noise_floor_is_the_mean_of_a_scaled_absolute_student_t(repetitions):
    expected = stats.t(repetitions - 1).expect(abs) / math.sqrt(repetitions)
    assert snr_noise_floor(repetitions) == pytest.approx(expected, rel=1e-9)


def test_snr_noise_floor_is_what_pure_noise_reads():
    noise = torch.randn(32, 20_000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)  # (R, n)
    ratio = (noise.mean(0).abs() / noise.std(0)).mean()
    assert float(ratio) == pytest.approx(snr_noise_floor(32), rel=0.02)


def test_tighter_bounds_give_the_decoder_signal_and_take_it_from_the_encoder(digits):
    """Rainforth et al. 2018 on a fresh model (its encoder's gradient has signal to lose): from K = 1 to 256 the
    decoder's SNR grows (about sqrt(K)) and the encoder's falls to what pure noise reads."""
    model = build_model(ModelConfig(hidden_sizes=(32,), latent_dim=2), seed=0)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    snr = gradient_snr(model, digits.x_test[:8], (1, 256), repetitions=48, seed=0)
    assert snr.decoder[-1] > 4 * snr.decoder[0]
    assert snr.encoder[0] > 2 * snr.noise_floor and snr.encoder[-1] < 0.6 * snr.encoder[0]
    assert snr.encoder[-1] < 1.5 * snr.noise_floor
    for name, p in model.named_parameters():  # a model shared by a cache is left as it was
        assert torch.equal(p, before[name]) and p.grad is None
