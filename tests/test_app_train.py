"""AppTest of the Train page (and the Lecture page beside it): it renders, starts, survives a page switch."""

import base64
import json

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import open_app_page
from vae.job import JobStatus


@pytest.fixture
def app():
    at = open_app_page()
    yield at
    job = at.session_state["training_job"] if "training_job" in at.session_state else None
    if job is not None:
        job.stop()
        job.join(timeout=10)


def button(at: AppTest, label: str):
    return next(b for b in at.button if b.label == label)


def chart_specs(at: AppTest) -> list[dict]:
    return [json.loads(json.loads(c.proto.json_args)["figure"]) for c in at.get("component_instance")]


def inline_pictures(at: AppTest) -> list[str]:
    return [m.value for m in at.markdown if m.value.startswith('<img src="data:image/png;base64,')]


def test_train_page_opens_on_the_bundled_run_ready_to_start(app):
    assert any(m.value == "### Train a VAE" for m in app.markdown)
    assert [s.label for s in app.selectbox][:2] == ["Which model?", "Which data?"]
    assert any("Showing the bundled run" in m.value for m in app.markdown)
    step_chart, epoch_chart = chart_specs(app)  # the bundled run's curves, before anything trains
    epochs = np.frombuffer(base64.b64decode(epoch_chart["data"][0]["x"]["bdata"]), dtype=np.int16)  # typed array
    assert epochs.tolist() == list(range(1, 151))  # all 150 epochs of the bundled run
    assert len(inline_pictures(app)) == 2  # its reconstructions and samples
    assert button(app, "Pause").disabled and button(app, "Stop").disabled


def test_start_trains_and_the_charts_fill(app):
    app.session_state["train:epochs"] = 2
    button(app, "Start").click().run()
    job = app.session_state["training_job"]
    job.wait_until(lambda s: s.status == JobStatus.FINISHED, timeout=60)
    app.run()
    assert not app.exception
    step_chart, epoch_chart = chart_specs(app)
    assert sorted(t["name"] for t in epoch_chart["data"]) == ["ELBO", "KL", "reconstruction"]
    assert len(epoch_chart["data"][0]["x"]) == 2 or epoch_chart["data"][0]["x"]["shape"] == "2"  # two epochs
    assert epoch_chart["layout"]["uirevision"]  # keeps the user's zoom across refreshes
    assert {t["name"] for t in step_chart["data"]} == {"ELBO", "reconstruction", "KL"}
    assert len(inline_pictures(app)) == 2  # reconstructions and prior samples, inline
    assert any("Finished" in m.value for m in app.markdown)


def test_training_continues_across_page_switches(app):
    app.session_state["train:epochs"] = 10_000
    app.session_state["train:latent_dim"] = 3
    button(app, "Start").click().run()
    job = app.session_state["training_job"]
    step_before = job.wait_until(lambda s: s.step > 5).step
    app.switch_page("pages/lecture.py").run()
    assert not app.exception
    assert app.title[0].value.startswith("The ELBO")
    assert job.wait_until(lambda s: s.step > step_before + 20).status == JobStatus.RUNNING
    app.switch_page("pages/train.py").run()
    assert app.session_state["training_job"] is job
    assert app.session_state["train:latent_dim"] == 3  # settings survive the visit
    assert button(app, "Pause").disabled is False
    button(app, "Pause").click().run()
    assert job.wait_until(lambda s: s.status == JobStatus.PAUSED).status == JobStatus.PAUSED


def test_a_bad_upload_is_refused_in_a_sentence(app, tmp_path):
    app.session_state["train:dataset"] = "upload"
    button(app, "Start").click().run()
    assert not app.exception
    assert any("Choose a .npz file" in w.value for w in app.warning)
    assert "training_job" not in app.session_state


def test_start_waits_for_the_warm_up_before_loading_anything(monkeypatch):
    """The warm-up thread imports torch, scipy and scikit-learn; the Start path loads the data (scikit-learn) and
    builds the model. Doing that while the warm-up is importing handed the page a half-initialised torch module."""
    import pages._session as session
    from vae import warmup

    calls = []
    real_load = session.load_dataset
    monkeypatch.setattr(warmup, "is_ready", lambda: False)
    monkeypatch.setattr(warmup, "wait", lambda timeout=None: calls.append("wait") or True)
    monkeypatch.setattr(session, "load_dataset", lambda *a, **k: calls.append("load") or real_load(*a, **k))
    at = open_app_page()
    at.session_state["train:epochs"] = 1
    button(at, "Start").click().run()
    job = at.session_state["training_job"]
    job.stop()
    job.join(timeout=10)
    assert calls and calls[0] == "wait", calls
