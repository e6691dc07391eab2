"""Gradient estimators of d/dθ E_{z ~ q(loc, scale)}[f(z)], θ = (loc, scale): score function, pathwise and
measure-valued (the three families of Mohamed et al. 2020).

q is N(loc, scale²) unless `family` names another posterior family of `vae.families` (Laplace, Logistic,
Student-t: the families a VAE's q(z|x) can have). One signature, documented once (as in deepmind's
mc_gradients); `ESTIMATORS` maps a name to each function:

    estimator(cost, params, num_samples, repetitions=1, *, generator=None, baseline="none", family="gaussian")

* `cost`: z (R, K, *shape) -> per-draw cost, in one of two shapes. (R, K): one cost per draw, summing over
  *shape itself; the score function then multiplies every element's score by that whole cost, so the other
  elements' costs add noise to it (still unbiased): one reason it scales badly with dimension, while the
  pathwise gradient of element i only sees f's slope there. Or (R, K, *shape[:n]), when the leading n dimensions
  of `shape` are independent problems (the examples of a VAE's minibatch): one cost per problem, and the score
  function weighs each example's score by that example's own cost only, leaving out the other examples' costs,
  which have no bearing on its gradient. Either way the estimand is the gradient of the summed cost.
* `params`: {"loc": tensor, "scale": tensor} of one equal `shape`: () for the toy, (B, D) for a VAE's
  posterior over a minibatch. The tensors may require grad: they are detached, never modified, and their
  `.grad` is never touched (the gradients come from `torch.autograd.grad` on private leaf copies).
* `family`: one of `vae.config.POSTERIOR_FAMILIES`. The pathwise estimator needs the family's reparameterized
  draw z = g(loc, scale, noise) (`Family.transform` of `Family.sample_base`), the score function its log
  density (`Family.log_prob`), the measure-valued one its weak derivatives (`vae.measure_valued`); fixed shape
  parameters (Student-t's ν) come from `posterior_params`.
* `num_samples` K: draws averaged into one estimate. `repetitions` R: independent estimates.
* `generator`: the only source of randomness (None means torch's default generator, as in `torch.randn`).
  Every estimator draws its base noise (R, K, *shape) first, so with equally seeded generators they see the
  same draws (common random numbers: the comparison between them is not blurred by different luck).
* `baseline`: one of `vae.control_variates.VARIANCE_REDUCTIONS`: a constant b subtracted from the cost by the
  score function estimator (`vae.baselines`), or a control variate h with known expected gradient
  (`vae.control_variates`); the pathwise and measure-valued estimators need none, accept the argument and ignore
  it (a constant added to f changes neither f' nor a difference of two values of f).
* returns {"loc": (R, *shape), "scale": (R, *shape)}: R independent estimates (only uncorrelated with a
  moving-average baseline), each the average over K draws of the single-sample estimator, in the params' dtype.
  All R × K draws are one batched computation (no Python loop over repetitions or draws).

The three single-sample estimators (lecture, "the reparameterization trick"; Mohamed et al. 2020, sec. 4-6):

    score function:  (f(z) - b) ∇θ log q(z; loc, scale),   z ~ q(loc, scale)      (REINFORCE, Williams 1992)
    pathwise:        ∇θ f(g(loc, scale, ε)),               ε ~ base noise         (Kingma & Welling 2014)
    measure-valued:  c_θ (f(z⁺_θ) - f(z⁻_θ)),              z± ~ q±_θ, coupled     (Pflug 1989)

For the Gaussian g(loc, scale, ε) = loc + scale ε with ε ~ N(0, 1). The score function is computed as the gradient
of `score_function_surrogate`, the same surrogate the ELBO's score-function training path differentiates.
`EVALUATIONS_PER_SAMPLE` says what each costs per draw, for the work-normalised comparison.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from typing import Protocol

import torch

from vae.baselines import BASELINES, baseline_values
from vae.config import POSTERIOR_FAMILIES
from vae.control_variates import (
    CONTROL_VARIATES,
    Expansion,
    base_variance,
    check_variance_reduction,
    control_variate_terms,
)
from vae.families import posterior_family, posterior_params, uniform_noise
from vae.measure_valued import WEAK_DERIVATIVES

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


def score_function_surrogate(
    log_q: torch.Tensor, cost: torch.Tensor, baseline: torch.Tensor | float = 0.0
) -> torch.Tensor:
    """(f(z) - b) log q(z; θ) with f(z) and b held constant: its gradient in θ is the score-function estimate
    (f(z) - b) ∇θ log q(z; θ), while its value means nothing.

    `log_q` carries the graph to θ (z itself detached: sampling blocks the gradient); `cost` and `baseline`
    broadcast against it: (B,) each in the ELBO, (R, K, *shape) against (R, K, *shape[:n], 1, ...) here.
    """
    return (cost - baseline).detach() * log_q


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
    multiplies keeps the estimator unbiased; `baseline` chooses b (`vae.baselines`), or a control variate
    b = β h(z) whose known β ∇θ E[h] is added back (`vae.control_variates`; it differentiates f at loc). The
    estimate is the gradient of `score_function_surrogate` averaged over the K draws, one leaf copy of the params
    per repetition.
    """
    loc, scale = _checked(params, baseline, family)
    eps = _noise(family, loc, (repetitions, num_samples), generator)  # (R, K, *shape)
    z = _draw(family, loc, scale, eps).detach()  # (R, K, *shape): sampling blocks the gradient
    costs = _score_weights(cost, z, loc.dim())  # (R, K, *shape[:n], 1, ...)
    b, added_back = _subtracted(baseline, cost, family, loc, scale, z, costs, generator)
    leaves = _leaves(loc, scale, (repetitions,))  # (R, *shape) each
    log_q = _log_q(family, z, leaves["loc"].unsqueeze(1), leaves["scale"].unsqueeze(1))  # (R, K, *shape)
    # loc and scale may have different baselines (the optimal one is per parameter): one surrogate each
    return {name: torch.autograd.grad(score_function_surrogate(log_q, costs, b[name]).mean(1).sum(), leaf,
                                      retain_graph=True)[0] + added_back[name]
            for name, leaf in leaves.items()}  # (R, *shape) each


