"""Per-session budgets and hostile clients: idle clients, slow handshakes, floods, oversized messages,
pre-audio buffering, one admission count for every transport, the Origin check.

Time promises use short configured timeouts and outer limits ten times larger; no speed targets."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from apipeline.client import FrameClient, GrpcFrameClient
from apipeline.errors import SessionRefused, TransportClosed
from apipeline.frames import AudioRawFrame, EndFrame, Frame, TextFrame
from apipeline.pipeline.pipeline import Pipeline
from apipeline.processors import FrameDirection, FrameProcessor
from apipeline.serializers import ProtobufFrameSerializer
from apipeline.transports import CallableFactory, SessionConfig, SessionSpec
from apipeline.transports.grpc_service import GrpcServer
from apipeline.transports.session import origin_allowed
from tests.transports._standin import Gain, chunks
from tests.transports.test_websocket import collect, http_get

SER = ProtobufFrameSerializer()


def audio(seconds: float, rate: int = 16000) -> AudioRawFrame:
    n = int(seconds * rate)
    return AudioRawFrame(np.full(n, 0.25, np.float32), sample_rate=rate)


# -- idle clients, handshake, pre-audio buffering ----------------------------------------------------


@pytest.mark.parametrize("query", ["", "?sample_rate=16000&channels=1"])
async def test_silent_client_is_closed_after_the_idle_timeout(make_server, query):
    server = await make_server(session=SessionConfig(idle_timeout=0.3))
    async with asyncio.timeout(3):
        async with connect(server.url + query) as ws:
            frames, code = await collect(ws)
    assert code == 1008
    assert ws.close_reason is not None and "idle" in ws.close_reason
    assert any(getattr(f, "fatal", False) for f in frames)


async def test_client_that_goes_quiet_mid_stream_is_closed(make_server):
    server = await make_server(session=SessionConfig(idle_timeout=0.3))
    async with asyncio.timeout(3):
        async with connect(server.url) as ws:
            await ws.send(SER.serialize(audio(0.01)))
            frames, code = await collect(ws)
    assert code == 1008 and "idle" in (ws.close_reason or "")
    assert isinstance(frames[0], AudioRawFrame)  # what it sent was served first


async def test_idle_clients_cannot_hold_every_slot_for_ever(make_server):
    server = await make_server(max_sessions=2, session=SessionConfig(idle_timeout=0.3))
    idle = [
        await connect(server.url + "?sample_rate=16000"),
        await connect(server.url + "?sample_rate=16000"),
    ]
    with pytest.raises(InvalidStatus) as info:
        async with connect(server.url):
            pass
    assert info.value.response.status_code == 503
    async with asyncio.timeout(3):
        for ws in idle:
            await collect(ws)
        await server.wait_idle()
    async with FrameClient(server.url) as client:
        assert [f async for f in client.stream(chunks(np.zeros(320, np.float32), 160))]
    assert server.stats.refusals[("websocket", "too_many_sessions")] == 1


async def test_handshake_must_complete_within_its_timeout(make_server):
    server = await make_server(handshake_timeout=0.3)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET /ws HTTP/1.1\r\nHost: x\r\n")  # and never the end of the request
    async with asyncio.timeout(3):
        data = await reader.read()
    writer.close()
    assert b"101" not in data  # closed (or answered with an error), never upgraded


async def test_pre_audio_buffering_is_bounded_by_bytes(make_server):
    server = await make_server(session=SessionConfig(max_prelude_bytes=100_000))
    async with asyncio.timeout(5):
        async with connect(server.url, compression=None) as ws:
            for _ in range(3):
                await ws.send(SER.serialize(TextFrame("x" * 60_000)))
            frames, code = await collect(ws)
    assert code == 1008
    assert "bytes before the first AudioRawFrame" in frames[-1].error


# -- floods and oversized messages ---------------------------------------------------------------------


class EventLog(list):
    """A list of ``(tag, samples)`` entries that tasks can wait on."""

    def __init__(self) -> None:
        super().__init__()
        self._changed = asyncio.Event()

    def add(self, entry: tuple[str, int]) -> None:
        self.append(entry)
        self._changed.set()

    def samples(self, tag: str) -> int:
        return sum(n for t, n in self if t == tag)

    async def wait_for(self, predicate) -> None:
        while not predicate():
            self._changed.clear()
            await self._changed.wait()


class Log(FrameProcessor):
    """Adds ``(tag, samples)`` to a shared :class:`EventLog` for every audio frame it passes."""

    def __init__(self, log: EventLog, tag: str) -> None:
        super().__init__()
        self.log, self.tag = log, tag

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, AudioRawFrame):
            self.log.add((self.tag, frame.num_frames))
        await self.push_frame(frame, direction)


def logging_factory(log: list) -> CallableFactory:
    def build(spec: SessionSpec) -> Pipeline:
        return Pipeline([Log(log, spec.settings.get("tag", "?")), Gain(1.0)])

    return CallableFactory(build, needs_audio_format=True, check=lambda s: s)


async def lock_step(url: str, rounds: int | None = None, stop: asyncio.Event | None = None) -> int:
    """A real-time-like client: one frame out, wait for its output, again (``rounds`` times, or until
    ``stop`` is set). Returns the outputs received."""
    got = 0
    async with connect(url, compression=None) as ws:
        while (rounds is None or got < rounds) and not (stop is not None and stop.is_set()):
            await ws.send(SER.serialize(audio(0.01)))
            if isinstance(SER.deserialize(await ws.recv()), AudioRawFrame):
                got += 1
    return got


async def test_flooding_client_is_paced_while_another_session_keeps_flowing(make_server):
    session = SessionConfig(input_rate=1.0, input_burst_s=0.2, max_chunk_s=0.05)
    server = await make_server(logging_factory(EventLog()), session=session)
    flooder = await connect(server.url + "?tag=flood", compression=None, max_queue=None)
    sent = 0.0

    async def flood() -> None:
        nonlocal sent
        while True:
            await flooder.send(SER.serialize(audio(0.1)))
            sent += 0.1

    started = time.monotonic()
    flooding = asyncio.ensure_future(flood())
    try:
        async with asyncio.timeout(20):
            assert await lock_step(server.url + "?tag=rt", 40) == 40  # frames keep flowing
            await asyncio.sleep(0.3)  # let the flooder run into its pace
        elapsed = time.monotonic() - started
        (flood_counters,) = [c for t, c in server.stats.active.values() if c.audio_seconds_in > 0.5] or [None]
        assert flood_counters is not None
        # the server took no more than the burst plus real time (plus the message being read)
        assert flood_counters.audio_seconds_in <= 0.2 + 1.0 * elapsed + 0.1 + 1e-6
    finally:
        flooding.cancel()
        flooder.transport.abort()


async def test_oversized_message_is_cut_so_others_run_between_its_pieces(make_server):
    log = EventLog()
    session = SessionConfig(input_rate=None, max_chunk_s=0.05)
    server = await make_server(logging_factory(log), max_message_size=1 << 21, session=session)
    big = audio(30.0)  # 1.9 MB of float32 in one message
    stop = asyncio.Event()
    async with connect(server.url + "?tag=big", compression=None, max_size=None) as ws_big:
        rt = asyncio.ensure_future(lock_step(server.url + "?tag=rt", stop=stop))
        await log.wait_for(lambda: log.samples("rt") > 0)
        await ws_big.send(SER.serialize(big))
        async with asyncio.timeout(30):
            await log.wait_for(lambda: log.samples("big") >= big.num_frames)
            stop.set()
            assert await rt > 0
    pieces = [i for i, (tag, _) in enumerate(log) if tag == "big"]
    assert max(n for tag, n in log if tag == "big") <= 800  # cut into 50 ms pieces
    between = [tag for tag, _ in log[pieces[0] : pieces[-1]]]
    assert "rt" in between  # the other session was served while the big message was


# -- one admission count for every transport, idle gRPC streams ------------------------------------------


async def test_grpc_counts_in_the_shared_session_limit(make_server):
    server = await make_server(max_sessions=2)
    grpc_server = GrpcServer(
        server.factory, port=0, ready=True, admission=server.admission, stats=server.stats
    )
    async with grpc_server:
        a = await connect(server.url + "?sample_rate=16000")
        async with GrpcFrameClient(grpc_server.address) as held:
            assert await held.wait_accepted()
            assert server.admission.count == 2
            async with GrpcFrameClient(grpc_server.address) as third:
                with pytest.raises((SessionRefused, TransportClosed)) as info:
                    _ = [f async for f in third.stream(chunks(np.zeros(320, np.float32), 160))]
            assert "too many sessions" in str(info.value)
            with pytest.raises(InvalidStatus):
                async with connect(server.url):
                    pass
        await a.close()
    async with asyncio.timeout(3):
        await server.admission.wait_empty()
    assert server.stats.refusals[("grpc", "too_many_sessions")] == 1


async def test_idle_grpc_stream_is_closed(make_server):
    server = await make_server(session=SessionConfig(idle_timeout=0.3))
    grpc_server = GrpcServer(
        server.factory,
        port=0,
        ready=True,
        admission=server.admission,
        session=SessionConfig(idle_timeout=0.3),
    )
    async with grpc_server:
        async with GrpcFrameClient(grpc_server.address) as client:
            assert await client.wait_accepted()
            async with asyncio.timeout(3):
                with pytest.raises((SessionRefused, TransportClosed)) as info:
                    while await client.recv() is not None:
                        pass
                    raise TransportClosed(0, "ended without an error")
        assert "idle" in str(info.value)
        async with asyncio.timeout(3):
            await grpc_server.wait_idle()
            await server.admission.wait_empty()


# -- Origin ----------------------------------------------------------------------------------------------


def test_origin_rule():
    assert origin_allowed(None, "example.org:80")  # not a browser
    assert origin_allowed("http://localhost:3000", "example.org")
    assert origin_allowed("http://127.0.0.1:9", "h:1") and origin_allowed("http://[::1]:9", "h:1")
    assert origin_allowed("https://voice.example:8765", "voice.example:8765")  # same origin
    assert not origin_allowed("http://evil.example", "127.0.0.1:8765")
    assert not origin_allowed("http://localhost.evil.example", "127.0.0.1:8765")
    assert not origin_allowed("null", "127.0.0.1:8765")
    assert origin_allowed("https://app.example", "h", ["https://app.example/"])
    assert origin_allowed("http://evil.example", "h", ["*"])


async def test_foreign_origin_is_refused_at_the_handshake(make_server):
    server = await make_server(allowed_origins=("https://app.example",))
    with pytest.raises(InvalidStatus) as info:
        async with connect(server.url, origin="http://evil.example"):
            pass
    assert info.value.response.status_code == 403
    assert b"origin" in info.value.response.body
    for ok in (f"http://127.0.0.1:{server.port}", "http://localhost:5173", "https://app.example"):
        async with connect(server.url, origin=ok) as ws:
            await ws.send(SER.serialize(audio(0.01)))
            assert isinstance(SER.deserialize(await ws.recv()), AudioRawFrame)
    assert server.stats.refusals[("websocket", "origin")] == 1
    _, _, body = await http_get(server.port, "/metrics")
    assert 'apipeline_handshakes_refused_total{transport="websocket",reason="origin"} 1.0' in body


async def test_abrupt_close_mid_message_frees_the_slot(make_server):
    server = await make_server(max_sessions=1)
    _, writer = await asyncio.open_connection("127.0.0.1", server.port)
    ws = await connect(server.url, compression=None)
    await ws.send(SER.serialize(audio(0.01)))
    await ws.recv()
    ws.transport.abort()
    writer.close()
    async with asyncio.timeout(3):
        await server.wait_idle()
        await server.admission.wait_empty()
    async with FrameClient(server.url) as client:
        assert [f async for f in client.stream(chunks(np.zeros(320, np.float32), 160))]
    with pytest.raises(ConnectionClosed):
        await ws.recv()


async def test_a_slow_session_build_runs_off_the_loop_while_other_sessions_flow(make_server):
    """A factory that says ``build_in_thread`` (the voice changer: its VAD's onnxruntime session takes
    ~0.1 s to create) builds in a thread: while one session's build is held, an open session's audio
    still goes round. Built on the loop, the held build would freeze the loop and this would time out."""
    import threading

    from tests.transports._standin import gain_factory

    inner = gain_factory()
    release = threading.Event()
    builders: list[int] = []
    loop = asyncio.get_running_loop()
    held = asyncio.Event()

    class SlowToBuild:
        needs_audio_format = True
        build_in_thread = True
        settings_schema = None

        def check_settings(self, settings):
            return inner.check_settings(settings)

        def build(self, spec):
            builders.append(threading.get_ident())
            if len(builders) == 2:  # the second session's build is held until the first has flowed
                loop.call_soon_threadsafe(held.set)
                assert release.wait(30)
            return inner.build(spec)

        async def warm_up(self):
            pass

    server = await make_server(SlowToBuild())
    url = server.url + "?sample_rate=16000"
    async with asyncio.timeout(30):
        async with connect(url, compression=None) as first:
            await first.send(SER.serialize(audio(0.02)))
            assert isinstance(SER.deserialize(await first.recv()), AudioRawFrame)
            async with connect(url, compression=None) as second:
                await second.send(SER.serialize(audio(0.02)))  # its build starts, and blocks its thread
                await held.wait()
                for _ in range(3):  # the first session keeps flowing meanwhile
                    await first.send(SER.serialize(audio(0.02)))
                    assert isinstance(SER.deserialize(await first.recv()), AudioRawFrame)
                release.set()
                assert isinstance(SER.deserialize(await second.recv()), AudioRawFrame)
    assert threading.get_ident() not in builders


async def test_metrics_show_how_long_the_event_loop_was_held(make_server):
    """``apipeline_event_loop_lag_seconds``: work that does not yield (here a deliberate 0.3 s block of
    the loop) shows up as a late wake-up of the server's lag watcher."""
    server = await make_server()
    time.sleep(0.3)  # noqa: ASYNC251 - holding the loop on purpose: what the metric exists to reveal
    _, _, body = await http_get(server.port, "/metrics")
    count = float(
        next(
            line for line in body.splitlines() if line.startswith("apipeline_event_loop_lag_seconds_count")
        ).split()[-1]
    )
    under = float(
        next(
            line
            for line in body.splitlines()
            if line.startswith('apipeline_event_loop_lag_seconds_bucket{le="0.1"}')
        ).split()[-1]
    )
    assert count >= 1 and under < count  # at least one wake-up more than 0.1 s late


