"""The modulespack2-style JSON front end: named inputs/outputs, a feed dict, constants."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from apipeline.errors import GraphError
from apipeline.graph import Link, build_pipeline, dump_graph, load_graph
from apipeline.graph.modulespack import parse_modulespack
from apipeline.pipeline import PipelineTask

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "graphs" / "modulespack2_resample.json"


def mp2(nodes: list[dict], feed: dict | None = None, count: int | None = None) -> str:
    data: dict = {
        "version": {"author": "t", "nodeNum": len(nodes) if count is None else count},
        "node": nodes,
    }
    if feed is not None:
        data["feed"] = feed
    return json.dumps(data, indent=1)


def test_inputs_become_links_and_params(registry):
    text = mp2(
        [
            {
                "startNode": "True",
                "name": "first",
                "module": "pass",
                "input": {"gain": "None"},
                "output": {"y": 0},
            },
            {
                "name": "second",
                "module": "pass",
                "input": {"x1": "first/y", "mode": {"mode": "b"}},
                "output": {"y": 0},
            },
            {
                "name": "j",
                "module": "join",
                "input": {"f0": "first/y", "spectrum": "second/y"},
                "output": {"y": 0},
            },
        ],
        feed={"first": {"gain": 3.0}},
    )
    g = load_graph(text=text, registry=registry)
    assert g.front_end == "modulespack2"
    assert [n.params for n in g.nodes] == [{"gain": 3.0}, {"mode": "b"}, {}]
    assert g.links == [
        Link("first", "second", "y", "x1"),
        Link("first", "j", "y", "f0"),
        Link("second", "j", "y", "spectrum"),
    ]
    # the same model dumps to the native format and loads back equal
    again = load_graph(text=dump_graph(g), registry=registry)
    assert again.nodes == g.nodes and again.links == g.links


def test_problems_point_into_the_modulespack_file(registry):
    text = mp2(
        [
            {
                "startNode": "True",
                "name": "first",
                "module": "pas",
                "input": {"x": "None"},
                "output": {"y": 0},
            },
            {
                "name": "second",
                "module": "pass",
                "input": {"a": "first/z", "gain": {"gain": "x"}},
                "output": {},
            },
            {"name": "third", "module": "pass", "input": {"a": "ghost/y"}, "output": {}},
        ],
        count=4,
    )
    with pytest.raises(GraphError) as info:
        load_graph(text=text, registry=registry)
    problems = info.value.problems
    assert problems[0] == "line 4: version.nodeNum: says 4 node(s) but 'node' lists 3"
    assert (
        "node[0].input.x: input 'x' of start node 'first' is fed (\"None\") but the feed dict has no value "
        "for first.x" in problems[1]
    )
    assert "node[1].input.a: node 'first' has no output 'z' (outputs: y)" in problems[2]
    assert any("node[0].module: unknown processor type 'pas' (did you mean 'pass'?)" in p for p in problems)
    assert any(
        "node[1].input.gain: parameter 'gain' of 'pass': expected number, got string 'x'" in p
        for p in problems
    )
    assert any("node[2].input.a: dangling link ghost/y" not in p and "no node 'ghost'" in p for p in problems)


def test_feed_given_beside_the_file():
    data = {"node": [{"startNode": "True", "name": "s", "module": "pass", "input": {"gain": "None"}}]}
    g, problems = parse_modulespack(data, feed={"s": {"gain": 0.5}})
    assert problems == [] and g.nodes[0].params == {"gain": 0.5}


def test_example_file_runs_and_resamples(tmp_path):
    out = tmp_path / "out.wav"
    graph = load_graph(EXAMPLE, settings={"sink.path": str(out), "src.path": "tests/data/speech_16k.wav"})
    built = build_pipeline(graph)
    import asyncio

    task = PipelineTask(built.pipeline)
    asyncio.run(task.run())
    assert task.errors == []
    audio, rate = sf.read(out)
    source, source_rate = sf.read("tests/data/speech_16k.wav")
    assert rate == 24000 and source_rate == 16000
    assert abs(len(audio) - len(source) * 1.5) <= 1
    assert np.max(np.abs(audio)) > 0.05
