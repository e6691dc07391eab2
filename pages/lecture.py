"""Lecture: the argument in formulas, and the SGD pseudocode following the live training job, one minibatch at a
time: Step walks a minibatch through the loop and shows its numbers."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd
import streamlit as st

from pages._links import open_link, update_link
from pages._session import current_job, draw_refreshing, literal, presenting, show_images, step_live_run
from vae import links
from vae.config import ModelConfig
from vae.families import Family, posterior_family
from vae.graphs import computation_graph, to_svg
from vae.step_inspection import StepRecord, graph_numbers, latent_table, loop_position

if TYPE_CHECKING:
    from vae.job import TrainingJob

DRAWN_KEY = "lecture:drawn_record"  # the step record this run of the page draws (the fragment compares)
STEP_WAIT_S = 5.0  # how long Step waits for its minibatch before saying it is queued
IMAGES = 8  # of the minibatch M, shown

st.title("The ELBO and the reparameterization trick")
if not presenting():  # on a projector the teacher says it; the formulas come first
    st.markdown("A VAE is trained by maximising a lower bound on log p(x). Read the argument here; "
                "the **Train** page shows every quantity in it moving.")

GRAPH_VIEWS = ["Before the trick", "After the trick"]
LINK = [links.choice("graph", "lecture:graph", GRAPH_VIEWS[1], GRAPH_VIEWS)]  # a class link (pages/_links.py)


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


def pseudocode(family: Family, highlighted: tuple[str, ...] = (), note: str = "") -> str:
    """The SGD loop in markdown; its noise and z lines are `family`'s reparameterization z = g(params, noise).
    The lines named in `highlighted` (keys of vae.step_inspection.LOOP_LINES) are marked, the first with `note`."""
    params = ", ".join(p.symbol for p in family.params if p.reparameterized)
    noise = family.noise_symbol
    route = {"location-scale": "shifts and scales standard noise", "inverse-CDF": "is the inverse CDF at u",
             "implicit": "is the inverse CDF at u, computed numerically and differentiated implicitly"}[family.kind]
    loop = {
        "batch": r"$x \leftarrow$ a random minibatch of the data",
        "encode": rf"${params} \leftarrow \mathrm{{encoder}}_\phi(x)$, one pair per example and latent dimension",
        "noise": rf"${noise} \leftarrow$ fresh draws of the base noise, {family.base}, as many",
        "z": rf"$z \leftarrow g({params}, {noise})$, where ${family.formula}$ ({family.name}: g {route})",
        "loss": r"$L \leftarrow$ mean of $\log p_\theta(x \mid z) - \beta\,\mathrm{KL}(q_\phi(z \mid x) \,\|\, p(z))$",
        "backprop": r"$\nabla \leftarrow$ gradient of $L$ for $\theta$ and $\phi$ (backpropagation through $z$)",
        "update": r"$\theta, \phi \leftarrow$ update with $\nabla$ (Adam)",
    }

    def line(key: str, text: str) -> str:
        if key not in highlighted:
            return text
        marked = f":orange-background[{text}]"
        return marked + (f" :material/arrow_back: *{note}*" if note and key == highlighted[0] else "")

    lines = [line("init", r"initialise $\theta, \phi$"), "**repeat**",
             *(f"&emsp;&emsp;{line(key, text)}" for key, text in loop.items()), line("until", "**until** converged")]
    return "  \n".join(lines)  # two spaces: a line break inside one paragraph


def followed_family(job: TrainingJob | None) -> Family:
    """The live run's q(z|x) family, else the default (also for a categorical z, which no g of this kind draws)."""
    continuous = job is not None and not job.config.model.categorical
    return posterior_family(job.config.model.posterior if continuous else ModelConfig().posterior)


def pseudocode_section() -> None:
    job = current_job()
    family = followed_family(job)
    snap = job.snapshot() if job is not None else None
    highlighted, note = loop_position(snap.status) if snap is not None else ((), "")
    with st.container(border=True):
        st.markdown(pseudocode(family, highlighted, note))
    if job is None:
        st.caption(f"No model is training yet: start one on the Train page, or press Step below, and this loop "
                   f"follows it (its q(z|x) family and counters). Until then it shows the default, {family.name}.")
        return
    latest = f"latest minibatch ELBO {snap.train['elbo'][-1]:.2f} nats" if len(snap.train["step"]) else ""
    posterior = "categorical (the loop is drawn for a continuous z)" if job.config.model.categorical else family.name
    st.markdown(f"**Live:** {literal(snap.status_line)} · q(z|x) is {posterior}" + (f" · {latest}" if latest else ""))
    if job.last_step_record() is not st.session_state.get(DRAWN_KEY):
        st.rerun()  # a record that came after the page was drawn (a Step that waited for a slot): draw it below


