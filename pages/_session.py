"""What every page shares: the session's training job and the cached datasets. No maths here."""

from __future__ import annotations

import streamlit as st

from vae.config import TrainConfig
from vae.data import Dataset, load_dataset
from vae.job import JobLimitError, TrainingJob

JOB_KEY = "training_job"


@st.cache_resource(show_spinner="Loading the dataset…", max_entries=4)
def cached_dataset(name: str) -> Dataset:
    """Shared by all sessions (read-only arrays). A failed download falls back to the bundled digits."""
    return load_dataset(name, fallback_to_digits=True)


def restore_widgets(keys: list[str], defaults: dict) -> None:
    """Give widgets their remembered values before they are drawn. Streamlit drops a widget's value when a
    page without that widget runs, so the values are also kept under plain keys (see `remember_widgets`)."""
    for key in keys:
        if key not in st.session_state:
            st.session_state[key] = st.session_state.get("kept:" + key, defaults[key])


def remember_widgets(keys: list[str]) -> None:
    for key in keys:
        st.session_state["kept:" + key] = st.session_state[key]


def current_job() -> TrainingJob | None:
    """The session's job: it lives in session_state, so switching pages never stops it."""
    return st.session_state.get(JOB_KEY)


def start_new_job(config: TrainConfig, dataset: Dataset, paused: bool = False) -> TrainingJob | None:
    """Replace the session's job with a fresh one; an error sentence in the page if the server is full."""
    old = current_job()
    if old is not None:
        old.stop()
        old.join(timeout=5)  # frees its slot before the new job asks for one
    job = TrainingJob(config, dataset)
    try:
        job.start(paused=paused)
    except JobLimitError as error:
        st.error(str(error))
        return None
    st.session_state[JOB_KEY] = job
    return job
