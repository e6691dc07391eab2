"""AppTest of the Estimators page: the toy lab's numbers for all three estimators (exact variances, evaluations,
the work-normalised verdict), every baseline and control variate, the VAE table, and the race."""

import numpy as np
import pytest
import streamlit as st
import torch
from streamlit.testing.v1 import AppTest

from tests.conftest import live_app_run, open_app_page
from vae.config import POSTERIOR_FAMILIES
from vae.control_variates import VARIANCE_REDUCTIONS
from vae.estimators import ESTIMATORS
from vae.families import posterior_family
from vae.job import JobStatus
from vae.toy_costs import COSTS
from vae.variance_lab import ToySetting, exact_single_sample_variance


@pytest.fixture
def page():
    at = open_app_page("pages/estimators.py")
    yield at
    for job in (at.session_state["estimators:race"] or {}).values() if "estimators:race" in at.session_state else ():
        job.stop()
        job.join(timeout=10)


def work_table(at: AppTest) -> dict[str, list[str]]:
    """The comparison table's rows: {measure: [one cell per estimator]}, and "estimators": the header."""
    text = next(m.value for m in at.markdown if m.value.startswith("| |"))
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in text.splitlines()]
    return {"estimators": rows[0][1:], **{row[0]: row[1:] for row in rows[2:]}}


def test_the_table_shows_every_estimators_exact_variance_and_cost(page):
    setting = ToySetting("(z-k)^2", 1.0, 1.0, 1.0)
    table = work_table(page)
    assert [cell.split("**")[1] for cell in table["estimators"]] == ["pathwise", "score function", "measure-valued"]
    exact = [exact_single_sample_variance(setting, name)["loc"] for name in ESTIMATORS]
    assert table["variance"] == [f"{v:.3g}" for v in exact] == ["4", "15", "0"]
    assert table["f evaluations"] == ["1", "1", "4"]
    assert table["variance × evaluations"] == ["∞×", "∞×", "1×"]  # the coupled loc difference is exactly 0 here
    assert any("measure-valued** estimator is least noisy" in m.value for m in page.markdown)
    assert len(page.get("plotly_chart")) >= 2  # histograms and the variance-against-K chart


def test_a_control_variate_and_the_scale_gradient(page):
    page.radio(key="estimators:parameter").set_value("scale").run()
    page.selectbox(key="estimators:baseline").select("delta_optimal").run()
    assert not page.exception
    setting = ToySetting("(z-k)^2", 1.0, 1.0, 1.0, "delta_optimal")
    exact = [exact_single_sample_variance(setting, name)["scale"] for name in ESTIMATORS]
    assert work_table(page)["variance"] == [f"{v:.3g}" for v in exact] == ["8", "74", "4"]


@pytest.mark.parametrize("baseline", VARIANCE_REDUCTIONS)
def test_every_baseline_renders(page, baseline):
    page.selectbox(key="estimators:cost").select("cos(k z)").run()
    page.selectbox(key="estimators:baseline").select(baseline).run()
    assert not page.exception and work_table(page)["variance"][1] != "cannot be computed reliably here"


def test_an_unreliable_exact_value_is_said_in_words(page, monkeypatch):
    """Where the exact variance is nan (vae.toy_variances cannot compute it reliably), no number is shown."""
    real = exact_single_sample_variance
    monkeypatch.setattr("vae.variance_lab.exact_single_sample_variance", lambda setting, name: (
        {"loc": float("nan"), "scale": float("nan")} if name == "measure_valued" else real(setting, name)))
    try:
        page.slider(key="estimators:sigma").set_value(1.3).run()  # a setting not cached yet
        assert not page.exception
        assert work_table(page)["variance"][2] == "cannot be computed reliably here"
        assert any("measure-valued estimator cannot be computed reliably here" in c.value for c in page.caption)
    finally:
        st.cache_data.clear()  # the page's cache outlives the patch


@pytest.mark.parametrize("cost", list(COSTS))
def test_every_cost_renders(page, cost):
    page.selectbox(key="estimators:cost").select(cost).run()
    assert not page.exception


def test_score_function_wins_for_cos_with_large_k(page):
    page.selectbox(key="estimators:cost").select("cos(k z)").run()
    page.slider(key="estimators:k:cos(k z)").set_value(5.0).run()
    page.slider(key="estimators:mu").set_value(0.0).run()
    pathwise, score, _ = (float(v) for v in work_table(page)["variance"])
    assert score < pathwise  # the exception the page teaches
    assert any("score function can beat" in i.value for i in page.info)


def test_where_f_jumps_the_pathwise_estimator_leaves_the_comparison(page):
    page.selectbox(key="estimators:cost").select("1[z>k]").run()
    assert [cell.split("**")[1] for cell in work_table(page)["estimators"]] == ["score function", "measure-valued"]
    assert any("pathwise estimator is biased" in w.value for w in page.warning)


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


def test_the_categorical_race_trains_its_three_estimators_and_probes_each(page):
    """A categorical z races the Gumbel-softmax, straight-through and score-function gradients (issue: "raceable
    like today's race"); each run's own estimator is probed along the way, at that step's temperature."""
    z = next(w for w in page.get("segmented_control") if w.key == "estimators:race_z")
    z.set_value("categorical").run()
    assert any("categorical z (8 variables of 10 categories)" in m.value for m in page.markdown)
    page.slider(key="estimators:race_epochs").set_value(5).run()
    next(b for b in page.button if b.label == "Start the race").click().run()
    racers = page.session_state["estimators:race"]
    assert list(racers) == ["gumbel_softmax", "straight_through", "score_function"]
    for job in racers.values():
        snap = job.wait_until(lambda s: s.status == JobStatus.FINISHED, timeout=180)
        assert job.config.model.categorical and len(snap.gradient_variance["step"]) > 0
        assert np.isfinite(snap.gradient_variance["variance"]).all()
    variance = {name: float(np.median(job.snapshot().gradient_variance["variance"])) for name, job in racers.items()}
    assert variance["gumbel_softmax"] < variance["score_function"]  # the race shows the noisy one
    page.run()
    assert not page.exception
    assert any("Gumbel-softmax" in m.value and "straight-through" in m.value for m in page.markdown)


@pytest.mark.parametrize("family", [f for f in POSTERIOR_FAMILIES if f != "gaussian"])
def test_the_vae_comparison_runs_for_a_live_run_of_any_posterior_family(small_digits, family):
    """The live run on the Train page has, say, a Laplace q(z|x): the comparison is shown for that model."""
    with live_app_run(family, small_digits) as (at, _):
        at.switch_page("pages/estimators.py").run()
        assert not at.exception
        assert at.selectbox(key="estimators:model").value == "live"
        texts = [e.value for e in [*at.warning, *at.info, *at.markdown, *at.caption]]
        assert not any("pick a model" in t or "uses a Gaussian" in t for t in texts)
        assert at.dataframe[0].value["tensor"].tolist()[:1] == ["encoder.0.0.weight"]
        variances = at.dataframe[0].value[["variance (pathwise)", "variance (score function)"]].to_numpy()
        assert np.isfinite(variances).all() and (variances > 0).all()
        assert any(posterior_family(family).name in t for t in texts)  # the page says which q(z|x) it compares under
