"""Figure builders: the data behind each chart and picture."""

import numpy as np

from vae.figures import (
    ELBO_LABELS,
    PALETTE,
    REFERENCE_LABEL,
    held_out_data,
    held_out_spec,
    image_grid,
    running_mean,
    training_curves_data,
    training_curves_spec,
)
from vae.job import EpochMetrics


def test_running_mean_matches_a_naive_trailing_mean():
    values = np.random.default_rng(0).normal(size=50)
    expected = [values[max(0, i - 4) : i + 1].mean() for i in range(50)]
    np.testing.assert_allclose(running_mean(values, 5), expected)
    np.testing.assert_array_equal(running_mean(values, 1), values)


def test_training_curves_data_is_long_form_per_quantity():
    train = {"step": np.arange(1, 4), "elbo": np.array([-3.0, -2, -1]), "reconstruction": np.zeros(3),
             "kl": np.ones(3), "grad_norm": np.ones(3)}
    frame = training_curves_data(train)
    assert len(frame) == 9 and set(frame["quantity"]) == set(ELBO_LABELS.values())
    elbo = frame[frame["quantity"] == "ELBO"]
    assert list(elbo["raw"]) == [-3.0, -2.0, -1.0]


def test_held_out_reference_is_drawn_as_minus_the_published_loss():
    frame = held_out_data([EpochMetrics(1, -110.0, -90.0, 20.0)], reference_loss=(127.3, 115.8))
    reference = frame[frame["is_reference"]]
    assert list(reference["nats"]) == [-127.3, -115.8] and set(reference["quantity"]) == {REFERENCE_LABEL}
    assert len(held_out_data([])) == 0


def test_specs_are_projector_readable_and_use_the_palette():
    for spec in (training_curves_spec(), held_out_spec()):
        assert spec["config"]["axis"]["labelFontSize"] >= 16
        assert spec["config"]["legend"]["labelFontSize"] >= 16
    colours = training_curves_spec()["layer"][1]["encoding"]["color"]["scale"]["range"]
    assert colours == [PALETTE["elbo"], PALETTE["reconstruction"], PALETTE["kl"]]


def test_image_grid_places_tiles_with_ink_dark():
    images = np.zeros((3, 2, 2))
    images[1] = 1.0  # a fully inked tile
    grid = image_grid(images, columns=2, pixel_size=3, gap=1)
    assert grid.shape == (1 + 2 * (6 + 1), 1 + 2 * (6 + 1)) and grid.dtype == np.uint8
    assert (grid[1:7, 1:7] == 255).all()  # blank tile: white paper
    assert (grid[1:7, 8:14] == 0).all()  # inked tile: black
    assert (grid[0, :] == 255).all()  # gaps are white
