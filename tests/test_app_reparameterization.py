"""AppTest of the Reparameterization page: every family renders, the numbers shown are the right ones."""

import pytest

from tests.conftest import open_app_page
from vae.families import FAMILIES


@pytest.fixture
def page():
    at = open_app_page("pages/reparameterization.py")
    return at


def test_opens_on_the_gaussian_with_a_bundled_model(page):
    assert page.title[0].value == "The reparameterization trick"
    assert page.selectbox(key="reparam:model").value == "digits"  # useful with no clicks, offline
    metrics = {m.label: m.value for m in page.metric}
    noise = page.slider(key="reparam:gaussian:noise").value
    assert metrics["$\\partial z/\\partial \\mu$"] == "1.000"
    assert metrics["$\\partial z/\\partial \\sigma$"] == f"{noise:.3f}"  # dz/dsigma = eps
    assert "sampling" in page.get("graphviz_chart")[0].proto.spec  # the graph before the trick
    page.get("segmented_control")[0].set_value("After the trick").run()
    assert "ε ~ N(0, I)" in page.get("graphviz_chart")[0].proto.spec


@pytest.mark.parametrize("name", [n for n in FAMILIES if n != "gaussian"])
def test_every_family_renders(page, name):
    page.selectbox(key="reparam:family").select(name).run()
    assert not page.exception
    assert len(page.metric) == len(FAMILIES[name].reparameterized_params)


def test_moving_the_scale_changes_z(page):
    before = next(m.value for m in page.markdown if m.value.startswith("At ε"))
    page.slider(key="reparam:gaussian:scale").set_value(2.0).run()
    after = next(m.value for m in page.markdown if m.value.startswith("At ε"))
    assert before != after


def test_resample_and_other_bundled_model(page):
    page.selectbox(key="reparam:model").select("digits-2d").run()
    page.slider(key="reparam:image").set_value(5).run()
    next(b for b in page.button if "Resample" in b.label).click().run()
    assert not page.exception
    assert page.session_state["reparam:seed"] == 1
