"""Figure builders: the data behind each chart and picture."""

import base64
import io

import numpy as np
import pytest
from PIL import Image

from vae.figures import (
    CURVE_BUCKETS,
    ELBO_LABELS,
    HELD_OUT_MARKED_EPOCHS,
    NOTE_LINE_CHARACTERS,
    PALETTE,
    REFERENCE_LABEL,
    held_out_figure,
    image_grid,
    picture_captions,
    png_data_uri,
    running_mean,
    training_curves_figure,
    with_note,
)
from vae.job import EpochMetrics


def test_running_mean_matches_a_naive_trailing_mean():
    values = np.random.default_rng(0).normal(size=50)
    expected = [values[max(0, i - 4) : i + 1].mean() for i in range(50)]
    np.testing.assert_allclose(running_mean(values, 5), expected)
    np.testing.assert_array_equal(running_mean(values, 1), values)


def test_training_curves_show_raw_and_smoothed_terms_in_their_colours():
    steps = np.arange(1, 201)
    train = {"step": steps, "elbo": -steps / 10.0, "reconstruction": -steps / 20.0, "kl": steps / 20.0,
             "grad_norm": np.ones(200)}
    figure = training_curves_figure(train)
    assert len(figure.data) == 6  # per term: faint raw values, bold running mean
    bold = {t.name: t for t in figure.data if t.line.width == 3}
    assert sorted(bold) == sorted(ELBO_LABELS.values())
    assert {name: t.line.color for name, t in bold.items()} == {label: PALETTE[key] for key, label in
                                                                 ELBO_LABELS.items()}
    np.testing.assert_allclose(bold["ELBO"].y, running_mean(-steps / 10.0, 4), rtol=1e-6)
    assert figure.layout.uirevision  # the user's zoom survives data updates


