"""Audio in and out of a pipeline: files and memory.

Sources cut their audio into :class:`~apipeline.frames.AudioRawFrame` blocks of ``block_ms`` and push
them either as fast as the pipeline takes them or paced in real time on the monotonic clock. Every
frame's ``pts`` is its start on that clock: the run's start time plus the audio already emitted, so
``pts`` is the same in both modes for a given start. At the end of the audio the source asks the task
to stop (``StopTaskFrame``), which drains everything already produced.

Sinks write (or collect) every audio frame; a sink fixes its format on the first frame it gets and
refuses frames of another rate or channel count (it cannot convert), keeping what it already has.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from apipeline.audio.convert import as_2d, to_float32
from apipeline.audio.format import AudioFormat
from apipeline.audio.io import AudioFileReader, AudioFileWriter, PathLike
from apipeline.errors import AudioFormatError, ParameterError
from apipeline.frames import AudioRawFrame, DataFrame, EndFrame, Frame
from apipeline.processors.audio.convert import check_audio_frame
from apipeline.processors.frame_processor import monotonic_ns
from apipeline.processors.io import InputProcessor, OutputProcessor

_NS = 1_000_000_000


class _BlockSource(InputProcessor):
    """Shared pacing and framing of the two sources; subclasses provide :meth:`_blocks`."""

    def __init__(
        self, sample_rate: int, channels: int, dtype: str, block_ms: float, realtime: bool, name: str | None
    ) -> None:
        super().__init__(name=name)
        if block_ms <= 0:
            raise ParameterError(f"block_ms must be positive, got {block_ms}")
        self.sample_rate = sample_rate
        self.channels = channels
        self.block_frames = max(1, round(block_ms * sample_rate / 1000))
        self.realtime = realtime
        self.frames_emitted = 0
        self.output_format = AudioFormat(sample_rate, channels, dtype)

    def _blocks(self) -> Iterator[NDArray]:
        raise NotImplementedError

    async def frames(self) -> AsyncIterator[Frame]:
        t0 = monotonic_ns()
        for block in self._blocks():
            pts = t0 + self.frames_emitted * _NS // self.sample_rate
            if self.realtime:
                delay = (pts - monotonic_ns()) / _NS
                if delay > 0:
                    await asyncio.sleep(delay)
            audio = block[:, 0] if self.channels == 1 else block
            self.frames_emitted += len(block)
            yield AudioRawFrame(np.ascontiguousarray(audio), self.sample_rate, self.channels, pts=pts)


class AudioFileSource(_BlockSource):
    """Read an audio file block by block (streamed from disk) into ``AudioRawFrame``s.

    The file is opened and checked at construction (missing/empty/non-audio files raise
    AudioFileError there); a file that breaks off mid-stream yields an ``ErrorFrame`` after the
    frames read so far. ``dtype`` is "float32" or "int16".
    """

    def __init__(
        self,
        path: PathLike,
        block_ms: float = 20.0,
        realtime: bool = False,
        *,
        dtype: str = "float32",
        name: str | None = None,
    ) -> None:
        if dtype not in ("float32", "int16"):
            raise ParameterError(f"dtype must be 'float32' or 'int16', got {dtype!r}")
        probe = AudioFileReader(path, 1, dtype=dtype)
        rate, channels = probe.sample_rate, probe.channels
        probe.close()
        super().__init__(rate, channels, dtype, block_ms, realtime, name)
        self.path = Path(path)
        self.dtype = dtype

    def _blocks(self) -> Iterator[NDArray]:
        with AudioFileReader(self.path, self.block_frames, dtype=self.dtype) as reader:
            yield from reader


class MemoryAudioSource(_BlockSource):
    """Emit an in-memory array ((frames,) or (frames, channels), int16 or float) as audio frames."""

    def __init__(
        self,
        audio: NDArray,
        sample_rate: int,
        block_ms: float = 20.0,
        realtime: bool = False,
        *,
        name: str | None = None,
    ) -> None:
        a = as_2d(audio)
        if a.dtype != np.int16:
            a = to_float32(a)
        if len(a) == 0:
            raise AudioFormatError("MemoryAudioSource: empty audio")
        super().__init__(sample_rate, a.shape[1], str(a.dtype), block_ms, realtime, name)
        self._audio = a

    def _blocks(self) -> Iterator[NDArray]:
        for start in range(0, len(self._audio), self.block_frames):
            yield self._audio[start : start + self.block_frames]


class _AudioSink(OutputProcessor):
    def __init__(
        self, sample_rate: int | None, channels: int | None, passthrough: bool, name: str | None
    ) -> None:
        super().__init__(passthrough=passthrough, name=name)
        self.sample_rate = sample_rate
        self.channels = channels
        self.input_format = AudioFormat(sample_rate, channels)

    def _accept(self, frame: AudioRawFrame) -> NDArray:
        audio = check_audio_frame(frame, self.name, AudioFormat(self.sample_rate, self.channels))
        self.sample_rate, self.channels = frame.sample_rate, frame.num_channels
        return audio


class AudioFileSink(_AudioSink):
    """Write every audio frame to ``path`` as it arrives; the file is valid after each flush.

    The writer opens on the first frame (its rate and channel count fix the file's format unless
    given here) and closes at ``EndFrame``/cleanup. Between, the header is rewritten every
    ``flush_every_s`` seconds of audio, so an interrupted run keeps a playable file.
    """

    def __init__(
        self,
        path: PathLike,
        *,
        sample_rate: int | None = None,
        channels: int | None = None,
        subtype: str = "PCM_16",
        flush_every_s: float | None = 1.0,
        passthrough: bool = False,
        name: str | None = None,
    ) -> None:
        super().__init__(sample_rate, channels, passthrough, name)
        self.path = Path(path)
        self.subtype = subtype
        self.flush_every_s = flush_every_s
        self._writer: AudioFileWriter | None = None

    @property
    def frames_written(self) -> int:
        return 0 if self._writer is None else self._writer.frames_written

    async def write_frame(self, frame: DataFrame) -> None:
        if not isinstance(frame, AudioRawFrame):
            return
        audio = self._accept(frame)
        if self._writer is None:
            self._writer = AudioFileWriter(
                self.path,
                frame.sample_rate,
                frame.num_channels,
                subtype=self.subtype,
                flush_every_s=self.flush_every_s,
            )
        self._writer.write(audio)

    async def stop(self, frame: EndFrame) -> None:
        await super().stop(frame)
        self._close()

    async def cleanup(self) -> None:
        self._close()
        await super().cleanup()

    def _close(self) -> None:
        if self._writer is not None:
            self._writer.close()


class MemoryAudioSink(_AudioSink):
    """Collect every audio frame; :attr:`audio` is everything received, concatenated."""

    def __init__(
        self,
        *,
        sample_rate: int | None = None,
        channels: int | None = None,
        passthrough: bool = False,
        name: str | None = None,
    ) -> None:
        super().__init__(sample_rate, channels, passthrough, name)
        self.chunks: list[NDArray] = []

    async def write_frame(self, frame: DataFrame) -> None:
        if isinstance(frame, AudioRawFrame):
            self.chunks.append(self._accept(frame))

    @property
    def audio(self) -> NDArray:
        """All samples received: (frames,) for mono, (frames, channels) otherwise; empty before any."""
        if not self.chunks:
            return np.zeros(0, dtype=np.float32)
        if len({c.dtype for c in self.chunks}) > 1:
            return np.concatenate([to_float32(c) for c in self.chunks])
        return np.concatenate(self.chunks)
