"""Shared fixtures: a small slice of the bundled digits keeps job tests to fractions of a second."""

from __future__ import annotations

import contextlib
import dataclasses
import os

import pytest

# A job one test leaves running must not make another test's jobs queue for a slot (tests of the queue set their
# own small capacity); the app servers of browser tests inherit this.
os.environ.setdefault("REPARAM_LAB_MAX_TRAININGS", "16")

from vae.config import ModelConfig, TrainConfig
from vae.data import Dataset, load_digits_dataset


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Browser tests (a server and Chromium each) are `browser` and `slow`: `pytest -m "not slow"` is the quick
    loop while developing; CI runs everything. With pytest-xdist (`-n 2 --dist loadgroup`, pyproject's default)
    they run one after another in one worker while the other worker takes the rest: two servers and browsers at
    once would make the timing-sensitive ones (nothing blinks, nothing moves) measure the machine, not the app."""
    for item in items:
        if item.path.name.startswith("test_browser_"):
            item.add_marker(pytest.mark.browser)
            item.add_marker(pytest.mark.slow)
            item.add_marker(pytest.mark.xdist_group("browser"))


@pytest.fixture(scope="session")
def digits() -> Dataset:
    return load_digits_dataset()


@pytest.fixture(scope="session")
def small_digits(digits: Dataset) -> Dataset:
    """256 training and 128 held-out digits."""
    return dataclasses.replace(
        digits, x_train=digits.x_train[:256], y_train=digits.y_train[:256],
        x_test=digits.x_test[:128], y_test=digits.y_test[:128],
    )


@pytest.fixture
def small_config() -> TrainConfig:
    return TrainConfig(model=ModelConfig(hidden_sizes=(32,), latent_dim=2), epochs=3, batch_size=32, lr=3e-3,
                       device="cpu")


def open_app_page(path: str | None = None):
    """A fresh AppTest of app.py, switched to `path` (a file under pages/), with no exception on the page.
    AppTest's session id is constant, so the process-wide cache is cleared first."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    st.cache_resource.clear()
    at = AppTest.from_file("../app.py", default_timeout=120)
    at.run()
    if path is not None:
        at.switch_page(path).run()
    assert not at.exception
    return at


@contextlib.contextmanager
def live_app_run(posterior: str, dataset: Dataset):
    """The app (as `open_app_page`) with a live run of a small VAE with this posterior, one step in, as if
    started on the Train page; the run is stopped afterwards. Yields (app, job)."""
    from pages._session import JOB_KEY
    from vae.job import TrainingJob

    config = TrainConfig(model=ModelConfig(hidden_sizes=(32,), latent_dim=2, posterior=posterior), epochs=1,
                         batch_size=32, device="cpu")
    job = TrainingJob(config, dataset)
    job.step(1)
    job.wait_until(lambda s: s.step >= 1, timeout=60)
    try:
        at = open_app_page()
        at.session_state[JOB_KEY] = job
        yield at, job
    finally:
        job.stop()
        job.join(timeout=10)


def reconstruction_error_ratio(model, dataset: Dataset, images: int = 300) -> float:
    """Mean squared error of `model`'s reconstructions of held-out images over that of the mean training image:
    well under 1 when the reconstructions are recognisable."""
    import torch

    from vae.model import reconstruct

    x = torch.as_tensor(dataset.x_test[:images])
    error = float(((reconstruct(model, x) - x) ** 2).mean())
    return error / float(((x - torch.as_tensor(dataset.x_train).mean(0)) ** 2).mean())
