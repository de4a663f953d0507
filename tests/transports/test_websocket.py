"""The WebSocket server against the wire contract, with an exact stand-in pipeline (gain)."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from apipeline.client import FrameClient
from apipeline.errors import SessionRefused
from apipeline.frames import AudioRawFrame, CancelFrame, EndFrame, ErrorFrame, StartFrame, UpdateSettingsFrame
from apipeline.serializers import ProtobufFrameSerializer
from apipeline.transports import CallableFactory, SessionConfig
from tests.transports._standin import chunks, gain_factory
from tests.transports.conftest import leftover_tasks

SER = ProtobufFrameSerializer()


def signal(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-0.5, 0.5, n).astype(np.float32)


async def http_get(port: int, path: str) -> tuple[int, str, str]:
    """(status, headers, body) of a plain HTTP/1.1 GET on loopback."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
    data = await reader.read()
    writer.close()
    await writer.wait_closed()
    head, _, body = data.decode().partition("\r\n\r\n")
    return int(head.split()[1]), head, body


async def collect(ws) -> tuple[list, int | None]:
    """Every frame until the server closes, and its close code."""
    frames = []
    try:
        async for message in ws:
            frames.append(SER.deserialize(message))
    except ConnectionClosed:
        pass
    return frames, ws.close_code


async def test_round_trip_is_exact_and_in_order(make_server):
    server = await make_server()
    x = signal(9000, 1)
    rng = np.random.default_rng(2)
    cuts = np.cumsum(rng.integers(1, 700, 40))
    frames = [AudioRawFrame(p, sample_rate=16000) for p in np.split(x, cuts[cuts < len(x)])]
    async with FrameClient(server.url, params={"gain": 2}) as client:
        out = [f async for f in client.stream(frames)]
    assert client.close_code == 1000
    assert all(isinstance(f, AudioRawFrame) and f.sample_rate == 16000 for f in out)
    assert [f.num_frames for f in out] == [f.num_frames for f in frames]
    np.testing.assert_array_equal(np.concatenate([f.audio for f in out]), x * np.float32(2))


async def test_int16_input_and_pts_come_back(make_server):
    server = await make_server()
    x = (signal(3200, 3) * 32767).astype(np.int16)
    frames = chunks(x, 160, rate=8000)
    for i, f in enumerate(frames):
        f.pts = 1000 + i
    async with FrameClient(server.url) as client:
        out = [f async for f in client.stream(frames)]
    np.testing.assert_array_equal(np.concatenate([f.audio for f in out]), x.astype(np.float32))
    assert [f.pts for f in out] == [1000 + i for i in range(len(frames))]


async def test_settings_change_mid_stream_applies_in_order(make_server):
    server = await make_server()
    x = signal(4000, 4)
    frames = chunks(x, 200)
    stream = [*frames[:10], UpdateSettingsFrame({"gain": 3.0}), *frames[10:]]
    async with FrameClient(server.url) as client:
        out = [f async for f in client.stream(stream)]
    y = np.concatenate([f.audio for f in out])
    np.testing.assert_array_equal(y[:2000], x[:2000])
    np.testing.assert_array_equal(y[2000:], x[2000:] * np.float32(3))


async def test_many_sessions_at_once_stay_apart(make_server):
    server = await make_server()

    async def one(k: int) -> None:
        x = signal(4800 + 160 * k, 100 + k)
        async with FrameClient(server.url, params={"gain": k + 1}) as client:
            out = [f async for f in client.stream(chunks(x, 160))]
        np.testing.assert_array_equal(np.concatenate([f.audio for f in out]), x * np.float32(k + 1))

    await asyncio.gather(*(one(k) for k in range(12)))
    await server.wait_idle()
    assert server.stats.outcomes[("websocket", "ok")] == 12


@pytest.mark.parametrize("message", [b"\xff\x00 not an envelope", b"", "a text message"])
async def test_undecodable_message_gets_error_frame_then_1002(make_server, message):
    server = await make_server()
    async with connect(server.url, compression=None) as ws:
        await ws.send(SER.serialize(AudioRawFrame(signal(160, 5), sample_rate=16000)))
        await ws.send(message)
        frames, code = await collect(ws)
    assert code == 1002
    assert not any(isinstance(f, EndFrame) for f in frames)  # a refusal never looks like a normal end
    errors = [f for f in frames if isinstance(f, ErrorFrame)]
    assert len(errors) == 1 and errors[0].fatal and "undecodable message" in errors[0].error
    assert "undecodable" in ws.close_reason