def step_section() -> None:
    """Step: one minibatch through the loop above, then its numbers, line by line."""
    job = current_job()
    alive = job is not None and job.snapshot().is_alive
    button, note = st.columns([1, 5], vertical_alignment="center")
    if button.button("Step", icon=":material/skip_next:", key="lecture:step", width="stretch"):
        job, alive = take_step(job if alive else None), True
    note.markdown("One minibatch through the loop, then the run pauses and shows that minibatch's numbers."
                  if alive else "No run is live: Step starts one, paused, from the bundled digits settings.")
    record = job.last_step_record() if job is not None else None
    st.session_state[DRAWN_KEY] = record
    if record is not None:
        show_record(record)


def take_step(job: TrainingJob | None) -> TrainingJob | None:
    """`job.step()` (a fresh paused run of the digits preset when there is none), waiting briefly for it."""
    started = job is None
    job, record = step_live_run(job, STEP_WAIT_S)
    if job is None:
        return None  # the server is full: start_new_job said so
    if job.config.model.categorical:
        st.info("The step ran. Its numbers are shown for a continuous z (μ, σ, ε); this run's z is categorical.")
    elif record is None:
        st.info("The step has not run yet (the run may be waiting for a free training slot); its numbers appear "
                "here once it has.")
    elif started:
        st.rerun()  # the loop above was drawn before there was a run to follow
    return job


def show_record(record: StepRecord) -> None:
    family = posterior_family(record.family)
    st.markdown(f"**Step {record.step:,}**, minibatch M of {record.batch_size} images · q(z|x) is "
                f"**{family.name}**: ${family.formula}$ with {family.base}")
    left, right = st.columns([2, 3])
    with left:
        show_images(record.images(IMAGES), IMAGES // 2, f"x: the first {IMAGES} images of M", tile=64, gap=8)
    with right:
        table = pd.DataFrame(latent_table(record))
        _, _, noise, loc, scale, z = table.columns
        st.table(table.style.format("{:.3f}", subset=[noise, loc, scale, z]).hide(axis="index"))
        st.caption(f"The noise {noise} drawn for the first images, the encoder's {loc} and {scale}, and "
                   f"z = g({loc}, {scale}, {noise}), per latent dimension.")
    show_step_metrics(record)
    with st.container(key="lecture_graph"):  # the guided tour points at it (vae.tour)
        graph_section(record)


def show_step_metrics(record: StepRecord) -> None:
    """The ELBO terms of the minibatch, the gradient norms of θ and φ, and the size of the update."""
    metrics = record.metrics
    columns = st.columns(6)
    columns[0].metric("Reconstruction", f"{metrics['reconstruction']:.2f}", help="E_q[log p(x|z)], nats per image")
    columns[1].metric("KL", f"{metrics['kl']:.2f}", help="KL(q(z|x) ‖ p(z)), nats per image")
    columns[2].metric("ELBO", f"{metrics['elbo']:.2f}", help="Reconstruction − KL, nats per image")
    columns[3].metric("‖∇θ‖ decoder", f"{record.grad_norms['theta']:.3g}", help="Norm of the loss's gradient for θ")
    columns[4].metric("‖∇φ‖ encoder", f"{record.grad_norms['phi']:.3g}", help="Norm of the loss's gradient for φ")
    columns[5].metric("‖Δθ, Δφ‖ update", f"{record.update_norm:.3g}", help="Norm of the change of all weights")
    st.caption(f"L = −(reconstruction − β·KL) = {record.loss:.2f} with β = {record.beta:g}; Adam (learning rate "
               f"{record.learning_rate:g}) moved θ by {record.update_norms['theta']:.3g} and φ by "
               f"{record.update_norms['phi']:.3g}.")


def graph_section(record: StepRecord) -> None:
    """The same step on the computation graph: value and gradient on each node, before and after the trick."""
    control, note = st.columns([2, 5], vertical_alignment="center")
    view = control.segmented_control("Graph of this step", GRAPH_VIEWS, default=GRAPH_VIEWS[1], key="lecture:graph",
                                     label_visibility="collapsed")
    note.markdown("The first image's reconstruction term L = log p_θ(x|z) and latent dimension 1: each node's "
                  "value, and in red its gradient (for φ and θ the norm over their weights).")
    graph = computation_graph(view != "Before the trick", posterior_family(record.family))
    # Inline SVG at its own pixel size (st.html's sanitiser removes SVG): text stays at its projector size.
    st.markdown(f'<div style="overflow-x: auto">{to_svg(graph, graph_numbers(record))}</div>',
                unsafe_allow_html=True)


open_link(LINK)
with st.container(key="lecture_elbo"):  # keyed containers: the guided tour points at them (vae.tour)
    elbo_section()
gradient_section()
st.subheader("4 · Training by stochastic gradient ascent")
# The record step_section draws in this run, unless Step makes a newer one: the fragment reruns the page for any
# newer record (a Step on the Train page) and must not for this one.
st.session_state[DRAWN_KEY] = current_job().last_step_record() if current_job() is not None else None
with st.container(key="lecture_loop"):
    draw_refreshing(pseudocode_section)
    step_section()
link_to("pages/latent.py", label="Then walk the trained model's latent space", icon=":material/explore:")
update_link()
