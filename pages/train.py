"""Train: configure a VAE, start it, and watch the ELBO and its two terms move while it trains."""

from __future__ import annotations

import streamlit as st
import torch

from pages._live_plot import live_plotly_chart
from pages._session import (
    cached_dataset,
    current_job,
    remember_widgets,
    restore_widgets,
    show_images,
    start_new_job,
)
from vae.config import (
    DEVICES,
    LIKELIHOODS,
    POSTERIOR_FAMILIES,
    PRESET_LABELS,
    TrainConfig,
    preset_config,
    reference_test_loss,
)
from vae.data import DATASET_NAMES, DataError, Dataset, is_cached, load_npz
from vae.families import FAMILIES
from vae.figures import coloured, held_out_figure, training_curves_figure
from vae.job import JobSnapshot, JobStatus, TrainingJob
from vae.model import reconstruct, sample_prior

DATASET_LABELS = {"digits": "Digits 8×8 (bundled, offline)", "mnist": "MNIST 28×28 (download)",
                  "fashion-mnist": "Fashion-MNIST 28×28 (download)", "upload": "My own .npz file"}
PREFIX = "train:"
SETTINGS = ("dataset", "latent_dim", "beta", "lr", "batch_size", "epochs", "seed", "kl_warmup_epochs", "likelihood",
            "posterior", "device")  # TrainConfig fields (or its model's) that a widget sets


def key(name: str) -> str:
    return PREFIX + name


def preset_values(name: str) -> dict:
    """Widget key -> value for a preset (the config dataclass is the one source of defaults)."""
    config = preset_config(name)
    values = {"preset": name, "dataset": config.dataset, "latent_dim": config.model.latent_dim,
              "beta": config.beta, "lr": config.lr, "batch_size": config.batch_size, "epochs": config.epochs,
              "seed": config.seed, "kl_warmup_epochs": config.kl_warmup_epochs,
              "likelihood": config.model.likelihood, "posterior": config.model.posterior, "device": config.device}
    return {key(name): value for name, value in values.items()}


def load_preset_into_widgets() -> None:
    """A callback, so it runs before the widgets are drawn."""
    st.session_state.update(preset_values(st.session_state[key("preset")]))


def config_from_widgets() -> TrainConfig:
    values = {name: st.session_state[key(name)] for name in SETTINGS}
    return preset_config(st.session_state[key("preset")]).replace(**values)


def settings() -> None:
    """The controls a teacher needs in front; the rest in an expander."""
    defaults = preset_values("digits")
    restore_widgets(list(defaults), defaults)
    columns = st.columns([3, 3, 2, 2, 1.4], vertical_alignment="bottom")
    columns[0].selectbox("Which model?", list(PRESET_LABELS), format_func=PRESET_LABELS.get, key=key("preset"),
                         on_change=load_preset_into_widgets)
    columns[1].selectbox("Which data?", [*DATASET_NAMES, "upload"], format_func=DATASET_LABELS.get,
                         key=key("dataset"))
    columns[2].slider("Latent dimension (size of z)", 1, 64, key=key("latent_dim"))
    columns[3].number_input("β (KL weight)", 0.0, 10.0, step=0.1, key=key("beta"),
                            help="The loss is −(E_q[log p(x|z)] − β·KL). β = 1 is the ELBO.")
    with columns[4].popover("More", icon=":material/tune:", width="stretch"):
        more_settings()
    remember_widgets(list(defaults))
    download_notice(st.session_state[key("dataset")])


