"""The computation graph before and after the reparameterization trick: what it says, and its SVG drawing.

The drawing is checked the way a projector would show it: every text at least 16 px, and no label over another
label, a node or a line it does not belong to. Text boxes are estimated from the SVG alone, independently of
the layout code: 0.6 font sizes per character, and per line one font size above the baseline and 0.35 below
(what Chromium measures for the app's font).
"""

import dataclasses
import itertools
import math
import xml.etree.ElementTree as ET

import pytest

from vae.families import FAMILIES
from vae.figures import PALETTE
from vae.graphs import (
    GRADIENT_COLOUR,
    NO_GRADIENT,
    Edge,
    Graph,
    backprop_edges,
    blocked_edges,
    computation_graph,
    number_lines,
    to_svg,
)

BEFORE = computation_graph(reparameterized=False)
AFTER = computation_graph(reparameterized=True)
# The widest numbers the format writes (8 characters: −4.56e−5; a scale and a norm are positive), on every node.
WIDE = -4.56e-5
NUMBERS = {"mu": (WIDE, WIDE), "sigma": (-WIDE, WIDE), "eps": (WIDE, None), "z": (WIDE, WIDE),
           "encoder": (None, -WIDE), "decoder": (None, -WIDE), "loss": (WIDE, None)}
SVG = "{http://www.w3.org/2000/svg}"
CHAR_WIDTH, ASCENT, DESCENT = 0.6, 1.0, 0.35  # in font sizes
MAIN_COLUMN = (1100, 560)  # px: the wide layout's main column at 1280x720, below the section's controls
Box = tuple[float, float, float, float]  # left, top, right, bottom


def gradient_reachable(graph: Graph, removed: frozenset[str] = frozenset()) -> set[str]:
    """Nodes reached from the loss by walking edges backwards, never across a blocked edge.

    Written independently of `backprop_edges`, so the two can disagree.
    """
    reached, stack = {graph.loss.id}, [graph.loss.id]
    while stack:
        node = stack.pop()
        for edge in graph.edges:
            if edge.target == node and edge.role != "blocked" and edge.source not in reached | removed:
                reached.add(edge.source)
                stack.append(edge.source)
    return reached


def test_before_z_is_random_and_the_only_blocked_edge_is_the_draw_into_z():
    assert BEFORE.node("z").kind == "random"
    blocked = [edge for edge in BEFORE.edges if edge.role == "blocked"]
    assert blocked == [Edge("q", "z", "blocked", "sample")]
    # The sampling step is fed by μ and σ: the block sits between them and z.
    assert {e.source for e in BEFORE.edges if e.target == "q"} == {"mu", "sigma"}
    assert blocked_edges(BEFORE) == tuple(blocked)


def test_before_the_gradient_reaches_theta_but_not_phi():
    reached = gradient_reachable(BEFORE)
    assert {"decoder", "z"} <= reached  # ∇_θ goes inside the expectation
    assert reached.isdisjoint({"q", "mu", "sigma", "encoder"})


def test_after_the_gradient_reaches_phi_through_mu_and_through_sigma():
    assert "encoder" in gradient_reachable(AFTER)
    assert "encoder" in gradient_reachable(AFTER, removed=frozenset({"mu"}))
    assert "encoder" in gradient_reachable(AFTER, removed=frozenset({"sigma"}))
    assert "encoder" not in gradient_reachable(AFTER, removed=frozenset({"mu", "sigma"}))


def test_after_z_is_deterministic_and_eps_enters_from_outside():
    assert AFTER.node("z").kind == "deterministic"
    assert AFTER.node("eps").kind == "random"
    assert [(e.source, e.target, e.role) for e in AFTER.edges if "eps" in (e.source, e.target)] == [
        ("eps", "z", "noise")
    ]
    assert not any("eps" in (e.source, e.target) for e in backprop_edges(AFTER))
    assert not [e for e in AFTER.edges if e.role == "blocked"]
    assert blocked_edges(AFTER) == ()


