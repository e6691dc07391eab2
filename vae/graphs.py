"""The VAE's computation graph before and after the reparameterization trick, drawn as a fixed-size SVG.

Lecture, claims 2 and 3: sampling z ~ q_φ(z|x) = N(μ, σ²) blocks the gradient of the reconstruction
term on its way back to the encoder's φ; writing z = μ + σ ⊙ ε with ε ~ N(0, I) makes z a deterministic
function of μ and σ, and the randomness enters from outside, where no gradient is needed.

The graph is a small data model first (nodes, edges, the roles that decide where gradients flow), so
tests can ask it questions; `to_svg` only draws it. The drawing is laid out by hand at a fixed pixel size:
a chart scaled down to its column (as `st.graphviz_chart` does) shrinks its text below projector size.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from html import escape
from typing import TYPE_CHECKING, Literal

from vae.figures import PALETTE

if TYPE_CHECKING:
    from vae.families import Family

NodeKind = Literal["input", "deterministic", "random", "output"]
# "forward": a differentiable step, the gradient flows back along it; "blocked": a draw from a
# distribution, the value flows forward but no gradient flows back; "noise": randomness entering
# from outside, which has no parameters and so needs no gradient.
EdgeRole = Literal["forward", "blocked", "noise"]

# Not in PALETTE: backpropagation is not a plotted quantity; a dark red stays apart from KL's vermillion,
# and the dashes/dots keep it readable for colour-blind viewers.
GRADIENT_COLOUR = "#B40000"
RANDOM_FILL = "#FFE3C2"  # light orange: random nodes stand out from deterministic boxes
INPUT_FILL = "#E8E8E8"
# Symbol of the value a node computes, for the gradient labels ∂L/∂· (a family's own replace σ and ε).
_SYMBOLS = {"decoder": "θ", "z": "z", "mu": "μ", "sigma": "σ", "encoder": "φ", "eps": "ε", "loss": "L"}


@dataclass(frozen=True)
class Node:
    id: str
    label: str
    kind: NodeKind


@dataclass(frozen=True)
class Edge:
    """A data-flow edge, always drawn source -> target (forward); `role` says whether gradients flow back."""

    source: str
    target: str
    role: EdgeRole
    label: str = ""


@dataclass(frozen=True)
class Graph:
    name: str
    title: str
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    symbols: Mapping[str, str] = field(default_factory=lambda: dict(_SYMBOLS))  # node id -> its value's symbol

    def node(self, node_id: str) -> Node:
        return {n.id: n for n in self.nodes}[node_id]

    @property
    def loss(self) -> Node:
        return next(n for n in self.nodes if n.kind == "output")


@dataclass(frozen=True)
class _Words:
    """How a family of q_φ(z|x) is written on the graph: its scale's symbol and name, q, the noise, z."""

    scale: str = "σ"
    scale_name: str = "std. dev."
    q: str = "N(μ, σ²)"
    noise: str = "ε"
    base: str = "ε ~ N(0, I)"
    z: str = "μ + σ ⊙ ε"


def _words(family: Family | None) -> _Words:
    """The Gaussian's words by default; a location-scale family shifts and scales its standard noise, an
    inverse-CDF one turns a uniform u into z = F⁻¹(u; μ, s), and the Gamma inverts its CDF numerically (the
    implicit gradient)."""
    if family is None or family.name == "Gaussian":
        return _Words()
    if family.kind == "implicit":  # the Gamma posterior: the encoder's μ and σ are log α and 1/β
        return _Words("σ", "1/rate", f"{family.name}(e^μ, 1/σ)", "u", family.base, "F⁻¹(u; e^μ, 1/σ)")
    scale = family.plain_scale_symbol
    noise = "ε" if family.kind == "location-scale" else "u"
    z = f"μ + {scale} ⊙ ε" if noise == "ε" else f"F⁻¹(u; μ, {scale})"
    return _Words(scale, "scale", f"{family.name}(μ, {scale})", noise, family.base, z)


