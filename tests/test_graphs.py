"""The computation graph before and after the reparameterization trick: what it says, and its DOT text."""

import re
import shutil
import subprocess

import pytest

from vae.figures import PALETTE
from vae.graphs import (
    GRADIENT_COLOUR,
    Edge,
    Graph,
    backprop_edges,
    blocked_edges,
    computation_graph,
    dot_string,
    graph_after,
    graph_before,
    legend_dot,
    to_dot,
)

BEFORE = computation_graph(reparameterized=False)
AFTER = computation_graph(reparameterized=True)
QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"')
IDENTIFIER = r"[A-Za-z_]\w*"


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


def parse_dot(dot: str) -> tuple[set[str], list[tuple[str, str]]]:
    """Declared node ids and edges of DOT text, strings blanked out so labels cannot confuse the parse."""
    bare = QUOTED.sub('""', dot)
    assert bare.count("{") == bare.count("}"), "unbalanced braces"
    depth = 0
    for char in bare:
        depth += {"{": 1, "}": -1}.get(char, 0)
        assert depth >= 0, "a brace closes before it opens"
    declared = set(re.findall(rf"^\s*({IDENTIFIER})\s*\[", bare, flags=re.M)) - {"graph", "node", "edge"}
    edges = re.findall(rf"({IDENTIFIER})\s*->\s*({IDENTIFIER})", bare)
    return declared, edges


def node_line(dot: str, node_id: str) -> str:
    return next(line for line in dot.splitlines() if re.match(rf"\s*{node_id} \[", line))


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


@pytest.mark.parametrize(("graph", "symbols"), [(BEFORE, "μσφθ✗²"), (AFTER, "μσεφθ⊙")])
def test_dot_text_is_well_formed_and_speaks_the_lectures_notation(graph, symbols):
    dot = to_dot(graph)
    assert dot.startswith(f"digraph {dot_string(graph.name)} {{")
    declared, edges = parse_dot(dot)
    assert declared == {n.id for n in graph.nodes}
    assert {endpoint for edge in edges for endpoint in edge} <= declared
    assert 'rankdir="LR"' in dot
    assert all(int(size) >= 16 for size in re.findall(r"fontsize=(\d+)", dot))
    for symbol in symbols:
        assert symbol in dot, symbol
    _render_if_graphviz_is_installed(dot)


def test_nodes_wear_the_palette_colours_and_shapes_follow_the_convention():
    for graph in (BEFORE, AFTER):
        dot = to_dot(graph)
        for quantity in ("mu", "sigma", "z"):
            assert f'color="{PALETTE[quantity]}"' in node_line(dot, quantity)
        for node in graph.nodes:
            shape = "ellipse" if node.kind == "random" else "box"
            assert f'shape="{shape}"' in node_line(dot, node.id)
    assert f'color="{PALETTE["eps"]}"' in node_line(to_dot(AFTER), "eps")


@pytest.mark.parametrize("graph", [BEFORE, AFTER])
def test_dot_draws_one_backward_red_arrow_per_gradient_edge(graph):
    dot = to_dot(graph)
    gradient_lines = [line for line in dot.splitlines() if 'style="dashed"' in line and GRADIENT_COLOUR in line]
    assert len(gradient_lines) == len(backprop_edges(graph))
    assert all('dir="back"' in line for line in gradient_lines)
    blocked_lines = [line for line in dot.splitlines() if "✗" in line]
    assert len(blocked_lines) == len(blocked_edges(graph))
    assert all(re.match(r"\s*q -> z ", line) and 'style="dotted"' in line for line in blocked_lines)
    assert not any("eps" in line for line in gradient_lines)


def test_without_highlight_only_the_data_flow_is_drawn():
    for graph in (BEFORE, AFTER):
        dot = to_dot(graph, highlight_backprop=False)
        assert GRADIENT_COLOUR not in dot and "✗" not in dot
        assert len(parse_dot(dot)[1]) == len(graph.edges)


def test_convenience_functions_and_legend():
    assert graph_before() == to_dot(BEFORE) and graph_after() == to_dot(AFTER)
    legend = legend_dot()
    declared, edges = parse_dot(legend)
    assert {endpoint for edge in edges for endpoint in edge} <= declared
    assert 'shape="box"' in node_line(legend, "deterministic")
    assert 'shape="ellipse"' in node_line(legend, "random")
    for words in ("✗ blocked", "∂L/∂", "dashed", "dotted"):
        assert words in legend
    _render_if_graphviz_is_installed(legend)


def test_dot_string_escapes_quotes_backslashes_and_line_breaks():
    text = 'a "quoted" \\ path\nnext line ⊙'
    quoted = dot_string(text)
    assert QUOTED.fullmatch(quoted)  # one DOT string token, however many quotes the text holds
    assert quoted == '"a \\"quoted\\" \\\\ path\\nnext line ⊙"'
    assert "\n" not in quoted


def _render_if_graphviz_is_installed(dot: str) -> None:
    """The strongest check of syntax is Graphviz itself; the app never needs it, so it may be absent."""
    if shutil.which("dot") is None:
        return
    svg = subprocess.run(["dot", "-Tsvg"], input=dot, capture_output=True, text=True, timeout=30, check=True).stdout
    assert "<svg" in svg
