"""No traceback reaches a page: unexpected errors become a sentence and a way back; uploads are decoded once and
file names are shown as written."""

import pytest
from streamlit.testing.v1 import AppTest

import pages._session as session
import vae.preview


def fail(*args, **kwargs):
    raise RuntimeError("an unexpected failure deep inside")


def assert_failure_shown(at: AppTest) -> None:
    assert not at.exception  # no traceback element
    messages = [e.value for e in at.error]
    assert any("Something went wrong on this page (RuntimeError)" in m for m in messages), messages
    assert any("Back to the Train page" in link.label for link in at.get("page_link"))


def first_run_failing(monkeypatch, module, name: str) -> AppTest:
    """The app's first run with `module.name` failing. Only AppTest's first run goes through app.py (it resets
    Streamlit's page mode before each run; see `leave_legacy_multipage_mode`)."""
    monkeypatch.setattr(module, name, fail)
    at = AppTest.from_file("../app.py", default_timeout=120)
    at.run()
    return at


def test_an_error_in_a_page_becomes_a_sentence_and_a_link_back(monkeypatch):
    assert_failure_shown(first_run_failing(monkeypatch, session, "remember_widgets"))  # the Train page's settings


def test_an_error_in_a_fragment_stays_in_it_as_a_sentence(monkeypatch):
    at = first_run_failing(monkeypatch, vae.preview, "bundled_preview")  # the live view (a fragment) draws from it
    assert_failure_shown(at)
    assert [b.label for b in at.button if b.label == "Start"]  # the rest of the page is there


def test_the_failure_is_logged_with_its_traceback(monkeypatch, caplog):
    with caplog.at_level("ERROR", logger="reparam-lab"):
        first_run_failing(monkeypatch, session, "remember_widgets")
    assert any(record.exc_info and "deep inside" in str(record.exc_info[1]) for record in caplog.records)


def upload_script():
    """A page that reads one fake upload three times over two runs, counting the decodes."""
    import streamlit as st

    from pages._session import read_upload

    class Upload:
        file_id, name = st.session_state.get("file_id", "one"), "data.npz"

    def decode(upload):
        st.session_state["decodes"] = st.session_state.get("decodes", 0) + 1
        if upload.file_id == "bad":
            raise ValueError("**bold** <b>tag</b> [link](x) $x$ refused.npz")
        return f"dataset from {upload.file_id}"

    for _ in range(3):
        st.session_state["result"] = read_upload(Upload(), "uploader", decode, ValueError)


def test_an_upload_is_decoded_once_per_file_not_on_every_rerun():
    at = AppTest.from_function(upload_script)
    at.run()
    at.run()
    assert at.session_state["decodes"] == 1 and at.session_state["result"] == "dataset from one"
    at.session_state["file_id"] = "two"
    at.run()
    assert at.session_state["decodes"] == 2 and at.session_state["result"] == "dataset from two"


def test_a_refused_upload_says_why_on_every_run_and_quotes_its_name_literally():
    at = AppTest.from_function(upload_script)
    at.session_state["file_id"] = "bad"
    at.run()
    at.run()
    assert not at.exception and at.session_state["decodes"] == 1 and at.session_state["result"] is None
    message = at.error[0].value
    assert message.startswith("That file was refused: ")
    assert "<b>" not in message and "**bold**" not in message and "[link](x)" not in message and "$x$" not in message


@pytest.mark.parametrize("name", ["**bold**.npz", "<img src=x onerror=alert(1)>.npz", "[a](http://x).npz",
                                  "$x^2$.npz", ":red[red].npz", "a_b_c.npz", "back\\slash.npz"])
def test_literal_names_read_back_as_written(name):
    """Undo CommonMark's backslash escapes and HTML's entities: what a reader sees is the name itself."""
    import html
    import re

    shown = session.literal(name)
    assert "<" not in shown and not re.search(r"(?<!\\)[*_\[\]$`]", shown)
    assert html.unescape(re.sub(r"\\(.)", r"\1", shown)) == name


def test_the_status_line_shows_an_uploaded_files_name_as_text_not_html(small_digits):
    import dataclasses

    from pages._session import JOB_KEY
    from tests.conftest import open_app_page
    from vae.config import TrainConfig
    from vae.job import TrainingJob

    hostile = dataclasses.replace(small_digits, name="<img src=x onerror=alert(1)>.npz")
    job = TrainingJob(TrainConfig(epochs=1, device="cpu"), hostile)
    at = open_app_page()
    at.session_state[JOB_KEY] = job
    at.run()
    counter = next(m.value for m in at.markdown if "epoch-counter" in m.value)
    assert "<img" not in counter and "&lt;img src=x onerror=alert(1)&gt;.npz" in counter


def test_streamlits_upload_limit_is_the_librarys():
    """Streamlit refuses a larger file in the browser, saying the limit; vae.data refuses the same size."""
    import tomllib
    from pathlib import Path

    from vae.data import MAX_UPLOAD_MB

    config = tomllib.loads((Path(__file__).parent.parent / ".streamlit" / "config.toml").read_text())
    assert config["server"]["maxUploadSize"] == MAX_UPLOAD_MB == session.MAX_UPLOAD_MB
