"""Walking a trained model's latent space: decoding points, the manifold grid, interpolation, traversals, and
which latent dimensions are used at all (posterior collapse)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.decomposition import PCA

from vae.families import posterior_mean, posterior_rsample, posterior_spread, prior_law
from vae.kl import posterior_kl
from vae.model import VAE

ACTIVE_UNIT_THRESHOLD = 0.01  # Burda et al. 2016: active when Var_x(E_q[z_k | x]) exceeds this
# Slerp: below this, the end direction's component orthogonal to the start direction is rounding noise.
ANTIPARALLEL_TOLERANCE = 1e-12


@torch.no_grad()
def decode_images(model: VAE, z: np.ndarray | torch.Tensor) -> np.ndarray:
    """z (N, K) -> decoded pixel means (N, H, W) in [0, 1]."""
    z = torch.as_tensor(np.asarray(z, dtype=np.float32)).reshape(-1, model.config.latent_dim)
    return model.mean_image(model.decode(z)).reshape(-1, *model.config.input_shape).numpy()


@torch.no_grad()
def posterior_means(model: VAE, x: np.ndarray, batch_size: int = 2048) -> np.ndarray:
    """E[z|x] (mu(x); alpha(x)/beta(x) for a Gamma posterior) for every row of x (N, D): (N, K)."""
    family = model.config.posterior
    chunks = [posterior_mean(family, *model.encode(torch.as_tensor(x[i : i + batch_size])))
              for i in range(0, len(x), batch_size)]
    return torch.cat(chunks).numpy()


def grid_coordinates(count: int, extent: float, family: str = "gaussian") -> np.ndarray:
    """`count` latent coordinates spaced by the prior's inverse CDF (the Gaussian's, as in the AEVB paper's
    appendix): equal steps of probability (covering the central `extent` of the prior's mass), not equal steps
    of z."""
    if not 0 < extent < 1:
        raise ValueError("The extent is a probability mass strictly between 0 and 1.")
    probabilities = np.linspace(0.5 - extent / 2, 0.5 + extent / 2, count)
    return prior_law(family).ppf(probabilities)


def _bounded_below(family: str) -> bool:
    """Whether z has a lower end (the Gamma's z > 0) rather than the whole line: read from the prior's support."""
    return bool(np.isfinite(prior_law(family).support()[0]))


def latent_range(family: str) -> tuple[float, float]:
    """Where the Latent page's sliders reach: three standard units either side of 0 on the whole line, and from
    the lower end to the prior's 99.5% point (rounded up) for a z bounded below (the Gamma: 0 to 6)."""
    if _bounded_below(family):
        law = prior_law(family)
        return float(law.support()[0]), float(np.ceil(law.ppf(0.995)))
    return -3.0, 3.0


def sweep_values(family: str, count: int = 9) -> np.ndarray:
    """The values one coordinate sweeps through in a traversal: -2.5 to 2.5 on the whole line; the prior's 1% to
    99% points (rounded to 0.1, from 0.1 at least) for a z bounded below."""
    if _bounded_below(family):
        low, high = np.round(prior_law(family).ppf([0.01, 0.99]), 1)
        return np.linspace(max(low, 0.1), high, count)
    return np.linspace(-2.5, 2.5, count)


def prior_centre(family: str, latent_dim: int) -> np.ndarray:
    """The prior's mean in every dimension: where the Latent page starts and Reset goes (0; 1 for Gamma(1, 1))."""
    return np.full(latent_dim, float(prior_law(family).mean()))


def prior_draw(family: str, latent_dim: int, seed: int) -> np.ndarray:
    """One seeded draw z ~ p(z): (latent_dim,)."""
    return prior_law(family).rvs(size=latent_dim, random_state=np.random.default_rng(seed))


def manifold_grid(model: VAE, count: int = 15, extent: float = 0.9) -> np.ndarray:
    """Decoded images on a count x count grid of a 2-D latent space: (count, count, H, W), first axis z2 from top
    (high) to bottom (low), second axis z1 from left to right, as the picture is read."""
    if model.config.latent_dim != 2:
        raise ValueError("The manifold grid needs a 2-D latent space.")
    coordinates = grid_coordinates(count, extent, model.config.posterior)
    z1, z2 = np.meshgrid(coordinates, coordinates[::-1])  # (count, count) each
    images = decode_images(model, np.stack([z1.ravel(), z2.ravel()], axis=1))
    return images.reshape(count, count, *model.config.input_shape)


def interpolate(start: np.ndarray, end: np.ndarray, steps: int, method: str = "linear") -> np.ndarray:
    """Points from start to end (K,) inclusive: (steps, K); the endpoints are returned exactly.

    "linear" is the straight line. "spherical" (slerp) walks the direction along the great circle from start's to
    end's at constant angular speed while the norm goes linearly from |start| to |end|, so every point's norm lies
    between the endpoints' and stays typical of a Gaussian sample, where a straight line passes through the
    unlikely region near the origin. It is scale-equivariant: interpolate(c a, c b) = c interpolate(a, b), c > 0.
    Degenerate endpoints have a defined path. Antiparallel ones (end = -c start, or within rounding of it) span no
    plane, so the path turns through a fixed direction orthogonal to start (`_slerp_plane`). A zero endpoint has
    no direction, and in 1-D there is no circle to walk: the path is then the straight line."""
    t = np.linspace(0.0, 1.0, steps)[:, None]  # (steps, 1)
    start, end = np.asarray(start, dtype=np.float64), np.asarray(end, dtype=np.float64)
    if method == "linear":
        path = (1 - t) * start + t * end
    elif method == "spherical":
        path = _slerp(start, end, t)
    else:
        raise ValueError(f"Unknown interpolation {method!r}; choose linear or spherical.")
    if steps > 1:
        path[0], path[-1] = start, end  # exactly, not within rounding
    return path


def _slerp(start: np.ndarray, end: np.ndarray, t: np.ndarray) -> np.ndarray:
    """(steps, 1) fractions -> (steps, K) points: norm linear in t, direction on the great circle."""
    unit = max(np.abs(start).max(initial=0.0), np.abs(end).max(initial=0.0))
    if unit == 0.0:
        return np.zeros((len(t), len(start)))
    a, b = start / unit, end / unit  # max |entry| = 1: no underflow or overflow in the norms (tiny or huge vectors)
    norm_a, norm_b = np.linalg.norm(a), np.linalg.norm(b)
    if norm_a == 0.0 or norm_b == 0.0:
        return (1 - t) * start + t * end
    u, v = a / norm_a, b / norm_b  # (K,) unit directions
    angle = 2.0 * np.arctan2(np.linalg.norm(u - v), np.linalg.norm(u + v))  # accurate near 0 and near pi
    toward = _slerp_plane(u, v)
    if toward is None:  # 1-D: no other direction to turn to (for opposite signs no circle joins them): the line
        return (1 - t) * start + t * end
    direction = np.cos(t * angle) * u + np.sin(t * angle) * toward  # (steps, K), unit norm
    return unit * ((1 - t) * norm_a + t * norm_b) * direction


def _slerp_plane(u: np.ndarray, v: np.ndarray) -> np.ndarray | None:
    """The unit vector orthogonal to u toward which the path turns: v's component orthogonal to u. When that is
    below rounding (v = ±u), the plane is undefined and a fixed direction is used: the coordinate axis least
    aligned with u, made orthogonal to u. So a -> -a goes through that axis, deterministically. None in 1-D."""
    orthogonal = _orthogonal_part(v, u)
    if np.linalg.norm(orthogonal) <= ANTIPARALLEL_TOLERANCE:
        if len(u) == 1:
            return None
        orthogonal = _orthogonal_part(np.eye(len(u))[np.argmin(np.abs(u))], u)
    orthogonal = _orthogonal_part(orthogonal, u)  # twice (Gram-Schmidt's re-orthogonalisation): exact to rounding
    return orthogonal / np.linalg.norm(orthogonal)


def _orthogonal_part(vector: np.ndarray, unit: np.ndarray) -> np.ndarray:
    return vector - np.dot(vector, unit) * unit


def traversal(base: np.ndarray, dimension: int, values: np.ndarray) -> np.ndarray:
    """Copies of `base` (K,) with one dimension swept through `values`: (len(values), K)."""
    points = np.repeat(base[None, :], len(values), axis=0)
    points[:, dimension] = values
    return points


@dataclass(frozen=True)
class LatentUsage:
    """How much each latent dimension is used, over a dataset."""

    means: np.ndarray  # (N, K) mu(x) for every x
    mean_variance: np.ndarray  # (K,) Var over x of mu_k(x): the activity of each dimension
    kl: np.ndarray  # (K,) mean KL(q(z_k|x) || p(z_k)) in nats
    active: np.ndarray  # (K,) bool, mean_variance > ACTIVE_UNIT_THRESHOLD

    @property
    def active_count(self) -> int:
        return int(self.active.sum())


def active_units(means: np.ndarray, threshold: float = ACTIVE_UNIT_THRESHOLD) -> np.ndarray:
    """A dimension is active when its posterior mean varies over the data: Var_x(mu_k(x)) > threshold."""
    return means.var(axis=0) > threshold


@torch.no_grad()
def latent_usage(model: VAE, x: np.ndarray) -> LatentUsage:
    """Activity and KL per dimension; a collapsed dimension has q(z_k|x) = p(z_k) for every x: KL 0, inactive."""
    loc, scale = model.encode(torch.as_tensor(x))  # (N, K) each
    family = model.config.posterior
    per_dimension = [posterior_kl(family, loc[:, k : k + 1], scale[:, k : k + 1],
                                  _sample(model, loc[:, k : k + 1], scale[:, k : k + 1])).mean()
                     for k in range(loc.shape[1])]
    means = posterior_mean(family, loc, scale).numpy()
    return LatentUsage(means, means.var(axis=0), torch.stack(per_dimension).numpy(), active_units(means))


def _sample(model: VAE, loc: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """A draw for the Monte Carlo KL of families without a closed form (ignored for the Gaussian)."""
    return posterior_rsample(model.config.posterior, loc, scale, torch.Generator().manual_seed(0))


def projection_2d(means: np.ndarray) -> tuple[np.ndarray, str]:
    """Posterior means (N, K) as 2-D points: the means themselves for K <= 2, else their first two principal
    components (scikit-learn's PCA). Also returns the axis naming."""
    if means.shape[1] == 1:
        return np.concatenate([means, np.zeros_like(means)], axis=1), "z1"
    if means.shape[1] == 2:
        return means, "z"
    return PCA(n_components=2, random_state=0).fit_transform(means), "PC"


@dataclass(frozen=True)
class PosteriorDraws:
    """q(z|x) for one image: its parameters, draws of z, and the image beside the decoder's output for some."""

    loc: np.ndarray  # (K,), the encoder's outputs (log alpha and 1/beta for a Gamma posterior)
    scale: np.ndarray  # (K,)
    mean: np.ndarray  # (K,), E[z|x]: loc, or alpha/beta for the Gamma
    spread: np.ndarray  # (K,): scale, or the Gamma's standard deviation
    z: np.ndarray  # (count, K)
    pictures: np.ndarray  # (1 + decoded, H, W): the image x, then decoded draws


@torch.no_grad()
def posterior_draws(model: VAE, image: np.ndarray, count: int = 40, decoded: int = 9, seed: int = 0) -> PosteriorDraws:
    """Encode `image` (D,), draw `count` z = g(mu(x), sigma(x), noise) with a seeded generator, decode `decoded`."""
    x = torch.as_tensor(image, dtype=torch.float32).reshape(1, -1)  # (1, D)
    loc, scale = model.encode(x)  # (1, K) each
    generator = torch.Generator().manual_seed(seed)
    z = posterior_rsample(model.config.posterior, loc.expand(count, -1), scale.expand(count, -1), generator)
    images = torch.cat([x, model.mean_image(model.decode(z[:decoded]))])  # (1 + decoded, D)
    pictures = images.reshape(-1, *model.config.input_shape).numpy()
    family = model.config.posterior
    return PosteriorDraws(loc[0].numpy(), scale[0].numpy(), posterior_mean(family, loc, scale)[0].numpy(),
                          posterior_spread(family, loc, scale)[0].numpy(), z.numpy(), pictures)
