"""Fixed-size blocks with left context from audio frames of any size (shell over :class:`Reblocker`)."""

from __future__ import annotations

from numpy.typing import NDArray

from apipeline.audio.format import AudioFormat
from apipeline.audio.reblock import Reblocker
from apipeline.errors import ParameterError
from apipeline.frames import AudioRawFrame, EndFrame, Frame
from apipeline.processors.audio.convert import check_audio_frame
from apipeline.processors.frame_processor import FrameDirection, FrameProcessor

CONTEXT_KEY = "context_frames"
VALID_KEY = "valid_frames"


class ReblockProcessor(FrameProcessor):
    """Turn incoming audio frames into frames of ``context + block`` samples, one per new block.

    Each output frame's audio is a window ``[context | block]``: its first ``metadata["context_frames"]``
    samples repeat the end of the previous window (zeros before the stream start) and
    ``metadata["valid_frames"]`` of the block samples are real audio (the whole block except in the
    last, zero-padded window pushed at ``EndFrame``). ``pts`` is the start of the block part.

    Sizes are in milliseconds, converted at ``sample_rate`` (or the first frame's rate). The stream's
    rate, channel count and sample type are fixed by the first frame; a frame in another format raises
    AudioFormatError (convert upstream). ``latency`` is one block: a sample waits for its block to fill.
    """

    def __init__(
        self,
        block_ms: float,
        context_ms: float = 0.0,
        *,
        sample_rate: int | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        if block_ms <= 0 or context_ms < 0:
            raise ParameterError(f"block_ms must be > 0 and context_ms >= 0, got {block_ms}, {context_ms}")
        self.block_ms = block_ms
        self.context_ms = context_ms
        self.input_format = AudioFormat(sample_rate=sample_rate)
        self.latency = block_ms / 1000.0
        self._core: Reblocker | None = None
        self._format: AudioFormat | None = None
        self._pts0: int | None = None

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, AudioRawFrame) and direction is FrameDirection.DOWNSTREAM:
            await self._push_audio(frame)
            return
        await self.push_frame(frame, direction)

    def _start_stream(self, frame: AudioRawFrame) -> Reblocker:
        rate = frame.sample_rate
        block = max(1, round(self.block_ms * rate / 1000))
        context = round(self.context_ms * rate / 1000)
        dtype = frame.audio.dtype  # type: ignore[union-attr]
        self._format = AudioFormat(rate, frame.num_channels, str(dtype))
        self._pts0 = frame.pts
        self._core = Reblocker(block, context, frame.num_channels, dtype)
        return self._core

    async def _push_audio(self, frame: AudioRawFrame) -> None:
        audio = check_audio_frame(frame, self.name, self._format or self.input_format)
        core = self._core or self._start_stream(frame)
        for window in core.push(audio):
            await self._emit(window, core.block_size, core.blocks_out - 1)

    async def _emit(self, window: NDArray, valid: int, index: int) -> None:
        core, fmt = self._core, self._format
        assert core is not None and fmt is not None and fmt.sample_rate is not None
        pts = None
        if self._pts0 is not None:
            pts = self._pts0 + index * core.block_size * 1_000_000_000 // fmt.sample_rate
        meta = {CONTEXT_KEY: core.context_size, VALID_KEY: valid}
        channels = fmt.channels or 1
        await self.push_frame(AudioRawFrame(window, fmt.sample_rate, channels, pts=pts, metadata=meta))

    async def stop(self, frame: EndFrame) -> None:
        await super().stop(frame)
        core = self._core
        if core is None:
            return
        index = core.blocks_out
        final = core.flush()
        if final is not None:
            await self._emit(final.window, final.valid, index)
        self._core = None
        self._format = None