# -- timestamps ----------------------------------------------------------------------------------------


async def test_outputs_carry_the_client_timestamp_of_their_input_across_a_pause(make_server):
    """The client's clock is its own (here: far from the server's); every output comes back with the
    timestamp of an input already sent, so ``now - pts`` on the client is never negative, a pause does
    not shift later readings, and the server's latency metric is measured on its own clock."""
    from apipeline.transports import VoiceChangerFactory

    server = await make_server(VoiceChangerFactory())
    offset = -(10**15)

    def client_now() -> int:
        return time.monotonic_ns() + offset

    x = (np.random.default_rng(3).standard_normal(16000) * 3000).astype(np.int16)
    frames = chunks(x, 320)
    sent: list[int] = []
    outputs: list[tuple[int, int]] = []  # (pts, client clock at arrival)
    async with asyncio.timeout(30):
        async with connect(server.url, compression=None) as ws:

            async def send(batch) -> None:
                for f in batch:
                    f.pts = client_now()
                    sent.append(f.pts)
                    await ws.send(SER.serialize(f))

            await send(frames[:25])
            while not outputs:  # the pause: nothing more is sent until an output has come back
                f = SER.deserialize(await ws.recv())
                if isinstance(f, AudioRawFrame):
                    outputs.append((f.pts, client_now()))
            await send(frames[25:])
            await ws.send(SER.serialize(EndFrame()))
            async for message in ws:
                f = SER.deserialize(message)
                if isinstance(f, AudioRawFrame):
                    outputs.append((f.pts, client_now()))
    assert len(outputs) > 10
    assert all(pts in sent for pts, _ in outputs)
    assert all(now >= pts for pts, now in outputs)  # a round trip is never negative
    assert [p for p, _ in outputs] == sorted(p for p, _ in outputs)
    _, _, body = await http_get(server.port, "/metrics")
    count = next(line for line in body.splitlines() if line.startswith("apipeline_latency_seconds_count"))
    assert float(count.split()[-1]) >= len(outputs)
    assert "apipeline_session_duration_seconds_count 1.0" in body
    rss = next(
        line for line in body.splitlines() if line.startswith("apipeline_process_resident_memory_bytes{")
    )
    assert float(rss.split()[-1]) > 0


