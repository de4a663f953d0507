"""Drawing: DOT and Mermaid text; PNG/SVG through Graphviz when it is installed."""

from __future__ import annotations

import pytest

from apipeline.errors import MissingDependencyError
from apipeline.graph import load_graph, render, to_dot, to_mermaid
from apipeline.graph.draw import dot_available

TEXT = """\
name: drawn
nodes: [{id: a, type: pass}, {id: b, type: pass}, {id: c, type: pass}, {id: d, type: pass}]
flow: [a, {sync_parallel: [[b], [c]]}, {group: tail, flow: [d]}]
"""


def test_dot_has_clusters_nodes_and_edges(registry):
    dot = to_dot(load_graph(text=TEXT, registry=registry))
    assert dot.startswith('digraph "drawn" {')
    assert 'label="sync_parallel"' in dot and 'label="branch 1"' in dot and 'label="tail"' in dot
    assert '"a" [label="a\\npass"];' in dot
    for edge in ('"a" -> "b";', '"a" -> "c";', '"b" -> "d";', '"c" -> "d";'):
        assert edge in dot


def test_mermaid_has_subgraphs_and_port_labels(registry):
    assert 'subgraph b0 ["sync_parallel"]' in to_mermaid(load_graph(text=TEXT, registry=registry))
    dag = load_graph(
        text="nodes: [{id: a, type: pass}, {id: j, type: join}]\nlinks: [a -> j.f0]\n", registry=registry
    )
    assert "n_a -->|→f0| n_j" in to_mermaid(dag)
    assert '"a" -> "j" [label="→f0", fontsize=9];' in to_dot(dag)


def test_svg_needs_no_file_but_png_needs_dot(registry):
    if not dot_available():
        with pytest.raises(MissingDependencyError, match="Graphviz 'dot' is not installed"):
            render(load_graph(text=TEXT, registry=registry), "png")
        pytest.skip("Graphviz 'dot' is not installed: PNG/SVG rendering not exercised")
    graph = load_graph(text=TEXT, registry=registry)
    png = render(graph, "png")
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"<svg" in render(graph, "svg")
