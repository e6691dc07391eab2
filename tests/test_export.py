"""vae.export: the metrics CSV round-trips the snapshot, and the standalone script retrains a run to the same
held-out numbers as the library (run in a subprocess, compared as float32: to every bit)."""

import csv
import hashlib
import io
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.test_architecture import imported_modules
from tests.test_data import closed_port_url, tiny_idx_set
from vae import data
from vae.config import ConfigError, TrainConfig, preset_config
from vae.data import Dataset, load_dataset, load_idx_dataset
from vae.export import CSV_COLUMNS, metrics_csv, script_refusal, standalone_script
from vae.job import JobStatus, TrainingJob
from vae.metrics import EpochMetrics, RunPublisher

EPOCH_LINE = re.compile(r"epoch (\d+): held-out ELBO (\S+) = reconstruction (\S+) - KL (\S+)")
SCRIPT_MODULES = {"gzip", "math", "urllib", "pathlib", "numpy", "torch", "sklearn"}  # the standard library, and three


# ---------------------------------------------------------------------------------------------------------------
# The metrics CSV


def published_snapshot():
    """A run's snapshot with 7 steps of 3 per epoch, 2 epochs evaluated (made as the job makes it, without torch)."""
    publisher = RunPublisher(preset_config("digits"), steps_per_epoch=3, device="cpu")
    rows = np.random.default_rng(0).normal(size=(7, 4))  # elbo, reconstruction, kl, grad_norm
    publisher.publish_steps(1, rows)
    publisher.publish_epoch(-30.25, -28.5, 1.75)
    publisher.publish_epoch(-29.0, -27.125, 1.875)
    return publisher.snapshot()


def read_csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_the_csv_holds_every_step_then_every_epoch_with_the_snapshots_values():
    snapshot = published_snapshot()
    text = metrics_csv(snapshot)
    assert tuple(next(csv.reader(io.StringIO(text)))) == CSV_COLUMNS
    rows = read_csv(text)
    train, held_out = rows[:7], rows[7:]
    assert [row["kind"] for row in rows] == ["train"] * 7 + ["held_out"] * 2
    assert [int(row["step"]) for row in train] == snapshot.train["step"].tolist() == list(range(1, 8))
    assert [int(row["epoch"]) for row in train] == [1, 1, 1, 2, 2, 2, 3]  # step 7 is in the unfinished 3rd epoch
    for name in ("elbo", "reconstruction", "kl", "grad_norm"):
        assert [float(row[name]) for row in train] == snapshot.train[name].tolist()  # exact: written in full
    assert [(int(row["step"]), int(row["epoch"])) for row in held_out] == [(3, 1), (6, 2)]  # each epoch's last step
    shown = [EpochMetrics(int(r["epoch"]), float(r["elbo"]), float(r["reconstruction"]), float(r["kl"]))
             for r in held_out]
    assert tuple(shown) == snapshot.held_out
    assert all(row["grad_norm"] == "" for row in held_out)


def test_the_csv_of_a_run_not_yet_stepped_is_its_header():
    snapshot = RunPublisher(preset_config("digits"), steps_per_epoch=3, device="cpu").snapshot()
    assert metrics_csv(snapshot) == ",".join(CSV_COLUMNS) + "\n"


# ---------------------------------------------------------------------------------------------------------------
# The standalone script


def held_out_of_script(script: str, folder: Path) -> list[EpochMetrics]:
    """Run the script alone, in `folder`, with this interpreter; its per-epoch lines as numbers."""
    path = folder / "train_vae.py"
    path.write_text(script)
    done = subprocess.run([sys.executable, "-I", str(path)], cwd=folder, capture_output=True, text=True,
                          timeout=240)
    assert done.returncode == 0, done.stderr
    lines = [EPOCH_LINE.fullmatch(line) for line in done.stdout.splitlines()]
    assert all(lines), done.stdout
    return [EpochMetrics(int(m[1]), float(m[2]), float(m[3]), float(m[4])) for m in lines]


def held_out_of_library(config: TrainConfig, dataset: Dataset) -> tuple[TrainingJob, tuple[EpochMetrics, ...]]:
    """What the Train page runs: a TrainingJob to its end."""
    job = TrainingJob(config, dataset)
    job.start()
    snapshot = job.wait_until(lambda s: not s.is_alive)
    assert snapshot.status == JobStatus.FINISHED, snapshot.message
    return job, snapshot.held_out


