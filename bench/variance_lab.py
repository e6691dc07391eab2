"""The variance lab's cost: 100,000 single-sample gradient estimates of every estimator for one setting (what
the Estimators page's histograms and exact-variance checks draw on), timed in rounds.

    python bench/variance_lab.py [--repetitions 100000] [--rounds 7] [--cost quadratic]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._figures import emit, median_figure  # noqa: E402
from vae.toy_costs import COSTS  # noqa: E402
from vae.variance_lab import ToySetting, gradient_estimates  # noqa: E402

TARGET_MS = 100.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repetitions", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--cost", default=next(iter(COSTS)), choices=list(COSTS))
    args = parser.parse_args()
    cost = COSTS[args.cost]
    setting = ToySetting(args.cost, loc=0.5, scale=1.0, k=float(cost.default_k))
    gradient_estimates(setting, 1, 1000)  # warm-up: first calls build kernels and caches
    timings = []
    for _ in range(args.rounds):
        start = time.perf_counter()
        estimates = gradient_estimates(setting, 1, args.repetitions)
        timings.append((time.perf_counter() - start) * 1000)
    print(f"{args.repetitions:,} estimates of each of {len(estimates)} estimators ({', '.join(estimates)}), "
          f"cost {args.cost}: median {sorted(timings)[len(timings) // 2]:.0f} ms "
          f"(min {min(timings):.0f}, max {max(timings):.0f}; target <= {TARGET_MS:.0f} ms)")
    emit([median_figure(f"variance lab: {args.repetitions:,} estimates x {len(estimates)} estimators", timings,
                        "ms", TARGET_MS, higher_is_better=False, digits=0)])


if __name__ == "__main__":
    main()
