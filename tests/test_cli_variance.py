"""`python -m vae variance`: the JSON shape, means near the exact gradients, the table, errors as sentences."""

import json
import subprocess
import sys

import pytest

from vae.cli import main
from vae.estimators import ESTIMATORS
from vae.toy_costs import exact_gradient
from vae.toy_variances import exact_variance

FIELDS = {"mean", "variance", "stderr", "exact_variance"}


def test_json_shape_and_means_near_the_exact_gradients(capsys):
    code = main(["variance", "--cost", "(z-k)^2", "--k", "1", "--mu", "0.5", "--sigma", "1", "--samples", "50000",
                 "--baseline", "optimal", "--seed", "3", "--json"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)  # stdout holds the JSON object and nothing else
    assert {key: result[key] for key in ("cost", "mu", "sigma", "k", "samples")} == {
        "cost": "(z-k)^2", "mu": 0.5, "sigma": 1.0, "k": 1.0, "samples": 50000}
    estimators = result["estimators"]
    assert set(estimators) == set(ESTIMATORS) == {"pathwise", "score_function", "measure_valued"}
    assert set(estimators["pathwise"]) == {"mu", "sigma"}
    assert set(estimators["score_function"]) == {"baseline", "mu", "sigma"}
    assert estimators["score_function"]["baseline"] == "optimal"
    gradient = exact_gradient("(z-k)^2", 0.5, 1.0, 1.0)
    for name, summary in estimators.items():
        exact = exact_variance("(z-k)^2", name, 0.5, 1.0, 1.0, "optimal")
        for symbol, param in (("mu", "loc"), ("sigma", "scale")):
            row = summary[symbol]
            assert set(row) == FIELDS
            assert row["stderr"] == pytest.approx((row["variance"] / 50000) ** 0.5)
            assert abs(row["mean"] - gradient[param]) < 5 * row["stderr"]
            assert row["exact_variance"] == pytest.approx(exact[param])
            assert row["variance"] == pytest.approx(row["exact_variance"], rel=0.1)


def test_samples_are_drawn_in_chunks(capsys, monkeypatch):
    """More samples than one chunk: every sample is drawn, one batched call per chunk, one generator throughout."""
    calls = []

    def recording(estimator):
        def wrapped(cost, params, num_samples, repetitions, **kwargs):
            calls.append((estimator.__name__, num_samples, repetitions, id(kwargs["generator"])))
            return estimator(cost, params, num_samples, repetitions, **kwargs)
        return wrapped

    monkeypatch.setattr("vae.cli._CHUNK", 300)
    monkeypatch.setattr("vae.cli.ESTIMATORS", {name: recording(f) for name, f in ESTIMATORS.items()})
    assert main(["variance", "--cost", "cos(k z)", "--samples", "1000", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["samples"] == 1000
    for name in ("pathwise_gradients", "score_function_gradients"):
        mine = [call for call in calls if call[0] == name]
        assert [call[1:3] for call in mine] == [(1, 300), (1, 300), (1, 300), (1, 100)]
        assert len({call[3] for call in mine}) == 1


def test_the_table_shows_both_estimators():
    result = subprocess.run([sys.executable, "-m", "vae", "variance", "--cost", "|z-k|", "--samples", "20000",
                             "--baseline", "moving_average"], capture_output=True, text=True, check=True)
    lines = result.stdout.splitlines()
    assert any(line.startswith("pathwise") and " mu " in line for line in lines)
    assert any(line.startswith("score_function (baseline moving_average)") for line in lines)
    assert "exact variance" in result.stdout and "stderr" in result.stdout and "exact gradient" in result.stdout


def test_help_documents_stderr(capsys):
    with pytest.raises(SystemExit):
        main(["variance", "--help"])
    assert "sqrt(variance / samples)" in " ".join(capsys.readouterr().out.split())


def test_a_bad_cost_exits_2_with_the_choices(capsys):
    assert main(["variance", "--cost", "sin(z)"]) == 2
    error = capsys.readouterr().err
    assert "Unknown cost 'sin(z)'" in error and "(z-k)^2" in error and "cos(k z)" in error
    assert main(["variance", "--sigma", "0"]) == 2
    assert "sigma must be positive" in capsys.readouterr().err
