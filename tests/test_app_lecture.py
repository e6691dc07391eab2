"""AppTest of the Lecture page: the argument in formulas, links to every other page, the live SGD loop."""

from tests.conftest import open_app_page
from vae.job import JobStatus


def test_formulas_and_links_to_every_page():
    at = open_app_page("pages/lecture.py")
    formulas = " ".join(latex.value for latex in at.latex)
    assert r"\mathrm{KL}" in formulas and r"\varepsilon" in formulas and r"\frac1K\sum_{k=1}^{K}" in formulas
    assert "No model is training yet" in " ".join(c.value for c in at.caption)
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
