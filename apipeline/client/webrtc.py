"""A WebRTC client on aiortc, for tests and server-to-server use.

:class:`WebRTCClient` sends audio as an Opus track, paced in real time (20 ms frames), opens the
``"frames"`` data channel (settings in, transcripts/errors/metrics out) and records the server's audio
track. Signalling is a coroutine ``signal(offer_sdp) -> answer_sdp``: :func:`http_signaller` posts to
``apipeline serve``'s offer endpoint; in-process tests pass a server session's ``accept`` directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from apipeline.errors import AudioFormatError
from apipeline.frames import EndFrame, ErrorFrame, Frame, SyncFrame, SyncNotifyFrame, UpdateSettingsFrame
from apipeline.serializers import ProtobufFrameSerializer
from apipeline.transports.webrtc import (
    DATA_CHANNEL,
    JITTER_FRAMES,
    OPUS_RATE,
    check_jitter_frames,
    make_peer_connection,
    set_audio_jitter_frames,
)

Signaller = Callable[[str], Awaitable[str]]


def http_signaller(
    url: str, *, token: str | None = None, origin: str | None = None, timeout: float = 10.0, ssl: Any = None
) -> Signaller:
    """A :data:`Signaller` that posts the offer to ``apipeline serve``'s ``POST /webrtc/offer``.

    ``url`` is the endpoint with its query (``http://host:8765/webrtc/offer?pitch=4``); ``token`` is sent
    as ``Authorization: Bearer``; ``origin`` as the ``Origin`` header (what a browser page would send).
    A refusal raises :class:`~apipeline.errors.SessionRefused` with the HTTP status and the server's
    reason. HTTP/1.1 over a plain asyncio connection (``https://`` with ``ssl``, an ``SSLContext``).
    """
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        from apipeline.errors import ConfigurationError

        raise ConfigurationError(f"signalling URL {url!r} is not http(s)://host:port/webrtc/offer?...")
    host, port = parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
    target = parts.path + (f"?{parts.query}" if parts.query else "")

    async def signal(offer_sdp: str) -> str:
        status, body = await asyncio.wait_for(_post(offer_sdp), timeout)
        if status != 200:
            from apipeline.errors import SessionRefused

            raise SessionRefused(status, body.decode("utf-8", "replace").strip())
        answer = json.loads(body)
        return str(answer["sdp"])

    async def _post(offer_sdp: str) -> tuple[int, bytes]:
        body = json.dumps({"type": "offer", "sdp": offer_sdp}).encode()
        headers = {
            "Host": parts.netloc,
            "Content-Type": "application/json",
            "Content-Length": str(len(body)),
            "Connection": "close",
        }
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        if origin is not None:
            headers["Origin"] = origin
        use_ssl = ssl if parts.scheme == "https" else None
        if parts.scheme == "https" and use_ssl is None:
            import ssl as ssl_module

            use_ssl = ssl_module.create_default_context()
        reader, writer = await asyncio.open_connection(host, port, ssl=use_ssl)
        try:
            head = f"POST {target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
            writer.write(head.encode("latin-1") + b"\r\n" + body)
            await writer.drain()
            response = await reader.read()  # the server closes after its answer
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        head_bytes, _, payload = response.partition(b"\r\n\r\n")
        status_line = head_bytes.split(b"\r\n", 1)[0].split()
        if len(status_line) < 2 or not status_line[1].isdigit():
            from apipeline.errors import TransportError

            raise TransportError(f"signalling at {url}: not an HTTP answer: {response[:80]!r}")
        return int(status_line[1]), payload

    return signal


@dataclass(slots=True)
class WebRTCResult:
    """What a :meth:`WebRTCClient.stream` call received."""

    audio: NDArray[np.float32]  # the server's track, mono float32 at 48 kHz, from its first frame
    sample_rate: int = OPUS_RATE
    frames: list[Frame] = field(default_factory=list)  # data-channel frames from the server
    video: list[NDArray[np.uint8]] = field(default_factory=list)  # the server's pictures, if it sends video
    #: data-channel round trips (``SyncFrame`` out, the server's ``SyncNotifyFrame`` back), ms
    round_trips_ms: list[float] = field(default_factory=list)
    #: monotonic time at which the first input sample was handed to the encoder
    sent_at: float | None = None
    #: per received block: (monotonic arrival time, index of its first sample in :attr:`audio`)
    arrivals: list[tuple[float, int]] = field(default_factory=list)
    #: UDP payload bytes of the connection (RTP, RTCP, data channel, ICE), each way, and its duration
    bytes_sent: int = 0
    bytes_received: int = 0
    connected_s: float = 0.0


def _source_track(audio: NDArray[np.float32], sample_rate: int) -> Any:
    """An aiortc audio track playing ``audio`` in real time, then silence (as a microphone would) until
    stopped: the receiver's jitter buffer releases the last packets only when newer ones arrive.

    ``audio`` is ``(frames,)`` or ``(frames, 2)``; its frames go to the encoder at ``sample_rate`` and in
    its layout (20 ms each) when the rate allows whole 20 ms frames, as a browser's capture at 44.1 kHz
    stereo would; aiortc's Opus encoder resamples them. Other rates are resampled to 48 kHz here.
    """
    import av
    from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

    x = np.asarray(audio, np.float32)
    x = x.reshape(-1, 1) if x.ndim == 1 else x
    if x.shape[1] not in (1, 2):
        raise AudioFormatError(f"the client sends mono or stereo audio, got {x.shape[1]} channels")
    rate = sample_rate
    if sample_rate % 50:
        import soxr

        x, rate = soxr.resample(x, sample_rate, OPUS_RATE).astype(np.float32), OPUS_RATE
    # always two channels to the encoder (a mono signal in both): aiortc's encoder is stereo and would
    # otherwise upmix mono at -3 dB per channel; a browser's mono Opus decodes to two equal channels too
    x = np.repeat(x, 2, axis=1) if x.shape[1] == 1 else x
    layout = "stereo"
    step = rate // 50
    pcm = (np.clip(x, -1.0, 1.0) * 32767.0).astype(np.int16)

    class ArrayTrack(MediaStreamTrack):
        kind = "audio"

        def __init__(self) -> None:
            super().__init__()
            self._pos = 0
            self._start: float | None = None
            self.started_at: float | None = None
            self.done = asyncio.Event()

        async def recv(self) -> Any:
            if self._start is None:
                self._start = time.monotonic()
            wait = self._start + self._pos / rate - time.monotonic()
            if self._pos == 0:
                self.started_at = max(self._start, time.monotonic())
            if wait > 0:
                await asyncio.sleep(wait)
            if self.readyState != "live":
                raise MediaStreamError
            if self._pos >= len(pcm):
                self.done.set()
            block = pcm[self._pos : self._pos + step]
            if len(block) < step:
                block = np.pad(block, ((0, step - len(block)), (0, 0)))
            frame = av.AudioFrame.from_ndarray(block.reshape(1, -1), format="s16", layout=layout)
            frame.sample_rate, frame.pts = rate, self._pos
            frame.time_base = fractions.Fraction(1, rate)
            self._pos += step
            return frame

    return ArrayTrack()


class WebRTCClient:
    """Streams audio to a WebRTC session and records what comes back.

    Args:
        signal: ``offer_sdp -> answer_sdp``.
        ice_servers: STUN/TURN URLs (none: host candidates only).
        connect_timeout: seconds for signalling and ICE to connect.
        drain_timeout: seconds to wait, after the end of the input, for the server to end its track.
        jitter_frames: later Opus frames the receiver waits for before decoding one (aiortc's own
            default is 4, 80 ms; see :func:`~apipeline.transports.webrtc.set_audio_jitter_frames`).
    """

    def __init__(
        self,
        signal: Signaller,
        *,
        ice_servers: Sequence[str] = (),
        connect_timeout: float = 10.0,
        drain_timeout: float = 10.0,
        jitter_frames: int = JITTER_FRAMES,
    ) -> None:
        self.signal = signal
        self.jitter_frames = check_jitter_frames(jitter_frames)
        self.drain_timeout = drain_timeout
        self.ice_servers = list(ice_servers)
        self.connect_timeout = connect_timeout
        self.serializer = ProtobufFrameSerializer()

    async def stream(
        self,
        audio: NDArray[np.float32],
        sample_rate: int,
        *,
        settings: dict[str, Any] | None = None,
        tail_s: float = 0.5,
        receive_video: bool = False,
        probe_every_s: float | None = 0.5,
    ) -> WebRTCResult:
        """Send ``audio`` (float32, ``(frames,)`` mono or ``(frames, 2)`` stereo) in real time; return the
        server's audio and messages.

        ``receive_video`` offers to receive a video track (kept in :attr:`WebRTCResult.video`).
        ``probe_every_s``: while streaming, a ``SyncFrame`` goes out on the data channel this often; the
        server answers each at once, and the round trips land in :attr:`WebRTCResult.round_trips_ms`.
        ``tail_s`` after the last input frame the client sends ``EndFrame`` on the data channel and
        records until the server ends its track (at most ``drain_timeout``); the connection is closed
        before returning.
        """
        pc = make_peer_connection(self.ice_servers)
        source = _source_track(np.asarray(audio, np.float32), sample_rate)
        pc.addTrack(source)
        if receive_video:  # offer to receive the server's pictures (a talking head)
            pc.addTransceiver("video", direction="recvonly")
        set_audio_jitter_frames(pc, self.jitter_frames)
        channel = pc.createDataChannel(DATA_CHANNEL)
        result = WebRTCResult(np.zeros(0, np.float32))
        blocks: list[NDArray[np.float32]] = []
        remote: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        opened = asyncio.Event()
        server_ended = asyncio.Event()  # the server sent EndFrame or a fatal error

        video_tasks: list[asyncio.Task[None]] = []

        @pc.on("track")
        def _on_track(track: Any) -> None:
            if track.kind == "audio" and not remote.done():
                remote.set_result(track)
            elif track.kind == "video":
                video_tasks.append(asyncio.create_task(record_video(track)))

        async def record_video(track: Any) -> None:
            from aiortc.mediastreams import MediaStreamError

            while True:
                try:
                    frame = await track.recv()
                except MediaStreamError:
                    return
                result.video.append(frame.to_ndarray(format="rgb24"))

        @channel.on("open")
        def _on_open() -> None:
            opened.set()

        @channel.on("message")
        def _on_message(message: Any) -> None:
            try:
                frame = self.serializer.deserialize(message)
            except Exception:  # a malformed server message is recorded as missing, not fatal here
                return
            if isinstance(frame, SyncNotifyFrame) and frame.client_pts is not None:
                result.round_trips_ms.append((time.monotonic_ns() - frame.client_pts) / 1e6)
            if isinstance(frame, EndFrame) or (isinstance(frame, ErrorFrame) and frame.fatal):
                server_ended.set()
            result.frames.append(frame)

        async def probe(every: float) -> None:
            while channel.readyState == "open":
                sync = SyncFrame()
                sync.client_pts = time.monotonic_ns()
                channel.send(self.serializer.serialize(sync))
                await asyncio.sleep(every)

        async def record(track: Any) -> None:
            import av
            from aiortc.mediastreams import MediaStreamError

            resampler = av.AudioResampler(format="flt", layout="mono", rate=OPUS_RATE)
            received = 0
            while True:
                try:
                    frame = await track.recv()
                except MediaStreamError:
                    return
                now = time.monotonic()
                for f in resampler.resample(frame):
                    result.arrivals.append((now, received))
                    block = f.to_ndarray().reshape(-1).astype(np.float32)
                    blocks.append(block)
                    received += block.size

        recorder: asyncio.Task[None] | None = None
        prober: asyncio.Task[None] | None = None
        try:
            await pc.setLocalDescription(await pc.createOffer())
            answer = await asyncio.wait_for(self.signal(pc.localDescription.sdp), self.connect_timeout)
            from aiortc import RTCSessionDescription

            await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
            track = await asyncio.wait_for(remote, self.connect_timeout)
            recorder = asyncio.create_task(record(track))
            await asyncio.wait_for(opened.wait(), self.connect_timeout)
            if settings:
                channel.send(self.serializer.serialize(UpdateSettingsFrame(settings)))
            if probe_every_s:
                prober = asyncio.create_task(probe(probe_every_s))
            # the input plays out, unless the server ends the session first (its track or its EndFrame)
            waits = [asyncio.ensure_future(source.done.wait()), asyncio.ensure_future(server_ended.wait())]
            await asyncio.wait([*waits, recorder], return_when=asyncio.FIRST_COMPLETED)
            for w in waits:
                w.cancel()
            await asyncio.gather(*waits, return_exceptions=True)
            if source.done.is_set() and not server_ended.is_set() and not recorder.done():
                await asyncio.sleep(tail_s)
            if prober is not None:
                prober.cancel()
            if channel.readyState == "open" and not server_ended.is_set():
                channel.send(self.serializer.serialize(EndFrame()))
            # the server drains its output, then ends its track: record until then
            try:
                await asyncio.wait_for(asyncio.shield(recorder), self.drain_timeout)
            except TimeoutError:
                pass
            for stats in (await pc.getStats()).values():
                if stats.type == "transport":
                    result.bytes_sent += stats.bytesSent
                    result.bytes_received += stats.bytesReceived
            if source.started_at is not None:
                result.connected_s = time.monotonic() - source.started_at
        finally:
            source.stop()
            tasks = [t for t in (*video_tasks, recorder, prober) if t is not None]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await pc.close()
            result.sent_at = source.started_at
        result.audio = np.concatenate(blocks) if blocks else np.zeros(0, np.float32)
        return result
