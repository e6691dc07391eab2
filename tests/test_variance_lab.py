"""The toy lab's numbers: estimates around the exact gradient, the variance curve, overflow handled."""

import numpy as np
import pytest

from vae.variance_lab import ToySetting, toy_lab_results, variance_curve, work_normalised_variance


def test_toy_lab_estimates_centre_on_the_exact_gradient():
    lab = toy_lab_results(ToySetting("(z-k)^2", 1.0, 1.0, 0.0), num_samples=4, parameter="loc", repetitions=4000)
    assert lab.exact_gradient == pytest.approx(2.0)  # d/dmu E[z^2] = 2 mu
    for name, estimates in lab.estimates.items():
        stderr = np.sqrt(lab.variance[name] / len(estimates))
        assert abs(estimates.mean() - 2.0) < 5 * stderr
        assert np.var(estimates) == pytest.approx(lab.variance[name], rel=0.15)
    assert lab.variance["score_function"] > lab.variance["pathwise"]
    assert set(lab.seconds) == {"pathwise", "score_function"} and min(lab.seconds.values()) > 0


def test_variance_curve_falls_as_one_over_k():
    curve = variance_curve(ToySetting("cos(k z)", 0.5, 1.0, 2.0), "scale", sample_counts=(1, 16), repetitions=2000)
    for name in curve.exact:
        assert curve.exact[name][1] == pytest.approx(curve.exact[name][0] / 16)
        np.testing.assert_allclose(curve.empirical[name], curve.exact[name], rtol=0.2)


def test_overflowing_settings_give_none_not_a_traceback():
    assert toy_lab_results(ToySetting("exp(k z)", 1.0, 3.0, 10.0), 1, "loc") is None


def test_work_normalised_variance_multiplies():
    assert work_normalised_variance({"a": 2.0}, {"a": 3.0}) == {"a": 6.0}
