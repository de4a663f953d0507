"""WebRTC through ``apipeline serve``'s signalling endpoint: the Python client against the server on loopback.

Admission is the WebSocket path's (the same Origin rule, token, schema and ``--max-sessions`` count);
refusals answer with the status and a one-line reason; a session ends cleanly, on the peer's EndFrame,
when the peer vanishes (within the configured peer timeout), and when the server shuts down.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from apipeline.client.webrtc import WebRTCClient, http_signaller
from apipeline.errors import SessionRefused
from apipeline.frames import AudioRawFrame, EndFrame, ErrorFrame
from apipeline.pipeline.pipeline import Pipeline
from apipeline.serializers import ProtobufFrameSerializer
from apipeline.transports.auth import make_session_token
from apipeline.transports.webrtc_signalling import WebRTCConfig
from tests.transports.conftest import leftover_tasks
from tests.transports.test_workers import metric

ROOT = Path(__file__).resolve().parents[2]
SER = ProtobufFrameSerializer()
pytest.importorskip("aiortc")


def session_tasks() -> list[str]:
    """Leftover tasks but the server's own (its loop-lag watch lives until the fixture closes it)."""
    return [t for t in leftover_tasks() if t != "server.loop_lag"]


async def http(
    port: int, method: str, target: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], str]:
    """(status, headers lower-cased, body) of one raw HTTP/1.1 request on loopback."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = {"Host": f"127.0.0.1:{port}", "Connection": "close", **(headers or {})}
    if body or method == "POST":
        head.setdefault("Content-Length", str(len(body)))
    lines = "".join(f"{k}: {v}\r\n" for k, v in head.items())
    writer.write(f"{method} {target} HTTP/1.1\r\n{lines}\r\n".encode() + body)
    data = await reader.read()
    writer.close()
    await writer.wait_closed()
    raw_head, _, text = data.decode().partition("\r\n\r\n")
    status_line, *header_lines = raw_head.split("\r\n")
    fields = dict(line.split(": ", 1) for line in header_lines)
    return int(status_line.split()[1]), {k.lower(): v for k, v in fields.items()}, text


def offer_body(sdp: str) -> bytes:
    return json.dumps({"type": "offer", "sdp": sdp}).encode()


JSON = {"Content-Type": "application/json"}


async def real_offer(*, audio: bool = True) -> str:
    """A complete offer as a peer makes it (audio sendrecv and the data channel)."""
    from aiortc import RTCPeerConnection

    pc = RTCPeerConnection()
    if audio:
        pc.addTransceiver("audio", direction="sendrecv")
    pc.createDataChannel("frames")
    await pc.setLocalDescription(await pc.createOffer())
    sdp = str(pc.localDescription.sdp)
    await pc.close()
    return sdp


def tone(seconds: float, rate: int, hz: float = 330.0, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    x = (0.4 * np.sin(2 * np.pi * hz * t)).astype(np.float32)
    return x if channels == 1 else np.stack([x, np.zeros_like(x)], axis=1)  # right channel silent


def peak_hz(x: np.ndarray, rate: int) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(x.size)))
    return float(np.argmax(spec) * rate / x.size)


def loud_s(x: np.ndarray, rate: int = 48000, block: int = 960, threshold: float = 0.02) -> float:
    frames = x[: x.size // block * block].reshape(-1, block)
    return float((np.sqrt((frames**2).mean(axis=1)) > threshold).sum()) * block / rate


async def until(condition, seconds: float = 10.0) -> None:
    """Wait (bounded) for a condition of the server's state that no event announces."""
    for _ in range(int(seconds / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise TimeoutError(f"condition not met within {seconds} s")


async def all_sessions_ended(server, seconds: float = 10.0) -> None:
    """Every WebRTC session task finished, its slot given back (no WebSocket session may be open)."""
    tasks = list(server.webrtc._tasks)
    if tasks:
        await asyncio.wait_for(asyncio.gather(*tasks), seconds)
    assert not server.webrtc.sessions
    await until(lambda: server.admission.count == 0, seconds)


def capture(signaller, server, sessions: list):
    """A signaller that also keeps the server's session object (for its counters)."""

    async def signal(offer: str) -> str:
        before = set(server.webrtc.sessions)
        answer = await signaller(offer)
        sessions.extend(set(server.webrtc.sessions) - before)
        return answer

    return signal


# -- the voice changer, as `apipeline serve` serves it -----------------------------------------------------


async def test_voice_changer_over_webrtc_shifts_the_pitch_keeps_the_length_and_closes_clean(make_server):
    from apipeline.audio.f0 import get_f0_estimator
    from apipeline.transports.factories import VoiceChangerFactory

    server = await make_server(VoiceChangerFactory(), webrtc=WebRTCConfig(peer_timeout=2.0))
    fds = len(os.listdir("/proc/self/fd"))
    speech, rate = sf.read(ROOT / "examples/data/speech.wav", dtype="float32")
    speech = speech[: int(2.5 * rate)]
    sessions: list = []
    url = f"http://127.0.0.1:{server.port}/webrtc/offer?pitch=4&sample_rate=16000"
    signal_ = capture(http_signaller(url), server, sessions)
    result = await asyncio.wait_for(WebRTCClient(signal_).stream(speech, rate, tail_s=0.4), 60)
    await all_sessions_ended(server)
    (session,) = sessions
    assert isinstance(result.frames[-1], EndFrame)  # the server's end of stream, after the audio
    assert not [f for f in result.frames if isinstance(f, ErrorFrame)]
    # same length: the pipeline's output is its input rounded up to a whole block, plus the whole blocks
    # that drain the voice changer's declared delay (StreamPadder): nothing lost, less than a block added
    (made,) = session.processors  # the factory wraps the voice changer (MadeFrom(...).around(vc))
    inner = made.processors() if isinstance(made, Pipeline) else [made]
    (vc,) = [p for p in inner if hasattr(p, "geometry")]
    assert vc.geometry.sample_rate == 16000
    block, n_in = vc.geometry.block, round(session.input.audio_s * 16000)
    drain = -(-vc.align_samples // block) * block
    n_out = round(session.output.audio_s * 16000) - drain
    assert session.input.audio_s >= 2.5  # all of the speech arrived (and the tail's silence)
    assert 0 <= n_out - n_in < block, (n_out, n_in, block)
    # the requested shift, measured on what the client heard (median F0 of voiced frames)
    import soxr

    harvest = get_f0_estimator("harvest")
    f_in = harvest.estimate(soxr.resample(speech, rate, 16000), 16000).f0_hz
    f_out = harvest.estimate(soxr.resample(result.audio, 48000, 16000), 16000).f0_hz
    assert (f_out > 0).sum() >= 0.7 * (f_in > 0).sum()  # the speech came back, not a few frames of it
    cents = 1200 * (np.median(np.log2(f_out[f_out > 0])) - np.median(np.log2(f_in[f_in > 0])))
    assert abs(cents - 400) <= 50, cents
    assert result.round_trips_ms  # the data channel's SyncFrame echo
    body = server.stats.render()
    assert metric(body, "apipeline_sessions_total")['{transport="webrtc",outcome="ok"}'] == 1
    assert not session_tasks()
    await until(lambda: len(os.listdir("/proc/self/fd")) <= fds)  # the UDP sockets are closed


# -- admission -------------------------------------------------------------------------------------------


async def test_webrtc_and_websocket_sessions_share_max_sessions(make_server):
    server = await make_server(max_sessions=1, webrtc=WebRTCConfig(peer_timeout=2.0))
    port = server.port
    answered = asyncio.Event()
    signaller = http_signaller(f"http://127.0.0.1:{port}/webrtc/offer?sample_rate=16000")

    async def signal_(offer: str) -> str:
        answer = await signaller(offer)
        answered.set()
        return answer

    streaming = asyncio.create_task(WebRTCClient(signal_).stream(tone(2.0, 16000), 16000, tail_s=0.2))
    await asyncio.wait_for(answered.wait(), 20)
    # the WebRTC session holds the one slot: a WebSocket session is refused, and so is a second offer
    with pytest.raises(InvalidStatus) as refused:
        async with connect(f"ws://127.0.0.1:{port}/ws?sample_rate=16000"):
            pass
    assert refused.value.response.status_code == 503
    status, _, reason = await http(port, "POST", "/webrtc/offer", offer_body(await real_offer()), JSON)
    assert (status, reason.strip()) == (503, "too many sessions (max_sessions=1)")
    result = await asyncio.wait_for(streaming, 30)
    assert loud_s(result.audio) >= 1.5  # the session that held the slot was served
    await all_sessions_ended(server)
    # and the other way round: an open WebSocket session takes the slot from WebRTC
    async with connect(f"ws://127.0.0.1:{port}/ws?sample_rate=16000", compression=None) as ws:
        await ws.send(SER.serialize(AudioRawFrame(np.zeros(320, np.float32), sample_rate=16000)))
        await until(lambda: server.admission.count == 1)
        with pytest.raises(SessionRefused) as err:
            await WebRTCClient(signaller).stream(tone(0.2, 16000), 16000)
        assert err.value.code == 503 and "too many sessions" in err.value.reason
        await ws.send(SER.serialize(EndFrame()))
    body = server.stats.render()
    refusals = metric(body, "apipeline_handshakes_refused_total")
    assert refusals['{transport="webrtc",reason="too_many_sessions"}'] == 2
    assert refusals['{transport="websocket",reason="too_many_sessions"}'] == 1


@pytest.mark.parametrize(
    ("body", "headers", "status", "reason"),
    [
        (b"not json", JSON, 400, "the body is not JSON"),
        (b"[1, 2]", JSON, 400, "must be a JSON object"),
        (b'{"type": "answer", "sdp": "v=0"}', JSON, 400, '"type" must be "offer"'),
        (b'{"type": "offer", "sdp": 42}', JSON, 400, '"sdp" must be the offer'),
        (offer_body("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\nm=audio nonsense\r\n"), JSON, 400, "SDP line 3"),
        (offer_body("v=0\r\nhello\r\n"), JSON, 400, "SDP line 2 'hello' is not <letter>=<value>"),
        (offer_body("v=0\r\ns=-\r\nt=0 0\r\n"), JSON, 400, "audio section"),
        (offer_body("v=0\r\ns=-\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"), JSON, 400, "could not be applied"),
        (offer_body("v=0"), {"Content-Type": "text/plain"}, 415, "must be application/json"),
        (b"x" * 70_000, JSON, 413, "over the limit of 65536"),
    ],
)
async def test_bad_offers_are_refused_with_a_clear_reason(make_server, body, headers, status, reason):
    server = await make_server(webrtc=WebRTCConfig())
    got, _, text = await http(server.port, "POST", "/webrtc/offer?sample_rate=16000", body, headers)
    assert got == status and reason in text, (got, text)
    assert text.count("\n") == 1  # one line
    assert server.admission.count == 0 and not server.webrtc.sessions


async def test_an_offer_without_audio_and_malformed_requests_are_refused(make_server):
    server = await make_server(webrtc=WebRTCConfig(), handshake_timeout=0.3)
    port = server.port
    no_audio = offer_body(await real_offer(audio=False))
    status, _, text = await http(port, "POST", "/webrtc/offer", no_audio, JSON)
    assert status == 400 and "audio" in text
    # no Content-Length; chunked; a header block too large; a wrong method; a request that never finishes
    status, _, text = await http(port, "POST", "/webrtc/offer", headers={"Content-Length": "x1"})
    assert status == 400 and "Content-Length" in text
    status, _, text = await http(port, "POST", "/webrtc/offer", headers={"Transfer-Encoding": "chunked"})
    assert status == 411
    status, _, _ = await http(port, "POST", "/webrtc/offer", headers={"X-Big": "y" * 20_000})
    assert status == 431
    status, fields, text = await http(port, "GET", "/webrtc/offer")
    assert status == 405 and fields["allow"] == "POST, OPTIONS"
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST /webrtc/offer HTTP/1.1\r\nContent-Length: 100\r\n\r\n{")
    data = await asyncio.wait_for(reader.read(), 3.0)  # 10x the 0.3 s handshake timeout
    writer.close()
    assert data.startswith(b"HTTP/1.1 408 ") and b"not complete within 0.3 s" in data
    assert server.admission.count == 0


async def test_token_and_origin_rules_are_those_of_the_websocket_path(make_server):
    server = await make_server(
        token="sekrit", secret="s" * 32, allowed_origins=("https://app.example",), webrtc=WebRTCConfig()
    )
    port = server.port
    body = b"{}"  # past authentication, a bad body answers 400: that shows the request got through
    assert (await http(port, "POST", "/webrtc/offer", body, JSON))[::2] == (401, "missing token\n")
    assert (await http(port, "POST", "/webrtc/offer?token=nope", body, JSON))[0] == 403
    assert (await http(port, "POST", "/webrtc/offer?token=sekrit", body, JSON))[0] == 400
    bearer = {**JSON, "Authorization": "Bearer sekrit"}
    assert (await http(port, "POST", "/webrtc/offer", body, bearer))[0] == 400
    signed = make_session_token("s" * 32, ttl_s=60)
    assert (await http(port, "POST", f"/webrtc/offer?token={signed}", body, JSON))[0] == 400
    expired = make_session_token("s" * 32, ttl_s=10, now=time.time() - 60)
    status, _, text = await http(port, "POST", f"/webrtc/offer?token={expired}", body, JSON)
    assert status == 403 and "expired" in text
    evil = {**JSON, "Origin": "https://evil.example"}
    status, _, text = await http(port, "POST", "/webrtc/offer?token=sekrit", body, evil)
    assert status == 403 and "origin 'https://evil.example' is not allowed" in text
    assert (await http(port, "OPTIONS", "/webrtc/offer", headers=evil))[0] == 403
    app = {"Origin": "https://app.example"}
    status, fields, _ = await http(port, "POST", "/webrtc/offer?token=sekrit", body, {**JSON, **app})
    assert status == 400 and fields["access-control-allow-origin"] == "https://app.example"
    status, fields, _ = await http(port, "OPTIONS", "/webrtc/offer", headers=app)
    assert status == 204 and "POST" in fields["access-control-allow-methods"]
    # the session parameters are checked with the factory's schema, as on /ws
    status, _, text = await http(port, "POST", "/webrtc/offer?token=sekrit&gian=2", offer_body("v=0"), JSON)
    assert status == 400 and text.startswith("bad session settings") and "gain" in text
    status, _, text = await http(port, "POST", "/webrtc/offer?token=sekrit&channels=2", body, JSON)
    assert status == 400 and "mono" in text
    # /webrtc/config: the same authentication
    assert (await http(port, "GET", "/webrtc/config"))[0] == 401
    refusals = metric(server.stats.render(), "apipeline_handshakes_refused_total")
    assert refusals['{transport="webrtc",reason="missing_token"}'] >= 1
    assert refusals['{transport="webrtc",reason="origin"}'] == 2


async def test_config_tells_a_page_the_ice_servers_and_the_data_channel(make_server):
    cfg = WebRTCConfig(
        ice_servers=("stun:stun.example.org:3478", "turn:turn.example.org:3478?transport=udp"),
        ice_username="u",
        ice_credential="c",
    )
    server = await make_server(webrtc=cfg)
    status, fields, text = await http(server.port, "GET", "/webrtc/config")
    assert status == 200 and fields["content-type"] == "application/json"
    assert json.loads(text) == {
        "offer": "/webrtc/offer",
        "iceServers": [
            {"urls": "stun:stun.example.org:3478"},
            {"urls": "turn:turn.example.org:3478?transport=udp", "username": "u", "credential": "c"},
        ],
        "dataChannel": "frames",
        "sampleRate": 48000,
    }


# -- media ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("client_rate", "channels", "session_rate"), [(44100, 2, 22050), (16000, 1, 48000)])
async def test_opus_at_another_rate_or_in_stereo_reaches_the_pipeline_mono_at_its_rate(
    make_server, client_rate, channels, session_rate
):
    server = await make_server(webrtc=WebRTCConfig(peer_timeout=2.0))
    sessions: list = []
    url = f"http://127.0.0.1:{server.port}/webrtc/offer?sample_rate={session_rate}"
    x = tone(1.5, client_rate, 440.0, channels)
    result = await asyncio.wait_for(
        WebRTCClient(capture(http_signaller(url), server, sessions)).stream(x, client_rate, tail_s=0.3), 30
    )
    await all_sessions_ended(server)
    (session,) = sessions
    assert session.task.errors == []  # the stand-in pipeline raises on a frame not at the session rate
    assert abs(session.output.audio_s - session.input.audio_s) < 0.02
    heard = loud_s(result.audio)
    assert 1.5 - 0.04 <= heard <= 1.5 + 0.5, heard  # late packets may be concealed with a few extra frames
    loud = np.flatnonzero(np.abs(result.audio) > 0.05)
    mid = result.audio[loud[0] + 12000 : loud[0] + 12000 + 48000]
    assert abs(1200 * np.log2(peak_hz(mid, 48000) / 440)) < 50
    expected = 0.4 / np.sqrt(2) / channels  # stereo with one silent channel: mixed to half the level
    assert abs(np.sqrt(np.mean(mid**2)) / expected - 1) < 0.15


async def test_settings_are_checked_and_sync_frames_echoed_on_the_data_channel(make_server):
    server = await make_server(webrtc=WebRTCConfig(peer_timeout=2.0))
    url = f"http://127.0.0.1:{server.port}/webrtc/offer?sample_rate=16000&gain=0.5"
    client = WebRTCClient(http_signaller(url))
    result = await asyncio.wait_for(
        client.stream(tone(1.0, 16000), 16000, settings={"gain": 1000}, probe_every_s=0.2), 30
    )
    errors = [f for f in result.frames if isinstance(f, ErrorFrame)]
    assert errors and "UpdateSettingsFrame refused" in errors[0].error and "gain" in errors[0].error
    assert not any(e.fatal for e in errors)
    loud = np.flatnonzero(np.abs(result.audio) > 0.05)
    mid = result.audio[loud[0] + 9600 : loud[0] + 9600 + 24000]
    assert 0.12 < np.sqrt(np.mean(mid**2)) < 0.16  # gain 0.5 from the query kept: the update was refused
    assert len(result.round_trips_ms) >= 3 and all(0 < r < 10_000 for r in result.round_trips_ms)
    await all_sessions_ended(server)


# -- ends ------------------------------------------------------------------------------------------------

VANISHING_PEER = textwrap.dedent(
    """
    import asyncio, sys
    import numpy as np
    from apipeline.client.webrtc import WebRTCClient, http_signaller

    async def main():
        x = (0.3 * np.sin(2 * np.pi * 220 * np.arange(30 * 16000) / 16000)).astype(np.float32)
        await WebRTCClient(http_signaller(sys.argv[1])).stream(x, 16000)

    asyncio.run(main())
    """
)


async def test_a_peer_that_vanishes_without_closing_ends_within_the_peer_timeout(make_server, tmp_path):
    server = await make_server(webrtc=WebRTCConfig(peer_timeout=0.5, max_output_s=0.5))
    script = tmp_path / "peer.py"
    script.write_text(VANISHING_PEER)
    url = f"http://127.0.0.1:{server.port}/webrtc/offer?sample_rate=16000"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(script), url, stderr=asyncio.subprocess.PIPE
    )
    try:
        try:
            await until(lambda: any(s.input.audio_s > 0.3 for s in server.webrtc.sessions), 30)
        except TimeoutError:
            if proc.returncode is None:
                proc.kill()
            _, err = await proc.communicate()
            raise AssertionError(f"the peer did not stream: {err.decode()[-2000:]}") from None
        (session,) = server.webrtc.sessions
        proc.kill()  # no BYE, no DTLS close, no EndFrame: the packets just stop
        await proc.wait()
        loop = asyncio.get_running_loop()
        killed = loop.time()
        await all_sessions_ended(server, 10 * (0.5 + 0.5))  # peer timeout + the output's hold, 10x
        assert loop.time() - killed < 10
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert session.input.ended_by == "no audio from the peer for 0.5 s"
    outcomes = metric(server.stats.render(), "apipeline_sessions_total")
    assert outcomes['{transport="webrtc",outcome="client_gone"}'] == 1
    assert not session_tasks()


async def test_shutdown_ends_webrtc_sessions_with_a_fatal_error_to_the_peer(make_server):
    server = await make_server(webrtc=WebRTCConfig(peer_timeout=2.0))
    answered = asyncio.Event()
    signaller = http_signaller(f"http://127.0.0.1:{server.port}/webrtc/offer?sample_rate=16000")

    async def signal_(offer: str) -> str:
        answer = await signaller(offer)
        answered.set()
        return answer

    streaming = asyncio.create_task(WebRTCClient(signal_).stream(tone(20.0, 16000), 16000))
    await asyncio.wait_for(answered.wait(), 20)
    await until(lambda: any(s.input and s.input.audio_s > 0.2 for s in server.webrtc.sessions), 20)
    await asyncio.wait_for(server.aclose(), 20)
    assert not server.webrtc.sessions and server.admission.count == 0
    result = await asyncio.wait_for(streaming, 20)  # the client sees the track end and stops
    fatal = [f for f in result.frames if isinstance(f, ErrorFrame) and f.fatal]
    assert [f.error for f in fatal] == ["server shutting down"]
    assert not session_tasks()


# -- the front leaves the rest of the port as it was --------------------------------------------------------


async def test_the_other_endpoints_answer_byte_for_byte_as_without_webrtc(make_server):
    plain = await make_server()
    front = await make_server(webrtc=WebRTCConfig())

    async def raw(port: int, request: bytes) -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request.replace(b"PORT", str(port).encode()))
        data = await asyncio.wait_for(reader.read(), 10)
        writer.close()
        return re.sub(rb"Date: [^\r]*\r\n", b"", data)

    requests = [
        b"GET /health HTTP/1.1\r\nHost: 127.0.0.1:PORT\r\n\r\n",
        b"GET /ready HTTP/1.1\r\nHost: 127.0.0.1:PORT\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1:PORT\r\n\r\n",
        b"GET /webrtc/other HTTP/1.1\r\nHost: 127.0.0.1:PORT\r\n\r\n",
        b"POST /ws HTTP/1.1\r\nHost: 127.0.0.1:PORT\r\nContent-Length: 0\r\n\r\n",
        b"GET /ws?sample_rate=16000 HTTP/1.1\r\nHost: 127.0.0.1:PORT\r\n\r\n",  # not an upgrade
        b"GET /ws?sample_rate=16000 HTTP/1.1\r\nHost: 127.0.0.1:PORT\r\nOrigin: https://evil.example\r\n\r\n",
        b"BREW /pot HTTP/1.1\r\n\r\n",
        b"\x16\x03\x01\x00\xa5garbage\r\n\r\n",
    ]
    for request in requests:
        assert await raw(front.port, request) == await raw(plain.port, request), request
    # and a WebSocket session through the front is a WebSocket session
    async with connect(f"ws://127.0.0.1:{front.port}/ws?sample_rate=16000", compression=None) as ws:
        await ws.send(SER.serialize(AudioRawFrame(np.ones(320, np.float32) * 0.25, sample_rate=16000)))
        await ws.send(SER.serialize(EndFrame()))
        frames = [SER.deserialize(m) async for m in ws]
    audio = [f for f in frames if isinstance(f, AudioRawFrame)]
    assert sum(f.audio.shape[0] for f in audio) == 320 and isinstance(frames[-1], EndFrame)


# -- the command line ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--ice-server", "stun:host:99999"], "ICE server 'stun:host:99999' is not a URL"),
        (["--ice-server", "stun:host?transport=udp"], "is not a URL like stun:host:3478"),
        (["--ice-server", "turn:host:3478"], "needs --ice-username and --ice-credential"),
        (["--ice-server", "turn:h", "--ice-username", "u"], "go together"),
        (["--webrtc-peer-timeout", "0"], "peer timeout must be > 0"),
    ],
)
def test_bad_webrtc_options_are_usage_errors_at_start(flags, message, capsys):
    from apipeline.cli.main import main

    assert main(["serve", "--port", "0", "--workers", "1", *flags]) == 2
    err = capsys.readouterr().err
    assert err.startswith("apipeline serve: error:") and message in err, err


