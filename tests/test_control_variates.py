"""The delta-method control variates of the score function: the Taylor expansion autograd takes (against the toy
costs' own f' and finite differences), h's known expected gradient (against Monte Carlo), the estimator unbiased
with the exact variances of vae.toy_variances at the box's corners and inside it, those variances against mpmath,
and what the optimal coefficient and the quadratic term buy."""

from __future__ import annotations

import json

import mpmath as mp
import pytest
import torch

from tests.toy_oracles import BOX_CASES, MP_COSTS, breakpoints, check_against_monte_carlo, phi
from vae.cli import main
from vae.control_variates import CONTROL_VARIATES, VARIANCE_REDUCTIONS, base_variance, check_variance_reduction
from vae.estimators import score_function_gradients, taylor_expansion
from vae.families import FAMILIES, posterior_params
from vae.toy_costs import COSTS, cost_function
from vae.toy_variances import exact_variance

CASES = [(name, setting, control) for name, setting in BOX_CASES for control in CONTROL_VARIATES]


def test_the_expansion_is_f_and_its_derivatives_at_loc():
    """f(loc), f'(loc) and f''(loc) by autograd through the cost, against the toy's f' and a central difference;
    per element for a (B, D) minibatch whose cost gives one value per example."""
    loc = torch.tensor([[0.3, -1.2], [2.0, 0.5]], dtype=torch.float64)
    expansion = taylor_expansion(lambda z: torch.cos(2.0 * z).sum(-1) + z[..., 0] * z[..., 1], loc, order=2)
    torch.testing.assert_close(expansion.value, torch.cos(2.0 * loc).sum(-1) + loc[:, 0] * loc[:, 1])
    torch.testing.assert_close(expansion.gradient, -2.0 * torch.sin(2.0 * loc) + loc.flip(-1))
    torch.testing.assert_close(expansion.curvature, -4.0 * torch.cos(2.0 * loc))  # the cross term is off-diagonal
    for name in COSTS:
        x = torch.tensor(0.37, dtype=torch.float64)
        scalar = taylor_expansion(cost_function(name, 0.8), x, order=2)
        assert float(scalar.gradient) == pytest.approx(float(COSTS[name].df(x, 0.8)), abs=1e-12), name
        h = 1e-4
        difference = (COSTS[name].df(x + h, 0.8) - COSTS[name].df(x - h, 0.8)) / (2 * h)
        assert float(scalar.curvature) == pytest.approx(float(difference), rel=1e-6, abs=1e-9), name


@pytest.mark.parametrize("family", ["gaussian", "laplace", "student-t", "logistic"])
def test_the_known_expected_gradient_of_h(family):
    """∇θ E[h] for the quadratic h of f = cos(z): f'(loc) for loc, f''(loc) scale Var[ε] for scale; Var[ε] is the
    family's (Monte Carlo of ε² from the family's own sampler)."""
    loc, scale = torch.tensor(0.4, dtype=torch.float64), torch.tensor(0.7, dtype=torch.float64)
    expansion = taylor_expansion(cost_function("cos(k z)", 1.0), loc, order=2)
    known = expansion.expected_gradient(scale, base_variance(family))
    assert float(known["loc"]) == pytest.approx(-torch.sin(loc).item())
    draws = FAMILIES[family].transform(posterior_params(family, 0.0, 1.0), FAMILIES[family].sample_base(
        400_000, torch.Generator().manual_seed(0), {"loc": loc}))
    assert base_variance(family) == pytest.approx(float(draws.var()), rel=0.05)
    assert float(known["scale"]) == pytest.approx(-torch.cos(loc).item() * 0.7 * base_variance(family))


@pytest.mark.parametrize(("name", "setting", "control"), CASES)
def test_unbiased_with_the_exact_variance_at_the_corners_and_inside(name, setting, control):
    """The optimal coefficient is estimated from a 4,096-draw pilot: 2% slack for its own noise."""
    slack = 0.02 if CONTROL_VARIATES[control].optimal_coefficient else 0.0
    check_against_monte_carlo(name, setting, "score_function", control, seed=CASES.index((name, setting, control)),
                              slack=slack)


