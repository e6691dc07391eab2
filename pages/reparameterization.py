"""Reparameterization: z = g(params, noise) for seven families, the trained encoder's q(z|x), and the graph
before and after the trick."""

from __future__ import annotations

import numpy as np
import streamlit as st

from pages._links import open_link, update_link
from pages._session import (
    ModelChoice,
    choose_model,
    literal,
    model_link,
    presenting,
    show_figure,
    show_images,
)
from vae import links
from vae.discrete import MAX_TEMPERATURE, MIN_TEMPERATURE, relaxed_draws
from vae.families import (
    FAMILIES,
    Family,
    PosteriorWords,
    base_distribution,
    density_on,
    gradients_at,
    posterior_words,
    transform_at,
    transform_demo,
)
from vae.figures import (
    category_bars_figure,
    coloured,
    density_figure,
    implicit_gradient_figure,
    posterior_figure,
    simplex_figure,
    transform_figure,
)
from vae.graphs import computation_graph, to_svg
from vae.implicit import IMPLICIT_FAMILIES, ImplicitFamily, implicit_view
from vae.latent import posterior_draws

TRANSFORM_HEIGHT = 360  # px: with the picker and sliders above it, the ε → z plot fits a 1280x720 screen

st.title("The reparameterization trick")
if not presenting():  # on a projector the teacher says it: the picker, sliders and plot come first
    st.markdown(f"Sampling {coloured('z', 'z')} ~ q(z; params) blocks the gradient. Writing {coloured('z', 'z')} = "
                f"g(params, {coloured('eps', 'noise')}), with the noise drawn from a fixed distribution, moves the "
                f"randomness outside, so {coloured('z', 'z')} becomes a differentiable function of the parameters. "
                "Pick a family and watch the noise turn into z.", unsafe_allow_html=True)


GRAPH_VIEWS = ["Before the trick", "After the trick"]
GUMBEL_LOGITS = (1.0, 0.0, -0.5)  # the starting logits of the three categories


def noise_range(family: Family) -> tuple[float, float, float]:
    """The noise slider's low, high and starting value: standard noise, or a uniform's u."""
    low, high = (-3.0, 3.0) if family.kind == "location-scale" else (0.01, 0.99)
    return low, high, (low + high) / 2 + 0.3 * (high - low)


LINK = [  # this page's settings in a class link (pages/_links.py)
    links.choice("family", "reparam:family", next(iter(FAMILIES)), FAMILIES),
    *(links.number(p.name, f"reparam:{name}:{p.name}", p.default, p.low, p.high, when=("family", name))
      for name, family in FAMILIES.items() for p in family.params),
    *(links.number("noise", f"reparam:{name}:noise", noise_range(family)[2], *noise_range(family)[:2],
                   when=("family", name)) for name, family in FAMILIES.items()),
    links.choice("implicit", "reparam:implicit", next(iter(IMPLICIT_FAMILIES)), IMPLICIT_FAMILIES),
    *(links.number(p.name, f"reparam:implicit:{name}:{p.name}", p.default, p.low, p.high,
                   when=("implicit", name)) for name, family in IMPLICIT_FAMILIES.items() for p in family.params),
    *(links.number(f"theta{k}", f"reparam:gumbel:theta{k}", default, -3.0, 3.0)
      for k, default in enumerate(GUMBEL_LOGITS, start=1)),
    links.number("temperature", "reparam:gumbel:temperature", 1.0, MIN_TEMPERATURE, MAX_TEMPERATURE),
    model_link("reparam:model"),
    links.choice("graph", "reparam:graph", GRAPH_VIEWS[0], GRAPH_VIEWS),
]


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
    low, high, start = noise_range(family)
    noise = sliders[-1].slider(f"pick ${family.noise_symbol}$", low, high, start, key=f"reparam:{name}:noise")
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


def implicit_section() -> None:
    """Gamma and Beta: no g to differentiate, yet torch's rsample carries a gradient; the page checks it against
    the CDF."""
    st.subheader("No simple g: Gamma and Beta")
    if not presenting():
        st.markdown("Gamma and Beta have no closed-form z = g(params, ε), yet the gradient exists. Hold the draw's "
                    "quantile u = F(z; α) fixed while α moves: differentiating F(z(α); α) = u gives "
                    "dz/dα = −(∂F/∂α)/(∂F/∂z) = −(∂F/∂α)/q(z), which needs the CDF and the density, never g "
                    "(implicit reparameterization, Figurnov et al. 2018). `torch.distributions` backpropagates "
                    "this through `Gamma.rsample` and `Beta.rsample`; the dashed line computes it independently, "
                    "from finite differences of scipy's CDF.")
    family, params = implicit_controls()
    view = implicit_view(family, params)
    first = family.params[0]
    left, right = st.columns(2)
    with left:
        show_figure(implicit_gradient_figure(view.draws.z, view.draws.gradients[first.name], view.grid,
                                             view.cdf_gradients[first.name], "α"), "reparam:implicit_gradient")
    with right:
        figure = density_figure(view.draws.z, view.grid, view.density, "z", f"z ~ {family.name}")
        figure.update_yaxes(range=[0, view.density_ceiling])
        show_figure(figure, "reparam:implicit_density")
    st.caption(f"torch's dz/dα and dz/dβ against the CDF's over {len(view.draws.z):,} draws: median relative "
               f"difference {view.agreement.median:.0e}, largest {view.agreement.worst:.0e} (in some regions, "
               "large concentrations and far tails, torch approximates this derivative to about 1e-3).")