async def test_frame_the_protocol_refuses_gets_1008(make_server):
    server = await make_server()
    async with connect(server.url, compression=None) as ws:
        await ws.send(SER.serialize(AudioRawFrame(signal(160, 6), sample_rate=16000)))
        await ws.send(SER.serialize(StartFrame()))
        frames, code = await collect(ws)
    assert code == 1008
    assert not any(isinstance(f, EndFrame) for f in frames)
    assert "StartFrame is not accepted from a client" in frames[-1].error


async def test_sample_rate_change_mid_stream_gets_1008(make_server):
    server = await make_server()
    async with connect(server.url, compression=None) as ws:
        await ws.send(SER.serialize(AudioRawFrame(signal(160, 7), sample_rate=16000)))
        await ws.send(SER.serialize(AudioRawFrame(signal(160, 7), sample_rate=22050)))
        frames, code = await collect(ws)
    assert code == 1008
    assert not any(isinstance(f, EndFrame) for f in frames)
    assert "22050 Hz, 1 ch but this session runs at 16000 Hz" in frames[-1].error


async def test_rate_the_pipeline_cannot_take_is_refused_with_its_reason(make_server):
    server = await make_server()
    async with FrameClient(server.url) as client:
        with pytest.raises(SessionRefused) as info:
            _ = [f async for f in client.stream(chunks(signal(400, 8), 100, rate=4000))]
    assert info.value.code == 1008
    assert "below 8000 Hz" in info.value.reason


async def test_query_sample_rate_builds_before_any_audio(make_server):
    built = []

    def build(spec):
        built.append((spec.sample_rate, spec.num_channels))
        return gain_factory().build(spec)

    server = await make_server(CallableFactory(build, needs_audio_format=True))
    async with FrameClient(server.url + "?sample_rate=16000&channels=1") as client:
        out = [f async for f in client.stream([AudioRawFrame(signal(320, 9), sample_rate=16000)])]
    assert built == [(16000, 1)] and len(out) == 1


async def test_oversized_message_closes_1009(make_server):
    server = await make_server(max_message_size=1000)
    async with connect(server.url, compression=None) as ws:
        await ws.send(SER.serialize(AudioRawFrame(signal(1000, 10), sample_rate=16000)))
        _, code = await collect(ws)
    assert code == 1009
    await server.wait_idle()
    assert server.stats.outcomes[("websocket", "too_big")] == 1


async def test_end_before_any_audio_answers_end(make_server):
    server = await make_server()
    async with connect(server.url, compression=None) as ws:
        await ws.send(SER.serialize(EndFrame()))
        frames, code = await collect(ws)
    assert code == 1000 and [type(f) for f in frames] == [EndFrame]


async def test_cancel_frame_ends_the_session_normally(make_server):
    server = await make_server()
    async with connect(server.url, compression=None) as ws:
        await ws.send(SER.serialize(AudioRawFrame(signal(160, 11), sample_rate=16000)))
        await ws.send(SER.serialize(CancelFrame()))
        _, code = await collect(ws)
    assert code == 1000
    await server.wait_idle()


async def test_token_refusals_happen_at_the_handshake(make_server):
    server = await make_server(token="s3cret")
    for query, status in (("", 401), ("?token=nope", 403)):
        with pytest.raises(InvalidStatus) as info:
            async with connect(server.url + query):
                pass
        assert info.value.response.status_code == status
    async with FrameClient(server.url, token="s3cret") as client:
        out = [f async for f in client.stream(chunks(signal(320, 12), 160))]
    assert len(out) == 2


async def test_bad_settings_are_refused_with_400(make_server):
    server = await make_server()
    with pytest.raises(InvalidStatus) as info:
        async with connect(server.url + "?volume=11"):
            pass
    assert info.value.response.status_code == 400
    assert b"unknown parameter 'volume'" in info.value.response.body


async def test_http_endpoints(make_server):
    server = await make_server()
    assert (await http_get(server.port, "/health"))[0] == 200
    assert (await http_get(server.port, "/ready"))[0] == 200
    assert (await http_get(server.port, "/nowhere"))[0] == 404
    async with FrameClient(server.url) as client:
        _ = [f async for f in client.stream(chunks(signal(320, 13), 160))]
    await server.wait_idle()
    status, head, body = await http_get(server.port, "/metrics")
    assert status == 200 and "text/plain; version=0.0.4" in head
    assert 'apipeline_sessions_total{transport="websocket",outcome="ok"} 1.0' in body
    assert "apipeline_frames_received_total 3.0" in body  # two audio frames and EndFrame
    assert 'apipeline_processor_latency_seconds_count{processor="Gain"} 2.0' in body
    assert "apipeline_realtime_factor" in body


