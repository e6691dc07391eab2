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
