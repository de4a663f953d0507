"""A WebRTC client on aiortc, for tests and server-to-server use.

:class:`WebRTCClient` sends audio as an Opus track, paced in real time (20 ms frames), opens the
``"frames"`` data channel (settings in, transcripts/errors/metrics out) and records the server's audio
track. Signalling is a coroutine ``signal(offer_sdp) -> answer_sdp``: :func:`http_signaller` posts to
``apipeline serve``'s offer endpoint; in-process tests pass a server session's ``accept`` directly.
"""

from __future__ import annotations

import asyncio
import fractions
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from apipeline.frames import EndFrame, Frame, UpdateSettingsFrame
from apipeline.serializers import ProtobufFrameSerializer
from apipeline.transports.webrtc import DATA_CHANNEL, FRAME_SAMPLES, OPUS_RATE, make_peer_connection

Signaller = Callable[[str], Awaitable[str]]


@dataclass(slots=True)
class WebRTCResult:
    """What a :meth:`WebRTCClient.stream` call received."""

    audio: NDArray[np.float32]  # the server's track, mono float32 at 48 kHz, from its first frame
    sample_rate: int = OPUS_RATE
    frames: list[Frame] = field(default_factory=list)  # data-channel frames from the server
    video: list[NDArray[np.uint8]] = field(default_factory=list)  # the server's pictures, if it sends video
    round_trips_ms: list[float] = field(default_factory=list)


def _source_track(audio: NDArray[np.float32], sample_rate: int) -> Any:
    """An aiortc audio track playing ``audio`` in real time, then silence (as a microphone would) until
    stopped: the receiver's jitter buffer releases the last packets only when newer ones arrive."""
    import av
    from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

    if sample_rate != OPUS_RATE:
        import soxr

        audio = soxr.resample(audio, sample_rate, OPUS_RATE).astype(np.float32)
    pcm = (np.clip(audio, -1.0, 1.0) * 32767.0).astype(np.int16)

    class ArrayTrack(MediaStreamTrack):
        kind = "audio"

        def __init__(self) -> None:
            super().__init__()
            self._pos = 0
            self._start: float | None = None
            self.done = asyncio.Event()

        async def recv(self) -> Any:
            if self._start is None:
                self._start = time.monotonic()
            wait = self._start + self._pos / OPUS_RATE - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            if self.readyState != "live":
                raise MediaStreamError
            if self._pos >= pcm.size:
                self.done.set()
            block = pcm[self._pos : self._pos + FRAME_SAMPLES]
            if block.size < FRAME_SAMPLES:
                block = np.pad(block, (0, FRAME_SAMPLES - block.size))
            frame = av.AudioFrame.from_ndarray(block.reshape(1, -1), format="s16", layout="mono")
            frame.sample_rate, frame.pts = OPUS_RATE, self._pos
            frame.time_base = fractions.Fraction(1, OPUS_RATE)
            self._pos += FRAME_SAMPLES
            return frame

    return ArrayTrack()


class WebRTCClient:
    """Streams audio to a WebRTC session and records what comes back.

    Args:
        signal: ``offer_sdp -> answer_sdp``.
        ice_servers: STUN/TURN URLs (none: host candidates only).
        connect_timeout: seconds for signalling and ICE to connect.
        drain_timeout: seconds to wait, after the end of the input, for the server to end its track.
    """

    def __init__(
        self,
        signal: Signaller,
        *,
        ice_servers: Sequence[str] = (),
        connect_timeout: float = 10.0,
        drain_timeout: float = 10.0,
    ) -> None:
        self.signal = signal
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
    ) -> WebRTCResult:
        """Send ``audio`` (mono float32) in real time; return the server's audio and messages.

        ``receive_video`` offers to receive a video track (kept in :attr:`WebRTCResult.video`).
        ``tail_s`` after the last input frame the client sends ``EndFrame`` on the data channel and
        records until the server ends its track (at most ``drain_timeout``); the connection is closed
        before returning.
        """
        pc = make_peer_connection(self.ice_servers)
        source = _source_track(np.asarray(audio, np.float32).reshape(-1), sample_rate)
        pc.addTrack(source)
        if receive_video:  # offer to receive the server's pictures (a talking head)
            pc.addTransceiver("video", direction="recvonly")
        channel = pc.createDataChannel(DATA_CHANNEL)
        result = WebRTCResult(np.zeros(0, np.float32))
        blocks: list[NDArray[np.float32]] = []
        remote: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        opened = asyncio.Event()

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
                result.frames.append(self.serializer.deserialize(message))
            except Exception:  # a malformed server message is recorded as missing, not fatal here
                pass

        async def record(track: Any) -> None:
            import av
            from aiortc.mediastreams import MediaStreamError

            resampler = av.AudioResampler(format="flt", layout="mono", rate=OPUS_RATE)
            while True:
                try:
                    frame = await track.recv()
                except MediaStreamError:
                    return
                for f in resampler.resample(frame):
                    blocks.append(f.to_ndarray().reshape(-1).astype(np.float32))

        recorder: asyncio.Task[None] | None = None
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
            await source.done.wait()
            await asyncio.sleep(tail_s)
            if channel.readyState == "open":
                channel.send(self.serializer.serialize(EndFrame()))
            # the server drains its output, then ends its track: record until then
            try:
                await asyncio.wait_for(asyncio.shield(recorder), self.drain_timeout)
            except TimeoutError:
                pass
        finally:
            source.stop()
            for t in [*video_tasks, *([recorder] if recorder is not None else [])]:
                t.cancel()
            await asyncio.gather(
                *video_tasks, *([recorder] if recorder is not None else []), return_exceptions=True
            )
            await pc.close()
        result.audio = np.concatenate(blocks) if blocks else np.zeros(0, np.float32)
        return result