async def test_ready_is_503_until_warm_up_returns(make_server):
    release = asyncio.Event()

    async def warm_up() -> None:
        await release.wait()

    factory = CallableFactory(gain_factory().build, warm_up=warm_up)
    from apipeline.transports import ServerConfig, WebsocketServer

    server = WebsocketServer(factory, ServerConfig(port=0, ping_interval=None))
    await server.start()
    try:
        assert (await http_get(server.port, "/ready"))[0] == 503
        assert (await http_get(server.port, "/health"))[0] == 200
        with pytest.raises(InvalidStatus) as info:
            async with connect(server.url):
                pass
        assert info.value.response.status_code == 503
        release.set()
        await server.wait_ready()
        assert (await http_get(server.port, "/ready"))[0] == 200
    finally:
        await server.aclose()


async def test_client_gone_mid_stream_ends_its_session(make_server):
    server = await make_server()
    ws = await connect(server.url, compression=None)
    await ws.send(SER.serialize(AudioRawFrame(signal(160, 14), sample_rate=16000)))
    await ws.recv()  # the session is running
    ws.transport.abort()  # no close frame: a dropped connection
    await server.wait_idle()
    assert server.stats.outcomes[("websocket", "client_gone")] == 1
    async with FrameClient(server.url) as client:  # and the server still serves
        assert len([f async for f in client.stream(chunks(signal(320, 15), 160))]) == 2


async def test_half_open_connection_is_closed_by_keepalive(make_server):
    server = await make_server(ping_interval=0.05, ping_timeout=0.1, close_timeout=0.1)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(
        b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101")
    # From now on this peer never answers a ping: a half-open connection as the server sees it.
    async with asyncio.timeout(10):
        await server.wait_idle()
    writer.close()
    assert server.stats.outcomes[("websocket", "keepalive_timeout")] == 1


async def test_stalled_client_is_bounded_then_cut_off_while_others_are_served(make_server):
    session = SessionConfig(queue_size=4, overflow="drop_oldest", send_timeout=0.5, input_rate=None)
    server = await make_server(session=session)
    stalled = await connect(server.url, compression=None, max_queue=1)
    big = signal(16000, 16)  # 64 KB per message: the socket buffers fill after a few
    for _ in range(150):
        await stalled.send(SER.serialize(AudioRawFrame(big, sample_rate=16000)))
    await stalled.send(SER.serialize(EndFrame()))
    (stalled_session,) = server.sessions
    x = signal(3200, 17)
    async with connect(server.url + "?gain=2", compression=None) as ws:  # lock-step: never a burst
        out = []
        for frame in chunks(x, 160):
            await ws.send(SER.serialize(frame))
            out.append(SER.deserialize(await ws.recv()))
    np.testing.assert_array_equal(np.concatenate([f.audio for f in out]), x * np.float32(2))
    async with asyncio.timeout(10):
        await server.wait_idle()
    assert stalled_session.send_queue_stats.max_depth <= 4
    assert server.stats.finished.drops > 0
    assert server.stats.outcomes[("websocket", "policy_violation")] == 1
    stalled.transport.abort()


async def test_block_policy_loses_nothing_in_a_burst(make_server):
    server = await make_server(session=SessionConfig(queue_size=2, overflow="block"))
    x = signal(16000, 19)
    async with FrameClient(server.url) as client:
        out = [f async for f in client.stream(chunks(x, 80))]
    np.testing.assert_array_equal(np.concatenate([f.audio for f in out]), x)
    assert server.stats.totals().drops == 0


async def test_shutdown_with_open_sessions_sends_error_and_1001(make_server):
    server = await make_server()
    clients = [await connect(server.url, compression=None) for _ in range(3)]
    for ws in clients:
        await ws.send(SER.serialize(AudioRawFrame(signal(160, 18), sample_rate=16000)))
        await ws.recv()
    await server.aclose()
    for ws in clients:
        frames, code = await collect(ws)
        assert code == 1001
        assert isinstance(frames[-1], ErrorFrame) and "shutting down" in frames[-1].error
    assert not server.sessions
    assert leftover_tasks() == []


async def test_failed_warm_up_raises_not_ready_with_its_cause(make_server):
    from apipeline.errors import NotReadyError, TransportError
    from apipeline.transports import ServerConfig, WebsocketServer

    async def warm_up() -> None:
        raise OSError("model file missing")

    server = WebsocketServer(CallableFactory(gain_factory().build, warm_up=warm_up), ServerConfig(port=0))
    await server.start()
    try:
        with pytest.raises(NotReadyError, match=r"warm-up failed: .*model file missing") as info:
            await server.wait_ready()
        assert isinstance(info.value, TransportError) and isinstance(info.value, RuntimeError)
        assert (await http_get(server.port, "/ready"))[0] == 503
    finally:
        await server.aclose()
