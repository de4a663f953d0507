"""Audio-driven talking head: audio passes through at once, pictures follow one frame period later."""

from __future__ import annotations

from typing import Any

import numpy as np

from apipeline.errors import AudioFormatError
from apipeline.frames import AudioRawFrame, Frame, StartInterruptionFrame
from apipeline.frames.video import VideoFrame
from apipeline.processors.frame_processor import FrameDirection, FrameProcessor
from apipeline.video.mouth import MouthDriver
from apipeline.video.renderer import TalkingHeadRenderer

_NS = 1_000_000_000


class TalkingHeadProcessor(FrameProcessor):
    """Turns an audio stream into the same audio plus a talking-head video stream.

    Each :class:`~apipeline.frames.AudioRawFrame` is pushed on first (audio never waits for pictures),
    then every video frame whose period is now complete is rendered and pushed as a
    :class:`~apipeline.frames.video.VideoFrame`. A picture's ``pts`` is the ``pts`` of the audio chunk
    holding the start of its period plus that start's offset in the chunk, so a pacing output can show
    it when that audio plays; ``media_ns`` is ``index / fps``.

    Audio may be int16 or float32, mono or multi-channel (mixed to mono for the mouth), at any rate of
    8 kHz and up; the rate is fixed by the first chunk and a change is an error.

    Args:
        renderer: draws a picture for a mouth shape (see :mod:`apipeline.video.renderer`).
        fps: pictures per second.
    """

    def __init__(self, renderer: TalkingHeadRenderer, *, fps: float = 25.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.renderer = renderer
        self.fps = float(fps)
        self.latency = 1.0 / self.fps  # a picture waits for its whole frame period of audio
        self._driver: MouthDriver | None = None
        self._samples = 0  # samples seen so far (stream position of the next chunk)
        self.frames_rendered = 0

    @property
    def sample_rate(self) -> int | None:
        return None if self._driver is None else self._driver.sample_rate

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, AudioRawFrame) and direction is FrameDirection.DOWNSTREAM:
            await self.push_frame(frame, direction)
            await self._render(frame)
            return
        if isinstance(frame, StartInterruptionFrame):
            self.renderer.reset()
        await self.push_frame(frame, direction)

    async def _render(self, frame: AudioRawFrame) -> None:
        audio = frame.audio
        assert isinstance(audio, np.ndarray)
        if self._driver is None:
            self._driver = MouthDriver(frame.sample_rate, self.fps)
        elif frame.sample_rate != self._driver.sample_rate:
            raise AudioFormatError(
                f"{self.name}: audio changed from {self._driver.sample_rate} Hz to {frame.sample_rate} Hz "
                "mid-stream"
            )
        x = audio.astype(np.float32) / 32768.0 if audio.dtype == np.int16 else audio
        if x.ndim == 2:
            x = x.mean(axis=1)
        sr = frame.sample_rate
        feed = getattr(self.renderer, "feed", None)
        if feed is not None:  # renderers that read the audio themselves (the neural path's mel)
            feed(x, sr)
        start = self._samples
        self._samples += x.shape[0]
        for shape in self._driver.push(x):
            image = self.renderer.render(shape)
            first = round(shape.index * sr / self.fps)  # the frame period's first sample
            pts = None if frame.pts is None else frame.pts + (first - start) * _NS // sr
            media_ns = round(shape.index * _NS / self.fps)
            self.frames_rendered += 1
            await self.push_frame(
                VideoFrame(image, index=shape.index, fps=self.fps, media_ns=media_ns, pts=pts)
            )
