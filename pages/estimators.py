"""Estimators: score function (REINFORCE), pathwise (reparameterization) and measure-valued, exactly on toy
costs, then inside a real VAE, then in a race."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from pages._links import open_link, unless_hidden, update_link
from pages._live_plot import live_plotly_chart
from pages._session import (
    RACE_KEY,
    ModelChoice,
    choose_model,
    draw_refreshing,
    fragment,
    model_link,
    presenting,
    redraw_period,
    show_figure,
    start_race,
)
from vae import links
from vae.config import TrainConfig, race_configs
from vae.control_variates import VARIANCE_REDUCTIONS
from vae.discrete import (
    MAX_TEMPERATURE,
    MIN_TEMPERATURE,
    DiscreteEstimator,
    DiscreteRace,
    EstimatorQuality,
    discrete_race,
    estimator_quality,
    toy_problem,
)
from vae.encoder_gradients import encoder_noise_comparison
from vae.families import posterior_family
from vae.figures import (
    ESTIMATOR_LABELS,
    coloured,
    discrete_quality_figure,
    discrete_race_figure,
    estimates_histogram_figure,
    for_projector,
    race_elbo_figure,
    race_variance_figure,
    tensor_variance_figure,
    variance_curve_figure,
)
from vae.toy_costs import COSTS
from vae.variance_lab import (
    PARAMETERS,
    TIMED_DRAWS,
    TIMING_ROUNDS,
    TIMING_WARMUP,
    Spread,
    ToyLab,
    ToySetting,
    WorkComparison,
    toy_lab_results,
    unbiased_estimators,
    work_comparison,
)

BASELINE_LABELS = {"none": "none", "moving_average": "moving average", "optimal": "optimal constant",
                   "delta": "delta method", "delta_optimal": "delta method, optimal β",
                   "delta_quadratic": "delta method, quadratic"}
UNRELIABLE = "cannot be computed reliably here"
SAMPLE_COUNTS = [1, 2, 4, 8, 16, 32, 64, 128]
RACE_POSTERIORS = {"gaussian": "Gaussian z", "categorical": "categorical z"}  # which VAE the race trains
TEMPERATURE_SCHEDULES = ["fixed", "annealed"]  # the discrete race's temperature: fixed τ, or τ down to 0.1
LINK = [  # this page's settings in a class link (pages/_links.py)
    links.choice("cost", "estimators:cost", next(iter(COSTS)), COSTS),
    links.number("mu", "estimators:mu", 1.0, -3.0, 3.0),
    links.number("sigma", "estimators:sigma", 1.0, 0.1, 3.0),
    *(links.number("k", f"estimators:k:{name}", float(cost.default_k), *map(float, cost.k_range), when=("cost", name))
      for name, cost in COSTS.items()),
    links.number("K", "estimators:K", 1, 1, SAMPLE_COUNTS[-1], integer=True, choices=SAMPLE_COUNTS),
    links.choice("gradient", "estimators:parameter", next(iter(PARAMETERS)), PARAMETERS),
    links.choice("baseline", "estimators:baseline", VARIANCE_REDUCTIONS[0], VARIANCE_REDUCTIONS),
    model_link("estimators:model"),
    links.number("repetitions", "estimators:repetitions", 200, 50, 500, integer=True),
    links.choice("vae_baseline", "estimators:vae_baseline", "moving_average", VARIANCE_REDUCTIONS),
    links.number("race_epochs", "estimators:race_epochs", 150, 5, 1000, integer=True),
    links.choice("race_z", "estimators:race_z", "gaussian", RACE_POSTERIORS),
    links.number("categories", "estimators:categories", 3, 2, 10, integer=True),
    links.number("temperature", "estimators:temperature", 1.0, MIN_TEMPERATURE, MAX_TEMPERATURE),
    links.choice("anneal", "estimators:anneal", "fixed", TEMPERATURE_SCHEDULES),
]

st.title("Which gradient estimator?")
if not presenting():  # a class hears this from the teacher; the lab's charts get the room
    st.markdown(f"Three unbiased estimators; the question is how noisy they are. The "
                f"{coloured('pathwise', 'pathwise')} estimator differentiates f through z = μ + σ·ε, the "
                f"{coloured('score_function', 'score function')} weighs f(z) by ∇ log q(z), the "
                f"{coloured('measure_valued', 'measure-valued')} one differences f at two draws pulled apart. "
                "Measure which is least noisy, and where.", unsafe_allow_html=True)


def toy_controls() -> tuple[ToySetting, int, str]:
    """The lab's controls, two to a row in one column beside its histogram (all on a projector's first screen)."""
    columns = st.columns(2)
    cost = unless_hidden("cost", "estimators:cost", next(iter(COSTS)),
                         lambda: columns[0].selectbox("Cost f(z)", list(COSTS), key="estimators:cost"))
    columns[1].latex(COSTS[cost].latex)
    columns = st.columns(2)
    mu = unless_hidden("mu", "estimators:mu", 1.0,
                       lambda: columns[0].slider("μ", -3.0, 3.0, 1.0, 0.1, key="estimators:mu"))
    sigma = unless_hidden("sigma", "estimators:sigma", 1.0,
                          lambda: columns[1].slider("σ", 0.1, 3.0, 1.0, 0.1, key="estimators:sigma"))
    columns = st.columns(2)
    low, high = COSTS[cost].k_range  # each cost has its own sensible range (exp(k z) overflows quickly)
    default_k, k_key = float(COSTS[cost].default_k), f"estimators:k:{cost}"
    k = unless_hidden("k", k_key, default_k,
                      lambda: columns[0].slider("k", float(low), float(high), default_k, 0.1, key=k_key))
    samples = unless_hidden("K", "estimators:K", 1, lambda: columns[1].select_slider(
        "K (samples per estimate)", SAMPLE_COUNTS, 1, key="estimators:K"))
    columns = st.columns(2)
    parameter = unless_hidden("gradient", "estimators:parameter", next(iter(PARAMETERS)), lambda: columns[0].radio(
        "Gradient in", list(PARAMETERS), format_func=PARAMETERS.get, horizontal=True, key="estimators:parameter"))
    baseline = unless_hidden("baseline", "estimators:baseline", VARIANCE_REDUCTIONS[0], lambda: columns[1].selectbox(
        "Score-function baseline", VARIANCE_REDUCTIONS, format_func=BASELINE_LABELS.get, key="estimators:baseline"))
    return ToySetting(cost, mu, sigma, k, baseline), samples, parameter


@fragment
def toy_lab() -> None:
    """A fragment: moving a toy slider reruns only this section, not the VAE below."""
    st.subheader("1 · The variance lab, checked against exact values")
    controls, histogram = st.columns([2, 3], gap="medium")
    with controls:
        setting, samples, parameter = toy_controls()
    lab = cached_toy_lab(setting, samples, parameter)
    if lab is None:
        histogram.warning("At these settings the numbers overflow: f(z) grows too fast for any estimate to mean "
                          "anything. Lower k or σ.", icon=":material/warning:")
        return
    with histogram:
        show_figure(estimates_histogram_figure(lab.estimates, lab.exact_gradient,
                                               f"estimate of ∂E[f]/∂{PARAMETERS[parameter]}", height=400),
                    "estimators:histogram")
        if not math.isfinite(lab.exact_gradient):
            st.caption(f"The exact gradient {UNRELIABLE}.")
        elif not presenting():
            st.caption(f"{len(next(iter(lab.estimates.values()))):,} estimates by each estimator, each the mean of "
                       f"K = {samples} {'draw' if samples == 1 else 'draws'}; the dashed line is the exact gradient. "
                       f"The score function uses the baseline chosen on the left.")
    if COSTS[setting.cost].note:
        st.info(COSTS[setting.cost].note, icon=":material/lightbulb:")
    curve, work = st.columns(2, gap="medium")
    with curve:
        show_figure(variance_curve_figure(lab.curve.num_samples, lab.curve.empirical, lab.curve.exact),
                    "estimators:curve")
        st.caption("Lines: exact variance (the single-sample variance divided by K). Circles: measured, from "
                   "400 estimates at each K." + unreliable_note(lab))
    with work:
        comparison(setting, samples, lab)


@st.cache_data(show_spinner=False, max_entries=64)
def cached_toy_lab(setting: ToySetting, samples: int, parameter: str) -> ToyLab | None:
    return toy_lab_results(setting, samples, parameter)


def unreliable_note(lab: ToyLab) -> str:
    missing = [ESTIMATOR_LABELS[name] for name, value in lab.variance.items() if not math.isfinite(value)]
    return f" The exact variance of the {' and the '.join(missing)} estimator {UNRELIABLE}." if missing else ""


def comparison(setting: ToySetting, samples: int, lab: ToyLab) -> None:
    """Each estimator's variance, and the same after charging it for its evaluations of f and its compute time."""
    estimators = unbiased_estimators(setting.cost)
    if all(lab.variance[name] == 0 for name in estimators):
        st.info("f is constant at these settings: every estimate is exactly the true gradient.")
        return
    work = work_comparison(lab, estimators)
    st.markdown(work_table(lab, work, estimators))
    st.markdown(work_verdict(work))
    if "pathwise" not in estimators:
        st.warning("f jumps here, so the pathwise estimator is biased (it never sees the jump): its low variance "
                   "buys nothing.", icon=":material/warning:")
    if not presenting():
        st.caption(f"Exact variances of a K = {samples} estimate. Work-normalised: variance × evaluations of f "
                   "(f' counted as one) and variance × time, over the least of each (1× = the best for that "
                   f"budget). Timing: each estimator on one CPU thread, on one fixed batch of {TIMED_DRAWS:,} draws, "
                   f"after {TIMING_WARMUP} warm-up rounds, then {TIMING_ROUNDS} rounds that alternate them back to "
                   "back; the time ratio is the median of the paired ratios, the range in brackets the middle half.")