def more_settings() -> None:
    """What a teacher rarely changes in class, in a popover so the live charts stay on the first screen."""
    columns = st.columns(2)
    columns[0].number_input("Learning rate (Adam)", 1e-5, 10.0, format="%.0e", step=1e-4, key=key("lr"),
                            help="A new value also applies to a paused run when you press Resume.")
    columns[1].number_input("Batch size", 1, 4096, key=key("batch_size"))
    columns[0].number_input("Epochs", 1, 10_000, key=key("epochs"))
    columns[1].number_input("Seed", 0, 2**31 - 1, key=key("seed"))
    columns[0].number_input("KL warm-up (epochs)", 0.0, 1000.0, step=1.0, key=key("kl_warmup_epochs"),
                            help="β ramps linearly from 0 over this many epochs.")
    columns[1].selectbox("Likelihood p(x|z)", LIKELIHOODS, key=key("likelihood"))
    columns[0].selectbox("Posterior q(z|x)", POSTERIOR_FAMILIES, key=key("posterior"),
                         format_func=lambda name: FAMILIES[name].name,
                         help="The prior p(z) is the same family at location 0, scale 1. The KL is exact for "
                              "Gaussian and Laplace, a Monte Carlo estimate for the others.")
    devices = [d for d in DEVICES if d != "cuda" or torch.cuda.is_available()]
    columns[1].selectbox("Device", devices, key=key("device"), help="auto uses the GPU when one is present.")
    uploader()


def download_notice(dataset: str) -> None:
    """Say before Start that a dataset must be downloaded (and what happens offline), not after."""
    if dataset in ("mnist", "fashion-mnist") and not is_cached(dataset):
        st.caption(f"{DATASET_LABELS[dataset].split(' (')[0]} is not on this computer yet: Start downloads it "
                   "(about 10 to 30 MB). Without a network the bundled digits are used instead.")


def uploader() -> None:
    """Checked the moment it arrives, so a bad file is refused before anyone presses Start."""
    upload = st.file_uploader("Your own data: an .npz with x_train, x_test (N×H×W or N×D, uint8 or floats in "
                              "[0, 1]), optional y_train, y_test. Then pick “My own .npz file”.", type=["npz"],
                              key=key("upload"))
    if upload is None:
        return
    try:
        dataset = load_npz(upload)
    except DataError as error:
        st.error(f"That file was refused: {error}")
        return
    height, width = dataset.image_shape
    st.success(f"{dataset.name}: {len(dataset.x_train):,} training and {len(dataset.x_test):,} held-out images "
               f"of {height}×{width}.")


def chosen_dataset() -> Dataset | None:
    """The dataset the settings name, or None with a sentence in the page saying what is wrong."""
    name = st.session_state[key("dataset")]
    if name != "upload":
        return cached_dataset(name)
    upload = st.session_state.get(key("upload"))
    if upload is None:
        st.warning("Choose a .npz file under *More* first, or pick another dataset.")
        return None
    try:
        return load_npz(upload)
    except DataError:
        return None  # the uploader already says why, in a sentence


def start() -> bool:
    """Start a new job from the settings; False (with a sentence in the page) when the data is refused."""
    dataset = chosen_dataset()
    return dataset is not None and start_new_job(config_from_widgets(), dataset) is not None


def resume(job: TrainingJob) -> None:
    """Resume with the learning rate now in the settings (the way out of a divergence)."""
    job.set_learning_rate(st.session_state[key("lr")])
    job.resume()


def controls(job: TrainingJob | None) -> None:
    """Start, Pause/Resume, Step, Stop in one row."""
    snap = job.snapshot() if job else None
    status = snap.status if snap else None
    alive = bool(snap and snap.is_alive)
    columns = st.columns([1, 1, 1, 1, 3.2], vertical_alignment="center")
    if columns[0].button("Start", type="primary", icon=":material/play_arrow:", width="stretch"):
        if start():
            st.rerun()
    if status == JobStatus.PAUSED:
        columns[1].button("Resume", icon=":material/resume:", width="stretch", on_click=resume, args=(job,))
    else:
        columns[1].button("Pause", icon=":material/pause:", width="stretch", disabled=status != JobStatus.RUNNING,
                          on_click=job.pause if job else None)
    columns[2].button("Step", icon=":material/skip_next:", width="stretch", disabled=not alive,
                      on_click=job.step if job else None, help="One minibatch, then pause: SGD one step at a time.")
    columns[3].button("Stop", icon=":material/stop:", width="stretch", disabled=not alive,
                      on_click=job.stop if job else None)
    st.session_state["train:rendered_status"] = status
    with columns[4]:
        counter()


