"""Figures: data in, plotly figure (or picture) out. Projector-readable (fonts >= 16 px, lines >= 2 px),
one colour-blind-safe colour per quantity, the same on every page."""

from __future__ import annotations

import base64
import io
import math
import textwrap
from collections.abc import Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
from PIL import Image

from vae.metrics import EpochMetrics

# Okabe-Ito, a colour-blind-safe palette; the same quantity has the same colour on every page and in the text.
PALETTE = {
    "elbo": "#0072B2",
    "reconstruction": "#009E73",
    "kl": "#D55E00",
    "reference": "#000000",
    "mu": "#E69F00",
    "sigma": "#CC79A7",
    "eps": "#56B4E9",
    "z": "#000000",
    "pathwise": "#009E73",
    "score_function": "#D55E00",
    "measure_valued": "#0072B2",
    "gumbel_softmax": "#0072B2",
    "straight_through": "#CC79A7",
}
# Short legend labels: a projector has room for few words; the page text spells out each term.
ELBO_LABELS = {"elbo": "ELBO", "reconstruction": "reconstruction", "kl": "KL"}
REFERENCE_LABEL = "published (pytorch/examples)"
FONT_SIZE = 16


PROJECTOR_SCALE = 1.2  # presentation mode: text and lines this much larger


def for_projector(figure: go.Figure, scale: float = PROJECTOR_SCALE) -> go.Figure:
    """The same figure with every font and line `scale` times larger (presentation mode), in place."""
    def grow(size: float | None, default: float) -> float:
        return round((size or default) * scale, 1)

    layout = figure.layout
    layout.font.size = grow(layout.font.size, FONT_SIZE)
    for axis in [*figure.select_xaxes(), *figure.select_yaxes()]:
        axis.tickfont.size = grow(axis.tickfont.size, FONT_SIZE)
        axis.title.font.size = grow(axis.title.font.size, FONT_SIZE)
    if layout.title.text:
        layout.title.font.size = grow(layout.title.font.size, FONT_SIZE + 2)
    layout.legend.font.size = grow(layout.legend.font.size, FONT_SIZE)
    for annotation in layout.annotations:
        annotation.font.size = grow(annotation.font.size, FONT_SIZE)
    margin = layout.margin
    for side in ("l", "r", "t", "b"):
        if getattr(margin, side) is not None:
            setattr(margin, side, round(getattr(margin, side) * scale))
    for trace in figure.data:
        if "line" in trace and trace.line.width:
            trace.line.width = grow(trace.line.width, 2)
    return figure


NOTE_LINE_CHARACTERS = 26  # a third of a 1280 px screen holds about this many at 16 px


def with_note(figure: go.Figure, note: str) -> go.Figure:
    """`figure` with `note` in the middle of its plot (a chart that has no data yet says why), in place: broken
    into short lines (plotly never wraps text, and a long line ran off a narrow chart) on an opaque box, so the
    grid and tick labels do not show through."""
    if note:
        figure.add_annotation(text="<br>".join(textwrap.wrap(note, NOTE_LINE_CHARACTERS)), xref="paper",
                              yref="paper", x=0.5, y=0.5, showarrow=False, bgcolor="white",
                              font={"size": FONT_SIZE, "color": "#555555"})
    return figure


def coloured(quantity: str, text: str) -> str:
    """HTML for `text` in the quantity's colour, so the prose uses the charts' colours."""
    return f'<b style="color:{PALETTE[quantity]}">{text}</b>'


def _layout(x_title: str, height: int) -> dict[str, Any]:
    # The stand-off keeps the two axes' first tick labels apart in the corner where they meet.
    axis = {"title": {"font": {"size": FONT_SIZE + 2}}, "tickfont": {"size": FONT_SIZE}, "gridcolor": "#e5e5e5",
            "zeroline": False, "ticklabelstandoff": 4}
    return {
        "height": height,
        "margin": {"l": 70, "r": 20, "t": 40, "b": 60},
        "font": {"size": FONT_SIZE},
        "plot_bgcolor": "white",
        "paper_bgcolor": "white",
        "xaxis": {**axis, "title": {**axis["title"], "text": x_title}},
        "yaxis": {**axis, "title": {**axis["title"], "text": "nats per example"}},
        "legend": {"orientation": "h", "y": 1.0, "yanchor": "bottom", "x": 0, "font": {"size": FONT_SIZE}},
        "hovermode": "x unified",
        # Zoom and pan survive data updates as long as this stays the same.
        "uirevision": "keep-zoom",
    }


# Drawn in this order: the dashed reconstruction goes over the ELBO, so where the two coincide (a large β
# squeezes the KL to zero and ELBO = reconstruction - KL) the ELBO still shows between the dashes.
ELBO_DRAWING_ORDER = ("kl", "elbo", "reconstruction")
ELBO_DASHES = {"elbo": "solid", "reconstruction": "dash", "kl": "solid"}