def work_table(lab: ToyLab, work: WorkComparison, estimators: list[str]) -> str:
    """A markdown table, one column per estimator (headed in its colour), one row per measure."""
    seconds = lab.timing.median_seconds()
    reliable = {name: math.isfinite(lab.variance[name]) for name in estimators}
    rows = {
        "variance": [_number(lab.variance[n]) if reliable[n] else UNRELIABLE for n in estimators],
        "f evaluations": [f"{lab.evaluations[n]:,}" for n in estimators],
        "time": [_duration(seconds[n]) for n in estimators],
        "variance × evaluations": [_times(work.by_evaluations[n]) if reliable[n] else "" for n in estimators],
        "variance × time": [_spread(work.by_time[n]) if reliable[n] else "" for n in estimators],
    }
    header = " | ".join(f":{COLOUR_NAMES[n]}[**{ESTIMATOR_LABELS[n]}**]" for n in estimators)
    lines = [f"| | {header} |", "|---|" + "--:|" * len(estimators)]
    lines += [f"| {measure} | {' | '.join(cells)} |" for measure, cells in rows.items()]
    return "\n".join(lines)


# Streamlit's own text colours closest to the charts' (markdown tables take no HTML).
COLOUR_NAMES = {"pathwise": "green", "score_function": "orange", "measure_valued": "blue"}


