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

from vae.bounds import MAX_K, check_ks, elbo_per_example, importance_weighted_bounds
from vae.checkpoints import CheckpointError, load_checkpoint, save_checkpoint
from vae.config import ConfigError, TrainConfig, UserSetting, config_from_settings, user_settings
from vae.control_variates import VARIANCE_REDUCTIONS
from vae.data import DataError, load_dataset, load_named_dataset
from vae.estimators import ESTIMATORS
from vae.job import EpochMetrics, JobStatus, TrainingJob, metrics_summary
from vae.preview import write_preview
from vae.toy_costs import COSTS, cost_function, exact_gradient
from vae.toy_variances import exact_variance


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
    _add_bound(verbs.add_parser("bound", help="how tight the ELBO is: the importance-weighted bound L_K of a "
                                              "checkpoint on its held-out data", description=_BOUND_HELP))
    return parser


_TRAIN_HELP = (
    "Train a VAE headless. Options left out come from the preset. Prints the held-out ELBO, "
    "reconstruction and KL (nats per example) after every epoch."
)


def _add_train(parser: argparse.ArgumentParser) -> None:
    for spec in user_settings().values():  # one flag per setting of TrainConfig, from its declaration
        parser.add_argument(spec.flag, dest=spec.name, **_flag_options(spec))
    parser.add_argument("--data-dir", help="download cache (default: $REPARAM_LAB_DATA_DIR or the user cache)")
    parser.add_argument("--out", help="write the final weights here (.safetensors), only when the run finishes all "
                                      "its epochs without diverging: a run that diverges, fails or is interrupted "
                                      "writes nothing, and an existing file stays as it was")
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
    job = TrainingJob(config, dataset, num_threads=None, sync_every=50, niceness=0)  # the terminal waits on it
    job.start()
    try:
        final = _follow(job, quiet=args.json)
    except KeyboardInterrupt:
        job.stop()
        _say_not_saved("Interrupted.", args.out)
        return 130
    complete = final.status == JobStatus.FINISHED and not final.diverged
    if args.out and complete:
        save_checkpoint(args.out, job.model(), job.config, metrics_summary(final))
    if args.json:
        print(json.dumps(_result(job, final)))
    elif args.out and complete:
        print(f"Saved {args.out}")
    if not complete:
        _say_not_saved(final.message, args.out)
        return 1
    return 0


def _say_not_saved(reason: str, out: str | None) -> None:
    """Only a complete run is saved: a diverged one holds restored early weights, and would replace a good file."""
    print(reason, file=sys.stderr)
    if out:
        print(f"Nothing was saved to {out}: only a run that finishes all its epochs without diverging is saved.",
              file=sys.stderr)


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
            if snap.status not in (JobStatus.IDLE, JobStatus.QUEUED, JobStatus.RUNNING):
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
    parser.add_argument("--baseline", default="none", choices=VARIANCE_REDUCTIONS,
                        help="baseline or control variate of the score function estimator (default none)")
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
        f"{'estimator':<44}{'param':<7}{'mean':>12}{'variance':>14}{'stderr':>12}{'exact variance':>16}",
    ]
    for name, summary in result["estimators"].items():
        label = f"{name} (baseline {summary['baseline']})" if "baseline" in summary else name
        for symbol in ("mu", "sigma"):
            row = summary[symbol]
            lines.append(f"{label:<44}{symbol:<7}{row['mean']:>12.6f}{row['variance']:>14.6g}{row['stderr']:>12.3g}"
                         f"{row['exact_variance']:>16.6g}")
            label = ""
    lines.append("(stderr: the standard error of the mean gradient, sqrt(variance / samples))")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------------
# bound: the importance-weighted bound L_K beside the ELBO (the Latent space page's "How tight is the bound?")
# ---------------------------------------------------------------------------------------------------------------

_BOUND_HELP = (
    "Estimate the importance-weighted bound L_K = E[log (1/K) sum_k p(x, z_k) / q(z_k|x)] (Burda et al. 2016) of "
    "a checkpoint on the held-out data of the dataset its config names, in nats per example: L_1 is the ELBO, L_K "
    "grows with K towards log p(x), and log p(x) - ELBO = KL(q(z|x) || p(z|x)). elbo: the library's ELBO (KL "
    "analytic where torch has it), averaged over 100 draws per example; stderr: the standard error of each mean "
    "over the examples."
)
DEFAULT_BOUND_EXAMPLES = 1000


def _add_bound(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="a .safetensors file written by `train --out`")
    parser.add_argument("--k", default="1,10,100,1000",
                        help="importance samples per example, comma-separated (default 1,10,100,1000)")
    parser.add_argument("--examples", type=int, default=DEFAULT_BOUND_EXAMPLES,
                        help=f"the first N held-out examples (default {DEFAULT_BOUND_EXAMPLES}, or all if fewer)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print one JSON object, nothing else")


def parse_ks(text: str) -> tuple[int, ...]:
    """"1,10,100" -> (1, 10, 100); a ConfigError sentence for anything but positive whole numbers."""
    try:
        return check_ks([int(part) for part in text.split(",")])
    except ValueError:
        raise ConfigError(f"--k takes whole numbers from 1 to {MAX_K:,} separated by commas, e.g. 1,10,100; "
                          f"got {text[:80]!r}.") from None


def run_bound(args: argparse.Namespace) -> int:
    ks = parse_ks(args.k)
    if args.examples < 1:
        raise ConfigError(f"--examples must be at least 1; got {args.examples}.")
    checkpoint = load_checkpoint(args.checkpoint)
    x = _held_out(checkpoint.config, args.examples)
    curve = importance_weighted_bounds(checkpoint.model, x, ks, seed=args.seed)
    result = {"checkpoint": args.checkpoint, "examples": len(x),
              "elbo": float(elbo_per_example(checkpoint.model, x, seed=args.seed).mean()),
              "bounds": [{"k": k, "bound": float(bound), "stderr": float(stderr)}
                         for k, bound, stderr in zip(curve.ks, curve.bounds, curve.stderrs, strict=True)]}
    print(json.dumps(result) if args.json else _bound_table(result))
    return 0


def _held_out(config: TrainConfig, examples: int) -> np.ndarray:
    """The first `examples` held-out images of the dataset the config names (a name, never a path from the file)."""
    dataset = load_named_dataset(config.dataset, fallback_to_digits=True)
    if tuple(dataset.image_shape) != tuple(config.model.input_shape):
        raise ConfigError(f"The model expects {config.model.input_shape} images, but the data available is "
                          f"{dataset.image_shape}.")
    return dataset.x_test[:examples]


def _bound_table(result: dict) -> str:
    lines = [f"{result['checkpoint']}: {result['examples']} held-out examples, nats per example",
             f"ELBO {result['elbo']:.3f}", "", f"{'K':>7}{'L_K':>12}{'stderr':>10}{'L_K - ELBO':>13}"]
    lines += [f"{row['k']:>7}{row['bound']:>12.3f}{row['stderr']:>10.3f}{row['bound'] - result['elbo']:>13.3f}"
              for row in result["bounds"]]
    lines.append("(L_1 is the ELBO; L_K - ELBO: how much of the gap KL(q(z|x) || p(z|x)) K samples close)")
    return "\n".join(lines)


def run_preview(args: argparse.Namespace) -> int:
    print(f"Saved {write_preview(args.checkpoint)}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        verbs = {"train": run_train, "variance": run_variance, "preview": run_preview, "bound": run_bound}
        return verbs[args.verb](args)
    except (ConfigError, DataError, CheckpointError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
