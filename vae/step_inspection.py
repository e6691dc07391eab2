"""What one SGD step did, number by number: the Lecture page's Step walks one minibatch through the loop

    x <- minibatch;  loc, scale <- encoder_phi(x);  noise ~ base;  z = g(loc, scale, noise)
    L = mean[log p_theta(x|z) - beta KL];  grad <- backprop;  theta, phi <- Adam step

and shows each line's actual numbers. `Trainer.step(record=True)` fills a `StepRecord`; the default step records
nothing. Recording costs a copy of the weights, an encoder pass, a replay of the noise from a copy of the
generator's state, one small backward pass through the first example, and a read back to the CPU: work a Step
request may do and a training run must not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from vae.families import posterior_family, posterior_params, posterior_words
from vae.metrics import TRAIN_METRICS, JobStatus
from vae.model import VAE

PHI_MODULES = ("encoder", "to_loc", "to_log_var")  # q_phi(z|x); every other parameter belongs to p_theta(x|z)
GROUPS = ("theta", "phi")


def parameter_groups(model: VAE) -> dict[str, list[nn.Parameter]]:
    """theta: the decoder (and a Gaussian likelihood's pixel scale); phi: the encoder and its loc, log-var heads."""
    groups: dict[str, list[nn.Parameter]] = {name: [] for name in GROUPS}
    for name, parameter in model.named_parameters():
        groups["phi" if name.split(".")[0] in PHI_MODULES else "theta"].append(parameter)
    return groups


def _norm(tensors: list[torch.Tensor]) -> torch.Tensor:
    """The Euclidean norm of all entries of `tensors` together, as if they were one vector."""
    return torch.nn.utils.get_total_norm([t for t in tensors if t is not None])


@dataclass(frozen=True)
class PathGradients:
    """The first example's reconstruction term L = log p_theta(x_1|z_1) and its gradients by backpropagation
    through z = g(loc, scale, noise), per latent dimension (K,): the numbers the computation graph prints."""

    log_likelihood: float
    dz: np.ndarray  # dL/dz
    dloc: np.ndarray  # dL/dloc = dL/dz * dz/dloc
    dscale: np.ndarray  # dL/dscale = dL/dz * dz/dscale
    theta_norm: float  # ||dL/dtheta||
    phi_norm: float  # ||dL/dphi||


@dataclass(frozen=True)
class StepRecord:
    """One SGD step, as CPU numpy arrays: B examples, K latent dimensions, D pixels."""

    step: int  # the step count after this step: 1 is the first
    family: str  # q(z|x)'s family, one of vae.config.POSTERIOR_FAMILIES
    image_shape: tuple[int, int]
    indices: np.ndarray | None  # (B,) rows of the training set (None: a batch given by the caller)
    x: np.ndarray  # (B, D)
    noise: np.ndarray  # (B, K) the base noise: eps for a location-scale family, u for an inverse-CDF one
    loc: np.ndarray  # (B, K)
    scale: np.ndarray  # (B, K)
    z: np.ndarray  # (B, K) = g(loc, scale, noise)
    reconstruction: np.ndarray  # (B,) log p(x|z), one draw per example
    kl: np.ndarray  # (B,)
    metrics: dict[str, float]  # the row the job publishes for this step, by TRAIN_METRICS name (minibatch means)
    beta: float
    loss: float  # what SGD minimised: -(reconstruction - beta KL), the minibatch mean
    learning_rate: float
    grad_norms: dict[str, float]  # ||grad|| of the loss per parameter group, "theta" and "phi"
    update_norms: dict[str, float]  # ||new weights - old weights|| per group
    path: PathGradients

    @property
    def batch_size(self) -> int:
        return len(self.x)

    @property
    def update_norm(self) -> float:
        """The size of the whole update, theta and phi together."""
        return math.hypot(*self.update_norms.values())

    def images(self, count: int) -> np.ndarray:
        """The first `count` images of the minibatch, (count, H, W) in [0, 1]."""
        return self.x[:count].reshape(-1, *self.image_shape)


class StepRecorder:
    """Started before a step draws its noise, finished after its update: `Trainer.step(record=True)` runs it."""

    def __init__(self, model: VAE, x: torch.Tensor, indices: torch.Tensor | None, generator: torch.Generator) -> None:
        self.model, self.x, self.indices = model, x, indices
        self.groups = parameter_groups(model)
        self.weights_before = {name: [p.detach().clone() for p in group] for name, group in self.groups.items()}
        # A copy of the generator as the step finds it: replaying the step's draws leaves the run's own untouched.
        self.replay = torch.Generator(device=generator.device)
        self.replay.set_state(generator.get_state())
        self.draws = self._draws()
        self.path = self._path_gradients(*self.draws)

    def _draws(self) -> tuple[torch.Tensor, ...]:
        """loc, scale (B, K) from the encoder, and the noise and z the step's `posterior_rsample` draws, again."""
        family = self.model.config.posterior
        loc, scale = self.model.encode(self.x)  # (B, K) each; the same weights and input as the step's
        params = posterior_params(family, loc, scale)
        noise = posterior_family(family).sample_base(loc.shape, self.replay, params)  # (B, K)
        return loc, scale, noise, posterior_family(family).transform(params, noise)

    def _path_gradients(self, loc: torch.Tensor, scale: torch.Tensor, noise: torch.Tensor,
                        z: torch.Tensor) -> PathGradients:
        """Backpropagate the first example's log p(x|z) through z, into the graph's nodes (before the update)."""
        first = z[:1]  # (1, K)
        log_likelihood = self.model.likelihood(self.model.decode(first)).log_prob(self.x[:1]).sum()
        theta, phi = self.groups["theta"], self.groups["phi"]
        grads = torch.autograd.grad(log_likelihood, [first, loc, scale, *theta, *phi], allow_unused=True)
        dz, dloc, dscale = (g[0].detach().cpu().numpy() for g in grads[:3])
        theta_norm, phi_norm = _norm(list(grads[3:3 + len(theta)])), _norm(list(grads[3 + len(theta):]))
        return PathGradients(float(log_likelihood.detach()), dz, dloc, dscale, float(theta_norm), float(phi_norm))

    def finish(self, step: int, terms, row: torch.Tensor, beta: float, loss: torch.Tensor,
               learning_rate: float) -> StepRecord:
        """After the update: the training backward's gradients are still in `.grad`, the weights are new."""
        loc, scale, noise, z = (t.detach().cpu().numpy() for t in self.draws)
        config = self.model.config
        grad_norms = {name: float(_norm([p.grad for p in group])) for name, group in self.groups.items()}
        update_norms = {name: float(_norm([p.detach() - old for p, old in zip(group, self.weights_before[name],
                                                                               strict=True)]))
                        for name, group in self.groups.items()}
        return StepRecord(
            step=step, family=config.posterior, image_shape=tuple(config.input_shape),
            indices=None if self.indices is None else self.indices.cpu().numpy(), x=self.x.cpu().numpy(),
            noise=noise, loc=loc, scale=scale, z=z, reconstruction=terms.reconstruction.detach().cpu().numpy(),
            kl=terms.kl.detach().cpu().numpy(), metrics=dict(zip(TRAIN_METRICS, row[:-1].tolist(), strict=True)),
            beta=beta, loss=float(loss.detach()), learning_rate=learning_rate, grad_norms=grad_norms,
            update_norms=update_norms, path=self.path,
        )


# --- What the Lecture page shows of a record ----------------------------------------------------------------


def graph_numbers(record: StepRecord, dim: int = 0) -> dict[str, tuple[float | None, float | None]]:
    """Node -> (value, gradient) of the computation graph (`vae.graphs.to_svg`'s `numbers`), for the first example
    and latent dimension `dim`: the pathwise gradients of L = log p(x_1|z_1); for the encoder and decoder the norm
    of the gradient over their weights. The "before" graph leaves out the gradients that sampling blocks."""
    path = record.path
    return {
        "mu": (float(record.loc[0, dim]), float(path.dloc[dim])),
        "sigma": (float(record.scale[0, dim]), float(path.dscale[dim])),
        "eps": (float(record.noise[0, dim]), None),
        "z": (float(record.z[0, dim]), float(path.dz[dim])),
        "encoder": (None, path.phi_norm),
        "decoder": (None, path.theta_norm),
        "loss": (path.log_likelihood, None),
    }


def latent_table(record: StepRecord, examples: int = 3, dims: int = 3) -> dict[str, list]:
    """Columns of a small table, one row per (example, latent dimension): noise, loc, scale and z, headed with
    the family's own symbols (eps or u; sigma, b or s)."""
    words = posterior_words(record.family)
    rows = [(i, k) for i in range(min(examples, record.batch_size)) for k in range(min(dims, record.z.shape[1]))]
    return {
        "image": [i + 1 for i, _ in rows],
        "dim": [k + 1 for _, k in rows],
        words.noise: [float(record.noise[i, k]) for i, k in rows],
        words.loc: [float(record.loc[i, k]) for i, k in rows],
        words.scale: [float(record.scale[i, k]) for i, k in rows],
        "z": [float(record.z[i, k]) for i, k in rows],
    }


# Where the SGD loop is, for the pseudocode's highlight: the lines a status points at, and what it says there.
LOOP_LINES = ("init", "batch", "encode", "noise", "z", "loss", "backprop", "update", "until")
_WHERE = {
    JobStatus.IDLE: (("init",), "not started"),
    JobStatus.QUEUED: (("init",), "waiting for a training slot"),
    JobStatus.RUNNING: (LOOP_LINES[1:-1], "running: every line, once per minibatch"),
    JobStatus.PAUSED: (("batch",), "paused: Step or Resume continues here"),
    JobStatus.FINISHED: (("until",), "finished"),
}


def loop_position(status: JobStatus) -> tuple[tuple[str, ...], str]:
    """The pseudocode lines (LOOP_LINES) a job with `status` is on, and a few words saying so; a stopped or
    failed run is on none."""
    return _WHERE.get(status, ((), status.value))
