"""Live microphone input and speaker output through ``sounddevice`` (PortAudio; optional extra ``live``).

PortAudio calls our callbacks on its own thread. The microphone callback copies each block and hands
it to the event loop with ``call_soon_threadsafe`` into a bounded buffer; when the pipeline falls
behind, the oldest block is dropped and counted (a live source cannot wait). The speaker callback
pulls from a bounded buffer filled by :meth:`SpeakerSink.write_frame`, which waits for room
(backpressure to the pipeline); a callback that finds too little audio plays silence for the rest
and counts an underrun.

``sounddevice`` is imported only when a stream is opened without a ``stream_factory``; tests pass a
factory that builds a fake stream with the same constructor keywords and ``start/stop/close``.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from apipeline.audio.convert import to_float32
from apipeline.audio.format import AudioFormat
from apipeline.errors import ParameterError
from apipeline.frames import AudioRawFrame, DataFrame, EndFrame, Frame, StartFrame
from apipeline.processors.audio.convert import check_audio_frame
from apipeline.processors.frame_processor import monotonic_ns
from apipeline.processors.io import InputProcessor, OutputProcessor

StreamFactory = Callable[..., Any]


def _sounddevice_factory(kind: str) -> StreamFactory:
    try:
        import sounddevice  # optional extra: apipeline[live]
    except (ImportError, OSError) as exc:  # OSError: the package is there but PortAudio is missing
        raise ImportError(
            f"live audio needs the 'sounddevice' package (pip install 'apipeline[live]') and PortAudio: {exc}"
        ) from exc
    return sounddevice.InputStream if kind == "input" else sounddevice.OutputStream  # type: ignore[no-any-return]


@dataclass(frozen=True, slots=True)
class LiveStatistics:
    """Counters of a live stream: blocks moved, blocks dropped (input) or underruns (output)."""

    blocks: int
    dropped: int
    underruns: int
    status_flags: int


class MicrophoneSource(InputProcessor):
    """Capture ``channels`` of float32 audio at ``sample_rate`` in blocks of ``block_ms``.

    ``max_buffered`` blocks wait at most between the audio thread and the pipeline; beyond that the
    oldest is dropped. The source runs until the pipeline ends it (it has no end of its own).
    """

    def __init__(
        self,
        *,
        sample_rate: int = 16000,
        channels: int = 1,
        block_ms: float = 20.0,
        device: int | str | None = None,
        max_buffered: int = 50,
        stream_factory: StreamFactory | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(stop_at_eof=False, name=name)
        self.sample_rate = sample_rate
        self.channels = channels
        self.block_frames = max(1, round(block_ms * sample_rate / 1000))
        self.device = device
        self.output_format = AudioFormat(sample_rate, channels, "float32")
        self.latency = self.block_frames / sample_rate
        self._factory = stream_factory
        self._buffer: deque[tuple[NDArray, int]] = deque(maxlen=max_buffered)
        self._ready = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stream: Any = None
        self._blocks = self._dropped = self._flags = 0

    def statistics(self) -> LiveStatistics:
        return LiveStatistics(self._blocks, self._dropped, 0, self._flags)

    def _callback(self, indata: NDArray, frames: int, time: Any, status: Any) -> None:
        # PortAudio thread: copy (indata is reused) and hand over; never block here.
        block = np.array(indata, dtype=np.float32, copy=True)
        stamp = monotonic_ns()
        flags = int(status) if status else 0
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._deliver, block, stamp, flags)

    def _deliver(self, block: NDArray, stamp: int, flags: int) -> None:
        if len(self._buffer) == self._buffer.maxlen:
            self._dropped += 1  # the deque drops the oldest on append
        self._buffer.append((block, stamp))
        self._flags |= flags
        self._ready.set()

    async def start(self, frame: StartFrame) -> None:
        self._loop = asyncio.get_running_loop()
        factory = self._factory or _sounddevice_factory("input")
        self._stream = factory(
            samplerate=self.sample_rate,
            channels=self.channels,
            dtype="float32",
            blocksize=self.block_frames,
            device=self.device,
            callback=self._callback,
        )
        self._stream.start()
        await super().start(frame)

    async def frames(self) -> AsyncIterator[Frame]:
        while True:
            while not self._buffer:
                self._ready.clear()
                await self._ready.wait()
            block, stamp = self._buffer.popleft()
            self._blocks += 1
            pts = stamp - len(block) * 1_000_000_000 // self.sample_rate  # the block's first sample
            yield AudioRawFrame(
                block[:, 0] if self.channels == 1 else block, self.sample_rate, self.channels, pts=pts
            )

    async def stop(self, frame: EndFrame) -> None:
        await super().stop(frame)
        self._close()

    async def cleanup(self) -> None:
        self._close()
        await super().cleanup()

    def _close(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.stop()
            stream.close()


class SpeakerSink(OutputProcessor):
    """Play float32/int16 audio frames of ``sample_rate`` and ``channels`` on an output device.

    At most ``buffer_ms`` of audio waits for the device (default: two blocks, one being played and one
    arriving; it is latency, so it follows the block rather than a fixed 200 ms); :meth:`write_frame`
    waits for room beyond that, which paces a faster-than-real-time pipeline. At ``EndFrame`` the sink
    waits (bounded by ``drain_timeout``) until the buffered audio has been played.
    """

    def __init__(
        self,
        *,
        sample_rate: int = 16000,
        channels: int = 1,
        block_ms: float = 20.0,
        buffer_ms: float | None = None,
        device: int | str | None = None,
        drain_timeout: float = 5.0,
        stream_factory: StreamFactory | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        self.sample_rate = sample_rate
        self.channels = channels
        self.block_frames = max(1, round(block_ms * sample_rate / 1000))
        if buffer_ms is None:
            buffer_ms = 2.0 * block_ms
        if not buffer_ms > 0:
            raise ParameterError(f"buffer_ms must be positive, got {buffer_ms}")
        self.capacity = max(self.block_frames, round(buffer_ms * sample_rate / 1000))
        self.device = device
        self.drain_timeout = drain_timeout
        self.input_format = AudioFormat(sample_rate, channels)
        self.latency = self.capacity / sample_rate
        self._factory = stream_factory
        self._lock = threading.Lock()
        self._chunks: deque[NDArray] = deque()
        self._buffered = 0
        self._space = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stream: Any = None
        self._blocks = self._underruns = self._flags = 0
        self._primed = False

    def statistics(self) -> LiveStatistics:
        return LiveStatistics(self._blocks, 0, self._underruns, self._flags)

    @property
    def buffered_frames(self) -> int:
        return self._buffered

    def _callback(self, outdata: NDArray, frames: int, time: Any, status: Any) -> None:
        # PortAudio thread: fill outdata from the buffer, silence for whatever is missing.
        filled = 0
        with self._lock:
            while filled < frames and self._chunks:
                chunk = self._chunks[0]
                take = min(frames - filled, len(chunk))
                outdata[filled : filled + take] = chunk[:take]
                filled += take
                if take == len(chunk):
                    self._chunks.popleft()
                else:
                    self._chunks[0] = chunk[take:]
            self._buffered -= filled
            self._blocks += 1
            if filled < frames:
                outdata[filled:] = 0
                if self._primed and self._stream is not None:
                    self._underruns += 1  # silence before the first frame is start-up, not underrun
            self._flags |= int(status) if status else 0
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._space.set)

    async def start(self, frame: StartFrame) -> None:
        await super().start(frame)
        self._loop = asyncio.get_running_loop()
        factory = self._factory or _sounddevice_factory("output")
        self._stream = factory(
            samplerate=self.sample_rate,
            channels=self.channels,
            dtype="float32",
            blocksize=self.block_frames,
            device=self.device,
            callback=self._callback,
        )
        self._stream.start()

    async def write_frame(self, frame: DataFrame) -> None:
        if not isinstance(frame, AudioRawFrame):
            return
        audio = to_float32(check_audio_frame(frame, self.name, self.input_format)).reshape(-1, self.channels)
        while self._buffered + len(audio) > self.capacity and self._buffered > 0:
            self._space.clear()
            await self._space.wait()
        with self._lock:
            self._chunks.append(audio)
            self._buffered += len(audio)
            self._primed = True

    async def stop(self, frame: EndFrame) -> None:
        await super().stop(frame)
        try:
            await asyncio.wait_for(self._drain(), self.drain_timeout)
        except asyncio.TimeoutError:
            await self.push_error(
                f"{self.name}: {self._buffered} frames still unplayed after {self.drain_timeout} s; dropped"
            )
        self._close()

    async def _drain(self) -> None:
        while self._buffered > 0 and self._stream is not None:
            self._space.clear()
            await self._space.wait()

    async def cleanup(self) -> None:
        self._close()
        await super().cleanup()

    def _close(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.stop()
            stream.close()
