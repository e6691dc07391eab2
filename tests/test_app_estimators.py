"""AppTest of the Estimators page: the toy lab's numbers, the VAE table, and the race."""

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

from pages._session import JOB_KEY
from tests.conftest import open_app_page
from vae.config import POSTERIOR_FAMILIES, ModelConfig, TrainConfig
from vae.families import FAMILIES
from vae.job import JobStatus, TrainingJob
from vae.toy_costs import COSTS
from vae.variance_lab import ToySetting, exact_single_sample_variance


@pytest.fixture
def page():
    at = open_app_page("pages/estimators.py")
    yield at
    for job in (at.session_state["estimators:race"] or {}).values() if "estimators:race" in at.session_state else ():
        job.stop()
        job.join(timeout=10)


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def test_variance_ratio_is_the_exact_one(page):
    setting = ToySetting("(z-k)^2", 1.0, 1.0, 1.0)
    exact = {name: exact_single_sample_variance(setting, name)["loc"] for name in ("pathwise", "score_function")}
    assert metric(page, "Variance ratio, score / pathwise") == f"{exact['score_function'] / exact['pathwise']:,.3g}×"
    assert len(page.get("plotly_chart")) >= 2  # histograms and the variance-against-K chart


@pytest.mark.parametrize("cost", list(COSTS))
def test_every_cost_renders(page, cost):
    page.selectbox(key="estimators:cost").select(cost).run()
    assert not page.exception


def test_score_function_wins_for_cos_with_large_k(page):
    page.selectbox(key="estimators:cost").select("cos(k z)").run()
    page.slider(key="estimators:k:cos(k z)").set_value(5.0).run()
    page.slider(key="estimators:mu").set_value(0.0).run()
    ratio = metric(page, "Variance ratio, score / pathwise")
    assert float(ratio.rstrip("×")) < 1  # the exception the page teaches
    assert any("score function can beat" in i.value for i in page.info)


def test_vae_table_and_race(page):
    assert page.dataframe[0].value["tensor"].tolist()[:1] == ["encoder.0.0.weight"]
    page.slider(key="estimators:race_epochs").set_value(5).run()
    next(b for b in page.button if b.label == "Start the race").click().run()
    racers = page.session_state["estimators:race"]
    assert set(racers) == {"pathwise", "score_function"}
    for job in racers.values():
        snap = job.wait_until(lambda s: s.status == JobStatus.FINISHED, timeout=120)
        assert len(snap.gradient_variance["step"]) > 0
    pathwise, score_function = racers["pathwise"], racers["score_function"]
    # The two VAEs differ only in the encoder's gradient estimator, and so end up with different weights.
    assert pathwise.config.replace(encoder_gradient="score_function") == score_function.config
    assert not torch.equal(pathwise.model().to_loc.weight, score_function.model().to_loc.weight)
    page.run()
    assert not page.exception


@pytest.mark.parametrize("family", [f for f in POSTERIOR_FAMILIES if f != "gaussian"])
def test_the_vae_comparison_runs_for_a_live_run_of_any_posterior_family(small_digits, family):
    """The live run on the Train page has, say, a Laplace q(z|x): the comparison is shown for that model."""
    config = TrainConfig(model=ModelConfig(hidden_sizes=(32,), latent_dim=2, posterior=family), epochs=1,
                         batch_size=32, device="cpu")
    job = TrainingJob(config, small_digits)
    job.step(1)
    job.wait_until(lambda s: s.step >= 1, timeout=60)
    try:
        at = open_app_page()
        at.session_state[JOB_KEY] = job
        at.switch_page("pages/estimators.py").run()
        assert not at.exception
        assert at.selectbox(key="estimators:model").value == "live"
        texts = [e.value for e in [*at.warning, *at.info, *at.markdown, *at.caption]]
        assert not any("pick a model" in t or "uses a Gaussian" in t for t in texts)
        assert at.dataframe[0].value["tensor"].tolist()[:1] == ["encoder.0.0.weight"]
        variances = at.dataframe[0].value[["variance (pathwise)", "variance (score function)"]].to_numpy()
        assert np.isfinite(variances).all() and (variances > 0).all()
        assert any(FAMILIES[family].name in t for t in texts)  # the page says which q(z|x) it compares under
    finally:
        job.stop()
        job.join(timeout=10)
