"""Session parameters against their schema: at the handshake (400), mid-stream (ErrorFrame, nothing
changed), for a served graph, and in the library's UpdateSettingsFrame."""

from __future__ import annotations

import numpy as np
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from apipeline.client import FrameClient
from apipeline.frames import AudioRawFrame, ErrorFrame, TextFrame, UpdateSettingsFrame
from apipeline.pipeline import PipelineParams
from apipeline.testing import run_pipeline
from apipeline.transports import GraphFactory, VoiceChangerFactory
from tests.helpers import Pass, Suffix
from tests.transports._standin import chunks, gain_factory


async def refused(url: str) -> tuple[int, str]:
    with pytest.raises(InvalidStatus) as info:
        async with connect(url):
            pass
    return info.value.response.status_code, info.value.response.body.decode()


@pytest.fixture(scope="module")
def vc_factory():
    return VoiceChangerFactory()


@pytest.mark.parametrize(
    "query, needle",
    [
        ("search_ms=1000000", "search_ms must be within 0..20 ms"),
        ("context_ms=600000", "context_ms must be within 0..200 ms"),
        ("search_ms=5000", "search_ms"),
        ("block_ms=5", "block_ms"),
        ("frame_ms=0.1", "frame_ms"),
        ("block_ms=20", "block_ms must be within 25..200"),
        ("block_ms=25&context_ms=200", "block geometry too costly"),
        ("block_ms=25&context_ms=140&lookahead_ms=20", "block geometry too costly"),
        ("f0=crepe-full", "f0 must be one of"),
        ("pitch=99", "pitch must be within -36..36"),
        ("formant=1000", "formant"),
        ("pitch=1e308", "pitch"),
        ("bogus=1", "unknown parameter 'bogus'"),
        ("ptich=3", "did you mean 'pitch'"),
        ("f0_options=x", "unknown parameter 'f0_options'"),
        ("pitch=abc", "pitch must be a number"),
    ],
)
async def test_voice_changer_handshake_refuses_what_the_schema_does_not_allow(
    make_server, vc_factory, query, needle
):
    server = await make_server(vc_factory)
    status, body = await refused(f"{server.url}?{query}")
    assert status == 400
    assert needle in body


async def test_voice_changer_mid_stream_refusals_change_nothing(make_server, vc_factory):
    """Out of range, unknown, misspelled and fixed-at-start keys get an ErrorFrame each; the session
    goes on and ends normally with the same output as a session that never sent them."""
    server = await make_server(vc_factory)
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(16000 // 2) * 3000).astype(np.int16)
    frames = chunks(x, 320)
    bad = [
        {"pitch": 99},
        {"formant": 1000},
        {"pitch": 1e308},
        {"ptich": 3},
        {"block_ms": 100},
        {"pitch": 2, "bogus": 1},  # all or nothing: the valid pitch is not applied either
        {"name": "x"},
    ]
    stream = [*frames[:5], *(UpdateSettingsFrame(b) for b in bad), *frames[5:]]
    async with FrameClient(server.url, params={"pitch": 4}) as client:
        out = [f async for f in client.stream(stream)]
    assert client.close_code == 1000
    errors = [f for f in out if isinstance(f, ErrorFrame)]
    assert len(errors) == len(bad)
    assert not any(e.fatal for e in errors)
    assert "did you mean 'pitch'" in errors[3].error
    assert "block_ms cannot change mid-stream" in errors[4].error
    async with FrameClient(server.url, params={"pitch": 4}) as clean:
        ref = [f async for f in clean.stream(frames)]
    y = np.concatenate([f.audio for f in out if isinstance(f, AudioRawFrame)])
    np.testing.assert_allclose(y, np.concatenate([f.audio for f in ref]), atol=1e-5)


async def test_callable_factory_mid_stream_is_all_or_nothing(make_server):
    server = await make_server(gain_factory())
    x = np.random.default_rng(1).uniform(-0.5, 0.5, 2000).astype(np.float32)
    frames = chunks(x, 200)
    stream = [*frames[:5], UpdateSettingsFrame({"gain": 3.0, "bogus": 1}), *frames[5:]]
    async with FrameClient(server.url) as client:
        out = [f async for f in client.stream(stream)]
    assert client.close_code == 1000
    assert sum(isinstance(f, ErrorFrame) for f in out) == 1
    np.testing.assert_array_equal(np.concatenate([f.audio for f in out if isinstance(f, AudioRawFrame)]), x)


GRAPH = """
name: mono
nodes:
  - id: mix
    type: audio.channel_mixer
    params: {channels: 1}
"""


async def test_served_graph_refuses_attributes_that_are_not_declared_parameters(make_server, tmp_path):
    path = tmp_path / "g.yaml"
    path.write_text(GRAPH)
    server = await make_server(GraphFactory(path))
    for query in ("push_frame=1", "bogus=1", "name=x", "mix.channels=2", "process_frame=0"):
        status, body = await refused(f"{server.url}?{query}")
        assert status == 400, query
        assert "unknown parameter" in body
    # and a plain session still works
    async with FrameClient(server.url) as client:
        out = [f async for f in client.stream(chunks(np.zeros(640, np.float32), 320))]
    assert client.close_code == 1000 and sum(f.num_frames for f in out) == 640


async def test_library_update_settings_refuses_undeclared_attributes():
    """``{"name": "x"}`` used to rename every processor, ``{"push_frame": 1}`` to replace a method."""
    p = Pass(name="p")
    s = Suffix("-1", name="suf")
    r = await run_pipeline(
        [p, s],
        [UpdateSettingsFrame({"name": "x", "push_frame": 1}), TextFrame("a")],
        params=PipelineParams(),
    )
    assert p.name == "p" and s.name == "suf"
    assert callable(p.push_frame)
    assert r.errors and all("unknown setting" in e.error for e in r.errors)
    assert [f.text for f in r.downstream if isinstance(f, TextFrame)] == ["a-1"]


async def test_library_update_settings_checks_declared_bounds_all_or_nothing():
    s = Suffix("-1", name="suf")
    r = await run_pipeline(
        [s], [UpdateSettingsFrame({"suf.suffix": 3}), TextFrame("a")], params=PipelineParams()
    )
    assert r.errors and "suffix must be text" in r.errors[0].error
    assert s.suffix == "-1"


async def test_voice_changer_accepts_geometry_within_the_budget(make_server, vc_factory):
    server = await make_server(vc_factory)
    async with connect(f"{server.url}?block_ms=100&context_ms=200&search_ms=10&pitch=-3&f0=dio") as ws:
        await ws.close()
    assert ws.close_code == 1000
