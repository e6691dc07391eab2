"""Latent space: sliders, the decoded manifold, click to decode, interpolation, posterior collapse, and how tight the
ELBO is (the importance-weighted bound)."""

from __future__ import annotations

import numpy as np
import streamlit as st

from pages._links import open_link, update_link
from pages._session import (
    ModelChoice,
    cached_dataset,
    choose_model,
    draw_refreshing,
    fragment,
    literal,
    model_link,
    presenting,
    redraw_period,
    show_figure,
    show_images,
    start_jobs,
)
from vae import links
from vae.bounds import BoundCurve, GradientSNR, gradient_snr, importance_weighted_bounds
from vae.categorical import decode_categories, kl_per_variable, likeliest_categories
from vae.collapse import COLLAPSING, remedy_configs, remedy_result
from vae.config import MAX_CATEGORIES, POSTERIOR_FAMILIES
from vae.families import posterior_words
from vae.figures import bound_curve_figure, gradient_snr_figure, kl_per_dimension_figure, latent_scatter_figure
from vae.latent import (
    decode_images,
    interpolate,
    latent_range,
    latent_usage,
    manifold_grid,
    posterior_means,
    prior_centre,
    prior_draw,
    projection_2d,
    sweep_values,
    traversal,
)
from vae.model import prior_pictures, reconstruction_pairs

MAX_SLIDERS = 16
SLIDER_STEP = 0.05
Z_KEY = "latent:z"
Z_FAMILY_KEY = "latent:z_family"  # the posterior family z was set for: another model's z may not fit
REMEDIES_KEY = "latent:remedies"  # the runs of "Train it with each remedy", by remedy
# A link's z reaches every family's slider range; the page then holds it to its own model's (`set_point`).
_RANGES = [latent_range(family) for family in POSTERIOR_FAMILIES]
Z_LINK_RANGE = (min(low for low, _ in _RANGES), max(high for _, high in _RANGES))
LINK = [  # this page's settings in a class link (pages/_links.py): the model, the slider positions, the extent
    model_link("latent:model", prefer="digits-2d"),
    *(links.number(f"z{k + 1}", f"latent:slider:{k}", 0.0, *Z_LINK_RANGE) for k in range(MAX_SLIDERS)),
    links.number("extent", "latent:extent", 0.9, 0.5, 0.99),
    *(links.number(f"c{n + 1}", f"latent:category:{n}", 1, 1, MAX_CATEGORIES, integer=True)
      for n in range(MAX_SLIDERS)),
]
# "How tight is the bound?": sizes that take a few seconds on 2 cores, once per model version.
BOUND_KS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)
BOUND_EXAMPLES = 100  # held-out images, 1000 draws each
SNR_KS = (1, 4, 16, 64, 256)
SNR_EXAMPLES, SNR_REPETITIONS = 8, 32  # one minibatch; repeated gradient estimates per K

st.title("Walk the latent space")
if not presenting():  # on a projector the teacher says it: the sliders and the picture come first
    st.markdown("Every point z decodes to an image. Move the sliders, click the map of the test set, or blend two "
                "images, and watch what each direction of z means.")


# --- the current point z, shared by sliders, buttons and the map ---------------------------------------------------


def slider_key(k: int) -> str:
    return f"latent:slider:{k}"


def set_point(z: np.ndarray, family: str) -> None:
    """Move to z, held to the family's slider range: the sliders follow (callbacks run before the widgets are
    drawn, so this is allowed)."""
    z = np.clip(np.asarray(z, dtype=np.float64), *latent_range(family))
    st.session_state[Z_KEY] = z
    st.session_state[Z_FAMILY_KEY] = family
    for k in range(min(len(z), MAX_SLIDERS)):  # on the sliders' own grid, or the browser snaps them elsewhere
        st.session_state[slider_key(k)] = float(np.round(z[k] / SLIDER_STEP) * SLIDER_STEP)


def current_point(latent_dim: int, family: str) -> np.ndarray:
    z = st.session_state.get(Z_KEY)
    if z is None:  # the page's first visit: where a class link put the sliders, else the prior's centre
        centre = prior_centre(family, latent_dim)
        set_point(np.array([st.session_state.get(slider_key(k), centre[k]) for k in range(latent_dim)]), family)
    elif len(z) != latent_dim or st.session_state.get(Z_FAMILY_KEY) != family:  # a new model: the prior's centre
        set_point(prior_centre(family, latent_dim), family)
    return st.session_state[Z_KEY]


def from_test_image(choice: ModelChoice, index: int) -> None:
    set_point(posterior_means(choice.model, choice.dataset.x_test[index : index + 1])[0], choice.config.model.posterior)


