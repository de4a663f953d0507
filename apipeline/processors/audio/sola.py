"""SOLA stitching of block-rendered audio: :class:`SolaProcessor` (shell over :class:`SolaStitcher`).

With ``report_offset=True`` SOLA also answers each block *upstream* with a
:class:`~apipeline.processors.audio.features.SolaOffsetFrame` (the offset it chose and where the next
crossfade will be), pushed before the stitched block goes downstream. A phase-locked
:class:`~apipeline.processors.audio.vocoder.VocoderProcessor` right before it needs that to synthesise
the next block; why that answer always arrives in time is in the vocoder's module docstring.
"""

from __future__ import annotations

import time

import numpy as np

from apipeline.audio.format import AudioFormat
from apipeline.audio.sola import SolaStitcher
from apipeline.errors import AudioFormatError
from apipeline.frames import AudioRawFrame, EndFrame, Frame
from apipeline.processors.audio.convert import check_audio_frame
from apipeline.processors.audio.features import COMPUTE_KEY, SEQ_KEY, SolaOffsetFrame
from apipeline.processors.frame_processor import FrameDirection, FrameProcessor


class SolaProcessor(FrameProcessor):
    """Stitch rendered windows of ``block + crossfade + search`` samples into blocks of exactly ``block``.

    Each incoming float audio frame must hold exactly :attr:`input_size` samples (a renderer's kept
    span, e.g. from :class:`~apipeline.processors.audio.vocoder.VocoderProcessor`); the output frame keeps
    its ``pts`` and metadata and has ``block`` samples, so the output never drifts from the input clock.
    A frame of another length raises AudioFormatError (an ``ErrorFrame``) and is dropped, leaving the
    stored tail intact. ``latency`` is the worst-case delay of the stitch, crossfade + search.
    ``last_offset`` is the offset SOLA chose for the latest block (0..search). ``report_offset`` pushes
    a :class:`~apipeline.processors.audio.features.SolaOffsetFrame` upstream per block (for a
    phase-locked vocoder; see the module docstring).

    Args:
        block: samples out per frame.
        crossfade: crossfade length (also the stored tail), 0..block.
        search: largest offset searched for the best match with the tail.
        sample_rate: rate of the stream (for the declared format and latency).
        fade: ``"sin2"`` (default), ``"linear"`` or ``"equal_power"``.
        report_offset: answer each block upstream with its offset and the next crossfade's middle.
    """

    def __init__(
        self,
        block: int,
        crossfade: int,
        search: int,
        *,
        sample_rate: int,
        fade: str = "sin2",
        report_offset: bool = False,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        self.stitcher = SolaStitcher(block, crossfade, search, fade)
        self.report_offset = report_offset
        self.sample_rate = sample_rate
        self.input_format = AudioFormat(sample_rate=sample_rate, dtype="float32")
        self.output_format = self.input_format
        self.latency = self.stitcher.latency_samples / sample_rate
        self.blocks_stitched = 0

    @property
    def input_size(self) -> int:
        return self.stitcher.input_size

    @property
    def last_offset(self) -> int:
        return self.stitcher.last_offset

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, AudioRawFrame) and direction is FrameDirection.DOWNSTREAM:
            await self._stitch(frame)
            return
        await self.push_frame(frame, direction)

    async def _stitch(self, frame: AudioRawFrame) -> None:
        t0 = time.perf_counter_ns()
        audio = check_audio_frame(frame, self.name, self.input_format)
        if audio.shape[0] != self.input_size:
            raise AudioFormatError(
                f"{self.name}: expects {self.input_size} samples per frame (block {self.stitcher.block_size}"
                f" + crossfade {self.stitcher.crossfade_size} + search {self.stitcher.search_size}), got "
                f"{audio.shape[0]} in {frame.name}"
            )
        out = np.ascontiguousarray(self.stitcher.process(audio), dtype=np.float32)
        self.blocks_stitched += 1
        if self.report_offset:
            # before the block goes downstream: the answer must not wait on anything below us
            st = self.stitcher
            offset = st.last_offset
            report = SolaOffsetFrame(
                seq=int(frame.metadata.get(SEQ_KEY, self.blocks_stitched - 1)),
                offset=offset,
                anchor=offset + st.crossfade_size // 2,
                advance=st.block_size,
            )
            await self.push_frame(report, FrameDirection.UPSTREAM)
        meta = dict(frame.metadata)
        meta[COMPUTE_KEY] = int(meta.get(COMPUTE_KEY, 0)) + time.perf_counter_ns() - t0
        await self.push_frame(
            AudioRawFrame(out, frame.sample_rate, frame.num_channels, pts=frame.pts, metadata=meta)
        )

    async def stop(self, frame: EndFrame) -> None:
        await super().stop(frame)
        self.stitcher.reset()