def as_float32(metrics) -> list[tuple[np.float32, ...]]:
    """The printed 9 significant digits hold a float32 exactly: compare there, bit for bit."""
    return [tuple(np.float32(getattr(m, name)) for name in ("elbo", "reconstruction", "kl")) for m in metrics]


def assert_script_matches_library(config: TrainConfig, dataset: Dataset, folder: Path,
                                  kl_rtol: float = 0.0) -> None:
    job, library = held_out_of_library(config, dataset)
    script = held_out_of_script(standalone_script(job.config), folder)
    assert [m.epoch for m in script] == list(range(1, config.epochs + 1))
    if not kl_rtol:
        assert as_float32(script) == as_float32(library), (script, library)
        return
    assert [s[:2] for s in as_float32(script)] == [s[:2] for s in as_float32(library)], (script, library)
    np.testing.assert_allclose([m.kl for m in script], [m.kl for m in library], rtol=kl_rtol, atol=0)


def test_the_script_for_the_digits_preset_prints_the_librarys_held_out_elbo_exactly(tmp_path):
    assert_script_matches_library(preset_config("digits").replace(epochs=1), load_dataset("digits"), tmp_path)


def test_the_script_with_gaussian_pixels_beta_and_kl_warm_up_matches_the_library(tmp_path):
    """The ELBO and reconstruction to every bit. This run's posterior has all but collapsed by epoch 2 (KL 0.0035
    nats, a sum of 718 differences of numbers near 1), so its KL's last bit follows roundings far below what
    the other two can show: once, on a CI machine, it differed by one float32 ulp between the two processes."""
    config = preset_config("digits-2d").replace(epochs=2, likelihood="gaussian", beta=0.5, kl_warmup_epochs=1.5,
                                                seed=7)
    assert_script_matches_library(config, load_dataset("digits"), tmp_path, kl_rtol=1e-6)


def test_the_mnist_script_reads_the_idx_files_as_the_library_does(tmp_path, monkeypatch):
    """A tiny fake MNIST already in ./data/mnist, where the script would download it (nothing is downloaded)."""
    files = tiny_idx_set(n_train=150, n_test=40, side=28)
    folder = tmp_path / "data" / "mnist"
    folder.mkdir(parents=True)
    for name, body in files.items():
        (folder / name).write_bytes(body)
    monkeypatch.setitem(data.CHECKSUMS, "mnist", {name: hashlib.md5(body).hexdigest() for name, body in files.items()})
    dataset = load_idx_dataset("mnist", tmp_path / "data", mirrors=[closed_port_url()])
    assert_script_matches_library(preset_config("pytorch-examples-mnist").replace(epochs=1), dataset, tmp_path)


@pytest.mark.parametrize("preset", ["digits", "digits-2d", "pytorch-examples-mnist"])
def test_the_script_of_every_preset_imports_nothing_of_this_project(preset, tmp_path):
    source = standalone_script(preset_config(preset))
    (tmp_path / "train_vae.py").write_text(source)
    modules = imported_modules(tmp_path / "train_vae.py")
    assert modules <= SCRIPT_MODULES
    assert ("sklearn" in modules) == (preset != "pytorch-examples-mnist")  # the digits come with scikit-learn
    assert "z = mu + sigma * eps" in source  # the trick, in one visible line
    assert 100 <= len(source.splitlines()) <= 150


@pytest.mark.parametrize(("change", "reason"), [
    ({"posterior": "laplace"}, "Gaussian posterior only, not laplace"),
    ({"encoder_gradient": "score_function"}, "reparameterization trick only"),
    ({"dataset": "my-digits.npz"}, "not 'my-digits.npz'"),
])
def test_what_the_script_cannot_write_is_refused_with_a_sentence(change, reason):
    config = preset_config("digits").replace(**change)
    assert reason in script_refusal(config)
    with pytest.raises(ConfigError, match=re.escape(reason)):
        standalone_script(config)


def test_every_preset_can_be_written():
    assert all(script_refusal(preset_config(name)) is None for name in ("digits", "digits-2d",
                                                                        "pytorch-examples-mnist"))
