"""Building graphs: assembled pipelines, auto-inserted converters (in the model and the drawing), latency."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
import soundfile as sf

from apipeline.errors import GraphError
from apipeline.frames import TextFrame
from apipeline.graph import build_pipeline, dump_graph, load_graph, to_dot, to_mermaid
from apipeline.pipeline import ParallelPipeline, Pipeline, PipelineTask, SyncParallelPipeline
from apipeline.testing import run_processor


def test_flow_is_assembled_into_nested_pipelines(registry):
    text = """\
nodes: [{id: a, type: pass}, {id: b, type: pass}, {id: c, type: pass}, {id: d, type: pass}]
flow: [a, {sync_parallel: [[b], [c]]}, {group: tail, flow: [d]}]
"""
    built = build_pipeline(load_graph(text=text, registry=registry), registry)
    root = built.pipeline
    assert isinstance(root, Pipeline)
    a, par, tail = root.processors()
    assert a is built.processors["a"] and a.name == "a"
    assert isinstance(par, SyncParallelPipeline) and [b.processors() for b in par.branches] == [
        [built.processors["b"]],
        [built.processors["c"]],
    ]
    assert isinstance(tail, Pipeline) and tail.name == "tail"


async def test_built_graph_runs_frames_through(registry):
    text = (
        "nodes: [{id: a, type: pass}, {id: split, type: pass}, {id: b, type: pass}]\n"
        "links: [a -> split, a -> b, split -> b]\njoin: parallel\n"
    )
    built = build_pipeline(load_graph(text=text, registry=registry), registry)
    assert isinstance(built.pipeline.processors()[1], ParallelPipeline)
    out = await run_processor(built.pipeline, [TextFrame("x"), TextFrame("y")])
    assert [f.text for f in out] == ["x", "y"]  # passed unchanged by both branches: emitted once


def _wav(path, rate: int, channels: int, seconds: float = 0.5) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    audio = 0.3 * np.sin(2 * np.pi * 220 * t)[:, None].repeat(channels, axis=1)
    sf.write(path, audio, rate, subtype="PCM_16")
    return audio


AUTO = """\
auto_convert: {auto}
nodes:
  - {{id: src, type: audio.file_source, params: {{path: {src}}}}}
  - {{id: asr, type: needs16k}}
  - {{id: sink, type: audio.file_sink, params: {{path: {out}}}}}
{connect}
"""


@pytest.mark.parametrize("connect", ["flow: [src, asr, sink]", "links: [src -> asr, asr -> sink]"])
def test_auto_convert_inserts_mixer_and_resampler_and_shows_them(registry, tmp_path, connect):
    src, out = tmp_path / "in.wav", tmp_path / "out.wav"
    _wav(src, 48000, 2)
    text = AUTO.format(auto="false", src=src, out=out, connect=connect)
    with pytest.raises(GraphError, match=r"src produces 48000 Hz, 2 ch, float32, asr accepts 16000 Hz, 1 ch"):
        load_graph(text=text, registry=registry)
    graph = load_graph(text=text.replace("auto_convert: false", "auto_convert: true"), registry=registry)
    built = build_pipeline(graph, registry)
    assert built.inserted == ["src_to_asr_channel_mixer", "src_to_asr_resample"]
    added = [n for n in built.graph.nodes if n.auto]
    assert [(n.type, n.params) for n in added] == [
        ("audio.channel_mixer", {"channels": 1}),
        ("audio.resample", {"out_rate": 16000, "in_rate": 48000}),
    ]
    assert [p.name for p in built.pipeline.processors()] == ["src", *built.inserted, "asr", "sink"]
    assert (
        '"src_to_asr_resample" [label="src_to_asr_resample\\naudio.resample (auto)", style="rounded,dashed"'
        in to_dot(built.graph)
    )
    assert "class n_src_to_asr_channel_mixer,n_src_to_asr_resample auto" in to_mermaid(built.graph)
    assert graph == load_graph(
        text=text.replace("auto_convert: false", "auto_convert: true"), registry=registry
    )
    # the resolved graph is a plain graph file again
    again = load_graph(text=dump_graph(built.graph), registry=registry)
    assert build_pipeline(again, registry).inserted == []
    task = PipelineTask(built.pipeline)
    asyncio.run(task.run())
    assert task.errors == []
    info = sf.info(out)
    assert (info.samplerate, info.channels) == (16000, 1)
    assert abs(info.frames - 8000) <= 2


def test_branches_joining_in_one_format_get_one_converter_after_the_join(registry):
    text = """\
auto_convert: true
nodes: [{id: m, type: makes48k}, {id: a, type: pass}, {id: b, type: pass}, {id: asr, type: needs16k}]
flow: [m, {parallel: [[a], [b]]}, asr]
"""
    built = build_pipeline(load_graph(text=text, registry=registry), registry)
    assert built.inserted == ["to_asr_channel_mixer", "to_asr_resample"]
    assert built.graph.flow is not None
    assert built.graph.flow.items[2:] == ["to_asr_channel_mixer", "to_asr_resample", "asr"]


def test_latency_is_the_slowest_path(registry):
    text = """\
auto_convert: true
nodes: [{id: m, type: makes48k}, {id: slow, type: needs16k}, {id: fast, type: pass},
        {id: rs, type: audio.resample, params: {out_rate: 16000, in_rate: 48000}}]
flow: [m, rs, {parallel: [[slow], [fast]]}]
"""
    built = build_pipeline(
        load_graph(
            text=text.replace("[m, rs,", "[m, {group: g, flow: [rs]},"),
            registry=registry,
            check_formats=False,
        ),
        registry,
    )
    rs = built.processors["rs"].latency
    assert rs > 0
    assert built.latency_path() == [("m", 0.005), ("rs", rs), ("slow", 0.020)]
    assert built.latency == pytest.approx(0.025 + rs)


def test_unconvertible_channels_are_reported(registry, tmp_path):
    text = """\
auto_convert: true
nodes: [{id: m, type: makes48k}, {id: six, type: audio.file_sink, params: {path: x.wav, channels: 6}}]
"""
    with pytest.raises(GraphError, match=r"no converter mixes 2 channels to 6 \(only N -> 1 and 1 -> N\)"):
        load_graph(text=text, registry=registry)
