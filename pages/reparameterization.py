"""Reparameterization: z = g(params, noise) for seven families, the trained encoder's q(z|x), and the graph
before and after the trick."""

from __future__ import annotations

import numpy as np
import streamlit as st

from pages._session import ModelChoice, choose_model, presenting, show_figure, show_images
from vae.families import FAMILIES, Family, base_distribution, density_on, gradients_at, transform_at, transform_demo
from vae.figures import (
    coloured,
    density_figure,
    posterior_figure,
    transform_figure,
)
from vae.graphs import computation_graph, to_svg
from vae.latent import posterior_draws

TRANSFORM_HEIGHT = 360  # px: with the picker and sliders above it, the ε → z plot fits a 1280x720 screen

st.title("The reparameterization trick")
if not presenting():  # on a projector the teacher says it: the picker, sliders and plot come first
    st.markdown(f"Sampling {coloured('z', 'z')} ~ q(z; params) blocks the gradient. Writing {coloured('z', 'z')} = "
                f"g(params, {coloured('eps', 'noise')}), with the noise drawn from a fixed distribution, moves the "
                f"randomness outside, so {coloured('z', 'z')} becomes a differentiable function of the parameters. "
                "Pick a family and watch the noise turn into z.", unsafe_allow_html=True)


def family_controls() -> tuple[Family, dict[str, float], float]:
    """Family, its parameters and the noise value whose derivatives are shown."""
    columns = st.columns([2, 5])
    name = columns[0].selectbox("Family", list(FAMILIES), format_func=lambda n: FAMILIES[n].name,
                                key="reparam:family")
    family = FAMILIES[name]
    sliders = columns[1].columns(len(family.params) + 1)
    params = {p.name: sliders[i].slider(f"${p.symbol}$ ({p.name})", p.low, p.high, p.default,
                                        key=f"reparam:{name}:{p.name}")
              for i, p in enumerate(family.params)}
    low, high = (-3.0, 3.0) if family.kind == "location-scale" else (0.01, 0.99)
    noise = sliders[-1].slider(f"pick ${family.noise_symbol}$", low, high, (low + high) / 2 + 0.3 * (high - low),
                               key=f"reparam:{name}:noise")
    return family, params, noise


def g_sentence(family: Family) -> str:
    """What g is for `family`: shift-and-scale of standard noise, or the inverse CDF applied to a uniform."""
    if family.kind == "location-scale":
        how = "is a location-scale family: g shifts and scales standard noise,"
    else:
        how = "is sampled through its inverse CDF: g turns uniform noise u into z = F⁻¹(u),"
    return f"**{family.name}** {how} here ${family.formula}$, with {family.base}."


def transform_section(family: Family, params: dict[str, float], noise: float) -> None:
    """The noise against z with the curve g, and beside it what g is and what backpropagation multiplies by."""
    demo = transform_demo(family, params)
    picked_z = transform_at(family, params, noise)
    symbol = "ε" if family.kind == "location-scale" else "u"
    left, right = st.columns([3, 2])
    with left:
        show_figure(transform_figure(demo.noise, demo.z, demo.curve_noise, demo.curve_z, (noise, picked_z), symbol,
                                     height=TRANSFORM_HEIGHT), "reparam:transform")
        st.caption(f"Each blue dot is one draw of the noise {symbol} (x) and the z it becomes (y); the dashed curve "
                   "is the transform g.")
    with right:
        st.markdown(g_sentence(family))
        st.markdown(f"At {symbol} = {noise:.2f}, z = **{picked_z:.3f}**. Backpropagation multiplies the "
                    "incoming gradient ∂L/∂z by:")
        gradients = gradients_at(family, params, noise)
        symbols = {p.name: p.symbol for p in family.params}
        metrics = st.columns(len(gradients))
        for column, (name, value) in zip(metrics, gradients.items(), strict=True):
            column.metric(f"$\\partial z/\\partial {symbols[name]}$", f"{value:.3f}")
        for formula in family.derivative_formulas:
            st.latex(formula)
    densities_section(family, params, demo)


def densities_section(family: Family, params: dict[str, float], demo) -> None:
    """Histograms of the noise and of z, each under its exact density."""
    base = base_distribution(family, params)
    noise_grid = np.linspace(demo.curve_noise[0], demo.curve_noise[-1], 300)
    # The central 96% of z: heavy tails (Cauchy) would otherwise squash the density into a spike.
    z_low, z_high = family.scipy_dist(family.resolve(params)).ppf([0.02, 0.98])
    z_grid = np.linspace(z_low, z_high, 300)
    z_density = density_on(family, params, z_grid)
    left, right = st.columns(2)
    with left:
        show_figure(density_figure(demo.noise, noise_grid, base.pdf(noise_grid), "eps", f"noise ({family.base})"),
                    "reparam:noise_density")
    with right:
        show_figure(density_figure(demo.z, z_grid, z_density, "z", f"z ~ {family.name}"), "reparam:z_density")