def computation_graph(reparameterized: bool, family: Family | None = None) -> Graph:
    """x -> encoder(φ) -> μ, σ -> z -> decoder(θ) -> log p_θ(x|z), with z sampled (before) or
    z = μ + σ ⊙ ε (after); a posterior `family` other than the Gaussian (one of the VAE's, with loc and scale)
    writes its own q, noise and z = g(μ, scale, noise).

    Only the reconstruction term is drawn: the analytic KL(q_φ ‖ p) is differentiable in μ and σ either
    way, so it would add a gradient path to φ that hides the one the trick is about.
    """
    words = _words(family)
    shared = (
        Node("x", "x\ndata", "input"),
        Node("encoder", "encoder\nφ", "deterministic"),
        Node("mu", "μ\nmean", "deterministic"),
        Node("sigma", f"{words.scale}\n{words.scale_name}", "deterministic"),
        Node("decoder", "decoder\nθ", "deterministic"),
        Node("loss", "L =\nlog p_θ(x|z)", "output"),
    )
    into_mu_sigma = (Edge("x", "encoder", "forward"), Edge("encoder", "mu", "forward"),
                     Edge("encoder", "sigma", "forward"))
    out_of_z = (Edge("z", "decoder", "forward"), Edge("decoder", "loss", "forward"))
    if reparameterized:
        middle_nodes = (Node("eps", words.base, "random"), Node("z", f"z =\n{words.z}", "deterministic"))
        middle_edges = (Edge("mu", "z", "forward"), Edge("sigma", "z", "forward"),
                        Edge("eps", "z", "noise", "noise from outside,\nno gradient needed"))
        title = f"After: z = {words.z} is deterministic, so ∂L/∂φ flows back through μ and {words.scale}"
    else:
        middle_nodes = (Node("q", f"q_φ(z|x)\n= {words.q}", "deterministic"), Node("z", "z\nrandom draw", "random"))
        middle_edges = (Edge("mu", "q", "forward"), Edge("sigma", "q", "forward"),
                        Edge("q", "z", "blocked", "sample"))
        title = "Before: z is sampled, so ∂L/∂φ cannot get past the sampling step"
    name = "after" if reparameterized else "before"
    symbols = {**_SYMBOLS, "sigma": words.scale, "eps": words.noise}
    return Graph(name, title, shared[:4] + middle_nodes + shared[4:], into_mu_sigma + middle_edges + out_of_z,
                 symbols)


def _walk_back(graph: Graph, roles: tuple[EdgeRole, ...]) -> tuple[Edge, ...]:
    """The edges of `roles` met on a search back from the loss along them, never into the data x."""
    reached, frontier, found = {graph.loss.id}, [graph.loss.id], []
    while frontier:
        target = frontier.pop()
        for edge in graph.edges:
            if edge.target != target or edge.role not in roles or graph.node(edge.source).kind == "input":
                continue
            found.append(edge)
            if edge.source not in reached:
                reached.add(edge.source)
                frontier.append(edge.source)
    return tuple(found)


def backprop_edges(graph: Graph) -> tuple[Edge, ...]:
    """The edges the gradient of the loss flows back along: a search from the loss over "forward" edges.

    It stops at blocked and noise edges (no gradient through a draw, none needed into ε) and at the data
    x (we never need ∂L/∂x).
    """
    return _walk_back(graph, ("forward",))


def gradient_nodes(graph: Graph) -> tuple[set[str], set[str]]:
    """(wanted, reached): the nodes between the parameters and the loss, whose gradient SGD needs (every path
    but the noise's and the data's), and those the gradient of the loss does reach."""
    wanted = {e.source for e in _walk_back(graph, ("forward", "blocked"))}
    return wanted, {graph.loss.id} | {e.source for e in backprop_edges(graph)}


def blocked_edges(graph: Graph) -> tuple[Edge, ...]:
    """The draws a gradient arrives at and cannot pass: where backpropagation stops short of φ."""
    reached = {graph.loss.id} | {e.source for e in backprop_edges(graph)}
    return tuple(e for e in graph.edges if e.role == "blocked" and e.target in reached)


