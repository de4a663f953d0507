"""WORLD spectral analysis per window: :class:`WorldAnalysisProcessor` (over :mod:`apipeline.audio.world`)."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from apipeline.audio.f0 import F0Estimator, F0Track, get_f0_estimator
from apipeline.audio.format import AudioFormat
from apipeline.audio.incremental import StreamingAnalysis, StreamingF0
from apipeline.audio.world import WorldFeatures
from apipeline.errors import AudioFormatError
from apipeline.frames import AudioRawFrame, EndFrame, Frame, StartFrame
from apipeline.processors.audio.f0 import pad_samples
from apipeline.processors.audio.features import (
    COMPUTE_KEY,
    GATE_KEY,
    SEQ_KEY,
    BlockGeometry,
    F0Frame,
    SpectralFeaturesFrame,
    ThreadedBlockProcessor,
    block_metadata,
)
from apipeline.processors.frame_processor import FrameDirection

_MAX_PENDING = 8


class WorldAnalysisProcessor(ThreadedBlockProcessor):
    """CheapTrick envelope and D4C aperiodicity of the frames each block renders.

    Consumes mono float window frames cut with ``geometry`` and emits a :class:`SpectralFeaturesFrame`
    per window (same ``block_seq``), analysing only the frames ``geometry.frames`` (the kept span plus
    a synthesis warm-up: most of WORLD's cost is CheapTrick/D4C per frame).

    CheapTrick and D4C need an F0 track. Two modes:

    * ``analysis_f0=None`` (shared): use the :class:`F0Frame` of the same block that arrived before the
      window (an :class:`~apipeline.processors.audio.f0.F0Processor` upstream with ``pass_audio=True``).
      F0 frames are passed on unchanged for the conversion stage.
    * ``analysis_f0="dio"`` (own): estimate a fast F0 here, independently of the F0 that drives the
      conversion; this is the branch layout where an expensive estimator (FCPE, CREPE) runs beside this
      processor. F0 frames reaching it are passed on untouched. ``f0_pad_ms`` mirrors each window's end
      for that estimate as :class:`~apipeline.processors.audio.f0.F0Processor` does (same value, same
      track: with ``analysis_f0="dio"`` beside a dio F0 branch the side-by-side layout renders exactly
      the serial one's samples).

    A window with ``metadata["gate_open"]`` False, or one whose F0 is missing, yields features ``None``.

    Incremental: a frame analysed for one window is carried to the next ones (keyed by ``block_seq``) as
    long as its F0 is the same, so each frame is analysed once
    (:class:`~apipeline.audio.incremental.StreamingAnalysis`; the own F0 is carried likewise with
    :class:`~apipeline.audio.incremental.StreamingF0`): the streaming core's arithmetic, sample for sample.
    """

    latency = 0.0

    def __init__(
        self,
        geometry: BlockGeometry,
        *,
        analysis_f0: str | None = None,
        f0_options: dict[str, Any] | None = None,
        f0_pad_ms: float = 0.0,
        threaded: bool = True,
        name: str | None = None,
    ) -> None:
        super().__init__(threaded=threaded, name=name)
        self.geometry = geometry
        self.analysis_f0 = analysis_f0
        self.f0_options = dict(f0_options or {})
        self.f0_pad = pad_samples(f0_pad_ms, geometry.sample_rate, geometry.hop)
        self.input_format = AudioFormat(geometry.sample_rate, 1, "float32")
        self.output_format = None
        self._estimator: F0Estimator | None = None
        self._own_f0: StreamingF0 | None = None
        self._tracks: dict[int, tuple[F0Track | None, int]] = {}
        self._analysis = StreamingAnalysis(
            geometry.sample_rate,
            geometry.frame_period_ms,
            geometry.block // geometry.hop,
            geometry.frames,
            geometry.carry_stop,
        )

    async def setup(self) -> None:
        await super().setup()
        if self.analysis_f0 is not None and self._estimator is None:
            hop_s = self.geometry.frame_period_ms / 1000.0
            self._estimator = get_f0_estimator(self.analysis_f0, hop_seconds=hop_s, **self.f0_options)
            g = self.geometry
            self._own_f0 = StreamingF0(
                self._estimator, g.sample_rate, g.hop, g.block // g.hop, g.f0_carry_stop, self.f0_pad
            )

    async def start(self, frame: StartFrame) -> None:
        await super().start(frame)
        self.reset_stream()

    async def stop(self, frame: EndFrame) -> None:
        await super().stop(frame)
        self.reset_stream()

    def reset_stream(self) -> None:
        """Forget the carried frames (a new stream starts at ``block_seq`` 0 again)."""
        self._analysis.reset()
        if self._own_f0 is not None:
            self._own_f0.reset()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if direction is FrameDirection.DOWNSTREAM:
            if isinstance(frame, F0Frame):
                if self.analysis_f0 is None:
                    self._keep_track(frame)
                await self.push_frame(frame, direction)
                return
            if isinstance(frame, AudioRawFrame):
                await self._analyse(frame)
                return
        await self.push_frame(frame, direction)

    def _keep_track(self, frame: F0Frame) -> None:
        self._tracks[frame.seq] = (frame.track, int(frame.metadata.get(COMPUTE_KEY, 0)))
        while len(self._tracks) > _MAX_PENDING:  # F0 frames whose windows never came: forget the oldest
            del self._tracks[min(self._tracks)]

    async def _analyse(self, frame: AudioRawFrame) -> None:
        g = self.geometry
        seq = int(frame.metadata.get(SEQ_KEY, 0))
        spent = int(frame.metadata.get(COMPUTE_KEY, 0))
        track: F0Track | None = None
        if self.analysis_f0 is None:
            track, spent = self._tracks.pop(seq, (None, spent))
        features: WorldFeatures | None = None
        x = np.asarray(frame.audio, dtype=np.float64)
        if frame.num_frames != g.window or frame.num_channels != 1 or frame.sample_rate != g.sample_rate:
            await self.push_error(
                AudioFormatError(
                    f"{self.name}: expects mono windows of {g.window} samples at {g.sample_rate} Hz, got "
                    f"{frame.num_frames} samples, {frame.num_channels} ch at {frame.sample_rate} Hz"
                )
            )
        elif frame.metadata.get(GATE_KEY, True) and (self.analysis_f0 is not None or track is not None):
            try:
                features, took = await self.run_in_thread(self._work, x, seq, track)
                spent += took
            except Exception as exc:  # reported; the block renders silent and the clock goes on
                await self.push_error(f"{self.name}: WORLD analysis failed on block {seq}: {exc}")
        source = x[g.kept_start : g.kept_start + g.kept_size] if x.shape[0] == g.window else None
        await self.push_frame(
            SpectralFeaturesFrame(
                seq=seq,
                features=features,
                source=source,
                kept_start=g.kept_start,
                kept_size=g.kept_size,
                pts=frame.pts,
                metadata=block_metadata(seq, spent, frame.metadata),
            )
        )

    def _work(self, x: NDArray[np.float64], seq: int, track: F0Track | None) -> WorldFeatures:
        if track is None:
            assert self._own_f0 is not None
            track = self._own_f0.track(x, seq)
        return self._analysis.analyze(x, seq, track)