@pytest.mark.parametrize(
    ("graph", "sources"),
    [(BEFORE, {"decoder", "z"}), (AFTER, {"decoder", "z", "mu", "sigma", "encoder"})],
)
def test_highlighted_backprop_is_exactly_the_path_the_gradient_takes(graph, sources):
    edges = backprop_edges(graph)
    assert {e.source for e in edges} == sources
    assert len(set(edges)) == len(edges)
    assert all(e.role == "forward" for e in edges)
    # Every highlighted edge lies on a path the independent search also walks.
    assert {e.source for e in edges} <= gradient_reachable(graph)


def parse(graph: Graph, numbers: dict | None = None) -> ET.Element:
    return ET.fromstring(to_svg(graph, numbers))


def groups(svg: ET.Element, kind: str) -> list[ET.Element]:
    return [g for g in svg.iter(f"{SVG}g") if g.get("class") == kind]


def text_box(text: ET.Element) -> Box:
    """A conservative estimate of where a <text> (one <tspan> per line) is drawn."""
    size = float(text.get("font-size"))
    lines = text.findall(f"{SVG}tspan") or [text]
    baselines = list(itertools.accumulate(float(t.get("dy", 0)) for t in lines))
    first, last = float(text.get("y")) + baselines[0], float(text.get("y")) + baselines[-1]
    width = max(len(line.text or "") for line in lines) * CHAR_WIDTH * size
    x = float(text.get("x"))
    left = {"middle": x - width / 2, "start": x, "end": x - width}[text.get("text-anchor", "start")]
    return left, first - ASCENT * size, left + width, last + DESCENT * size


def outline_box(shape: ET.Element) -> Box:
    if shape.tag == f"{SVG}ellipse":
        cx, cy, rx, ry = (float(shape.get(k)) for k in ("cx", "cy", "rx", "ry"))
        return cx - rx, cy - ry, cx + rx, cy + ry
    x, y, w, h = (float(shape.get(k)) for k in ("x", "y", "width", "height"))
    return x, y, x + w, y + h


def node_boxes(svg: ET.Element) -> dict[str, Box]:
    """Each node's outline (its first shape: the outer one), by node id."""
    return {g.get("id"): outline_box(next(c for c in g if c.tag in (f"{SVG}rect", f"{SVG}ellipse")))
            for g in groups(svg, "node")}


def labels(svg: ET.Element, kind: str) -> list[tuple[str, Box]]:
    """(text, box) of every text drawn inside groups of `kind` ("node", "edge" or "legend")."""
    return [("".join(t.itertext()), text_box(t)) for g in groups(svg, kind) for t in g.iter(f"{SVG}text")]


def segments(svg: ET.Element) -> list[tuple[str, tuple[float, float], tuple[float, float]]]:
    """Every straight stroke outside the nodes: lines, and the sides of arrowheads, with their group's id."""
    found = []
    for group in groups(svg, "edge") + groups(svg, "legend"):
        for line in group.iter(f"{SVG}line"):
            x1, y1, x2, y2 = (float(line.get(k)) for k in ("x1", "y1", "x2", "y2"))
            found.append((group.get("id"), (x1, y1), (x2, y2)))
        for polygon in group.iter(f"{SVG}polygon"):
            corners = [tuple(map(float, p.split(","))) for p in polygon.get("points").split()]
            found += [(group.get("id"), a, b) for a, b in zip(corners, corners[1:] + corners[:1], strict=True)]
    return found


def overlap(a: Box, b: Box) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def inside(inner: Box, outer: Box) -> bool:
    return outer[0] <= inner[0] and outer[1] <= inner[1] and inner[2] <= outer[2] and inner[3] <= outer[3]


def crosses(start: tuple[float, float], end: tuple[float, float], box: Box) -> bool:
    """Whether the segment passes through the box, sampled every 0.5 px."""
    steps = max(1, math.ceil(math.dist(start, end) / 0.5))
    points = ((start[0] + (end[0] - start[0]) * i / steps, start[1] + (end[1] - start[1]) * i / steps)
              for i in range(steps + 1))
    return any(box[0] < x < box[2] and box[1] < y < box[3] for x, y in points)