# --- Drawing -------------------------------------------------------------------------------------------------
# Sizes in px. Every text is at least 16 px at 1:1 scale; the SVG carries width and height, so nothing scales it.
WIDTH, HEIGHT = 1080, 418  # fits the wide layout's main column at 1280 px, under the section's controls, with a margin
NODE_FONT = 20  # node labels carry the maths: the largest text in the drawing
EDGE_FONT = 18
LEGEND_FONT = 16
NUMBER_FONT = 16  # the values and gradients printed under node labels
NUMBER_GAP = 6  # between a node's label and its numbers
NO_GRADIENT = "no gradient"
_VECTORS = {"encoder": "φ", "decoder": "θ"}  # weights: their gradient is printed as a norm
LINE_HEIGHT = 1.25  # baseline to baseline, in font sizes
# A line's box above and below its baseline, in font sizes: what Chromium's text boxes measure for the app's
# font (Source Sans), a little more than one font size in all.
ASCENT, DESCENT = 1.0, 0.35
CHAR_WIDTH = 0.6  # a generous average glyph width, in font sizes: boxes and gaps are sized from it
TRACK_OFFSET = 10  # how far a gradient arrow runs beside the value arrow it follows back
TRACK_TRIM = 14  # and how much shorter it is at each end, so that it stays clear of node corners
GRADIENT_DASHES, BLOCKED_DOTS = "8 5", "2 5"  # dashes: a gradient flows back; dots: it cannot
BLOCKED_LABEL = "no gradient\nthrough sampling"

Point = tuple[float, float]

# Node centres, the same in both graphs, so that switching between them shows only what the trick changes:
# q's column empties and ε enters z from above. x and L sit above and below the main row, which leaves the
# gaps between the other columns wide enough for the arrows and their labels.
_CENTRES: dict[str, Point] = {
    "x": (70, 50), "encoder": (70, 200), "mu": (270, 100), "sigma": (270, 300), "q": (485, 200),
    "eps": (745, 62), "z": (745, 200), "decoder": (980, 200), "loss": (980, 340),
}
# The side of an edge its labels and gradient arrow go: +1 left of the direction of travel (above a
# left-to-right edge), -1 right of it. Chosen so that labels sit outside the fan of μ and σ edges.
_LABEL_SIDE = {("encoder", "sigma"): -1, ("sigma", "z"): -1, ("decoder", "loss"): -1}


@dataclass(frozen=True)
class Layout:
    """Where the nodes go, the side of an edge its labels take (default +1), and the drawing's height."""

    centres: Mapping[str, Point]
    label_sides: Mapping[tuple[str, str], int]
    height: int


PLAIN = Layout(_CENTRES, _LABEL_SIDE, HEIGHT)
# With numbers the nodes grow: a taller drawing, its columns further apart, and the decoder under z so that the
# row keeps room for the arrows and their labels.
NUMBERED = Layout(
    {"x": (92, 58), "encoder": (92, 270), "mu": (295, 120), "sigma": (295, 420), "q": (530, 270),
     "eps": (850, 72), "z": (850, 270), "decoder": (745, 462), "loss": (985, 462)},
    {("encoder", "sigma"): -1, ("sigma", "z"): -1, ("decoder", "loss"): -1}, 560)


@dataclass(frozen=True)
class Shape:
    """A node's outline: a rounded box, or an ellipse for a random node; centre and full size in px."""

    cx: float
    cy: float
    width: float
    height: float
    ellipse: bool

    def exit_point(self, toward: Point) -> Point:
        """Where the ray from the centre toward `toward` leaves the outline: edges start and end there."""
        dx, dy = toward[0] - self.cx, toward[1] - self.cy
        half_width, half_height = self.width / 2, self.height / 2
        if self.ellipse:
            t = 1 / math.hypot(dx / half_width, dy / half_height)
        else:
            t = min(half_width / abs(dx) if dx else math.inf, half_height / abs(dy) if dy else math.inf)
        return self.cx + t * dx, self.cy + t * dy


