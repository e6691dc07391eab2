"""AppTest of the Train page (and the Lecture page beside it): it renders, starts, survives a page switch."""

import base64
import json

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import open_app_page
from vae.config import PosteriorFamily, preset_config, user_settings
from vae.job import JobStatus

PAGE_SETTINGS = {name for name, spec in user_settings().items() if spec.how.widget}  # declared in vae.config
# Drawn only when the posterior is categorical (they apply to a discrete z alone).
CATEGORICAL_SETTINGS = {"categories", "encoder_gradient", "temperature", "final_temperature"}


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


def setting_widgets(at: AppTest) -> dict[str, list]:
    """Setting name -> the widgets drawn for it (the page keys each `train:<field name>`)."""
    widgets: dict[str, list] = {}
    for widget in [*at.selectbox, *at.slider, *at.number_input]:
        if widget.key and widget.key.startswith("train:"):
            widgets.setdefault(widget.key.removeprefix("train:"), []).append(widget)
    return widgets


@pytest.mark.parametrize("posterior", ["gaussian", "categorical"])
def test_every_setting_declared_for_the_page_has_exactly_one_widget(app, posterior):
    app.selectbox(key="train:posterior").set_value(posterior).run()
    widgets = setting_widgets(app)
    shown = PAGE_SETTINGS if posterior == "categorical" else PAGE_SETTINGS - CATEGORICAL_SETTINGS
    assert set(widgets) == shown  # popover included: AppTest draws what it holds
    assert all(len(drawn) == 1 for drawn in widgets.values())
    assert PAGE_SETTINGS == set(user_settings()) - {"hidden_sizes"}  # CLI only
    for name, (widget,) in widgets.items():
        assert widget.label == user_settings()[name].how.label


def test_choosing_a_preset_puts_its_values_into_every_widget(app):
    app.selectbox(key="train:preset").set_value("digits-2d").run()
    expected = preset_config("digits-2d").setting_values()
    shown = {name: widget.value for name, (widget,) in setting_widgets(app).items()}
    assert shown == {name: expected[name] for name in PAGE_SETTINGS - CATEGORICAL_SETTINGS}
    assert shown["latent_dim"] == 2 and shown["epochs"] == 200


def test_start_trains_with_what_the_widgets_show(app):
    app.selectbox(key="train:posterior").set_value("laplace")
    app.number_input(key="train:epochs").set_value(1)
    app.number_input(key="train:beta").set_value(0.5)
    button(app, "Start").click().run()
    config = app.session_state["training_job"].config
    assert config.model.posterior is PosteriorFamily.LAPLACE  # the widget's string, typed by TrainConfig
    assert config == preset_config("digits").replace(posterior="laplace", epochs=1, beta=0.5)


def test_presentation_mode_shows_the_front_settings_and_trains_the_rest_as_the_preset_says(app):
    app.session_state["presentation_mode"] = True
    app.run()
    assert set(setting_widgets(app)) == {"preset", "latent_dim", "beta"}  # no data picker, no popover
    app.slider(key="train:latent_dim").set_value(4)
    button(app, "Start").click().run()
    assert app.session_state["training_job"].config == preset_config("digits").replace(latent_dim=4)


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


def test_start_with_upload_chosen_but_no_file_asks_for_one_in_a_sentence(app):
    """What the page says before a file arrives (AppTest cannot upload one; vae.data's tests refuse bad files)."""
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
    real_load = session.load_named_dataset
    monkeypatch.setattr(warmup, "is_ready", lambda: False)
    monkeypatch.setattr(warmup, "wait", lambda timeout=None: calls.append("wait") or True)
    monkeypatch.setattr(session, "load_named_dataset", lambda *a, **k: calls.append("load") or real_load(*a, **k))
    at = open_app_page()
    at.session_state["train:epochs"] = 1
    button(at, "Start").click().run()
    job = at.session_state["training_job"]
    job.stop()
    job.join(timeout=10)
    assert calls and calls[0] == "wait", calls


def download_buttons(at: AppTest) -> dict[str, object]:
    """Label -> the proto of each download button on the page (label, disabled, help)."""
    return {b.proto.label: b.proto for b in at.get("download_button")}


DOWNLOADS = {"Download checkpoint (.safetensors)", "Metrics (.csv)", "Standalone script (.py)"}


def test_the_download_row_offers_the_bundled_runs_checkpoint_and_script_before_anything_trains(app):
    buttons = download_buttons(app)
    assert set(buttons) == DOWNLOADS
    assert not buttons["Standalone script (.py)"].disabled  # the bundled run's: the digits preset
    assert buttons["Metrics (.csv)"].disabled  # the bundled run's curves come without a step count per epoch


