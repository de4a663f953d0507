"""The streaming voice changer's block geometry: window, crossfade, search, context and look-ahead sizes.

:class:`BlockGeometry` holds them in samples, rounded to the WORLD frame grid with the same arithmetic as
:class:`~apipeline.audio.voice_changer.StreamingVoiceChanger`. Pure arithmetic: the processors
(:mod:`apipeline.processors.audio.features` re-exports it) and the model services both use it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from apipeline.audio.incremental import carry_stop
from apipeline.audio.voice_changer import MIN_F0_FRAMES, CoreSettings
from apipeline.audio.world import frame_period_for
from apipeline.errors import ParameterError

__all__ = ["BlockGeometry"]

_CORE = CoreSettings()


def _hops(value_ms: float, sample_rate: int, hop: int, minimum: int) -> int:
    return max(minimum, round(value_ms * sample_rate / 1000.0 / hop) * hop)


@dataclass(frozen=True, slots=True)
class BlockGeometry:
    """Sizes (samples) of the streaming windows and of the span kept from each rendered window.

    ``window = context + block``; the kept span ``[kept_start, kept_start + kept_size)`` of a window is
    ``block + crossfade + search`` samples ending ``lookahead`` before the window end; WORLD frames
    ``[frame_start, frame_stop)`` cover it plus a synthesis warm-up. Build with :meth:`from_ms`.
    """

    sample_rate: int
    hop: int
    frame_period_ms: float
    block: int
    crossfade: int
    search: int
    lookahead: int
    context: int
    frame_start: int
    frame_stop: int

    @classmethod
    def from_ms(
        cls,
        sample_rate: int,
        *,
        block_ms: float = _CORE.block_ms,
        crossfade_ms: float = _CORE.crossfade_ms,
        search_ms: float = _CORE.search_ms,
        context_ms: float = _CORE.context_ms,
        lookahead_ms: float = _CORE.lookahead_ms,
        warmup_ms: float = _CORE.warmup_ms,
        frame_ms: float = _CORE.frame_ms,
        sola: bool = _CORE.sola,
    ) -> BlockGeometry:
        """Round each length to the WORLD hop as the streaming core does (block and context to whole hops).

        The defaults are :class:`~apipeline.audio.voice_changer.CoreSettings`' (phase-locked
        synthesis: a short search, the rest spent on crossfade and look-ahead; 59.9 ms at 22.05 kHz).
        """
        if sample_rate <= 0 or not block_ms > 0 or not frame_ms > 0:
            raise ParameterError(
                f"BlockGeometry: sample_rate, block_ms and frame_ms must be positive, "
                f"got {sample_rate}, {block_ms}, {frame_ms}"
            )
        lengths = (crossfade_ms, search_ms, context_ms, lookahead_ms, warmup_ms)
        if not all(math.isfinite(v) and v >= 0 for v in lengths):
            raise ParameterError(
                "BlockGeometry: crossfade, search, context, look-ahead and warm-up must be finite and >= 0"
            )
        hop, period_ms = frame_period_for(sample_rate, frame_ms)
        block = _hops(block_ms, sample_rate, hop, hop)
        crossfade = min(round(crossfade_ms * sample_rate / 1000.0), block) if sola else 0
        search = round(search_ms * sample_rate / 1000.0) if sola else 0
        lookahead = _hops(lookahead_ms, sample_rate, hop, 0)
        warmup = _hops(warmup_ms, sample_rate, hop, 0)
        kept = block + crossfade + search
        need = max(kept + lookahead + warmup + hop, MIN_F0_FRAMES * hop)
        context = max(_hops(context_ms, sample_rate, hop, 0), need - block)
        context = -(-context // hop) * hop
        kept_end = context + block - lookahead
        frame_start = (kept_end - kept - warmup) // hop
        return cls(
            sample_rate, hop, period_ms, block, crossfade, search, lookahead, context,
            frame_start, kept_end // hop + 1,
        )  # fmt: skip

    @property
    def window(self) -> int:
        return self.context + self.block

    @property
    def kept_size(self) -> int:
        return self.block + self.crossfade + self.search

    @property
    def kept_start(self) -> int:
        return self.window - self.lookahead - self.kept_size

    @property
    def frames(self) -> tuple[int, int]:
        return self.frame_start, self.frame_stop

    @property
    def carry_stop(self) -> int:
        """First window frame not carried to the next window by the incremental analysis
        (:func:`apipeline.audio.incremental.carry_stop`)."""
        return carry_stop(self.window, self.hop, self.frame_stop, self.sample_rate)

    @property
    def f0_carry_stop(self) -> int:
        """First window frame whose F0 is not carried: the one that becomes the next window's kept span's
        first frame (only warm-up frames keep an earlier window's F0; see
        :class:`~apipeline.audio.voice_changer.StreamingVoiceChanger`)."""
        return min(self.carry_stop, -(-self.kept_start // self.hop) + self.block // self.hop)

    @property
    def latency_samples(self) -> int:
        """Worst-case algorithmic latency: block + crossfade + search + look-ahead."""
        return self.block + self.crossfade + self.search + self.lookahead

    @property
    def latency_seconds(self) -> float:
        return self.latency_samples / self.sample_rate

    def ms(self, samples: int) -> float:
        return 1000.0 * samples / self.sample_rate