def measure_valued_gradients(
    cost: Cost,
    params: Mapping[str, torch.Tensor],
    num_samples: int,
    repetitions: int = 1,
    *,
    generator: torch.Generator | None = None,
    baseline: str = "none",
    family: str = "gaussian",
) -> Gradients:
    """mean_k c_θ (f(z⁺_k) - f(z⁻_k)): the density's derivative in θ split into two laws (`vae.measure_valued`).

    For the Gaussian, with ε_k the base draw and W_k, M_k built from it and one more uniform (coupled):
        ∇_loc:   (f(loc + scale W) - f(loc - scale W)) / (scale √(2π)),   W Rayleigh (Weibull(√2, 2));
        ∇_scale: (f(loc + scale M) - f(loc + scale ε)) / scale,           M double-sided Maxwell, ε = M u.
    f is never differentiated (a step is fine) but is evaluated 2 more times per parameter element and draw:
    each element of z moves alone, the others keep their draw (elements of different problems, when the cost
    gives one value per problem, move together). `baseline` is ignored: a constant cancels in the difference.
    """
    loc, scale = _checked(params, baseline, family)
    if family not in WEAK_DERIVATIVES:
        raise ValueError(f"The measure-valued estimator is written here for the symmetric location-scale "
                         f"families ({', '.join(WEAK_DERIVATIVES)}), not for a {family} posterior.")
    law = WEAK_DERIVATIVES[family]
    noise = _noise(family, loc, (repetitions, num_samples), generator)  # (R, K, *shape), drawn first
    eps = _draw(family, torch.zeros_like(loc), torch.ones_like(loc), noise)  # the standard member's draws
    log_v = torch.log(uniform_noise(eps.shape, generator, {"loc": loc}))  # (R, K, *shape)
    with torch.no_grad():
        w, m = law.location_part(log_v), law.scale_part(log_v, eps)  # Gaussian: Rayleigh, coupled Maxwell
        z = loc + scale * eps
        costs = _checked_cost(cost, z)  # (R, K, *shape[:n])
        plus, minus, maxwell = _costs_with_each_element_moved(
            cost, z, (loc + scale * w, loc - scale * w, loc + scale * m), costs.dim() - 2)  # (R, K, *shape) each
        unmoved = costs.reshape(*costs.shape, *([1] * (z.dim() - costs.dim())))  # f(z) for every element
        return {"loc": (law.peak / scale * (plus - minus)).mean(1), "scale": ((maxwell - unmoved) / scale).mean(1)}


