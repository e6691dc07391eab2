"""Gradient estimators of d/dθ E_{z ~ q(loc, scale)}[f(z)], θ = (loc, scale): score function and pathwise.

q is N(loc, scale²) unless `family` names another posterior family of `vae.families` (Laplace, Logistic,
Student-t: the families a VAE's q(z|x) can have). One signature, documented once (as in deepmind's
mc_gradients); `ESTIMATORS` maps a name to each function:

    estimator(cost, params, num_samples, repetitions=1, *, generator=None, baseline="none", family="gaussian")

* `cost`: z (R, K, *shape) -> per-draw cost (R, K), summing over *shape itself; or, when the leading
  dimensions of `shape` are independent problems (the examples of a VAE's minibatch), one cost per problem,
  (R, K, *shape[:n]). The score function then weighs each example's score by that example's own cost only:
  the other examples' costs have no bearing on it and would only add noise. The estimand is the same: the
  gradient of the summed cost. The score function then multiplies
  each element's score by that whole cost, so the other elements' costs add noise to it (still unbiased): one
  reason it scales badly with dimension, while the pathwise gradient of element i only sees f's slope there.
* `params`: {"loc": tensor, "scale": tensor} of one equal `shape`: () for the toy, (B, D) for a VAE's
  posterior over a minibatch. The tensors may require grad: they are detached, never modified, and their
  `.grad` is never touched (the gradients come from `torch.autograd.grad` on private leaf copies).
* `family`: one of `vae.config.POSTERIOR_FAMILIES`. The pathwise estimator needs the family's reparameterized
  draw z = g(loc, scale, noise) (`Family.transform` of `Family.sample_base`), the score function its log
  density (`Family.log_prob`); fixed shape parameters (Student-t's ν) come from `posterior_params`.
* `num_samples` K: draws averaged into one estimate. `repetitions` R: independent estimates.
* `generator`: the only source of randomness (None means torch's default generator, as in `torch.randn`).
  Both estimators draw their base noise (R, K, *shape) first, so with equally seeded generators they see the
  same draws (common random numbers: the comparison between them is not blurred by different luck).
* `baseline`: one of `BASELINES`, a constant b subtracted from the cost by the score function estimator
  (see `score_function_gradients`); the pathwise estimator needs none, accepts the argument and ignores it.
* returns {"loc": (R, *shape), "scale": (R, *shape)}: R independent estimates (only uncorrelated with a
  moving-average baseline), each the average over K draws of the single-sample estimator, in the params' dtype.
  All R × K draws are one batched computation (no Python loop over repetitions or draws).

The two single-sample estimators (lecture, "the reparameterization trick"; Mohamed et al. 2020, sec. 4-5):

    score function:  (f(z) - b) ∇θ log q(z; loc, scale),   z ~ q(loc, scale)      (REINFORCE, Williams 1992)
    pathwise:        ∇θ f(g(loc, scale, ε)),               ε ~ base noise         (Kingma & Welling 2014)

For the Gaussian g(loc, scale, ε) = loc + scale ε with ε ~ N(0, 1).

The second half of the module is the toy of the variance lab: costs f(z; k) of one scalar z with their exact
gradients (closed form or quadrature) and the exact variance of each single-sample estimator.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
from numpy.polynomial import Polynomial
from scipy import integrate, signal, special

from vae.config import POSTERIOR_FAMILIES
from vae.families import FAMILIES, posterior_params

Cost = Callable[[torch.Tensor], torch.Tensor]  # z (R, K, *shape) -> per-draw cost (R, K) or (R, K, *shape[:n])
Gradients = dict[str, torch.Tensor]  # {"loc": (R, *shape), "scale": (R, *shape)}


class Estimator(Protocol):
    """The shared signature above."""

    def __call__(
        self,
        cost: Cost,
        params: Mapping[str, torch.Tensor],
        num_samples: int,
        repetitions: int = 1,
        *,
        generator: torch.Generator | None = None,
        baseline: str = "none",
        family: str = "gaussian",
    ) -> Gradients: ...


BASELINES = ("none", "moving_average", "optimal")
MOVING_AVERAGE_DECAY = 0.9
PILOT_SAMPLES = 4096  # draws of the pilot batch that estimates the optimal baseline


# ---------------------------------------------------------------------------------------------------------------
# the estimators
# ---------------------------------------------------------------------------------------------------------------


def pathwise_gradients(
    cost: Cost,
    params: Mapping[str, torch.Tensor],
    num_samples: int,
    repetitions: int = 1,
    *,
    generator: torch.Generator | None = None,
    baseline: str = "none",
    family: str = "gaussian",
) -> Gradients:
    """mean_k ∇θ f(g(loc, scale, ε_k)), ε_k ~ base noise: the randomness sits outside θ, so ∇θ moves inside E.

    For the Gaussian, z = loc + scale ε with ε ~ N(0, 1): ∇_loc = f'(z), ∇_scale = f'(z) ε for a scalar z.
    Unbiased whenever f is continuous and differentiable almost everywhere (a kink like |z - k| is fine, a jump
    is not). `baseline` is ignored: subtracting a constant from f changes nothing here, since its gradient is zero.
    """
    loc, scale = _checked(params, baseline, family)
    leaves = _leaves(loc, scale, (repetitions,))  # (R, *shape) each
    eps = _noise(family, loc, (repetitions, num_samples), generator)  # (R, K, *shape)
    z = _draw(family, leaves["loc"].unsqueeze(1), leaves["scale"].unsqueeze(1), eps)  # (R, K, *shape)
    costs = _checked_cost(cost, z)  # (R, K) or (R, K, *shape[:n])
    per_repetition = costs.reshape(*costs.shape[:2], -1).sum(-1).mean(1)  # (R,): summed cost, mean over draws
    if not per_repetition.requires_grad:  # a piecewise-constant f (a step): autograd sees f' = 0 everywhere
        return {name: torch.zeros_like(leaf) for name, leaf in leaves.items()}
    # Repetition r's mean depends only on its own leaf copy, so one grad of the sum gives all R estimates.
    grads = torch.autograd.grad(per_repetition.sum(), (leaves["loc"], leaves["scale"]), materialize_grads=True)
    return {"loc": grads[0], "scale": grads[1]}  # (R, *shape) each


def score_function_gradients(
    cost: Cost,
    params: Mapping[str, torch.Tensor],
    num_samples: int,
    repetitions: int = 1,
    *,
    generator: torch.Generator | None = None,
    baseline: str = "none",
    family: str = "gaussian",
) -> Gradients:
    """mean_k (f(z_k) - b) ∇θ log q(z_k; loc, scale), z_k ~ q(loc, scale) drawn and then detached.

    Uses ∇θ E[f] = E[f ∇θ log q] (the log-derivative trick): f itself is never differentiated, so f may be
    discontinuous or a black box. For a scalar Gaussian z the score is ∇_loc log q = ε / scale and
    ∇_scale log q = (ε² - 1) / scale. Since E[∇θ log q] = 0, any b that does not depend on the draws it
    multiplies keeps the estimator unbiased; a good b lowers its variance. `baseline` chooses b:

    * "none": b = 0.
    * "moving_average": b for repetition r is an exponential moving average (decay 0.9) of the mean cost of
      repetitions 0 .. r-1, bias-corrected as in Adam (b_r = Σ_{j<r} 0.1·0.9^(r-1-j) m_j / (1 - 0.9^r), so b_1
      is m_0 rather than 0.1 m_0), and b_0 = 0. It uses only earlier repetitions, so each estimate is unbiased
      given the ones before it: the R estimates stay uncorrelated (no longer independent). b tends to E[f];
      its own noise adds about Var[f] E[s²] (1 - 0.9) / ((1 + 0.9) K²) to the variance of a K-draw estimate.
    * "optimal": per parameter element, the variance-minimising constant b* = E[f s²] / E[s²] (s the score of
      that element), estimated from an independent pilot batch of 4096 draws taken from the same generator
      AFTER the main draws (so the main draws are the same as with any other baseline): unbiased. All R
      repetitions share that one b*.
    """
    loc, scale = _checked(params, baseline, family)
    eps = _noise(family, loc, (repetitions, num_samples), generator)  # (R, K, *shape)
    costs, scores = _costs_and_scores(cost, family, loc, scale, eps)  # (R, K); (R, K, *shape) each
    b = _BASELINES[baseline](costs, loc.dim(), lambda: _pilot(cost, family, loc, scale, generator))
    weights = _broadcast_cost(costs, loc.dim())  # (R, K, 1, ...)
    return {name: ((weights - b[name]) * s).mean(1) for name, s in scores.items()}  # (R, *shape) each


ESTIMATORS: dict[str, Estimator] = {"pathwise": pathwise_gradients, "score_function": score_function_gradients}


# ---------------------------------------------------------------------------------------------------------------
# shared pieces
# ---------------------------------------------------------------------------------------------------------------


def _checked(params: Mapping[str, torch.Tensor], baseline: str, family: str) -> tuple[torch.Tensor, torch.Tensor]:
    """loc and scale, detached, as floating tensors of one shape; the baseline and family names checked."""
    if baseline not in BASELINES:
        raise ValueError(f"Unknown baseline {baseline!r}; choose one of {', '.join(BASELINES)}.")
    if family not in POSTERIOR_FAMILIES:
        raise ValueError(f"{family!r} is not a posterior family; choose one of {', '.join(POSTERIOR_FAMILIES)}.")
    loc, scale = torch.as_tensor(params["loc"]).detach(), torch.as_tensor(params["scale"]).detach()
    if loc.shape != scale.shape:
        raise ValueError(f"loc and scale must have one shape; got {tuple(loc.shape)} and {tuple(scale.shape)}.")
    if not bool((scale > 0).all()):
        raise ValueError("Every scale must be positive.")
    dtype = loc.dtype if loc.is_floating_point() else torch.get_default_dtype()
    return loc.to(dtype), scale.to(dtype)


def _leaves(loc: torch.Tensor, scale: torch.Tensor, batch: tuple[int, ...]) -> dict[str, torch.Tensor]:
    """Private leaf copies of loc and scale, one per batch index: (*batch, *shape) each."""
    return {name: value.expand(*batch, *value.shape).clone().requires_grad_()
            for name, value in (("loc", loc), ("scale", scale))}


def _noise(family: str, like: torch.Tensor, batch: tuple[int, ...], generator: torch.Generator | None
           ) -> torch.Tensor:
    """The family's base noise (ε ~ N(0, 1) for the Gaussian) of shape (*batch, *like.shape), in like's dtype,
    from `generator` only."""
    return FAMILIES[family].sample_base((*batch, *like.shape), generator, posterior_params(family, like, like))


def _draw(family: str, loc: torch.Tensor, scale: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """z = g(loc, scale, noise), differentiable in loc and scale (loc + scale ε for the Gaussian)."""
    return FAMILIES[family].transform(posterior_params(family, loc, scale), noise)


def _checked_cost(cost: Cost, z: torch.Tensor) -> torch.Tensor:
    """cost(z), checked to be one number per draw, or per draw and leading problem dimension:
    (R, K, *shape) -> (R, K) or (R, K, *shape[:n])."""
    values = cost(z)
    if values.dim() < 2 or values.shape != z.shape[: values.dim()]:
        raise ValueError(f"The cost must return one value per draw, shape {tuple(z.shape[:2])} (or per draw and "
                         f"leading parameter dimension); got {tuple(values.shape)}.")
    return values


def _broadcast_cost(costs: torch.Tensor, dims: int) -> torch.Tensor:
    """(R, K, *shape[:n]) -> (R, K, *shape[:n], 1, ..., 1) with dims - n trailing ones, to multiply
    per-element scores."""
    return costs.reshape(*costs.shape, *([1] * (dims - (costs.dim() - 2))))


def _costs_and_scores(
    cost: Cost, family: str, loc: torch.Tensor, scale: torch.Tensor, eps: torch.Tensor
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Per-draw cost f(z) (R, K) and per-draw score ∇θ log q(z; loc, scale) (R, K, *shape) at z = g(loc, scale, ε).

    z is detached (sampling blocks the gradient); the score comes from autograd through the family's exact log
    density, with one leaf copy of the params per draw so that each draw keeps its own score.
    """
    leaves = _leaves(loc, scale, eps.shape[:2])  # (R, K, *shape) each
    z = _draw(family, loc, scale, eps).detach()  # (R, K, *shape)
    log_q = FAMILIES[family].log_prob(z, posterior_params(family, leaves["loc"], leaves["scale"]))  # (R, K, *shape)
    scores = torch.autograd.grad(log_q.sum(), (leaves["loc"], leaves["scale"]))
    with torch.no_grad():  # f is never differentiated here: no graph through a decoder
        costs = _checked_cost(cost, z)  # (R, K)
    return costs, {"loc": scores[0], "scale": scores[1]}


