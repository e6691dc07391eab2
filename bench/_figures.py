"""What every benchmark reports to `bench/run_all.py`: figures against targets, as one line of JSON."""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass

MARKER = "FIGURES "  # the line run_all.py reads; everything else a benchmark prints is for people


@dataclass(frozen=True)
class Figure:
    """One measured figure: its median over rounds, the spread, and the target it is held to."""

    figure: str
    value: float
    unit: str
    target: float
    higher_is_better: bool
    spread: str = ""

    @property
    def passed(self) -> bool:
        return self.value >= self.target if self.higher_is_better else self.value <= self.target


def spread(values: list[float], digits: int = 2) -> str:
    return f"{min(values):.{digits}f}-{max(values):.{digits}f} over {len(values)} rounds"


def median_figure(name: str, values: list[float], unit: str, target: float, higher_is_better: bool,
                  digits: int = 2) -> Figure:
    return Figure(name, statistics.median(values), unit, target, higher_is_better, spread(values, digits))


def text_table(header: tuple[str, ...], rows: list[list[str]], markdown: bool, right: bool = False) -> str:
    """Rows of cells as a Markdown table (for README), or in aligned columns (left, or `right` for numbers)."""
    if markdown:
        return "\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
                         + ["| " + " | ".join(cells) + " |" for cells in rows])
    widths = [max(len(cells[i]) for cells in [header, *rows]) for i in range(len(header))]
    align = str.rjust if right else str.ljust
    return "\n".join("  ".join(align(cell, width) for cell, width in zip(cells, widths, strict=True))
                     for cells in [header, *rows])


def emit(figures: list[Figure]) -> None:
    """Print the figures for run_all.py (one line, last)."""
    print(MARKER + json.dumps([asdict(f) for f in figures]), flush=True)


def parse(output: str) -> list[Figure]:
    lines = [line for line in output.splitlines() if line.startswith(MARKER)]
    return [Figure(**row) for row in json.loads(lines[-1][len(MARKER):])] if lines else []