def model_section() -> None:
    st.subheader("Inside a trained VAE: q(z|x) for one image")
    st.markdown(f"The encoder maps an image x to {coloured('mu', 'μ(x)')} and {coloured('sigma', 'σ(x)')}, one "
                f"pair per latent dimension; each draw of {coloured('eps', 'ε')} gives a new "
                f"{coloured('z', 'z')}, and the decoder turns each into an image.", unsafe_allow_html=True)
    choice = choose_model("reparam:model")
    if choice is None:
        return
    count = len(choice.dataset.x_test)
    columns = st.columns([3, 1])
    index = columns[0].slider("Test image", 0, count - 1, 0, key="reparam:image")
    if columns[1].button("Resample ε", icon=":material/casino:"):
        st.session_state["reparam:seed"] = st.session_state.get("reparam:seed", 0) + 1
    show_posterior(choice, index, st.session_state.get("reparam:seed", 0))


def show_posterior(choice: ModelChoice, index: int, seed: int) -> None:
    draws = posterior_draws(choice.model, choice.dataset.x_test[index], seed=seed)
    left, right = st.columns([3, 2])
    with left:
        show_figure(posterior_figure(draws.loc, draws.scale, draws.z), "reparam:posterior")
    with right:
        show_images(draws.pictures, 5, "First: the test image x. Then the decoder's output for nine draws "
                    f"z = μ(x) + σ(x)·ε (model: {choice.label}).", tile=48)
    left.caption("A dimension with μ ≈ 0 and σ ≈ 1 for every image carries no information: its q(z|x) is the "
                 "prior (posterior collapse). The Latent space page counts them.")


def graph_section() -> None:
    st.subheader("The computation graph, before and after")
    control, note = st.columns([2, 5], vertical_alignment="center")  # room for both labels at presentation size
    view = control.segmented_control("Graph", ["Before the trick", "After the trick"], default="Before the trick",
                                     key="reparam:graph", label_visibility="collapsed")
    reparameterized = view == "After the trick"
    if reparameterized:
        note.markdown(f"z = μ + σ·{coloured('eps', 'ε')} is deterministic and {coloured('eps', 'ε')} enters from "
                      "outside: the gradient reaches φ through μ and σ.", unsafe_allow_html=True)
    else:
        note.markdown("z is drawn from q_φ(z|x): the gradient reaches z, but cannot pass the sampling step back "
                      "to μ, σ and φ.")
    # Inline SVG at its own pixel size: a chart element would scale it to the column and shrink the text.
    # st.markdown, not st.html: st.html's sanitiser removes SVG.
    st.markdown(f'<div style="overflow-x: auto">{to_svg(computation_graph(reparameterized))}</div>',
                unsafe_allow_html=True)


def argument_section() -> None:
    """The derivation, for a student reading alone; a class hears it (presentation mode hides it)."""
    with st.expander("The argument, step by step", expanded=False):
        st.markdown("**θ (decoder)**: the distribution we average over does not depend on θ, so the gradient "
                    "goes inside:")
        st.latex(r"\nabla_\theta\,\mathbb{E}_{q_\phi(z\mid x)}[\log p_\theta(x\mid z)]"
                 r" = \mathbb{E}_{q_\phi(z\mid x)}[\nabla_\theta \log p_\theta(x\mid z)]")
        st.markdown("**φ (encoder)**: it does depend on φ, so the gradient cannot go inside:")
        st.latex(r"\nabla_\phi\,\mathbb{E}_{q_\phi(z\mid x)}[f(z)] = \nabla_\phi\!\int q_\phi(z\mid x)\,f(z)\,dz"
                 r" \neq \mathbb{E}_{q_\phi(z\mid x)}[\nabla_\phi f(z)]")
        st.markdown("**Change of variables**: with z = g_φ(ε, x) and ε ~ p(ε), probability mass is preserved,")
        st.latex(r"q_\phi(z\mid x)\,dz = p(\varepsilon)\,d\varepsilon \quad\Rightarrow\quad "
                 r"\mathbb{E}_{q_\phi(z\mid x)}[f(z)] = \mathbb{E}_{p(\varepsilon)}[f(g_\phi(\varepsilon, x))]")
        st.markdown("and now the expectation is over ε, which does not depend on φ. **Monte Carlo with K samples**:")
        st.latex(r"\nabla_\phi\,\mathbb{E}_{q_\phi(z\mid x)}[f(z)] \approx \frac{1}{K}\sum_{k=1}^{K}"
                 r"\nabla_\phi f\big(g_\phi(\varepsilon_k, x)\big),\qquad \varepsilon_k \sim p(\varepsilon)")


family, params, noise = family_controls()
transform_section(family, params, noise)
if not presenting():
    argument_section()
model_section()
graph_section()
