"""Command line: `python -m vae train ...` runs the same training job as the app, headless."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence

from tqdm import tqdm

from vae.checkpoints import save_checkpoint
from vae.config import DEVICES, LIKELIHOODS, POSTERIOR_FAMILIES, PRESETS, ConfigError, TrainConfig, preset_config
from vae.data import DataError, load_dataset
from vae.job import EpochMetrics, JobStatus, TrainingJob, metrics_summary


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m vae", description="Train and inspect small VAEs.")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    _add_train(verbs.add_parser("train", help="train a VAE and save a checkpoint", description=_TRAIN_HELP))
    return parser


_TRAIN_HELP = (
    "Train a VAE headless. Options left out come from the preset. Prints the held-out ELBO, "
    "reconstruction and KL (nats per example) after every epoch."
)


def _add_train(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", help="digits, mnist, fashion-mnist, or PATH.npz (default: the preset's)")
    parser.add_argument("--preset", default="digits", choices=list(PRESETS))
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--latent-dim", type=int)
    parser.add_argument("--hidden", type=int, nargs="+", help="hidden layer widths, e.g. --hidden 400")
    parser.add_argument("--likelihood", choices=LIKELIHOODS)
    parser.add_argument("--posterior", choices=POSTERIOR_FAMILIES,
                        help="family of q(z|x); the prior is the same family at loc 0, scale 1")
    parser.add_argument("--beta", type=float, help="weight of the KL term")
    parser.add_argument("--kl-warmup", type=float, help="epochs over which beta ramps up from 0")
    parser.add_argument("--lr", type=float, help="Adam learning rate")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--device", choices=DEVICES)
    parser.add_argument("--data-dir", help="download cache (default: $REPARAM_LAB_DATA_DIR or the user cache)")
    parser.add_argument("--out", help="write the final weights here (.safetensors)")
    parser.add_argument("--json", action="store_true", help="print one JSON object at the end, nothing else")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The preset, with every option given on the command line applied on top."""
    overrides = {
        "dataset": args.dataset,
        "epochs": args.epochs,
        "latent_dim": args.latent_dim,
        "hidden_sizes": tuple(args.hidden) if args.hidden else None,
        "likelihood": args.likelihood,
        "posterior": args.posterior,
        "beta": args.beta,
        "kl_warmup_epochs": args.kl_warmup,
        "lr": args.lr,
        "batch_size": args.batch_size,
        "seed": args.seed,
        "device": args.device,
    }
    config = preset_config(args.preset).replace(**{k: v for k, v in overrides.items() if v is not None})
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


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return {"train": run_train}[args.verb](args)
    except (ConfigError, DataError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
