"""What every page shares: the session's training job and the cached datasets. No maths here."""

from __future__ import annotations

import functools
import html
import logging
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from pages._links import update_link
from pages._memory import remember_widgets, remembered  # noqa: F401 - the pages' vocabulary, from here
from vae import links, scheduler, warmup
from vae.config import PRETRAINED, TrainConfig, preset_config, race_configs
from vae.data import MAX_UPLOAD_MB, DataError, Dataset, load_named_dataset
from vae.figures import for_projector, image_grid, png_data_uri
from vae.metrics import REDRAW_PERIOD_S

if TYPE_CHECKING:  # torch loads in the background (vae.warmup): the first screen must not wait for it
    from vae.job import TrainingJob
    from vae.model import VAE
    from vae.step_inspection import StepRecord

_LOG = logging.getLogger("reparam-lab")
JOB_KEY = "training_job"
RACE_KEY = "estimators:race"  # the Estimators page's two racing runs, by estimator name
PRESENTING_KEY = "presentation_mode"
# A tab away for longer than this (closed, reloaded, a connection that did not come back) loses its runs. Minutes,
# not seconds: an open tab's connection was seen to drop for over 20 s on an idle local server and come back.
SESSION_GRACE_S = float(os.environ.get("REPARAM_LAB_SESSION_GRACE_S", "300"))


def leave_legacy_multipage_mode() -> None:
    """Streamlit treats a folder named pages/ as an old-style multipage app until st.navigation first runs in
    the process: a first visitor arriving on a page's own URL would run that file alone, without app.py's
    navigation. Switch to st.navigation's mode and rerun through app.py (every page imports this module, and
    app.py calls this too: the module may have been imported before the mode was set).
    AppTest resets the mode before every run, so there only the first run goes through app.py."""
    from streamlit.runtime.pages_manager import PagesManager  # internal API: degrade to a no-op if it moves

    if getattr(PagesManager, "uses_pages_directory", False):
        PagesManager.uses_pages_directory = False
        st.rerun()


leave_legacy_multipage_mode()


def show_failure(error: Exception, where: str = "on this page") -> None:
    """An unexpected error as a short sentence and a way back, never a traceback; the traceback goes to the log."""
    _LOG.error("Unexpected error %s", where, exc_info=error)
    st.error(f"Something went wrong {where} ({type(error).__name__}). It has been logged. Your settings and any "
             "training run are kept: reload the page, or go back to the Train page.", icon=":material/error:")
    st.page_link("pages/train.py", label="Back to the Train page", icon=":material/arrow_back:")


_MARKDOWN_PUNCTUATION = re.compile(r"([\\`*_{}\[\]()#+\-.!|~$:])")


def literal(text: str) -> str:
    """`text` (a file name, a sentence that quotes one) shown exactly as written in st.markdown, st.error and
    friends, HTML allowed or not: Markdown and Streamlit's own syntax escaped, then HTML's."""
    return html.escape(_MARKDOWN_PUNCTUATION.sub(r"\\\1", text))


def read_upload(upload: Any, widget_key: str, decode: Callable[[Any], Any],
                refusal: type[Exception] | tuple[type[Exception], ...], what: str = "file") -> Any:
    """`decode(upload)` once per uploaded file, not on every rerun (a large file cost seconds and gigabytes each
    time); the latest result per uploader is kept. A refusal's sentence is shown in the page, every run, and
    None returned."""
    slot = "decoded:" + widget_key
    kept = st.session_state.get(slot)
    if kept is None or kept[0] != upload.file_id:
        st.session_state.pop(slot, None)  # let the previous file's arrays go before decoding the next one
        try:
            kept = (upload.file_id, decode(upload), None)
        except refusal as error:
            kept = (upload.file_id, None, str(error))
        st.session_state[slot] = kept
    if kept[2] is not None:
        st.error(f"That {what} was refused: {literal(kept[2])}")
    return kept[1]


def guarded(body: Callable[..., Any]) -> Callable[..., Any]:
    """`body` with `show_failure` in place of a traceback. app.py guards each page run; fragments rerun alone
    (without app.py), so `fragment` guards them too."""

    @functools.wraps(body)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return body(*args, **kwargs)
        except Exception as error:  # noqa: BLE001 - st.rerun/st.stop are BaseExceptions and pass through
            show_failure(error)
            return None

    return run


def _serving_first(body: Callable[..., Any]) -> Callable[..., Any]:
    """`body`, with the server's trainings held back while it runs (vae.scheduler.PAGES_FIRST, which imports no
    torch: the first page is drawn while torch still loads)."""

    @functools.wraps(body)
    def run(*args: Any, **kwargs: Any) -> Any:
        with scheduler.PAGES_FIRST.serving():
            return body(*args, **kwargs)

    return run


def fragment(body: Callable[..., Any] | None = None, *, run_every: float | None = None):
    """`st.fragment`, guarded: an error in a part of a page that refreshes itself becomes a sentence there. One
    that reruns when a person moves its widgets then brings the URL up to date (class links: pages/_links.py)."""
    if body is None:
        return lambda function: fragment(function, run_every=run_every)
    if run_every is None:
        return st.fragment(_serving_first(_then_update_link(guarded(body))))
    return st.fragment(guarded(body), run_every=run_every)


def redraw_period(jobs: Iterable[TrainingJob | None]) -> float | None:
    """How often a view of these runs redraws now: at the pace of the liveliest (`REDRAW_PERIOD_S`); None when
    none of them can change any more."""
    periods = [REDRAW_PERIOD_S.get(job.status) for job in jobs if job is not None]
    return min((period for period in periods if period is not None), default=None)


