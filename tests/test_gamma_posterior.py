"""A Gamma posterior q(z|x) = Gamma(e^loc(x), 1/scale(x)) against the prior Gamma(1, 1): implicit
reparameterization (no closed-form g) inside a VAE that trains, exact KL, and the Latent page's positive z."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from tests.conftest import live_app_run, reconstruction_error_ratio
from vae.checkpoints import checkpoint_bytes, load_checkpoint
from vae.cli import main
from vae.config import ModelConfig, preset_config
from vae.families import GAMMA_POSTERIOR, posterior_mean, posterior_rsample, prior_law
from vae.latent import (
    latent_range,
    latent_usage,
    posterior_draws,
    posterior_means,
    prior_centre,
    prior_draw,
    sweep_values,
)
from vae.model import build_model, reconstruct, sample_prior
from vae.trainer import Trainer

GAMMA = preset_config("digits").replace(posterior="gamma", device="cpu")


@pytest.mark.parametrize("alpha", [0.2, 2.0, 10.0])  # the Reparameterization page's slider ends and default
@pytest.mark.parametrize("beta", [0.2, 5.0])
def test_the_draws_are_scipys_quantiles_and_their_implicit_gradients_are_finite_differences(alpha, beta):
    """z = F^-1(u; alpha, beta) at fixed u; dz/dalpha and dz/dbeta by autograd (through torch's implicit gradient)
    and by `derivatives`, both against central differences of scipy's quantile, to the 5e-3 that torch's own
    implicit gradient keeps everywhere (it approximates dz/dalpha in some regions, as vae.implicit says)."""
    u = torch.tensor([1e-6, 0.05, 0.5, 0.95, 1 - 1e-6], dtype=torch.float64)
    leaves = {"concentration": torch.tensor(alpha, dtype=torch.float64, requires_grad=True),
              "rate": torch.tensor(beta, dtype=torch.float64, requires_grad=True)}
    z = GAMMA_POSTERIOR.transform(leaves, u)
    np.testing.assert_allclose(z.detach().numpy(), stats.gamma(alpha, scale=1 / beta).ppf(u.numpy()), rtol=1e-9)
    h = 1e-6

    def quantile(a: float, b: float) -> np.ndarray:
        return stats.gamma(a, scale=1 / b).ppf(u.numpy())

    expected = {"concentration": (quantile(alpha * (1 + h), beta) - quantile(alpha * (1 - h), beta)) / (2 * h * alpha),
                "rate": (quantile(alpha, beta * (1 + h)) - quantile(alpha, beta * (1 - h))) / (2 * h * beta)}
    analytic = GAMMA_POSTERIOR.derivatives({k: v.detach() for k, v in leaves.items()}, u)
    for name, leaf in leaves.items():
        autograd = np.array([torch.autograd.grad(z[i], leaf, retain_graph=True)[0].item() for i in range(len(u))])
        np.testing.assert_allclose(autograd, expected[name], rtol=5e-3, atol=1e-12)
        np.testing.assert_allclose(analytic[name].numpy(), autograd, rtol=1e-12)


def test_the_prior_is_the_posterior_at_loc_0_scale_1_and_the_mean_is_alpha_over_beta():
    assert prior_law("gamma").mean() == pytest.approx(1.0) and prior_law("gamma").var() == pytest.approx(1.0)
    loc, scale = torch.tensor([[-1.0, 0.0, 2.0]]), torch.tensor([[0.5, 1.0, 3.0]])
    torch.testing.assert_close(posterior_mean("gamma", loc, scale), torch.exp(loc) * scale)
    generator = torch.Generator().manual_seed(0)
    draws = posterior_rsample("gamma", loc.expand(200_000, 3), scale.expand(200_000, 3), generator)
    assert (draws > 0).all()
    torch.testing.assert_close(draws.mean(0), (torch.exp(loc) * scale)[0], rtol=0.02, atol=0.0)


def test_a_gamma_vae_trains_to_recognisable_reconstructions(digits):
    """The digits preset with a Gamma z: reconstructions (decoded from E[z|x]) much closer to their images than
    the mean image is, the ELBO climbs, z carries information, and every prior draw decodes from z > 0."""
    config = GAMMA.replace(epochs=15)
    trainer = Trainer(config, digits)
    first = trainer.evaluate()
    for _ in range(config.epochs * trainer.steps_per_epoch):
        assert torch.isfinite(trainer.step()).all()
    last = trainer.evaluate()
    model = trainer.model.eval()
    assert reconstruction_error_ratio(model, digits) < 0.6
    assert last.elbo > first.elbo + 10 and last.kl > 1.0
    usage = latent_usage(model, digits.x_test)
    assert (usage.means > 0).all() and usage.active.any()
    np.testing.assert_allclose(usage.means, posterior_means(model, digits.x_test), rtol=1e-6)
    assert torch.isfinite(sample_prior(model, 5)).all()


def test_score_function_training_is_allowed_since_the_kl_is_exact(digits):
    config = GAMMA.replace(encoder_gradient="score_function", epochs=2)
    config.validate()
    trainer = Trainer(config, digits)
    for _ in range(trainer.steps_per_epoch):
        assert torch.isfinite(trainer.step()).all()


def test_the_cli_trains_a_gamma_posterior_and_its_checkpoint_round_trips(tmp_path, capsys):
    out = tmp_path / "gamma.safetensors"
    assert main(["train", "--posterior", "gamma", "--epochs", "1", "--hidden-sizes", "16", "--out", str(out)]) == 0
    checkpoint = load_checkpoint(out)
    assert checkpoint.config.model.posterior == "gamma"
    model = build_model(GAMMA.model, seed=1)
    loaded = load_checkpoint(checkpoint_bytes(model, GAMMA)).model
    x = torch.rand(4, 64, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(reconstruct(loaded, x), reconstruct(model, x))


def test_the_latent_pages_sliders_sweeps_and_draws_stay_on_z_above_0():
    low, high = latent_range("gamma")
    assert low == 0.0 and high >= prior_law("gamma").ppf(0.995)  # the prior's mass, from 0
    assert latent_range("gaussian") == (-3.0, 3.0)
    sweep = sweep_values("gamma")
    assert (sweep > 0).all() and sweep[-1] <= high and np.all(np.diff(sweep) > 0)
    np.testing.assert_array_equal(prior_centre("gamma", 3), [1.0, 1.0, 1.0])
    draws = np.stack([prior_draw("gamma", 4, seed) for seed in range(500)])
    assert (draws > 0).all() and draws.mean() == pytest.approx(1.0, abs=0.1)


def test_a_models_posterior_draws_show_its_mean_and_spread_not_its_raw_outputs(digits):
    model = build_model(GAMMA.model, seed=2)
    draws = posterior_draws(model, digits.x_test[0], count=20_000, seed=1)
    alpha, beta = np.exp(draws.loc), 1 / draws.scale
    np.testing.assert_allclose(draws.mean, alpha / beta, rtol=1e-6)
    np.testing.assert_allclose(draws.spread, np.sqrt(alpha) / beta, rtol=1e-6)
    assert (draws.z > 0).all()
    np.testing.assert_allclose(draws.z.mean(0), draws.mean, rtol=0.05)
    gaussian = posterior_draws(build_model(ModelConfig(hidden_sizes=(16,)), seed=2), digits.x_test[0])
    np.testing.assert_array_equal(gaussian.mean, gaussian.loc)


def test_the_pages_follow_a_live_gamma_run(small_digits):
    """Latent space: sliders from 0, starting at the prior's mean 1; Reparameterization: draws by the inverse CDF;
    Lecture: the loop names the Gamma; Train: the posterior can be chosen."""
    with live_app_run("gamma", small_digits) as (at, _):
        at.switch_page("pages/latent.py").run()
        assert not at.exception
        at.selectbox(key="latent:model").select("live").run()
        slider = at.slider(key="latent:slider:0")
        assert (slider.min, slider.max) == latent_range("gamma") and slider.value == 1.0
        at.switch_page("pages/reparameterization.py").run()
        assert not at.exception
        at.selectbox(key="reparam:model").select("live").run()
        assert any("z = F⁻¹(u; α(x), β(x))" in e.value for e in [*at.caption, *at.markdown])
        at.switch_page("pages/lecture.py").run()
        assert not at.exception and any("q(z|x) is Gamma" in m.value for m in at.markdown)
        at.switch_page("pages/train.py").run()
        assert "Gamma (z > 0, implicit gradients)" in at.selectbox(key="train:posterior").options
