"""vae.families against exact answers: scipy's CDFs and densities, torch's samplers and icdf, autograd, quadrature."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from vae.families import FAMILIES

N_DRAWS = 20_000
P_MIN = 1e-3  # fixed seeds make every p-value below deterministic

# Two settings per family: the slider defaults and an off-centre one (Student-t with a non-integer nu).
SETTINGS = {
    "gaussian": [{}, {"loc": -1.3, "scale": 2.2}],
    "laplace": [{}, {"loc": 0.7, "scale": 0.3}],
    "student-t": [{}, {"loc": 1.1, "scale": 0.6, "df": 2.5}],
    "logistic": [{}, {"loc": -2.0, "scale": 1.7}],
    "cauchy": [{}, {"loc": 0.5, "scale": 2.5}],
    "rayleigh": [{}, {"scale": 0.4}],
    "pareto": [{}, {"scale": 2.0, "alpha": 0.8}],
}
CASES = [(name, params) for name, settings_ in SETTINGS.items() for params in settings_]
IDS = [f"{name}-{i}" for name, settings_ in SETTINGS.items() for i in range(len(settings_))]


def _full(name: str, params: dict) -> dict[str, float]:
    return FAMILIES[name].resolve(params)


def _tensor_params(name: str, params: dict, shape: tuple[int, ...]) -> dict[str, torch.Tensor]:
    """Every param as a float64 tensor of `shape` with requires_grad, so autograd gives elementwise dz/dparam."""
    return {k: torch.full(shape, float(v), dtype=torch.float64, requires_grad=True)
            for k, v in _full(name, params).items()}


def _grid(name: str, params: dict) -> np.ndarray:
    """Points spanning the bulk and both tails, plus points off the support for Rayleigh and Pareto."""
    dist = FAMILIES[name].scipy_dist(_full(name, params))
    inside = dist.ppf(np.linspace(0.001, 0.999, 41))
    return np.concatenate([inside, [-5.0, -0.1, 0.0, 0.05]])


# ---------------------------------------------------------------------------------------------------------------
# registry
# ---------------------------------------------------------------------------------------------------------------


def test_registry_describes_every_family():
    assert list(FAMILIES) == ["gaussian", "laplace", "student-t", "logistic", "cauchy", "rayleigh", "pareto"]
    for key, family in FAMILIES.items():
        assert family.name.lower() == key
        assert family.kind in ("location-scale", "inverse-CDF")
        assert family.formula.startswith("z = ") and family.base
        for p in family.params:
            assert p.low <= p.default <= p.high
        assert len(family.derivative_formulas) == len(family.params)
    assert [p.name for p in FAMILIES["student-t"].params] == ["loc", "scale", "df"]
    assert FAMILIES["student-t"].reparameterized_params == ("loc", "scale")
    assert FAMILIES["pareto"].reparameterized_params == ("scale", "alpha")
    assert {f.kind for k, f in FAMILIES.items() if k in ("gaussian", "laplace", "student-t")} == {"location-scale"}
    assert FAMILIES["gaussian"].params[1].low == 0.1 and FAMILIES["gaussian"].params[1].high == 3.0


def test_unknown_param_name_is_an_error():
    with pytest.raises(KeyError, match="sigma"):
        FAMILIES["gaussian"].rsample({"sigma": 1.0}, (3,))


# ---------------------------------------------------------------------------------------------------------------
# samples and exact law
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("seed", "name", "params"), [(i, *c) for i, c in enumerate(CASES)], ids=IDS)
def test_rsample_passes_ks_against_exact_cdf(seed, name, params):
    # One seed per case: with a shared seed every inverse-CDF family would see the same uniforms, and KS,
    # being invariant under the exact CDF, would return the same p-value for all of them.
    family = FAMILIES[name]
    z = family.rsample(params, (N_DRAWS,), torch.Generator().manual_seed(seed))
    assert z.shape == (N_DRAWS,) and torch.isfinite(z).all()
    assert stats.kstest(z.double().numpy(), family.scipy_dist(_full(name, params)).cdf).pvalue > P_MIN
    # the same test against our own cdf, which the next test ties to scipy's
    own_cdf = lambda x: family.cdf(torch.as_tensor(x, dtype=torch.float64), params).numpy()  # noqa: E731
    assert stats.kstest(z.double().numpy(), own_cdf).pvalue > P_MIN


@pytest.mark.parametrize(("name", "params"), CASES, ids=IDS)
def test_transform_is_the_quantile_function(name, params):
    """F(g(params, noise)) equals the noise's own CDF: u for inverse-CDF families, F0(eps) for location-scale ones."""
    family, full = FAMILIES[name], _full(name, params)
    u = np.linspace(0.001, 0.999, 99)
    noise = u if family.kind == "inverse-CDF" else family.scipy_dist({**full, "loc": 0.0, "scale": 1.0}).ppf(u)
    z = family.transform(params, torch.as_tensor(noise, dtype=torch.float64))
    np.testing.assert_allclose(family.cdf(z, params).numpy(), u, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize(("name", "params"), CASES, ids=IDS)
def test_log_prob_and_cdf_match_scipy(name, params):
    family, dist = FAMILIES[name], FAMILIES[name].scipy_dist(_full(name, params))
    x = _grid(name, params)
    z = torch.as_tensor(x, dtype=torch.float64)
    np.testing.assert_allclose(family.log_prob(z, params).numpy(), dist.logpdf(x), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(family.cdf(z, params).numpy(), dist.cdf(x), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name", [n for n, f in FAMILIES.items() if f.torch_dist(f.defaults) is not None])
def test_torch_rsample_draws_the_same_law(name):
    family = FAMILIES[name]
    params = SETTINGS[name][1]
    ours = family.rsample(params, (N_DRAWS,), torch.Generator().manual_seed(1))
    with torch.random.fork_rng():  # torch's samplers use the global RNG: keep it out of other tests
        torch.manual_seed(2)
        dist = family.torch_dist({k: torch.tensor(v) for k, v in _full(name, params).items()})
        theirs = dist.rsample((N_DRAWS,))
    assert stats.ks_2samp(ours.numpy(), theirs.numpy()).pvalue > P_MIN
    z = torch.as_tensor(_grid(name, params)[:41], dtype=torch.float64)  # on the support only
    np.testing.assert_allclose(dist.log_prob(z.float()).double().numpy(), family.log_prob(z, params).numpy(),
                               rtol=1e-4, atol=1e-4)


def test_every_family_has_a_torch_twin():
    """Logistic as torch's documented Uniform->logit->affine construction, Rayleigh as Weibull(sigma*sqrt2, 2)."""
    missing = [n for n, f in FAMILIES.items() if f.torch_dist(f.defaults) is None]
    assert missing == []


@pytest.mark.parametrize(("name", "params"), [c for c in CASES if c[0] != "student-t"],
                         ids=[i for i in IDS if not i.startswith("student-t")])
def test_the_hand_written_transform_is_torchs_differentiable_icdf(name, params):
    """g(params, noise) = F^{-1}(u; params) of torch's own law, values and gradients in every reparameterized param
    (u = the noise for an inverse-CDF family, F0(eps) for a location-scale one; torch's StudentT has no icdf)."""
    family = FAMILIES[name]
    u = torch.linspace(0.01, 0.99, 99, dtype=torch.float64)
    leaves = _tensor_params(name, params, ())
    if family.kind == "inverse-CDF":
        noise = u
    else:
        noise = family.torch_dist({"loc": torch.tensor(0.0, dtype=torch.float64),
                                   "scale": torch.tensor(1.0, dtype=torch.float64)}).icdf(u)  # eps = F0^{-1}(u)
    ours, torchs = family.transform(leaves, noise), family.torch_dist(leaves).icdf(u)
    torch.testing.assert_close(ours, torchs, rtol=1e-9, atol=1e-12)
    wanted = [leaves[key] for key in family.reparameterized_params]
    for mine, theirs in zip(torch.autograd.grad(ours.sum(), wanted), torch.autograd.grad(torchs.sum(), wanted),
                            strict=True):
        torch.testing.assert_close(mine, theirs, rtol=1e-9, atol=1e-12)


# ---------------------------------------------------------------------------------------------------------------
# derivatives: analytic vs autograd vs finite differences
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "params"), CASES, ids=IDS)
def test_autograd_matches_analytic_derivatives(name, params):
    family = FAMILIES[name]
    noise = family.sample_base((500,), torch.Generator().manual_seed(3), {"df": _full(name, params).get("df", 3.0)})
    noise = noise.double()
    tparams = _tensor_params(name, params, noise.shape)
    z = family.transform(tparams, noise)
    names = family.reparameterized_params
    grads = torch.autograd.grad(z.sum(), [tparams[k] for k in names], allow_unused=True)
    analytic = family.derivatives(tparams, noise)
    assert set(analytic) == set(names)
    for key, grad in zip(names, grads, strict=True):
        torch.testing.assert_close(grad, analytic[key].detach(), rtol=1e-10, atol=1e-12)
    if "df" in tparams:  # nu only shapes the noise: no pathwise gradient reaches it
        assert torch.autograd.grad(family.transform(tparams, noise).sum(), tparams["df"], allow_unused=True)[0] is None


def test_pareto_derivatives_match_central_differences():
    family, h = FAMILIES["pareto"], 1e-6
    u = torch.linspace(0.01, 0.99, 50, dtype=torch.float64)
    params = {"scale": 1.5, "alpha": 1.7}
    analytic = family.derivatives(params, u)
    for key in ("scale", "alpha"):
        up = family.transform({**params, key: params[key] + h}, u)
        down = family.transform({**params, key: params[key] - h}, u)
        torch.testing.assert_close((up - down) / (2 * h), analytic[key], rtol=1e-6, atol=1e-8)
    assert (analytic["alpha"] <= 0).all()  # a heavier tail (smaller alpha) pushes every draw outwards


@settings(max_examples=40, deadline=None)
@given(name=st.sampled_from(sorted(FAMILIES)), data=st.data())
def test_transform_is_increasing_in_the_noise(name, data):
    family = FAMILIES[name]
    params = {p.name: data.draw(st.floats(p.low, p.high), label=p.name) for p in family.params}
    if family.kind == "inverse-CDF":
        noise = torch.linspace(0.0, 1.0, 201, dtype=torch.float64)  # the ends are clamped, not infinite
    else:
        noise = torch.linspace(-8.0, 8.0, 201, dtype=torch.float64)
    z = family.transform(params, noise)
    assert torch.isfinite(z).all() and (z.diff() > 0).all()


def test_uniform_noise_is_clamped_so_transforms_stay_finite():
    for name in ("logistic", "cauchy", "rayleigh", "pareto"):
        for dtype in (torch.float32, torch.float64):
            z = FAMILIES[name].transform(FAMILIES[name].defaults, torch.tensor([0.0, 1.0], dtype=dtype))
            assert torch.isfinite(z).all(), (name, dtype)


# ---------------------------------------------------------------------------------------------------------------
# randomness: private generators only
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(FAMILIES))
def test_same_seed_same_draws_and_global_rng_untouched(name):
    family = FAMILIES[name]
    torch_state, numpy_state = torch.get_rng_state(), np.random.get_state()
    a = family.rsample(family.defaults, (4, 3), torch.Generator().manual_seed(7))
    b = family.rsample(family.defaults, (4, 3), torch.Generator().manual_seed(7))
    c = family.rsample(family.defaults, (4, 3), torch.Generator().manual_seed(8))
    assert a.shape == (4, 3) and torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(torch_state, torch.get_rng_state())
    assert all(np.array_equal(x, y) for x, y in zip(numpy_state, np.random.get_state(), strict=True))


