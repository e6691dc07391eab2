"""Estimators: score function (REINFORCE) against pathwise (reparameterization), exactly on toy costs, then
inside a real VAE, then in a race."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st
import torch

from pages._live_plot import live_plotly_chart
from pages._session import cached_dataset, choose_model, start_jobs
from vae.config import preset_config
from vae.encoder_gradients import encoder_gradient_samples, gradient_noise, noise_table
from vae.estimators import BASELINES, COSTS
from vae.figures import (
    coloured,
    estimates_histogram_figure,
    race_elbo_figure,
    race_variance_figure,
    tensor_variance_figure,
    variance_curve_figure,
)
from vae.variance_lab import PARAMETERS, ToyLab, ToySetting, toy_lab_results, work_normalised_variance

RACE_KEY = "estimators:race"
BASELINE_LABELS = {"none": "none", "moving_average": "moving average", "optimal": "optimal constant"}

st.title("Which gradient estimator?")
st.markdown(f"Both estimators are unbiased; the question is how noisy they are. The "
            f"{coloured('pathwise', 'pathwise')} estimator differentiates f through z = μ + σ·ε; the "
            f"{coloured('score_function', 'score function')} only weighs f(z) by ∇ log q(z). "
            "The lecture says the first has far lower variance. Measure it, and find where it fails.",
            unsafe_allow_html=True)


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
    left.plotly_chart(estimates_histogram_figure(lab.estimates, lab.exact_gradient,
                                                 f"estimate of ∂E[f]/∂{PARAMETERS[parameter]}"),
                      key="estimators:histogram", theme=None)
    curve = lab.curve
    right.plotly_chart(variance_curve_figure(curve.num_samples, curve.empirical, curve.exact),
                       key="estimators:curve", theme=None)
    comparison(setting, samples, lab.variance, lab.seconds)


@st.cache_data(show_spinner=False, max_entries=64)
def cached_toy_lab(setting: ToySetting, samples: int, parameter: str) -> ToyLab | None:
    return toy_lab_results(setting, samples, parameter)


def comparison(setting: ToySetting, samples: int, variance: dict[str, float], seconds: dict[str, float]) -> None:
    """The variance ratio, and the same after charging each estimator for its compute time."""
    if not COSTS[setting.cost].pathwise_unbiased:
        st.warning("f jumps here, so the pathwise estimator is biased (it never sees the jump): its low variance "
                   "buys nothing. Only the score function estimates this gradient.", icon=":material/warning:")
        return
    if variance["pathwise"] == 0 and variance["score_function"] == 0:
        st.info("f is constant at these settings: every estimate of both estimators is exactly the true gradient.")
        return
    work = work_normalised_variance(variance, seconds)
    columns = st.columns(4)
    columns[0].metric("Variance ratio, score / pathwise", _ratio(variance["score_function"], variance["pathwise"]))
    columns[1].metric("Pathwise: μs per estimate", f"{seconds['pathwise'] * 1e6:.2f}")
    columns[2].metric("Score function: μs per estimate", f"{seconds['score_function'] * 1e6:.2f}")
    columns[3].metric("Work-normalised ratio (variance × time)", _ratio(work["score_function"], work["pathwise"]))
    st.caption(f"Exact single-sample variances divided by K = {samples}. A ratio above 1 means the pathwise "
               "estimator wins; the work-normalised ratio also charges each estimator for its compute time.")


def _ratio(numerator: float, denominator: float) -> str:
    if denominator == 0:
        return "∞" if numerator > 0 else "equal"
    return f"{numerator / denominator:,.3g}×"


@st.fragment
def vae_section() -> None:
    st.subheader("2 · Inside a real VAE")
    st.markdown("One fixed minibatch of 64 held-out images; many estimates of the gradient of E_q[log p(x|z)] "
                "with respect to every encoder weight, by each estimator (one draw of z per image).")
    choice = choose_model("estimators:model")
    if choice is None:
        return
    if choice.config.model.posterior != "gaussian":
        st.warning("This comparison uses a Gaussian q(z|x); pick a model trained with the Gaussian posterior.")
        return
    columns = st.columns(2)
    repetitions = columns[0].slider("Repetitions", 50, 500, 200, 50, key="estimators:repetitions")
    baseline = columns[1].selectbox("Score-function baseline", BASELINES, index=1, format_func=BASELINE_LABELS.get,
                                    key="estimators:vae_baseline")
    with st.spinner("Estimating…"):
        table = encoder_noise_table(choice, repetitions, baseline)
    variances = {"pathwise": table["variance (pathwise)"], "score_function": table["variance (score function)"]}
    st.plotly_chart(tensor_variance_figure(list(table["tensor"]), variances), key="estimators:tensors", theme=None)
    st.dataframe(pd.DataFrame(table), hide_index=True, column_config={
        name: st.column_config.NumberColumn(format="%.3g") for name in table if name not in ("tensor", "size")})
    median_ratio = float(np.median(table["ratio"]))
    st.markdown(f"Median variance ratio, score function / pathwise: **{median_ratio:,.3g}×**. The signal-to-noise "
                "ratio (|mean| / standard deviation) says how many estimates must be averaged before the sign of "
                "the gradient is reliable.")


def encoder_noise_table(choice, repetitions: int, baseline: str) -> dict[str, np.ndarray]:
    """Per encoder tensor, the noise of each estimator on 64 held-out images; cached per model version, since
    moving the toy sliders above must not recompute it."""
    key = ("estimators:noise", choice.label, choice.version, repetitions, baseline)
    if st.session_state.get("estimators:noise_key") != key:
        x = torch.as_tensor(choice.dataset.x_test[:64])
        samples = {name: encoder_gradient_samples(choice.model, x, name, repetitions, baseline=baseline,
                                                  generator=torch.Generator().manual_seed(0))
                   for name in ("pathwise", "score_function")}
        rows = {name: gradient_noise(values) for name, values in samples.items()}
        st.session_state["estimators:noise"] = noise_table(rows["pathwise"], rows["score_function"])
        st.session_state["estimators:noise_key"] = key
    return st.session_state["estimators:noise"]


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
        live_plotly_chart(race_elbo_figure({n: s.train for n, s in snapshots.items()}), key="estimators:race_elbo")
    with right:
        live_plotly_chart(race_variance_figure({n: s.gradient_variance for n, s in snapshots.items()}),
                          key="estimators:race_variance")


toy_lab()
vae_section()
race_section()