@dataclass(frozen=True)
class Segment:
    start: Point
    end: Point

    @property
    def direction(self) -> Point:
        dx, dy = self.end[0] - self.start[0], self.end[1] - self.start[1]
        length = math.hypot(dx, dy)
        return dx / length, dy / length

    def normal(self, side: int) -> Point:
        """Unit vector across the segment: side +1 is left of the direction of travel (y points down)."""
        dx, dy = self.direction
        return side * dy, -side * dx

    @property
    def midpoint(self) -> Point:
        return (self.start[0] + self.end[0]) / 2, (self.start[1] + self.end[1]) / 2

    def shifted(self, side: int, distance: float) -> Segment:
        nx, ny = self.normal(side)
        return Segment((self.start[0] + nx * distance, self.start[1] + ny * distance),
                       (self.end[0] + nx * distance, self.end[1] + ny * distance))

    def trimmed(self, amount: float) -> Segment:
        """Shortened by `amount` at both ends, so a parallel arrow stays clear of the node outlines."""
        dx, dy = self.direction
        return Segment((self.start[0] + dx * amount, self.start[1] + dy * amount),
                       (self.end[0] - dx * amount, self.end[1] - dy * amount))


def text_size(text: str, font_size: float) -> Point:
    """Estimated width and height of `text` (lines split at \\n): CHAR_WIDTH per character, and the lines' boxes."""
    lines = text.split("\n")
    height = font_size * (ASCENT + DESCENT + LINE_HEIGHT * (len(lines) - 1))
    return max(map(len, lines)) * CHAR_WIDTH * font_size, height


NumberLines = tuple[tuple[str, str], ...]  # (text, colour) per line printed under a node's label


def _block_size(node: Node, numbers: NumberLines) -> Point:
    """Width and height of a node's label with its number lines under it."""
    width, height = text_size(node.label, NODE_FONT)
    if numbers:
        number_width, number_height = text_size("\n".join(text for text, _ in numbers), NUMBER_FONT)
        width, height = max(width, number_width), height + NUMBER_GAP + number_height
    return width, height


def node_shape(node: Node, numbers: NumberLines = (), layout: Layout = PLAIN) -> Shape:
    """The outline around the node's label (and numbers): boxes with padding, ellipses big enough to hold the
    block's box."""
    width, height = _block_size(node, numbers)
    if node.kind == "random":
        width, height = width * math.sqrt(2) + 8, height * math.sqrt(2) + 8
    else:
        width, height = width + 32, height + 14
    return Shape(*layout.centres[node.id], width, height, ellipse=node.kind == "random")


def _text(text: str, centre: Point, font_size: int, colour: str = "#000000", anchor: str = "middle") -> str:
    """`text` with its line block centred vertically on `centre`, one tspan per line; `anchor` is SVG's
    text-anchor: "middle" centres it on centre[0], "start" begins it there."""
    return _coloured_text(tuple((line, colour) for line in text.split("\n")), centre, font_size, anchor)


def _coloured_text(lines: NumberLines, centre: Point, font_size: int, anchor: str = "middle") -> str:
    """One <text> of (line, colour) pairs, one tspan each, the block centred vertically on `centre`."""
    x = centre[0]
    baseline = centre[1] - text_size("\n".join(t for t, _ in lines), font_size)[1] / 2 + ASCENT * font_size
    first_colour = lines[0][1]
    fills = ["" if colour == first_colour else f' fill="{colour}"' for _, colour in lines]
    spans = "".join(f'<tspan x="{x:.1f}" dy="{0 if i == 0 else font_size * LINE_HEIGHT:.1f}"{fill}>'
                    f'{escape(line)}</tspan>' for i, ((line, _), fill) in enumerate(zip(lines, fills, strict=True)))
    return (f'<text x="{x:.1f}" y="{baseline:.1f}" font-size="{font_size}" text-anchor="{anchor}" '
            f'fill="{first_colour}">{spans}</text>')


