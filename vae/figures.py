"""Figures: data in, plotly figure (or picture) out. Projector-readable (fonts >= 16 px, lines >= 2 px),
one colour-blind-safe colour per quantity, the same on every page."""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
from PIL import Image

from vae.job import EpochMetrics

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
}
# Short legend labels: a projector has room for few words; the page text spells out each term.
ELBO_LABELS = {"elbo": "ELBO", "reconstruction": "reconstruction", "kl": "KL"}
REFERENCE_LABEL = "published (pytorch/examples)"
FONT_SIZE = 16


def coloured(quantity: str, text: str) -> str:
    """HTML for `text` in the quantity's colour, so the prose uses the charts' colours."""
    return f'<b style="color:{PALETTE[quantity]}">{text}</b>'


def _layout(x_title: str, height: int) -> dict[str, Any]:
    axis = {"title": {"font": {"size": FONT_SIZE + 2}}, "tickfont": {"size": FONT_SIZE}, "gridcolor": "#e5e5e5",
            "zeroline": False}
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


def training_curves_figure(train: dict[str, np.ndarray], height: int = 360) -> go.Figure:
    """Per-step training ELBO terms: faint raw values under a bold trailing mean."""
    steps = train["step"]
    window = max(1, len(steps) // 50)
    figure = go.Figure(layout=_layout("SGD step", height))
    for key, label in ELBO_LABELS.items():
        values = np.asarray(train[key], dtype=np.float32)
        figure.add_scatter(x=steps, y=values, mode="lines", line={"color": PALETTE[key], "width": 1}, opacity=0.3,
                           name=label, legendgroup=key, showlegend=False, hoverinfo="skip")
        figure.add_scatter(x=steps, y=running_mean(values, window).astype(np.float32), mode="lines",
                           line={"color": PALETTE[key], "width": 3}, name=label, legendgroup=key,
                           hovertemplate="%{y:.2f}")
    return figure


def held_out_figure(
    held_out: Sequence[EpochMetrics], reference_loss: Sequence[float] | None = None, height: int = 360
) -> go.Figure:
    """Held-out ELBO terms per epoch; the published run as a dashed line (its test loss is -ELBO)."""
    figure = go.Figure(layout=_layout("epoch", height))
    epochs = np.array([m.epoch for m in held_out])
    for key, label in ELBO_LABELS.items():
        values = np.array([getattr(m, key) for m in held_out], dtype=np.float32)
        figure.add_scatter(x=epochs, y=values, mode="lines+markers", name=label, hovertemplate="%{y:.2f}",
                           line={"color": PALETTE[key], "width": 3}, marker={"size": 7})
    if reference_loss:
        figure.add_scatter(x=np.arange(1, len(reference_loss) + 1), y=-np.asarray(reference_loss, dtype=np.float32),
                           mode="lines", name=REFERENCE_LABEL, hovertemplate="%{y:.1f}",
                           line={"color": PALETTE["reference"], "width": 3, "dash": "dash"})
    figure.update_xaxes(rangemode="tozero", tickformat="d")
    return figure


def running_mean(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing mean over `window` points (shorter at the start), so the curve never leads the data."""
    if window <= 1 or len(values) == 0:
        return np.asarray(values, dtype=np.float64)
    sums = np.cumsum(np.insert(np.asarray(values, dtype=np.float64), 0, 0.0))
    counts = np.minimum(np.arange(1, len(values) + 1), window)
    return (sums[1:] - sums[np.arange(1, len(values) + 1) - counts]) / counts


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
