"""AppTest of the Reparameterization page: every family renders, the numbers shown are the right ones."""

import json
import re

import pytest

from pages._session import PRESENTING_KEY
from tests.conftest import live_app_run, open_app_page
from vae.families import FAMILIES
from vae.figures import PROJECTOR_SCALE


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
    assert 'id="graph-before"' in graph_svg(page) and "through sampling" in graph_svg(page)
    page.get("segmented_control")[0].set_value("After the trick").run()
    assert 'id="graph-after"' in graph_svg(page) and "ε ~ N(0, I)" in graph_svg(page)


def graph_svg(page) -> str:
    """The computation graph: an inline SVG in a markdown element."""
    return next(m.value for m in page.markdown if "<svg" in m.value)


def plain(markdown: str) -> str:
    return re.sub(r"<[^>]+>", "", markdown)


@pytest.mark.parametrize("name", list(FAMILIES))
def test_the_top_of_the_page_says_what_g_is_for_the_chosen_family(page, name):
    family = FAMILIES[name]
    page.selectbox(key="reparam:family").select(name).run()
    intro, under_picker = (plain(m.value) for m in page.markdown[:2])
    assert "μ + σ" not in intro  # true of location-scale families only
    assert family.formula in under_picker and family.base in under_picker
    if family.kind == "inverse-CDF":
        assert "F⁻¹(u)" in under_picker and "μ + σ·ε" not in under_picker


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


def chart_font_sizes(at) -> list[float]:
    return [json.loads(chart.proto.spec)["layout"]["font"]["size"] for chart in at.get("plotly_chart")]


def test_presentation_mode_keeps_the_picker_sliders_and_plot_and_hides_the_rest(page):
    normal_sizes = chart_font_sizes(page)
    page.session_state[PRESENTING_KEY] = True
    page.run()
    assert not page.exception
    assert page.selectbox(key="reparam:family").value == "gaussian"
    assert {"reparam:gaussian:loc", "reparam:gaussian:scale", "reparam:gaussian:noise"} <= {s.key for s in page.slider}
    assert not any("Pick a family" in m.value for m in page.markdown)  # the intro: the teacher says it
    assert len(page.expander) == 0  # the derivation, for reading alone
    assert chart_font_sizes(page) == [size * PROJECTOR_SCALE for size in normal_sizes]  # every chart, larger


# How each posterior family's parts are named where the page shows a live run's q(z|x): its own scale symbol (b for
# the Laplace, s for the logistic), and for the Gamma, which has no g, its mean and standard deviation.
LIVE_RUN_WORDS = {  # family: the legend's two names, the pictures' draw, a collapsed dimension
    "gaussian": ("z = μ + σ·ε", "μ(x) ± σ(x)", "z = μ(x) + σ(x)·ε", "μ ≈ 0 and σ ≈ 1 (the prior N(0, 1))"),
    "laplace": ("z = μ + b·ε", "μ(x) ± b(x)", "z = μ(x) + b(x)·ε", "μ ≈ 0 and b ≈ 1 (the prior Laplace(0, 1))"),
    "logistic": ("z = μ + s·F⁻¹(u)", "μ(x) ± s(x)", "z = μ(x) + s(x)·F⁻¹(u)",
                 "μ ≈ 0 and s ≈ 1 (the prior Logistic(0, 1))"),
    "student-t": ("z = μ + σ·ε", "μ(x) ± σ(x)", "z = μ(x) + σ(x)·ε",
                  "μ ≈ 0 and σ ≈ 1 (the prior Student-t(0, 1, ν = 3))"),
    "gamma": ("z = F⁻¹(u; α, β)", "E[z|x] ± sd", "z = F⁻¹(u; α(x), β(x))",
              "E[z|x] ≈ 1 and sd ≈ 1 (the prior Gamma(1, 1))"),
}


ENCODER_OUTPUTS = {"gaussian": "μ(x) and σ(x)", "laplace": "μ(x) and b(x)", "logistic": "μ(x) and s(x)",
                   "student-t": "μ(x) and σ(x)", "gamma": "log α(x) and 1/β(x)"}


@pytest.mark.parametrize("family", list(LIVE_RUN_WORDS))
def test_a_live_runs_posterior_is_named_in_its_familys_symbols(small_digits, family):
    """It said z = μ + σ·ε and μ(x) ± σ(x) for a Laplace or logistic run, whose scale is b or s."""
    with live_app_run(family, small_digits) as (at, _):
        at.switch_page("pages/reparameterization.py").run()
        assert not at.exception and at.selectbox(key="reparam:model").value == "live"
        draw, bar, draw_of_x, collapsed = LIVE_RUN_WORDS[family]
        posterior_chart = json.loads(at.get("plotly_chart")[-1].proto.spec)
        assert [trace["name"] for trace in posterior_chart["data"]] == [draw, bar]
        captions = " ".join(c.value for c in at.caption)
        assert f"nine draws {draw_of_x} (model" in captions and f"A dimension with {collapsed}" in captions
        intro = next(m.value for m in at.markdown if m.value.startswith("The encoder maps an image x to"))
        assert f"x to {ENCODER_OUTPUTS[family]}, one pair" in plain(intro)