def _pilot(
    cost: Cost, family: str, loc: torch.Tensor, scale: torch.Tensor, generator: torch.Generator | None
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Costs (1, P) and scores (1, P, *shape) of PILOT_SAMPLES fresh draws."""
    return _costs_and_scores(cost, family, loc, scale, _noise(family, loc, (1, PILOT_SAMPLES), generator))


Pilot = Callable[[], tuple[torch.Tensor, dict[str, torch.Tensor]]]


# A baseline: (costs (R, K), number of parameter dimensions, pilot) -> {"loc": b, "scale": b}, each b
# broadcastable to (R, K, *shape).
Baseline = Callable[[torch.Tensor, int, Pilot], dict[str, torch.Tensor]]


def _zero_baseline(costs: torch.Tensor, dims: int, pilot: Pilot) -> dict[str, torch.Tensor]:
    zero = costs.new_zeros(())
    return {"loc": zero, "scale": zero}


def _moving_average_baseline(costs: torch.Tensor, dims: int, pilot: Pilot) -> dict[str, torch.Tensor]:
    """b_r = bias-corrected EMA of the mean costs m_0 .. m_{r-1}, b_0 = 0 (per problem when the cost gives
    one per problem): (R, *shape[:n]) as (R, 1, *shape[:n], 1, ...)."""
    beta = MOVING_AVERAGE_DECAY
    means = costs.mean(1).double().cpu().numpy()  # m_r, (R, *shape[:n])
    ema = signal.lfilter([1.0 - beta], [1.0, -beta], means, axis=0)  # ema_r = beta ema_{r-1} + (1 - beta) m_r
    correction = 1.0 - beta ** np.arange(1, len(means) + 1)  # bias correction: weights sum to one
    ema /= correction.reshape(-1, *([1] * (means.ndim - 1)))
    b = np.concatenate([np.zeros_like(ema[:1]), ema[:-1]])  # shift: repetition r sees only m_0 .. m_{r-1}
    b = _broadcast_cost(torch.as_tensor(b, dtype=costs.dtype, device=costs.device).unsqueeze(1), dims)
    return {"loc": b, "scale": b}


def _optimal_baseline(costs: torch.Tensor, dims: int, pilot: Pilot) -> dict[str, torch.Tensor]:
    """b* = E[f s²] / E[s²] per parameter element, from the pilot batch: (*shape) each."""
    pilot_costs, pilot_scores = pilot()  # (1, P); (1, P, *shape)
    weights = _broadcast_cost(pilot_costs, dims)  # (1, P, 1, ...)
    return {name: (weights * s**2).sum((0, 1)) / (s**2).sum((0, 1)) for name, s in pilot_scores.items()}


_BASELINES: dict[str, Baseline] = {
    "none": _zero_baseline,
    "moving_average": _moving_average_baseline,
    "optimal": _optimal_baseline,
}


# ---------------------------------------------------------------------------------------------------------------
# the toy of the variance lab: f(z; k) with z ~ N(mu, sigma²) a scalar
# ---------------------------------------------------------------------------------------------------------------

Elementwise = Callable[[torch.Tensor, float], torch.Tensor]  # (z, k) -> f(z; k), elementwise
_SHARP = ("With large k the score function can beat the pathwise estimator: f' oscillates or is sharply peaked "
          "while f stays bounded.")


@dataclass(frozen=True)
class ToyCost:
    """A cost f(z; k) of one scalar z, with its derivative f' (for the quadrature) and what it teaches.

    `gradient(mu, sigma, k)` is the closed form of (d/dmu, d/dsigma) E[f] where one exists; `polynomial(k)` gives
    f's coefficients in z (lowest first) where f is a polynomial, which makes every variance closed form too;
    `kinks(k)` lists the z where f is not smooth (breakpoints for the quadrature).
    """

    name: str
    latex: str
    f: Elementwise
    df: Elementwise
    note: str
    gradient: Callable[[float, float, float], tuple[float, float]] | None = None
    polynomial: Callable[[float], Sequence[float]] | None = None
    kinks: Callable[[float], Sequence[float]] = lambda k: ()
    pathwise_unbiased: bool = True  # False where f jumps: f' misses the jump's contribution
    default_k: float = 1.0
    k_range: tuple[float, float] = (0.0, 5.0)


def _gauss_exp_gradient(mu: float, sigma: float, k: float) -> tuple[float, float]:
    """E exp(-k z²) = exp(-k mu²/c) / sqrt(c), c = 1 + 2k sigma², differentiated (dc/dsigma = 4k sigma)."""
    c = 1.0 + 2.0 * k * sigma**2
    value = math.exp(-k * mu**2 / c) / math.sqrt(c)
    return value * (-2.0 * k * mu / c), value * 4.0 * k * sigma * (k * mu**2 / c**2 - 0.5 / c)


def _cos_gradient(mu: float, sigma: float, k: float) -> tuple[float, float]:
    """E cos(kz) = cos(k mu) exp(-k² sigma²/2) (the real part of the characteristic function)."""
    damping = math.exp(-(k**2) * sigma**2 / 2.0)
    return -k * math.sin(k * mu) * damping, -(k**2) * sigma * math.cos(k * mu) * damping


def _exp_gradient(mu: float, sigma: float, k: float) -> tuple[float, float]:
    """E exp(kz) = exp(k mu + k² sigma²/2) (the moment generating function)."""
    value = math.exp(k * mu + k**2 * sigma**2 / 2.0)
    return k * value, k**2 * sigma * value


def _abs_gradient(mu: float, sigma: float, k: float) -> tuple[float, float]:
    """E|z - k| = sigma sqrt(2/pi) exp(-a²/2sigma²) + a (1 - 2 Phi(-a/sigma)), a = mu - k (folded normal mean)."""
    t = (mu - k) / sigma
    return 2.0 * special.ndtr(t) - 1.0, 2.0 * math.exp(-(t**2) / 2.0) / math.sqrt(2.0 * math.pi)


def _step_gradient(mu: float, sigma: float, k: float) -> tuple[float, float]:
    """E 1[z > k] = Phi((mu - k)/sigma)."""
    t = (mu - k) / sigma
    density = math.exp(-(t**2) / 2.0) / math.sqrt(2.0 * math.pi)
    return density / sigma, -t * density / sigma


COSTS: dict[str, ToyCost] = {
    "(z-k)^2": ToyCost(
        "(z-k)^2", r"(z-k)^2", lambda z, k: (z - k) ** 2, lambda z, k: 2.0 * (z - k),
        "The lecture's example: f' is linear in z, so the pathwise estimator is far less noisy than the score "
        "function, which multiplies the large, noisy f by the score.",
        gradient=lambda mu, sigma, k: (2.0 * (mu - k), 2.0 * sigma), polynomial=lambda k: (k**2, -2.0 * k, 1.0),
        k_range=(-3.0, 3.0),
    ),
    "z": ToyCost(
        "z", r"z", lambda z, k: z.clone(), lambda z, k: torch.ones_like(z),
        "k plays no part: the pathwise estimate for mu is exactly 1 with zero variance, while the score function, "
        "blind to f being linear, has variance 2 + mu²/sigma².",
        gradient=lambda mu, sigma, k: (1.0, 0.0), polynomial=lambda k: (0.0, 1.0),
    ),
    "exp(-k z^2)": ToyCost(
        "exp(-k z^2)", r"e^{-k z^2}", lambda z, k: torch.exp(-k * z**2),
        lambda z, k: -2.0 * k * z * torch.exp(-k * z**2), _SHARP, gradient=_gauss_exp_gradient, k_range=(0.0, 20.0),
    ),
    "cos(k z)": ToyCost(
        "cos(k z)", r"\cos(k z)", lambda z, k: torch.cos(k * z), lambda z, k: -k * torch.sin(k * z), _SHARP,
        gradient=_cos_gradient, k_range=(0.0, 10.0),
    ),
    "exp(k z)": ToyCost(
        "exp(k z)", r"e^{k z}", lambda z, k: torch.exp(k * z), lambda z, k: k * torch.exp(k * z),
        "Heavy tailed: once k sigma is large, both estimators' variance grows like exp(2 k² sigma²), exploding "
        "with sigma and k, and empirical variances settle slowly (keep k sigma below about 1).",
        gradient=_exp_gradient, default_k=0.5, k_range=(-2.0, 2.0),
    ),
    "|z-k|": ToyCost(
        "|z-k|", r"|z-k|", lambda z, k: (z - k).abs(), lambda z, k: torch.sign(z - k),
        "f has a kink at z = k where f' jumps from -1 to 1, yet the pathwise estimator stays unbiased because f "
        "is continuous.",
        gradient=_abs_gradient, kinks=lambda k: (k,), k_range=(-3.0, 3.0),
    ),
    "1[z>k]": ToyCost(
        "1[z>k]", r"\mathbb{1}[z>k]", lambda z, k: (z > k).to(z.dtype), lambda z, k: torch.zeros_like(z),
        "f jumps at z = k and f' = 0 everywhere else: the pathwise estimator returns 0 for every draw and is "
        "biased, while the score function, which never differentiates f, stays unbiased.",
        gradient=_step_gradient, kinks=lambda k: (k,), pathwise_unbiased=False, k_range=(-3.0, 3.0),
    ),
}


def toy_cost(name: str) -> ToyCost:
    """The registered cost, or a ValueError whose message lists the choices."""
    if name not in COSTS:
        raise ValueError(f"Unknown cost {name!r}; choose one of: {', '.join(COSTS)}.")
    return COSTS[name]


def cost_function(name: str, k: float) -> Cost:
    """The toy cost as a `Cost`: f applied elementwise, then summed over the parameter dimensions.

    For scalar params z is (R, K) and the result is f(z) itself; for params of shape S it is the sum of
    independent toy costs, one per element.
    """
    f = toy_cost(name).f

    def cost(z: torch.Tensor) -> torch.Tensor:
        return f(z, k).reshape(*z.shape[:2], -1).sum(-1)  # (R, K, *shape) -> (R, K)

    return cost


# -- exact values: expectations over eps ~ N(0, 1) of h(f(z), f'(z), eps), z = mu + sigma eps --------------------

QUAD_LIMIT = 12.0  # integrate eps over [-12, 12]: the Gaussian mass outside is below 1e-32
Integrand = Callable  # h(f, df, eps) -> value; floats for the quadrature, numpy Polynomials for the closed form
Expectation = Callable[[Integrand], float]

# The score of N(mu, sigma²) at z = mu + sigma eps: d/dmu log q = eps/sigma, d/dsigma log q = (eps² - 1)/sigma.
_SCORES = {"loc": lambda eps, sigma: eps / sigma, "scale": lambda eps, sigma: (eps**2 - 1.0) / sigma}


def _pathwise_single(sigma: float, b: Mapping[str, float]) -> dict[str, Integrand]:
    """f'(z) dz/dtheta, with dz/dmu = 1 and dz/dsigma = eps (b is ignored)."""
    return {"loc": lambda f, df, eps: df, "scale": lambda f, df, eps: df * eps}


def _score_single(sigma: float, b: Mapping[str, float]) -> dict[str, Integrand]:
    """(f(z) - b) times the score."""
    return {name: (lambda f, df, eps, s=score, c=b[name]: (f - c) * s(eps, sigma)) for name, score in _SCORES.items()}


# The single-sample estimator for loc and for scale as a function of (f, f', eps), per estimator.
_SINGLE_SAMPLE: dict[str, Callable[[float, Mapping[str, float]], dict[str, Integrand]]] = {
    "pathwise": _pathwise_single,
    "score_function": _score_single,
}


def _quad_expectation(toy: ToyCost, mu: float, sigma: float, k: float) -> Expectation:
    """E[h] = integral of h(f, f', eps) N(eps; 0, 1) over [-12, 12], with breakpoints where f is not smooth."""
    points = sorted(e for e in ((c - mu) / sigma for c in toy.kinks(k)) if abs(e) < QUAD_LIMIT) or None

    def integrand(eps: float, h: Integrand) -> float:
        z = torch.tensor(mu + sigma * eps, dtype=torch.float64)
        return h(float(toy.f(z, k)), float(toy.df(z, k)), eps) * math.exp(-(eps**2) / 2.0) / math.sqrt(2 * math.pi)

    def expect(h: Integrand) -> float:
        value, _ = integrate.quad(integrand, -QUAD_LIMIT, QUAD_LIMIT, args=(h,), points=points, limit=400,
                                  epsabs=1e-13, epsrel=1e-11)
        return value

    return expect


def _polynomial_expectation(toy: ToyCost, mu: float, sigma: float, k: float) -> Expectation:
    """E[h] in closed form for a polynomial f: h is a polynomial in eps, and E[eps^n] = (n-1)!! for even n, else 0."""
    f = Polynomial(toy.polynomial(k))
    z, eps = Polynomial([mu, sigma]), Polynomial([0.0, 1.0])
    f_eps, df_eps = f(z), f.deriv()(z)

    def expect(h: Integrand) -> float:
        coef = np.atleast_1d(np.asarray(getattr(value := h(f_eps, df_eps, eps), "coef", value), dtype=float))
        moments = np.ones(len(coef))
        for n in range(1, len(coef)):
            moments[n] = (n - 1) * moments[n - 2] if n % 2 == 0 else 0.0
        return float(coef @ moments)

    return expect


def _check_exact(method: str, sigma: float) -> None:
    if method not in ("auto", "closed_form", "quad"):
        raise ValueError(f"Unknown method {method!r}; choose auto, closed_form or quad.")
    if not sigma > 0:
        raise ValueError(f"sigma must be positive; got {sigma}.")


def _expectation(toy: ToyCost, mu: float, sigma: float, k: float, method: str) -> Expectation:
    _check_exact(method, sigma)
    if method == "quad" or (method == "auto" and toy.polynomial is None):
        return _quad_expectation(toy, mu, sigma, k)
    if toy.polynomial is None:
        raise ValueError(f"{toy.name} is not a polynomial: its variances have no closed form here; use quad.")
    return _polynomial_expectation(toy, mu, sigma, k)


def exact_gradient(name: str, mu: float, sigma: float, k: float, *, method: str = "auto") -> dict[str, float]:
    """(d/dmu, d/dsigma) E_{z ~ N(mu, sigma²)}[f(z; k)] as {"loc", "scale"}.

    "auto" uses the closed form where the cost has one (differentiate E[f]: e.g. E cos(kz) = cos(k mu)
    exp(-k² sigma²/2)), else "quad": the score-function identity E[f(z) score] integrated over eps, which holds
    for every f here, steps included.
    """
    toy = toy_cost(name)
    _check_exact(method, sigma)
    if method != "quad" and toy.gradient is not None:
        loc, scale = toy.gradient(float(mu), float(sigma), float(k))
        return {"loc": float(loc), "scale": float(scale)}
    if method == "closed_form":
        raise ValueError(f"{name} has no closed-form gradient here; use quad.")
    expect = _expectation(toy, float(mu), float(sigma), float(k), "quad")
    return {param: expect(lambda f, df, eps, s=score: f * s(eps, sigma)) for param, score in _SCORES.items()}


def exact_variance(
    name: str, estimator: str, mu: float, sigma: float, k: float, baseline: str = "none", *, method: str = "auto"
) -> dict[str, float]:
    """Var[g] = E[(g - E g)²] of the SINGLE-sample estimator g, for loc and for scale ({"loc", "scale"}).

    With z = mu + sigma eps:  pathwise  g_loc = f'(z),                g_scale = f'(z) eps;
                              score     g_loc = (f(z) - b) eps/sigma, g_scale = (f(z) - b)(eps² - 1)/sigma.
    The average of K draws has variance Var[g]/K. Baselines: "none" b = 0; "moving_average" b = E[f], the value
    the moving average converges to (the estimator's own b is a little noisy, so its variance is a little higher:
    see `score_function_gradients`); "optimal" b* = E[f s²]/E[s²] per parameter, exact (b*_loc = E[f eps²],
    b*_scale = E[f (eps²-1)²]/2).
    "auto" is closed form for polynomial costs ((z-k)^2, z: moments of eps), quadrature otherwise.
    """
    if estimator not in ESTIMATORS:
        raise ValueError(f"Unknown estimator {estimator!r}; choose one of {', '.join(ESTIMATORS)}.")
    if baseline not in BASELINES:
        raise ValueError(f"Unknown baseline {baseline!r}; choose one of {', '.join(BASELINES)}.")
    loc, scale = _exact_variance(name, estimator, float(mu), float(sigma), float(k), baseline, method)
    return {"loc": loc, "scale": scale}


@functools.lru_cache(maxsize=4096)  # sliders revisit the same settings; the quadratures take tens of ms
def _exact_variance(
    name: str, estimator: str, mu: float, sigma: float, k: float, baseline: str, method: str
) -> tuple[float, float]:
    expect = _expectation(toy_cost(name), mu, sigma, k, method)
    singles = _SINGLE_SAMPLE[estimator](sigma, _EXACT_BASELINES[baseline](expect, sigma))
    variances = []
    for g in (singles["loc"], singles["scale"]):
        mean = expect(g)
        variances.append(expect(lambda f, df, eps, g=g, m=mean: (g(f, df, eps) - m) ** 2))  # centred: no cancellation
    return variances[0], variances[1]


def _exact_zero_baseline(expect: Expectation, sigma: float) -> dict[str, float]:
    return {"loc": 0.0, "scale": 0.0}


def _exact_mean_baseline(expect: Expectation, sigma: float) -> dict[str, float]:
    """b = E[f]: where the moving average settles."""
    mean_cost = expect(lambda f, df, eps: f)
    return {"loc": mean_cost, "scale": mean_cost}


def _exact_optimal_baseline(expect: Expectation, sigma: float) -> dict[str, float]:
    """b* = E[f s²] / E[s²] for each parameter's score s."""
    return {name: expect(lambda f, df, eps, s=score: f * s(eps, sigma) ** 2)
            / expect(lambda f, df, eps, s=score: s(eps, sigma) ** 2) for name, score in _SCORES.items()}


_EXACT_BASELINES: dict[str, Callable[[Expectation, float], dict[str, float]]] = {
    "none": _exact_zero_baseline,
    "moving_average": _exact_mean_baseline,
    "optimal": _exact_optimal_baseline,
}
