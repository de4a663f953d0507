"""WebRTC transport (aiortc): audio over Opus tracks, frames over a data channel.

A browser or a :class:`~apipeline.client.webrtc.WebRTCClient` sends its microphone as an audio track
(Opus over SRTP/UDP, with the browser's echo cancellation and noise suppression in its capture path) and
opens a data channel named ``"frames"`` that carries the same protobuf messages as the WebSocket wire
contract (settings changes in; transcripts, errors and metrics out). The server answers with one
outgoing audio track.

* :class:`WebRTCInputTransport` is the first processor of a session's pipeline: it reads the remote
  track, resamples each decoded Opus frame to the pipeline's rate (mono float32) and pushes
  :class:`~apipeline.frames.AudioRawFrame` s, and decodes data-channel messages into frames. When no
  audio arrives for ``peer_timeout`` seconds the peer is taken as gone (a vanished browser stops sending
  RTP long before ICE consent expires, which aioice only notices after ~30 s) and the input ends.
* :class:`WebRTCOutputTransport` is the last: audio goes to an :class:`AudioOutputTrack`, other data
  frames, errors and metrics to the data channel. An interruption drops the queued audio at once.
* :class:`AudioOutputTrack` is the outgoing track: 20 ms frames at 48 kHz (Opus's own rate, so the
  encoder resamples nothing), paced on the monotonic clock from the first request, silence when nothing
  is queued, a bounded buffer (oldest audio dropped and counted beyond it); a short backlog that stands
  in the queue (audio arriving at the rate it is played keeps it) is shrunk by skipping quiet frames.
* :func:`set_audio_jitter_frames` sizes aiortc's audio receive jitter buffer (1 later frame, not 4).
* :class:`DataChannelChannel` adapts an ``RTCDataChannel`` to :class:`~apipeline.transports.channel.
  MessageChannel`, with a bounded inbox.
* :func:`make_peer_connection` builds an ``RTCPeerConnection`` from ICE server URLs checked up front.
"""

from __future__ import annotations

import asyncio
import fractions
import logging
import re
import sys
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from apipeline.errors import (
    ApipelineError,
    ConfigurationError,
    NotReadyError,
    SerializationError,
    TransportClosed,
)
from apipeline.frames import (
    AudioRawFrame,
    CancelFrame,
    DataFrame,
    EndFrame,
    ErrorFrame,
    Frame,
    MetricsFrame,
    StartInterruptionFrame,
    StopInterruptionFrame,
    SyncFrame,
    SyncNotifyFrame,
    UpdateSettingsFrame,
)
from apipeline.frames.video import VideoFrame
from apipeline.processors.frame_processor import FrameDirection, FrameProcessor
from apipeline.processors.io import InputProcessor
from apipeline.serializers import FrameSerializer, ProtobufFrameSerializer
from apipeline.transports.channel import Message

logger = logging.getLogger("apipeline.transports")

OPUS_RATE = 48000
PTIME_S = 0.020
FRAME_SAMPLES = round(OPUS_RATE * PTIME_S)  # 960
DATA_CHANNEL = "frames"
ICE_SCHEMES = ("stun", "stuns", "turn", "turns")
#: what a peer may send on the data channel besides data frames (audio goes on the track)
CLIENT_CONTROL = (UpdateSettingsFrame, StartInterruptionFrame, StopInterruptionFrame)
SettingsCheck = Callable[[dict[str, Any]], dict[str, Any]]


_ICE_URL = re.compile(
    r"^(?P<scheme>stuns?|turns?):(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)"
    r"(?::(?P<port>[0-9]{1,5}))?(?P<query>\?transport=(?:udp|tcp))?$"
)


def check_ice_servers(urls: Sequence[str]) -> list[str]:
    """Refuse ICE server URLs that are not ``stun:``/``stuns:``/``turn:``/``turns:`` host[:port] (RFC 7064/
    7065; ``?transport=udp|tcp`` on TURN only), with a ConfigurationError naming the URL."""
    out = []
    for url in urls:
        m = _ICE_URL.match(url) if isinstance(url, str) else None
        bad = m is None or (m["port"] is not None and not 0 < int(m["port"]) < 65536)
        if not bad and m is not None and m["query"] and not m["scheme"].startswith("turn"):
            bad = True
        if bad:
            raise ConfigurationError(
                f"ICE server {url!r} is not a URL like stun:host:3478 or turn:host:3478?transport=udp"
            )
        out.append(url)
    return out


def make_peer_connection(
    ice_servers: Sequence[str] = (), *, username: str | None = None, credential: str | None = None
) -> Any:
    """An ``RTCPeerConnection``: host candidates only by default, plus the given STUN/TURN servers."""
    from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection

    urls = check_ice_servers(ice_servers)
    servers = [RTCIceServer(urls=u, username=username, credential=credential) for u in urls]
    return RTCPeerConnection(RTCConfiguration(iceServers=servers))