def stroked(group: ET.Element, colour: str, dashes: str | None = None) -> list[ET.Element]:
    return [line for line in group.iter(f"{SVG}line")
            if line.get("stroke") == colour and (dashes is None or line.get("stroke-dasharray") == dashes)]


BOTH = pytest.mark.parametrize("graph", [BEFORE, AFTER], ids=["before", "after"])
# Every drawing the pages make: plain, and with numbers on the nodes, for each posterior family.
NUMBERED = [(name, reparameterized) for name in ("gaussian", "laplace", "logistic", "student-t")
            for reparameterized in (False, True)]
DRAWN = pytest.mark.parametrize(
    ("graph", "numbers"),
    [(BEFORE, None), (AFTER, None)] + [(computation_graph(after, FAMILIES[name]), NUMBERS) for name, after in NUMBERED],
    ids=["before", "after"] + [f"{name}-{'after' if after else 'before'}-numbers" for name, after in NUMBERED])


@DRAWN
def test_svg_has_a_fixed_pixel_size_that_fits_the_main_column(graph, numbers):
    svg = parse(graph, numbers)
    width, height = int(svg.get("width")), int(svg.get("height"))
    assert width <= MAIN_COLUMN[0] and height <= MAIN_COLUMN[1]
    assert svg.get("viewBox") == f"0 0 {width} {height}"  # 1 unit = 1 px: nothing is scaled
    everything = [box for kind in ("node", "edge", "legend") for _, box in labels(svg, kind)]
    everything += node_boxes(svg).values()
    assert all(inside(box, (0, 0, width, height)) for box in everything)


@DRAWN
def test_every_text_is_at_least_16_px(graph, numbers):
    svg = parse(graph, numbers)
    sizes = [float(t.get("font-size")) for t in svg.iter(f"{SVG}text")]
    assert sizes and min(sizes) >= 16
    # Sized on each text and nowhere else, and nothing scales: the sizes above are the sizes drawn.
    assert {e.tag for e in svg.iter() if e.get("font-size") or e.get("style")} == {f"{SVG}text"}
    assert not [e.tag for e in svg.iter() if e.get("transform")]


@DRAWN
def test_no_two_texts_overlap(graph, numbers):
    svg = parse(graph, numbers)
    everything = [label for kind in ("node", "edge", "legend") for label in labels(svg, kind)]
    numbered = sum(bool(lines) for lines in number_lines(graph, numbers).values()) if numbers else 0
    expected = (len(graph.nodes) + 6 + len(backprop_edges(graph)) + len(blocked_edges(graph))  # 6 in the legend
                + sum(bool(e.label) for e in graph.edges) + numbered)
    assert len(everything) == expected  # every label is drawn, so every one is checked
    clashes = [(a, b) for (a, box_a), (b, box_b) in itertools.combinations(everything, 2) if overlap(box_a, box_b)]
    assert clashes == []


@DRAWN
def test_node_labels_sit_inside_their_node_and_other_labels_clear_of_every_node(graph, numbers):
    svg = parse(graph, numbers)
    nodes = node_boxes(svg)
    for group in groups(svg, "node"):
        for text in group.iter(f"{SVG}text"):
            assert inside(text_box(text), nodes[group.get("id")]), group.get("id")
            others = {i: box for i, box in nodes.items() if i != group.get("id")}
            assert not [i for i, box in others.items() if overlap(text_box(text), box)]
    for text, box in labels(svg, "edge") + labels(svg, "legend"):
        assert not [i for i, node in nodes.items() if overlap(box, node)], text


