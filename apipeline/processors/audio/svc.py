"""Voice conversion on WORLD features: :class:`VoiceConversionProcessor` (over :mod:`apipeline.audio.svc`)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from apipeline.audio.svc import F0Stats, VoiceConversion
from apipeline.errors import PipelineError
from apipeline.frames import Frame
from apipeline.processors.audio.features import (
    COMPUTE_KEY,
    ConvertedFeaturesFrame,
    F0Frame,
    SpectralFeaturesFrame,
    block_metadata,
)
from apipeline.processors.frame_processor import FrameDirection, FrameProcessor

_MAX_PENDING = 8
_SETTINGS = ("pitch", "formant", "target_f0_mean", "target_f0_range")


class VoiceConversionProcessor(FrameProcessor):
    """Join each block's :class:`F0Frame` and :class:`SpectralFeaturesFrame` and convert them.

    The two frames of a block are paired by ``seq`` (whichever comes first waits, at most a few blocks).
    The converted F0 is the F0 frame's track (the selected estimator) on the analysed frames, voiced only
    where the spectral analysis was voiced too: D4C's aperiodicity is ~1 on frames it analysed as
    unvoiced, and a voiced pulse train through it would be noise. Then :class:`VoiceConversion` maps
    (optionally) to ``target_f0_mean`` (running log-F0 statistics of the stream), shifts by ``pitch``
    semitones and warps the envelope by ``formant``.

    Settings (``pitch``, ``formant``, ``target_f0_mean``, ``target_f0_range``) change mid-stream with an
    ``UpdateSettingsFrame``; it travels in order with the blocks, so the change applies from the first
    block after it. Invalid values raise (an ``ErrorFrame``) and leave the settings unchanged. Conversion
    is a few array operations per block, so it runs inline (no thread).

    Args:
        pitch: shift in semitones.
        formant: envelope warp ratio (>1 = smaller vocal tract).
        target_f0_mean: map F0 to this mean (Hz) before the shift; None = off.
        target_f0_range: target log-F0 spread in semitones (None keeps the source's).
        block_frames: WORLD frames per block (for the running statistics; 0 = the whole F0 track).
    """

    latency = 0.0

    def __init__(
        self,
        *,
        pitch: float = 0.0,
        formant: float = 1.0,
        target_f0_mean: float | None = None,
        target_f0_range: float | None = None,
        block_frames: int = 0,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        self.pitch = float(pitch)
        self.formant = float(formant)
        self.target_f0_mean = target_f0_mean
        self.target_f0_range = target_f0_range
        self.block_frames = block_frames
        self._conversion = self._make({})
        self._f0: dict[int, F0Frame] = {}
        self._spectral: dict[int, SpectralFeaturesFrame] = {}
        self._log_sum = self._log_sq = 0.0
        self._log_n = 0
        self.blocks_converted = 0

    def _make(self, changes: dict[str, Any]) -> VoiceConversion:
        values = {k: changes.get(k, getattr(self, k)) for k in _SETTINGS}
        return VoiceConversion(
            pitch_semitones=float(values["pitch"]),
            formant_ratio=float(values["formant"]),
            target_f0_mean=values["target_f0_mean"],
            target_f0_range=values["target_f0_range"],
        )

    def update_settings(self, settings: dict[str, Any]) -> None:
        unknown = [k for k in settings if k not in _SETTINGS]
        if unknown:
            raise PipelineError(f"{self.name}: unknown setting(s) {unknown}; settable: {list(_SETTINGS)}")
        try:
            conversion = self._make(settings)
        except (TypeError, ValueError) as exc:
            raise PipelineError(f"{self.name}: rejected settings {settings}: {exc}") from exc
        for key, value in settings.items():
            setattr(self, key, value)
        self._conversion = conversion

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if direction is FrameDirection.DOWNSTREAM and isinstance(frame, (F0Frame, SpectralFeaturesFrame)):
            pending: dict[int, Any] = self._f0 if isinstance(frame, F0Frame) else self._spectral
            pending[frame.seq] = frame
            f0, spectral = self._f0.get(frame.seq), self._spectral.get(frame.seq)
            if f0 is not None and spectral is not None:
                del self._f0[frame.seq], self._spectral[frame.seq]
                await self._convert(f0, spectral)
            await self._evict()
            return
        await self.push_frame(frame, direction)

    async def _evict(self) -> None:
        for pending in (self._f0, self._spectral):
            while len(pending) > _MAX_PENDING:
                seq = min(pending)
                del pending[seq]
                await self.push_error(f"{self.name}: block {seq} never got both its F0 and spectral features")

    def _stats(self, f0: np.ndarray) -> F0Stats | None:
        new = f0[-self.block_frames :] if self.block_frames else f0
        voiced = np.log(new[new > 0])
        self._log_sum += float(voiced.sum())
        self._log_sq += float(np.square(voiced).sum())
        self._log_n += int(voiced.size)
        if self._log_n == 0:
            return None
        mean = self._log_sum / self._log_n
        return F0Stats(mean, float(np.sqrt(max(self._log_sq / self._log_n - mean * mean, 0.0))), self._log_n)

    async def _convert(self, f0: F0Frame, spectral: SpectralFeaturesFrame) -> None:
        t0 = time.perf_counter_ns()
        features, track = spectral.features, f0.track
        converted = None
        if features is not None and track is not None:
            start = features.start_frame
            sel = np.where(track.voiced, track.f0_hz, 0.0)
            if track.num_frames < start + features.num_frames:
                raise PipelineError(
                    f"{self.name}: block {f0.seq}: F0 track has {track.num_frames} frames, the features "
                    f"need frames {start}..{start + features.num_frames}"
                )
            f0_block = sel[start : start + features.num_frames]
            f0_block = np.where(features.f0 > 0, f0_block, 0.0)
            stats = self._stats(sel) if self.target_f0_mean is not None else None
            converted = self._conversion.convert(features.with_(f0=f0_block), stats)
            self.blocks_converted += 1
        spent = max(int(f0.metadata.get(COMPUTE_KEY, 0)), int(spectral.metadata.get(COMPUTE_KEY, 0)))
        spent += time.perf_counter_ns() - t0
        await self.push_frame(
            ConvertedFeaturesFrame(
                seq=spectral.seq,
                features=converted,
                source=spectral.source,
                kept_start=spectral.kept_start,
                kept_size=spectral.kept_size,
                pts=spectral.pts,
                metadata=block_metadata(spectral.seq, spent, spectral.metadata),
            )
        )
