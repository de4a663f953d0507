"""Mux pictures and audio into a file as they arrive."""

from __future__ import annotations

import os
from typing import Any

from apipeline.frames import AudioRawFrame, CancelFrame, EndFrame, Frame
from apipeline.frames.video import VideoFrame
from apipeline.processors.frame_processor import FrameDirection, FrameProcessor
from apipeline.processors.video.intake import AudioIntake
from apipeline.video.encode import EncoderSettings, MediaWriter


class MediaFileSink(FrameProcessor):
    """Writes :class:`~apipeline.frames.video.VideoFrame` pictures and audio to a media file.

    The file is opened when both formats are known — given here, or taken from the first picture
    (size) and the first audio chunk (rate, channels); audio that comes before the first picture waits
    (at most 2 s of it) — and finished at ``EndFrame`` (also at ``CancelFrame``, so the file is always
    properly closed). Every frame is also passed on. Pictures are stamped with their ``index`` and audio
    with its sample count, so the file's A/V timing is media time.

    Args:
        path: the output file (its extension picks the container).
        width, height: the pictures' size (None: from the first picture).
        sample_rate, channels: the audio's format (None: from the first chunk); other audio is an error.
        video_codec, audio_codec, video_bitrate, audio_bitrate, keyframe_interval, preset, fps: the
            encoder settings (see :class:`~apipeline.video.encode.EncoderSettings`).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        width: int | None = None,
        height: int | None = None,
        sample_rate: int | None = None,
        channels: int | None = None,
        video_codec: str = "h264",
        audio_codec: str = "aac",
        video_bitrate: int = 1_000_000,
        audio_bitrate: int = 96_000,
        keyframe_interval: int = 50,
        preset: str = "veryfast",
        fps: float = 25.0,
        settings: EncoderSettings | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.path = path
        self.settings = settings or EncoderSettings(
            video_codec, audio_codec, video_bitrate, audio_bitrate, keyframe_interval, preset, fps
        )
        self._size = (width, height) if width and height else None
        self._audio = AudioIntake(self.name, (sample_rate, channels or 1) if sample_rate else None)
        self.writer: MediaWriter | None = None
        self.audio_samples = 0
        self.video_frames = 0

    def _open(self) -> MediaWriter | None:
        if self.writer is None and self._size is not None and self._audio.format is not None:
            (w, h), (rate, ch) = self._size, self._audio.format
            self.writer = MediaWriter(
                self.path, width=w, height=h, sample_rate=rate, channels=ch, settings=self.settings
            )
            self._audio.release(self.writer)
        return self.writer

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if direction is FrameDirection.DOWNSTREAM:
            if isinstance(frame, VideoFrame):
                if self._size is None:
                    self._size = frame.size
                w = self._open()
                if w is not None:
                    w.write_video(frame.image, frame.index)  # type: ignore[arg-type]
                    self.video_frames += 1
            elif isinstance(frame, AudioRawFrame):
                if self._audio.format is None:
                    self._audio.format = (frame.sample_rate, frame.num_channels)
                self._audio.take(frame, self._open())
                self.audio_samples += frame.num_frames
            elif isinstance(frame, (EndFrame, CancelFrame)):
                self._close()
        await self.push_frame(frame, direction)

    def _close(self) -> None:
        w, self.writer = self.writer, None
        if w is not None:
            w.close()

    async def cleanup(self) -> None:
        self._close()
        await super().cleanup()