def work_verdict(work: WorkComparison) -> str:
    by_evaluations, by_time = work.best("evaluations"), work.best("time")
    if by_evaluations is None:
        return f"The exact variances {UNRELIABLE}."
    if work.too_close_to_call():
        return (f"For the same evaluations of f the **{ESTIMATOR_LABELS[by_evaluations]}** estimator is least noisy; "
                "for the same time it is **too close to call** (timing noise could tip it).")
    if by_time == by_evaluations:
        return (f"For the same evaluations of f and for the same time, the **{ESTIMATOR_LABELS[by_time]}** estimator "
                "is least noisy.")
    return (f"For the same evaluations of f the **{ESTIMATOR_LABELS[by_evaluations]}** estimator is least noisy; "
            f"for the same time, the **{ESTIMATOR_LABELS[by_time]}** one.")


def _spread(spread: Spread) -> str:
    """The median ratio with the middle half of the rounds' ratios: 3.2× (2.9–3.6); ∞× or 1× alone."""
    if spread.low == spread.high:
        return _times(spread.median)
    return f"{_times(spread.median)} ({_short(spread.low)}–{_short(spread.high)})"


def _times(ratio: float) -> str:
    return f"{_short(ratio)}×"


def _short(ratio: float) -> str:
    """Two significant digits (0.95, 6.7, 41, 1.2e+03): a ratio needs no more, and a table cell has no room."""
    return "∞" if ratio == math.inf else f"{ratio:.2g}"


def _number(value: float) -> str:
    """Three significant digits (0.393, 4, 15.2, 1.23e+04)."""
    return f"{value:.3g}"


