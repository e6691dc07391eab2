"""Latent-space computations against hand-checked small cases."""

import numpy as np
import pytest
import torch

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