def _elbo_layout(x_title: str, height: int) -> dict[str, Any]:
    layout = _layout(x_title, height)
    # The legend across the whole figure, in one row even in a third of a 1280 px screen.
    layout["legend"].update(itemwidth=30, x=-0.1, tracegroupgap=0)
    return layout


def _elbo_line(key: str, width: float) -> dict[str, Any]:
    return {"color": PALETTE[key], "width": width, "dash": ELBO_DASHES[key]}


CURVE_BUCKETS = 400  # a chart is ~450 px wide: more points per trace cost a refresh's bytes, not its look


def training_curves_figure(train: dict[str, np.ndarray], height: int = 360) -> go.Figure:
    """Per-step training ELBO terms: faint raw values under a bold trailing mean. A long run is drawn from at most
    `CURVE_BUCKETS` buckets of steps (the raw values as each bucket's lowest and highest, the mean at its last
    step): the chart looks the same, and each refresh of a class's tabs sends a tenth of the data."""
    steps = np.asarray(train["step"])
    window = max(1, len(steps) // 50)
    figure = go.Figure(layout=_elbo_layout("SGD step", height))
    ends = bucket_ends(len(steps), CURVE_BUCKETS)
    for key in ELBO_DRAWING_ORDER:
        values = np.asarray(train[key], dtype=np.float32)
        raw_steps, raw_values = envelope(steps, values, ends)
        figure.add_scatter(x=raw_steps, y=raw_values, mode="lines", line={"color": PALETTE[key], "width": 1},
                           opacity=0.3, name=ELBO_LABELS[key], legendgroup=key, showlegend=False, hoverinfo="skip")
        figure.add_scatter(x=steps[ends - 1], y=running_mean(values, window)[ends - 1].astype(np.float32), mode="lines",
                           line=_elbo_line(key, 3), name=ELBO_LABELS[key], legendgroup=key,
                           legendrank=list(ELBO_LABELS).index(key), hovertemplate="%{y:.2f}")
    return figure


HELD_OUT_MARKED_EPOCHS = 30


def held_out_figure(
    held_out: Sequence[EpochMetrics], reference_loss: Sequence[float] | None = None, height: int = 360
) -> go.Figure:
    """Held-out ELBO terms per epoch; the published run as a dashed line (its test loss is -ELBO)."""
    figure = go.Figure(layout=_elbo_layout("epoch", height))
    epochs = np.array([m.epoch for m in held_out])
    # Markers while each epoch can be told apart; past that they merge into a thick band, and every one is an SVG
    # element the browser redraws each second (about a sixth of a training tab's drawing time at 200 epochs).
    mode = "lines+markers" if len(epochs) <= HELD_OUT_MARKED_EPOCHS else "lines"
    for key in ELBO_DRAWING_ORDER:
        values = np.array([getattr(m, key) for m in held_out], dtype=np.float32)
        figure.add_scatter(x=epochs, y=values, mode=mode, name=ELBO_LABELS[key], hovertemplate="%{y:.2f}",
                           line=_elbo_line(key, 3), marker={"size": 7}, legendrank=list(ELBO_LABELS).index(key))
    if reference_loss:
        figure.add_scatter(x=np.arange(1, len(reference_loss) + 1), y=-np.asarray(reference_loss, dtype=np.float32),
                           mode="lines", name=REFERENCE_LABEL, hovertemplate="%{y:.1f}",
                           line={"color": PALETTE["reference"], "width": 3, "dash": "dot"})
    figure.update_xaxes(rangemode="tozero", tickformat="d")
    return figure


def bucket_ends(count: int, buckets: int) -> np.ndarray:
    """One past the last index of each of at most `buckets` consecutive, near-equal runs of `count` points."""
    return np.unique(np.linspace(0, count, min(count, buckets) + 1).round().astype(int))[1:]


def envelope(x: np.ndarray, y: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each bucket (see `bucket_ends`) as its lowest and its highest point, in the order they occur: a line through
    them covers the same band as one through every point."""
    if len(ends) == len(y):  # one point per bucket: nothing to thin
        return x, y
    starts = np.concatenate(([0], ends[:-1]))
    bucket = np.repeat(np.arange(len(ends)), ends - starts)
    by_bucket_then_value = np.lexsort((y, bucket))  # bucket k fills positions starts[k] .. ends[k] - 1
    lowest, highest = by_bucket_then_value[starts], by_bucket_then_value[ends - 1]
    picked = np.unique(np.concatenate([lowest, highest]))  # in step order; a one-point bucket once
    return x[picked], y[picked]


def running_mean(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing mean over `window` points (shorter at the start), so the curve never leads the data."""
    if window <= 1 or len(values) == 0:
        return np.asarray(values, dtype=np.float64)
    sums = np.cumsum(np.insert(np.asarray(values, dtype=np.float64), 0, 0.0))
    counts = np.minimum(np.arange(1, len(values) + 1), window)
    return (sums[1:] - sums[np.arange(1, len(values) + 1) - counts]) / counts


def picture_captions(posterior: str) -> tuple[str, str]:
    """What the Train page's two pictures show for a run with this posterior family: the reconstructions'
    caption, then the prior samples'. A categorical z has no mean: it decodes each variable's likeliest category,
    and p(z) is uniform over the categories; a Gamma z decodes from its mean α(x)/β(x)."""
    if posterior == "categorical":
        return ("Held-out originals (top), decoded from each variable's likeliest category (bottom).",
                "The decoder applied to 20 fixed draws z ~ p(z), a uniform category per variable.")
    if posterior == "gamma":
        return ("Held-out originals (top), decoded from their mean E[z|x] = α(x)/β(x) (bottom).",
                "The decoder applied to 20 fixed draws z ~ p(z) = Gamma(1, 1).")
    return ("Held-out originals (top), decoded from their μ(x) (bottom).",
            "The decoder applied to 20 fixed draws z ~ p(z).")


def image_grid(images: np.ndarray, columns: int, pixel_size: int = 6, gap: int = 2) -> np.ndarray:
    """Tile images (N, H, W) in [0, 1] into one uint8 picture, each pixel a pixel_size square (crisp on a
    projector: the browser would blur a small image it scales up), with white gaps between tiles."""
    n, h, w = images.shape
    rows = -(-n // columns)
    cell_h, cell_w = h * pixel_size + gap, w * pixel_size + gap
    canvas = np.full((rows * cell_h + gap, columns * cell_w + gap), 255, dtype=np.uint8)
    tiles = 255 - np.clip(np.nan_to_num(images), 0, 1) * 255  # dark ink on white paper, as digits are drawn
    tiles = tiles.round().astype(np.uint8).repeat(pixel_size, axis=1).repeat(pixel_size, axis=2)
    for i, tile in enumerate(tiles):
        top, left = gap + (i // columns) * cell_h, gap + (i % columns) * cell_w
        canvas[top : top + h * pixel_size, left : left + w * pixel_size] = tile
    return canvas


def png_data_uri(grid: np.ndarray) -> str:
    """A uint8 picture as an inline PNG: no separate media request that a fast refresh could race."""
    buffer = io.BytesIO()
    Image.fromarray(grid, mode="L").save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


# --- the Reparameterization page ---------------------------------------------------------------------------------


def _plain_layout(x_title: str, y_title: str, height: int) -> dict[str, Any]:
    layout = _layout(x_title, height)
    layout["yaxis"]["title"]["text"] = y_title
    layout.pop("uirevision")
    layout["hovermode"] = "closest"
    return layout


def transform_figure(noise: np.ndarray, z: np.ndarray, curve_noise: np.ndarray, curve_z: np.ndarray,
                     picked: tuple[float, float], noise_name: str = "ε", height: int = 420) -> go.Figure:
    """Draws of the noise (x) against z (y), the transform z = g(params, noise) through them, and the picked
    point whose dz/dparams the page prints. The y range follows the curve, so heavy tails do not squash it."""
    figure = go.Figure(layout=_plain_layout(f"base noise {noise_name}", "z = g(params, noise)", height))
    figure.add_scatter(x=noise.astype(np.float32), y=z.astype(np.float32), mode="markers", name="draws",
                       marker={"color": PALETTE["eps"], "size": 7, "opacity": 0.5})
    # The curve over the dots, dashed: for a location-scale family every dot lies on it.
    figure.add_scatter(x=curve_noise.astype(np.float32), y=curve_z.astype(np.float32), mode="lines",
                       name="z = g(params, noise)", line={"color": PALETTE["z"], "width": 3, "dash": "dash"})
    figure.add_scatter(x=[picked[0]], y=[picked[1]], mode="markers", name="picked point",
                       marker={"color": "white", "size": 18, "symbol": "circle",
                               "line": {"color": "black", "width": 3}}, cliponaxis=False)
    low, high = float(np.min(curve_z)), float(np.max(curve_z))
    margin = 0.05 * (high - low or 1.0)
    figure.update_xaxes(range=[float(curve_noise[0]), float(curve_noise[-1])])
    figure.update_yaxes(range=[low - margin, high + margin])
    return figure


def density_figure(samples: np.ndarray, grid: np.ndarray, density: np.ndarray, quantity: str, title: str,
                   height: int = 320) -> go.Figure:
    """A histogram of draws (as a density) with the exact density drawn over it."""
    low, high = float(grid[0]), float(grid[-1])
    shown = samples[(samples >= low) & (samples <= high)].astype(np.float32)
    figure = go.Figure(layout=_plain_layout(title, "density", height))
    figure.add_histogram(x=shown, histnorm="probability density", name="draws", nbinsx=60,
                         marker={"color": PALETTE[quantity], "opacity": 0.55})
    figure.add_scatter(x=grid.astype(np.float32), y=density.astype(np.float32), mode="lines", name="exact density",
                       line={"color": "black", "width": 3})
    figure.update_xaxes(range=[low, high])
    return figure


def implicit_gradient_figure(z: np.ndarray, torch_gradient: np.ndarray, grid: np.ndarray, cdf_gradient: np.ndarray,
                             symbol: str, height: int = 320) -> go.Figure:
    """dz/dparam at each draw as torch backpropagates it (dots) over the same derivative from the CDF,
    -(dF/dparam)/q(z) (dashed line): with no g to differentiate, the dots still lie on the curve."""
    figure = go.Figure(layout=_plain_layout("draw z", f"dz/d{symbol}", height))
    figure.add_scatter(x=z.astype(np.float32), y=torch_gradient.astype(np.float32), mode="markers",
                       name="torch rsample + autograd", marker={"color": PALETTE["eps"], "size": 7, "opacity": 0.5})
    figure.add_scatter(x=grid.astype(np.float32), y=cdf_gradient.astype(np.float32), mode="lines",
                       name="−(∂F/∂param) / q(z)", line={"color": PALETTE["z"], "width": 3, "dash": "dash"})
    figure.update_xaxes(range=[float(grid[0]), float(grid[-1])])
    return figure


def posterior_figure(loc: np.ndarray, scale: np.ndarray, z_samples: np.ndarray, height: int = 380,
                     names: tuple[str, str] = ("z = μ + σ·ε", "μ(x) ± σ(x)")) -> go.Figure:
    """Per latent dimension: the encoder's mu(x) with a ±sigma(x) bar, and draws z = mu + sigma * eps (`names`
    says otherwise for a posterior drawn another way)."""
    dims = np.arange(1, len(loc) + 1)
    figure = go.Figure(layout=_plain_layout("latent dimension", "value", height))
    jitter = np.random.default_rng(0).uniform(-0.18, 0.18, size=z_samples.shape)
    figure.add_scatter(x=(dims + jitter).ravel().astype(np.float32), y=z_samples.ravel().astype(np.float32),
                       mode="markers", name=names[0], marker={"color": PALETTE["z"], "size": 5, "opacity": 0.4})
    figure.add_scatter(x=dims, y=loc.astype(np.float32), mode="markers", name=names[1],
                       marker={"color": PALETTE["mu"], "size": 14, "symbol": "diamond"},
                       error_y={"type": "data", "array": scale.astype(np.float32), "color": PALETTE["sigma"],
                                "thickness": 3, "width": 8})
    figure.update_xaxes(tickmode="linear", dtick=1 if len(loc) <= 20 else 5)
    return figure


# --- the Estimators page -----------------------------------------------------------------------------------------

# Short names for the legends, so each fits one row of a half-width chart; the page text gives the synonyms
# (reparameterization, REINFORCE).
ESTIMATOR_LABELS = {"pathwise": "pathwise", "score_function": "score function", "measure_valued": "measure-valued",
                    "gumbel_softmax": "Gumbel-softmax", "straight_through": "straight-through"}


def log_axis(*arrays: np.ndarray) -> dict[str, Any]:
    """Settings for a logarithmic axis over the given values, readable on a projector. plotly's own choice for
    a range of one to a few decades labels the 2s and 5s between powers of ten in small digits that overlap;
    instead, over at least 2.5 decades only whole decades are labelled (unlabelled minor ticks between; over more
    than 8, every few decades), over 1 to 2.5 decades 1, 2 and 5 times each power of ten, and under one decade
    plotly's fully labelled ticks stay."""
    values = np.concatenate([np.ravel(np.asarray(a, dtype=np.float64)) for a in arrays] or [np.zeros(0)])
    values = values[np.isfinite(values) & (values > 0)]
    # Major ticks longer than the minor ones, so the labels stand clear of every tick mark.
    axis: dict[str, Any] = {"type": "log", "exponentformat": "e", "automargin": True, "ticks": "outside",
                            "ticklen": 7}
    span = float(np.log10(values.max() / values.min())) if values.size else 0.0
    if span > 8:  # labels every few decades, so that they stay apart; a minor tick at every decade
        return {**axis, "dtick": math.ceil(span / 8), "minor": {"dtick": 1, "ticks": "outside", "ticklen": 3,
                                                                "showgrid": False}}
    if span >= 2.5:
        return {**axis, "dtick": 1, "minor": {"dtick": "D1", "ticks": "outside", "ticklen": 3, "showgrid": False}}
    if span >= 1:
        decades = range(int(np.floor(np.log10(values.min()))), int(np.ceil(np.log10(values.max()))) + 1)
        ticks = [m * 10.0**d for d in decades for m in (1, 2, 5)]
        return {**axis, "tickmode": "array", "tickvals": ticks, "ticktext": [_log_label(t) for t in ticks]}
    return axis


def _log_label(value: float) -> str:
    """0.02, 0.5, 20 ... as plain numbers, 2e−3 and 5e+3 beyond them: plotly's own "e" style for decades."""
    if 1e-2 <= value < 1e3:
        return f"{value:g}"
    mantissa, exponent = f"{value:.0e}".split("e")
    return f"{mantissa}e{'+' if int(exponent) > 0 else '−'}{abs(int(exponent))}"


def _estimator_layout(x_title: str, y_title: str, height: int) -> dict[str, Any]:
    """Axes that grow their margins to fit their labels and titles (automargin), so no title is cut off."""
    layout = _plain_layout(x_title, y_title, height)
    for axis in ("xaxis", "yaxis"):
        layout[axis]["automargin"] = True
    return layout


def estimates_histogram_figure(estimates: dict[str, np.ndarray], exact: float, x_title: str,
                               height: int = 380) -> go.Figure:
    """Many gradient estimates per estimator, each histogram drawn as its outline in the estimator's colour (three
    filled ones overlaid would mix their colours), with the exact gradient as a vertical line. The density axis is
    logarithmic and the legend gives each standard deviation: a score-function histogram is often a tall spike with
    long tails, which on a linear axis would look like the *less* noisy one."""
    everything = np.concatenate(list(estimates.values()))
    low, high = np.percentile(everything, [0.5, 99.5])
    if np.isfinite(exact):  # an exact gradient that cannot be computed reliably (nan) is not drawn
        low, high = min(low, exact), max(high, exact)
    edges = np.linspace(low, high, 81) if high > low else np.array([low - 0.5, low + 0.5])
    figure = go.Figure(layout=_estimator_layout(x_title, "density (log)", height))
    densities = [np.histogram(values, bins=edges)[0] / (len(values) * (edges[1] - edges[0]))
                 for values in estimates.values()]
    shown = np.concatenate(densities)
    floor = shown[shown > 0].min() / 100  # empty bins drawn below the axis, so each outline drops to its foot
    for (name, values), density in zip(estimates.items(), densities, strict=True):
        steps = np.maximum(density, floor)
        figure.add_scatter(x=edges.astype(np.float32), y=np.append(steps, steps[-1]).astype(np.float32),
                           mode="lines", line={"color": PALETTE[name], "width": 3, "shape": "hv"},
                           name=f"{ESTIMATOR_LABELS[name]}, sd {np.std(values):.3g}",
                           hovertemplate=f"{ESTIMATOR_LABELS[name]}: %{{y:.3g}}<extra></extra>")
    if np.isfinite(exact):
        figure.add_vline(x=exact, line={"color": "black", "width": 3, "dash": "dash"})
        figure.add_annotation(x=exact, y=0.95, yref="paper", text=" exact gradient", showarrow=False,
                              xanchor="left", font={"size": FONT_SIZE}, bgcolor="rgba(255,255,255,0.8)")
    figure.update_xaxes(range=[edges[0], edges[-1]])
    top = np.log10(shown.max()) + 0.15
    figure.update_yaxes(**log_axis(*densities), range=[np.log10(floor * 100) - 0.3, top])
    return figure


def variance_curve_figure(num_samples: np.ndarray, empirical: dict[str, np.ndarray], exact: dict[str, np.ndarray],
                          height: int = 380) -> go.Figure:
    """Variance against K on log-log axes: lines exact (slope -1: variance / K), circles measured. The legend
    names the estimators only (one row); the page says which mark is which. A variance of exactly 0 has no place
    on a log axis: that estimator's legend entry says so, and its measured rounding errors (1e-32, say) are not
    drawn; nor is any value 12 decades below the largest."""
    figure = go.Figure(layout=_estimator_layout("samples per estimate K", "variance", height))
    everything = np.concatenate([*exact.values(), *empirical.values()]).astype(np.float64)
    floor = 1e-12 * max((v for v in everything if np.isfinite(v)), default=0.0)
    for name in empirical:
        zero = bool(np.all(exact[name] == 0))
        label = f"{ESTIMATOR_LABELS[name]}: 0" if zero else ESTIMATOR_LABELS[name]
        lines, marks = (np.full(len(num_samples), np.nan) if zero else np.asarray(values, dtype=np.float64)
                        for values in (exact[name], empirical[name]))
        marks = np.where(marks > floor, marks, np.nan)
        figure.add_scatter(x=num_samples, y=lines, mode="lines", name=label, legendgroup=name,
                           line={"color": PALETTE[name], "width": 3}, hovertemplate="exact %{y:.3g}")
        figure.add_scatter(x=num_samples, y=marks, mode="markers", name=label, legendgroup=name, showlegend=False,
                           hovertemplate="measured %{y:.3g}",
                           marker={"color": PALETTE[name], "size": 11, "symbol": "circle-open", "line": {"width": 3}})
    figure.update_xaxes(type="log", tickmode="array", tickvals=list(num_samples),
                        ticktext=[str(k) for k in num_samples])
    figure.update_yaxes(**log_axis(everything[everything > floor]))
    return figure


def tensor_variance_figure(names: list[str], variances: dict[str, np.ndarray], height: int = 380) -> go.Figure:
    """Per encoder weight tensor, the variance of each estimator's gradient estimates (log scale)."""
    figure = go.Figure(layout=_estimator_layout("encoder weight tensor", "variance per element", height))
    for name, values in variances.items():
        figure.add_bar(x=names, y=values.astype(np.float64), name=ESTIMATOR_LABELS[name],
                       marker={"color": PALETTE[name]})
    # Two lines per name ("encoder.0.0" over "weight"): narrow enough to stay level at projector sizes, where
    # plotly would otherwise tilt them into each other's boxes.
    figure.update_xaxes(tickmode="array", tickvals=names, ticktext=["<br>".join(n.rsplit(".", 1)) for n in names],
                        title_standoff=12)
    figure.update_yaxes(**log_axis(*variances.values()))
    figure.update_layout(barmode="group")
    return figure


def race_elbo_figure(curves: dict[str, dict[str, np.ndarray]], height: int = 360) -> go.Figure:
    """The training ELBO of each racer (a trailing mean of the per-step values) on one chart."""
    figure = go.Figure(layout=_layout("SGD step", height))
    figure.update_xaxes(automargin=True)
    figure.update_yaxes(title={"text": "ELBO (nats)"}, automargin=True)
    for name, train in curves.items():
        window = max(1, len(train["step"]) // 50)
        figure.add_scatter(x=train["step"], y=running_mean(train["elbo"], window).astype(np.float32), mode="lines",
                           name=ESTIMATOR_LABELS[name], line={"color": PALETTE[name], "width": 3},
                           hovertemplate="%{y:.2f}")
    return figure


def race_variance_figure(probes: dict[str, dict[str, np.ndarray]], height: int = 360) -> go.Figure:
    """Each racer's encoder-gradient variance, measured along the way (log scale)."""
    figure = go.Figure(layout=_layout("SGD step", height))
    figure.update_xaxes(automargin=True)
    figure.update_yaxes(title={"text": "gradient variance"}, **log_axis(*(p["variance"] for p in probes.values())))
    for name, probe in probes.items():
        figure.add_scatter(x=probe["step"], y=probe["variance"].astype(np.float64), mode="lines+markers",
                           name=ESTIMATOR_LABELS[name], line={"color": PALETTE[name], "width": 3},
                           hovertemplate="%{y:.3g}")
    return figure


# --- discrete latents (vae.discrete) ----------------------------------------------------------------------------

CATEGORY_COLOURS = ("#E69F00", "#56B4E9", "#009E73")  # the three corners of the simplex


def simplex_figure(relaxed: np.ndarray, hard: np.ndarray, height: int = 380) -> go.Figure:
    """Gumbel-softmax draws y in the triangle of K = 3 probabilities, each coloured by the category Gumbel-max
    picks from the same noise: cold draws crowd the corners (one-hot), warm ones the middle."""
    # The legend to the right of the triangle, where it cannot cover a corner's label.
    figure = go.Figure(layout={**_plain_layout("", "", height), "margin": {"l": 50, "r": 20, "t": 50, "b": 40},
                               "legend": {"orientation": "v", "y": 0.5, "yanchor": "middle", "x": 1.0,
                                          "xanchor": "left", "font": {"size": FONT_SIZE}}})
    for k, colour in enumerate(CATEGORY_COLOURS):
        chosen = relaxed[hard == k]
        figure.add_scatterternary(a=chosen[:, 0], b=chosen[:, 1], c=chosen[:, 2], mode="markers",
                                  name=f"argmax picks {k + 1}", marker={"color": colour, "size": 7, "opacity": 0.6},
                                  hovertemplate="y = (%{a:.2f}, %{b:.2f}, %{c:.2f})<extra></extra>")
    axis = {"tickfont": {"size": FONT_SIZE}, "title": {"font": {"size": FONT_SIZE + 2}}, "linewidth": 2,
            "gridcolor": "#e5e5e5", "showticklabels": False}
    titled = {name: {**axis, "title": {**axis["title"], "text": text}}
              for name, text in (("aaxis", "y₁"), ("baxis", "y₂"), ("caxis", "y₃"))}
    figure.update_layout(ternary={"sum": 1, "bgcolor": "white", **titled})
    return figure


def category_bars_figure(probabilities: np.ndarray, frequencies: np.ndarray, relaxed_mean: np.ndarray,
                         height: int = 380) -> go.Figure:
    """Per category: the probability, how often Gumbel-max drew it (the same: the trick is exact) and the mean of
    the relaxed y (not the same when warm: the relaxation's bias)."""
    categories = [str(k + 1) for k in range(len(probabilities))]
    figure = go.Figure(layout=_plain_layout("category", "probability", height))
    figure.add_bar(x=categories, y=probabilities, name="softmax(θ)", marker={"color": "#000000"})
    figure.add_bar(x=categories, y=frequencies, name="Gumbel-max", marker={"color": PALETTE["eps"]})
    figure.add_bar(x=categories, y=relaxed_mean, name="mean of relaxed y", marker={"color": PALETTE["gumbel_softmax"]})
    figure.update_layout(barmode="group", hovermode="x unified")
    return figure


DISCRETE_LABELS = {"score_function": "score function", "gumbel_softmax": "Gumbel-softmax",
                   "straight_through": "straight-through"}
DISCRETE_TICKS = {"score_function": "score<br>function", "gumbel_softmax": "Gumbel-<br>softmax",
                  "straight_through": "straight-<br>through"}  # two lines: three fit under half a screen


def discrete_quality_figure(names: Sequence[str], biases: Sequence[float], deviations: Sequence[float],
                            height: int = 360) -> go.Figure:
    """Each estimator's bias (length of mean minus exact gradient) beside its standard deviation (square root of
    the total variance), on one log axis: the trade the relaxations make."""
    labels = [DISCRETE_TICKS[name] for name in names]
    colours = [PALETTE[name] for name in names]
    figure = go.Figure(layout=_estimator_layout("estimator", "size of the error (log)", height))
    hatched = {"shape": "/", "fillmode": "overlay", "size": 10}
    figure.add_bar(x=labels, y=[max(b, 1e-6) for b in biases], name="bias",
                   marker={"color": colours, "pattern": hatched}, offsetgroup="bias", showlegend=False,
                   hovertemplate="bias %{y:.3g}<extra></extra>")
    figure.add_bar(x=labels, y=deviations, name="standard deviation", marker={"color": colours},
                   offsetgroup="sd", showlegend=False, hovertemplate="sd %{y:.3g}<extra></extra>")
    # The legend in grey: each bar's colour is its estimator's, the hatching tells bias from spread.
    for name, pattern in (("bias", hatched), ("standard deviation", None)):
        figure.add_bar(x=[labels[0]], y=[None], name=name, marker={"color": "#777777", "pattern": pattern},
                       offsetgroup=name, hoverinfo="skip")
    figure.update_layout(barmode="group", hovermode="closest")
    figure.update_xaxes(title_standoff=14)  # clear of the two-line tick labels
    figure.update_yaxes(**log_axis(np.maximum(biases, 1e-6), deviations))
    return figure


def discrete_race_figure(steps: np.ndarray, values: dict[str, np.ndarray], best: float,
                         height: int = 360) -> go.Figure:
    """The exact expected cost after each SGD step, one line per estimator, with the best a one-hot z reaches."""
    figure = go.Figure(layout=_estimator_layout("SGD step", "exact E[f(z)]", height))
    # The legend inside, top right: every curve starts at the top left and falls (three names in one row do not
    # fit half a screen at presentation size).
    figure.update_layout(legend={"orientation": "v", "x": 0.99, "xanchor": "right", "y": 0.99, "yanchor": "top",
                                 "bgcolor": "rgba(255,255,255,0.85)"})
    for name, curve in values.items():
        figure.add_scatter(x=steps, y=curve.astype(np.float32), mode="lines", name=DISCRETE_LABELS[name],
                           line={"color": PALETTE[name], "width": 3}, hovertemplate="%{y:.3f}")
    figure.add_hline(y=best, line={"color": "black", "width": 2, "dash": "dash"})
    # Under the dashed line, where no curve goes (none beats the best category).
    figure.add_annotation(x=1, xref="paper", y=best, text="best category ", showarrow=False, xanchor="right",
                          yanchor="top", font={"size": FONT_SIZE})
    top = max(float(np.max(curve)) for curve in values.values())
    figure.update_yaxes(range=[best - 0.15 * (top - best), top + 0.03 * (top - best)])
    return figure


# --- the Latent space page ---------------------------------------------------------------------------------------

# Ten colour-blind-safe colours for digit labels (Okabe-Ito plus two greys), one per class.
LABEL_COLOURS = ("#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#000000",
                 "#999999", "#664400")


def latent_scatter_figure(points: np.ndarray, labels: np.ndarray | None, axis_name: str, height: int = 520
                          ) -> go.Figure:
    """The encoded test set, one trace per label so the legend names the classes. Click a point to decode it."""
    figure = go.Figure(layout=_plain_layout(f"{axis_name}1", f"{axis_name}2", height))
    labels = np.zeros(len(points), dtype=int) if labels is None else labels
    for label in np.unique(labels):
        chosen = np.flatnonzero(labels == label)
        figure.add_scattergl(x=points[chosen, 0].astype(np.float32), y=points[chosen, 1].astype(np.float32),
                             customdata=chosen, mode="markers", name=str(label),
                             marker={"color": LABEL_COLOURS[int(label) % len(LABEL_COLOURS)], "size": 8,
                                     "opacity": 0.8, "line": {"width": 0.5, "color": "white"}},
                             hovertemplate="test image %{customdata}<extra>label %{fullData.name}</extra>")
    figure.update_layout(legend={"title": {"text": "label"}, "orientation": "v", "y": 1, "yanchor": "top", "x": 1.02},
                         dragmode="zoom", clickmode="event+select")
    return figure


def kl_per_dimension_figure(kl: np.ndarray, active: np.ndarray, height: int = 320) -> go.Figure:
    """KL per latent dimension, active ones in the KL colour, collapsed ones grey."""
    dims = [f"z{k + 1}" for k in range(len(kl))]
    figure = go.Figure(layout=_plain_layout("latent dimension", "KL (nats)", height))
    colours = [PALETTE["kl"] if is_active else "#BBBBBB" for is_active in active]
    figure.add_bar(x=dims, y=kl.astype(np.float64), marker={"color": colours},
                   hovertemplate="%{x}: %{y:.3f} nats<extra></extra>", showlegend=False)
    return figure


# --- the Latent space page: how tight is the bound? ---------------------------------------------------------------

# The encoder in the colour of what it outputs (mu), the decoder in the reconstruction's; the noise floor grey.
GRADIENT_COLOURS = {"encoder": PALETTE["mu"], "decoder": PALETTE["reconstruction"], "floor": "#777777"}


def bound_curve_figure(ks: np.ndarray, bounds: np.ndarray, elbo: float, height: int = 380) -> go.Figure:
    """The importance-weighted bound L_K against K (log axis) in the ELBO's colour, over a dashed line at the
    ELBO (K = 1): the curve climbs from it towards log p(x)."""
    ks = np.asarray(ks, dtype=np.float64)
    figure = go.Figure(layout=_estimator_layout("samples per example K", "nats per example", height))
    figure.add_hline(y=elbo, line={"color": "black", "width": 2, "dash": "dash"})
    # Above the line at the right, where the curve has long left it.
    figure.add_annotation(x=1, xref="paper", xanchor="right", y=elbo, yanchor="bottom", text="ELBO (K = 1) ",
                          showarrow=False, font={"size": FONT_SIZE})
    figure.add_scatter(x=ks, y=np.asarray(bounds, dtype=np.float64), mode="lines+markers", name="L_K",
                       line={"color": PALETTE["elbo"], "width": 3}, marker={"size": 9},
                       hovertemplate="K = %{x}: L_K = %{y:.3f} nats<extra></extra>", showlegend=False)
    figure.update_xaxes(**log_axis(ks))
    figure.update_xaxes(exponentformat="none")  # K = 1000, not 1e+3
    return figure


def gradient_snr_figure(ks: np.ndarray, snr: dict[str, np.ndarray], noise_floor: float, height: int = 380
                        ) -> go.Figure:
    """Signal-to-noise ratio of the encoder's and the decoder's gradients against K, log-log, with the value
    pure noise would read (dashed): Rainforth et al. 2018's picture, the encoder falling as the decoder rises."""
    ks = np.asarray(ks, dtype=np.float64)
    figure = go.Figure(layout=_estimator_layout("samples per example K", "gradient SNR", height))
    for name, values in snr.items():
        figure.add_scatter(x=ks, y=np.asarray(values, dtype=np.float64), mode="lines+markers", name=name,
                           line={"color": GRADIENT_COLOURS[name], "width": 3}, marker={"size": 9},
                           hovertemplate=f"{name}, K = %{{x}}: SNR %{{y:.3g}}<extra></extra>")
    figure.add_hline(y=noise_floor, line={"color": GRADIENT_COLOURS["floor"], "width": 2, "dash": "dot"})
    figure.add_annotation(x=0, xref="paper", xanchor="left", y=np.log10(noise_floor), yanchor="top",
                          text=" pure noise reads this", showarrow=False,
                          font={"size": FONT_SIZE, "color": GRADIENT_COLOURS["floor"]})
    figure.update_xaxes(**log_axis(ks))
    figure.update_yaxes(**log_axis(*snr.values(), np.array([noise_floor])))
    return figure
