"""Shared fixtures: a small slice of the bundled digits keeps job tests to fractions of a second."""

from __future__ import annotations

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
