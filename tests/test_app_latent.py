"""AppTest of the Latent space page: it opens on a bundled model, sliders and buttons move z, uploads are checked."""

import base64
import json

import numpy as np
import pytest

from pages._session import PRESENTING_KEY
from tests.conftest import open_app_page
from vae.checkpoints import load_pretrained
from vae.figures import PROJECTOR_SCALE
from vae.latent import posterior_means


@pytest.fixture
def page():
    at = open_app_page("pages/latent.py")
    return at


def button(at, label):
    return next(b for b in at.button if b.label == label)


def test_opens_on_the_2d_bundled_model_with_map_and_manifold(page):
    assert page.selectbox(key="latent:model").value == "digits-2d"
    assert [s.label for s in page.slider][:2] == ["z1", "z2"]
    assert any(sub.value == "The decoded manifold" for sub in page.subheader)
    assert page.metric[0].label == "Active units" and page.metric[0].value.endswith("of 2")


def test_buttons_move_the_point_and_the_sliders(page):
    page.slider(key="latent:slider:0").set_value(1.5).run()
    np.testing.assert_allclose(page.session_state["latent:z"], [1.5, 0.0])
    button(page, "Reset").click().run()
    assert page.slider(key="latent:slider:0").value == 0.0
    page.number_input(key="latent:image").set_value(3).run()
    button(page, "Start from this image").click().run()
    checkpoint = load_pretrained("digits-2d")
    from vae.data import load_digits_dataset

    expected = posterior_means(checkpoint.model, load_digits_dataset().x_test[3:4])[0]
    assert page.slider(key="latent:slider:0").value == pytest.approx(round(expected[0] / 0.05) * 0.05)
    button(page, "Random draw").click().run()
    assert not np.allclose(page.session_state["latent:z"], expected)


def test_more_than_two_dimensions_use_pca_and_traversals(page):
    page.selectbox(key="latent:model").select("digits").run()
    assert not page.exception
    assert len(page.slider) == 8 + 0  # one per latent dimension, no extent slider without a 2-D manifold
    assert any(sub.value == "One direction at a time" for sub in page.subheader)


def test_choosing_upload_offers_a_checkpoint_picker(page):
    """Only the picker: AppTest cannot upload a file; test_browser_latent.py uploads bad ones in Chromium."""
    page.selectbox(key="latent:model").select("upload").run()
    assert not page.exception
    assert any("Upload" in s.label or "checkpoint" in s.label for s in page.get("file_uploader"))


def test_presentation_mode_opens_on_the_sliders_and_the_picture(page):
    normal_sizes = chart_font_sizes(page)
    page.session_state[PRESENTING_KEY] = True
    page.run()
    assert not page.exception
    assert [s.label for s in page.slider][:2] == ["z1", "z2"]
    assert {b.label for b in page.button} >= {"Reset", "Random draw"}
    assert not any(b.label == "Start from this image" for b in page.button)  # a click on the map does it
    assert not any(n.key == "latent:image" for n in page.number_input)
    assert not any("Every point z decodes" in m.value for m in page.markdown)  # the intro: the teacher says it
    in_order = [node.key for node in page.main if getattr(node, "key", None) in ("latent:model", "latent:slider:0")]
    assert in_order == ["latent:slider:0", "latent:model"]  # the model picker: after the rest, out of the way
    assert chart_font_sizes(page) == [size * PROJECTOR_SCALE for size in normal_sizes]  # every chart, larger


def chart_font_sizes(at) -> list[float]:
    return [json.loads(chart.proto.spec)["layout"]["font"]["size"] for chart in at.get("plotly_chart")]


def test_the_bound_section_shows_l_k_beside_the_elbo_and_the_gradient_snr(page):
    assert any(sub.value == "How tight is the bound?" for sub in page.subheader)
    assert any("KL(q(z|x) ‖ p(z|x))" in m.value for m in page.markdown)  # the gap, explained
    specs = [json.loads(chart.proto.spec) for chart in page.get("plotly_chart")]
    bound = next(s for s in specs if s["layout"]["yaxis"]["title"]["text"] == "nats per example")
    ks, bounds = (plotted(bound["data"][0][axis]) for axis in ("x", "y"))
    assert (ks[0], ks[-1]) == (1, 1000) and bound["layout"]["xaxis"]["type"] == "log"
    elbo = bound["layout"]["shapes"][0]["y0"]
    assert bounds[0] == pytest.approx(elbo) and bounds[-1] > elbo  # L_1 is the ELBO; L_1000 is above
    snr = next(s for s in specs if s["layout"]["yaxis"]["title"]["text"] == "gradient SNR")
    assert [trace["name"] for trace in snr["data"]] == ["encoder", "decoder"]
    assert any("gains" in c.value and "nats over the ELBO" in c.value for c in page.caption)


def test_presentation_mode_puts_the_bound_behind_an_expander(page):
    page.session_state[PRESENTING_KEY] = True
    page.run()
    assert not page.exception
    assert not any(sub.value == "How tight is the bound?" for sub in page.subheader)
    assert [e.label for e in page.expander if e.label == "How tight is the bound?"]


def plotted(values) -> np.ndarray:
    """A trace's x or y as plotly serialises it: a list, or a numpy array as base64 bytes with their dtype."""
    if isinstance(values, dict):
        return np.frombuffer(base64.b64decode(values["bdata"]), dtype=values["dtype"])
    return np.asarray(values)


def test_the_random_draw_names_the_prior_it_draws_from(page):
    assert button(page, "Random draw").help == "A draw z ~ p(z), the prior: N(0, 1) in each dimension"
