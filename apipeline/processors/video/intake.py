"""Audio for a muxer that can only open once the first picture says how big the video is."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from apipeline.errors import AudioFormatError, PipelineError
from apipeline.frames import AudioRawFrame
from apipeline.video.encode import MediaWriter

MAX_EARLY_AUDIO_S = 2.0


class AudioIntake:
    """Checks that a stream's audio keeps one format, converts it to float, and holds what comes
    before the muxer opens (at most :data:`MAX_EARLY_AUDIO_S` seconds; more is an error: a stream whose
    pictures never come must not grow without bound)."""

    def __init__(self, owner: str, fmt: tuple[int, int] | None = None) -> None:
        self.owner = owner
        self.format = fmt
        self._early: list[NDArray[np.float32]] = []
        self._early_samples = 0

    def take(self, frame: AudioRawFrame, writer: MediaWriter | None) -> None:
        """Write ``frame`` to ``writer``, or hold it until :meth:`release` when there is none yet."""
        fmt = (frame.sample_rate, frame.num_channels)
        if self.format is None:
            self.format = fmt
        elif fmt != self.format:
            raise AudioFormatError(
                f"{self.owner}: audio at {fmt[0]} Hz/{fmt[1]} ch, the stream was opened for "
                f"{self.format[0]} Hz/{self.format[1]} ch"
            )
        a = frame.audio
        assert isinstance(a, np.ndarray)
        block = a.astype(np.float32) / 32768.0 if a.dtype == np.int16 else a
        if writer is not None:
            writer.write_audio(block)
            return
        self._early_samples += frame.num_frames
        if self._early_samples > MAX_EARLY_AUDIO_S * frame.sample_rate:
            raise PipelineError(f"{self.owner}: {MAX_EARLY_AUDIO_S:g} s of audio and no picture yet")
        self._early.append(np.array(block, dtype=np.float32))

    def release(self, writer: MediaWriter) -> None:
        """Write what was held, in order, now that the muxer is open."""
        for block in self._early:
            writer.write_audio(block)
        self._early.clear()