@DRAWN
def test_ellipses_hold_their_labels(graph, numbers):
    """Every text's box (the label's, the numbers') fits inside the ellipse itself, not only inside its bounding
    box."""
    for group in groups(parse(graph, numbers), "node"):
        ellipse = group.find(f"{SVG}ellipse")
        if ellipse is None:
            continue
        cx, cy, rx, ry = (float(ellipse.get(k)) for k in ("cx", "cy", "rx", "ry"))
        for text in group.iter(f"{SVG}text"):
            left, top, right, bottom = text_box(text)
            assert all(((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 <= 1 for x in (left, right) for y in (top, bottom))


@DRAWN
def test_no_line_or_arrowhead_runs_through_a_text(graph, numbers):
    svg = parse(graph, numbers)
    everything = [label for kind in ("node", "edge", "legend") for label in labels(svg, kind)]
    hits = [(owner, text) for owner, start, end in segments(svg) for text, box in everything
            if crosses(start, end, box)]
    assert hits == []


@BOTH
def test_one_red_dashed_arrow_per_gradient_edge_and_none_elsewhere(graph):
    svg = parse(graph)
    expected = {f"edge-{e.source}-{e.target}" for e in backprop_edges(graph)}
    drawn = {g.get("id"): g for g in groups(svg, "edge")}
    assert set(drawn) == {f"edge-{e.source}-{e.target}" for e in graph.edges}
    dashed = {i for i, g in drawn.items() if stroked(g, GRADIENT_COLOUR, "8 5")}
    assert dashed == expected
    assert all(len(stroked(drawn[i], GRADIENT_COLOUR, "8 5")) == 1 for i in expected)
    assert not any(stroked(drawn[i], GRADIENT_COLOUR) for i in drawn if "eps" in i)  # no gradient into ε
    gradient_texts = {i: "".join(t.itertext()) for i, g in drawn.items() for t in g.iter(f"{SVG}text")
                      if t.get("fill") == GRADIENT_COLOUR and "∂" in "".join(t.itertext())}
    assert set(gradient_texts) == expected


def test_the_blocked_draw_is_marked_only_before_the_trick():
    before = {g.get("id"): g for g in groups(parse(BEFORE), "edge")}
    marked = {i for i, g in before.items() if stroked(g, GRADIENT_COLOUR, "2 5")}
    assert marked == {"edge-q-z"} == {f"edge-{e.source}-{e.target}" for e in blocked_edges(BEFORE)}
    blocked = before["edge-q-z"]
    crossing = [line for line in stroked(blocked, GRADIENT_COLOUR) if line.get("stroke-width") == "4"]
    assert len(crossing) == 2  # the ✕
    assert "no gradientthrough sampling" in ["".join(t.itertext()) for t in blocked.iter(f"{SVG}text")]
    after = groups(parse(AFTER), "edge")
    assert not [g.get("id") for g in after if stroked(g, GRADIENT_COLOUR, "2 5")]
    assert not [t for g in after for t in g.itertext() if "sampling" in t]


def test_nodes_wear_the_palette_colours_and_shapes_follow_the_convention():
    for graph in (BEFORE, AFTER):
        nodes = {g.get("id"): g for g in groups(parse(graph), "node")}
        for node in graph.nodes:
            outline = next(c for c in nodes[f"node-{node.id}"] if c.tag in (f"{SVG}rect", f"{SVG}ellipse"))
            assert outline.tag == f"{SVG}{'ellipse' if node.kind == 'random' else 'rect'}", node.id
            if node.id in PALETTE:
                assert outline.get("stroke") == PALETTE[node.id], node.id
    eps_edge = next(g for g in groups(parse(AFTER), "edge") if g.get("id") == "edge-eps-z")
    assert eps_edge.find(f"{SVG}line").get("stroke") == PALETTE["eps"]


@pytest.mark.parametrize(("graph", "symbols"), [(BEFORE, "μσφθ²"), (AFTER, "μσεφθ⊙")])
def test_the_drawing_speaks_the_lectures_notation(graph, symbols):
    text = "".join(parse(graph).itertext())
    for symbol in symbols:
        assert symbol in text, symbol
    assert parse(graph).find(f"{SVG}title").text == graph.title


def test_labels_are_escaped():
    odd = Graph("odd", 'a <b> & "c"', tuple(dataclasses.replace(n, label="x < y & z") if n.id == "x" else n
                                            for n in BEFORE.nodes), BEFORE.edges)
    svg = parse(odd)  # still well-formed XML
    assert "x < y & z" in ["".join(t.itertext()) for t in svg.iter(f"{SVG}text")]
    assert svg.get("aria-label") == 'a <b> & "c"'


def node_texts(svg: ET.Element) -> dict[str, list[str]]:
    """Node id -> the lines it prints (label lines, then number lines)."""
    return {g.get("id").removeprefix("node-"): [span.text for span in g.iter(f"{SVG}tspan")]
            for g in groups(svg, "node")}


def test_numbers_print_values_and_gradients_and_the_blocked_ones_are_missing_before_the_trick():
    numbers = {"mu": (0.5, -1.25), "sigma": (0.8, 0.75), "eps": (0.6, None), "z": (0.98, -1.25),
               "encoder": (None, 3.14), "decoder": (None, 12.5), "loss": (-25.25, None)}
    before, after = node_texts(parse(BEFORE, numbers)), node_texts(parse(AFTER, numbers))
    for node in ("encoder", "mu", "sigma", "q"):  # sampling blocks the gradient on its way to φ
        assert before[node][-1] == NO_GRADIENT, node
        assert not any("∂" in line or "∇" in line for line in before[node])
    assert before["mu"][-2:] == ["μ = 0.5", NO_GRADIENT] and before["sigma"][-2:] == ["σ = 0.8", NO_GRADIENT]
    assert before["z"][-2:] == ["z = 0.98", "∂L/∂z = −1.25"] and before["decoder"][-1] == "‖∇θ‖ = 12.5"
    # After the trick the same numbers reach φ, through μ and σ; ε needs no gradient, and x none at all.
    assert after["mu"][-2:] == ["μ = 0.5", "∂L/∂μ = −1.25"] and after["sigma"][-1] == "∂L/∂σ = 0.75"
    assert after["encoder"][-1] == "‖∇φ‖ = 3.14" and after["eps"][-1] == "ε = 0.6"
    assert after["loss"][-1] == "L = −25.2" and after["x"] == ["x", "data"]
    assert not [node for node, lines in after.items() if NO_GRADIENT in lines]
    blocked = [t for g in groups(parse(BEFORE, numbers), "node") for t in g.iter(f"{SVG}tspan")
               if t.text == NO_GRADIENT]
    assert {t.get("fill") for t in blocked} <= {None, GRADIENT_COLOUR} and len(blocked) == 4  # red, like a gradient


def test_a_gradient_given_for_a_blocked_node_is_still_not_printed():
    svg = parse(BEFORE, {"mu": (0.5, 99.0), "encoder": (None, 99.0)})
    assert "99" not in "".join(svg.itertext())


def test_the_graph_names_the_runs_family():
    laplace = node_texts(parse(computation_graph(True, FAMILIES["laplace"]), NUMBERS))
    assert laplace["eps"][0] == "ε ~ Laplace(0, 1)" and laplace["z"][:2] == ["z =", "μ + b ⊙ ε"]
    assert laplace["sigma"][:2] == ["b", "scale"] and laplace["sigma"][-1].startswith("∂L/∂b = ")
    assert "∂L/∂b" in "".join(parse(computation_graph(True, FAMILIES["laplace"])).itertext())  # the edge too
    logistic = node_texts(parse(computation_graph(True, FAMILIES["logistic"]), NUMBERS))
    assert logistic["eps"][0] == "u ~ Uniform(0, 1)" and logistic["eps"][-1].startswith("u = ")
    assert logistic["z"][1] == "F⁻¹(u; μ, s)"
    student = node_texts(parse(computation_graph(False, FAMILIES["student-t"])))
    assert student["q"] == ["q_φ(z|x)", "= Student-t(μ, σ)"]
    assert computation_graph(True, FAMILIES["gaussian"]) == AFTER  # the Gaussian is the default