def implicit_controls() -> tuple[ImplicitFamily, dict[str, float]]:
    columns = st.columns([2, 5])
    name = columns[0].selectbox("Family", list(IMPLICIT_FAMILIES), format_func=lambda n: IMPLICIT_FAMILIES[n].name,
                                key="reparam:implicit")
    family = IMPLICIT_FAMILIES[name]
    sliders = columns[1].columns(len(family.params))
    params = {p.name: sliders[i].slider(f"${p.symbol}$ ({p.name})", p.low, p.high, p.default,
                                        key=f"reparam:implicit:{name}:{p.name}")
              for i, p in enumerate(family.params)}
    return family, params


def gumbel_section() -> None:
    """A categorical z: Gumbel-max draws it exactly but argmax has no gradient; the tempered softmax does."""
    st.subheader("Discrete z: Gumbel-max, and the relaxation that has a gradient")
    if not presenting():
        st.markdown("A category z with probabilities softmax(θ) is drawn exactly as z = argmax_k(θ_k + G_k), with "
                    "G_k Gumbel noise: a reparameterization, but argmax is flat almost everywhere, so ∂z/∂θ = 0. "
                    "The **Gumbel-softmax** y = softmax((θ + G)/τ) bends argmax into a smooth map: differentiable, "
                    "inside the simplex, one-hot only as τ → 0. Move τ: cold draws crowd the corners, warm ones "
                    "the middle, and the mean of y drifts away from the true probabilities (the relaxation's bias).")
    sliders = st.columns(4)
    logits = tuple(sliders[k].slider(f"θ{'₁₂₃'[k]}", -3.0, 3.0, default, 0.1, key=f"reparam:gumbel:theta{k + 1}")
                   for k, default in enumerate(GUMBEL_LOGITS))
    temperature = sliders[3].slider("temperature τ", MIN_TEMPERATURE, MAX_TEMPERATURE, 1.0, 0.05,
                                    key="reparam:gumbel:temperature")
    draws = relaxed_draws(logits, temperature)
    left, right = st.columns(2)
    with left:
        show_figure(simplex_figure(draws.relaxed, draws.hard), "reparam:simplex")
    with right:
        show_figure(category_bars_figure(draws.probabilities, draws.frequencies(), draws.relaxed_mean()),
                    "reparam:categories")
    st.caption(f"{len(draws.hard):,} draws of the same Gumbel noise: through argmax (colours, and the blue bars: "
               "they match softmax(θ)) and through the softmax at τ (the points, and their mean). The Estimators "
               "page measures what each way of getting ∂/∂θ costs in bias and variance.")


def model_section() -> None:
    st.subheader("Inside a trained VAE: q(z|x) for one image")
    intro = st.empty()  # drawn once the model is chosen: in its family's words
    choice = choose_model("reparam:model")
    words = posterior_words(choice.config.model.posterior if choice else "gaussian")
    intro.markdown(f"The encoder maps an image x to {coloured('mu', words.loc + '(x)')} and "
                   f"{coloured('sigma', words.scale + '(x)')}, one pair per latent dimension; each draw of "
                   f"{coloured('eps', words.noise)} gives a new {coloured('z', 'z')}, and the decoder turns each "
                   "into an image.", unsafe_allow_html=True)
    if choice is None:
        return
    count = len(choice.dataset.x_test)
    columns = st.columns([3, 1])
    index = columns[0].slider("Test image", 0, count - 1, 0, key="reparam:image")
    if columns[1].button(f"Resample {words.noise}", icon=":material/casino:"):
        st.session_state["reparam:seed"] = st.session_state.get("reparam:seed", 0) + 1
    show_posterior(choice, words, index, st.session_state.get("reparam:seed", 0))


def show_posterior(choice: ModelChoice, words: PosteriorWords, index: int, seed: int) -> None:
    draws = posterior_draws(choice.model, choice.dataset.x_test[index], seed=seed)
    left, right = st.columns([3, 2])
    with left:
        names = (words.draw, f"{words.mean} ± {words.spread}")
        show_figure(posterior_figure(draws.mean, draws.spread, draws.z, names=names), "reparam:posterior")
    with right:
        show_images(draws.pictures, 5, "First: the test image x. Then the decoder's output for nine draws "
                    f"{words.draw_of_x} (model: {literal(choice.label)}).", tile=48)
    left.caption(f"A dimension with {words.collapsed} for every image carries no information: its q(z|x) is the "
                 "prior (posterior collapse). The Latent space page counts them.")


def graph_section() -> None:
    st.subheader("The computation graph, before and after")
    control, note = st.columns([2, 5], vertical_alignment="center")  # room for both labels at presentation size
    view = control.segmented_control("Graph", GRAPH_VIEWS, default=GRAPH_VIEWS[0],
                                     key="reparam:graph", label_visibility="collapsed")
    reparameterized = view == "After the trick"
    if reparameterized:
        note.markdown(f"z = μ + σ·{coloured('eps', 'ε')} is deterministic and {coloured('eps', 'ε')} enters from "
                      "outside: the gradient reaches φ through μ and σ.", unsafe_allow_html=True)
    else:
        note.markdown("z is drawn from q_φ(z|x): the gradient reaches z, but cannot pass the sampling step back "
                      "to μ, σ and φ.")
    # Inline SVG at its own pixel size: a chart element would scale it to the column and shrink the text.
    # st.markdown, not st.html: st.html's sanitiser removes SVG. The last section on the page: the padding keeps
    # its legend off the screen's bottom edge when the page is scrolled to its end.
    st.markdown(f'<div style="overflow-x: auto; padding-bottom: 1.5rem">'
                f'{to_svg(computation_graph(reparameterized))}</div>',
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


open_link(LINK)
family, params, noise = family_controls()
with st.container(key="reparam_transform"):  # keyed containers: the guided tour points at them (vae.tour)
    transform_section(family, params, noise)
if not presenting():
    argument_section()
implicit_section()
gumbel_section()
model_section()
graph_section()
update_link()