def test_noise_follows_param_dtype_and_broadcasts_per_example():
    loc = torch.zeros(8, 2, dtype=torch.float64)
    scale = torch.linspace(0.1, 3.0, 16, dtype=torch.float64).reshape(8, 2)
    for name in FAMILIES:
        params = {"loc": loc, "scale": scale} if "loc" in FAMILIES[name].defaults else {"scale": scale}
        z = FAMILIES[name].rsample(params, (8, 2), torch.Generator().manual_seed(0))
        assert z.shape == (8, 2) and z.dtype == torch.float64


# --- what the Reparameterization page shows ----------------------------------------------------------------------


@pytest.mark.parametrize("name", list(FAMILIES))
def test_transform_demo_draws_lie_on_the_transform_curve(name):
    from vae.families import transform_demo

    family = FAMILIES[name]
    demo = transform_demo(family, family.defaults, count=500, seed=3)
    assert demo.noise.shape == demo.z.shape == (500,)
    assert np.all(np.diff(demo.curve_noise) > 0) and np.all(np.diff(demo.curve_z) > 0)  # g increases in the noise
    inside = (demo.noise > demo.curve_noise[0]) & (demo.noise < demo.curve_noise[-1])
    np.testing.assert_allclose(np.interp(demo.noise[inside], demo.curve_noise, demo.curve_z), demo.z[inside],
                               rtol=0.02, atol=0.02 * np.ptp(demo.curve_z))
    again = transform_demo(family, family.defaults, count=500, seed=3)
    np.testing.assert_array_equal(demo.z, again.z)


@pytest.mark.parametrize("name", list(FAMILIES))
def test_gradients_at_match_the_analytic_derivatives(name):
    from vae.families import gradients_at

    family = FAMILIES[name]
    noise = 0.7 if family.kind == "location-scale" else 0.3
    by_autograd = gradients_at(family, family.defaults, noise)
    analytic = family.derivatives({k: torch.tensor(v, dtype=torch.float64) for k, v in family.defaults.items()},
                                  torch.tensor(noise, dtype=torch.float64))
    assert set(by_autograd) == set(family.reparameterized_params)
    for param, value in by_autograd.items():
        assert value == pytest.approx(float(analytic[param]), rel=1e-9, abs=1e-12)


def test_base_distribution_is_standard_member_or_uniform():
    from vae.families import base_distribution

    assert base_distribution(FAMILIES["gaussian"], {"loc": 3.0, "scale": 2.0}).std() == pytest.approx(1.0)
    assert base_distribution(FAMILIES["cauchy"], FAMILIES["cauchy"].defaults).cdf(0.25) == pytest.approx(0.25)