#: later frames aiortc's audio receiver holds before it releases one to the decoder (see
#: :func:`set_audio_jitter_frames`); aiortc's own is 4 (80 ms at 20 ms frames)
JITTER_FRAMES = 1
_JITTER_ATTR = "_RTCRtpReceiver__jitter_buffer"
_JITTER_CAPACITY = 16  # packets; aiortc's for audio


def check_jitter_frames(frames: int) -> int:
    """``frames`` if it is a jitter depth :func:`set_audio_jitter_frames` takes, else ConfigurationError."""
    if isinstance(frames, bool) or not isinstance(frames, int) or not 1 <= frames < _JITTER_CAPACITY:
        raise ConfigurationError(
            f"jitter_frames must be an int from 1 to {_JITTER_CAPACITY - 1}, got {frames!r}"
        )
    return frames


def set_audio_jitter_frames(pc: Any, frames: int = JITTER_FRAMES) -> int:
    """Make the audio receivers of ``pc`` release each Opus frame after ``frames`` later ones arrived.

    aiortc's audio receiver reorders packets in a jitter buffer that releases a frame only when 4 later
    frames have arrived: 80 ms held on each aiortc receiving end, whatever the network does (measured
    with ``benchmarks/webrtc_latency.py``: a loopback client↔server round trip paid it twice). Its
    release is driven by arrivals, not by a playout clock, so a smaller depth costs no audio under jitter;
    it only tolerates less reordering (a packet later than ``frames`` of its successors is dropped).
    aiortc has no option for it: this replaces the receiver's buffer (a private attribute) before media
    flows, and logs a warning and changes nothing on an aiortc without one. Call it after the
    transceivers exist (``setRemoteDescription`` on an answerer, ``addTrack`` on an offerer).
    Returns the number of receivers changed.

    Raises:
        ConfigurationError: ``frames`` is not an int from 1 to 15.
    """
    check_jitter_frames(frames)
    from aiortc.jitterbuffer import JitterBuffer

    changed = 0
    for transceiver in pc.getTransceivers():
        receiver = transceiver.receiver
        if transceiver.kind != "audio" or receiver is None:
            continue
        if not isinstance(getattr(receiver, _JITTER_ATTR, None), JitterBuffer):
            logger.warning("this aiortc's audio receiver has no jitter buffer to size; left as it is")
            continue
        setattr(receiver, _JITTER_ATTR, JitterBuffer(capacity=_JITTER_CAPACITY, prefetch=frames))
        changed += 1
    return changed


class DataChannelChannel:
    """A :class:`~apipeline.transports.channel.MessageChannel` over an ``RTCDataChannel``.

    Messages are queued as they arrive (at most ``max_pending``; a peer that floods past it is refused:
    the channel reports :class:`~apipeline.errors.TransportClosed` with code 1008). ``recv`` returns
    ``None`` once the channel has closed in an orderly way.
    """

    def __init__(self, channel: Any, *, max_pending: int = 256) -> None:
        self.channel = channel
        self._inbox: asyncio.Queue[Message | None] = asyncio.Queue()
        self._max = max_pending
        self.closed: TransportClosed | None = None
        self._low = asyncio.Event()
        self._low.set()
        channel.bufferedAmountLowThreshold = 256 << 10
        channel.on("message", self._on_message)
        channel.on("close", self._on_close)
        channel.on("bufferedamountlow", self._low.set)

    def _on_close(self) -> None:
        self._inbox.put_nowait(None)
        self._low.set()

    def _on_message(self, message: Message) -> None:
        if self._inbox.qsize() >= self._max:
            self.closed = TransportClosed(1008, f"more than {self._max} data-channel messages queued")
            self._inbox.put_nowait(None)
            return
        self._inbox.put_nowait(message)

    async def recv(self) -> Message | None:
        if self.closed is not None:
            raise self.closed
        message = await self._inbox.get()
        if message is None and self.closed is not None:
            raise self.closed
        return message

    async def wait_closed(self, pc: Any, timeout: float) -> None:
        """Wait (at most ``timeout`` s) until the peer has closed this channel or its connection."""
        deadline = time.monotonic() + timeout
        while self.channel.readyState == "open" and pc.connectionState not in ("closed", "failed"):
            if time.monotonic() >= deadline:
                return
            await asyncio.sleep(0.01)

    async def wait_sent(self, timeout: float) -> None:
        """Wait (at most ``timeout`` s) until what was sent has left the channel's buffer."""
        deadline = time.monotonic() + timeout
        while self.channel.readyState == "open" and self.channel.bufferedAmount > 0:
            if time.monotonic() >= deadline:
                return
            await asyncio.sleep(0.01)

    async def send(self, message: Message) -> None:
        if self.channel.readyState != "open":
            raise TransportClosed(1006, f"data channel is {self.channel.readyState}")
        self.channel.send(message)
        # aiortc buffers without bound: past 1 MiB queued, wait until it falls under 256 KiB
        if self.channel.bufferedAmount > 1 << 20:
            self._low.clear()
            await self._low.wait()


