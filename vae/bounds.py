"""How tight is the ELBO? The importance-weighted bound L_K (Burda et al. 2016) beside it, and what a tighter bound
does to the encoder's gradients (Rainforth et al. 2018).

For any q(z|x), log p(x) = E_q[log p(x, z) / q(z|x)] + KL(q(z|x) || p(z|x)): the first term is the ELBO, so

    log p(x) - ELBO = KL(q(z|x) || p(z|x)) >= 0,

the gap is exactly how far the encoder's q(z|x) is from the true posterior p(z|x) = p(x|z) p(z) / p(x). Averaging
K importance weights w_k = p(x, z_k) / q(z_k|x), z_k ~ q(z|x), inside the log gives

    L_K = E[log (1/K) sum_k w_k],

with L_1 = ELBO, L_K <= L_{K+1} <= log p(x) (Burda et al. 2016, Theorem 1: the mean of more weights is less
spread, so Jensen's inequality loses less), and L_K -> log p(x) as K grows (for bounded weights). log w_k =
log p(x|z_k) + log p(z_k) - log q(z_k|x) uses the model's own likelihood, prior and posterior family, so the
bound holds for every family of vae.families and both likelihoods.

The price (Rainforth et al. 2018, "Tighter variational bounds are not necessarily better"): as K grows, the
encoder's gradient of L_K shrinks faster than its noise, its signal-to-noise ratio falls like 1/sqrt(K), while
the decoder's rises like sqrt(K). `gradient_snr` measures both on the same model.

Every value is in nats per example, like the library's ELBO (vae.elbo). Shapes: S draws per example, B examples,
L latent dimensions, D pixels (K is the number of importance samples here, not the latent size).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from vae.elbo import elbo_terms
from vae.encoder_gradients import ENCODER_PREFIXES, gradient_noise
from vae.families import posterior_rsample
from vae.kl import monte_carlo_kl
from vae.model import VAE

MAX_K = 100_000  # importance samples per example: a cap on the work one call (the CLI's --k) may ask for
DRAW_BUDGET = 2**22  # latent values drawn at once (16 MB in float32): sets how many examples share one pass
ROW_BUDGET = 2**14  # rows through the decoder at once (MNIST's 784 pixels: about 50 MB of outputs)


def log_weights(model: VAE, x: torch.Tensor, z: torch.Tensor, loc: torch.Tensor, scale: torch.Tensor
                ) -> torch.Tensor:
    """log w = log p(x|z) + log p(z) - log q(z|x) for draws z (S, B, L) of q = family(loc, scale) (B, L): (S, B)."""
    log_likelihood = model.likelihood(model.decode(z)).log_prob(x)  # (S, B, D) -> (S, B)
    return log_likelihood - monte_carlo_kl(model.config.posterior, loc, scale, z)  # log q - log p: (S, B)


def draw_posterior(model: VAE, x: torch.Tensor, count: int, generator: torch.Generator | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """z (count, B, L) ~ q(z|x), by reparameterization (differentiable in the encoder), with its loc and scale."""
    loc, scale = model.encode(x)  # (B, L) each
    shape = (count, *loc.shape)
    return posterior_rsample(model.config.posterior, loc.expand(shape), scale.expand(shape), generator), loc, scale


def log_mean_exp(values: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """log (1/K) sum_k exp(values_k) along `dim`, without overflow."""
    return torch.logsumexp(values, dim) - math.log(values.shape[dim])


class GroupedLogMeanExp:
    """Log weights arrive in chunks of draws (S, B); consecutive draws form groups of k, and each example's
    estimate of L_k is the mean, over its complete groups, of log (1/k) sum_group w. A group that spans chunks
    carries its running logsumexp across them, so the result does not depend on the chunk size."""

    def __init__(self, k: int, batch: int) -> None:
        self.k = k
        self.total = torch.zeros(batch, dtype=torch.float64)  # sum over complete groups of logsumexp
        self.groups = 0
        self._reset_carry(batch)

    def _reset_carry(self, batch: int) -> None:
        self.carry, self.carried = torch.full((batch,), -math.inf, dtype=torch.float64), 0

    def add(self, chunk: torch.Tensor) -> None:
        chunk = chunk.double()
        if self.carried:  # first complete the group the last chunk left open
            missing = self.k - self.carried
            self._carry(chunk[:missing])
            chunk = chunk[missing:]
        whole = len(chunk) // self.k * self.k
        groups = chunk[:whole].reshape(-1, self.k, chunk.shape[1]).logsumexp(1)  # (G, B)
        self.total += groups.sum(0)
        self.groups += len(groups)
        self._carry(chunk[whole:])

    def _carry(self, part: torch.Tensor) -> None:
        if len(part):
            self.carry = torch.logaddexp(self.carry, part.logsumexp(0))
            self.carried += len(part)
        if self.carried == self.k:
            self.total += self.carry
            self.groups += 1
            self._reset_carry(len(self.total))

    def estimates(self) -> torch.Tensor:
        """(B,) per-example estimates of L_k."""
        if not self.groups:
            raise ValueError(f"No complete group of {self.k} draws was added.")
        return self.total / self.groups - math.log(self.k)


@dataclass(frozen=True)
class BoundCurve:
    """Estimates of L_K for each K in `ks`, on the same examples and the same draws."""

    ks: tuple[int, ...]
    per_example: np.ndarray  # (len(ks), N): per example, the mean over max(ks) // K disjoint groups of K draws

    @property
    def bounds(self) -> np.ndarray:
        """(len(ks),) L_K, mean over the examples."""
        return self.per_example.mean(axis=1)

    @property
    def stderrs(self) -> np.ndarray:
        """(len(ks),) the standard error of each mean over the examples (0 for one example)."""
        return _stderr(self.per_example)

    def gains(self) -> tuple[np.ndarray, np.ndarray]:
        """L_K - L_{first K} (the first K is usually 1: the gain over the ELBO) and its standard error, paired
        by example: far smaller than the bounds' own, which mostly measure how the examples differ."""
        differences = self.per_example - self.per_example[:1]  # (len(ks), N)
        return differences.mean(axis=1), _stderr(differences)