def random_draw(latent_dim: int, family: str) -> None:
    draws = st.session_state.get("latent:draws", 0) + 1
    st.session_state["latent:draws"] = draws
    set_point(prior_draw(family, latent_dim, seed=draws), family)


@fragment
def explorer(choice: ModelChoice) -> None:
    """Sliders and the decoded image: moving a slider reruns only this fragment."""
    latent_dim, family = choice.config.model.latent_dim, choice.config.model.posterior
    z = current_point(latent_dim, family).copy()
    low, high = latent_range(family)
    controls, image = st.columns([2, 1] if presenting() else [3, 1])  # a larger picture for a projector
    with controls:
        columns = st.columns(4)
        for k in range(min(latent_dim, MAX_SLIDERS)):
            z[k] = columns[k % 4].slider(f"z{k + 1}", low, high, step=SLIDER_STEP, key=slider_key(k))
        st.session_state[Z_KEY] = z
        if latent_dim > MAX_SLIDERS:
            st.caption(f"z{MAX_SLIDERS + 1}…z{latent_dim} stay where the last button put them (the prior's "
                       "mean, or the chosen image's posterior mean).")
        point_buttons(choice)
    with image:
        show_images(decode_images(choice.model, z[None]), 1, "decoded from z", tile=320 if presenting() else 200)


def point_buttons(choice: ModelChoice) -> None:
    """Reset, a draw from the prior, and (not in presentation mode: the map does it by a click) a test image's μ(x)."""
    latent_dim, family = choice.config.model.latent_dim, choice.config.model.posterior
    buttons = st.columns([1, 1.3, 1.5, 1.7] if not presenting() else [1, 1.4, 1], vertical_alignment="bottom")
    buttons[0].button("Reset", icon=":material/restart_alt:", on_click=set_point,
                      args=(prior_centre(family, latent_dim), family))
    buttons[1].button("Random draw", icon=":material/casino:", on_click=random_draw, args=(latent_dim, family),
                      help=f"A draw z ~ p(z), the prior: {posterior_words(family).prior} in each dimension")
    if not presenting():
        index = buttons[2].number_input("Test image number", 0, len(choice.dataset.x_test) - 1, 0,
                                        key="latent:image")
        buttons[3].button("Start from this image", on_click=from_test_image, args=(choice, index),
                          help=f"Move to the image's posterior mean {posterior_words(family).mean}")


# --- the map of the test set ---------------------------------------------------------------------------------------


def on_map_click(choice: ModelChoice, means: np.ndarray) -> None:
    """Copy the clicked point into our own state (the chart's selection resets whenever its data changes)."""
    points = st.session_state["latent:map"].selection.points
    if points:
        set_point(means[int(points[0]["customdata"])], choice.config.model.posterior)


def map_section(choice: ModelChoice, means: np.ndarray) -> None:
    points, axis = projection_2d(means)
    labels = choice.dataset.y_test
    figure = latent_scatter_figure(points, labels, axis)
    mean = posterior_words(choice.config.model.posterior).mean
    note = f"the posterior means {mean}" if axis == "z" else f"the first two principal components of the means {mean}"
    st.caption(f"The encoded test set ({note}), coloured by label. Click a point: the sliders jump to its {mean}.")
    show_figure(figure, "latent:map", on_select=lambda: on_map_click(choice, means), selection_mode="points")


def manifold_section(choice: ModelChoice) -> None:
    st.subheader("The decoded manifold")
    extent = st.slider("Extent (probability mass of the prior covered)", 0.5, 0.99, 0.9, 0.01,
                       key="latent:extent")
    grid = manifold_grid(choice.model, count=15, extent=extent)  # (15, 15, H, W)
    caption = ("z1 left to right, z2 bottom to top, at Gaussian quantiles (equal steps of probability), as in the "
               "AEVB paper's appendix.")
    show_images(grid.reshape(-1, *grid.shape[2:]), 15, caption, tile=32, gap=1)


def traversal_section(choice: ModelChoice, usage) -> None:
    st.subheader("One direction at a time")
    family = choice.config.model.posterior
    values = sweep_values(family)
    st.caption(f"Each row sweeps one coordinate from {values[0]:g} to {values[-1]:g}, the others at the sliders' "
               "point. An unused (collapsed) dimension changes nothing.")
    base = current_point(choice.config.model.latent_dim, family)
    for k in range(min(choice.config.model.latent_dim, MAX_SLIDERS)):
        label, strip = st.columns([1, 8], vertical_alignment="center")
        label.markdown(f"**z{k + 1}**" + ("" if usage.active[k] else " (unused)"))
        with strip:
            show_images(decode_images(choice.model, traversal(base, k, values)), len(values), "")