def _audio_track_class() -> type:
    from aiortc.mediastreams import MediaStreamTrack

    return MediaStreamTrack


class AudioOutputTrack:
    """The outgoing audio: ``write`` float32 mono samples at 48 kHz, the peer's ``recv`` takes 20 ms frames.

    Created through :func:`make_output_track` (it subclasses aiortc's ``MediaStreamTrack``, imported
    lazily so that this module loads without aiortc).
    """

    kind = "audio"

    def _setup(self, max_buffer_s: float) -> None:
        self._chunks: deque[NDArray[np.int16]] = deque()
        self._partial = np.zeros(0, np.float32)
        self._max_chunks = max(1, round(max_buffer_s / PTIME_S))
        self._start: float | None = None
        self._pts = 0
        self.dropped_overflow = 0
        self.dropped_interrupt = 0
        self.sent_audio = 0  # frames that carried audio (not silence)
        self.dropped_standing = 0  # quiet frames skipped to shrink a standing queue
        self._low_depth = 1 << 30  # the smallest queue depth seen at a tick in the current window
        self._high_depth = 0  # and the largest
        self._window_ticks = 0
        self._to_skip = 0  # quiet frames still to skip at the head of a standing queue
        self._drained = asyncio.Event()
        self._drained.set()

    def write(self, samples: NDArray[np.float32]) -> None:
        """Queue mono float samples at 48 kHz (whole 20 ms frames; the rest waits for the next write)."""
        x = np.concatenate([self._partial, samples]) if self._partial.size else samples
        n = x.size // FRAME_SAMPLES * FRAME_SAMPLES
        for i in range(0, n, FRAME_SAMPLES):
            if len(self._chunks) >= self._max_chunks:
                self._chunks.popleft()
                self.dropped_overflow += 1
            block = np.clip(x[i : i + FRAME_SAMPLES], -1.0, 1.0)
            self._chunks.append((block * 32767.0).astype(np.int16))
        self._partial = x[n:].copy()
        if self._chunks:
            self._drained.clear()

    def flush(self) -> None:
        """Queue the last partial frame, padded with silence (at the end of the stream)."""
        if self._partial.size:
            pad = np.zeros(FRAME_SAMPLES - self._partial.size, np.float32)
            self.write(pad)

    def clear(self) -> int:
        """Drop everything queued (an interruption); returns the number of 20 ms frames dropped."""
        n = len(self._chunks) + (1 if self._partial.size else 0)
        self._chunks.clear()
        self._partial = np.zeros(0, np.float32)
        self._to_skip = 0
        self.dropped_interrupt += n
        self._drained.set()
        return n

    @property
    def queued_s(self) -> float:
        return len(self._chunks) * PTIME_S

    async def wait_drained(self, timeout: float) -> bool:
        """Wait until everything queued has been sent (at most ``timeout`` s)."""
        try:
            await asyncio.wait_for(self._drained.wait(), timeout)
            return True
        except TimeoutError:
            return False

    #: ticks (20 ms each) over which a queue that never got shorter than 2 frames counts as standing
    STANDING_WINDOW = 50
    #: a queue is standing only if its depth varied by at most this many frames over the window (a
    #: backlog left by a burst or a stall holds steady; a reply a TTS made faster than real time drains)
    STANDING_SPREAD_FRAMES = 3
    #: a frame is quiet (may be skipped) when no sample exceeds this (about -50 dBFS)
    QUIET_PEAK = 100

    def next_chunk(self) -> NDArray[np.int16]:
        """The 20 ms frame to send at this tick (the paced :meth:`recv` calls it once per tick).

        Audio that arrives at the rate it is played keeps whatever backlog it found: a burst at the
        start (the first packets, a stall of the event loop) would stay queued ahead of the clock for
        the whole session, as latency. So when the queue has held at least 2 frames at every tick of the
        last :attr:`STANDING_WINDOW` ticks, and its depth varied by at most :attr:`STANDING_SPREAD_FRAMES`
        (a queue that drained meanwhile is a reply made faster than real time: played whole), quiet frames at
        its head are skipped (counted in :attr:`dropped_standing`) until it is back to at most one
        frame ahead; frames that carry sound are always sent.
        """
        depth = len(self._chunks)
        self._low_depth = min(self._low_depth, depth)
        self._high_depth = max(self._high_depth, depth)
        self._window_ticks += 1
        if self._window_ticks >= self.STANDING_WINDOW:
            if self._low_depth >= 2 and self._high_depth - self._low_depth <= self.STANDING_SPREAD_FRAMES:
                self._to_skip = self._low_depth - 1  # standing: skip that many quiet frames
            self._window_ticks, self._low_depth, self._high_depth = 0, 1 << 30, 0
        while self._to_skip and len(self._chunks) > 1 and self._is_quiet(self._chunks[0]):
            self._chunks.popleft()
            self.dropped_standing += 1
            self._to_skip -= 1
        if len(self._chunks) <= 1:
            self._to_skip = 0
        if self._chunks:
            data = self._chunks.popleft()
            self.sent_audio += 1
        else:
            data = np.zeros(FRAME_SAMPLES, np.int16)
        if not self._chunks:
            self._drained.set()
        return data

    def _is_quiet(self, chunk: NDArray[np.int16]) -> bool:
        return int(np.abs(chunk.astype(np.int32)).max()) <= self.QUIET_PEAK

    async def recv(self) -> Any:
        import av

        if self.readyState != "live":  # type: ignore[attr-defined]
            from aiortc.mediastreams import MediaStreamError

            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        else:
            self._pts += FRAME_SAMPLES
            wait = self._start + self._pts / OPUS_RATE - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
        data = self.next_chunk()
        frame = av.AudioFrame.from_ndarray(data.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = OPUS_RATE
        frame.pts = self._pts
        frame.time_base = fractions.Fraction(1, OPUS_RATE)
        return frame


def make_output_track(max_buffer_s: float = 2.0) -> AudioOutputTrack:
    """An :class:`AudioOutputTrack` that is also an aiortc ``MediaStreamTrack``."""
    base = _audio_track_class()
    cls = type("AudioOutputTrack", (AudioOutputTrack, base), {})
    track: AudioOutputTrack = cls()
    track._setup(max_buffer_s)
    return track


class VideoOutputTrack:
    """The outgoing video: ``write`` RGB pictures; the peer's ``recv`` takes one every ``1/fps`` seconds.

    Starts with the first picture written, then paced on the monotonic clock; when no new picture has
    come the last one is shown again (video freezes, it never blocks the audio); at most
    ``max_pending`` pictures wait, the oldest dropped and counted beyond that. Created through
    :func:`make_video_track`.
    """

    kind = "video"

    def _setup(self, fps: float, max_pending: int) -> None:
        self.fps = fps
        self._pending: deque[NDArray[np.uint8]] = deque()
        self._max = max(1, max_pending)
        self._last: NDArray[np.uint8] | None = None
        self._start: float | None = None
        self._count = 0
        self.dropped = 0
        self.sent_pictures = 0  # new pictures sent (not repeats)
        self._first = asyncio.Event()

    def write(self, image: NDArray[np.uint8]) -> None:
        if len(self._pending) >= self._max:
            self._pending.popleft()
            self.dropped += 1
        self._pending.append(image)
        self._first.set()

    def clear(self) -> int:
        """Drop the waiting pictures (an interruption); returns how many."""
        n = len(self._pending)
        self._pending.clear()
        self.dropped += n
        return n

    async def recv(self) -> Any:
        import av

        if self.readyState != "live":  # type: ignore[attr-defined]
            from aiortc.mediastreams import MediaStreamError

            raise MediaStreamError
        if self._start is None:
            await self._first.wait()  # nothing to show before the first picture (and no size yet)
            self._start = time.monotonic()
        else:
            wait = self._start + self._count / self.fps - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
        if self._pending:
            self._last = self._pending.popleft()
            self.sent_pictures += 1
        image = self._last
        assert image is not None
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        frame.pts = round(self._count * 90000 / self.fps)
        frame.time_base = fractions.Fraction(1, 90000)
        self._count += 1
        return frame


def make_video_track(fps: float = 25.0, max_pending: int = 10) -> VideoOutputTrack:
    """A :class:`VideoOutputTrack` that is also an aiortc ``MediaStreamTrack``."""
    base = _audio_track_class()
    cls = type("VideoOutputTrack", (VideoOutputTrack, base), {})
    track: VideoOutputTrack = cls()
    track._setup(fps, max_pending)
    return track


class _Resampler:
    """Decoded frames (any rate/layout/format) → mono float32 at ``rate``.

    Channels are mixed by their mean, not by libswresample's downmix (which adds them at -3 dB each):
    a mono microphone arrives as Opus decoded to two equal channels, and must come out at its own level,
    not 3 dB louder (and clipped).
    """

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self._r: Any = None
        self._layout: str | None = None

    def __call__(self, frame: Any) -> NDArray[np.float32]:
        import av

        if self._r is None or frame.layout.name != self._layout:
            self._layout = frame.layout.name
            self._r = av.AudioResampler(format="fltp", layout=frame.layout.name, rate=self.rate)
        out = [f.to_ndarray() for f in self._r.resample(frame)]  # (channels, samples) each
        if not out:
            return np.zeros(0, np.float32)
        x = np.concatenate(out, axis=1)
        return (x.mean(axis=0) if x.shape[0] > 1 else x[0]).astype(np.float32, copy=False)


async def _recv_within(track: Any, seconds: float) -> Any:
    if sys.version_info >= (3, 11):
        async with asyncio.timeout(seconds):
            return await track.recv()
    return await asyncio.wait_for(track.recv(), seconds)  # pragma: no cover - Python 3.10


class WebRTCInputTransport(InputProcessor):
    """Remote audio track and data channel in, frames out.

    Args:
        track: the peer's audio track (aiortc ``MediaStreamTrack``).
        channel: the ``"frames"`` data channel as a :class:`DataChannelChannel` (or None).
        sample_rate: the pipeline's rate; Opus audio (48 kHz, mono or stereo) is resampled to it, mono.
        peer_timeout: seconds without audio after which the peer is taken as gone and the input ends.
        connect_timeout: seconds for the first audio to arrive (ICE and DTLS must complete first, which
            takes longer than a gap between packets; no audio by then also ends the input).
        serializer: decodes data-channel messages (protobuf by default).
        check_settings: checks each ``UpdateSettingsFrame`` from the peer (the server's session schema);
            a refused one is dropped and answered with a non-fatal ``ErrorFrame``.

    On the data channel the peer may send data frames (not audio: that is the track's),
    ``UpdateSettingsFrame``, interruption frames, ``EndFrame``/``CancelFrame`` (the end), and
    ``SyncFrame``, answered at once on the channel with a ``SyncNotifyFrame`` carrying the same
    ``client_pts`` (a round-trip probe that does not go through the pipeline). Anything else is dropped
    with a non-fatal ``ErrorFrame`` back.
    """

    def __init__(
        self,
        track: Any,
        channel: DataChannelChannel | None = None,
        *,
        sample_rate: int = 48000,
        peer_timeout: float = 5.0,
        connect_timeout: float = 10.0,
        serializer: FrameSerializer | None = None,
        check_settings: SettingsCheck | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        if not peer_timeout > 0 or not connect_timeout > 0:
            raise ConfigurationError(
                f"peer_timeout and connect_timeout must be positive, got {peer_timeout}, {connect_timeout}"
            )
        self.connect_timeout = connect_timeout
        self.track = track
        self.channel = channel
        self.sample_rate = sample_rate
        self.peer_timeout = peer_timeout
        self.serializer = serializer or ProtobufFrameSerializer()
        self.check_settings = check_settings
        self.audio_s = 0.0
        self.ended_by: str | None = None
        self._channel_ready = asyncio.Event()
        if channel is not None:
            self._channel_ready.set()

    def set_channel(self, channel: DataChannelChannel) -> None:
        """Attach the data channel (it opens after the media: the peer creates it once connected)."""
        self.channel = channel
        self._channel_ready.set()

    async def frames(self) -> AsyncIterator[Frame]:
        queue: asyncio.Queue[Frame | BaseException | None] = asyncio.Queue(maxsize=64)
        pumps = [
            asyncio.create_task(self._pump(self._audio, queue), name=f"{self.name}.audio"),
            asyncio.create_task(self._pump(self._messages, queue), name=f"{self.name}.data"),
        ]
        try:
            while True:
                item = await queue.get()
                if item is None:
                    return
                if isinstance(item, BaseException):
                    raise item
                if isinstance(item, AudioRawFrame):
                    self.audio_s += item.duration  # what the pipeline got (not what was left queued)
                yield item
        finally:
            for p in pumps:
                p.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)

    @staticmethod
    async def _pump(
        body: Callable[[asyncio.Queue[Frame | BaseException | None]], Awaitable[None]],
        queue: asyncio.Queue[Frame | BaseException | None],
    ) -> None:
        """Run a reader; whatever ends it (but cancellation) reaches the merged stream."""
        try:
            await body(queue)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            await queue.put(exc)

    async def _audio(self, queue: asyncio.Queue[Frame | BaseException | None]) -> None:
        from aiortc.mediastreams import MediaStreamError

        resample = _Resampler(self.sample_rate)
        timeout = self.connect_timeout
        while True:
            try:
                # asyncio.timeout, not wait_for: 3.11's wait_for can hang when a cancel meets the
                # inner task's completion (seen here on the gather in frames()' cleanup)
                frame = await _recv_within(self.track, timeout)
            except TimeoutError:
                self.ended_by = (
                    f"no audio from the peer for {self.peer_timeout:g} s"
                    if timeout == self.peer_timeout and self.audio_s
                    else f"no audio from the peer within {timeout:g} s of the answer"
                )
                logger.info("%s: %s; ending the session", self.name, self.ended_by)
                await queue.put(None)
                return
            except MediaStreamError:
                self.ended_by = "the peer's audio track ended"
                await queue.put(None)
                return
            timeout = self.peer_timeout
            samples = resample(frame)
            if samples.size:
                await queue.put(AudioRawFrame(samples, self.sample_rate, 1))

    async def _messages(self, queue: asyncio.Queue[Frame | BaseException | None]) -> None:
        await self._channel_ready.wait()
        assert self.channel is not None
        while True:
            try:
                message = await self.channel.recv()
            except TransportClosed as exc:
                await queue.put(exc)
                return
            if message is None:
                return  # the data channel closed; audio may go on
            try:
                frame = self.serializer.deserialize(message)
            except SerializationError as exc:
                await queue.put(ErrorFrame(f"{self.name}: undecodable data-channel message: {exc}"))
                continue
            if isinstance(frame, (EndFrame, CancelFrame)):
                self.ended_by = f"the peer sent {type(frame).__name__}"
                await queue.put(None)
                return
            if isinstance(frame, SyncFrame):
                await self._echo(frame)
                continue
            refused = self._refusal(frame)
            await queue.put(frame if refused is None else ErrorFrame(f"{self.name}: {refused}"))

    def _refusal(self, frame: Frame) -> str | None:
        """Why a peer's data-channel frame is not taken (``None``: push it on); checks settings."""
        if isinstance(frame, AudioRawFrame):
            return "AudioRawFrame refused on the data channel: audio goes on the audio track"
        if isinstance(frame, UpdateSettingsFrame) and self.check_settings is not None:
            try:
                frame.settings = self.check_settings(dict(frame.settings))
            except (ApipelineError, ValueError, TypeError) as exc:
                return f"UpdateSettingsFrame refused, nothing changed: {exc}"
            return None
        if isinstance(frame, (DataFrame, *CLIENT_CONTROL)):
            return None
        return (
            f"{type(frame).__name__} is not accepted from a peer (send data frames, UpdateSettingsFrame, "
            "interruptions, SyncFrame, EndFrame or CancelFrame)"
        )

    async def _echo(self, frame: SyncFrame) -> None:
        """Answer a round-trip probe at once, outside the pipeline."""
        answer = SyncNotifyFrame()
        answer.client_pts = frame.client_pts if frame.client_pts is not None else frame.pts
        if self.channel is not None:
            try:
                await self.channel.send(self.serializer.serialize(answer))
            except (TransportClosed, SerializationError) as exc:
                logger.info("%s: sync answer not sent: %s", self.name, exc)


class WebRTCOutputTransport(FrameProcessor):
    """Frames in, the outgoing audio track and the data channel out.

    Audio is resampled to 48 kHz mono and queued on ``track``; an interruption drops the queued audio
    at once. Other data frames, errors and metrics are serialized onto the data channel while it is
    open. ``EndFrame`` waits (at most ``drain_timeout``) until the queued audio has been sent.
    """

    def __init__(
        self,
        track: AudioOutputTrack,
        channel: DataChannelChannel | None = None,
        *,
        serializer: FrameSerializer | None = None,
        drain_timeout: float = 5.0,
        video_track: VideoOutputTrack | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        self.track = track
        self.video_track = video_track
        self.channel = channel
        self.serializer = serializer or ProtobufFrameSerializer()
        self.drain_timeout = drain_timeout
        self._resampler: Any = None
        self._rate: int | None = None
        self.sent_messages = 0
        self.audio_s = 0.0  # audio the pipeline made, queued on the track
        self.sent_end = False  # the final EndFrame went to the data channel

    def _to_48k(self, frame: AudioRawFrame) -> NDArray[np.float32]:
        a = frame.audio
        assert isinstance(a, np.ndarray)
        x = a.astype(np.float32) / 32768.0 if a.dtype == np.int16 else a
        if x.ndim == 2:
            x = x.mean(axis=1)
        if frame.sample_rate == OPUS_RATE:
            return np.ascontiguousarray(x, np.float32)
        if self._rate != frame.sample_rate:
            import soxr

            self._rate = frame.sample_rate
            self._resampler = soxr.ResampleStream(frame.sample_rate, OPUS_RATE, 1, dtype="float32")
        return self._resampler.resample_chunk(np.ascontiguousarray(x, np.float32))

    async def _send(self, frame: Frame) -> None:
        channel = self.channel
        if channel is None or channel.channel.readyState != "open":
            return
        try:
            await channel.send(self.serializer.serialize(frame))
            self.sent_messages += 1
        except (TransportClosed, SerializationError) as exc:
            logger.info("%s: %s not sent on the data channel: %s", self.name, frame.name, exc)

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if direction is FrameDirection.DOWNSTREAM:
            if isinstance(frame, AudioRawFrame):
                self.audio_s += frame.duration
                self.track.write(self._to_48k(frame))
                return
            if isinstance(frame, VideoFrame) and self.video_track is not None:
                self.video_track.write(frame.image)  # type: ignore[arg-type]
                return
            if isinstance(frame, StartInterruptionFrame):
                self.track.clear()
                if self.video_track is not None:
                    self.video_track.clear()
            elif isinstance(frame, EndFrame):
                if self._resampler is not None:
                    self.track.write(self._resampler.resample_chunk(np.zeros(0, np.float32), last=True))
                self.track.flush()
                await self.track.wait_drained(self.drain_timeout)
                await self._send(frame)  # the peer's cue that everything has been played
                self.sent_end = True
            elif isinstance(frame, (DataFrame, ErrorFrame, MetricsFrame)):
                await self._send(frame)
        elif isinstance(frame, ErrorFrame):
            await self._send(frame)
        await self.push_frame(frame, direction)


class WebRTCSession:
    """One peer: its connection, tracks, data channel and the pipeline between them.

    With ``video`` the answer also carries a video track (:class:`VideoOutputTrack`) that shows the
    :class:`~apipeline.frames.video.VideoFrame` s the pipeline makes (a talking head, say).

    :meth:`accept` takes the peer's SDP offer and returns the answer; :meth:`run` then runs the
    pipeline ``[WebRTCInputTransport, *processors, WebRTCOutputTransport]`` until the input ends (the
    peer's track ends, it sends ``EndFrame`` or falls silent for ``peer_timeout``), drains the output
    (the peer gets ``EndFrame`` on the data channel once the audio has been sent) and closes the
    connection. :meth:`shutdown` ends it early (a fatal ``ErrorFrame`` to the peer first). Nothing keeps
    running after :meth:`run` returns or :meth:`close`.

    ``check_settings`` checks the peer's ``UpdateSettingsFrame`` s (see :class:`WebRTCInputTransport`);
    non-fatal pipeline errors are forwarded to the peer on the data channel.
    """

    def __init__(
        self,
        processors: Sequence[FrameProcessor],
        *,
        sample_rate: int = 48000,
        ice_servers: Sequence[str] = (),
        ice_username: str | None = None,
        ice_credential: str | None = None,
        peer_timeout: float = 5.0,
        connect_timeout: float = 10.0,
        max_output_s: float = 2.0,
        params: Any = None,
        video: bool = False,
        video_fps: float = 25.0,
        check_settings: SettingsCheck | None = None,
        jitter_frames: int = JITTER_FRAMES,
        name: str = "webrtc",
    ) -> None:
        check_ice_servers(ice_servers)
        self.jitter_frames = check_jitter_frames(jitter_frames)
        self.processors = list(processors)
        self.sample_rate = sample_rate
        self.ice_servers = list(ice_servers)
        self.ice_username = ice_username
        self.ice_credential = ice_credential
        self.peer_timeout = peer_timeout
        self.connect_timeout = connect_timeout
        self.params = params
        self.check_settings = check_settings
        self.name = name
        self.pc: Any = None
        self.output_track = make_output_track(max_output_s)
        self.video_track = make_video_track(video_fps) if video else None
        self.input: WebRTCInputTransport | None = None
        self.output: WebRTCOutputTransport | None = None
        self.task: Any = None
        #: why the session ended early (shutdown), None otherwise
        self.shutdown_reason: str | None = None
        #: after the final ``EndFrame``, how long :meth:`close` waits for a peer that asked to end (it sent
        #: ``EndFrame``) to close its side, so that the close cannot overtake that last message
        self.end_wait = 2.0

    async def accept(self, offer_sdp: str) -> str:
        """Apply the peer's offer and return the SDP answer.

        Raises:
            SessionRefused: the offer is not SDP or has no audio (code 400: a bad request).
        """
        from aiortc import RTCSessionDescription

        from apipeline.errors import SessionRefused

        if not isinstance(offer_sdp, str) or "m=audio" not in offer_sdp:
            raise SessionRefused(400, "the offer is not an SDP offer with an audio section")
        self.pc = pc = make_peer_connection(
            self.ice_servers, username=self.ice_username, credential=self.ice_credential
        )
        remote: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        @pc.on("track")
        def _on_track(track: Any) -> None:
            if track.kind == "audio" and not remote.done():
                remote.set_result(track)

        @pc.on("datachannel")
        def _on_channel(channel: Any) -> None:
            if channel.label == DATA_CHANNEL and self.input is not None and self.output is not None:
                ch = DataChannelChannel(channel)
                self.input.set_channel(ch)
                self.output.channel = ch

        pc.addTrack(self.output_track)
        if self.video_track is not None:
            pc.addTrack(self.video_track)
        try:
            try:
                await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
                set_audio_jitter_frames(pc, self.jitter_frames)
                answer = await pc.createAnswer()
            except Exception as exc:
                # aiortc's parser fails with asserts, IndexErrors, ValueErrors..., and an offer it
                # parsed may still be one it cannot answer (a section without its mid, say)
                detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                logger.info("%s: offer refused", self.name, exc_info=True)
                raise SessionRefused(400, f"the SDP offer could not be applied ({detail})") from None
            await pc.setLocalDescription(answer)
        except BaseException:
            await self.close()
            raise
        if not remote.done():
            await self.close()
            raise SessionRefused(400, "the offer carries no audio track to receive")
        self.input = WebRTCInputTransport(
            remote.result(),
            sample_rate=self.sample_rate,
            peer_timeout=self.peer_timeout,
            connect_timeout=self.connect_timeout,
            check_settings=self.check_settings,
            name=f"{self.name}.input",
        )
        self.output = WebRTCOutputTransport(
            self.output_track, video_track=self.video_track, name=f"{self.name}.output"
        )
        return str(pc.localDescription.sdp)

    async def run(self) -> Any:
        """Run the session's pipeline to its end; returns the finished ``PipelineTask``."""
        from apipeline.pipeline import Pipeline, PipelineParams, PipelineTask

        if self.input is None or self.output is None:
            raise NotReadyError("accept() the offer before run()")
        output = self.output
        self.task = task = PipelineTask(
            Pipeline([self.input, *self.processors, output]),
            self.params or PipelineParams(allow_interruptions=True),
            name=self.name,
        )

        @task.event_handler("on_pipeline_error")
        async def _forward(_: Any, error: ErrorFrame) -> None:
            if not error.fatal:
                await output._send(ErrorFrame(error.error, processor=error.processor))

        if self.shutdown_reason is not None:  # shut down between accept() and run(): nothing to run
            await self.close()
            return task
        try:
            await task.run()
        finally:
            await self.close()
        return task

    async def shutdown(self, reason: str = "server shutting down") -> None:
        """End the session now: a fatal ``ErrorFrame`` to the peer (bounded wait), then cancel it."""
        if self.shutdown_reason is not None:
            return
        self.shutdown_reason = reason
        if self.output is not None:
            try:
                error = ErrorFrame(reason, fatal=True, processor="server")
                await asyncio.wait_for(self.output._send(error), 1.0)
            except (asyncio.TimeoutError, TimeoutError):
                pass
        if self.task is not None:
            await self.task.cancel(reason)
        else:
            await self.close()

    def _peer_awaits_end(self) -> bool:
        return (
            self.shutdown_reason is None
            and self.output is not None
            and self.output.sent_end
            and self.input is not None
            and (self.input.ended_by or "").startswith("the peer sent")
        )

    async def close(self) -> None:
        """Stop the tracks and close the connection (idempotent).

        What was last queued on the data channel (the final ``EndFrame`` or error) is given up to
        ``0.5`` s to leave before the connection closes under it; when the peer asked to end, up to
        :attr:`end_wait` more for the peer to close its side once our ``EndFrame`` has arrived.
        """
        self.output_track.stop()  # type: ignore[attr-defined]
        if self.video_track is not None:
            self.video_track.stop()  # type: ignore[attr-defined]
        pc, self.pc = self.pc, None
        if pc is None:
            return
        channel = self.output.channel if self.output is not None else None
        if channel is not None:
            await channel.wait_sent(0.5)
            if self._peer_awaits_end():
                # "sent" above only means handed to SCTP: closing now can abort the association before
                # the peer has our EndFrame. A peer that asked to end (its EndFrame) closes its side
                # as soon as ours arrives; wait for that, bounded.
                await channel.wait_closed(pc, self.end_wait)
        try:
            await pc.close()
        except Exception:  # aiortc cannot always close what a refused offer half built
            logger.warning("%s: closing the peer connection failed", self.name, exc_info=True)