def _number(value: float) -> str:
    """Three significant digits, short: -0.456, 12.3, 4.56e-5 (no exponent padding), with a real minus sign."""
    text = f"{value:.3g}"
    if "e" in text:
        mantissa, exponent = text.split("e")
        text = f"{mantissa}e{int(exponent)}"
    return text.replace("-", "−")


def number_lines(graph: Graph, numbers: Mapping[str, tuple[float | None, float | None]]) -> dict[str, NumberLines]:
    """What each node prints under its label, micrograd-style: its value (black) and its gradient (red), or
    "no gradient" where SGD needs one and sampling blocks it. The data and the noise need none."""
    wanted, reached = gradient_nodes(graph)
    lines: dict[str, NumberLines] = {}
    for node in graph.nodes:
        value, gradient = numbers.get(node.id, (None, None))
        symbol = graph.symbols.get(node.id, node.id)
        found = [(f"{symbol} = {_number(value)}", "#000000")] if value is not None else []
        if node.id in wanted and node.id not in reached:
            found.append((NO_GRADIENT, GRADIENT_COLOUR))
        elif node.id in wanted and gradient is not None:
            name = f"‖∇{_VECTORS[node.id]}‖" if node.id in _VECTORS else f"∂L/∂{symbol}"
            found.append((f"{name} = {_number(gradient)}", GRADIENT_COLOUR))
        lines[node.id] = tuple(found)
    return lines


def _line(segment: Segment, colour: str, width: float, dashes: str = "") -> str:
    (x1, y1), (x2, y2) = segment.start, segment.end
    dash = f' stroke-dasharray="{dashes}"' if dashes else ""
    return (f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="{colour}" '
            f'stroke-width="{width}"{dash}/>')


def _arrowhead(tip: Point, direction: Point, colour: str, length: float = 13, half_width: float = 6) -> str:
    """A filled triangle pointing along `direction` with its point at `tip`."""
    (dx, dy), (tx, ty) = direction, tip
    bx, by = tx - dx * length, ty - dy * length
    corners = [(tx, ty), (bx - dy * half_width, by + dx * half_width), (bx + dy * half_width, by - dx * half_width)]
    return f'<polygon points="{" ".join(f"{x:.1f},{y:.1f}" for x, y in corners)}" fill="{colour}"/>'


def _arrow(segment: Segment, colour: str, width: float, dashes: str = "") -> str:
    """A line ending in an arrowhead at `segment.end`; the line stops where the head begins."""
    dx, dy = segment.direction
    shaft = Segment(segment.start, (segment.end[0] - dx * 10, segment.end[1] - dy * 10))
    return _line(shaft, colour, width, dashes) + _arrowhead(segment.end, segment.direction, colour)


def _cross(centre: Point, colour: str, half: float = 8) -> str:
    """A bold ✕ drawn with lines (not a glyph, so no font can shrink or miss it)."""
    cx, cy = centre
    return (_line(Segment((cx - half, cy - half), (cx + half, cy + half)), colour, 4)
            + _line(Segment((cx - half, cy + half), (cx + half, cy - half)), colour, 4))


def label_centre(segment: Segment, side: int, clearance: float, text: str, font_size: float,
                 shapes: tuple[Shape, ...] = ()) -> Point:
    """Centre of a label beside `segment`: its whole estimated box at least `clearance` px away from the line,
    and moved further out until it is clear of every node in `shapes`."""
    width, height = text_size(text, font_size)
    nx, ny = segment.normal(side)
    reach = clearance + abs(nx) * width / 2 + abs(ny) * height / 2  # half the box's extent across the line
    mx, my = segment.midpoint
    while any(_boxes_meet((mx + nx * reach, my + ny * reach, width, height), shape) for shape in shapes):
        reach += 2
    return mx + nx * reach, my + ny * reach


def _boxes_meet(label: tuple[float, float, float, float], shape: Shape, margin: float = 4) -> bool:
    """Whether a label box (centre x, centre y, width, height) comes within `margin` of a node's bounding box."""
    x, y, width, height = label
    return (abs(x - shape.cx) < (width + shape.width) / 2 + margin
            and abs(y - shape.cy) < (height + shape.height) / 2 + margin)


