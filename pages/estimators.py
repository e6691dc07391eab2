"""Estimators: score function (REINFORCE) against pathwise (reparameterization), exactly on toy costs, then
inside a real VAE, then in a race."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from pages._live_plot import live_plotly_chart
from pages._session import ModelChoice, cached_dataset, choose_model, presenting, show_figure, start_jobs
from vae.baselines import BASELINES
from vae.config import preset_config
from vae.encoder_gradients import encoder_noise_comparison
from vae.families import FAMILIES
from vae.figures import (
    coloured,
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
    EstimatorTiming,
    ToyLab,
    ToySetting,
    toy_lab_results,
)

RACE_KEY = "estimators:race"
BASELINE_LABELS = {"none": "none", "moving_average": "moving average", "optimal": "optimal constant"}

st.title("Which gradient estimator?")
if not presenting():  # a class hears this from the teacher; the lab's charts get the room
    st.markdown(f"Both estimators are unbiased; the question is how noisy they are. The "
                f"{coloured('pathwise', 'pathwise')} (reparameterization) estimator differentiates f through "
                f"z = μ + σ·ε; the {coloured('score_function', 'score function')} (REINFORCE) only weighs f(z) "
                "by ∇ log q(z). The lecture says the first has far lower variance. Measure it, and find where it "
                "fails.", unsafe_allow_html=True)


def toy_controls() -> tuple[ToySetting, int, str]:
    columns = st.columns([3, 2, 2, 2, 2])
    cost = columns[0].selectbox("Cost f(z)", list(COSTS), key="estimators:cost")
    mu = columns[1].slider("μ", -3.0, 3.0, 1.0, 0.1, key="estimators:mu")
    sigma = columns[2].slider("σ", 0.1, 3.0, 1.0, 0.1, key="estimators:sigma")
    low, high = COSTS[cost].k_range  # each cost has its own sensible range (exp(k z) overflows quickly)
    k = columns[3].slider("k", float(low), float(high), float(COSTS[cost].default_k), 0.1, key=f"estimators:k:{cost}")
    samples = columns[4].select_slider("K (samples per estimate)", [1, 2, 4, 8, 16, 32, 64, 128], 1,
                                       key="estimators:K")
    columns = st.columns([3, 3, 4])
    parameter = columns[0].radio("Gradient with respect to", list(PARAMETERS), format_func=PARAMETERS.get,
                                 horizontal=True, key="estimators:parameter")
    baseline = columns[1].selectbox("Score-function baseline", BASELINES, format_func=BASELINE_LABELS.get,
                                    key="estimators:baseline")
    columns[2].latex(COSTS[cost].latex)
    return ToySetting(cost, mu, sigma, k, baseline), samples, parameter


@st.fragment
def toy_lab() -> None:
    """A fragment: moving a toy slider reruns only this section, not the VAE below."""
    st.subheader("1 · The variance lab, checked against exact values")
    setting, samples, parameter = toy_controls()
    if COSTS[setting.cost].note:
        st.info(COSTS[setting.cost].note, icon=":material/lightbulb:")
    lab = cached_toy_lab(setting, samples, parameter)
    if lab is None:
        st.warning("At these settings the numbers overflow: f(z) grows too fast for any estimate to mean "
                   "anything. Lower k or σ.", icon=":material/warning:")
        return
    left, right = st.columns(2)
    with left:
        show_figure(estimates_histogram_figure(lab.estimates, lab.exact_gradient,
                                               f"estimate of ∂E[f]/∂{PARAMETERS[parameter]}"), "estimators:histogram")
        st.caption(f"{len(next(iter(lab.estimates.values()))):,} estimates by each estimator, each the mean of "
                   f"K = {samples} {'draw' if samples == 1 else 'draws'}; the dashed line is the exact gradient.")
    with right:
        curve = lab.curve
        show_figure(variance_curve_figure(curve.num_samples, curve.empirical, curve.exact), "estimators:curve")
        st.caption("Lines: exact variance (the single-sample variance divided by K). Circles: measured, from "
                   "400 estimates at each K.")
    comparison(setting, samples, lab.variance, lab.timing)


@st.cache_data(show_spinner=False, max_entries=64)
def cached_toy_lab(setting: ToySetting, samples: int, parameter: str) -> ToyLab | None:
    return toy_lab_results(setting, samples, parameter)


def comparison(setting: ToySetting, samples: int, variance: dict[str, float], timing: EstimatorTiming) -> None:
    """The variance ratio, and the same after charging each estimator for its compute time."""
    if not COSTS[setting.cost].pathwise_unbiased:
        st.warning("f jumps here, so the pathwise estimator is biased (it never sees the jump): its low variance "
                   "buys nothing. Only the score function estimates this gradient.", icon=":material/warning:")
        return
    if variance["pathwise"] == 0 and variance["score_function"] == 0:
        st.info("f is constant at these settings: every estimate of both estimators is exactly the true gradient.")
        return
    seconds = timing.median_seconds()
    columns = st.columns([3, 2, 2, 4])
    columns[0].metric("Variance ratio, score / pathwise", _ratio(variance["score_function"], variance["pathwise"]))
    columns[1].metric("Pathwise time", _duration(seconds["pathwise"]), help=TIME_HELP)
    columns[2].metric("Score-function time", _duration(seconds["score_function"]), help=TIME_HELP)
    if variance["pathwise"] == 0:
        columns[3].metric("Work-normalised ratio (variance × time)", "∞")
    else:
        work = timing.work_ratio(variance)
        columns[3].metric("Work-normalised ratio (variance × time)",
                          f"{_number(work.median)}× ({_number(work.low)}–{_number(work.high)})")
        st.markdown(WORK_VERDICTS[work.side_of(1.0)])
    st.caption(f"Exact single-sample variances divided by K = {samples}. A ratio above 1 means the pathwise "
               "estimator wins; the work-normalised ratio also charges each estimator for its compute time. "
               f"Timing: each estimator on one CPU thread, on one fixed batch of {TIMED_DRAWS:,} draws, after "
               f"{TIMING_WARMUP} warm-up rounds, then {TIMING_ROUNDS} rounds that alternate the two back to back; "
               f"the figure is the median of the {TIMING_ROUNDS} paired ratios, the range in brackets the middle "
               "half of them.")


TIME_HELP = "The median time of one K-sample estimate, over the timed rounds."
WORK_VERDICTS = {
    1: "For the same compute time the **pathwise** estimator is less noisy: the whole range lies above 1.",
    -1: "For the same compute time the **score function** is less noisy: the whole range lies below 1.",
    0: "**Too close to call** for the same compute time: the range straddles 1, so timing noise could tip it.",
}


def _ratio(numerator: float, denominator: float) -> str:
    if denominator == 0:
        return "∞" if numerator > 0 else "equal"
    return f"{numerator / denominator:,.3g}×"


def _number(value: float) -> str:
    """Two significant digits below 10 (0.95, 6.7), whole numbers above (41, 1,234): short enough for a metric."""
    return f"{value:.2g}" if value < 10 else f"{value:,.0f}"


def _duration(seconds: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


@st.fragment
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
        baseline = columns[1].selectbox("Score-function baseline", BASELINES, index=BASELINES.index(baseline),
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
    family = FAMILIES[family_name]
    return (f"This model's q(z|x) is **{family.name}**. The {coloured('pathwise', 'pathwise')} estimator draws "
            f"z = g(μ(x), σ(x), noise) with the {family.name} reparameterization (noise {family.base}); the "
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
    st.markdown("Two copies of the digits VAE train side by side from the same initial weights. Their decoders "
                "learn the same way; only the encoder's gradient estimator differs (the score function uses a "
                "moving-average baseline).")
    columns = st.columns([1, 1, 3])
    epochs = columns[2].slider("Epochs", 5, 1000, 150, 5, key="estimators:race_epochs")
    if columns[0].button("Start the race", type="primary", icon=":material/flag:"):
        config = preset_config("digits").replace(epochs=epochs)
        configs = {name: config.replace(encoder_gradient=name) for name in ("pathwise", "score_function")}
        previous = st.session_state.get(RACE_KEY) or {}
        st.session_state[RACE_KEY] = start_jobs(configs, cached_dataset("digits"), replacing=previous.values(),
                                                variance_probe_every=25)
    racers = st.session_state.get(RACE_KEY)
    if columns[1].button("Stop", icon=":material/stop:", disabled=not racers):
        for job in racers.values():
            job.stop()
    if racers:
        race_view()


@st.fragment(run_every=0.5)
def race_view() -> None:
    racers = st.session_state[RACE_KEY]
    snapshots = {name: job.snapshot() for name, job in racers.items()}
    st.markdown(" · ".join(f"{coloured(name, name.replace('_', ' '))}: {snap.status_line}"
                           for name, snap in snapshots.items()), unsafe_allow_html=True)
    left, right = st.columns(2)
    with left:
        live_plotly_chart(projected(race_elbo_figure({n: s.train for n, s in snapshots.items()})),
                          key="estimators:race_elbo")
    with right:
        live_plotly_chart(projected(race_variance_figure({n: s.gradient_variance for n, s in snapshots.items()})),
                          key="estimators:race_variance")


def projected(figure: go.Figure) -> go.Figure:
    """Live charts bypass show_figure (they update in place), so presentation mode is applied here."""
    return for_projector(figure) if presenting() else figure


toy_lab()
vae_section()
race_section()
