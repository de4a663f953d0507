"""Sample-rate conversion of an audio stream (thin shell over :class:`StreamingResampler`)."""

from __future__ import annotations

from apipeline.audio.convert import to_float32, to_int16
from apipeline.audio.format import AudioFormat
from apipeline.audio.resample import QUALITIES, StreamingResampler
from apipeline.errors import ParameterError
from apipeline.frames import AudioRawFrame, EndFrame, Frame
from apipeline.processors.audio.convert import check_audio_frame, derived_frame
from apipeline.processors.frame_processor import FrameDirection, FrameProcessor


class ResampleProcessor(FrameProcessor):
    """Resample every audio frame to ``out_rate``, keeping the sample type and channel count.

    The resampler state persists across frames, so chunk borders are seamless. It is built on the
    first frame; when a frame arrives with another rate or channel count, the held-back tail of the
    old stream is pushed first and a new resampler starts (nothing is lost). At ``EndFrame`` the tail
    is pushed before the ``EndFrame``. Frames already at ``out_rate`` pass unchanged.

    ``latency`` is the resampler's worst-case hold-back (see :mod:`apipeline.audio.resample`); it is
    known before the run when ``in_rate`` is given, and updated on the first frame otherwise.
    """

    def __init__(
        self, out_rate: int, *, in_rate: int | None = None, quality: str = "HQ", name: str | None = None
    ) -> None:
        super().__init__(name=name)
        if out_rate <= 0:
            raise ParameterError(f"out_rate must be positive, got {out_rate}")
        if quality not in QUALITIES:
            raise ParameterError(f"quality must be one of {QUALITIES}, got {quality!r}")
        self.out_rate = out_rate
        self.quality = quality
        self.input_format = AudioFormat(sample_rate=in_rate)
        self.output_format = AudioFormat(sample_rate=out_rate)
        self._resampler: StreamingResampler | None = None
        self._last: AudioRawFrame | None = None
        if in_rate is not None:
            self.latency = StreamingResampler(in_rate, out_rate, 1, quality).delay_seconds

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, AudioRawFrame) and direction is FrameDirection.DOWNSTREAM:
            await self._resample(frame)
            return
        await self.push_frame(frame, direction)

    async def _resample(self, frame: AudioRawFrame) -> None:
        audio = check_audio_frame(frame, self.name, self.input_format)
        r = self._resampler
        if r is not None and (r.in_rate != frame.sample_rate or r.channels != frame.num_channels):
            await self._flush()
            r = None
        if r is None:
            r = self._resampler = StreamingResampler(
                frame.sample_rate, self.out_rate, frame.num_channels, self.quality
            )
            self.latency = r.delay_seconds
        if r.is_identity:
            await self.push_frame(frame)
            return
        y = r.process(to_float32(audio))
        self._last = frame
        if len(y):
            await self.push_frame(
                derived_frame(frame, y if audio.dtype != "int16" else to_int16(y), self.out_rate)
            )

    async def _flush(self) -> None:
        r, last = self._resampler, self._last
        self._resampler = self._last = None
        if r is None or last is None or r.is_identity:
            return
        tail = r.flush()
        if len(tail):
            dtype = last.audio.dtype  # type: ignore[union-attr]
            await self.push_frame(
                derived_frame(last, tail if dtype != "int16" else to_int16(tail), self.out_rate)
            )

    async def stop(self, frame: EndFrame) -> None:
        await super().stop(frame)
        await self._flush()
