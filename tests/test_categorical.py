"""The categorical VAE: exact KL to the uniform prior, the three encoder gradients, the temperature schedule, and
training on the digits to recognisable reconstructions."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.distributions import Categorical, kl_divergence

from tests.conftest import reconstruction_error_ratio
from vae.categorical import (
    decode_categories,
    kl_per_variable,
    kl_to_uniform,
    likeliest_categories,
    temperature_at,
)
from vae.checkpoints import checkpoint_bytes, load_checkpoint
from vae.config import ModelConfig, preset_config
from vae.data import load_dataset
from vae.elbo import elbo_terms
from vae.model import build_model, reconstruct, sample_prior
from vae.trainer import Trainer

CATEGORICAL = preset_config("digits").replace(posterior="categorical", latent_dim=4, categories=3)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.mark.parametrize("categories", [2, 3, 10, 64])
def test_the_kl_to_the_uniform_prior_matches_torch_distributions(categories):
    logits = torch.randn(5, 4, categories, generator=torch.Generator().manual_seed(categories)) * 3
    expected = kl_divergence(Categorical(logits=logits), Categorical(logits=torch.zeros_like(logits)))
    torch.testing.assert_close(kl_to_uniform(logits), expected)
    assert torch.all(kl_to_uniform(torch.zeros(1, 1, categories)).abs() < 1e-6)  # q = prior: no KL


def test_the_temperature_falls_geometrically_from_start_to_end():
    config = CATEGORICAL.replace(temperature=2.0, final_temperature=0.5)
    assert temperature_at(config, 0, 100) == 2.0
    assert temperature_at(config, 50, 100) == pytest.approx(1.0)  # the geometric mean of 2 and 0.5
    assert temperature_at(config, 100, 100) == temperature_at(config, 150, 100) == pytest.approx(0.5)
    fixed = CATEGORICAL.replace(temperature=0.7, final_temperature=0.7)
    assert temperature_at(fixed, 33, 100) == pytest.approx(0.7)


def test_the_model_reads_n_codes_of_k_categories(digits):
    model = build_model(CATEGORICAL.model, seed=0)
    x = torch.as_tensor(digits.x_test[:6])
    assert model.encode_logits(x).shape == (6, 4, 3)
    assert model.decoder[0].in_features == 12  # four one-hot codes of three
    with pytest.raises(TypeError, match="encode_logits"):
        model.encode(x)
    assert reconstruct(model, x).shape == (6, 64) and sample_prior(model, 5).shape == (5, 64)
    picture = decode_categories(model, [0, 2, 1, 1])
    assert picture.shape == (64,) and torch.all((picture >= 0) & (picture <= 1))
    choices = likeliest_categories(model, digits.x_test[0])
    assert len(choices) == 4 and all(0 <= c < 3 for c in choices)


@pytest.mark.parametrize("gradient", ["pathwise", "straight_through", "score_function"])
def test_each_encoder_gradient_reaches_the_encoder(digits, gradient):
    model = build_model(CATEGORICAL.model, seed=0)
    x = torch.as_tensor(digits.x_train[:32])
    terms = elbo_terms(model, x, torch.Generator().manual_seed(0), gradient, baseline=-30.0, temperature=0.7)
    assert terms.kl_per_dimension.shape == (32, 4)
    torch.testing.assert_close(terms.kl, terms.kl_per_dimension.sum(-1))
    # Only the reconstruction term: the KL's gradient would reach the encoder whatever the estimator.
    (-terms.reconstruction.mean() - (0 if terms.score_surrogate is None else
                                    (terms.score_surrogate - terms.score_surrogate.detach()).mean())).backward()
    assert model.to_logits.weight.grad.abs().sum() > 0
    assert (terms.score_surrogate is not None) == (gradient == "score_function")


def test_without_the_surrogate_the_score_function_draw_blocks_the_encoder(digits):
    """The one-hot draw is detached: the reconstruction alone gives the encoder nothing (why the score is needed)."""
    model = build_model(CATEGORICAL.model, seed=0)
    terms = elbo_terms(model, torch.as_tensor(digits.x_train[:16]), torch.Generator().manual_seed(0),
                       "score_function", temperature=0.7)
    terms.reconstruction.mean().backward()
    assert model.to_logits.weight.grad is None or model.to_logits.weight.grad.abs().sum() == 0


def test_held_out_terms_decode_the_one_hot_draw(digits):
    """Without a temperature the decoder reads exact one-hot codes: the discrete model's ELBO, not a relaxation's."""
    model = build_model(CATEGORICAL.model, seed=0)
    seen = {}

    def keep_codes(module, inputs, output) -> None:
        seen["codes"] = inputs[0]

    model.decoder.register_forward_hook(keep_codes)
    elbo_terms(model, torch.as_tensor(digits.x_test[:8]), torch.Generator().manual_seed(0))
    codes = seen["codes"].reshape(8, 4, 3)
    assert torch.all(codes.sum(-1) == 1) and set(codes.unique().tolist()) == {0.0, 1.0}


def test_a_categorical_vae_trains_to_recognisable_reconstructions(digits):
    """The digits preset with 8 variables of 10 categories: reconstructions much closer to their images than the
    mean image is, and the variables carry information (KL well above 0)."""
    config = preset_config("digits").replace(posterior="categorical", epochs=15, device="cpu")
    trainer = Trainer(config, digits)
    first = trainer.evaluate()
    for _ in range(config.epochs * trainer.steps_per_epoch):
        trainer.step()
    last = trainer.evaluate()
    model = trainer.model.eval()
    assert reconstruction_error_ratio(model, digits) < 0.6
    assert last.elbo > first.elbo + 10
    assert kl_per_variable(model, digits.x_test).sum() > 1.0


@pytest.mark.parametrize("gradient", ["straight_through", "score_function"])
def test_the_other_estimators_train_too(digits, gradient):
    config = preset_config("digits").replace(posterior="categorical", encoder_gradient=gradient, epochs=4,
                                             device="cpu")
    config.validate()
    trainer = Trainer(config, digits)
    first = trainer.evaluate()
    for _ in range(config.epochs * trainer.steps_per_epoch):
        assert torch.isfinite(trainer.step()).all()
    assert trainer.evaluate().elbo > first.elbo + 5


def test_a_categorical_checkpoint_round_trips():
    config = CATEGORICAL
    model = build_model(config.model, seed=3)
    loaded = load_checkpoint(checkpoint_bytes(model, config))
    assert loaded.config == config and loaded.config.model.categorical
    x = torch.rand(3, 64, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(loaded.model.encode_logits(x), model.encode_logits(x))


def test_kl_per_variable_averages_the_exact_kl(digits):
    model = build_model(CATEGORICAL.model, seed=0)
    x = digits.x_test[:50]
    with torch.no_grad():
        expected = kl_to_uniform(model.encode_logits(torch.as_tensor(x))).mean(0).numpy()
    np.testing.assert_allclose(kl_per_variable(model, x, batch_size=7), expected, rtol=1e-5)
    assert ModelConfig(posterior="categorical", latent_dim=4, categories=3).code_size == 12
