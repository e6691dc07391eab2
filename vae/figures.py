"""Figures: data in, chart out. Projector-readable (fonts >= 16 px, lines >= 2 px), one colour per quantity.

Live curves are Vega-Lite specs: Streamlit updates a Vega-Lite chart's data in place when its spec is
unchanged, so a chart that refreshes twice a second neither flickers nor loses the user's zoom (a
plotly chart is remounted on every data change). The spec builders take no live data for that reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
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


def _vega_config() -> dict[str, Any]:
    return {
        "axis": {"labelFontSize": FONT_SIZE, "titleFontSize": FONT_SIZE + 2, "gridOpacity": 0.5},
        "legend": {"labelFontSize": FONT_SIZE, "titleFontSize": FONT_SIZE, "orient": "bottom", "columns": 4,
                   "labelLimit": 400, "symbolStrokeWidth": 4, "symbolSize": 200, "symbolOpacity": 1},
        "view": {"stroke": None},
    }


def _colour_scale(keys: Sequence[str]) -> dict[str, Any]:
    labels = {**ELBO_LABELS, "reference": REFERENCE_LABEL}
    return {"domain": [labels[k] for k in keys], "range": [PALETTE[k] for k in keys]}


def training_curves_spec(height: int = 340) -> dict[str, Any]:
    """Per-step training ELBO terms: faint raw values under a bold running mean; drag to pan, wheel to zoom."""
    colour = {"field": "quantity", "type": "nominal", "title": None, "scale": _colour_scale(list(ELBO_LABELS))}
    x = {"field": "step", "type": "quantitative", "title": "SGD step"}
    y = {"field": "nats", "type": "quantitative", "title": "nats per example"}
    return {
        "height": height,
        "width": "container",
        "config": _vega_config(),
        "layer": [
            {"mark": {"type": "line", "strokeWidth": 1, "opacity": 0.3},
             "encoding": {"x": x, "y": {**y, "field": "raw"}, "color": colour}},
            {"mark": {"type": "line", "strokeWidth": 3},
             "encoding": {"x": x, "y": y, "color": colour,
                          "tooltip": [x, {"field": "quantity"}, {"field": "nats", "format": ".2f"}]},
             "params": [{"name": "zoom", "select": "interval", "bind": "scales"}]},
        ],
    }


def training_curves_data(train: dict[str, np.ndarray]) -> pd.DataFrame:
    """Long-form rows (step, quantity, raw, nats) from a job snapshot's per-step history; nats is smoothed."""
    steps = train["step"]
    window = max(1, len(steps) // 50)
    frames = []
    for key, label in ELBO_LABELS.items():
        raw = train[key]
        frames.append(pd.DataFrame({"step": steps, "quantity": label, "raw": raw, "nats": running_mean(raw, window)}))
    return pd.concat(frames, ignore_index=True)


def running_mean(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing mean over `window` points (shorter at the start), so the curve never leads the data."""
    if window <= 1 or len(values) == 0:
        return np.asarray(values, dtype=np.float64)
    sums = np.cumsum(np.insert(np.asarray(values, dtype=np.float64), 0, 0.0))
    counts = np.minimum(np.arange(1, len(values) + 1), window)
    return (sums[1:] - sums[np.arange(1, len(values) + 1) - counts]) / counts


def held_out_spec(with_reference: bool = False, height: int = 340) -> dict[str, Any]:
    """Held-out ELBO terms per epoch, with the dashed published reference when the run reproduces it."""
    keys = [*ELBO_LABELS, "reference"] if with_reference else list(ELBO_LABELS)
    colour = {"field": "quantity", "type": "nominal", "title": None, "scale": _colour_scale(keys)}
    dash = {"field": "is_reference", "type": "nominal", "legend": None,
            "scale": {"domain": [False, True], "range": [[1, 0], [8, 6]]}}
    x = {"field": "epoch", "type": "quantitative", "title": "epoch", "axis": {"tickMinStep": 1}}
    y = {"field": "nats", "type": "quantitative", "title": "nats per example"}
    return {
        "height": height,
        "width": "container",
        "config": _vega_config(),
        "mark": {"type": "line", "strokeWidth": 3, "point": {"size": 40}},
        "encoding": {"x": x, "y": y, "color": colour, "strokeDash": dash,
                     "tooltip": [x, {"field": "quantity"}, {"field": "nats", "format": ".2f"}]},
        "params": [{"name": "zoom", "select": "interval", "bind": "scales"}],
    }


def held_out_data(held_out: Sequence[EpochMetrics], reference_loss: Sequence[float] | None = None) -> pd.DataFrame:
    """Rows (epoch, quantity, nats, is_reference); the reference is a published test loss, so ELBO = -loss."""
    rows = [
        {"epoch": m.epoch, "quantity": label, "nats": getattr(m, key), "is_reference": False}
        for m in held_out
        for key, label in ELBO_LABELS.items()
    ]
    for epoch, loss in enumerate(reference_loss or (), start=1):
        rows.append({"epoch": epoch, "quantity": REFERENCE_LABEL, "nats": -loss, "is_reference": True})
    return pd.DataFrame(rows, columns=["epoch", "quantity", "nats", "is_reference"])


def image_grid(images: np.ndarray, columns: int, pixel_size: int = 6, gap: int = 2) -> np.ndarray:
    """Tile images (N, H, W) in [0, 1] into one uint8 picture, each pixel a pixel_size square (crisp on a
    projector: the browser would blur a small image it scales up), with white gaps between tiles."""
    n, h, w = images.shape
    rows = -(-n // columns)
    cell_h, cell_w = h * pixel_size + gap, w * pixel_size + gap
    canvas = np.full((rows * cell_h + gap, columns * cell_w + gap), 255, dtype=np.uint8)
    tiles = 255 - np.clip(images, 0, 1) * 255  # dark ink on white paper, as digits are drawn
    tiles = tiles.round().astype(np.uint8).repeat(pixel_size, axis=1).repeat(pixel_size, axis=2)
    for i, tile in enumerate(tiles):
        top, left = gap + (i // columns) * cell_h, gap + (i % columns) * cell_w
        canvas[top : top + h * pixel_size, left : left + w * pixel_size] = tile
    return canvas


def to_pil(grid: np.ndarray) -> Image.Image:
    return Image.fromarray(grid, mode="L")
