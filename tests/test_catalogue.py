"""The catalogue of bad files and values. Every case runs through the library, the CLI and the pages: each is
refused with the library's own sentence, raises nothing else, and costs little memory (the process's peak
resident memory is measured around each call)."""

from __future__ import annotations

import contextlib
import html
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests import hostile_checkpoints, hostile_npz
from vae.checkpoints import CheckpointError, load_checkpoint
from vae.cli import main
from vae.config import ConfigError, config_from_settings
from vae.data import DataError, load_named_dataset, load_npz

MEMORY_BOUND_MB = 150  # far below what any of these files declare; well above what refusing one costs
NPZ = {case.case_id: case for case in hostile_npz.CASES}
CHECKPOINTS = {case.case_id: case for case in hostile_checkpoints.CASES}

# Values a person types: (flags for `python -m vae train`, the same as settings, the sentence).
VALUES = {
    "beta-inf": (["--beta", "inf"], {"beta": float("inf")}, "finite"),
    "beta-negative": (["--beta", "-1"], {"beta": -1.0}, "Beta must be"),
    "kl-warmup-nan": (["--kl-warmup-epochs", "nan"], {"kl_warmup_epochs": float("nan")}, "finite"),
    "lr-nan": (["--lr", "nan"], {"lr": float("nan")}, "finite"),
    "lr-zero": (["--lr", "0"], {"lr": 0.0}, "positive"),
    "seed-2**64": (["--seed", str(2**64)], {"seed": 2**64}, "seed must be between 0 and"),
    "epochs-10**12": (["--epochs", str(10**12)], {"epochs": 10**12}, "epochs"),
    "batch-size-10**9": (["--batch-size", str(10**9)], {"batch_size": 10**9}, "batch size"),
    "latent-dim-0": (["--latent-dim", "0"], {"latent_dim": 0}, "latent dimension must be between 1 and 64"),
    "hidden-width-100000": (["--hidden-sizes", "100000"], {"hidden_sizes": (100_000,)},
                            "hidden layer widths must be between 1 and 2048"),
    "unknown-preset": (["--preset", "huge"], {"preset": "huge"}, None),  # argparse's choices refuse it on the CLI
}
SERVER_PATHS = ["/etc/passwd.npz", "../../secret.npz", "mnist/../../x.npz", "C:\\data\\x.npz", "digits\x00.npz"]


@contextlib.contextmanager
def peak_memory_growth() -> Iterator[Callable[[], float]]:
    """Yields a function giving, in MB, how far the peak resident memory rose above the start (Linux)."""
    Path("/proc/self/clear_refs").write_text("5")  # resets the peak (VmHWM) to the current resident size

    def status_mb(field: str) -> float:
        line = next(line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith(field))
        return int(line.split()[1]) / 1024

    start = status_mb("VmRSS:")
    yield lambda: status_mb("VmHWM:") - start


def refused_within_memory(call: Callable[[], object], error: type[Exception], expected: str) -> str:
    with peak_memory_growth() as growth:
        with pytest.raises(error) as caught:
            call()
    message = str(caught.value)
    assert re.search(expected, message, re.IGNORECASE), message
    assert growth() < MEMORY_BOUND_MB, f"refusing it cost {growth():.0f} MB"
    return message


def sentence(message: str) -> None:
    """A sentence for a person: no exception names, no traceback, ends like a sentence."""
    assert "Traceback" not in message and not re.search(r"\b\w+Error\b", message), message
    assert message.rstrip().endswith((".", ")", "?")), message


# --- the library ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case_id", NPZ)
def test_library_refuses_the_npz(case_id, tmp_path):
    case = NPZ[case_id]
    path = case.make(tmp_path)
    sentence(refused_within_memory(lambda: load_npz(path), DataError, case.expected))


@pytest.mark.parametrize("case_id", CHECKPOINTS)
def test_library_refuses_the_checkpoint(case_id):
    case = CHECKPOINTS[case_id]
    data = case.make()
    sentence(refused_within_memory(lambda: load_checkpoint(data), CheckpointError, case.expected))


@pytest.mark.parametrize("case_id", [case for case in VALUES if VALUES[case][2]])
def test_library_refuses_the_value(case_id):
    _, settings, expected = VALUES[case_id]
    sentence(refused_within_memory(lambda: config_from_settings(settings).validate(), ConfigError, expected))


@pytest.mark.parametrize("path", SERVER_PATHS)
def test_a_dataset_named_by_a_file_is_never_a_server_path(path):
    sentence(refused_within_memory(lambda: load_named_dataset(path), DataError, "not one this app provides"))


