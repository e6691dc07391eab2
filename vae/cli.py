"""Command line: `python -m vae train ...` runs the same training job as the app, headless."""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from vae.baselines import BASELINES
from vae.checkpoints import CheckpointError, save_checkpoint
from vae.config import ConfigError, TrainConfig, UserSetting, config_from_settings, user_settings
from vae.data import DataError, load_dataset
from vae.estimators import ESTIMATORS
from vae.job import EpochMetrics, JobStatus, TrainingJob, metrics_summary
from vae.preview import write_preview
from vae.toy_costs import COSTS, cost_function, exact_gradient, exact_variance


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m vae", description="Train and inspect small VAEs.")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    _add_train(verbs.add_parser("train", help="train a VAE and save a checkpoint", description=_TRAIN_HELP))
    _add_variance(verbs.add_parser("variance", help="compare the two gradient estimators' variance on a toy cost",
                                   description=_VARIANCE_HELP))
    preview = verbs.add_parser("preview", help="write the pictures the Train page opens on, beside a checkpoint",
                               description="Write CHECKPOINT's .preview.npz: its reconstructions and samples, so the "
                                           "app can show the run before PyTorch has loaded.")
    preview.add_argument("checkpoint", help="a .safetensors file written by `train --out`")
    return parser


_TRAIN_HELP = (
    "Train a VAE headless. Options left out come from the preset. Prints the held-out ELBO, "
    "reconstruction and KL (nats per example) after every epoch."
)


def _add_train(parser: argparse.ArgumentParser) -> None:
    for spec in user_settings().values():  # one flag per setting of TrainConfig, from its declaration
        parser.add_argument(spec.flag, dest=spec.name, **_flag_options(spec))
    parser.add_argument("--data-dir", help="download cache (default: $REPARAM_LAB_DATA_DIR or the user cache)")
    parser.add_argument("--out", help="write the final weights here (.safetensors)")
    parser.add_argument("--json", action="store_true", help="print one JSON object at the end, nothing else")


