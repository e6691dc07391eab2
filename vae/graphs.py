"""The VAE's computation graph before and after the reparameterization trick, as Graphviz DOT text.

Lecture, claims 2 and 3: sampling z ~ q_φ(z|x) = N(μ, σ²) blocks the gradient of the reconstruction
term on its way back to the encoder's φ; writing z = μ + σ ⊙ ε with ε ~ N(0, I) makes z a deterministic
function of μ and σ, and the randomness enters from outside, where no gradient is needed.

The graph is a small data model first (nodes, edges, the roles that decide where gradients flow), so
tests can ask it questions; `to_dot` only draws it. Pages render the text with `st.graphviz_chart`,
which lays it out in the browser: no Python graphviz package or `dot` binary is needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from vae.figures import FONT_SIZE, PALETTE

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
TITLE_SIZE = FONT_SIZE + 6
LABEL_SIZE = FONT_SIZE + 4  # node labels carry the maths: the largest text in the chart
FONT = "Helvetica"

# Endpoints of the legend's sample arrows.
_LEGEND_POINTS = ("f0", "f1", "g0", "g1", "b0", "b1")
# Symbol of the value a node computes, for the gradient labels ∂L/∂·.
_SYMBOLS = {"decoder": "θ", "z": "z", "mu": "μ", "sigma": "σ", "encoder": "φ"}


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

    def node(self, node_id: str) -> Node:
        return {n.id: n for n in self.nodes}[node_id]

    @property
    def loss(self) -> Node:
        return next(n for n in self.nodes if n.kind == "output")


def computation_graph(reparameterized: bool) -> Graph:
    """x -> encoder(φ) -> μ, σ -> z -> decoder(θ) -> log p_θ(x|z), with z sampled (before) or
    z = μ + σ ⊙ ε (after).

    Only the reconstruction term is drawn: the analytic KL(q_φ ‖ p) is differentiable in μ and σ either
    way, so it would add a gradient path to φ that hides the one the trick is about.
    """
    shared = (
        Node("x", "x\ndata", "input"),
        Node("encoder", "encoder\nφ", "deterministic"),
        Node("mu", "μ\nmean", "deterministic"),
        Node("sigma", "σ\nstd. dev.", "deterministic"),
        Node("decoder", "decoder\nθ", "deterministic"),
        Node("loss", "L =\nlog p_θ(x|z)", "output"),
    )
    into_mu_sigma = (Edge("x", "encoder", "forward"), Edge("encoder", "mu", "forward"),
                     Edge("encoder", "sigma", "forward"))
    out_of_z = (Edge("z", "decoder", "forward"), Edge("decoder", "loss", "forward"))
    if reparameterized:
        middle_nodes = (Node("eps", "ε ~ N(0, I)", "random"), Node("z", "z =\nμ + σ ⊙ ε", "deterministic"))
        middle_edges = (Edge("mu", "z", "forward"), Edge("sigma", "z", "forward"),
                        Edge("eps", "z", "noise", "noise from outside,\nno gradient needed"))
        title = "After: z = μ + σ ⊙ ε is deterministic, so ∂L/∂φ flows back through μ and σ"
    else:
        middle_nodes = (Node("q", "q_φ(z|x)\n= N(μ, σ²)", "deterministic"), Node("z", "z\nrandom draw", "random"))
        middle_edges = (Edge("mu", "q", "forward"), Edge("sigma", "q", "forward"),
                        Edge("q", "z", "blocked", "sample"))
        title = "Before: z is sampled, so ∂L/∂φ cannot get past the sampling step"
    name = "after" if reparameterized else "before"
    return Graph(name, title, shared[:4] + middle_nodes + shared[4:], into_mu_sigma + middle_edges + out_of_z)


def backprop_edges(graph: Graph) -> tuple[Edge, ...]:
    """The edges the gradient of the loss flows back along: a search from the loss over "forward" edges.

    It stops at blocked and noise edges (no gradient through a draw, none needed into ε) and at the data
    x (we never need ∂L/∂x).
    """
    reached, frontier, found = {graph.loss.id}, [graph.loss.id], []
    while frontier:
        target = frontier.pop()
        for edge in graph.edges:
            if edge.target != target or edge.role != "forward" or graph.node(edge.source).kind == "input":
                continue
            found.append(edge)
            if edge.source not in reached:
                reached.add(edge.source)
                frontier.append(edge.source)
    return tuple(found)


def blocked_edges(graph: Graph) -> tuple[Edge, ...]:
    """The draws a gradient arrives at and cannot pass: where backpropagation stops short of φ."""
    reached = {graph.loss.id} | {e.source for e in backprop_edges(graph)}
    return tuple(e for e in graph.edges if e.role == "blocked" and e.target in reached)


def dot_string(text: str) -> str:
    """`text` as a quoted DOT string: backslashes and quotes escaped, line breaks as DOT's centred \\n."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def _attributes(**attributes: str | float) -> str:
    """`[key=value, ...]`, strings quoted, so labels with spaces, quotes or Unicode stay one token."""
    parts = [f"{key}={dot_string(value) if isinstance(value, str) else value}" for key, value in attributes.items()]
    return "[" + ", ".join(parts) + "]"


def _node_style(node: Node) -> dict[str, str | float]:
    """Shape by kind (box = deterministic, ellipse = random), border in the quantity's PALETTE colour."""
    style: dict[str, str | float] = {"label": node.label, "shape": "box", "style": "rounded"}
    if node.kind == "random":
        style.update(shape="ellipse", style="filled", fillcolor=RANDOM_FILL)
    elif node.kind == "input":
        style.update(style="rounded,filled", fillcolor=INPUT_FILL)
    elif node.kind == "output":
        style.update(peripheries=2)
    if node.id in PALETTE:
        # A thick coloured border rather than coloured text: light Okabe-Ito colours are hard to read
        # as text on a projector, and a border shows the same colour as the plots.
        style.update(color=PALETTE[node.id], penwidth=4)
    return style


