"""The estimator question inside a real VAE: how noisy is each estimate of the encoder's gradient?

The gradient of the reconstruction term E_q[log p(x|z)] with respect to the encoder's weights phi needs an
estimator (the KL term is the same whichever estimator the reconstruction uses, so it is left out).
`vae.estimators` estimates d/d(loc, scale) of that expectation for the model's own posterior family (Gaussian,
Laplace, Logistic or Student-t: the pathwise estimator draws z with the family's reparameterization, the score
function weighs by the family's log density); the chain rule through the encoder,

    dL/dphi = (d loc/d phi)^T g_loc + (d scale/d phi)^T g_scale,

is one vector-Jacobian product per repetition, batched with torch.func.vmap: R repetitions cost one pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.func import functional_call, vjp, vmap

from vae.categorical import categorical_terms
from vae.estimators import ESTIMATORS
from vae.model import VAE

ENCODER_PREFIXES = ("encoder.", "to_loc.", "to_log_var.", "to_logits.")


def encoder_parameters(model: VAE) -> dict[str, torch.Tensor]:
    """The encoder's weights phi, detached (the estimators produce their gradients, not autograd's .grad)."""
    return {name: p.detach() for name, p in model.named_parameters() if name.startswith(ENCODER_PREFIXES)}


def encoder_gradient_samples(
    model: VAE,
    x: torch.Tensor,
    estimator: str,
    repetitions: int,
    *,
    generator: torch.Generator | None = None,
    baseline: str = "none",
) -> dict[str, torch.Tensor]:
    """R independent estimates of d/dphi of (1/B) sum_b E_q[log p(x_b|z)], one draw of z per example:
    {parameter name: (R, *parameter shape)}. x (B, D) is one fixed minibatch. The cost is given per example,
    so the score function weighs each example's score by its own reconstruction (standard REINFORCE). q(z|x) is
    the model's posterior family (`model.config.posterior`)."""
    with torch.enable_grad():  # the estimators differentiate, even when the caller is in a no_grad block
        return _encoder_gradient_samples(model, x, estimator, repetitions, generator, baseline)


def _encoder_gradient_samples(model: VAE, x: torch.Tensor, estimator: str, repetitions: int,
                              generator: torch.Generator | None, baseline: str) -> dict[str, torch.Tensor]:
    phi = encoder_parameters(model)
    (loc, scale), pullback = vjp(lambda params: functional_call(model, params, (x,)), phi)  # (B, K) each

    def reconstruction(z: torch.Tensor) -> torch.Tensor:  # z (R, S, B, K) -> (R, S, B): one cost per example
        return model.likelihood(model.decode(z)).log_prob(x) / len(x)

    estimates = ESTIMATORS[estimator](reconstruction, {"loc": loc.detach(), "scale": scale.detach()}, 1,
                                      repetitions, generator=generator, baseline=baseline,
                                      family=model.config.posterior)  # (R, B, K) each
    (gradients,) = vmap(pullback)((estimates["loc"], estimates["scale"]))
    return gradients


def categorical_gradient_samples(
    model: VAE,
    x: torch.Tensor,
    estimator: str,
    repetitions: int,
    *,
    generator: torch.Generator | None = None,
    temperature: float = 1.0,
    baseline: torch.Tensor | float = 0.0,
) -> dict[str, torch.Tensor]:
    """`encoder_gradient_samples` for a categorical z: R estimates of d/dphi of (1/B) sum_b E_q[log p(x_b|z)], each
    from one draw per variable and example, made as training makes them (`vae.categorical.categorical_terms`): the
    Gumbel-softmax ("pathwise") and straight-through estimators at `temperature`, the score function against
    `baseline`. A draw through argmax has no vmap-able transform: one autograd pass per repetition."""
    phi = {name: p for name, p in model.named_parameters() if name.startswith(ENCODER_PREFIXES)}
    estimates: dict[str, list[torch.Tensor]] = {name: [] for name in phi}
    with torch.enable_grad():
        for _ in range(repetitions):
            reconstruction, _, surrogate = categorical_terms(model, x, generator, estimator, baseline, temperature)
            objective = reconstruction.mean() if surrogate is None else (reconstruction + surrogate).mean()
            for name, gradient in zip(phi, torch.autograd.grad(objective, list(phi.values())), strict=True):
                estimates[name].append(gradient)
    return {name: torch.stack(values) for name, values in estimates.items()}


@dataclass(frozen=True)
class TensorNoise:
    """How noisy the estimates of one weight tensor's gradient are, averaged over its elements."""

    name: str
    size: int
    variance: float  # mean over elements of the variance across repetitions
    snr: float  # mean over elements of |mean| / standard deviation (signal-to-noise ratio)


def gradient_noise(samples: dict[str, torch.Tensor]) -> list[TensorNoise]:
    """Per tensor: variance and signal-to-noise ratio of R gradient estimates (R, *shape)."""
    rows = []
    for name, values in samples.items():
        values = values.double().flatten(1)  # (R, n)
        mean, std = values.mean(0), values.std(0)
        ratio = (mean.abs() / std)[std > 0]
        snr = float(ratio.mean()) if ratio.numel() else float("inf")
        rows.append(TensorNoise(name, values.shape[1], float(values.var(0).mean()), snr))
    return rows


def mean_variance(samples: dict[str, torch.Tensor]) -> float:
    """Variance per gradient element, averaged over every encoder weight: one number to plot over training."""
    total = sum(float(v.double().flatten(1).var(0).sum()) for v in samples.values())
    return total / sum(v[0].numel() for v in samples.values())


def noise_table(pathwise: list[TensorNoise], score: list[TensorNoise]) -> dict[str, np.ndarray]:
    """Columns for a table comparing the two estimators tensor by tensor."""
    return {
        "tensor": np.array([row.name for row in pathwise]),
        "size": np.array([row.size for row in pathwise]),
        "variance (pathwise)": np.array([row.variance for row in pathwise]),
        "variance (score function)": np.array([row.variance for row in score]),
        "ratio": np.array([s.variance / p.variance if p.variance else np.inf for p, s in zip(pathwise, score,
                                                                                              strict=True)]),
        "SNR (pathwise)": np.array([row.snr for row in pathwise]),
        "SNR (score function)": np.array([row.snr for row in score]),
    }


def encoder_noise_comparison(model: VAE, x: torch.Tensor | np.ndarray, repetitions: int,
                             baseline: str = "moving_average", seed: int = 0) -> dict[str, np.ndarray]:
    """`noise_table` of the pathwise and the score-function estimators (the two the table compares) on one fixed
    minibatch x (B, D), R repetitions each, equally seeded."""
    x = torch.as_tensor(x, dtype=torch.float32)
    rows = {name: gradient_noise(encoder_gradient_samples(model, x, name, repetitions, baseline=baseline,
                                                          generator=torch.Generator().manual_seed(seed)))
            for name in ("pathwise", "score_function")}
    return noise_table(rows["pathwise"], rows["score_function"])