def test_the_command_line_turns_webrtc_on_with_its_options_or_off():
    from apipeline.cli.main import build_parser
    from apipeline.cli.serve import server_configs

    def config(*flags: str):
        return server_configs(build_parser().parse_args(["serve", "--workers", "1", *flags]))[0].webrtc

    on = config("--ice-server", "stun:s.example:3478", "--webrtc-peer-timeout", "1.5")
    assert on == WebRTCConfig(ice_servers=("stun:s.example:3478",), peer_timeout=1.5)
    assert config("--no-webrtc") is None


async def test_a_bad_ice_server_stops_the_command_before_it_listens():
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "apipeline.cli.main", "serve", "--port", "0",
        "--ice-server", "stun.example.org",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 2 and not out
    assert err.decode() == (
        "apipeline serve: error: ICE server 'stun.example.org' is not a URL like stun:host:3478 or "
        "turn:host:3478?transport=udp\n"
    )


async def test_webrtc_through_two_workers_counts_one_limit(tmp_path):
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "apipeline.cli.main", "serve", "--port", "0", "--workers", "2",
        "--max-sessions", "1", "--webrtc-peer-timeout", "2",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        async with asyncio.timeout(90):
            first = (await proc.stdout.readline()).decode()
            port = int(re.search(r"http://127\.0\.0\.1:(\d+)/ .*2 workers", first).group(1))
            assert (await proc.stdout.readline()).decode().strip() == "apipeline serve: ready"
            answered = asyncio.Event()
            signaller = http_signaller(f"http://127.0.0.1:{port}/webrtc/offer?sample_rate=16000&pitch=0")

            async def signal_(offer: str) -> str:
                answer = await signaller(offer)
                answered.set()
                return answer

            streaming = asyncio.create_task(WebRTCClient(signal_).stream(tone(2.0, 16000), 16000))
            await answered.wait()
            status, _, text = await http(port, "POST", "/webrtc/offer", offer_body(await real_offer()), JSON)
            assert (status, text) == (503, "too many sessions (max_sessions=1)\n")
            with pytest.raises(InvalidStatus) as refused:
                async with connect(f"ws://127.0.0.1:{port}/ws?sample_rate=16000"):
                    pass
            assert refused.value.response.status_code == 503
            result = await streaming
            assert loud_s(result.audio) >= 1.5  # the voice changer's audio came back through a worker
            proc.send_signal(signal.SIGTERM)
            _, err = await proc.communicate()
        assert proc.returncode == 0, err.decode()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_signalling_works_behind_tls_beside_wss(make_server, tmp_path):
    import ssl

    from apipeline.cli.serve import tls_config
    from tests.transports.test_security import _certificate

    certfile, keyfile = _certificate(tmp_path, "a")
    context, _ = tls_config(certfile, keyfile)
    server = await make_server(ssl=context, host="localhost", webrtc=WebRTCConfig(peer_timeout=2.0))
    client_ssl = ssl.create_default_context(cafile=certfile)
    url = f"https://localhost:{server.port}/webrtc/offer?sample_rate=16000"
    result = await asyncio.wait_for(
        WebRTCClient(http_signaller(url, ssl=client_ssl)).stream(tone(1.0, 16000), 16000, tail_s=0.2), 30
    )
    assert loud_s(result.audio) >= 0.9 and isinstance(result.frames[-1], EndFrame)
    async with connect(server.url, ssl=client_ssl, compression=None) as ws:  # wss beside it
        await ws.send(SER.serialize(AudioRawFrame(np.zeros(320, np.float32), sample_rate=16000)))
        await ws.send(SER.serialize(EndFrame()))
        assert isinstance([SER.deserialize(m) async for m in ws][-1], EndFrame)
    await all_sessions_ended(server)  # and the wss slot, held until its TCP connection is gone


