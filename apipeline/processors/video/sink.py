"""Mux pictures and audio into a file as they arrive."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from apipeline.errors import AudioFormatError
from apipeline.frames import AudioRawFrame, CancelFrame, EndFrame, Frame
from apipeline.frames.video import VideoFrame
from apipeline.processors.frame_processor import FrameDirection, FrameProcessor
from apipeline.video.encode import EncoderSettings, MediaWriter


class MediaFileSink(FrameProcessor):
    """Writes :class:`~apipeline.frames.video.VideoFrame` pictures and audio to a media file.

    The file is opened at ``StartFrame`` and finished at ``EndFrame`` (also at ``CancelFrame``, so the
    file is always properly closed); every frame is also passed on. Pictures are stamped with their
    ``index`` and audio with its sample count, so the file's A/V timing is media time.

    Args:
        path: the output file (its extension picks the container).
        width, height: the pictures' size.
        sample_rate, channels: the audio's format; other audio is an error.
        settings: codecs, bitrates, keyframe interval, preset, fps.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        width: int,
        height: int,
        sample_rate: int,
        channels: int = 1,
        settings: EncoderSettings | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.path = path
        self._args = dict(width=width, height=height, sample_rate=sample_rate, channels=channels)
        self.settings = settings or EncoderSettings()
        self.writer: MediaWriter | None = None
        self.audio_samples = 0

    async def start(self, frame: Any) -> None:
        self.writer = MediaWriter(self.path, settings=self.settings, **self._args)  # type: ignore[arg-type]

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        w = self.writer
        if w is not None and direction is FrameDirection.DOWNSTREAM:
            if isinstance(frame, VideoFrame):
                w.write_video(frame.image, frame.index)  # type: ignore[arg-type]
            elif isinstance(frame, AudioRawFrame):
                if frame.sample_rate != w.sample_rate or frame.num_channels != w.channels:
                    raise AudioFormatError(
                        f"{self.name}: audio at {frame.sample_rate} Hz/{frame.num_channels} ch, the file "
                        f"was opened for {w.sample_rate} Hz/{w.channels} ch"
                    )
                a = frame.audio
                assert isinstance(a, np.ndarray)
                w.write_audio(a.astype(np.float32) / 32768.0 if a.dtype == np.int16 else a)
                self.audio_samples += frame.num_frames
            elif isinstance(frame, (EndFrame, CancelFrame)):
                self.writer = None
                w.close()
        await self.push_frame(frame, direction)

    async def cleanup(self) -> None:
        w, self.writer = self.writer, None
        if w is not None:
            w.close()
        await super().cleanup()
