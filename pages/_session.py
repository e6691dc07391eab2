"""What every page shares: the session's training job and the cached datasets. No maths here."""

from __future__ import annotations

import html
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from vae import warmup
from vae.config import PRETRAINED, TrainConfig
from vae.data import DataError, Dataset, load_named_dataset
from vae.figures import for_projector, image_grid, png_data_uri

if TYPE_CHECKING:  # torch loads in the background (vae.warmup): the first screen must not wait for it
    from vae.job import TrainingJob
    from vae.model import VAE

JOB_KEY = "training_job"
PRESENTING_KEY = "presentation_mode"


def _leave_legacy_multipage_mode() -> None:
    """Streamlit treats a folder named pages/ as an old-style multipage app until st.navigation first runs in
    the process: a first visitor arriving on a page's own URL would run that file alone, without app.py's
    navigation. Switch to st.navigation's mode and rerun through app.py (every page imports this module)."""
    from streamlit.runtime.pages_manager import PagesManager  # internal API: degrade to a no-op if it moves

    if getattr(PagesManager, "uses_pages_directory", False):
        PagesManager.uses_pages_directory = False
        st.rerun()


_leave_legacy_multipage_mode()


@st.cache_resource(show_spinner="Loading the dataset…", max_entries=4)
def cached_dataset(name: str) -> Dataset:
    """Shared by all sessions (read-only arrays). A failed download falls back to the bundled digits. Names only,
    never paths: an uploaded checkpoint's config names its dataset, and that name is the user's to write."""
    return load_named_dataset(name, fallback_to_digits=True)


def remembered(key: str, default: Any) -> Any:
    """A widget's value to draw it with: its own state, else the value kept from an earlier page, else `default`.

    Pass it as the widget's `value`/`index` on every run, not only the first. A widget inside a popover or a
    closed expander is mounted in the browser only when first opened, and it then starts from the value its
    element carries: without `value` that is the widget's minimum (learning rate 1e-5, batch size 1), which the
    browser sends back and the next Start trains with."""
    return st.session_state.get(key, st.session_state.get("kept:" + key, default))


def remember_widgets(keys: Iterable[str]) -> None:
    """Keep widget values under plain keys: Streamlit drops a widget's state when a page without it runs."""
    for key in keys:
        if key in st.session_state:
            st.session_state["kept:" + key] = st.session_state[key]


