"""AppTest of the Lecture page: the argument in formulas, links to every other page, the live SGD loop."""

import pytest

from pages._session import PRESENTING_KEY
from tests.conftest import live_app_run, open_app_page
from vae.families import FAMILIES
from vae.job import JobStatus


def pseudocode(at) -> str:
    """The SGD loop as shown, whatever element draws it."""
    return next(element.value for element in [*at.code, *at.markdown] if "repeat" in element.value)


def test_formulas_and_links_to_every_page():
    at = open_app_page("pages/lecture.py")
    formulas = " ".join(latex.value for latex in at.latex)
    assert r"\mathrm{KL}" in formulas and r"\varepsilon" in formulas and r"\frac1K\sum_{k=1}^{K}" in formulas
    assert "No model is training yet" in " ".join(c.value for c in at.caption)
    gaussian = FAMILIES["gaussian"]
    assert gaussian.base in pseudocode(at) and gaussian.formula in pseudocode(at)  # the default q(z|x)
    assert "shows the default, Gaussian" in " ".join(c.value for c in at.caption)
    assert {link.proto.page for link in at.get("page_link")} == {"train", "reparameterization", "estimators", "latent"}


def test_the_pseudocode_follows_the_live_job():
    at = open_app_page()
    at.session_state["train:epochs"] = 3
    next(b for b in at.button if b.label == "Start").click().run()
    job = at.session_state["training_job"]
    job.wait_until(lambda s: s.status == JobStatus.FINISHED, timeout=60)
    at.switch_page("pages/lecture.py").run()
    live = next(m.value for m in at.markdown if m.value.startswith("**Live:**"))
    assert "Finished" in live and "latest minibatch ELBO" in live


@pytest.mark.parametrize("family", ["laplace", "logistic", "student-t"])
def test_the_pseudocode_names_the_live_runs_family(small_digits, family):
    """It said ε ~ N(0, I) and z = μ + σ ⊙ ε while a Laplace (or Logistic, Student-t) run trained."""
    with live_app_run(family, small_digits) as (at, _):
        at.switch_page("pages/lecture.py").run()
        assert not at.exception
        loop = pseudocode(at)
        assert FAMILIES[family].base in loop and FAMILIES[family].formula in loop
        assert "N(0, I)" not in loop and "N(0, 1)" not in loop and r"\sigma_\phi" not in loop


def test_presentation_mode_opens_on_the_formulas():
    at = open_app_page()
    at.session_state[PRESENTING_KEY] = True
    at.switch_page("pages/lecture.py").run()
    assert not at.exception
    assert not any("Read the argument here" in m.value for m in at.markdown)  # the teacher says it
    assert len(at.get("page_link")) == 0  # the top bar does it on a projector
    formulas = " ".join(latex.value for latex in at.latex)
    assert r"\mathrm{KL}" in formulas and r"\ne" in formulas
