"""`python -m vae`: a smoke run of each verb, its JSON shape, and errors as sentences."""

import json
import subprocess
import sys

import numpy as np

from vae.checkpoints import load_checkpoint
from vae.cli import main


def test_help_lists_the_verbs():
    result = subprocess.run([sys.executable, "-m", "vae", "--help"], capture_output=True, text=True, check=True)
    assert "train" in result.stdout


def test_train_json_and_checkpoint(tmp_path, capsys):
    out = tmp_path / "m.safetensors"
    code = main(["train", "--epochs", "2", "--latent-dim", "3", "--hidden", "32", "--seed", "4", "--json",
                 "--posterior", "logistic", "--out", str(out)])
    assert code == 0
    result = json.loads(capsys.readouterr().out)  # stdout holds the JSON object and nothing else
    assert result["device"] == "cpu" and result["status"] == "finished"
    assert result["config"]["model"]["latent_dim"] == 3 and result["config"]["seed"] == 4
    assert result["config"]["model"]["posterior"] == "logistic"
    assert [e["epoch"] for e in result["epochs"]] == [1, 2]
    assert set(result["epochs"][0]) == {"epoch", "elbo", "reconstruction", "kl"}
    checkpoint = load_checkpoint(out)
    assert checkpoint.metrics["held_out"][-1]["elbo"] == result["epochs"][-1]["elbo"]


def test_train_prints_one_line_per_epoch(capsys):
    assert main(["train", "--epochs", "2", "--hidden", "16"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("epoch")]
    assert len(lines) == 2 and "held-out ELBO" in lines[0] and "KL" in lines[0]


def test_train_on_an_npz_file(tmp_path, capsys):
    rng = np.random.default_rng(0)
    path = tmp_path / "mine.npz"
    np.savez(path, x_train=rng.integers(0, 256, (64, 6, 6), dtype=np.uint8),
             x_test=rng.integers(0, 256, (16, 6, 6), dtype=np.uint8))
    assert main(["train", "--dataset", str(path), "--epochs", "1", "--hidden", "8", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["config"]["model"]["input_shape"] == [6, 6] and result["config"]["dataset"] == "mine.npz"


def test_errors_are_sentences_with_exit_code_2(tmp_path, capsys):
    assert main(["train", "--latent-dim", "100"]) == 2
    assert "latent dimension must be between 1 and 64" in capsys.readouterr().err
    bad = tmp_path / "bad.npz"
    np.savez(bad, x_train=np.zeros((4, 4, 4)))
    assert main(["train", "--dataset", str(bad)]) == 2
    assert "x_test" in capsys.readouterr().err