def _duration(seconds: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


@fragment
def vae_section() -> None:
    st.subheader("2 · Inside a real VAE")
    st.markdown("One fixed minibatch of 64 held-out images; many estimates of the gradient of E_q[log p(x|z)] "
                "with respect to every encoder weight, by each estimator (one draw of z per image).")
    choice = choose_model("estimators:model")
    if choice is None:
        return
    st.markdown(posterior_sentence(choice.config.model.posterior), unsafe_allow_html=True)
    repetitions, baseline = 200, "moving_average"
    if not presenting():
        columns = st.columns(2)
        repetitions = columns[0].slider("Repetitions", 50, 500, repetitions, 50, key="estimators:repetitions")
        baseline = columns[1].selectbox("Score-function baseline", VARIANCE_REDUCTIONS,
                                        index=VARIANCE_REDUCTIONS.index(baseline),
                                        format_func=BASELINE_LABELS.get, key="estimators:vae_baseline")
    with st.spinner("Estimating…"):
        table = encoder_noise_table(choice, repetitions, baseline)
    variances = {"pathwise": table["variance (pathwise)"], "score_function": table["variance (score function)"]}
    show_figure(tensor_variance_figure(list(table["tensor"]), variances), "estimators:tensors")
    if not presenting():
        st.dataframe(pd.DataFrame(table), hide_index=True, column_config={
            name: st.column_config.NumberColumn(format="%.3g") for name in table if name not in ("tensor", "size")})
    median_ratio = float(np.median(table["ratio"]))
    st.markdown(f"Median variance ratio, score function / pathwise: **{median_ratio:,.3g}×**. The signal-to-noise "
                "ratio (|mean| / standard deviation) says how many estimates must be averaged before the sign of "
                "the gradient is reliable.")


def posterior_sentence(family_name: str) -> str:
    """What each estimator needs of this model's q(z|x): its reparameterized draw, or its log density."""
    family = posterior_family(family_name)
    draw = ("z = F⁻¹(u; α(x), β(x)), the Gamma's inverse CDF, and differentiates it implicitly" if family.kind ==
            "implicit" else f"z = g(μ(x), σ(x), noise) with the {family.name} reparameterization")
    return (f"This model's q(z|x) is **{family.name}**. The {coloured('pathwise', 'pathwise')} estimator draws "
            f"{draw} (noise {family.base}); the "
            f"{coloured('score_function', 'score function')} weighs each reconstruction by ∇ log q(z|x) of the "
            f"{family.name} density.")


def encoder_noise_table(choice: ModelChoice, repetitions: int, baseline: str) -> dict[str, np.ndarray]:
    """Per encoder tensor, the noise of each estimator on 64 held-out images; cached per model version, since
    moving the toy sliders above must not recompute it."""
    return _encoder_noise_table(choice.model, choice.dataset.x_test[:64], choice.version, repetitions, baseline)


@st.cache_data(show_spinner="Measuring the encoder's gradient noise…", max_entries=16, scope="session")
def _encoder_noise_table(_model, _images: np.ndarray, version: str, repetitions: int, baseline: str):
    return encoder_noise_comparison(_model, _images, repetitions, baseline)  # keyed by the version, not weights


def race_section() -> None:
    st.subheader("3 · The race: same VAE, same seed, different encoder gradients")
    posterior = st.session_state.get("estimators:race_z") or "gaussian"  # the choice below, as this run draws it
    st.markdown(race_intro(race_configs(1, posterior)), unsafe_allow_html=True)
    columns = st.columns([1, 1, 1.6, 2.4], vertical_alignment="bottom")
    columns[2].segmented_control("z", list(RACE_POSTERIORS), format_func=RACE_POSTERIORS.get, default="gaussian",
                                 key="estimators:race_z", help="A categorical z races three estimators: the "
                                 "Gumbel-softmax relaxation, straight-through and the score function.")
    epochs = columns[3].slider("Epochs", 5, 1000, 150, 5, key="estimators:race_epochs")
    if columns[0].button("Start the race", type="primary", icon=":material/flag:"):
        start_race(epochs, posterior)
    racers = st.session_state.get(RACE_KEY)
    if columns[1].button("Stop", icon=":material/stop:", disabled=not racers):
        for job in racers.values():
            job.stop()
    if racers:
        draw_refreshing(race_view, lambda: redraw_period(st.session_state[RACE_KEY].values()))


def race_intro(configs: dict[str, TrainConfig]) -> str:
    """What races: how many copies of which VAE, and their estimators in the charts' colours."""
    names = [coloured(racer, ESTIMATOR_LABELS[racer]) for racer in configs]
    config = next(iter(configs.values()))
    model = config.model
    if model.categorical:
        return (f"Three copies of the digits VAE with a categorical z ({model.latent_dim} variables of "
                f"{model.categories} categories) train side by side from the same initial weights; only the "
                f"encoder's gradient differs: {', '.join(names[:-1])} and {names[-1]} (with a moving-average "
                f"baseline). The temperature falls from {config.temperature:g} to {config.final_temperature:g} over "
                "the run; held-out numbers decode the one-hot z.")
    return ("Two copies of the digits VAE train side by side from the same initial weights. Their decoders learn "
            f"the same way; only the encoder's gradient estimator differs: {names[0]} against {names[1]} (with a "
            "moving-average baseline).")


def race_view() -> None:
    racers = st.session_state[RACE_KEY]
    snapshots = {name: job.snapshot() for name, job in racers.items()}
    st.markdown(" · ".join(f"{coloured(name, ESTIMATOR_LABELS[name])}: {snap.status_line}"
                           for name, snap in snapshots.items()), unsafe_allow_html=True)
    left, right = st.columns(2)
    with left:
        live_plotly_chart(projected(race_elbo_figure({n: s.train for n, s in snapshots.items()})),
                          key="estimators:race_elbo")
    with right:
        live_plotly_chart(projected(race_variance_figure({n: s.gradient_variance for n, s in snapshots.items()})),
                          key="estimators:race_variance")


def discrete_section() -> None:
    """One categorical over K categories, cost ||z - target||^2: every expectation is an exact sum, so each
    estimator's bias and variance are measured against the truth, and a race shows what they do to SGD."""
    st.subheader("4 · Discrete latents: three ways through a category")
    if not presenting():
        st.markdown(f"z is one of K categories with probabilities softmax(θ), and f(z) = ‖z − target‖². The "
                    f"{coloured('score_function', 'score function')} (baseline E[f], exact here; a VAE uses a running "
                    "mean) stays unbiased; the "
                    f"{coloured('gumbel_softmax', 'Gumbel-softmax')} differentiates f at the relaxed sample; "
                    f"{coloured('straight_through', 'straight-through')} evaluates f at the one-hot z and "
                    "backpropagates as if it were relaxed. The exact gradient is a sum over the K categories.",
                    unsafe_allow_html=True)
    columns = st.columns(3)
    categories = columns[0].slider("Categories K", 2, 10, 3, key="estimators:categories")
    temperature = columns[1].slider("Temperature τ", MIN_TEMPERATURE, MAX_TEMPERATURE, 1.0, 0.05,
                                    key="estimators:temperature")
    schedule = columns[2].segmented_control("τ in the race", TEMPERATURE_SCHEDULES, default="fixed",
                                            key="estimators:anneal", help="Annealed: from τ down to 0.1, "
                                            "geometrically, as Jang et al. (2017) train.") or "fixed"
    qualities, race = cached_discrete_lab(categories, temperature, schedule == "annealed")
    left, right = st.columns(2)
    with left:
        show_figure(discrete_quality_figure([q.estimator.value for q in qualities], [q.bias for q in qualities],
                                            [math.sqrt(q.variance) for q in qualities]), "estimators:discrete_quality")
    with right:
        show_figure(discrete_race_figure(race.steps, {e.value: v for e, v in race.values.items()}, race.best),
                    "estimators:discrete_race")
    st.caption(discrete_caption(qualities, categories))


@st.cache_data(show_spinner="Measuring the discrete estimators…", max_entries=64)
def cached_discrete_lab(categories: int, temperature: float, anneal: bool
                        ) -> tuple[list[EstimatorQuality], DiscreteRace]:
    problem = toy_problem(categories)
    qualities = [estimator_quality(problem, estimator, temperature) for estimator in DiscreteEstimator]
    return qualities, discrete_race(problem, temperature, anneal)


def discrete_caption(qualities: list[EstimatorQuality], categories: int) -> str:
    problem = toy_problem(categories)
    score = next(q for q in qualities if q.estimator is DiscreteEstimator.SCORE_FUNCTION)
    return (f"Left: bias and standard deviation of one sample's gradient, from {score.samples:,} samples each, "
            f"against the exact gradient (length {np.linalg.norm(problem.exact_gradient()):.3g}, by enumerating "
            f"the {categories} categories). The score function's variance is also exact: "
            f"{problem.score_function_variance():.3g} (measured {score.variance:.3g}). Right: SGD on θ, one sample "
            "per step, the same noise for each estimator; the y axis is the exact expected cost.")


def projected(figure: go.Figure) -> go.Figure:
    """Live charts bypass show_figure (they update in place), so presentation mode is applied here."""
    return for_projector(figure) if presenting() else figure


open_link(LINK)
toy_lab()
vae_section()
with st.container(key="estimators_race"):  # the guided tour points at it (vae.tour)
    race_section()
discrete_section()
update_link()