def _gradient_label(edge: Edge, fan_out: int, symbols: Mapping[str, str]) -> str:
    """∂L/∂(source); where the source feeds several paths, only this path's chain-rule share."""
    source, target = (symbols.get(i, i) for i in (edge.source, edge.target))
    return f"∂L/∂{source}" if fan_out == 1 else f"∂L/∂{target} ·\n∂{target}/∂{source}"


def _edge_svg(edge: Edge, shapes: dict[str, Shape], gradient: str | None, blocked: bool, layout: Layout) -> str:
    """The value arrow (black; ε's in its colour) with its label, and beside it the gradient running back
    (red dashes, labelled ∂L/∂·) or, for a blocked draw, a red dotted track stopped by a ✕."""
    source, target = shapes[edge.source], shapes[edge.target]
    value = Segment(source.exit_point((target.cx, target.cy)), target.exit_point((source.cx, source.cy)))
    side = layout.label_sides.get((edge.source, edge.target), 1)
    nodes = tuple(shapes.values())
    colour, width = (PALETTE["eps"], 4) if edge.role == "noise" else ("#000000", 2)
    parts = [_arrow(value, colour, width)]
    if edge.label:
        label_side = -side if gradient else side  # the gradient's side is taken
        parts.append(_label(edge.label, value, label_side, 8, nodes))
    if gradient:
        track = value.shifted(side, TRACK_OFFSET).trimmed(TRACK_TRIM)
        parts += [_arrow(Segment(track.end, track.start), GRADIENT_COLOUR, 3, GRADIENT_DASHES),
                  _label(gradient, track, side, 8, nodes, GRADIENT_COLOUR)]  # 8: clear of the arrowhead
    if blocked:
        track = value.shifted(-side, TRACK_OFFSET).trimmed(TRACK_TRIM)
        parts += [_line(track, GRADIENT_COLOUR, 3, BLOCKED_DOTS), _cross(track.midpoint, GRADIENT_COLOUR),
                  _label(BLOCKED_LABEL, track, -side, 14, nodes, GRADIENT_COLOUR)]  # 14: clear of the ✕
    return f'<g class="edge" id="edge-{edge.source}-{edge.target}">{"".join(parts)}</g>'


def _label(text: str, segment: Segment, side: int, clearance: float, nodes: tuple[Shape, ...],
           colour: str = "#000000") -> str:
    return _text(text, label_centre(segment, side, clearance, text, EDGE_FONT, nodes), EDGE_FONT, colour)


def _outline(shape: Shape, fill: str, border: str, width: float, inset: float = 0) -> str:
    w, h = shape.width - 2 * inset, shape.height - 2 * inset
    paint = f'fill="{fill}" stroke="{border}" stroke-width="{width}"'
    if shape.ellipse:
        return f'<ellipse cx="{shape.cx:.1f}" cy="{shape.cy:.1f}" rx="{w / 2:.1f}" ry="{h / 2:.1f}" {paint}/>'
    return (f'<rect x="{shape.cx - w / 2:.1f}" y="{shape.cy - h / 2:.1f}" width="{w:.1f}" height="{h:.1f}" '
            f'rx="10" {paint}/>')


def _node_svg(node: Node, shape: Shape, numbers: NumberLines = ()) -> str:
    """Shape by kind (box = deterministic, ellipse = random), border in the quantity's PALETTE colour; the
    label, and under it the node's numbers."""
    # A thick coloured border rather than coloured text: light Okabe-Ito colours are hard to read as text on
    # a projector, and a border shows the same colour as the plots.
    border, width = (PALETTE[node.id], 4) if node.id in PALETTE else ("#000000", 2)
    fill = {"random": RANDOM_FILL, "input": INPUT_FILL}.get(node.kind, "#FFFFFF")
    parts = [_outline(shape, fill, border, width)]
    if node.kind == "output":  # a double border: the quantity being optimised
        parts.append(_outline(shape, "none", border, width, inset=5))
    label_height = text_size(node.label, NODE_FONT)[1]
    top = shape.cy - _block_size(node, numbers)[1] / 2
    parts.append(_text(node.label, (shape.cx, top + label_height / 2), NODE_FONT))
    if numbers:
        numbers_height = text_size("\n".join(text for text, _ in numbers), NUMBER_FONT)[1]
        centre = (shape.cx, top + label_height + NUMBER_GAP + numbers_height / 2)
        parts.append(_coloured_text(numbers, centre, NUMBER_FONT))
    return f'<g class="node" id="node-{node.id}">{"".join(parts)}</g>'


