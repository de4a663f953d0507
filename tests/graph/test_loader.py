"""Graph files in and out: the native schema, round trips through YAML and JSON, shorthand forms."""

from __future__ import annotations

from pathlib import Path

import pytest

from apipeline.graph import Branches, Chain, Graph, Group, Link, Node, dump_graph, load_graph
from apipeline.graph.loader import line_map

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "graphs"

FLOW_GRAPH = """\
name: shapes
description: every flow form
bind: {input: a.mode}
nodes:
  - {id: a, type: pass, params: {gain: 2}}
  - {id: b, type: pass}
  - {id: c, type: pass, params: {mode: b}}
  - {id: d, type: pass}
  - {id: e, type: logger, params: {ignored_frame_types: [AudioRawFrame]}}
flow:
  - a
  - parallel: [[b], [c, d]]
  - group: tail
    flow:
      - sync_parallel: [e, []]
"""


def test_flow_forms_parse_to_the_model(registry):
    g = load_graph(text=FLOW_GRAPH, registry=registry)
    assert g.name == "shapes" and g.bind == {"input": "a.mode"}
    assert g.nodes[0] == Node("a", "pass", {"gain": 2})
    assert g.flow == Chain(
        [
            "a",
            Branches("parallel", [Chain(["b"]), Chain(["c", "d"])]),
            Group("tail", Chain([Branches("sync_parallel", [Chain(["e"]), Chain([])])])),
        ]
    )


@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_round_trip_is_equal(registry, tmp_path, fmt):
    g = load_graph(text=FLOW_GRAPH, registry=registry)
    path = tmp_path / f"g.{fmt}"
    text = dump_graph(g, path)
    again = load_graph(path, registry=registry)
    assert again == g
    assert dump_graph(again, fmt=fmt) == text


def test_links_shorthands_and_round_trip(registry):
    text = """\
nodes: [{id: a, type: pass}, {id: b, type: pass}, {id: j, type: join}]
links:
  - a -> b
  - [b, j.f0]
  - {from: a.out, to: j.spectrum}
"""
    g = load_graph(text=text, registry=registry)
    assert g.links == [Link("a", "b"), Link("b", "j", None, "f0"), Link("a", "j", "out", "spectrum")]
    assert load_graph(text=dump_graph(g), registry=registry) == g


def test_implicit_chain_when_neither_flow_nor_links(registry):
    g = load_graph(text="nodes: [{id: a, type: pass}, {id: b, type: pass}]\n", registry=registry)
    assert g.flow is None and g.links is None
    assert g.effective_flow() == Chain(["a", "b"])


def test_line_map_points_at_keys_and_items():
    lines = line_map("a:\n  b:\n    - x\n    - y: 1\n")
    assert lines == {"a": 1, "a.b": 2, "a.b[0]": 3, "a.b[1]": 4, "a.b[1].y": 4}


def test_invalid_yaml_is_a_graph_error(tmp_path):
    from apipeline.errors import GraphError

    path = tmp_path / "bad.yaml"
    path.write_text("nodes: [\n")
    with pytest.raises(GraphError, match=r"bad.yaml: not valid YAML"):
        load_graph(path)
    with pytest.raises(GraphError, match="no such graph file"):
        load_graph(tmp_path / "missing.yaml")


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.iterdir()))
def test_shipped_examples_validate(name):
    g = load_graph(EXAMPLES / name, check_formats=False)
    assert isinstance(g, Graph) and g.nodes