def test_presentation_mode_hides_the_script_and_the_metrics_with_the_checkpoint(app):
    app.session_state["presentation_mode"] = True
    app.run()
    assert download_buttons(app) == {}


def test_a_run_offers_its_metrics_and_says_why_its_script_cannot_be_written(app):
    app.selectbox(key="train:posterior").set_value("laplace")
    app.number_input(key="train:epochs").set_value(1000)
    button(app, "Start").click().run()
    buttons = download_buttons(app)
    assert set(buttons) == DOWNLOADS
    for label in ("Download checkpoint (.safetensors)", "Metrics (.csv)"):  # weights still moving: after Pause
        assert buttons[label].disabled and "Press Pause" in buttons[label].help, label
    job = app.session_state["training_job"]
    job.pause()
    job.wait_until(lambda snap: snap.status == JobStatus.PAUSED, timeout=60)
    app.run()
    buttons = download_buttons(app)
    assert not buttons["Metrics (.csv)"].disabled and not buttons["Download checkpoint (.safetensors)"].disabled
    script = buttons["Standalone script (.py)"]
    assert script.disabled and "Gaussian posterior only" in script.help


def served_file_id(data: bytes | str, mimetype: str, filename: str) -> str:
    """The id Streamlit's media storage gives these bytes (a hash of them): the URL of a button serving them."""
    from streamlit.runtime.media_file_storage import MediaFileKind
    from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage

    return MemoryMediaFileStorage("/media").load_and_get_id(data, mimetype, MediaFileKind.DOWNLOADABLE, filename)


def test_a_runs_downloads_are_files_made_before_the_click_and_hold_its_weights(app):
    """A file made on click (a deferred download) is deleted by the page's next two refreshes, before a slow link
    fetches it: the browser said "canceled" for a paused run's checkpoint. The run's files are stored with the
    buttons, and they are the run's: its final weights and metadata, and every step."""
    import torch

    from vae.checkpoints import load_checkpoint
    from vae.export import metrics_csv

    app.number_input(key="train:epochs").set_value(1)
    button(app, "Start").click().run()
    job = app.session_state["training_job"]
    job.wait_until(lambda snap: not snap.is_alive, timeout=120)
    app.run()
    buttons = download_buttons(app)
    for label in ("Download checkpoint (.safetensors)", "Metrics (.csv)"):
        assert buttons[label].url and not buttons[label].deferred_file_id, label
    _, checkpoint, metrics = app.session_state["train:files"]  # what the page stored (safetensors' bytes vary)
    assert served_file_id(checkpoint, "application/octet-stream", "vae.safetensors") in \
        buttons["Download checkpoint (.safetensors)"].url
    assert served_file_id(metrics.encode(), "text/csv", "vae-metrics.csv") in buttons["Metrics (.csv)"].url
    weights = load_checkpoint(checkpoint).model.state_dict()
    assert all(torch.equal(weights[name], tensor) for name, tensor in job.model().state_dict().items())
    assert metrics == metrics_csv(job.snapshot())  # every step and epoch of the finished run


def test_a_queued_run_offers_stop_but_not_step_or_pause(app, monkeypatch, small_digits, small_config):
    """A step asked of a queued run would come minutes later, unseen, and leave it paused on a slot others wait for."""
    import vae.job as job_module
    from vae.job import TrainingJob, TrainingSlots

    monkeypatch.setattr(job_module, "SLOTS", TrainingSlots(1))
    ahead = TrainingJob(small_config.replace(epochs=10_000), small_digits)  # holds the only slot
    ahead.start()
    try:
        ahead.wait_until(lambda s: s.status == JobStatus.RUNNING, timeout=60)
        button(app, "Start").click().run()
        queued = app.session_state["training_job"]
        assert queued.wait_until(lambda s: s.status == JobStatus.QUEUED, timeout=60).status == JobStatus.QUEUED
        app.run()
        assert button(app, "Step").disabled and button(app, "Pause").disabled
        assert not button(app, "Stop").disabled
        assert "training slot" in button(app, "Step").help
    finally:
        ahead.stop()
        ahead.join(10)
    queued.wait_until(lambda s: s.status == JobStatus.RUNNING, timeout=60)  # the slot is free: it trains
    app.run()
    assert not button(app, "Step").disabled and not button(app, "Pause").disabled
