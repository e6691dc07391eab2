"""Latent-space computations against hand-checked small cases."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from vae.config import ModelConfig
from vae.latent import (
    active_units,
    decode_images,
    grid_coordinates,
    interpolate,
    latent_usage,
    manifold_grid,
    posterior_means,
    projection_2d,
    traversal,
)
from vae.model import build_model


def test_grid_coordinates_are_gaussian_quantiles():
    # Probabilities 0.25, 0.5, 0.75 -> z = -0.6745, 0, 0.6745 (the quartiles of N(0, 1)).
    np.testing.assert_allclose(grid_coordinates(3, 0.5), [-0.6744898, 0.0, 0.6744898], atol=1e-6)
    coordinates = grid_coordinates(5, 0.9)
    assert coordinates[0] == pytest.approx(-1.6448536, abs=1e-6) and coordinates[-1] == pytest.approx(1.6448536)
    with pytest.raises(ValueError):
        grid_coordinates(3, 1.0)


def test_manifold_grid_reads_like_a_picture():
    model = build_model(ModelConfig(hidden_sizes=(8,), latent_dim=2), seed=0)
    grid = manifold_grid(model, count=3, extent=0.5)
    assert grid.shape == (3, 3, 8, 8)
    q = 0.6744898
    top_left = decode_images(model, np.array([[-q, q]]))[0]  # z1 low (left), z2 high (top)
    np.testing.assert_allclose(grid[0, 0], top_left, atol=1e-6)
    np.testing.assert_allclose(grid[2, 2], decode_images(model, np.array([[q, -q]]))[0], atol=1e-6)
    with pytest.raises(ValueError, match="2-D"):
        manifold_grid(build_model(ModelConfig(hidden_sizes=(8,), latent_dim=3), seed=0))


def test_linear_and_spherical_interpolation():
    start, end = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    linear = interpolate(start, end, 3, "linear")
    np.testing.assert_allclose(linear, [[1, 0], [0.5, 0.5], [0, 1]])
    spherical = interpolate(start, end, 3, "spherical")
    np.testing.assert_allclose(spherical[1], [np.sqrt(0.5), np.sqrt(0.5)])  # stays on the unit circle
    np.testing.assert_allclose(np.linalg.norm(spherical, axis=1), 1.0)
    np.testing.assert_allclose(interpolate(start, 2 * start, 3, "spherical"), [[1, 0], [1.5, 0], [2, 0]])
    with pytest.raises(ValueError):
        interpolate(start, end, 3, "cubic")


def slerp(start, end, steps=11):
    return interpolate(np.asarray(start, dtype=np.float64), np.asarray(end, dtype=np.float64), steps, "spherical")


def norms(points):
    """Euclidean norms of the rows, scaled first: squares of entries below 1e-154 lose digits as subnormals."""
    unit = np.abs(points).max() or 1.0
    return np.linalg.norm(points / unit, axis=-1) * unit


def assert_norms_between_the_endpoints(path, start, end, rtol=1e-12):
    lengths, ends = norms(path), sorted([norms(start), norms(end)])
    assert np.all(lengths >= ends[0] * (1 - rtol)) and np.all(lengths <= ends[1] * (1 + rtol)), lengths


def assert_constant_angular_speed(path, start, end):
    cosines = path @ start / (np.linalg.norm(path, axis=1) * np.linalg.norm(start))
    angles = np.arccos(np.clip(cosines, -1, 1))  # from start's direction, for angles up to pi
    np.testing.assert_allclose(angles, np.linspace(0, angles[-1], len(path)), atol=1e-7)


def test_antiparallel_endpoints_turn_through_a_fixed_orthogonal_direction():
    start = np.array([1.0, 2.0, 0.5])
    path = slerp(start, -2 * start)  # today's code: norms around 1e6
    assert_norms_between_the_endpoints(path, start, -2 * start)
    assert_constant_angular_speed(path, start, -2 * start)
    middle = path[5] / np.linalg.norm(path[5])
    assert abs(middle @ start) < 1e-12  # half way round: orthogonal to start
    axis = np.array([0.0, 0.0, 1.0]) - 0.5 / np.linalg.norm(start) ** 2 * start  # the axis least aligned with start
    np.testing.assert_allclose(middle, axis / np.linalg.norm(axis), atol=1e-12)
    np.testing.assert_array_equal(slerp(start, -2 * start), path)  # deterministic


def test_near_antiparallel_endpoints_take_the_short_way_round():
    angle = np.pi - 1e-9
    start, end = np.array([1.0, 0.0]), 3 * np.array([np.cos(angle), np.sin(angle)])
    path = slerp(start, end)
    assert_norms_between_the_endpoints(path, start, end)
    np.testing.assert_allclose(path[5] / np.linalg.norm(path[5]), [0.0, 1.0], atol=1e-6)  # through +z2, end's side
    np.testing.assert_allclose(np.diff(np.linalg.norm(path, axis=1)), 0.2, rtol=1e-9)  # the norm goes 1 -> 3 linearly


def test_degenerate_endpoints_have_defined_paths():
    point = np.array([0.3, -0.4])
    np.testing.assert_allclose(slerp(point, point), np.repeat(point[None], 11, axis=0), rtol=1e-15)
    np.testing.assert_allclose(slerp(np.zeros(2), point), interpolate(np.zeros(2), point, 11))  # the straight line
    np.testing.assert_array_equal(slerp(np.zeros(3), np.zeros(3)), np.zeros((11, 3)))
    np.testing.assert_allclose(slerp([2.0], [-1.0], 3), [[2.0], [0.5], [-1.0]])  # 1-D: no circle, the line


def test_tiny_and_huge_vectors_follow_the_same_path_scaled():
    start, end = np.array([1.0, 0.0]), np.array([0.5, np.sqrt(3) / 2])  # 60 degrees apart
    unit_path = slerp(start, end)
    for scale in (1e-300, 1e-7, 1e150):  # squared norms underflow, or overflow, at the ends of this range
        path = slerp(scale * start, scale * end)
        np.testing.assert_allclose(path / scale, unit_path, rtol=1e-12, atol=1e-15)


def test_endpoints_are_exact_and_the_path_scale_equivariant():
    rng = np.random.default_rng(0)
    for _ in range(20):
        start, end, scale = rng.normal(size=4), rng.normal(size=4) * 3, rng.uniform(0.01, 100)
        path = slerp(start, end)
        np.testing.assert_array_equal(path[[0, -1]], [start, end])
        assert_norms_between_the_endpoints(path, start, end)
        np.testing.assert_allclose(slerp(scale * start, scale * end), scale * path, rtol=1e-10, atol=1e-12)


# Entries 0 or 1e-6 to 1e3 in size: scaled by up to 2^±60, nothing reaches the subnormals, where scaling by a power
# of 2 stops being exact (tiny vectors have a test of their own).
entries = st.one_of(st.just(0.0), st.floats(1e-6, 1e3), st.floats(-1e3, -1e-6))
vectors = arrays(np.float64, st.integers(2, 6), elements=entries)


@settings(max_examples=200, deadline=None)
@given(vectors, st.data(), st.integers(-60, 60), st.floats(1e-3, 1e3))
def test_slerp_properties_hold_for_any_endpoints(start, data, power, scale):
    """Random endpoints, including zeros, equal, antiparallel and near-antiparallel pairs. Scaling by a power of 2
    is exact in floating point, so there the path must scale bit for bit; any other scale rounds the endpoints,
    which near antiparallel moves the plane of the path by rounding / sin(angle): checked only away from there."""
    kind = data.draw(st.sampled_from(["any", "equal", "antiparallel", "near-antiparallel"]))
    other = data.draw(arrays(np.float64, len(start), elements=entries))
    end = {"any": other, "equal": start, "antiparallel": -2.5 * start,
           "near-antiparallel": -start + 1e-9 * other}[kind]
    path = slerp(start, end)
    assert np.all(np.isfinite(path))
    np.testing.assert_array_equal(path[[0, -1]], [start, end])
    assert_norms_between_the_endpoints(path, start, end, rtol=1e-9)
    np.testing.assert_array_equal(slerp(2.0**power * start, 2.0**power * end), 2.0**power * path)
    if kind != "near-antiparallel":
        np.testing.assert_allclose(slerp(scale * start, scale * end), scale * path, rtol=1e-9,
                                   atol=1e-9 * scale * np.abs(path).max())


def test_traversal_sweeps_one_dimension():
    points = traversal(np.array([1.0, 2.0, 3.0]), 1, np.array([-1.0, 0.0, 1.0]))
    np.testing.assert_array_equal(points, [[1, -1, 3], [1, 0, 3], [1, 1, 3]])


def test_active_units_by_hand():
    means = np.array([[0.0, 1.0, 0.05], [0.0, -1.0, -0.05], [0.0, 0.0, 0.0]])
    # Variances over the data: 0, 2/3, 0.00167: only the second dimension exceeds 0.01.
    np.testing.assert_array_equal(active_units(means), [False, True, False])


def test_latent_usage_matches_posterior_means(digits):
    model = build_model(ModelConfig(hidden_sizes=(16,), latent_dim=3), seed=0)
    usage = latent_usage(model, digits.x_test[:100])
    means = posterior_means(model, digits.x_test[:100])
    np.testing.assert_allclose(usage.mean_variance, means.var(axis=0), rtol=1e-5)
    with torch.no_grad():
        loc, scale = model.encode(torch.as_tensor(digits.x_test[:100]))
    closed_form = (0.5 * (loc**2 + scale**2 - 1 - torch.log(scale**2))).mean(0).numpy()
    np.testing.assert_allclose(usage.kl, closed_form, rtol=1e-5)
    assert usage.active_count == int((means.var(axis=0) > 0.01).sum())


def test_projection_keeps_2d_and_reduces_more():
    means = np.random.default_rng(0).normal(size=(50, 5)) * np.array([5, 1, 0.1, 0.1, 0.1])
    points, axis = projection_2d(means)
    assert points.shape == (50, 2) and axis == "PC"
    assert np.var(points[:, 0]) > np.var(points[:, 1])  # the first component carries the most variance
    assert projection_2d(means[:, :2])[1] == "z"