def show_images(images: np.ndarray, columns: int, caption: str, tile: int = 56, gap: int = 2) -> None:
    """Images (N, H, W) in [0, 1] tiled into one inline PNG, each tile about `tile` px wide with crisp pixels.
    Inline, because st.image's media files were sometimes gone before the browser fetched them when a page
    refreshed twice a second; the picture also arrives with the rerun that made it (fast sliders)."""
    grid = image_grid(images, columns, max(1, tile // images.shape[-1]), gap)
    alt = html.escape(caption, quote=True)
    st.markdown(f'<img src="{png_data_uri(grid)}" alt="{alt}" style="max-width:100%">', unsafe_allow_html=True)
    if caption:
        st.caption(caption)


def presenting() -> bool:
    """Presentation mode (one switch in the top bar, kept across pages): projector-first pages, larger text
    and plots, advanced controls hidden. Pages put what a class does not need behind `if not presenting():`."""
    return bool(st.session_state.get(PRESENTING_KEY, False))


def show_figure(figure: go.Figure, key: str, **options) -> Any:
    """Every static plotly chart goes through here: presentation mode makes its text and lines larger."""
    if presenting():
        for_projector(figure)
    return st.plotly_chart(figure, key=key, theme=None, **options)


def wait_for_torch() -> None:
    """Call before anything that may import torch, scipy or scikit-learn: the background warm-up imports them,
    and importing torch from two threads at once can hand one of them a half-initialised module."""
    if not warmup.is_ready():
        with st.spinner("Getting PyTorch ready (only the first time)…"):
            warmup.wait()


def current_job() -> TrainingJob | None:
    """The session's job: it lives in session_state, so switching pages never stops it."""
    return st.session_state.get(JOB_KEY)


def start_new_job(config: TrainConfig, dataset: Dataset, paused: bool = False) -> TrainingJob | None:
    """Replace the session's job with a fresh one; an error sentence in the page if the server is full."""
    old = current_job()
    jobs = start_jobs({"main": config}, dataset, replacing=[old] if old else [], paused=paused)
    if jobs is None:
        return None
    st.session_state[JOB_KEY] = jobs["main"]
    return jobs["main"]


def start_jobs(configs: dict[str, TrainConfig], dataset: Dataset, replacing: Iterable[TrainingJob] = (),
               paused: bool = False, **job_options) -> dict[str, TrainingJob] | None:
    """Stop `replacing` (freeing their slots), then start one job per config; all or none."""
    wait_for_torch()
    from vae.job import JobLimitError, TrainingJob

    for job in replacing:
        job.stop()
        job.join(timeout=5)
    jobs: dict[str, TrainingJob] = {}
    try:
        for name, config in configs.items():
            jobs[name] = TrainingJob(config, dataset, **job_options)
            jobs[name].start(paused=paused)
    except JobLimitError as error:
        for job in jobs.values():
            job.stop()
        st.error(str(error))
        return None
    return jobs


@dataclass(frozen=True)
class ModelChoice:
    """A trained model to look at, with the data it was trained on."""

    model: VAE
    config: TrainConfig
    dataset: Dataset
    label: str
    version: str  # changes whenever the weights do: for caching what is computed from them


@st.cache_resource(show_spinner=False)
def _pretrained(name: str):
    from vae.checkpoints import load_pretrained

    return load_pretrained(name)  # shared by all sessions: never mutate the model it returns


def choose_model(key: str, prefer: str | None = None) -> ModelChoice | None:
    """One picker for every page: the live training run (first, when there is one), a bundled checkpoint
    (`prefer` names which one comes first otherwise), or an uploaded one."""
    bundled = sorted(PRETRAINED, key=lambda name: name != prefer)
    uploads = [] if presenting() else ["upload"]  # presentation mode: no file pickers in front of a class
    options = (["live"] if current_job() is not None else []) + bundled + uploads
    labels = {"live": "The live training run (Train page)", "upload": "Upload a checkpoint (.safetensors)",
              **{name: f"Bundled: {text}" for name, text in PRETRAINED.items()}}
    source = st.selectbox("Which trained model?", options, format_func=labels.get, key=key)
    if source == "live":
        job = current_job()
        model = job.model()
        if model is None:
            st.info("The live run has not taken a step yet.")
            return None
        step = job.snapshot().step
        st.caption(f"The weights after step {step:,} of the live run (they update as it trains).")
        return ModelChoice(model, job.config, job.dataset, labels["live"], f"live:{id(job)}:{step}")
    if source == "upload":
        return _uploaded_model(key)
    checkpoint = _pretrained(source)
    return ModelChoice(checkpoint.model, checkpoint.config, cached_dataset(checkpoint.config.dataset), labels[source],
                       f"bundled:{source}")


def _uploaded_model(key: str) -> ModelChoice | None:
    upload = st.file_uploader("A checkpoint saved by the Train page or `python -m vae train --out`",
                              type=["safetensors"], key=key + ":upload")
    if upload is None:
        return None
    from vae.checkpoints import CheckpointError, load_checkpoint

    try:
        checkpoint = load_checkpoint(upload.getvalue())
    except CheckpointError as error:
        st.error(f"That checkpoint was refused: {error}")
        return None
    try:
        dataset = cached_dataset(checkpoint.config.dataset)
    except DataError:
        st.warning(f"It was trained on {checkpoint.config.dataset}, which is not available here; "
                   "the bundled digits are shown if their size fits.")
        dataset = cached_dataset("digits")
    if tuple(dataset.image_shape) != tuple(checkpoint.config.model.input_shape):
        st.error(f"This model expects {checkpoint.config.model.input_shape} images, but the data available is "
                 f"{dataset.image_shape}.")
        return None
    return ModelChoice(checkpoint.model, checkpoint.config, dataset, upload.name, f"upload:{upload.file_id}")
