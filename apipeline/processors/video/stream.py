"""Pictures and audio out as fragmented MP4, chunk by chunk, over any frame transport."""

from __future__ import annotations

from typing import Any

from apipeline.errors import PipelineError
from apipeline.frames import AudioRawFrame, CancelFrame, EndFrame, Frame, ImageRawFrame
from apipeline.frames.video import VideoFrame
from apipeline.processors.frame_processor import FrameDirection, FrameProcessor
from apipeline.processors.video.intake import AudioIntake
from apipeline.video.encode import EncoderSettings, MediaWriter

#: ``ImageRawFrame.format`` of the chunks: what a browser's ``MediaSource.addSourceBuffer`` takes.
MP4_MIME = 'video/mp4; codecs="avc1.42E01E, mp4a.40.2"'


class Mp4StreamEncoder(FrameProcessor):
    """Encodes :class:`~apipeline.frames.video.VideoFrame` pictures and audio into fragmented MP4 and
    pushes each chunk as an :class:`~apipeline.frames.ImageRawFrame` whose ``image`` holds the bytes
    and whose ``format`` is :data:`MP4_MIME`.

    The first chunk is the initialization segment (``ftyp`` + ``moov``); every later one is a fragment
    (``moof`` + ``mdat``) starting at a keyframe, so a client appends them, in order, to a
    ``MediaSource`` buffer (or concatenates them into a playable file). That is how a served talking
    head's video crosses the existing wire contract: ``ImageRawFrame`` already carries encoded images.
    Pictures are consumed; audio is muxed and, with ``pass_audio``, also passed on for clients that
    play it themselves.

    Args:
        fps, video_bitrate, audio_bitrate, keyframe_interval, preset: encoder settings; the keyframe
            interval is the fragment length (25 pictures at 25 fps: one fragment a second).
        pass_audio: pass audio frames on as well as muxing them.
    """

    def __init__(
        self,
        *,
        fps: float = 25.0,
        video_bitrate: int = 500_000,
        audio_bitrate: int = 64_000,
        keyframe_interval: int = 25,
        preset: str = "ultrafast",
        pass_audio: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.settings = EncoderSettings(
            "h264", "aac", video_bitrate, audio_bitrate, keyframe_interval, preset, fps
        )
        self.pass_audio = pass_audio
        self.writer: MediaWriter | None = None
        self._audio = AudioIntake(self.name)
        self._chunks: list[bytes] = []
        self.chunks_sent = 0
        self.bytes_sent = 0
        self._size = (0, 0)

    def _open(self, frame: VideoFrame) -> MediaWriter:
        if self._audio.format is None:
            raise PipelineError(f"{self.name}: a picture came before any audio; the stream needs both")
        rate, channels = self._audio.format
        w, h = frame.size
        self._size = (w, h)
        self.writer = MediaWriter(
            None, width=w, height=h, sample_rate=rate, channels=channels, settings=self.settings,
            fragmented=True, on_chunk=self._chunks.append,
        )  # fmt: skip
        self._audio.release(self.writer)
        return self.writer

    async def _flush_chunks(self) -> None:
        if not self._chunks:
            return
        data = b"".join(self._chunks)
        self._chunks.clear()  # in place: the muxer holds this list's append
        self.chunks_sent += 1
        self.bytes_sent += len(data)
        await self.push_frame(ImageRawFrame(image=data, size=self._size, format=MP4_MIME))

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if direction is FrameDirection.DOWNSTREAM:
            if isinstance(frame, VideoFrame):
                writer = self.writer or self._open(frame)
                writer.write_video(frame.image, frame.index)  # type: ignore[arg-type]
                await self._flush_chunks()
                return
            if isinstance(frame, AudioRawFrame):
                self._audio.take(frame, self.writer)
                await self._flush_chunks()
                if self.pass_audio:
                    await self.push_frame(frame, direction)
                return
            if isinstance(frame, (EndFrame, CancelFrame)):
                last, self.writer = self.writer, None
                if last is not None:
                    last.close()
                    if isinstance(frame, EndFrame):
                        await self._flush_chunks()
        await self.push_frame(frame, direction)

    async def cleanup(self) -> None:
        writer, self.writer = self.writer, None
        if writer is not None:
            writer.close()
        await super().cleanup()