def _flag_options(spec: UserSetting) -> dict[str, Any]:
    """argparse's options for a setting: its enum's values as choices, one value per item of a tuple. Every
    default is None, meaning "the preset's"."""
    options: dict[str, Any] = {"default": None, "help": (spec.how.help or spec.how.label).replace("%", "%%")}
    if spec.choices:
        return options | {"choices": spec.choices}
    if spec.is_sequence:
        return options | {"type": spec.item_type, "nargs": "+", "metavar": "N"}
    return options | {"type": spec.item_type}


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The preset, with every option given on the command line applied on top."""
    config = config_from_settings({name: getattr(args, name) for name in user_settings()})
    config.validate()
    return config


def run_train(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    dataset = load_dataset(config.dataset, args.data_dir, progress=not args.json)
    job = TrainingJob(config, dataset, num_threads=None, sync_every=50)
    job.start()
    final = _follow(job, quiet=args.json)
    if args.out and job.model() is not None:
        save_checkpoint(args.out, job.model(), job.config, metrics_summary(final))
    if args.json:
        print(json.dumps(_result(job, final)))
    elif args.out:
        print(f"Saved {args.out}")
    if final.status != JobStatus.FINISHED:
        print(final.message, file=sys.stderr)
        return 1
    return 0


def _follow(job: TrainingJob, quiet: bool):
    """Progress bar on stderr and one line per epoch until the job ends or pauses (divergence)."""
    snap = job.snapshot()
    total = job.config.epochs * snap.steps_per_epoch
    printed = 0
    # disable=None: no bar when stderr is not a terminal (a log file would fill with carriage returns).
    with tqdm(total=total, unit="step", disable=True if quiet else None, file=sys.stderr, leave=False) as bar:
        while True:
            snap = job.snapshot()
            bar.update(snap.step - bar.n)
            for metrics in snap.held_out[printed:]:
                if not quiet:
                    tqdm.write(_epoch_line(metrics, job.config.epochs))
            printed = len(snap.held_out)
            if snap.status not in (JobStatus.IDLE, JobStatus.RUNNING):
                job.stop()
                return snap
            time.sleep(0.05)


def _epoch_line(m: EpochMetrics, epochs: int) -> str:
    return (
        f"epoch {m.epoch:>{len(str(epochs))}}/{epochs}  held-out ELBO {m.elbo:9.3f}  "
        f"reconstruction {m.reconstruction:9.3f}  KL {m.kl:7.3f}  (nats per example)"
    )


def _result(job: TrainingJob, final) -> dict:
    return {
        "config": json.loads(job.config.to_json()),
        "device": final.device,
        "status": final.status.value,
        "steps": final.step,
        "epochs": [vars(m) for m in final.held_out],
    }


# ---------------------------------------------------------------------------------------------------------------
# variance: the Estimators page's variance lab, headless
# ---------------------------------------------------------------------------------------------------------------

_VARIANCE_HELP = (
    "Estimate d/dmu and d/dsigma of E[f(z)], z ~ N(mu, sigma^2), with the pathwise and the score function "
    "estimators, one draw per estimate (both see the same draws), and set each estimator's empirical variance "
    "beside the exact one. Per estimator and parameter: mean = the average of the single-sample estimates (the "
    "mean gradient); variance = their empirical variance; stderr = the standard error of that mean gradient, "
    "sqrt(variance / samples); exact_variance = the exact variance of the single-sample estimator (closed form "
    "or quadrature; with the moving_average baseline computed at b = E[f], where the moving average settles). "
    "The flags and the JSON keep the lecture's names mu and sigma for what the library calls loc and scale."
)
_CHUNK = 200_000  # estimates per batched call: a million samples stay within a few hundred MB


def _add_variance(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cost", default="(z-k)^2", help=f"the toy cost f(z; k), one of: {', '.join(COSTS)}")
    parser.add_argument("--k", type=float, help="the cost's parameter k (default: the cost's own)")
    parser.add_argument("--mu", type=float, default=0.0, help="mean of z (default 0)")
    parser.add_argument("--sigma", type=float, default=1.0, help="standard deviation of z (default 1)")
    parser.add_argument("--samples", type=int, default=1_000_000,
                        help="single-sample estimates per estimator (default 1000000)")
    parser.add_argument("--baseline", default="none", choices=BASELINES,
                        help="baseline of the score function estimator (default none)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print one JSON object, nothing else")


def run_variance(args: argparse.Namespace) -> int:
    if args.cost not in COSTS:
        raise ConfigError(f"Unknown cost {args.cost!r}; choose one of: {', '.join(COSTS)}.")
    if not args.sigma > 0:
        raise ConfigError(f"sigma must be positive; got {args.sigma}.")
    if args.samples < 2:
        raise ConfigError("--samples must be at least 2: a variance needs two estimates.")
    k = COSTS[args.cost].default_k if args.k is None else args.k
    result = {"cost": args.cost, "mu": args.mu, "sigma": args.sigma, "k": k, "samples": args.samples,
              "estimators": {name: _estimator_summary(name, args, k) for name in ESTIMATORS}}
    print(json.dumps(result) if args.json else _variance_table(result, exact_gradient(args.cost, args.mu,
                                                                                       args.sigma, k)))
    return 0


def _estimator_summary(estimator: str, args: argparse.Namespace, k: float) -> dict:
    """{"mu": {...}, "sigma": {...}} (and the score function's "baseline") from args.samples single-draw estimates."""
    generator = torch.Generator().manual_seed(args.seed)  # the same seed for both: the same draws
    params = {"loc": torch.tensor(args.mu, dtype=torch.float64), "scale": torch.tensor(args.sigma, dtype=torch.float64)}
    chunks = [ESTIMATORS[estimator](cost_function(args.cost, k), params, 1, min(_CHUNK, args.samples - start),
                                    generator=generator, baseline=args.baseline)
              for start in range(0, args.samples, _CHUNK)]
    exact = exact_variance(args.cost, estimator, args.mu, args.sigma, k, args.baseline)
    summary = {"baseline": args.baseline} if estimator == "score_function" else {}
    for param, symbol in (("loc", "mu"), ("scale", "sigma")):
        values = torch.cat([chunk[param] for chunk in chunks]).numpy()  # (samples,)
        variance = float(np.var(values, ddof=1))
        summary[symbol] = {"mean": float(values.mean()), "variance": variance,
                           "stderr": math.sqrt(variance / len(values)), "exact_variance": exact[param]}
    return summary


def _variance_table(result: dict, gradient: dict[str, float]) -> str:
    lines = [
        f"f(z) = {result['cost']}, k = {result['k']:g}; z ~ N(mu, sigma^2), mu = {result['mu']:g}, "
        f"sigma = {result['sigma']:g}; {result['samples']} single-sample estimates per estimator",
        f"exact gradient: d/dmu = {gradient['loc']:.6g}, d/dsigma = {gradient['scale']:.6g}",
        "",
        f"{'estimator':<32}{'param':<7}{'mean':>12}{'variance':>14}{'stderr':>12}{'exact variance':>16}",
    ]
    for name, summary in result["estimators"].items():
        label = f"{name} (baseline {summary['baseline']})" if "baseline" in summary else name
        for symbol in ("mu", "sigma"):
            row = summary[symbol]
            lines.append(f"{label:<32}{symbol:<7}{row['mean']:>12.6f}{row['variance']:>14.6g}{row['stderr']:>12.3g}"
                         f"{row['exact_variance']:>16.6g}")
            label = ""
    lines.append("(stderr: the standard error of the mean gradient, sqrt(variance / samples))")
    return "\n".join(lines)


def run_preview(args: argparse.Namespace) -> int:
    print(f"Saved {write_preview(args.checkpoint)}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return {"train": run_train, "variance": run_variance, "preview": run_preview}[args.verb](args)
    except (ConfigError, DataError, CheckpointError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
