"""Remedies for posterior collapse: free bits (Kingma et al. 2016) and cyclical KL annealing (Fu et al. 2019),
checked term by term and by their effect: a 16-dimensional digits VAE at β = 1 switches most dimensions off,
and each remedy keeps more of them active (same seed)."""

from __future__ import annotations

import json

import pytest
import torch

from vae.collapse import COLLAPSING, REMEDIES, remedy_configs, remedy_result
from vae.config import ConfigError, preset_config
from vae.elbo import ElboTerms, training_loss
from vae.latent import latent_usage
from vae.trainer import Trainer


def terms_with_kl(per_dimension: list[list[float]]) -> ElboTerms:
    kl = torch.tensor(per_dimension, requires_grad=True)  # (B, K)
    return ElboTerms(torch.zeros(len(per_dimension)), kl.sum(-1), None, kl)


def test_free_bits_charge_a_dimension_below_the_floor_a_constant_and_pass_its_gradient_above():
    terms = terms_with_kl([[0.1, 2.0], [0.3, 3.0]])  # dimension 1: mean 0.2 < λ; dimension 2: mean 2.5 > λ
    loss = training_loss(terms, beta=2.0, free_bits=0.5)
    assert loss.item() == pytest.approx(2.0 * (0.5 + 2.5))  # -(0 - β·(max(λ, 0.2) + max(λ, 2.5)))
    loss.backward()
    gradient = terms.kl_per_dimension.grad
    assert torch.equal(gradient[:, 0], torch.zeros(2))  # nothing pushes dimension 1 further down
    assert torch.allclose(gradient[:, 1], torch.full((2,), 2.0 / 2))  # β / B, as without free bits


def test_without_free_bits_the_loss_is_the_beta_elbo():
    terms = terms_with_kl([[0.1, 2.0], [0.3, 3.0]])
    assert training_loss(terms, beta=2.0).item() == pytest.approx(2.0 * (2.1 + 3.3) / 2)


def test_cyclical_annealing_restarts_beta_from_zero_each_cycle(small_digits):
    config = preset_config("digits").replace(epochs=4, kl_cycles=2, beta=3.0, device="cpu")
    trainer = Trainer(config, small_digits, "cpu")
    period = 4 * trainer.steps_per_epoch / 2  # steps per cycle
    for step, expected in [(0, 0.0), (period / 4, 1.5), (period / 2, 3.0), (0.9 * period, 3.0), (period, 0.0),
                           (1.25 * period, 1.5)]:
        trainer.step_count = int(step)
        assert trainer.beta() == pytest.approx(3.0 * min(1.0, (int(step) % period) / (period / 2)))
        assert trainer.beta() == pytest.approx(expected, abs=3.0 / period)


@pytest.mark.parametrize(("change", "message"), [
    ({"free_bits": -0.1}, "Free bits must be a finite number of nats from 0 to 10, not -0.1."),
    ({"free_bits": float("nan")}, "Free bits must be a finite number of nats from 0 to 10, not nan."),
    ({"kl_cycles": 101}, "The number of KL cycles must be between 0 and 100, not 101."),
])
def test_bad_remedy_settings_are_refused_with_a_sentence(change, message):
    with pytest.raises(ConfigError, match=message.replace(".", r"\.").replace("(", r"\(")):
        preset_config("digits").replace(**change).validate()


def active_units_after_training(digits, **remedy) -> int:
    config = preset_config("digits").replace(epochs=50, latent_dim=16, seed=0, device="cpu", **remedy)
    trainer = Trainer(config, digits, "cpu")
    for _ in range(config.epochs * trainer.steps_per_epoch):
        trainer.step()
    return latent_usage(trainer.model.eval(), digits.x_test).active_count


# Minutes of CPU: in the browser tests' worker, one after another, so they never starve a browser test's server.
@pytest.mark.xdist_group("browser")
def test_each_remedy_keeps_more_latent_dimensions_active(digits):
    """Measured with seed 0: 5 of 16 active at β = 1, 16 with 0.5 free bits, 9 with four KL cycles."""
    collapsed = active_units_after_training(digits)
    assert collapsed <= 8  # most dimensions collapse to the prior
    assert active_units_after_training(digits, free_bits=0.5) >= collapsed + 6
    assert active_units_after_training(digits, kl_cycles=4) > collapsed


def test_the_remedy_runs_differ_from_the_collapsing_run_only_in_their_remedy():
    base = json.loads(COLLAPSING.to_json())
    for name, config in remedy_configs().items():
        changed = {k: v for k, v in json.loads(config.to_json()).items() if v != base[k]}
        assert changed == REMEDIES[name]  # same seed, data, architecture and epochs: only the remedy differs


@pytest.mark.xdist_group("browser")
def test_the_latent_page_trains_every_remedy_and_shows_each_ones_active_units():
    from tests.conftest import open_app_page  # noqa: PLC0415

    at = open_app_page("pages/latent.py")
    next(b for b in at.button if b.label == "Train it with each remedy").click().run()
    runs = at.session_state["latent:remedies"]
    try:
        assert list(runs) == list(REMEDIES)
        assert {name: job.config.free_bits for name, job in runs.items()}["free bits, 0.5 nats"] == 0.5
        for job in runs.values():
            job.join(timeout=300)
        at.run()
        shown = {m.label: m.value for m in at.metric if m.label in REMEDIES}
        assert set(shown) == set(REMEDIES)
        for name, job in runs.items():  # each metric is that run's own count, as vae.collapse computes it
            assert shown[name] == f"{remedy_result(job.model(), job.dataset.x_test).active} of 16"
    finally:
        for job in runs.values():
            job.stop()