@pytest.mark.parametrize("count", [1, CURVE_BUCKETS - 1, CURVE_BUCKETS, CURVE_BUCKETS + 1, 4000])
def test_a_long_run_is_drawn_from_few_points_that_keep_every_buckets_band(count):
    """At most 2 raw points per bucket (its lowest and highest) and one mean point; the band each bucket spans,
    the last step and the mean's values are those of the full data (checked here bucket by bucket, in a loop)."""
    rng = np.random.default_rng(count)
    steps = np.arange(1, count + 1)
    elbo = (-200 + steps / 40 + rng.normal(0, 5, count)).astype(np.float32)
    train = {"step": steps, "elbo": elbo, "reconstruction": elbo - 1, "kl": np.ones(count, np.float32)}
    raw = next(t for t in training_curves_figure(train).data if t.name == "ELBO" and t.showlegend is False)
    bold = next(t for t in training_curves_figure(train).data if t.name == "ELBO" and t.line.width == 3)
    buckets = min(count, CURVE_BUCKETS)
    assert len(raw.x) <= min(count, 2 * buckets) and len(bold.x) == buckets and bold.x[-1] == count
    edges = np.linspace(0, count, buckets + 1).round().astype(int)
    for start, end in zip(edges[:-1], edges[1:], strict=True):
        inside = (raw.x > start) & (raw.x <= end)  # indices start .. end - 1 are steps start + 1 .. end
        assert raw.y[inside].min() == elbo[start:end].min() and raw.y[inside].max() == elbo[start:end].max()
    assert np.all(np.diff(raw.x) >= 0)  # in step order: the line does not double back
    np.testing.assert_allclose(bold.y, running_mean(elbo, max(1, count // 50))[edges[1:] - 1], rtol=1e-6)


def test_held_out_reference_is_drawn_as_minus_the_published_loss():
    figure = held_out_figure([EpochMetrics(1, -110.0, -90.0, 20.0)], reference_loss=(127.3, 115.8))
    reference = figure.data[-1]
    assert reference.name == REFERENCE_LABEL and reference.line.dash == "dot"
    np.testing.assert_allclose(reference.y, [-127.3, -115.8], rtol=1e-6)
    assert sorted(t.name for t in held_out_figure([]).data) == sorted(ELBO_LABELS.values())


@pytest.mark.parametrize("draw", ["per step", "per epoch"])
def test_the_elbo_stays_visible_where_a_large_beta_makes_it_equal_the_reconstruction(draw):
    """With beta = 4 the KL is squeezed to ~0 and ELBO = reconstruction - KL lies exactly under the
    reconstruction: the reconstruction must be drawn after it, dashed, so the ELBO shows between the dashes."""
    steps = np.arange(1, 51)
    if draw == "per step":
        figure = training_curves_figure({"step": steps, "elbo": -steps / 5.0, "reconstruction": -steps / 5.0,
                                         "kl": np.zeros(50)})
    else:
        figure = held_out_figure([EpochMetrics(e, -30.0 + e, -30.0 + e, 0.0) for e in range(1, 6)])
    bold = [t for t in figure.data if t.line.width == 3 and t.showlegend is not False]
    order = [t.name for t in bold]
    elbo, reconstruction = bold[order.index("ELBO")], bold[order.index("reconstruction")]
    assert order.index("reconstruction") > order.index("ELBO")  # drawn on top
    assert reconstruction.line.dash not in (None, "solid") and elbo.line.dash in (None, "solid")
    legend = sorted(bold, key=lambda t: t.legendrank)  # the legend still reads ELBO, reconstruction, KL
    assert [t.name for t in legend] == list(ELBO_LABELS.values())


@pytest.mark.parametrize("epochs", [1, HELD_OUT_MARKED_EPOCHS, HELD_OUT_MARKED_EPOCHS + 1, 500])
def test_held_out_epochs_are_marked_only_while_they_can_be_told_apart(epochs):
    figure = held_out_figure([EpochMetrics(e, -30.0, -25.0, 5.0) for e in range(1, epochs + 1)])
    expected = "lines+markers" if epochs <= HELD_OUT_MARKED_EPOCHS else "lines"
    assert [t.mode for t in figure.data] == [expected] * 3
    assert all(len(t.x) == epochs for t in figure.data)


def test_figures_are_projector_readable():
    figure = held_out_figure([EpochMetrics(1, -110.0, -90.0, 20.0)])
    assert figure.layout.font.size >= 16 and figure.layout.xaxis.tickfont.size >= 16
    assert all(t.line.width >= 2 for t in figure.data)


def test_image_grid_places_tiles_with_ink_dark():
    images = np.zeros((3, 2, 2))
    images[1] = 1.0  # a fully inked tile
    grid = image_grid(images, columns=2, pixel_size=3, gap=1)
    assert grid.shape == (1 + 2 * (6 + 1), 1 + 2 * (6 + 1)) and grid.dtype == np.uint8
    assert (grid[1:7, 1:7] == 255).all()  # blank tile: white paper
    assert (grid[1:7, 8:14] == 0).all()  # inked tile: black
    assert (grid[0, :] == 255).all()  # gaps are white


def test_png_data_uri_round_trips():
    grid = image_grid(np.random.default_rng(0).random((4, 3, 3)), columns=2)
    uri = png_data_uri(grid)
    assert uri.startswith("data:image/png;base64,")
    decoded = np.asarray(Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))))
    np.testing.assert_array_equal(decoded, grid)


def test_transform_figure_keeps_heavy_tails_in_view():
    from vae.figures import transform_figure

    noise = np.array([0.1, 0.5, 0.999999])
    z = np.array([-3.0, 0.0, 3e5])  # one Cauchy-like outlier
    figure = transform_figure(noise, z, np.linspace(0.01, 0.99, 5), np.linspace(-30, 30, 5), (0.5, 0.0), "u")
    assert tuple(figure.layout.yaxis.range) == pytest.approx((-33.0, 33.0))
    assert figure.data[-1].name == "picked point" and list(figure.data[-1].x) == [0.5]


def test_density_and_posterior_figures():
    from vae.figures import density_figure, posterior_figure

    samples = np.random.default_rng(0).normal(size=1000)
    grid = np.linspace(-3, 3, 50)
    figure = density_figure(samples, grid, np.exp(-grid**2 / 2) / np.sqrt(2 * np.pi), "eps", "ε")
    assert figure.data[0].histnorm == "probability density" and figure.data[0].marker.color == PALETTE["eps"]
    posterior = posterior_figure(np.array([0.0, 1.0]), np.array([0.5, 0.2]), np.zeros((10, 2)))
    mu = posterior.data[1]
    assert list(mu.y) == [0.0, 1.0] and list(mu.error_y.array) == pytest.approx([0.5, 0.2])
    assert len(posterior.data[0].x) == 20  # every draw of every dimension