def interpolation_section(choice: ModelChoice) -> None:
    st.subheader("From one image to another")
    columns = st.columns(2)
    last = len(choice.dataset.x_test) - 1
    first = columns[0].number_input("From test image", 0, last, 0, key="latent:from")
    second = columns[1].number_input("To test image", 0, last, min(7, last), key="latent:to")
    ends = posterior_means(choice.model, choice.dataset.x_test[[first, second]])
    mean = posterior_words(choice.config.model.posterior).mean
    for method in ("linear", "spherical"):
        path = interpolate(ends[0], ends[1], 10, method)
        show_images(decode_images(choice.model, path), 10,
                    f"{method.capitalize()} interpolation between {mean} of the two images.", tile=64)


def samples_section(choice: ModelChoice) -> None:
    st.subheader("Samples and reconstructions")
    left, right = st.columns(2)
    with left:
        show_images(prior_pictures(choice.model, 20), 10, "Decoded from 20 draws z ~ p(z).")
    with right:
        show_images(reconstruction_pairs(choice.model, choice.dataset.x_test[:10]), 10,
                    "Held-out originals (top) and their reconstructions.")


def collapse_section(usage) -> None:
    st.subheader("Posterior collapse: which dimensions carry information?")
    left, right = st.columns([1, 3])
    left.metric("Active units", f"{usage.active_count} of {len(usage.active)}",
                help="A dimension is active when the variance over the data of its posterior mean exceeds 0.01.")
    left.markdown("A collapsed dimension has q(z_k|x) = p(z_k) for every image: KL 0, and the decoder ignores it. "
                  "On the Train page, a smaller **β** or a **KL warm-up** keeps more dimensions alive.")
    left.page_link("pages/train.py", label="Try β and warm-up", icon=":material/model_training:")
    with right:
        show_figure(kl_per_dimension_figure(usage.kl, usage.active), "latent:kl")
    remedies_section()


def remedies_section() -> None:
    """The same collapsing VAE trained again with each remedy, its active units side by side as they train."""
    st.markdown(f"**What fixes it?** A digits VAE with a {COLLAPSING.model.latent_dim}-dimensional z collapses at "
                f"β = 1 within {COLLAPSING.epochs} epochs. Train it once per remedy, from the same weights:")
    if st.button("Train it with each remedy", icon=":material/healing:", key="latent:remedies_start"):
        previous = st.session_state.get(REMEDIES_KEY) or {}
        st.session_state[REMEDIES_KEY] = start_jobs(remedy_configs(), cached_dataset("digits"),
                                                    replacing=previous.values(), together=False)
    if st.session_state.get(REMEDIES_KEY):
        draw_refreshing(remedies_view, lambda: redraw_period(st.session_state[REMEDIES_KEY].values()))


def remedies_view() -> None:
    runs = st.session_state[REMEDIES_KEY]
    for column, (name, job) in zip(st.columns(len(runs)), runs.items(), strict=True):
        model, snap = job.model(), job.snapshot()
        result = remedy_result(model, job.dataset.x_test) if model is not None else None
        column.metric(name, f"{result.active} of {result.dimensions}" if result else "–",
                      help="Active units: latent dimensions whose posterior mean varies over the test images.")
        column.caption(f"Epoch {snap.epoch} / {snap.epochs} · {literal(snap.status_line)}"
                       + (f" · KL {result.kl:.1f} nats" if result else ""))


def bound_section(choice: ModelChoice) -> None:
    """IWAE's L_K beside the ELBO, and the price in gradient noise; behind an expander on a projector."""
    if presenting():
        with st.expander("How tight is the bound?"):
            bound_view(choice)
    else:
        st.subheader("How tight is the bound?")
        bound_view(choice)


def bound_view(choice: ModelChoice) -> None:
    st.markdown("The ELBO is below log p(x) by exactly KL(q(z|x) ‖ p(z|x)): how far the encoder's q is from the "
                "true posterior. Averaging K importance weights p(x, z_k) / q(z_k|x) inside the log gives the "
                "bound L_K (Burda et al. 2016): L_1 is the ELBO, and L_K climbs towards log p(x) as K grows.")
    curve, snr = bound_curve(choice), gradient_noise_by_k(choice)
    gain, gain_stderr = curve.gains()
    left, right = st.columns(2)
    with left:
        show_figure(bound_curve_figure(np.array(curve.ks), curve.bounds, float(curve.bounds[0])), "latent:bound")
        st.caption(f"{BOUND_EXAMPLES} held-out images, {curve.ks[-1]:,} draws z ~ q(z|x) each. K = {curve.ks[-1]:,} "
                   f"gains {gain[-1]:.2f} ± {gain_stderr[-1]:.2f} nats over the ELBO: at least that much of the gap "
                   "is the KL to the true posterior.")
    with right:
        show_figure(gradient_snr_figure(np.array(snr.ks), {"encoder": snr.encoder, "decoder": snr.decoder},
                                        snr.noise_floor), "latent:snr")
        st.caption(f"|mean| / std of the gradient of L_K per weight, over {snr.repetitions} estimates on "
                   f"{SNR_EXAMPLES} images. The tighter bound gives the decoder a cleaner gradient and the encoder "
                   "a noisier one (Rainforth et al. 2018): tighter is not always better for training q.")