def run_redraw_period() -> float | None:
    """`redraw_period` of the session's run."""
    return redraw_period([current_job()])


def draw_refreshing(body: Callable[[], Any], period: Callable[[], float | None] = run_redraw_period) -> None:
    """Draw `body` as a fragment that redraws itself every `period()` seconds, and never while that is None: a tab
    with nothing moving costs the server nothing (a class of tabs left on the first screen kept a two-core server
    too busy to open the next one). A fragment's timer is set only when the page runs, so when the pace changes
    (a queued run starts, a run ends) the fragment reruns the page once, which draws it at the new pace."""
    drawn = period()

    @functools.wraps(body)
    def redraw() -> None:
        if period() != drawn:
            st.rerun()
        body()

    fragment(redraw, run_every=drawn)()


def _then_update_link(body: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(body)
    def run(*args: Any, **kwargs: Any) -> Any:
        result = body(*args, **kwargs)
        update_link()
        return result

    return run


@st.cache_resource(show_spinner="Loading the dataset…", max_entries=4)
def cached_dataset(name: str) -> Dataset:
    """Shared by all sessions (read-only arrays). A failed download falls back to the bundled digits. Names only,
    never paths: an uploaded checkpoint's config names its dataset, and that name is the user's to write."""
    return load_named_dataset(name, fallback_to_digits=True)


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
               paused: bool = False, together: bool = True, **job_options) -> dict[str, TrainingJob] | None:
    """Stop `replacing` (freeing their slots), then start one job per config, together: they train side by side
    at once, or wait in the server's queue together (the status line says their place). None, with a sentence in
    the page, when the server cannot train that many at once. Not `together`, each waits for a slot of its own
    (more runs than the server trains at once, one after another)."""
    wait_for_torch()
    from vae.job import CapacityError, TrainingJob, start_together

    for job in replacing:
        job.stop()
        job.join(timeout=5)
    jobs = {name: TrainingJob(config, dataset, owner=_session_owner(), **job_options)
            for name, config in configs.items()}
    if not together:
        for job in jobs.values():
            job.start(paused)
        return jobs
    try:
        start_together(list(jobs.values()), paused=paused)
    except CapacityError as error:
        st.error(str(error))
        return None
    return jobs


def step_live_run(job: TrainingJob | None, wait_s: float) -> tuple[TrainingJob | None, StepRecord | None]:
    """One SGD step of `job` (of a fresh paused run of the digits preset when it is None), and that step's
    record once it has run (None if it has not within `wait_s`: the run may wait for a slot)."""
    if job is None:
        job = start_new_job(preset_config("digits"), cached_dataset("digits"), paused=True)
        if job is None:
            return None, None  # the server is full: start_new_job said so
    before = job.snapshot().step
    job.step()
    return job, job.wait_for_step_record(before, wait_s)


def start_race(epochs: int, posterior: str = "gaussian") -> None:
    """The Estimators page's race (`vae.config.RACES`): the digits VAE with a `posterior` z once per encoder
    gradient, from the same weights, replacing an earlier race of this session."""
    previous = st.session_state.get(RACE_KEY) or {}
    st.session_state[RACE_KEY] = start_jobs(race_configs(epochs, posterior), cached_dataset("digits"),
                                            replacing=previous.values(), variance_probe_every=25)


def _session_owner() -> str | None:
    """This browser session's id, so its runs stop once it has been gone for `SESSION_GRACE_S` (a closed or
    reloaded tab); None outside a server (tests drive pages without one)."""
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    if not st.runtime.exists():
        return None
    _watch_sessions()
    context = get_script_run_ctx()
    return context.session_id if context else None


@st.cache_resource(show_spinner=False)
def _watch_sessions():
    """One watch per server process: it asks Streamlit's runtime which sessions are still connected."""
    from vae.job import watch_owners

    return watch_owners(st.runtime.get_instance().is_active_session, grace_s=SESSION_GRACE_S)


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


def model_link(key: str, prefer: str | None = None) -> links.LinkSetting:
    """The picker of `choose_model(key, prefer)` in a class link: a bundled model (a live run or an uploaded file
    cannot travel in a link)."""
    bundled = sorted(PRETRAINED, key=lambda name: name != prefer)
    return links.choice("model", key, bundled[0], bundled)


def choose_model(key: str, prefer: str | None = None, categorical_ok: bool = False) -> ModelChoice | None:
    """One picker for every page: the live training run (first, when there is one), a bundled checkpoint
    (`prefer` names which one comes first otherwise), or an uploaded one. A page whose views need a continuous z
    (μ and σ) gets None for a categorical model, with a sentence saying where that model can be explored."""
    choice = _chosen_model(key, prefer)
    if choice is not None and choice.config.model.categorical and not categorical_ok:
        st.info("This model's z is categorical: it has no μ(x) and σ(x) for this view. The Latent space page "
                "decodes any choice of its categories, and the Estimators page compares gradients for discrete z.",
                icon=":material/category:")
        return None
    return choice


def _chosen_model(key: str, prefer: str | None) -> ModelChoice | None:
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
    upload = st.file_uploader(f"A checkpoint saved by the Train page or `python -m vae train --out` (up to "
                              f"{MAX_UPLOAD_MB} MB)", type=["safetensors"], key=key + ":upload")
    if upload is None:
        return None
    from vae.checkpoints import CheckpointError, load_checkpoint

    checkpoint = read_upload(upload, key + ":upload", lambda file: load_checkpoint(file.getvalue()), CheckpointError,
                             "checkpoint")
    if checkpoint is None:
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
