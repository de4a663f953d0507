"""Frame-level audio checks and the two format converters: channel mixing and sample type.

:func:`check_audio_frame` is the one gate every audio processor puts in front of its core: an empty
frame, NaN/Inf samples, or a sample rate/channel count the processor cannot take raise
:class:`~apipeline.errors.AudioFormatError` before any state changes, so the framework reports an
``ErrorFrame`` and the stream goes on unharmed with the next frame.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from apipeline.audio.convert import check_finite, mix_channels, to_float32, to_int16
from apipeline.audio.format import SAMPLE_TYPES, AudioFormat
from apipeline.errors import AudioFormatError, ParameterError
from apipeline.frames import AudioRawFrame, Frame
from apipeline.processors.frame_processor import FrameDirection, FrameProcessor


def check_audio_frame(frame: AudioRawFrame, where: str, expected: AudioFormat | None = None) -> NDArray:
    """Return the frame's samples after checking they are non-empty, finite and in ``expected``."""
    audio = frame.audio
    assert isinstance(audio, np.ndarray)  # AudioRawFrame turns bytes into an array at construction
    if audio.shape[0] == 0:
        raise AudioFormatError(f"{where}: empty audio frame ({frame.name}, 0 samples)")
    if expected is not None:
        if expected.sample_rate is not None and frame.sample_rate != expected.sample_rate:
            raise AudioFormatError(
                f"{where}: expects {expected.sample_rate} Hz audio, "
                f"got {frame.sample_rate} Hz in {frame.name}"
            )
        if expected.channels is not None and frame.num_channels != expected.channels:
            raise AudioFormatError(
                f"{where}: expects {expected.channels} channel(s), got {frame.num_channels} in {frame.name}"
            )
        if expected.dtype is not None and audio.dtype != np.dtype(expected.dtype):
            raise AudioFormatError(
                f"{where}: expects {expected.dtype} samples, got {audio.dtype} in {frame.name}"
            )
    check_finite(audio, f"{where} ({frame.name})")
    return audio


def derived_frame(frame: AudioRawFrame, audio: NDArray, sample_rate: int | None = None) -> AudioRawFrame:
    """A new audio frame carrying ``audio`` with the timing and metadata of ``frame``."""
    channels = 1 if audio.ndim == 1 else audio.shape[1]
    return AudioRawFrame(
        audio,
        sample_rate or frame.sample_rate,
        channels,
        pts=frame.pts,
        metadata=frame.metadata,
    )


class ChannelMixer(FrameProcessor):
    """Mix every audio frame to ``channels``: N -> 1 by averaging, 1 -> N by duplicating.

    Output frames are 1-D for mono and ``(frames, channels)`` otherwise; frames already in the target
    layout pass unchanged. Other mixes (2 -> 6) raise AudioFormatError.
    """

    def __init__(self, channels: int, *, name: str | None = None) -> None:
        super().__init__(name=name)
        if channels <= 0:
            raise ParameterError(f"channels must be positive, got {channels}")
        self.channels = channels
        self.output_format = AudioFormat(channels=channels)

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, AudioRawFrame) and direction is FrameDirection.DOWNSTREAM:
            audio = check_audio_frame(frame, self.name)
            if frame.num_channels != self.channels:
                mixed = mix_channels(audio, self.channels)
                frame = derived_frame(frame, mixed[:, 0] if self.channels == 1 else mixed)
        await self.push_frame(frame, direction)


class SampleTypeConverter(FrameProcessor):
    """Convert every audio frame's samples to ``dtype`` ("float32" or "int16"; floats clip on the way)."""

    def __init__(self, dtype: str, *, name: str | None = None) -> None:
        super().__init__(name=name)
        if dtype not in SAMPLE_TYPES:
            raise ParameterError(f"dtype must be one of {SAMPLE_TYPES}, got {dtype!r}")
        self.dtype = dtype
        self.output_format = AudioFormat(dtype=dtype)

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, AudioRawFrame) and direction is FrameDirection.DOWNSTREAM:
            audio = check_audio_frame(frame, self.name)
            if audio.dtype != np.dtype(self.dtype):
                frame = derived_frame(
                    frame, to_float32(audio) if self.dtype == "float32" else to_int16(audio)
                )
        await self.push_frame(frame, direction)
