"""Every validation problem, with its message and its place (path and line) in the file."""

from __future__ import annotations

import pytest

from apipeline.errors import GraphError
from apipeline.graph import load_graph


def problems(text: str, registry, **kw) -> list[str]:
    with pytest.raises(GraphError) as info:
        load_graph(text=text, registry=registry, **kw)
    return info.value.problems


def test_every_problem_is_reported_at_once_with_path_and_line(registry):
    text = """\
name: many
nodes:
  - id: a
    type: pas
  - id: b
    type: pass
    params:
      gain: loud
      mood: x
  - id: c
    type: required
  - {id: b, type: pass}
flow: [a, b, c, ghost]
"""
    found = problems(text, registry)
    assert found == [
        "line 4: nodes[0].type: unknown processor type 'pas' (did you mean 'pass'?); "
        "`apipeline list` shows the registered types",
        "line 8: nodes[1].params.gain: parameter 'gain' of 'pass': expected number, got string 'loud'",
        "line 9: nodes[1].params.mood: unknown parameter 'mood' for type 'pass' (did you mean 'mode'?); "
        "parameters: gain, mode",
        "line 10: nodes[2].params: missing required parameter 'size' (int) for type 'required' (node 'c')",
        "line 12: nodes[3].id: duplicate node id 'b' (first at nodes[1])",
        "line 13: flow[3]: dangling reference: no node 'ghost'",
    ]


def test_file_name_prefixes_problems(registry, tmp_path):
    path = tmp_path / "g.yaml"
    path.write_text("nodes:\n  - {id: a, type: nope}\n")
    with pytest.raises(GraphError) as info:
        load_graph(path, registry=registry)
    assert info.value.problems == [
        f"{path}:2: nodes[0].type: unknown processor type 'nope'; `apipeline list` shows the registered types"
    ]


def test_json_files_get_line_numbers_too(registry, tmp_path):
    path = tmp_path / "g.json"
    path.write_text(
        '{\n "nodes": [\n  {"id": "a",\n   "type": "pass",\n   "params": {"gain": true}}\n ]\n}\n'
    )
    with pytest.raises(GraphError) as info:
        load_graph(path, registry=registry)
    assert info.value.problems == [
        f"{path}:5: nodes[0].params.gain: parameter 'gain' of 'pass': expected number, got boolean True"
    ]


def test_dangling_links_and_unknown_ports(registry):
    text = """\
nodes:
  - {id: a, type: pass}
  - {id: j, type: join}
links:
  - {from: a, to: j}
  - {from: a.nope, to: j.f0}
  - {from: b, to: j.spectrum}
  - {from: a, to: j.pitch}
"""
    assert problems(text, registry) == [
        "line 5: links[0].to: node 'j' has several inputs (f0, spectrum): name one, e.g. 'j.f0'",
        "line 6: links[1].from: node 'a' has no output 'nope' (outputs: out)",
        "line 7: links[2].from: dangling link b -> j.spectrum: no node 'b'",
        "line 8: links[3].to: node 'j' has no input 'pitch' (inputs: f0, spectrum)",
    ]


def test_cycle_is_named_in_order(registry):
    text = """\
nodes: [{id: a, type: pass}, {id: b, type: pass}, {id: c, type: pass}]
links: [a -> b, b -> c, c -> a]
"""
    assert problems(text, registry) == [
        "line 2: links[0]: cycle: a -> b -> c -> a; a pipeline must be acyclic"
    ]


def test_self_link_is_a_cycle(registry):
    text = "nodes: [{id: a, type: pass}]\nlinks: [a -> a]\n"
    assert problems(text, registry) == ["line 2: links[0]: link a -> a links a node to itself (a cycle)"]


def test_incompatible_formats_name_both_processors_and_formats(registry):
    text = """\
nodes: [{id: src, type: makes48k}, {id: asr, type: needs16k}]
flow: [src, asr]
"""
    assert problems(text, registry) == [
        "line 2: flow[1]: incompatible formats: cannot link src -> asr: "
        "src produces 48000 Hz, 2 ch, float32, asr accepts 16000 Hz, 1 ch, float32 "
        "(mismatch in sample_rate, channels); "
        "set auto_convert: true to insert converters"
    ]


def test_structure_problems(registry):
    text = """\
nodes: [{id: a, type: pass}, {id: b, type: pass}, {id: "1x", type: pass}]
flow: [a, a, {parallel: [b], extra: 1}]
verison: 1
"""
    assert problems(text, registry) == [
        "line 3: verison: unknown key 'verison' (did you mean 'version', 'description'?); "
        "expected one of version, name, description, auto_convert, join, bind, backend, ray_address, ray, "
        "nodes, flow, links",
        "line 1: nodes[2].id: expected an id of letters, digits, '_' or '-' (not starting with a digit), "
        "got '1x'",
        "line 2: flow[2].extra: unexpected key(s) extra in a parallel block",
        "line 2: flow[1]: node 'a' appears twice in the flow (also at flow[0]); a processor has one place "
        "in a pipeline",
    ]


def test_unused_node_and_bad_bind(registry):
    text = """\
bind: {input: a.pth}
nodes: [{id: a, type: pass}, {id: b, type: pass}]
flow: [a]
"""
    assert problems(text, registry) == [
        "line 2: nodes[1]: node 'b' is not used in the flow",
        "line 1: bind.input: node 'a' has no parameter 'pth'",
    ]


def test_types_a_file_cannot_create(registry):
    text = "nodes: [{id: f, type: function_filter}]\n"
    assert problems(text, registry) == [
        "line 1: nodes[0].type: type 'function_filter' cannot be created from a graph file: required "
        "parameter(s) fn cannot be written in a file",
        "line 1: nodes[0].params: missing required parameter 'fn' (callable) for type 'function_filter' "
        "(node 'f')",
    ]


def test_overrides_are_checked_like_file_values(registry):
    text = "nodes: [{id: a, type: pass}]\n"
    assert problems(text, registry, overrides=["a.gain=high", "b.gain=1", "nodot"]) == [
        "--set b.gain=1: no node 'b'",
        "--set nodot: expected node.param=value",
        "line 1: nodes[0].params.gain: parameter 'gain' of 'pass': expected number, got string 'high'",
    ]
    graph = load_graph(text=text, registry=registry, overrides=["a.gain=2", "a.mode=b"])
    assert graph.node("a").params == {"gain": 2, "mode": "b"}


def test_not_series_parallel_says_which_links_cross(registry):
    text = """\
nodes: [{id: a, type: pass}, {id: b, type: pass}, {id: c, type: pass}, {id: d, type: pass}]
links: [a -> c, a -> d, b -> d]
"""
    (message,) = problems(text, registry)
    assert message.startswith("line 2: links: links cannot be lowered to serial/parallel pipelines")
    assert "a -> c" in message and "a -> d" in message and "b -> d" in message


def test_constructor_failures_become_problems(registry):
    text = "nodes: [{id: rs, type: audio.resample, params: {out_rate: -5}}]\n"
    assert problems(text, registry) == [
        "line 1: nodes[0]: cannot create audio.resample 'rs': "
        "ParameterError: out_rate must be positive, got -5"
    ]
