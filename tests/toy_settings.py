"""Settings of the toy costs shared by the estimator, baseline and toy-cost tests."""

from __future__ import annotations

# (loc, scale, k) per cost: modest for exp(k z), whose empirical variance settles slowly (heavy tails).
SETTINGS = {
    "(z-k)^2": [(0.5, 1.0, 1.0), (-0.3, 0.6, 0.8)],
    "z": [(0.5, 1.0, 0.0), (-1.2, 0.5, 0.0)],
    "exp(-k z^2)": [(0.5, 1.0, 1.0), (0.2, 0.8, 5.0)],
    "cos(k z)": [(0.5, 1.0, 1.0), (0.3, 1.0, 5.0)],
    "exp(k z)": [(0.5, 1.0, 0.5), (-0.3, 0.8, -0.6)],
    "|z-k|": [(0.5, 1.0, 1.0), (0.0, 0.5, 0.0)],
    "1[z>k]": [(0.5, 1.0, 1.0), (-0.4, 0.7, 0.0)],
}