def _stderr(values: np.ndarray) -> np.ndarray:
    """(J, N) -> (J,) the standard error of each row's mean (0 for one column)."""
    count = values.shape[1]
    return values.std(axis=1, ddof=1) / math.sqrt(count) if count > 1 else np.zeros(len(values))


def check_ks(ks: Sequence[int]) -> tuple[int, ...]:
    """The Ks as a sorted tuple; ValueError with a sentence unless each is a whole number from 1 to MAX_K."""
    if not ks or any(isinstance(k, bool) or int(k) != k or not 1 <= k <= MAX_K for k in ks):
        raise ValueError(f"Each K must be a whole number from 1 to {MAX_K:,}; got {list(ks)}.")
    return tuple(sorted({int(k) for k in ks}))


@torch.no_grad()
def importance_weighted_bounds(model: VAE, x: torch.Tensor | np.ndarray, ks: Sequence[int], seed: int = 0,
                               samples_per_chunk: int | None = None) -> BoundCurve:
    """L_K for each K in `ks` on the examples x (N, D): max(ks) draws per example, shared by every K (each K
    splits them into disjoint groups of K, so small K average many estimates). The draws are made per batch of
    examples (DRAW_BUDGET), then decoded `samples_per_chunk` draws at a time (default: ROW_BUDGET rows), the
    logsumexp of each group accumulated across chunks: K = 1000 on hundreds of examples fits in tens of MB."""
    ks = check_ks(ks)
    x = torch.as_tensor(x, dtype=torch.float32)
    generator = torch.Generator().manual_seed(seed)
    batch = max(1, DRAW_BUDGET // (ks[-1] * model.config.latent_dim))
    rows = [_batch_bounds(model, part, ks, generator, samples_per_chunk) for part in torch.split(x, batch)]
    return BoundCurve(ks, torch.cat(rows, dim=1).numpy())


def _batch_bounds(model: VAE, x: torch.Tensor, ks: tuple[int, ...], generator: torch.Generator,
                  samples_per_chunk: int | None) -> torch.Tensor:
    """(len(ks), B) estimates for one batch of examples."""
    # All the draws first, (max K, B, L): the chunk size then cannot change them.
    z, loc, scale = draw_posterior(model, x, ks[-1], generator)
    accumulators = [GroupedLogMeanExp(k, len(x)) for k in ks]
    for chunk in torch.split(z, samples_per_chunk or max(1, ROW_BUDGET // len(x))):
        weights = log_weights(model, x, chunk, loc, scale)  # (S, B)
        for accumulator in accumulators:
            accumulator.add(weights)
    return torch.stack([accumulator.estimates() for accumulator in accumulators])


@torch.no_grad()
def elbo_per_example(model: VAE, x: torch.Tensor | np.ndarray, draws: int = 100, seed: int = 0) -> np.ndarray:
    """The library's ELBO (vae.elbo: E_q[log p(x|z)] - KL, the KL analytic where torch has it), per example (N,),
    averaged over `draws` draws of z each."""
    x = torch.as_tensor(x, dtype=torch.float32)
    generator = torch.Generator().manual_seed(seed)
    per_pass = max(1, ROW_BUDGET // len(x))  # draws of every example in one pass
    totals = torch.zeros(len(x), dtype=torch.float64)
    for start in range(0, draws, per_pass):
        repeats = min(per_pass, draws - start)
        elbo = elbo_terms(model, x.repeat(repeats, 1), generator).elbo  # (repeats * N,)
        totals += elbo.double().reshape(repeats, len(x)).sum(0)
    return (totals / draws).numpy()


# ---------------------------------------------------------------------------------------------------------------
# Rainforth et al. 2018: the signal-to-noise ratio of the gradients of L_K
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GradientSNR:
    """SNR = |E[g]| / std(g) of the gradient g of L_K, per weight, averaged over the encoder's (or the decoder's)
    weights; E and std over `repetitions` independent estimates on the same model and minibatch."""

    ks: tuple[int, ...]
    encoder: np.ndarray  # (len(ks),)
    decoder: np.ndarray  # (len(ks),)
    repetitions: int

    @property
    def noise_floor(self) -> float:
        """What this measurement reads for a gradient with no signal at all: see `snr_noise_floor`."""
        return snr_noise_floor(self.repetitions)


def snr_noise_floor(repetitions: int) -> float:
    """E[|mean| / std] of R draws of a zero-mean Gaussian: the SNR measured for pure noise, below which a measured
    SNR says nothing. mean / std = T / sqrt(R) with T ~ Student-t(R - 1), and E|T_nu| = 2 sqrt(nu) Gamma((nu+1)/2)
    / (sqrt(pi) (nu - 1) Gamma(nu/2)); about sqrt(2 / (pi R)) for large R."""
    if repetitions < 3:
        return math.inf  # E|T_1| diverges (Cauchy)
    nu = repetitions - 1
    log_mean_abs_t = math.log(2 * math.sqrt(nu) / (math.sqrt(math.pi) * (nu - 1))) + math.lgamma((nu + 1) / 2) \
        - math.lgamma(nu / 2)
    return math.exp(log_mean_abs_t) / math.sqrt(repetitions)


def gradient_snr(model: VAE, x: torch.Tensor | np.ndarray, ks: Sequence[int], repetitions: int = 32,
                 seed: int = 0) -> GradientSNR:
    """For each K, `repetitions` estimates of the gradient of (1/B) sum_b L_K(x_b) on the minibatch x (B, D), each
    from fresh draws z ~ q(z|x), K per example (reparameterized, as IWAE trains); the model is not modified."""
    ks = check_ks(ks)
    if repetitions < 2:
        raise ValueError("A signal-to-noise ratio needs at least 2 repetitions.")
    x = torch.as_tensor(x, dtype=torch.float32)
    trainable, is_encoder = _trainable_copy(model)
    generator = torch.Generator().manual_seed(seed)
    encoder, decoder = [], []
    for k in ks:
        samples = torch.stack([_gradient(trainable, x, k, generator) for _ in range(repetitions)])  # (R, P)
        encoder.append(_snr(samples[:, is_encoder]))
        decoder.append(_snr(samples[:, ~is_encoder]))
    return GradientSNR(ks, np.array(encoder), np.array(decoder), repetitions)


def _trainable_copy(model: VAE) -> tuple[VAE, torch.Tensor]:
    """A private copy whose weights require grad (the caller's model may be shared by a cache, or frozen as the
    live run's copy is), and a mask (P,) over its flattened weights: True for the encoder's phi."""
    trainable = copy.deepcopy(model).requires_grad_(True)
    masks = [torch.full((p.numel(),), name.startswith(ENCODER_PREFIXES)) for name, p in trainable.named_parameters()]
    return trainable, torch.cat(masks)


def _gradient(model: VAE, x: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """One estimate of d/d(phi, theta) of (1/B) sum_b log (1/k) sum_k w_bk, flattened: (P,)."""
    with torch.enable_grad():
        z, loc, scale = draw_posterior(model, x, k, generator)  # (k, B, L)
        bound = log_mean_exp(log_weights(model, x, z, loc, scale)).mean()
        gradients = torch.autograd.grad(bound, list(model.parameters()))
    return torch.cat([g.reshape(-1) for g in gradients])


def _snr(samples: torch.Tensor) -> float:
    """(R, n) estimates of n weights' gradients -> the mean over the weights of |mean| / std."""
    return gradient_noise({"weights": samples})[0].snr