@st.fragment(run_every=0.5)
def counter() -> None:
    """The epoch in large type beside the buttons, like a game clock; the status line under it."""
    job = current_job()
    if job is None:
        return
    snap = job.snapshot()
    st.markdown(f"### Epoch {snap.epoch:,} / {snap.epochs:,}")
    st.markdown(f"**{snap.status_line}**")


@st.fragment(run_every=0.5)
def live_view() -> None:
    """Redrawn twice a second without rerunning the page; widgets stay outside."""
    job = current_job()
    if job is None:
        st.info("Press **Start** to train. The curves, reconstructions and samples appear here as it learns.")
        return
    snap = job.snapshot()
    if snap.status != st.session_state.get("train:rendered_status"):
        st.rerun(scope="app")  # buttons outside this fragment must follow the new status
    st.progress(snap.progress)
    notices(job, snap)
    curves(snap)
    pictures(job, snap)


def notices(job: TrainingJob, snap: JobSnapshot) -> None:
    if snap.diverged:
        st.warning(snap.message.replace("lower the learning rate, then resume",
                                        "lower the learning rate under *More*, then press **Resume**"),
                   icon=":material/warning:")
    elif snap.status == JobStatus.FAILED:
        st.error(snap.message)
    if job.dataset.notice:  # offline: the download failed and the bundled digits stand in
        st.warning(job.dataset.notice, icon=":material/wifi_off:")
        if job.dataset.notice_details:
            with st.expander("Why?"):
                st.write(job.dataset.notice_details)


def curves(snap: JobSnapshot) -> None:
    """Drag to zoom, double-click to reset; refreshes keep the zoom."""
    left, right = st.columns(2)
    left.markdown("##### Training minibatches, per SGD step")
    if len(snap.train["step"]):
        with left:
            live_plotly_chart(training_curves_figure(snap.train), key="train:step_chart")
    reference = reference_test_loss(snap.config)
    right.markdown("##### Held-out data, per epoch" + (" (dashed: the published run)" if reference else ""))
    if snap.held_out:
        with right:
            live_plotly_chart(held_out_figure(snap.held_out, reference), key="train:epoch_chart")
    else:
        right.caption("The first point appears at the end of the first epoch.")


def pictures(job: TrainingJob, snap: JobSnapshot) -> None:
    model = job.model()
    if model is None:
        return
    shape = job.config.model.input_shape
    x = torch.as_tensor(job.dataset.x_test[:10])
    originals_and_reconstructions = torch.cat([x, reconstruct(model, x)]).reshape(-1, *shape).numpy()
    samples = sample_prior(model, 20).reshape(-1, *shape).numpy()
    left, right = st.columns(2)
    with left:
        show_images(originals_and_reconstructions, 10, "Top: held-out originals. Bottom: decoded from their μ(x).",
                    tile=48)
    with right:
        show_images(samples, 10, "Samples: the decoder applied to 20 fixed draws z ~ N(0, I).", tile=48)


def download(job: TrainingJob | None) -> None:
    if job is not None:
        st.download_button("Download checkpoint (.safetensors)", data=job.checkpoint, file_name="vae.safetensors",
                           mime="application/octet-stream", icon=":material/download:", on_click="ignore")


st.markdown("### Train a VAE")
st.markdown(f"Press **Start**: the {coloured('elbo', 'ELBO')} climbs as the "
            f"{coloured('reconstruction', 'reconstruction')} term E_q[log p(x|z)] rises and the "
            f"{coloured('kl', 'KL')} term KL(q(z|x) ‖ p(z)) pays for what z carries (nats per example).",
            unsafe_allow_html=True)
settings()
controls(current_job())
live_view()
download(current_job())