def bound_curve(choice: ModelChoice) -> BoundCurve:
    return _bound_curve(choice.model, choice.dataset.x_test[:BOUND_EXAMPLES], choice.version)


def gradient_noise_by_k(choice: ModelChoice) -> GradientSNR:
    return _gradient_snr(choice.model, choice.dataset.x_test[:SNR_EXAMPLES], choice.version)


# Keyed by the model's version string, not its weights (the leading underscore: not hashed).
@st.cache_data(show_spinner="Estimating L_K for K up to 1,000…", max_entries=16, scope="session")
def _bound_curve(_model, _images: np.ndarray, version: str) -> BoundCurve:
    return importance_weighted_bounds(_model, _images, BOUND_KS)


@st.cache_data(show_spinner="Measuring the gradients' signal-to-noise ratio…", max_entries=16, scope="session")
def _gradient_snr(_model, _images: np.ndarray, version: str) -> GradientSNR:
    return gradient_snr(_model, _images, SNR_KS, SNR_REPETITIONS)


def explore(choice: ModelChoice) -> None:
    """Every section, in teaching order, for one trained model."""
    usage = latent_usage(choice.model, choice.dataset.x_test)
    with st.container(key="latent_explorer"):  # the guided tour points at it (vae.tour)
        explorer(choice)
    means = usage.means  # encoded once for both the map and the collapse section
    if choice.config.model.latent_dim == 2:
        left, right = st.columns(2)
        with left:
            st.subheader("The test set in z")
            map_section(choice, means)
        with right:
            manifold_section(choice)
    else:
        st.subheader("The test set in z")
        map_section(choice, means)
        traversal_section(choice, usage)
    interpolation_section(choice)
    samples_section(choice)
    collapse_section(usage)
    bound_section(choice)


# --- a categorical z: one picker per latent variable ----------------------------------------------------------------

def category_key(n: int) -> str:
    return f"latent:category:{n}"


def set_categories(choices: list[int]) -> None:
    for n, category in enumerate(choices):
        st.session_state[category_key(n)] = category + 1  # the pickers count from 1


def explore_categories(choice: ModelChoice) -> None:
    """A categorical z has no directions to slide along: pick a category per variable and see what it decodes to."""
    model, config = choice.model, choice.config.model
    with st.container(key="latent_explorer"):
        controls, image = st.columns([2, 1] if presenting() else [3, 1])
        with controls:
            st.markdown(f"z is {config.latent_dim} categorical variables of {config.categories} categories each "
                        "(a uniform prior). Pick one category per variable.")
            columns = st.columns(4)
            choices = [columns[n % 4].slider(f"z{n + 1}", 1, config.categories, key=category_key(n)) - 1
                       for n in range(min(config.latent_dim, MAX_SLIDERS))]
            choices += [0] * (config.latent_dim - len(choices))
            number, start = st.columns([1, 1], vertical_alignment="bottom")
            index = number.number_input("Test image number", 0, len(choice.dataset.x_test) - 1, 0,
                                        key="latent:image")
            start.button("Start from this image", on_click=lambda: set_categories(likeliest_categories(
                model, choice.dataset.x_test[index])), help="Each variable's likeliest category")
        with image:
            picture = decode_categories(model, choices).reshape(config.input_shape).numpy()
            show_images(picture[None], 1, "decoded from the chosen categories", tile=320 if presenting() else 200)
    samples_section(choice)
    st.subheader("Which variables carry information?")
    kl = kl_per_variable(model, choice.dataset.x_test)
    show_figure(kl_per_dimension_figure(kl, kl > 0.01), "latent:kl")
    st.caption(f"The exact KL of each variable to the uniform prior, averaged over the test set (at most "
               f"log {config.categories} = {np.log(config.categories):.2f} nats). Grey: collapsed (under 0.01).")


open_link(LINK)
# In presentation mode the model picker goes to the end of the page: the sliders and picture open the first screen.
page_top, page_end = st.container(), st.container()
with page_end if presenting() else page_top:
    choice = choose_model("latent:model", prefer="digits-2d", categorical_ok=True)
if choice is not None:
    with page_top:
        (explore_categories if choice.config.model.categorical else explore)(choice)
update_link()