async def test_each_voice_changer_output_carries_the_timestamp_of_the_chunk_that_completed_its_block(
    make_server,
):
    """The pts rule for the served voice changer: an output block was made from the input up to its last
    sample, so it carries the client timestamp of the chunk holding that sample, not of the chunk where
    the block began (which counted up to one block of waiting for input as server latency). Chunks of
    320 samples against 560-sample (35 ms) blocks: block k is complete with chunk ceil((k+1)*560/320) - 1.
    A pause mid-stream must not shift the mapping."""
    from apipeline.transports import VoiceChangerFactory
    from apipeline.voice_changer import VoiceChangerSettings

    server = await make_server(VoiceChangerFactory())
    block = VoiceChangerSettings().geometry(16000).block
    assert block == 560
    frames = chunks((np.random.default_rng(4).standard_normal(16000) * 3000).astype(np.int16), 320)
    sent: list[int] = []
    received: list[int] = []
    async with asyncio.timeout(30):
        async with connect(server.url, compression=None) as ws:
            for i, f in enumerate(frames):
                f.pts = 10_000 + i  # the client's clock: anything, as long as each chunk's is its own
                sent.append(f.pts)
                await ws.send(SER.serialize(f))
                if i == 20:  # a pause: wait for an output before sending more
                    while not received:
                        out = SER.deserialize(await ws.recv())
                        if isinstance(out, AudioRawFrame):
                            received.append(out.pts)
            await ws.send(SER.serialize(EndFrame()))
            async for message in ws:
                out = SER.deserialize(message)
                if isinstance(out, AudioRawFrame):
                    received.append(out.pts)
    full_blocks = len(frames) * 320 // block
    assert len(received) >= full_blocks
    expected = [sent[-(-(k + 1) * block // 320) - 1] for k in range(full_blocks)]
    assert received[:full_blocks] == expected
    assert set(received[full_blocks:]) <= {sent[-1]}  # the flush at the end: made from the last chunk


async def test_query_rate_without_channels_means_mono(make_server):
    server = await make_server()
    async with connect(server.url + "?sample_rate=16000") as ws:
        await ws.send(SER.serialize(audio(0.01)))
        assert isinstance(SER.deserialize(await ws.recv()), AudioRawFrame)
