"""`python -m vae`: a real short run of `train` from the shell, one flag per setting, flags -> config ->
checkpoint -> config, its JSON shape, and errors as sentences."""

import argparse
import json
import subprocess
import sys

import numpy as np
import pytest

from vae.checkpoints import checkpoint_bytes, load_checkpoint
from vae.cli import build_parser, config_from_args, main
from vae.config import (
    Device,
    EncoderGradient,
    Likelihood,
    PosteriorFamily,
    Preset,
    preset_config,
    pretrained_path,
    user_settings,
)
from vae.model import build_model

NOT_SETTINGS = {"help", "data_dir", "out", "json"}  # the run's own options, not part of its config


def train_parser() -> argparse.ArgumentParser:
    verbs = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return verbs.choices["train"]


def test_train_from_the_shell_saves_a_checkpoint_that_loads(tmp_path):
    out = tmp_path / "digits.safetensors"
    result = subprocess.run([sys.executable, "-m", "vae", "train", "--preset", "digits", "--epochs", "1",
                             "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert f"Saved {out}" in result.stdout
    checkpoint = load_checkpoint(out)
    assert checkpoint.config == preset_config("digits").replace(epochs=1)  # the preset, with the one flag on top
    assert [m["epoch"] for m in checkpoint.metrics["held_out"]] == [1]
    assert checkpoint.metrics["held_out"][0]["elbo"] < 0


def test_every_setting_has_exactly_one_flag_and_nothing_else_does():
    actions = [a for a in train_parser()._actions if a.dest not in NOT_SETTINGS]
    assert sorted(a.dest for a in actions) == sorted(user_settings())  # each once, no flag outside the config
    for action in actions:
        spec = user_settings()[action.dest]
        assert action.option_strings == [spec.flag]
        assert action.default is None  # left out: the preset's value
        assert action.choices == spec.choices  # from the StrEnum, for every choice


ALL_FLAGS = ["--preset", "digits-2d", "--dataset", "mnist", "--hidden-sizes", "24", "12", "--latent-dim", "3",
             "--likelihood", "gaussian", "--posterior", "laplace", "--epochs", "7", "--batch-size", "32",
             "--lr", "0.01", "--beta", "0.5", "--kl-warmup-epochs", "2.5", "--encoder-gradient", "score_function",
             "--seed", "9", "--device", "cpu", "--kl-cycles", "3", "--free-bits", "0.25", "--categories", "5",
             "--temperature", "2", "--final-temperature", "0.3"]


def test_flags_config_checkpoint_and_back_are_the_same_config():
    assert {a for a in ALL_FLAGS if a.startswith("--")} == {s.flag for s in user_settings().values()}
    config = config_from_args(build_parser().parse_args(["train", *ALL_FLAGS]))
    assert config.preset is Preset.DIGITS_2D and config.dataset == "mnist" and config.model.hidden_sizes == (24, 12)
    assert (config.model.latent_dim, config.epochs, config.batch_size, config.seed) == (3, 7, 32, 9)
    assert (config.lr, config.beta, config.kl_warmup_epochs) == (0.01, 0.5, 2.5)
    assert (config.kl_cycles, config.free_bits) == (3, 0.25)
    assert (config.model.categories, config.temperature, config.final_temperature) == (5, 2.0, 0.3)
    assert config.model.likelihood is Likelihood.GAUSSIAN and config.model.posterior is PosteriorFamily.LAPLACE
    assert config.encoder_gradient is EncoderGradient.SCORE_FUNCTION and config.device is Device.CPU
    loaded = load_checkpoint(checkpoint_bytes(build_model(config.model, seed=0), config)).config
    assert loaded == config and loaded.model.posterior is PosteriorFamily.LAPLACE


def test_the_earlier_flag_spellings_still_work():
    """--hidden and --kl-warmup were the flags' names before they came from the field names; argparse accepts
    a unique prefix of a long option."""
    args = build_parser().parse_args(["train", "--hidden", "8", "--kl-warmup", "3"])
    config = config_from_args(args)
    assert config.model.hidden_sizes == (8,) and config.kl_warmup_epochs == 3.0


def test_train_json_and_checkpoint(tmp_path, capsys):
    out = tmp_path / "m.safetensors"
    code = main(["train", "--epochs", "2", "--latent-dim", "3", "--hidden-sizes", "32", "--seed", "4", "--json",
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
    assert main(["train", "--epochs", "2", "--hidden-sizes", "16"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("epoch")]
    assert len(lines) == 2 and "held-out ELBO" in lines[0] and "KL" in lines[0]


def test_train_on_an_npz_file(tmp_path, capsys):
    rng = np.random.default_rng(0)
    path = tmp_path / "mine.npz"
    np.savez(path, x_train=rng.integers(0, 256, (64, 6, 6), dtype=np.uint8),
             x_test=rng.integers(0, 256, (16, 6, 6), dtype=np.uint8))
    assert main(["train", "--dataset", str(path), "--epochs", "1", "--hidden-sizes", "8", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["config"]["model"]["input_shape"] == [6, 6] and result["config"]["dataset"] == "mine.npz"


def test_errors_are_sentences_with_exit_code_2(tmp_path, capsys):
    assert main(["train", "--latent-dim", "100"]) == 2
    assert "latent dimension must be between 1 and 64" in capsys.readouterr().err
    assert main(["train", "--encoder-gradient", "score_function", "--posterior", "student-t"]) == 2
    assert "Score-function training needs a posterior with an exact KL" in capsys.readouterr().err
    bad = tmp_path / "bad.npz"
    np.savez(bad, x_train=np.zeros((4, 4, 4)))
    assert main(["train", "--dataset", str(bad)]) == 2
    assert "x_test" in capsys.readouterr().err


def test_a_choice_outside_its_enum_is_refused_naming_the_choices(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--posterior", "normal"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "invalid choice: 'normal'" in err
    assert all(family in err for family in PosteriorFamily)  # argparse quotes them or not, by Python version


@pytest.mark.parametrize(
    "flags, words",
    [(["--beta", "inf"], "Beta must be a finite number"),
     (["--kl-warmup", "nan"], "The KL warm-up must be a finite number of epochs"),
     (["--lr", "nan"], "The learning rate must be a positive finite number"),
     (["--lr", "inf"], "The learning rate must be a positive finite number"),
     (["--seed", str(2**64)], "The seed must be between 0 and 2147483647, not 18446744073709551616."),
     (["--epochs", str(10**12)], "The number of epochs must be between 1 and 10000"),
     (["--batch-size", str(10**9)], "The batch size must be between 1 and 4096")],
)
def test_values_out_of_range_are_refused_before_training(flags, words, capsys):
    assert main(["train", *flags]) == 2
    captured = capsys.readouterr()
    assert f"error: {words}" in captured.err and "epoch" not in captured.out  # refused up front: nothing trained


def test_a_diverged_run_never_replaces_a_good_checkpoint(tmp_path, capsys):
    good = tmp_path / "good.safetensors"
    assert main(["train", "--epochs", "1", "--hidden-sizes", "16", "--out", str(good)]) == 0
    before = good.read_bytes()
    assert main(["train", "--lr", "100", "--epochs", "5", "--hidden-sizes", "16", "--out", str(good)]) == 1
    err = capsys.readouterr().err
    assert f"Nothing was saved to {good}" in err
    assert good.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["good.safetensors"]


def test_a_diverged_run_writes_no_new_file_either(tmp_path, capsys):
    out = tmp_path / "new.safetensors"
    assert main(["train", "--lr", "100", "--epochs", "5", "--hidden-sizes", "16", "--json", "--out", str(out)]) == 1
    captured = capsys.readouterr()
    assert json.loads(captured.out)["status"] == "paused" and "Nothing was saved" in captured.err
    assert not out.exists()


def test_an_interrupted_run_saves_nothing(tmp_path, capsys, monkeypatch):
    import vae.cli

    def interrupt(job, quiet):
        raise KeyboardInterrupt

    out = tmp_path / "m.safetensors"
    monkeypatch.setattr(vae.cli, "_follow", interrupt)  # Ctrl-C while the run is being followed
    assert main(["train", "--epochs", "50", "--hidden-sizes", "16", "--out", str(out)]) == 130
    assert "Interrupted" in capsys.readouterr().err and not out.exists()


def test_the_help_says_when_out_is_written():
    help_text = " ".join(train_parser().format_help().split())
    assert "only when the run finishes all its epochs without diverging" in help_text


@pytest.mark.parametrize("name", ["digits", "digits-2d"])
def test_bound_prints_l_k_beside_the_elbo_for_a_bundled_checkpoint(name, capsys):
    path = str(pretrained_path(name))
    assert main(["bound", "--checkpoint", path, "--k", "1,10,100,1000", "--examples", "8", "--seed", "1",
                 "--json"]) == 0
    result = json.loads(capsys.readouterr().out)  # stdout holds the JSON object and nothing else
    assert set(result) == {"checkpoint", "examples", "elbo", "bounds"}
    assert result["checkpoint"] == path and result["examples"] == 8
    assert [row["k"] for row in result["bounds"]] == [1, 10, 100, 1000]
    assert all(set(row) == {"k", "bound", "stderr"} and row["stderr"] > 0 for row in result["bounds"])
    bounds = [row["bound"] for row in result["bounds"]]
    assert -60 < result["elbo"] < 0 and bounds == sorted(bounds)  # nats per example; tighter with K
    assert bounds[0] == pytest.approx(result["elbo"], abs=0.1)  # L_1 is the ELBO


def test_bound_prints_a_table_without_json(capsys):
    assert main(["bound", "--checkpoint", str(pretrained_path("digits")), "--k", "1,4",
                 "--examples", "4"]) == 0
    out = capsys.readouterr().out
    assert "4 held-out examples, nats per example" in out and "ELBO" in out
    assert [line.split()[0] for line in out.splitlines() if line.strip()[:1].isdigit()] == ["1", "4"]


@pytest.mark.parametrize("flags, words", [
    (["--checkpoint", "missing.safetensors"], "Could not read the checkpoint"),
    (["--k", "1,0"], "--k takes whole numbers from 1 to 100,000"),
    (["--k", "ten"], "--k takes whole numbers"),
    (["--k", "2.5"], "--k takes whole numbers"),
    (["--examples", "0"], "--examples must be at least 1"),
])
def test_bound_refuses_bad_input_in_one_sentence(flags, words, capsys):
    arguments = ["bound", "--checkpoint", str(pretrained_path("digits")), *flags]
    assert main(arguments) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith(f"error: {words}") and captured.err.count("\n") == 1 and not captured.out