def _gradient_label(edge: Edge, fan_out: int) -> str:
    """∂L/∂(source); where the source feeds several paths, only this path's chain-rule share."""
    source, target = (_SYMBOLS.get(i, i) for i in (edge.source, edge.target))
    return f"∂L/∂{source}" if fan_out == 1 else f"∂L/∂{target} ·\n∂{target}/∂{source}"


def _gradient_edge(edge: Edge, fan_out: int) -> str:
    """The gradient running back along `edge`, drawn as a red dashed arrow pointing at its source."""
    label = _gradient_label(edge, fan_out)
    # xlabel, not label: an edge label widens the gap between ranks, and the page scales the whole drawing
    # down to fit its width; xlabels are placed after layout and cost no width.
    attributes = _attributes(dir="back", color=GRADIENT_COLOUR, fontcolor=GRADIENT_COLOUR, style="dashed",
                             penwidth=3, xlabel=label)
    return f"  {edge.source} -> {edge.target} {attributes};"


def _blocked_edge(edge: Edge) -> str:
    """A red dotted arrow from the sample back towards its distribution, stopped by a bar (✗)."""
    attributes = _attributes(dir="back", arrowtail="tee", color=GRADIENT_COLOUR, fontcolor=GRADIENT_COLOUR,
                             style="dotted", penwidth=3, xlabel="✗ no gradient\nthrough sampling")
    return f"  {edge.source} -> {edge.target} {attributes};"


def _forward_edge(edge: Edge) -> str:
    style: dict[str, str | float] = {"penwidth": 2}
    if edge.label:
        style["xlabel"] = edge.label
    if edge.role == "noise":
        style.update(color=PALETTE["eps"], penwidth=3)
    return f"  {edge.source} -> {edge.target} {_attributes(**style)};"


def _header(name: str, title: str, rankdir: str = "LR", ranksep: float = 0.6) -> list[str]:
    graph = _attributes(rankdir=rankdir, label=title, labelloc="t", fontsize=TITLE_SIZE, fontname=FONT, nodesep=0.25,
                        ranksep=ranksep)
    return [
        f"digraph {dot_string(name)} {{",
        f"  graph {graph};",
        f"  node {_attributes(fontsize=LABEL_SIZE, fontname=FONT, margin='0.2,0.1')};",
        f"  edge {_attributes(fontsize=FONT_SIZE, fontname=FONT)};",
    ]


def to_dot(graph: Graph, highlight_backprop: bool = True) -> str:
    """DOT text of `graph`: values flow left to right in black; with `highlight_backprop`, the gradient of
    the loss runs back in red dashes, and a red dotted ✗ marks where it is blocked."""
    # LR: columns in data-flow order, as the other pages lay out encoder -> latent -> decoder. Tight rank
    # spacing: the page scales the drawing to its width, so every inch of spacing costs font size.
    lines = _header(graph.name, graph.title, ranksep=0.55)
    lines += [f"  {node.id} {_attributes(**_node_style(node))};" for node in graph.nodes]
    # μ and σ (and ε) in one column, so z's inputs line up whichever graph is shown.
    lines.append("  { rank=same; " + " ".join(n.id for n in graph.nodes if n.id in ("mu", "sigma", "eps")) + " }")
    lines += [_forward_edge(edge) for edge in graph.edges]
    if highlight_backprop:
        edges = backprop_edges(graph)
        lines += [_gradient_edge(e, sum(other.source == e.source for other in edges)) for e in edges]
        lines += [_blocked_edge(edge) for edge in blocked_edges(graph)]
    return "\n".join([*lines, "}"])


def legend_dot() -> str:
    """A one-row chart explaining the drawing: box = deterministic, ellipse = random, red = gradients."""
    gradient = {"dir": "back", "color": GRADIENT_COLOUR, "fontcolor": GRADIENT_COLOUR, "penwidth": 3}
    # Top to bottom, so the shapes and the short sample arrows sit side by side in one low row.
    lines = _header("legend", "Legend", rankdir="TB", ranksep=0.4)
    lines += [
        f"  data {_attributes(label='data', shape='box', style='rounded,filled', fillcolor=INPUT_FILL)};",
        f"  deterministic {_attributes(label='deterministic', shape='box', style='rounded')};",
        f"  random {_attributes(label='random', shape='ellipse', style='filled', fillcolor=RANDOM_FILL)};",
        *[f"  {point} {_attributes(label='', shape='point', width=0.12)};" for point in _LEGEND_POINTS],
        "  { rank=same; data deterministic random f0 g0 b0 }",
        f"  f0 -> f1 {_attributes(label=' value (forward)', penwidth=2)};",
        f"  g0 -> g1 {_attributes(label=' gradient ∂L/∂· (backward)', style='dashed', **gradient)};",
        f"  b0 -> b1 {_attributes(label=' ✗ blocked: no gradient', style='dotted', arrowtail='tee', **gradient)};",
    ]
    return "\n".join([*lines, "}"])


def graph_before() -> str:
    """The graph before the trick: z is sampled and the gradient is blocked on its way to φ."""
    return to_dot(computation_graph(reparameterized=False))


def graph_after() -> str:
    """The graph after the trick: z = μ + σ ⊙ ε and the gradient reaches φ through μ and σ."""
    return to_dot(computation_graph(reparameterized=True))
