"""Every benchmark, one command, one table: each figure against its target, with the spread over rounds and the
command that measured it. Ratios are measured in one run (both sides alternate in rounds), as the machines
here are shared and noisy. Run it on an otherwise idle machine.

    python bench/run_all.py [--quick] [--only variance_lab,slider_latency] [--markdown]

--quick runs fewer rounds (a check that everything runs, not figures to report). --markdown prints the table
for README.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench._figures import Figure, parse, text_table  # noqa: E402

# name -> (arguments for the figures to report, arguments for --quick)
BENCHMARKS: dict[str, tuple[list[str], list[str]]] = {
    "train_throughput": (["--rounds", "5"], ["--rounds", "1", "--steps", "30", "--warmup", "5"]),
    "cold_start": (["--rounds", "3"], ["--rounds", "1"]),
    "slider_latency": (["--presses", "50"], ["--presses", "5"]),
    "variance_lab": (["--rounds", "7"], ["--rounds", "2"]),
    "ui_cost": (["--rounds", "3"], ["--rounds", "1", "--window", "5"]),
    "scaling": (["--seconds", "1.5"], ["--seconds", "0.2"]),
}


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def commands(quick: bool, only: set[str] | None) -> list[list[str]]:
    chosen = [name for name in BENCHMARKS if only is None or name in only]
    runs = [[f"bench/{name}.py", *BENCHMARKS[name][quick]] for name in chosen]
    if cuda_available() and "train_throughput" in chosen:  # the GPU's figures beside the CPU's
        runs.append(["bench/train_throughput.py", "--device", "cuda", *BENCHMARKS["train_throughput"][quick]])
    return runs


def run(command: list[str]) -> tuple[list[Figure], str]:
    """The figures one benchmark reports, and a sentence when it failed."""
    result = subprocess.run([sys.executable, *command], cwd=ROOT, capture_output=True, text=True)
    figures = parse(result.stdout)
    if result.returncode != 0 or not figures:
        return figures, f"exit {result.returncode}: {(result.stderr or result.stdout).strip()[-300:]}"
    return figures, ""


def table(rows: list[tuple[Figure, str]], markdown: bool) -> str:
    header = ("figure", "value", "target", "pass", "spread", "command")
    lines = [[f.figure, f"{f.value:.3g} {f.unit}", f"{'>=' if f.higher_is_better else '<='} {f.target:g} {f.unit}",
              "pass" if f.passed else "FAIL", f.spread, f"`python {command}`" if markdown else f"python {command}"]
             for f, command in rows]
    return text_table(header, lines, markdown)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds: a check that every benchmark runs")
    parser.add_argument("--only", help="comma-separated benchmark names: " + ", ".join(BENCHMARKS))
    parser.add_argument("--markdown", action="store_true", help="the table in Markdown, for README")
    args = parser.parse_args()
    only = set(args.only.split(",")) if args.only else None
    if only and only - set(BENCHMARKS):
        parser.error(f"unknown benchmark(s) {sorted(only - set(BENCHMARKS))}; choose from {', '.join(BENCHMARKS)}")
    rows, failures = [], []
    for command in commands(args.quick, only):
        shown = shlex.join(command)
        started = time.monotonic()
        print(f"running python {shown} …", file=sys.stderr, flush=True)
        figures, failure = run(command)
        print(f"  {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
        rows += [(figure, shown) for figure in figures]
        if failure:
            failures.append(f"python {shown}: {failure}")
    print(table(rows, args.markdown))
    for failure in failures:
        print("FAILED " + failure, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