# --- the CLI ----------------------------------------------------------------------------------------------------


def cli_refuses(argv: list[str], expected: str, capsys) -> None:
    with peak_memory_growth() as growth:
        status = main(argv)
    err = capsys.readouterr().err
    assert status == 2 and err.startswith("error: ") and re.search(expected, err, re.IGNORECASE), (status, err)
    sentence(err.removeprefix("error: ").strip())
    assert growth() < MEMORY_BOUND_MB


@pytest.mark.parametrize("case_id", NPZ)
def test_cli_refuses_the_npz(case_id, tmp_path, capsys):
    path = NPZ[case_id].make(tmp_path)
    cli_refuses(["train", "--dataset", str(path), "--epochs", "1", "--json"], NPZ[case_id].expected, capsys)


@pytest.mark.parametrize("case_id", CHECKPOINTS)
def test_cli_refuses_the_checkpoint(case_id, tmp_path, capsys):
    path = tmp_path / "given.safetensors"
    path.write_bytes(CHECKPOINTS[case_id].make())
    cli_refuses(["preview", str(path)], CHECKPOINTS[case_id].expected, capsys)
    assert [p.name for p in tmp_path.iterdir()] == ["given.safetensors"]  # nothing written beside it


@pytest.mark.parametrize("case_id", VALUES)
def test_cli_refuses_the_value(case_id, tmp_path, capsys):
    flags, _, expected = VALUES[case_id]
    argv = ["train", *flags, "--out", str(tmp_path / "never.safetensors")]
    if expected is None:  # argparse refuses it before our code runs, with its usage line
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 2 and "invalid choice" in capsys.readouterr().err
        return
    cli_refuses(argv, expected, capsys)
    assert not (tmp_path / "never.safetensors").exists()


# --- the pages (AppTest: the same code path as an upload in the browser) -------------------------------------


def upload_page(content: bytes, name: str, kind: str) -> None:
    """A page that receives `content` as an upload and decodes it as the Train page (npz) or a checkpoint picker
    does, through pages._session.read_upload."""
    import io

    import streamlit as st

    from pages._session import read_upload
    from vae.checkpoints import CheckpointError, load_checkpoint
    from vae.data import DataError, load_npz

    class Upload(io.BytesIO):  # what Streamlit's UploadedFile is: a BytesIO with a name and an id
        file_id = "the-only-file"

    upload = Upload(content)
    upload.name = name
    if kind == "npz":
        read_upload(upload, "uploader", load_npz, DataError)
    else:
        read_upload(upload, "uploader", lambda file: load_checkpoint(file.getvalue()), CheckpointError, "checkpoint")
    st.write("The page goes on.")


def shown_text(markdown: str) -> str:
    """What a reader sees of a message written with pages._session.literal."""
    return re.sub(r"\\(.)", r"\1", html.unescape(markdown))


def page_refuses(content: bytes, name: str, kind: str, expected: str) -> None:
    at = AppTest.from_function(upload_page, kwargs={"content": content, "name": name, "kind": kind})
    with peak_memory_growth() as growth:
        at.run(timeout=60)
    assert not at.exception, at.exception
    messages = [shown_text(error.value) for error in at.error]
    assert len(messages) == 1 and re.match(r"That (file|checkpoint) was refused: ", messages[0]), messages
    assert re.search(expected, messages[0], re.IGNORECASE), messages
    assert any("The page goes on." in m.value for m in at.markdown)  # the page kept drawing
    assert growth() < MEMORY_BOUND_MB


@pytest.mark.parametrize("case_id", NPZ)
def test_pages_refuse_the_npz(case_id, tmp_path):
    case = NPZ[case_id]
    page_refuses(case.make(tmp_path).read_bytes(), f"{case_id}.npz", "npz", case.expected)


@pytest.mark.parametrize("case_id", CHECKPOINTS)
def test_pages_refuse_the_checkpoint(case_id):
    case = CHECKPOINTS[case_id]
    page_refuses(case.make(), "model.safetensors", "checkpoint", case.expected)


def test_the_catalogue_is_complete():
    """At least 30 cases, and every defect the reliability issue names is in it."""
    assert len(NPZ) + len(CHECKPOINTS) + len(VALUES) + len(SERVER_PATHS) >= 30
    named = {"zeros-bomb-500mb", "header-4tb", "lying-zip-directory"} | {"hidden-width-20000", "hidden-width-100000",
             "metrics-not-json", "config-json-list", "latent-dim-string", "input-shape-length-1"}
    assert named <= set(NPZ) | set(CHECKPOINTS), named - set(NPZ) - set(CHECKPOINTS)
