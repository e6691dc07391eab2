"""Lecture: the argument in formulas, and the SGD pseudocode following the live training job."""

from __future__ import annotations

from typing import TYPE_CHECKING

import streamlit as st

from pages._session import current_job, presenting
from vae.config import ModelConfig

if TYPE_CHECKING:
    from vae.families import Family
    from vae.job import TrainingJob

st.title("The ELBO and the reparameterization trick")
if not presenting():  # on a projector the teacher says it; the formulas come first
    st.markdown("A VAE is trained by maximising a lower bound on log p(x). Read the argument here; "
                "the **Train** page shows every quantity in it moving.")


def show_formula(tex: str) -> None:
    """A displayed formula. The thin space after it: KaTeX draws a 2 px strut past the end of an aligned block,
    which made the formula's box scroll sideways (a scrollbar, where scrollbars take room)."""
    st.latex(tex + r"\,")


def link_to(page: str, label: str, icon: str) -> None:
    """A link to the page that shows a step, for a student reading alone; on a projector the top bar does it."""
    if not presenting():
        st.page_link(page, label=label, icon=icon)


def elbo_section() -> None:
    st.subheader("1 · The evidence lower bound")
    show_formula(r"\begin{aligned}\mathcal{L}(\theta,\phi;x) &= "
             r"\mathbb{E}_{q_\phi(z\mid x)}\big[\log p_\theta(x\mid z)\big] "
             r"- \mathrm{KL}\big(q_\phi(z\mid x)\,\|\,p(z)\big) \\ &\le \log p_\theta(x)\end{aligned}")
    st.markdown("The first term rewards reconstructing x from z; the second keeps q close to the prior "
                "p(z) = N(0, I). Both are measured in **nats per example** on the Train page.")
    link_to("pages/train.py", label="See both terms trade off while a VAE trains", icon=":material/show_chart:")


def gradient_section() -> None:
    st.subheader("2 · Why ∇φ cannot go inside the expectation")
    show_formula(r"\begin{aligned}\nabla_\theta\, \mathbb{E}_{q_\phi}[f_\theta(z)] &= "
             r"\mathbb{E}_{q_\phi}[\nabla_\theta f_\theta(z)] \\"
             r"\text{but}\quad \nabla_\phi\, \mathbb{E}_{q_\phi}[f(z)] &= \nabla_\phi \int q_\phi(z) f(z)\,dz"
             r"\;\ne\; \mathbb{E}_{q_\phi}[\nabla_\phi f(z)]\end{aligned}")
    st.markdown("The distribution we sample from depends on φ, so sampling z blocks the gradient.")
    link_to("pages/reparameterization.py", icon=":material/account_tree:",
            label="See the blocked edge in the computation graph (last section of that page)")
    st.subheader("3 · The trick: move the randomness outside")
    show_formula(r"z = \mu_\phi(x) + \sigma_\phi(x)\odot\varepsilon,\qquad \varepsilon\sim\mathcal N(0, I)")
    st.markdown("so the expectation is over ε, which does not depend on φ, and the gradient goes inside; "
                "with K samples of ε:")
    show_formula(r"\begin{aligned}\nabla_\phi\,\mathbb{E}_{q_\phi}[f(z)] &= "
             r"\mathbb{E}_{\varepsilon}\big[\nabla_\phi f(\mu_\phi + \sigma_\phi\odot\varepsilon)\big] \\"
             r"&\approx \frac1K\sum_{k=1}^{K}\nabla_\phi f(\mu_\phi + \sigma_\phi\odot\varepsilon_k)"
             r"\end{aligned}")
    link_to("pages/reparameterization.py", label="See ε become z for seven families, and the graph before "
            "and after", icon=":material/shuffle:")
    st.markdown("This pathwise estimator has far lower variance than the score-function (REINFORCE) one, "
                "∇φ E[f] = E[f(z) ∇φ log q_φ(z)], which never differentiates f. Usually.")
    link_to("pages/estimators.py", label="Measure both, with exact values, and find where the claim fails",
            icon=":material/query_stats:")


def pseudocode(family: Family) -> str:
    """The SGD loop in markdown; its noise and z lines are `family`'s reparameterization z = g(params, noise)."""
    params = ", ".join(p.symbol for p in family.params if p.reparameterized)
    noise = family.noise_symbol
    route = "shifts and scales standard noise" if family.kind == "location-scale" else "is the inverse CDF at u"
    loop = [
        rf"${params} \leftarrow \mathrm{{encoder}}_\phi(x)$, one pair per example and latent dimension",
        rf"${noise} \leftarrow$ fresh draws of the base noise, {family.base}, as many",
        rf"$z \leftarrow g({params}, {noise})$, where ${family.formula}$ ({family.name}: g {route})",
        r"$L \leftarrow$ mean of $\log p_\theta(x \mid z) - \beta\,\mathrm{KL}(q_\phi(z \mid x) \,\|\, p(z))$",
        r"$\nabla \leftarrow$ gradient of $L$ for $\theta$ and $\phi$ (backpropagation through $z$)",
        r"$\theta, \phi \leftarrow$ update with $\nabla$ (Adam)",
    ]
    lines = [r"initialise $\theta, \phi$", "**repeat**", r"&emsp;&emsp;$x \leftarrow$ a random minibatch of the data",
             *(f"&emsp;&emsp;{line}" for line in loop), "**until** converged"]
    return "  \n".join(lines)  # two spaces: a line break inside one paragraph


def followed_family(job: TrainingJob | None) -> Family:
    """The live run's q(z|x) family, else the default. Imported here, not at the top: vae.families loads
    PyTorch, which the rest of the page does not need (the app warms it up in the background)."""
    from vae.families import FAMILIES

    return FAMILIES[job.config.model.posterior if job is not None else ModelConfig().posterior]


@st.fragment(run_every=1.0)
def pseudocode_section() -> None:
    st.subheader("4 · Training by stochastic gradient ascent")
    job = current_job()
    family = followed_family(job)
    with st.container(border=True):
        st.markdown(pseudocode(family))
    if job is None:
        st.caption(f"No model is training yet: start one on the Train page and this loop follows it (its q(z|x) "
                   f"family and counters). Until then it shows the default, {family.name}.")
        return
    snap = job.snapshot()
    latest = f"latest minibatch ELBO {snap.train['elbo'][-1]:.2f} nats" if len(snap.train["step"]) else ""
    st.markdown(f"**Live:** {snap.status_line} · q(z|x) is {family.name}" + (f" · {latest}" if latest else ""))


elbo_section()
gradient_section()
pseudocode_section()
link_to("pages/latent.py", label="Then walk the trained model's latent space", icon=":material/explore:")
