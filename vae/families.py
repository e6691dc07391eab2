"""Reparameterizable families: z = g(params, noise), with the noise drawn from a fixed base distribution.

The reparameterization trick (Kingma & Welling 2014, sec. 2.4) needs a draw z ~ q(z; params) written as a
deterministic, differentiable function of the params and of noise whose law does not depend on them. Two routes:

* location-scale: z = loc + scale * eps with eps from the standard member (Gaussian, Laplace, Student-t);
* inverse CDF: z = F^{-1}(u; params) with u ~ Uniform(0, 1) (Logistic, Cauchy, Rayleigh, Pareto).

Each family is a frozen dataclass in `FAMILIES`, keyed by a lowercase name. Only the transform g is written here
by hand, because it is what the Reparameterization page teaches; each row names the same law as a
torch.distributions class (densities, CDFs, `icdf`, `kl_divergence`) and as a scipy.stats law (quantiles and
expectations for tests and plots). Every method takes `params`, a mapping from parameter names (`loc`, `scale`,
`df`, `alpha`: torch's own names) to floats or tensors; missing names take the slider default. Tensor params
broadcast against the noise, so per-example posteriors (B, K) work as well as scalars.

Randomness comes only from the `torch.Generator` passed in (`generator=None` means torch's default generator, as
in `torch.randn`): a training thread with its own generator repeats exactly and never touches the global RNG.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from scipy import special, stats
from torch.distributions import (
    AffineTransform,
    Cauchy,
    Distribution,
    Gamma,
    Laplace,
    Normal,
    Pareto,
    SigmoidTransform,
    StudentT,
    TransformedDistribution,
    Uniform,
    Weibull,
)

# The config names the posterior families; this module implements them.
from vae.config import POSTERIOR_FAMILIES

Kind = Literal["location-scale", "inverse-CDF", "implicit"]
Params = Mapping[str, torch.Tensor | float]
Shape = Sequence[int] | torch.Size | int
ScipyDist = Any  # a frozen scipy.stats distribution (scipy has no public name for its type)
TorchLaw = Callable[..., Distribution]  # the family's params as keywords (+ validate_args) -> a torch law
ScipyLaw = Callable[..., ScipyDist]  # the family's params as keywords -> a frozen scipy.stats law

@dataclass(frozen=True)
class Param:
    """One parameter with its slider range; `symbol` is LaTeX. A shape parameter that g does not carry
    differentiably (Student-t's nu) has `reparameterized=False`."""

    name: str
    symbol: str
    default: float
    low: float
    high: float
    reparameterized: bool = True


def _loc(symbol: str = r"\mu") -> Param:
    return Param("loc", symbol, 0.0, -3.0, 3.0)


def _scale(symbol: str) -> Param:
    return Param("scale", symbol, 1.0, 0.1, 3.0)


# ---------------------------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------------------------


def _shape(shape: Shape) -> tuple[int, ...]:
    return (shape,) if isinstance(shape, int) else tuple(shape)


def _dtype_device(params: Params | None) -> tuple[torch.dtype, torch.device]:
    """Noise follows the first floating tensor param (so float64 params get float64 noise), else the default dtype."""
    for value in (params or {}).values():
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            return value.dtype, value.device
    return torch.get_default_dtype(), torch.device("cpu")


def clamp_uniform(u: torch.Tensor) -> torch.Tensor:
    """u clamped to [eps, 1 - eps] (eps = machine epsilon of u's dtype), so log(u), log(1-u), tan(pi(u-1/2)) stay
    finite. The clamp moves at most eps of probability mass: invisible to any test or plot."""
    eps = torch.finfo(u.dtype).eps
    return u.clamp(eps, 1.0 - eps)


def uniform_noise(
    shape: Shape, generator: torch.Generator | None = None, params: Params | None = None
) -> torch.Tensor:
    """u ~ Uniform(0, 1), drawn from `generator` only, clamped away from 0 and 1."""
    dtype, device = _dtype_device(params)
    return clamp_uniform(torch.rand(_shape(shape), generator=generator, dtype=dtype, device=device))


def _t(value: torch.Tensor | float, like: torch.Tensor) -> torch.Tensor:
    """A param as a tensor of z's dtype; a tensor keeps its autograd graph."""
    return torch.as_tensor(value, dtype=like.dtype, device=like.device)


def _numpy(value: torch.Tensor | float) -> np.ndarray | float:
    return value.detach().cpu().numpy().astype(np.float64) if isinstance(value, torch.Tensor) else float(value)


# ---------------------------------------------------------------------------------------------------------------
# the family interface
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Family:
    """A reparameterizable family: base noise, the transform g, its exact law (torch and scipy) and dz/dparams.

    `base` describes the noise in words, `formula` the transform in LaTeX, `derivative_formulas` the partial
    derivatives dz/dparam in LaTeX (what backpropagation multiplies by, sec. "graph after" of the lecture).
    `torch_law` and `scipy_law` take the params by their names here (a torch class or scipy law whose keywords
    already match, else a small adapter below).
    """

    name: str
    params: tuple[Param, ...]
    kind: Kind
    base: str
    formula: str
    derivative_formulas: tuple[str, ...]
    torch_law: TorchLaw
    scipy_law: ScipyLaw

    # -- parameters ------------------------------------------------------------------------------------------
    @property
    def defaults(self) -> dict[str, float]:
        return {p.name: p.default for p in self.params}

    @property
    def reparameterized_params(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params if p.reparameterized)

    @property
    def plain_scale_symbol(self) -> str:
        """The scale parameter's symbol in plain text (σ, b, s): for legends, tables and the graph's labels."""
        return plain_symbol(next(p.symbol for p in self.params if p.name == "scale"))

    @property
    def noise_symbol(self) -> str:
        """LaTeX name of the base noise: eps for a location-scale family, u for an inverse-CDF one."""
        return r"\varepsilon" if self.kind == "location-scale" else "u"

    def resolve(self, params: Params | None) -> dict[str, torch.Tensor | float]:
        """`params` with defaults filled in; an unknown name is an error (a typo would otherwise be ignored)."""
        params = dict(params or {})
        unknown = set(params) - set(self.defaults)
        if unknown:
            raise KeyError(f"{self.name} has no parameter(s) {sorted(unknown)}; it has {list(self.defaults)}")
        return {**self.defaults, **params}

    # -- sampling: what the lecture teaches, written by hand -----------------------------------------------------
    def sample_base(
        self, shape: Shape, generator: torch.Generator | None = None, params: Params | None = None
    ) -> torch.Tensor:
        """Base noise of the given shape (u ~ Uniform(0, 1) unless overridden), from `generator` only."""
        return uniform_noise(shape, generator, params)

    def transform(self, params: Params, noise: torch.Tensor) -> torch.Tensor:
        """z = g(params, noise), differentiable in every tensor param marked `reparameterized`."""
        raise NotImplementedError

    def rsample(self, params: Params, shape: Shape, generator: torch.Generator | None = None) -> torch.Tensor:
        """A reparameterized draw: z = g(params, noise) with noise ~ base, shape `shape` (broadcast with params)."""
        return self.transform(params, self.sample_base(shape, generator, params))

    def derivatives(self, params: Params, noise: torch.Tensor) -> dict[str, torch.Tensor]:
        """Analytic dz/dparam at the given noise, one entry per reparameterized param, each of z's shape: the code
        of `derivative_formulas`, which the tests hold against autograd."""
        raise NotImplementedError

    # -- exact law: the libraries' ---------------------------------------------------------------------------
    def torch_dist(self, params: Params) -> Distribution:
        """The same law as a torch.distributions object (with `rsample`, `icdf` and `kl_divergence` where torch
        has them); argument validation off, since it syncs with the device on every call."""
        return self.torch_law(**self.resolve(params), validate_args=False)

    def scipy_dist(self, params: Mapping[str, float]) -> ScipyDist:
        """The frozen scipy.stats distribution with the same parameterisation (tests and plots)."""
        return self.scipy_law(**self.resolve(params))

    def log_prob(self, z: torch.Tensor, params: Params) -> torch.Tensor:
        """log q(z; params), exact; -inf outside the support."""
        inside, safe = self._support(z, params)
        log_prob = self._torch(params, z).log_prob(safe)
        return log_prob if inside is None else torch.where(inside, log_prob, -math.inf)

    def cdf(self, z: torch.Tensor, params: Params) -> torch.Tensor:
        """F(z; params) = P(Z <= z), exact."""
        inside, safe = self._support(z, params)
        cdf = self._torch(params, z).cdf(safe)
        return cdf if inside is None else torch.where(inside, cdf, 0.0)

    def _support(self, z: torch.Tensor, params: Params) -> tuple[torch.Tensor | None, torch.Tensor]:
        """Where z lies on the support (None: the whole line), and z moved onto it: torch's formulas take no
        argument checks, so off the support they would give nonsense (or NaN gradients through the mask)."""
        return None, z

    def _torch(self, params: Params, like: torch.Tensor) -> Distribution:
        p = self.resolve(params)
        return self.torch_dist({k: _t(v, like) for k, v in p.items()})


def _ones(params: Params, noise: torch.Tensor) -> torch.Tensor:
    """dz/dloc = 1, broadcast to the shape of z."""
    shape = torch.broadcast_shapes(noise.shape, *(torch.as_tensor(v).shape for v in params.values()))
    return torch.ones(shape, dtype=noise.dtype, device=noise.device)


# ---------------------------------------------------------------------------------------------------------------
# location-scale families: z = mu + sigma * eps, eps from the standard member
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _LocationScale(Family):
    """z = loc + scale * eps: dz/dloc = 1, dz/dscale = eps."""

    def transform(self, params: Params, noise: torch.Tensor) -> torch.Tensor:
        p = self.resolve(params)
        return p["loc"] + p["scale"] * noise

    def derivatives(self, params: Params, noise: torch.Tensor) -> dict[str, torch.Tensor]:
        p = self.resolve(params)
        ones = _ones(p, noise)
        return {"loc": ones, "scale": ones * noise}


@dataclass(frozen=True)
class GaussianFamily(_LocationScale):
    """z = mu + sigma * eps, eps ~ N(0, 1): the lecture's running example."""

    def sample_base(
        self, shape: Shape, generator: torch.Generator | None = None, params: Params | None = None
    ) -> torch.Tensor:
        dtype, device = _dtype_device(params)
        return torch.randn(_shape(shape), generator=generator, dtype=dtype, device=device)


@dataclass(frozen=True)
class LaplaceFamily(_LocationScale):
    """z = mu + b * eps, eps ~ Laplace(0, 1), drawn as torch's Laplace(0, 1).icdf of a uniform from our generator:
    with v = u - 1/2, eps = -sign(v) log(1 - 2|v|) (what `Laplace.rsample` does, but from the global RNG)."""

    def sample_base(
        self, shape: Shape, generator: torch.Generator | None = None, params: Params | None = None
    ) -> torch.Tensor:
        u = uniform_noise(shape, generator, params)
        return Laplace(u.new_zeros(()), u.new_ones(()), validate_args=False).icdf(u)


@dataclass(frozen=True)
class StudentTFamily(_LocationScale):
    """z = mu + sigma * eps, eps ~ Student-t(nu).

    nu is a shape parameter and is NOT reparameterized: it sets the law of the base noise, so z carries no
    gradient to nu (a pathwise gradient for nu would need implicit reparameterization, Figurnov et al. 2018).
    eps = F_nu^{-1}(u) with u from the generator and F_nu^{-1} = `scipy.stats.t.ppf` (float64), which handles
    any real nu > 0 (torch's StudentT has no icdf); a normal / chi-square construction would need gamma draws,
    which torch cannot take from a private generator. log_prob is `torch.distributions.StudentT`'s; the CDF is
    `scipy.stats.t.cdf`, because torch has no regularized incomplete beta function (so `cdf` is not
    differentiable; nothing needs it to be).
    """

    def sample_base(
        self, shape: Shape, generator: torch.Generator | None = None, params: Params | None = None
    ) -> torch.Tensor:
        df = self.resolve(params)["df"]
        if isinstance(df, (int, float)) and float(df).is_integer() and 1 <= df <= 30:
            return self._integer_df_noise(int(df), shape, generator, params)
        u = uniform_noise(shape, generator, params)
        eps = stats.t.ppf(u.cpu().numpy().astype(np.float64), _numpy(df))  # broadcast with a (B, K) df if given
        return torch.as_tensor(eps, dtype=u.dtype, device=u.device)

    @staticmethod
    def _integer_df_noise(df: int, shape: Shape, generator: torch.Generator | None, params: Params | None):
        """eps = n0 / sqrt((n1^2 + ... + n_df^2) / df) with standard normals n: stays on the device (no host
        round trip per training step, unlike the scipy quantile), which is why the VAE's posterior uses nu = 3."""
        dtype, device = _dtype_device(params)
        normals = torch.randn((df + 1, *_shape(shape)), generator=generator, dtype=dtype, device=device)
        return normals[0] / torch.sqrt(normals[1:].square().sum(0) / df)

    def cdf(self, z: torch.Tensor, params: Params) -> torch.Tensor:
        law = self.scipy_law(**{k: _numpy(v) for k, v in self.resolve(params).items()})
        return torch.as_tensor(law.cdf(_numpy(z)), dtype=z.dtype, device=z.device)


# ---------------------------------------------------------------------------------------------------------------
# inverse-CDF families: z = F^{-1}(u; params), u ~ Uniform(0, 1)
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _InverseCDFLocationScale(Family):
    """z = loc + scale * F0^{-1}(u): a location-scale family reached through its standard quantile function.

    Logistic and Cauchy are location-scale families too, but their standard member has no sampler of its own
    in torch that takes a generator; its quantile function is closed form, so one uniform and one formula
    give both routes of the lecture at once (eps = F0^{-1}(u) is the standard member; z = loc + scale * eps).
    """

    def standard_quantile(self, u: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def transform(self, params: Params, noise: torch.Tensor) -> torch.Tensor:
        p = self.resolve(params)
        return p["loc"] + p["scale"] * self.standard_quantile(clamp_uniform(noise))

    def derivatives(self, params: Params, noise: torch.Tensor) -> dict[str, torch.Tensor]:
        p = self.resolve(params)
        ones = _ones(p, noise)
        return {"loc": ones, "scale": ones * self.standard_quantile(clamp_uniform(noise))}


@dataclass(frozen=True)
class LogisticFamily(_InverseCDFLocationScale):
    """z = mu + s log(u / (1 - u)); log q(z) = -x - 2 softplus(-x) - log s, x = (z - mu)/s.

    The log density is written out because torch's construction (`_logistic` below) computes it through the
    uniform u = sigmoid(x), which rounds to 1 in float32 once x > 17: the prior's log density at a far draw
    would be -inf, and the Monte Carlo KL infinite. The CDF is torch's.
    """

    def standard_quantile(self, u: torch.Tensor) -> torch.Tensor:
        return torch.logit(u)

    def log_prob(self, z: torch.Tensor, params: Params) -> torch.Tensor:
        p = self.resolve(params)
        x = (z - p["loc"]) / p["scale"]
        return -x - 2.0 * torch.nn.functional.softplus(-x) - torch.log(_t(p["scale"], z))


@dataclass(frozen=True)
class CauchyFamily(_InverseCDFLocationScale):
    """z = mu + gamma tan(pi (u - 1/2)); density and CDF from `torch.distributions.Cauchy`."""

    def standard_quantile(self, u: torch.Tensor) -> torch.Tensor:
        return torch.tan(math.pi * (u - 0.5))


@dataclass(frozen=True)
class RayleighFamily(Family):
    """z = sigma sqrt(-2 log(1 - u)), the inverse of F(z) = 1 - exp(-z^2 / (2 sigma^2)), z >= 0.

    A scale family without a location; its quantile function is closed form, so the inverse CDF is the natural
    route. torch has no Rayleigh class, but Rayleigh(sigma) = Weibull(scale = sigma sqrt 2, concentration = 2),
    whose density and CDF are used on the support z > 0. dz/dsigma = sqrt(-2 log(1 - u)) = z / sigma.
    """

    def transform(self, params: Params, noise: torch.Tensor) -> torch.Tensor:
        return self.resolve(params)["scale"] * self._standard(noise)

    @staticmethod
    def _standard(u: torch.Tensor) -> torch.Tensor:
        return torch.sqrt(-2.0 * torch.log1p(-clamp_uniform(u)))

    def derivatives(self, params: Params, noise: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"scale": _ones(self.resolve(params), noise) * self._standard(noise)}

    def _support(self, z: torch.Tensor, params: Params) -> tuple[torch.Tensor, torch.Tensor]:
        # the smallest positive number, not 0, keeps log z finite and the gradients NaN-free off the support
        return z > 0, z.clamp_min(torch.finfo(z.dtype).tiny)


@dataclass(frozen=True)
class ParetoFamily(Family):
    """z = x_m (1 - u)^(-1/alpha), the inverse of F(z) = 1 - (x_m / z)^alpha, z >= x_m.

    Not a location-scale family with a useful standard member in the lecture's sense (alpha changes the shape),
    so the inverse CDF is the route. Both params are reparameterized:
    dz/dx_m = (1 - u)^(-1/alpha),  dz/dalpha = x_m (1 - u)^(-1/alpha) log(1 - u) / alpha^2  (<= 0).
    Density and CDF are `torch.distributions.Pareto`'s on the support z >= x_m.
    """

    def transform(self, params: Params, noise: torch.Tensor) -> torch.Tensor:
        p = self.resolve(params)
        return p["scale"] * torch.exp(-torch.log1p(-clamp_uniform(noise)) / p["alpha"])

    def derivatives(self, params: Params, noise: torch.Tensor) -> dict[str, torch.Tensor]:
        p = self.resolve(params)
        log1mu = torch.log1p(-clamp_uniform(noise))
        power = _ones(p, noise) * torch.exp(-log1mu / p["alpha"])  # (1 - u)^(-1/alpha)
        return {"scale": power, "alpha": p["scale"] * power * log1mu / p["alpha"] ** 2}

    def _support(self, z: torch.Tensor, params: Params) -> tuple[torch.Tensor, torch.Tensor]:
        scale = _t(self.resolve(params)["scale"], z)
        return z >= scale, torch.maximum(z, scale)


class _StandardGammaQuantile(torch.autograd.Function):
    """z = F^{-1}(u; alpha) of Gamma(alpha, 1) with u held fixed. No closed form: scipy inverts the CDF
    numerically, and the backward pass uses the implicit gradient dz/dalpha = -(dF/dalpha) / q(z; alpha), which
    torch's own Gamma.rsample backpropagates (`torch._standard_gamma_grad`, the one private call here)."""

    @staticmethod
    def forward(ctx: Any, concentration: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        alpha, u = torch.broadcast_tensors(concentration.detach(), u.detach())
        z = special.gammaincinv(alpha.cpu().double().numpy(), u.cpu().double().numpy())  # scipy: CPU, float64
        # the smallest positive number, not 0, for a u so small that z underflows: log z stays finite
        z = torch.as_tensor(z, dtype=u.dtype, device=u.device).clamp_min(torch.finfo(u.dtype).tiny)
        ctx.save_for_backward(alpha, z)
        ctx.concentration_shape = concentration.shape
        return z

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        alpha, z = ctx.saved_tensors
        return (grad * torch._standard_gamma_grad(alpha, z)).sum_to_size(ctx.concentration_shape), None


@dataclass(frozen=True)
class GammaFamily(Family):
    """z = F^{-1}(u; alpha, beta) = F^{-1}(u; alpha, 1) / beta, z > 0: Figurnov et al. (2018)'s implicit
    reparameterization. The quantile has no closed form, but holding u = F(z) fixed as the params move still
    gives a pathwise gradient: dz/dalpha = -(dF/dalpha) / q(z), and dz/dbeta = -z / beta. The noise is
    u ~ Uniform(0, 1) from the caller's generator, so a draw repeats exactly, as every family's does."""

    def transform(self, params: Params, noise: torch.Tensor) -> torch.Tensor:
        p = self.resolve(params)
        concentration = torch.as_tensor(p["concentration"], dtype=noise.dtype, device=noise.device)
        return _StandardGammaQuantile.apply(concentration, clamp_uniform(noise)) / p["rate"]

    def derivatives(self, params: Params, noise: torch.Tensor) -> dict[str, torch.Tensor]:
        p = self.resolve(params)
        ones = _ones(p, noise)
        alpha = ones * torch.as_tensor(p["concentration"], dtype=noise.dtype, device=noise.device)
        standard = _StandardGammaQuantile.apply(alpha, clamp_uniform(noise))
        return {"concentration": torch._standard_gamma_grad(alpha, standard) / p["rate"],
                "rate": -standard / p["rate"] ** 2}

    def _support(self, z: torch.Tensor, params: Params) -> tuple[torch.Tensor, torch.Tensor]:
        return z > 0, z.clamp_min(torch.finfo(z.dtype).tiny)


# ---------------------------------------------------------------------------------------------------------------
# the laws torch or scipy spell differently (each adapter takes the params by their names here)
# ---------------------------------------------------------------------------------------------------------------


def _logistic(loc: torch.Tensor | float, scale: torch.Tensor | float, validate_args: bool | None = None
              ) -> Distribution:
    """torch has no Logistic class: the construction its docs give, Uniform(0, 1) -> logit -> loc + scale x."""
    loc, scale = torch.as_tensor(loc), torch.as_tensor(scale)
    base = Uniform(torch.zeros_like(loc), torch.ones_like(loc), validate_args=validate_args)
    return TransformedDistribution(base, [SigmoidTransform().inv, AffineTransform(loc, scale)],
                                   validate_args=validate_args)


def _rayleigh(scale: torch.Tensor | float, validate_args: bool | None = None) -> Distribution:
    """torch has no Rayleigh class: Rayleigh(sigma) = Weibull(scale = sigma sqrt 2, concentration = 2)."""
    scale = torch.as_tensor(scale)
    return Weibull(scale * math.sqrt(2.0), torch.full_like(scale, 2.0), validate_args=validate_args)


def _scipy_pareto(scale: float, alpha: float) -> ScipyDist:
    """scipy calls alpha b."""
    return stats.pareto(b=alpha, scale=scale)


# ---------------------------------------------------------------------------------------------------------------
# the registry: one row per family
# ---------------------------------------------------------------------------------------------------------------

_DLOC = r"\partial z/\partial\mu = 1"

FAMILIES: dict[str, Family] = {
    "gaussian": GaussianFamily(
        name="Gaussian", params=(_loc(), _scale(r"\sigma")), kind="location-scale", base="ε ~ N(0, 1)",
        formula=r"z = \mu + \sigma\,\varepsilon",
        derivative_formulas=(_DLOC, r"\partial z/\partial\sigma = \varepsilon"),
        torch_law=Normal, scipy_law=stats.norm,
    ),
    "laplace": LaplaceFamily(
        name="Laplace", params=(_loc(), _scale("b")), kind="location-scale", base="ε ~ Laplace(0, 1)",
        formula=r"z = \mu + b\,\varepsilon",
        derivative_formulas=(_DLOC, r"\partial z/\partial b = \varepsilon"),
        torch_law=Laplace, scipy_law=stats.laplace,
    ),
    "student-t": StudentTFamily(
        name="Student-t", params=(_loc(), _scale(r"\sigma"), Param("df", r"\nu", 3.0, 1.0, 30.0, False)),
        kind="location-scale", base="ε ~ Student-t(ν)", formula=r"z = \mu + \sigma\,\varepsilon",
        derivative_formulas=(_DLOC, r"\partial z/\partial\sigma = \varepsilon",
                             r"\nu \text{ sets the law of } \varepsilon\text{: not reparameterized}"),
        torch_law=StudentT, scipy_law=stats.t,
    ),
    "logistic": LogisticFamily(
        name="Logistic", params=(_loc(), _scale("s")), kind="inverse-CDF", base="u ~ Uniform(0, 1)",
        formula=r"z = \mu + s\,\log\frac{u}{1-u}",
        derivative_formulas=(_DLOC, r"\partial z/\partial s = \log\frac{u}{1-u}"),
        torch_law=_logistic, scipy_law=stats.logistic,
    ),
    "cauchy": CauchyFamily(
        name="Cauchy", params=(_loc(), _scale(r"\gamma")), kind="inverse-CDF", base="u ~ Uniform(0, 1)",
        formula=r"z = \mu + \gamma\,\tan\!\big(\pi(u - \tfrac12)\big)",
        derivative_formulas=(_DLOC, r"\partial z/\partial\gamma = \tan\!\big(\pi(u - \tfrac12)\big)"),
        torch_law=Cauchy, scipy_law=stats.cauchy,
    ),
    "rayleigh": RayleighFamily(
        name="Rayleigh", params=(_scale(r"\sigma"),), kind="inverse-CDF", base="u ~ Uniform(0, 1)",
        formula=r"z = \sigma\sqrt{-2\log(1-u)}",
        derivative_formulas=(r"\partial z/\partial\sigma = \sqrt{-2\log(1-u)}",),
        torch_law=_rayleigh, scipy_law=stats.rayleigh,
    ),
    "pareto": ParetoFamily(
        name="Pareto", params=(_scale("x_m"), Param("alpha", r"\alpha", 3.0, 0.5, 5.0)), kind="inverse-CDF",
        base="u ~ Uniform(0, 1)", formula=r"z = x_m\,(1-u)^{-1/\alpha}",
        derivative_formulas=(r"\partial z/\partial x_m = (1-u)^{-1/\alpha}",
                             r"\partial z/\partial\alpha = x_m\,(1-u)^{-1/\alpha}\,\log(1-u)/\alpha^2"),
        torch_law=Pareto, scipy_law=_scipy_pareto,
    ),
}


# ---------------------------------------------------------------------------------------------------------------
# what the Reparameterization page shows: draws of the noise against z, the curve g, and dz/dparams
# ---------------------------------------------------------------------------------------------------------------


def base_distribution(family: Family, params: Mapping[str, float]) -> ScipyDist:
    """The law of the base noise: the standard member for a location-scale family, else Uniform(0, 1)."""
    if family.kind == "location-scale":
        return family.scipy_dist({**params, "loc": 0.0, "scale": 1.0})
    return stats.uniform()


@dataclass(frozen=True)
class TransformDemo:
    """`count` draws of the noise and the z they give, plus the curve z = g(params, noise) through them."""

    noise: np.ndarray  # (count,)
    z: np.ndarray  # (count,)
    curve_noise: np.ndarray  # (points,), sorted
    curve_z: np.ndarray  # (points,)


def transform_demo(family: Family, params: Mapping[str, float], count: int = 3000, seed: int = 0) -> TransformDemo:
    """Seeded draws through the family's own transform; the curve spans the noise's 0.5%-99.5% quantiles."""
    generator = torch.Generator().manual_seed(seed)
    resolved = {k: float(v) for k, v in family.resolve(params).items()}
    noise = family.sample_base(count, generator, resolved).double()  # (count,)
    base = base_distribution(family, resolved)
    curve_noise = torch.as_tensor(base.ppf(np.linspace(0.005, 0.995, 400)), dtype=torch.float64)
    with torch.no_grad():
        z, curve_z = family.transform(resolved, noise), family.transform(resolved, curve_noise)
    return TransformDemo(noise.numpy(), z.numpy(), curve_noise.numpy(), curve_z.numpy())


def transform_at(family: Family, params: Mapping[str, float], noise_value: float) -> float:
    """z = g(params, noise) at one noise value: the point the Reparameterization page picks."""
    with torch.no_grad():
        return float(family.transform(params, torch.tensor(noise_value, dtype=torch.float64)))


def density_on(family: Family, params: Mapping[str, float], grid: np.ndarray) -> np.ndarray:
    """The family's exact density at each point of `grid`, for drawing under a histogram of draws."""
    with torch.no_grad():
        return family.log_prob(torch.as_tensor(grid, dtype=torch.float64), params).exp().numpy()


def gradients_at(family: Family, params: Mapping[str, float], noise_value: float) -> dict[str, float]:
    """dz/dparam at one noise value, by autograd through g: the numbers backpropagation multiplies by."""
    leaves = {name: torch.tensor(float(value), dtype=torch.float64, requires_grad=name in
                                 family.reparameterized_params)
              for name, value in family.resolve(params).items()}
    z = family.transform(leaves, torch.tensor(noise_value, dtype=torch.float64))
    wanted = [leaves[name] for name in family.reparameterized_params]
    grads = torch.autograd.grad(z, wanted)
    return {name: float(g) for name, g in zip(family.reparameterized_params, grads, strict=True)}


# ---------------------------------------------------------------------------------------------------------------
# families as VAE posteriors q(z|x) (the KL against the prior p(z) is in vae.kl)
# ---------------------------------------------------------------------------------------------------------------

POSTERIOR_DF = 3.0  # nu of a Student-t posterior and prior: fixed, since nu is not reparameterized


# A Gamma posterior (z > 0) has no location and scale: the encoder's two outputs are log alpha and 1 / beta, so
# that "loc 0, scale 1", the prior, is Gamma(1, 1), the exponential law; its KL is exact (torch's registry).
GAMMA_POSTERIOR = GammaFamily(
    name="Gamma", params=(Param("concentration", r"\alpha", 2.0, 0.2, 10.0), Param("rate", r"\beta", 1.0, 0.2, 5.0)),
    kind="implicit", base="u ~ Uniform(0, 1)", formula=r"z = F^{-1}(u;\,\alpha, \beta)",
    derivative_formulas=(r"\partial z/\partial\alpha = -\frac{\partial F/\partial\alpha}{q(z)}",
                         r"\partial z/\partial\beta = -z/\beta"),
    torch_law=Gamma, scipy_law=lambda concentration, rate: stats.gamma(concentration, scale=1.0 / rate),
)


def posterior_family(family_name: str) -> Family:
    """The family of q(z|x) for a continuous posterior of vae.config (a row of `FAMILIES`, or the Gamma)."""
    if family_name not in POSTERIOR_FAMILIES:
        raise ValueError(f"{family_name!r} is not a posterior family; choose one of {POSTERIOR_FAMILIES}")
    return GAMMA_POSTERIOR if family_name == "gamma" else FAMILIES[family_name]


_UNICODE = {r"\mu": "μ", r"\sigma": "σ", r"\gamma": "γ", r"\nu": "ν", r"\alpha": "α", r"\varepsilon": "ε"}


def plain_symbol(latex: str) -> str:
    """A family's LaTeX parameter symbol as plain text, for table headings, legends and the graph's labels."""
    return _UNICODE.get(latex, latex)


@dataclass(frozen=True)
class PosteriorWords:
    """A posterior family's parts in plain text, as captions, legends and tables name them."""

    loc: str  # the encoder's first output per dimension: μ (log α for the Gamma)
    scale: str  # its second: σ, b, s (1/β for the Gamma)
    mean: str  # the point an image is decoded from: μ(x) (E[z|x] for the Gamma)
    decoded_from: str  # the same, with what it is
    spread: str  # the half-width of the bar drawn around the mean
    noise: str  # what a draw starts from: ε, or u for an inverse-CDF or implicit family
    draw: str  # one draw z from the encoder's outputs
    draw_of_x: str  # the same, with their dependence on the image x
    prior: str  # p(z) of one latent dimension
    collapsed: str  # what a dimension that carries nothing shows


def posterior_words(family_name: str) -> PosteriorWords:
    """The plain-text vocabulary of a posterior family (vae.config's POSTERIOR_FAMILIES)."""
    family = posterior_family(family_name)
    if family.kind == "implicit":  # the Gamma: no g; its encoder outputs log alpha and 1 / beta (posterior_params)
        return PosteriorWords("log α", "1/β", "E[z|x]", "mean E[z|x] = α(x)/β(x)", "sd", "u", "z = F⁻¹(u; α, β)",
                              "z = F⁻¹(u; α(x), β(x))", "Gamma(1, 1)", "E[z|x] ≈ 1 and sd ≈ 1 (the prior Gamma(1, 1))")
    scale = family.plain_scale_symbol
    noise, standard = ("ε", "ε") if family.kind == "location-scale" else ("u", "F⁻¹(u)")
    shape = f", ν = {POSTERIOR_DF:g}" if family_name == "student-t" else ""
    prior = "N(0, 1)" if family.name == "Gaussian" else f"{family.name}(0, 1{shape})"
    return PosteriorWords("μ", scale, "μ(x)", "μ(x)", f"{scale}(x)", noise, f"z = μ + {scale}·{standard}",
                          f"z = μ(x) + {scale}(x)·{standard}", prior, f"μ ≈ 0 and {scale} ≈ 1 (the prior {prior})")


def posterior_params(family_name: str, loc: torch.Tensor, scale: torch.Tensor) -> dict[str, torch.Tensor | float]:
    """The params of q(z|x) = family(loc, scale) (with nu = POSTERIOR_DF for the Student-t; for the Gamma,
    alpha = exp(loc) and beta = 1 / scale)."""
    posterior_family(family_name)  # rejects a name that is not a posterior family
    if family_name == "gamma":
        return {"concentration": torch.exp(torch.as_tensor(loc)), "rate": 1.0 / torch.as_tensor(scale)}
    extra = {"df": POSTERIOR_DF} if family_name == "student-t" else {}
    return {"loc": loc, "scale": scale, **extra}


def posterior_spread(family_name: str, loc: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """How wide q(z|x) is, for a picture: its scale (sigma, b, s) for the symmetric families, the standard
    deviation sqrt(alpha) / beta for the Gamma."""
    if family_name == "gamma":
        return torch.exp(0.5 * loc) * scale
    posterior_family(family_name)
    return scale


@functools.cache  # freezing a scipy law costs ~3 ms, and the Latent page asks for it on every slider move
def prior_law(family_name: str) -> ScipyDist:
    """p(z) of one latent dimension as a frozen scipy law: the posterior's family at loc 0, scale 1. Shared: draw
    from it with an explicit `random_state`."""
    zero, one = torch.tensor(0.0, dtype=torch.float64), torch.tensor(1.0, dtype=torch.float64)
    params = posterior_params(family_name, zero, one)
    return posterior_family(family_name).scipy_dist({name: float(value) for name, value in params.items()})


def posterior_mean(family_name: str, loc: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """E[z] under q(z|x): the point an image is decoded from for pictures and the one the Latent page plots.
    loc for the symmetric families (their centre, where each has its mean), alpha / beta for the Gamma."""
    if family_name == "gamma":
        return torch.exp(loc) * scale
    posterior_family(family_name)
    return loc


def posterior_rsample(
    family_name: str, loc: torch.Tensor, scale: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """z ~ q(z|x) by reparameterization, one draw per entry of loc: (B, K) -> (B, K)."""
    params = posterior_params(family_name, loc, scale)
    return posterior_family(family_name).rsample(params, loc.shape, generator)
