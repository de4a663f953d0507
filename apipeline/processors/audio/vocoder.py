"""Features to audio per block: :class:`VocoderProcessor` (shell over :mod:`apipeline.audio.vocoder`)."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from apipeline.audio.format import AudioFormat
from apipeline.audio.svc import change_rms
from apipeline.audio.vocoder import GriffinLimVocoder, Vocoder, WorldVocoder
from apipeline.frames import AudioRawFrame, Frame
from apipeline.processors.audio.features import (
    COMPUTE_KEY,
    ConvertedFeaturesFrame,
    ThreadedBlockProcessor,
    block_metadata,
)
from apipeline.processors.frame_processor import FrameDirection

VOCODERS = ("world", "griffin-lim")


class VocoderProcessor(ThreadedBlockProcessor):
    """Synthesise each :class:`ConvertedFeaturesFrame` and emit the block's kept span as audio.

    Output: a mono float32 ``AudioRawFrame`` of ``kept_size`` samples (block + crossfade + search) per
    block, with ``metadata["block_seq"]``, ready for :class:`~apipeline.processors.audio.sola.SolaProcessor`.
    A block without features (gated or failed upstream) becomes zeros of the same length.

    ``rms_mix_rate`` < 1 gives the output the input's loudness envelope in proportion ``1 - rate``
    (``change_rms`` over the kept span; settable mid-stream). ``lookahead`` (samples) is declared as this
    stage's latency: the kept span ends that far before the newest input.

    Args:
        sample_rate: rate of the features and of the output.
        kind: ``"world"`` (pyworld synthesis, the real-time default) or ``"griffin-lim"`` (librosa; slow,
            noisy, a model-free reference: about 32 STFT round trips per block).
        rms_mix_rate: loudness matching, 1 = off.
        lookahead: look-ahead samples of the window geometry (latency only).
    """

    def __init__(
        self,
        *,
        sample_rate: int,
        kind: str = "world",
        rms_mix_rate: float = 1.0,
        lookahead: int = 0,
        threaded: bool = True,
        name: str | None = None,
    ) -> None:
        super().__init__(threaded=threaded, name=name)
        if kind not in VOCODERS:
            raise ValueError(f"VocoderProcessor: kind must be one of {VOCODERS}, got {kind!r}")
        if not 0.0 <= rms_mix_rate <= 1.0:
            raise ValueError(f"VocoderProcessor: rms_mix_rate must be within [0, 1], got {rms_mix_rate}")
        self.sample_rate = sample_rate
        self.kind = kind
        self.rms_mix_rate = float(rms_mix_rate)
        self.vocoder: Vocoder = WorldVocoder() if kind == "world" else GriffinLimVocoder()
        self.output_format = AudioFormat(sample_rate, 1, "float32")
        self.latency = lookahead / sample_rate
        self.blocks_synthesised = 0

    def update_settings(self, settings: dict[str, object]) -> None:
        rate = settings.get("rms_mix_rate", self.rms_mix_rate)
        if not isinstance(rate, (int, float)) or not 0.0 <= rate <= 1.0:
            raise ValueError(f"{self.name}: rms_mix_rate must be within [0, 1], got {rate!r}")
        super().update_settings(settings)

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, ConvertedFeaturesFrame) and direction is FrameDirection.DOWNSTREAM:
            await self._synthesise(frame)
            return
        await self.push_frame(frame, direction)

    async def _synthesise(self, frame: ConvertedFeaturesFrame) -> None:
        spent = int(frame.metadata.get(COMPUTE_KEY, 0))
        y: NDArray[np.float32] | None = None
        if frame.features is not None:
            try:
                y, took = await self.run_in_thread(self._render, frame, self.rms_mix_rate)
                spent += took
                self.blocks_synthesised += 1
            except Exception as exc:  # reported; the block becomes silence and the clock goes on
                await self.push_error(f"{self.name}: synthesis failed on block {frame.seq}: {exc}")
        if y is None:
            y = np.zeros(frame.kept_size, np.float32)
        meta = block_metadata(frame.seq, spent, frame.metadata)
        await self.push_frame(AudioRawFrame(y, self.sample_rate, 1, pts=frame.pts, metadata=meta))

    def _render(self, frame: ConvertedFeaturesFrame, rms_mix_rate: float) -> NDArray[np.float32]:
        features = frame.features
        assert features is not None
        y = np.asarray(self.vocoder.synthesize(features), dtype=np.float64)
        start = frame.kept_start - features.start_frame * round(features.hop_seconds * self.sample_rate)
        kept = y[start : start + frame.kept_size]
        if kept.shape[0] < frame.kept_size:
            kept = np.pad(kept, (0, frame.kept_size - kept.shape[0]))
        if rms_mix_rate < 1.0 and frame.source is not None:
            kept = change_rms(frame.source, self.sample_rate, kept, self.sample_rate, rms_mix_rate, 0.02)
        return kept.astype(np.float32)