def mp_variance(name: str, loc: float, scale: float, k: float, control: str) -> dict[str, float]:
    """Var[(f - β h) s + β ∇E[h]] at 20 digits, with f's derivatives at loc by mpmath's own differences."""
    method = CONTROL_VARIATES[control]
    f = MP_COSTS[name][0]
    loc, scale, k = mp.mpf(loc), mp.mpf(scale), mp.mpf(k)
    slope, curvature = mp.diff(lambda z: f(z, k), loc, 1), mp.diff(lambda z: f(z, k), loc, 2) * (method.order > 1)
    cuts = breakpoints(name, loc, scale, k)
    terms = {"f": lambda x: f(loc + scale * x, k),
             "h": lambda x: f(loc, k) + slope * scale * x + curvature * (scale * x) ** 2 / 2}
    scores = {"loc": (lambda x: x / scale, slope), "scale": (lambda x: (x**2 - 1) / scale, curvature * scale)}
    return {p: float(mp_score_variance(terms, score, known, method.optimal_coefficient, cuts))
            for p, (score, known) in scores.items()}


def mp_score_variance(terms: dict, s, known, optimal: bool, cuts: list):
    f, h = terms["f"], terms["h"]
    mean = mp.quad(lambda x: phi(x) * f(x) * s(x), cuts)
    beta = 1
    if optimal:
        spread = mp.quad(lambda x: phi(x) * (h(x) * s(x) - known) ** 2, cuts)
        together = mp.quad(lambda x: phi(x) * (f(x) * s(x) - mean) * (h(x) * s(x) - known), cuts)
        beta = together / spread if spread else 0
    return mp.quad(lambda x: phi(x) * ((f(x) - beta * h(x)) * s(x) + beta * known - mean) ** 2, cuts)


@pytest.mark.parametrize(("name", "setting"), [
    ("cos(k z)", (0.3, 1.0, 3.0)), ("exp(-k z^2)", (0.4, 1.5, 5.0)), ("exp(k z)", (1.0, 1.0, 1.5)),
    ("|z-k|", (-0.5, 0.7, 0.4)),
])
@pytest.mark.parametrize("control", list(CONTROL_VARIATES))
@pytest.mark.slow  # mpmath at 20 digits: seconds per setting
def test_the_exact_variance_is_mpmaths(name, setting, control):
    exact = exact_variance(name, "score_function", *setting, control)
    assert exact == pytest.approx(mp_variance(name, *setting, control), rel=1e-6)


def test_what_the_coefficient_and_the_quadratic_term_buy():
    """The optimal β never loses to β = 1 or to no control variate; the quadratic h is f itself for (z-k)^2, so
    its estimates are all exactly the gradient; a linear f is cancelled by the linear h."""
    for name, setting in BOX_CASES:
        none = exact_variance(name, "score_function", *setting, "none")
        linear, optimal = (exact_variance(name, "score_function", *setting, c) for c in ("delta", "delta_optimal"))
        for p in ("loc", "scale"):
            assert optimal[p] <= min(linear[p], none[p]) * (1 + 1e-9) + 1e-12, (name, setting, p)
    assert exact_variance("(z-k)^2", "score_function", 0.5, 1.3, 1.0, "delta_quadratic") == {"loc": 0.0, "scale": 0.0}
    assert exact_variance("z", "score_function", -1.0, 2.0, 0.0, "delta") == {"loc": 0.0, "scale": 0.0}
    params = {"loc": torch.tensor(0.5, dtype=torch.float64), "scale": torch.tensor(1.3, dtype=torch.float64)}
    grads = score_function_gradients(cost_function("(z-k)^2", 1.0), params, 1, 1000, baseline="delta_quadratic")
    torch.testing.assert_close(grads["loc"], torch.full((1000,), -1.0, dtype=torch.float64))
    torch.testing.assert_close(grads["scale"], torch.full((1000,), 2.6, dtype=torch.float64))


def test_every_choice_of_the_baseline_argument_is_named_once():
    assert VARIANCE_REDUCTIONS == ("none", "moving_average", "optimal", "delta", "delta_optimal", "delta_quadratic")
    with pytest.raises(ValueError, match="Unknown baseline 'taylor'; choose one of none, .*delta_quadratic"):
        check_variance_reduction("taylor")


def test_the_cli_takes_a_control_variate(capsys):
    """`python -m vae variance --baseline delta_quadratic`: for (z-k)^2 every score-function estimate is exact."""
    assert main(["variance", "--cost", "(z-k)^2", "--mu", "0.5", "--samples", "5000", "--baseline",
                 "delta_quadratic", "--json"]) == 0
    score = json.loads(capsys.readouterr().out)["estimators"]["score_function"]
    assert score["baseline"] == "delta_quadratic"
    assert score["mu"]["exact_variance"] == 0.0 and score["mu"]["variance"] == pytest.approx(0.0, abs=1e-20)
    assert score["sigma"]["mean"] == pytest.approx(2.0)