def _legend_svg(y: float) -> str:
    """One row explaining the drawing: data, deterministic, random; value, gradient and blocked arrows."""
    samples = {
        "data": lambda s: _outline(s, INPUT_FILL, "#000000", 2),
        "deterministic": lambda s: _outline(s, "#FFFFFF", "#000000", 2),
        "random": lambda s: _outline(Shape(s.cx, s.cy, s.width, s.height, True), RANDOM_FILL, "#000000", 2),
        "value, forward": lambda s: _arrow(_across(s), "#000000", 2),
        "gradient, backward": lambda s: _arrow(_across(s, backwards=True), GRADIENT_COLOUR, 3, GRADIENT_DASHES),
        "blocked": lambda s: _line(_across(s), GRADIENT_COLOUR, 3, BLOCKED_DOTS) + _cross((s.cx, s.cy),
                                                                                        GRADIENT_COLOUR),
    }
    sample_width, x, parts = 40, 12.0, []
    for text, draw in samples.items():
        parts += [draw(Shape(x + sample_width / 2, y, sample_width, 24, False)),
                  _text(text, (x + sample_width + 8, y), LEGEND_FONT, anchor="start")]
        x += sample_width + 8 + text_size(text, LEGEND_FONT)[0] + 24
    return f'<g class="legend" id="legend">{"".join(parts)}</g>'


def _across(shape: Shape, backwards: bool = False) -> Segment:
    """The horizontal line through a legend sample's box, left to right (or back)."""
    left, right = (shape.cx - shape.width / 2, shape.cy), (shape.cx + shape.width / 2, shape.cy)
    return Segment(right, left) if backwards else Segment(left, right)


def to_svg(graph: Graph, numbers: Mapping[str, tuple[float | None, float | None]] | None = None) -> str:
    """`graph` as an SVG of WIDTH x HEIGHT px: values flow left to right in black, the gradient of the loss runs
    back in red dashes labelled ∂L/∂·, and a red ✕ marks where sampling blocks it. A legend sits underneath.

    `numbers` (node id -> (value, gradient), e.g. `vae.step_inspection.graph_numbers` of one step) prints each
    node's value and gradient under its label, as micrograd's graphs do; where the gradient does not reach a node
    that needs it, the node says "no gradient" instead, whatever number was given. The drawing is then
    laid out taller (NUMBERED)."""
    lines = number_lines(graph, numbers) if numbers is not None else {}
    layout = NUMBERED if numbers is not None else PLAIN
    height = layout.height
    shapes = {node.id: node_shape(node, lines.get(node.id, ()), layout) for node in graph.nodes}
    gradients = backprop_edges(graph)
    fan_out = {edge.source: sum(e.source == edge.source for e in gradients) for edge in gradients}
    blocked = set(blocked_edges(graph))
    edges = [_edge_svg(edge, shapes, _gradient_label(edge, fan_out[edge.source], graph.symbols)
                       if edge in gradients else None, edge in blocked, layout) for edge in graph.edges]
    nodes = [_node_svg(node, shapes[node.id], lines.get(node.id, ())) for node in graph.nodes]
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="computation-graph" id="graph-{graph.name}" '
            f'width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" role="img" '
            f'aria-label="{escape(graph.title)}"><title>{escape(graph.title)}</title>'
            f'{"".join(edges)}{"".join(nodes)}{_legend_svg(height - 20)}</svg>')
