"""The toy lab's numbers: estimates of all three estimators around the exact gradient, the variance curve, the
work-normalised comparison (evaluations of f and time), overflow and unreliable exact values handled."""

import contextlib
import threading
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from vae.estimators import ESTIMATORS
from vae.variance_lab import (
    TIMING_ROUNDS,
    EstimatorTiming,
    Spread,
    ToySetting,
    exact_single_sample_variance,
    paired_timings,
    time_estimators,
    toy_lab_results,
    unbiased_estimators,
    variance_curve,
    work_comparison,
)


def test_toy_lab_estimates_centre_on_the_exact_gradient():
    lab = toy_lab_results(ToySetting("(z-k)^2", 1.0, 1.0, 0.0), num_samples=4, parameter="loc", repetitions=4000)
    assert lab.exact_gradient == pytest.approx(2.0)  # d/dmu E[z^2] = 2 mu
    for name, estimates in lab.estimates.items():
        stderr = np.sqrt(lab.variance[name] / len(estimates))
        assert abs(estimates.mean() - 2.0) < 5 * stderr
        assert np.var(estimates) == pytest.approx(lab.variance[name], rel=0.15)
    assert lab.variance["score_function"] > lab.variance["pathwise"]
    assert set(lab.timing.seconds) == set(lab.estimates) == set(ESTIMATORS)
    assert all(len(values) == TIMING_ROUNDS and values.min() > 0 for values in lab.timing.seconds.values())
    assert lab.evaluations == {"pathwise": 4, "score_function": 4, "measure_valued": 16}  # K = 4 draws each


def test_variance_curve_falls_as_one_over_k():
    curve = variance_curve(ToySetting("cos(k z)", 0.5, 1.0, 2.0), "scale", sample_counts=(1, 16), repetitions=2000)
    for name in curve.exact:
        assert curve.exact[name][1] == pytest.approx(curve.exact[name][0] / 16)
        np.testing.assert_allclose(curve.empirical[name], curve.exact[name], rtol=0.2)


def test_overflowing_settings_give_none_not_a_traceback():
    assert toy_lab_results(ToySetting("exp(k z)", 1.0, 3.0, 10.0), 1, "loc") is None


def test_an_unreliable_exact_variance_is_nan_and_the_rest_still_shows(monkeypatch):
    unreliable = {"loc": float("nan"), "scale": float("nan")}
    real = exact_single_sample_variance
    monkeypatch.setattr("vae.variance_lab.exact_single_sample_variance",
                        lambda setting, name: unreliable if name == "measure_valued" else real(setting, name))
    lab = toy_lab_results(ToySetting("cos(k z)", 0.5, 1.0, 2.0), 1, "loc", repetitions=500)
    assert lab is not None and np.isnan(lab.variance["measure_valued"]) and np.isfinite(lab.variance["pathwise"])
    assert np.all(np.isfinite(lab.curve.empirical["measure_valued"]))
    work = work_comparison(lab, unbiased_estimators("cos(k z)"))
    assert np.isnan(work.by_evaluations["measure_valued"]) and work.best("evaluations") in ("pathwise",
                                                                                           "score_function")


def test_the_work_comparison_charges_evaluations_and_time():
    """Variance x evaluations and variance x seconds, each over the least of them; a zero variance beats all."""
    timing = EstimatorTiming({"pathwise": np.array([1.0, 1.0]), "score_function": np.array([0.2, 3.0]),
                              "measure_valued": np.array([2.0, 2.0])})
    lab = SimpleNamespace(variance={"pathwise": 2.0, "score_function": 1.0, "measure_valued": 0.5},
                          evaluations={"pathwise": 1, "score_function": 1, "measure_valued": 4}, timing=timing)
    work = work_comparison(lab, list(ESTIMATORS))
    assert work.by_evaluations == pytest.approx({"pathwise": 2.0, "score_function": 1.0, "measure_valued": 2.0})
    assert work.best("evaluations") == "score_function" and work.best("time") == "measure_valued"
    np.testing.assert_allclose(work.by_time["pathwise"].values, [2.0, 2.0])  # (2 x 1) / (0.5 x 2)
    np.testing.assert_allclose(work.by_time["score_function"].values, [0.2, 3.0])
    assert work.too_close_to_call()  # the score function's middle half of rounds (0.9 to 2.3) straddles 1
    lab.variance = {"pathwise": 0.0, "score_function": 1.0, "measure_valued": 0.5}
    work = work_comparison(lab, list(ESTIMATORS))
    assert work.by_evaluations["score_function"] == np.inf and work.best("time") == "pathwise"
    assert work.by_time["score_function"].low == work.by_time["score_function"].high == np.inf
    assert unbiased_estimators("1[z>k]") == ["score_function", "measure_valued"]


def test_work_ratio_multiplies_variance_by_seconds_round_by_round():
    timing = EstimatorTiming({"pathwise": np.array([1.0, 2.0, 4.0]), "score_function": np.array([3.0, 2.0, 2.0])})
    ratio = timing.work_ratio({"pathwise": 1.0, "score_function": 2.0})
    np.testing.assert_allclose(sorted(ratio.values), [1.0, 2.0, 6.0])  # 2 x (3/1, 2/2, 2/4)
    assert ratio.median == 2.0 and timing.median_seconds() == {"pathwise": 2.0, "score_function": 2.0}


def test_paired_timings_warm_up_then_interleave_the_rounds():
    calls, ticks = [], iter(range(1000))
    functions = {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}
    seconds = paired_timings(functions, rounds=4, warmup=2, clock=lambda: float(next(ticks)))
    assert calls[:4] == ["a", "b", "a", "b"]  # warm-up: two untimed rounds
    assert calls[4:] == ["a", "b", "b", "a", "a", "b", "b", "a"]  # timed rounds alternate the order
    assert {name: values.shape for name, values in seconds.items()} == {"a": (4,), "b": (4,)}
    np.testing.assert_array_equal(seconds["a"], 1.0)  # one clock tick per timed call


def test_spread_reports_median_and_quartiles():
    spread = Spread.of(np.arange(1.0, 16.0))
    assert (spread.median, spread.low, spread.high, spread.count) == (8.0, 4.5, 11.5, 15)
    assert spread.side_of(1.0) == 1 and Spread.of(np.array([0.5, 0.6])).side_of(1.0) == -1
    assert Spread.of(np.array([0.5, 2.0])).side_of(1.0) == 0  # the interval straddles 1: no winner


def test_work_normalised_ratio_for_the_lectures_example_never_changes_sides():
    """The default (z-k)^2 setting, timed twice while another thread keeps a core busy (as a training run
    does): both timings put the ratio on the same side of 1, and the interval excludes 1."""
    setting = ToySetting("(z-k)^2", 1.0, 1.0, 1.0)
    variance = {name: exact_single_sample_variance(setting, name)["loc"] for name in ("pathwise", "score_function")}
    with busy_core():
        ratios = [time_estimators(setting, 1).work_ratio(variance) for _ in range(2)]
    assert all(ratio.count == TIMING_ROUNDS for ratio in ratios)
    assert ratios[0].side_of(1.0) == ratios[1].side_of(1.0) == 1, ratios  # pathwise wins, both times


@contextlib.contextmanager
def busy_core():
    stop = threading.Event()

    def work() -> None:
        torch.set_num_threads(1)
        matrix = torch.randn(256, 256)
        while not stop.is_set():
            matrix @ matrix

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