async def test_a_client_that_leaves_before_its_answer_gives_its_slot_back(make_server, monkeypatch):
    from apipeline.transports.webrtc import WebRTCSession

    server = await make_server(max_sessions=1, webrtc=WebRTCConfig())
    accepting, never = asyncio.Event(), asyncio.Event()
    closed: list[WebRTCSession] = []
    close = WebRTCSession.close

    async def stuck_accept(self, offer_sdp):
        accepting.set()
        await never.wait()  # an answer that takes longer than the client waits

    async def recorded_close(self):
        closed.append(self)
        await close(self)

    monkeypatch.setattr(WebRTCSession, "accept", stuck_accept)
    monkeypatch.setattr(WebRTCSession, "close", recorded_close)
    _, writer = await asyncio.open_connection("127.0.0.1", server.port)
    body = offer_body(await real_offer())
    writer.write(
        b"POST /webrtc/offer HTTP/1.1\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    await asyncio.wait_for(accepting.wait(), 10)
    assert server.admission.count == 1
    writer.transport.abort()  # gone without waiting for the answer
    await until(lambda: server.admission.count == 0, 10)
    assert len(closed) == 1 and not server.webrtc.sessions


async def test_mangled_offers_get_400_or_a_session_never_a_500(make_server):
    """A real offer with lines dropped, repeated, cut or garbled: each is refused with a reason or
    answered (and that session then ends for want of media); nothing is left holding a slot."""
    import random

    server = await make_server(webrtc=WebRTCConfig(peer_timeout=0.3, connect_timeout=0.3))
    lines = (await real_offer()).split("\r\n")
    fds = len(os.listdir("/proc/self/fd"))
    rng = random.Random(13)
    statuses = []
    for _ in range(16):
        mangled = list(lines)
        i = rng.randrange(1, len(mangled) - 1)
        how = rng.choice(["drop", "repeat", "cut", "garble"])
        if how == "drop":
            del mangled[i]
        elif how == "repeat":
            mangled.insert(i, mangled[i])
        elif how == "cut":
            mangled[i] = mangled[i][: len(mangled[i]) // 2]
        else:
            mangled[i] = mangled[i][:2] + "".join(rng.sample(mangled[i][2:], len(mangled[i]) - 2))
        status, _, text = await http(
            server.port, "POST", "/webrtc/offer?sample_rate=16000", offer_body("\r\n".join(mangled)), JSON
        )
        assert status in (200, 400), (how, mangled[i], status, text)
        statuses.append(status)
    assert 400 in statuses
    await all_sessions_ended(server, 10)
    await until(lambda: len(os.listdir("/proc/self/fd")) <= fds + 2)  # no UDP socket left open
