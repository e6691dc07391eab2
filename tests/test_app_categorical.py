"""Every page with a categorical run live: the Latent space page decodes a choice of categories; the pages whose
views need μ(x) and σ(x) say so in a sentence; nothing raises. The Train page offers the discrete z's settings."""

from __future__ import annotations

import numpy as np
import pytest

from pages._session import JOB_KEY
from tests.conftest import open_app_page
from vae.categorical import decode_categories
from vae.config import ModelConfig, TrainConfig
from vae.job import TrainingJob

CATEGORICAL_SENTENCE = "This model's z is categorical"


@pytest.fixture(scope="module")
def categorical_job(small_digits):
    config = TrainConfig(model=ModelConfig(hidden_sizes=(32,), latent_dim=3, posterior="categorical", categories=4),
                         epochs=1, batch_size=32, device="cpu")
    job = TrainingJob(config, small_digits)
    job.step(1)
    job.wait_until(lambda s: s.step >= 1, timeout=60)
    yield job
    job.stop()
    job.join(timeout=10)


def page_with(job: TrainingJob, path: str):
    at = open_app_page()
    at.session_state[JOB_KEY] = job
    at.switch_page(path).run()
    assert not at.exception
    return at


def texts(at) -> list[str]:
    return [e.value for e in [*at.info, *at.markdown, *at.caption, *at.warning, *at.error]]


def test_the_latent_page_has_one_picker_per_variable_and_decodes_the_choice(categorical_job):
    at = page_with(categorical_job, "pages/latent.py")
    pickers = [at.slider(key=f"latent:category:{n}") for n in range(3)]
    assert [(p.min, p.max, p.value) for p in pickers] == [(1, 4, 1)] * 3
    pickers[1].set_value(3).run()
    assert not at.exception
    assert any("3 categorical variables of 4 categories" in t for t in texts(at))
    shown = decode_categories(categorical_job.model(), [0, 2, 0]).numpy()
    assert np.all((shown >= 0) & (shown <= 1))
    at.button[[b.label for b in at.button].index("Start from this image")].click().run()
    assert not at.exception
    assert all(1 <= at.slider(key=f"latent:category:{n}").value <= 4 for n in range(3))


@pytest.mark.parametrize("path", ["pages/reparameterization.py", "pages/estimators.py"])
def test_views_that_need_a_continuous_z_say_so(categorical_job, path):
    at = page_with(categorical_job, path)
    assert any(CATEGORICAL_SENTENCE in t for t in texts(at))


def test_the_lecture_follows_a_categorical_run_without_raising(categorical_job):
    at = page_with(categorical_job, "pages/lecture.py")
    assert any("q(z|x) is categorical" in t for t in texts(at))
    at.button(key="lecture:step").click().run()
    assert not at.exception
    assert any("this run's z is categorical" in t for t in texts(at))


def test_the_train_page_offers_the_discrete_settings_only_for_a_categorical_posterior():
    at = open_app_page("pages/train.py")
    keys = {w.key for w in [*at.selectbox, *at.number_input, *at.slider]}
    assert "train:categories" not in keys
    at.selectbox(key="train:posterior").set_value("categorical").run()
    assert not at.exception
    keys = {w.key for w in [*at.selectbox, *at.number_input, *at.slider]}
    assert {"train:categories", "train:encoder_gradient", "train:temperature", "train:final_temperature"} <= keys


def test_start_trains_the_categorical_run_the_widgets_describe():
    at = open_app_page("pages/train.py")
    at.selectbox(key="train:posterior").set_value("categorical").run()
    at.selectbox(key="train:encoder_gradient").set_value("straight_through")
    at.number_input(key="train:categories").set_value(5)
    at.number_input(key="train:epochs").set_value(1)
    next(b for b in at.button if b.label == "Start").click().run()
    assert not at.exception
    job = at.session_state[JOB_KEY]
    try:
        config = job.config
        assert config.model.categorical and config.model.categories == 5
        assert config.encoder_gradient == "straight_through" and config.epochs == 1
        job.wait_until(lambda s: s.step >= 1, timeout=60)
    finally:
        job.stop()
        job.join(timeout=10)


def test_the_train_page_says_how_a_categorical_run_draws_its_pictures(categorical_job):
    """A categorical z has no μ(x): the captions said the reconstructions were decoded from it."""
    shown = " ".join(texts(page_with(categorical_job, "pages/train.py")))
    assert "decoded from each variable's likeliest category" in shown
    assert "a uniform category per variable" in shown and "μ(x)" not in shown
