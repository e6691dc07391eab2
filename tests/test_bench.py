"""The benchmark suite runs with one command and reports each figure against its target (the figures themselves
are measured by running it, never asserted here)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bench._figures import Figure, emit, parse

ROOT = Path(__file__).resolve().parent.parent


def test_a_figure_passes_on_the_right_side_of_its_target():
    assert Figure("ratio", 2.6, "x", 2.5, higher_is_better=True).passed
    assert not Figure("ratio", 2.4, "x", 2.5, higher_is_better=True).passed
    assert Figure("latency", 90, "ms", 100, higher_is_better=False).passed
    assert not Figure("latency", 110, "ms", 100, higher_is_better=False).passed


def test_figures_survive_the_trip_through_a_benchmarks_output(capsys):
    figures = [Figure("a", 1.5, "x", 2.0, True, "1-2 over 3 rounds"), Figure("b", 30.0, "ms", 100.0, False)]
    print("what people read")
    emit(figures)
    assert parse(capsys.readouterr().out) == figures
    assert parse("a benchmark that printed no figures") == []


def test_run_all_prints_each_figure_with_its_target_and_command():
    result = subprocess.run([sys.executable, "bench/run_all.py", "--quick", "--only", "variance_lab", "--markdown"],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    header, rule, row = result.stdout.strip().splitlines()
    assert header.split(" | ")[:4] == ["| figure", "value", "target", "pass"]
    assert "variance lab: 100,000 estimates x 3 estimators" in row and "<= 100 ms" in row
    assert "`python bench/variance_lab.py --rounds 2`" in row


def test_run_all_names_the_benchmarks_it_knows_when_asked_for_another():
    result = subprocess.run([sys.executable, "bench/run_all.py", "--only", "warp_drive"], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "variance_lab" in result.stderr


def test_the_throughput_benchmarks_flop_count_is_what_autograd_runs():
    """The matmul limit divides the peak by FLOPs per step: counted here by torch's own FLOP counter over a real
    forward and backward pass of pytorch/examples' VAE (pixels without gradient, as in training)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from bench.train_throughput import ExampleVAE, example_loss, flops_per_step

    model, x = ExampleVAE(), torch.rand(128, 784)
    with FlopCounterMode(display=False) as counter:
        recon, mu, logvar = model(x)
        example_loss(recon, x, mu, logvar).backward()
    layers = ((784, 400), (400, 20), (400, 20), (20, 400), (400, 784))
    assert flops_per_step(128, layers) == counter.get_total_flops()


def test_an_hour_of_history_stays_bounded_however_fast_a_run_trains():
    from bench.scaling import HISTORY_TARGET_MB, history_of_an_hour
    from vae.metrics import MetricHistory

    capacity = MetricHistory(("x",)).capacity
    slow_mb, slow_points = history_of_an_hour(steps_per_s=2)
    fast_mb, fast_points = history_of_an_hour(steps_per_s=200)
    # 7,200 and 720,000 steps, each thinned to between half of the capacity and all of it
    assert capacity // 2 <= slow_points <= capacity and capacity // 2 <= fast_points <= capacity
    assert fast_mb < HISTORY_TARGET_MB and fast_mb < 1.1 * slow_mb  # no more memory for a hundred times the steps


def test_the_memory_autograd_keeps_for_backward_grows_with_the_batch(small_digits, small_config):
    import torch

    from bench.scaling import saved_for_backward_mb
    from vae.trainer import Trainer

    sizes = []
    for batch in (16, 64):
        trainer = Trainer(small_config.replace(batch_size=batch), small_digits, torch.device("cpu"))
        sizes.append(saved_for_backward_mb(trainer))
    assert 0 < sizes[0] < sizes[1] < 4 * sizes[0] + 0.01  # linear in the batch, plus what does not depend on it


def test_each_throughput_loop_runs_in_a_process_of_its_own_and_counts_its_steps():
    """One process for both loops would slow both: two OpenMP teams on two cores stop GNU OpenMP spinning."""
    import os

    from bench.train_throughput import LOOPS, LoopProcess, parse_args

    args = parse_args(["--device", "cpu", "--threads", "1", "--data", str(ROOT / "no-such-folder")])  # random pixels
    for kind in LOOPS:  # the library, the peer and the step's matmuls alone
        loop = LoopProcess(kind, args, threads=1)
        try:
            assert loop.process.pid != os.getpid()
            loop.request("warm_up", 2)
            steps, seconds = loop.request("run", 3)
            assert steps >= 1 and seconds > 0
            if kind != "library":
                assert steps == 3  # exactly the steps asked for; the library's job takes about that many
        finally:
            loop.close()
        assert loop.process.returncode == 0