def estimator_figures() -> dict:
    """Every chart of the Estimators page, from small made-up data."""
    from vae.figures import (
        estimates_histogram_figure,
        race_elbo_figure,
        race_variance_figure,
        tensor_variance_figure,
        variance_curve_figure,
    )

    rng = np.random.default_rng(0)
    counts = np.array([1, 2, 4, 8, 16, 32, 64, 128, 256])
    exact = {"pathwise": 4.0 / counts, "score_function": 15.0 / counts}
    steps = np.arange(1, 101)
    return {
        "histogram": estimates_histogram_figure({"pathwise": rng.normal(0, 2, 3000),
                                                 "score_function": rng.standard_t(3, 3000) * 4}, 0.0, "estimate"),
        "curve": variance_curve_figure(counts, exact, exact),
        "tensors": tensor_variance_figure(["w", "b"], {"pathwise": np.array([1e-4, 2e-3]),
                                                       "score_function": np.array([1e-3, 5e-2])}),
        "race ELBO": race_elbo_figure({name: {"step": steps, "elbo": -100.0 + steps / 10} for name in exact}),
        "race variance": race_variance_figure({"pathwise": {"step": steps[::25], "variance": np.full(4, 1e-5)},
                                               "score_function": {"step": steps[::25], "variance": np.full(4, 1e-2)}}),
    }


@pytest.mark.parametrize("name", ["histogram", "curve", "tensors", "race ELBO", "race variance"])
def test_estimator_figures_fit_their_titles_and_legends(name):
    """Axes grow their margins to fit labels and titles; titles are short enough for a half-width chart, and
    the legend names the two estimators once each (one row, not four)."""
    figure = estimator_figures()[name]
    assert figure.layout.xaxis.automargin and figure.layout.yaxis.automargin
    assert len(figure.layout.yaxis.title.text) <= 20
    legend = [t.name.split(",")[0] for t in figure.data if t.showlegend is not False]  # "pathwise, sd 2.0"
    assert legend == ["pathwise", "score function"]


@pytest.mark.parametrize("name", ["histogram", "curve", "tensors", "race variance"])
def test_log_axes_label_decades_at_full_size(name):
    """No small 2s and 5s between the decades (plotly's default over a few decades) and no superscript
    exponents (drawn at 70% of the tick font): labels like 0.01 and 1e−3, with unlabelled minor ticks."""
    axis = estimator_figures()[name].layout.yaxis
    assert axis.type == "log" and axis.exponentformat == "e"
    assert axis.dtick == 1 or axis.tickmode == "array"


def test_log_axis_rules():
    from vae.figures import log_axis

    wide = log_axis(np.array([1e-4, 0.3]))
    assert wide["dtick"] == 1 and wide["minor"]["dtick"] == "D1" and "tickvals" not in wide
    middle = log_axis(np.array([0.05, 0.8]), np.array([np.nan, 0.0]))  # non-finite and zero values are ignored
    assert middle["tickvals"] == pytest.approx([0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5])
    assert middle["ticktext"][:3] == ["0.01", "0.02", "0.05"]
    assert "dtick" not in log_axis(np.array([0.3, 0.6])) and "tickvals" not in log_axis(np.array([0.3, 0.6]))
    assert log_axis(np.array([2e-5, 1e-3]))["ticktext"][:2] == ["1e−5", "2e−5"]


@pytest.mark.parametrize("note", ["The first point appears at the end of the first epoch.",
                                  "The first steps appear in a moment.", "Short."])
def test_a_charts_note_is_broken_into_short_lines_on_an_opaque_box(note):
    """plotly never wraps: a one-line note ran off a third-of-the-screen chart and over its tick labels."""
    annotation = with_note(held_out_figure([]), note).layout.annotations[0]
    lines = annotation.text.split("<br>")
    assert all(len(line) <= NOTE_LINE_CHARACTERS for line in lines) and " ".join(lines) == note
    assert annotation.bgcolor == "white"
    assert not with_note(held_out_figure([]), "").layout.annotations  # no note, no box


@pytest.mark.parametrize(("posterior", "decoded_from"), [("gaussian", "μ(x)"), ("laplace", "μ(x)"),
                                                         ("gamma", "E[z|x] = α(x)/β(x)"),
                                                         ("categorical", "likeliest category")])
def test_the_pictures_say_which_point_of_q_each_image_is_decoded_from(posterior, decoded_from):
    reconstructions, samples = picture_captions(posterior)
    assert decoded_from in reconstructions and "z ~ p(z)" in samples
    assert ("Gamma(1, 1)" in samples) == (posterior == "gamma")
