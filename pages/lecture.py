"""Lecture: the argument in formulas, and the SGD pseudocode following the live training job."""

from __future__ import annotations

import streamlit as st

from pages._session import current_job

st.title("The ELBO and the reparameterization trick")
st.markdown("A VAE is trained by maximising a lower bound on log p(x). Read the argument here; "
            "the **Train** page shows every quantity in it moving.")


def elbo_section() -> None:
    st.subheader("1 · The evidence lower bound")
    st.latex(r"\begin{aligned}\mathcal{L}(\theta,\phi;x) &= "
             r"\mathbb{E}_{q_\phi(z\mid x)}\big[\log p_\theta(x\mid z)\big] "
             r"- \mathrm{KL}\big(q_\phi(z\mid x)\,\|\,p(z)\big) \\ &\le \log p_\theta(x)\end{aligned}")
    st.markdown("The first term rewards reconstructing x from z; the second keeps q close to the prior "
                "p(z) = N(0, I). Both are measured in **nats per example** on the Train page.")
    st.page_link("pages/train.py", label="See both terms trade off while a VAE trains", icon=":material/show_chart:")


def gradient_section() -> None:
    st.subheader("2 · Why ∇φ cannot go inside the expectation")
    st.latex(r"\nabla_\theta\, \mathbb{E}_{q_\phi}[f_\theta(z)] = \mathbb{E}_{q_\phi}[\nabla_\theta f_\theta(z)]")
    st.markdown("but")
    st.latex(r"\nabla_\phi\, \mathbb{E}_{q_\phi}[f(z)] = \nabla_\phi \int q_\phi(z) f(z)\,dz"
             r"\;\ne\; \mathbb{E}_{q_\phi}[\nabla_\phi f(z)]")
    st.markdown("The distribution we sample from depends on φ, so sampling z blocks the gradient.")
    st.page_link("pages/reparameterization.py", icon=":material/account_tree:",
                 label="See the blocked edge in the computation graph (last section of that page)")
    st.subheader("3 · The trick: move the randomness outside")
    st.latex(r"z = \mu_\phi(x) + \sigma_\phi(x)\odot\varepsilon,\qquad \varepsilon\sim\mathcal N(0, I)")
    st.markdown("so the expectation is over ε, which does not depend on φ, and the gradient goes inside; "
                "with K samples of ε:")
    st.latex(r"\begin{aligned}\nabla_\phi\,\mathbb{E}_{q_\phi}[f(z)] &= "
             r"\mathbb{E}_{\varepsilon}\big[\nabla_\phi f(\mu_\phi + \sigma_\phi\odot\varepsilon)\big] \\"
             r"&\approx \frac1K\sum_{k=1}^{K}\nabla_\phi f(\mu_\phi + \sigma_\phi\odot\varepsilon_k)"
             r"\end{aligned}")
    st.page_link("pages/reparameterization.py", label="See ε become z for seven families, and the graph before "
                 "and after", icon=":material/shuffle:")
    st.markdown("This pathwise estimator has far lower variance than the score-function (REINFORCE) one, "
                "∇φ E[f] = E[f(z) ∇φ log q_φ(z)], which never differentiates f. Usually.")
    st.page_link("pages/estimators.py", label="Measure both, with exact values, and find where the claim fails",
                 icon=":material/query_stats:")


PSEUDOCODE = [
    "initialise θ, φ",
    "repeat",
    "    x ← a random minibatch of the data",
    "    ε ← samples of N(0, I), one per example",
    "    z ← μ_φ(x) + σ_φ(x) ⊙ ε",
    "    L ← mean of log p_θ(x | z) − β · KL(q_φ(z | x) ‖ p(z))",
    "    g ← gradient of L for θ and φ   (backpropagation through z)",
    "    θ, φ ← update with g (Adam)",
    "until converged",
]


@st.fragment(run_every=1.0)
def pseudocode_section() -> None:
    st.subheader("4 · Training by stochastic gradient ascent")
    st.code("\n".join(PSEUDOCODE), language=None)
    job = current_job()
    if job is None:
        st.caption("No model is training yet: start one on the Train page and this loop's counters move here.")
        return
    snap = job.snapshot()
    latest = f"latest minibatch ELBO {snap.train['elbo'][-1]:.2f} nats" if len(snap.train["step"]) else ""
    st.markdown(f"**Live:** {snap.status_line}" + (f" · {latest}" if latest else ""))


elbo_section()
gradient_section()
pseudocode_section()
st.page_link("pages/latent.py", label="Then walk the trained model's latent space", icon=":material/explore:")