ESTIMATORS: dict[str, Estimator] = {"pathwise": pathwise_gradients, "score_function": score_function_gradients,
                                    "measure_valued": measure_valued_gradients}
# Evaluations of f per draw for a scalar z (a backward pass through f counted as one evaluation of f'): the
# pathwise estimator needs f' at the draw, the score function f there, the measure-valued one f at the two sides
# of each parameter's difference (1 + 3 D for D elements, the draw itself being the scale's negative side). A
# control variate adds a few evaluations at loc per batch of estimates, not per draw.
EVALUATIONS_PER_SAMPLE: dict[str, int] = {"pathwise": 1, "score_function": 1, "measure_valued": 4}


# ---------------------------------------------------------------------------------------------------------------
# shared pieces
# ---------------------------------------------------------------------------------------------------------------


def _checked(params: Mapping[str, torch.Tensor], baseline: str, family: str) -> tuple[torch.Tensor, torch.Tensor]:
    """loc and scale, detached, as floating tensors of one shape; the baseline and family names checked."""
    check_variance_reduction(baseline)
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
    return posterior_family(family).sample_base((*batch, *like.shape), generator, posterior_params(family, like, like))


def _draw(family: str, loc: torch.Tensor, scale: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """z = g(loc, scale, noise), differentiable in loc and scale (loc + scale ε for the Gaussian)."""
    return posterior_family(family).transform(posterior_params(family, loc, scale), noise)


def _log_q(family: str, z: torch.Tensor, loc: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """log q(z; loc, scale) elementwise, from the family's exact density; loc and scale broadcast against z."""
    return posterior_family(family).log_prob(z, posterior_params(family, loc, scale))


def _checked_cost(cost: Cost, z: torch.Tensor) -> torch.Tensor:
    """cost(z), checked to be one number per draw, or per draw and leading problem dimension:
    (R, K, *shape) -> (R, K) or (R, K, *shape[:n])."""
    values = cost(z)
    if values.dim() < 2 or values.shape != z.shape[: values.dim()]:
        raise ValueError(f"The cost must return one value per draw, shape {tuple(z.shape[:2])} (or per draw and "
                         f"leading parameter dimension); got {tuple(values.shape)}.")
    return values


def _score_weights(cost: Cost, z: torch.Tensor, dims: int) -> torch.Tensor:
    """f(z) at detached draws z (R, K, *shape), shaped to multiply the per-element scores:
    (R, K, *shape[:n], 1, ..., 1) with dims - n trailing ones."""
    with torch.no_grad():  # f is never differentiated here: no graph through a decoder
        costs = _checked_cost(cost, z)  # (R, K) or (R, K, *shape[:n])
    return costs.reshape(*costs.shape, *([1] * (dims - (costs.dim() - 2))))


def _pilot(
    cost: Cost, family: str, loc: torch.Tensor, scale: torch.Tensor, generator: torch.Generator | None, count: int
) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """Draws z (1, P, *shape), their costs (1, P, *shape[:n], 1, ...) and per-draw scores ∇θ log q (1, P, *shape)
    of `count` fresh draws, for the optimal baseline and coefficient, which need each draw's own score."""
    z = _draw(family, loc, scale, _noise(family, loc, (1, count), generator)).detach()  # (1, P, *shape)
    leaves = _leaves(loc, scale, (1, count))  # one leaf copy per draw, so that each draw keeps its own score
    scores = torch.autograd.grad(_log_q(family, z, leaves["loc"], leaves["scale"]).sum(), tuple(leaves.values()))
    return z, _score_weights(cost, z, loc.dim()), dict(zip(leaves, scores, strict=True))


def _subtracted(baseline: str, cost: Cost, family: str, loc: torch.Tensor, scale: torch.Tensor, z: torch.Tensor,
                costs: torch.Tensor, generator: torch.Generator | None
                ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor | float]]:
    """What the score function subtracts from f ({"loc": b, "scale": b}, broadcastable to the scores) and what it
    adds back to each estimate (0 for a constant baseline, β ∇θ E[h] for a control variate)."""
    def pilot(count: int) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        return _pilot(cost, family, loc, scale, generator, count)

    if baseline in BASELINES:
        return baseline_values(baseline, costs, lambda count: pilot(count)[1:]), {"loc": 0.0, "scale": 0.0}
    method = CONTROL_VARIATES[baseline]
    expansion = taylor_expansion(cost, loc, method.order)
    return control_variate_terms(method, expansion, z, scale, base_variance(family), pilot)


def taylor_expansion(cost: Cost, loc: torch.Tensor, order: int) -> Expansion:
    """f(loc), f'(loc) and (order 2) the diagonal of f''(loc), by autograd through the cost at z = loc (*shape):
    what the delta-method control variates expand f with. The Hessian's diagonal takes one Hessian-vector
    product per group of elements that can be probed together."""
    z = loc.expand(1, 1, *loc.shape).clone().requires_grad_()  # (1, 1, *shape)
    values = _checked_cost(cost, z)  # (1, 1, *shape[:n])
    gradient = _gradient(values.sum(), z, create_graph=order > 1)
    curvature = torch.zeros_like(z)
    if order > 1:
        for group in _element_groups(loc.shape, values.dim() - 2, loc.device):
            curvature = torch.where(group, _gradient((gradient * group).sum(), z), curvature)
    return Expansion(loc, values[0, 0].detach(), gradient[0, 0].detach(), curvature[0, 0].detach())


def _gradient(output: torch.Tensor, z: torch.Tensor, create_graph: bool = False) -> torch.Tensor:
    """d output / dz, zero where output does not depend on z (a step, or f' of a piecewise linear f)."""
    if not output.requires_grad:
        return torch.zeros_like(z)
    return torch.autograd.grad(output, z, create_graph=create_graph, retain_graph=True, materialize_grads=True)[0]


def _element_groups(shape: torch.Size, problem_dims: int, device: torch.device) -> Iterator[torch.Tensor]:
    """Boolean masks (*shape) of elements that may move at once without mixing their effects on the cost: one
    element per problem when the cost gives one value per problem (its leading `problem_dims` dimensions), so a
    VAE's minibatch moves one latent coordinate of every example together; each element alone otherwise."""
    trailing = shape[problem_dims:]
    for index in range(math.prod(trailing)):
        mask = torch.zeros(math.prod(trailing), dtype=torch.bool, device=device)
        mask[index] = True
        yield mask.reshape(trailing).expand(shape)


def _costs_with_each_element_moved(cost: Cost, z: torch.Tensor, targets: tuple[torch.Tensor, ...],
                                   problem_dims: int) -> list[torch.Tensor]:
    """For each target t (R, K, *shape): the cost with element i of z replaced by t's, all else kept, for every i:
    (R, K, *shape) each, the value for element i being its own problem's cost. One call of the cost per group of
    `_element_groups` (all targets stacked along K)."""
    count = z.shape[1]
    moved = [torch.empty_like(z) for _ in targets]
    for group in _element_groups(z.shape[2:], problem_dims, z.device):
        batch = torch.cat([torch.where(group, target, z) for target in targets], dim=1)  # (R, T K, *shape)
        values = _checked_cost(cost, batch)  # (R, T K, *shape[:n])
        values = values.reshape(*values.shape, *([1] * (z.dim() - values.dim())))  # (R, T K, *shape[:n], 1, ...)
        for i, part in enumerate(values.split(count, dim=1)):
            moved[i] = torch.where(group, part, moved[i])
    return moved
