"""What the voice-conversion processors exchange: the block geometry, feature frames, a threaded shell.

The streaming voice changer cuts its input into windows ``[left context | block]`` (one per new block of
``B`` samples) and runs, per window: F0 estimation, WORLD spectral analysis, conversion, synthesis and
SOLA stitching, each in its own processor. The frames between them carry one block's worth of data and
its sequence number (``seq``, also in ``metadata["block_seq"]``), so a stage that joins two inputs (the
conversion joins F0 and spectral features) pairs them by block, never by arrival alone.

* :class:`BlockGeometry`: block, crossfade, search, context and look-ahead sizes in samples, on the WORLD
  frame grid (the same arithmetic as :class:`~apipeline.audio.voice_changer.StreamingVoiceChanger`).
* :class:`F0Frame`: the F0 track over one window. :class:`SpectralFeaturesFrame`: WORLD envelope and
  aperiodicity of the frames one block needs. :class:`ConvertedFeaturesFrame`: the converted features.
  ``None`` features mean "silent block" (gated, or a stage failed on it): downstream stages then emit
  silence of the right length, so the output clock never slips.
* :class:`SolaOffsetFrame`: the one frame that travels *upstream*: SOLA tells the vocoder, right after
  stitching a block, where the next crossfade will be, so the vocoder can lock the next window's pulse
  train to this one's there (phase-locked synthesis, see :mod:`~apipeline.processors.audio.vocoder`).
* :class:`ThreadedBlockProcessor`: an asynchronous processor whose numerical work runs in its own
  one-thread executor (see its docstring for when that pays off).

``metadata["compute_ns"]`` on every frame of this family is the compute time spent on the block so far
along its critical path (a join takes the maximum of its inputs); :mod:`apipeline.voice_changer` reads it to
report per-block compute against the block deadline.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray

from apipeline.audio.f0 import F0Track
from apipeline.audio.incremental import carry_stop
from apipeline.audio.voice_changer import CoreSettings
from apipeline.audio.world import WorldFeatures, frame_period_for
from apipeline.frames import DataFrame, SystemFrame
from apipeline.processors.async_frame_processor import AsyncFrameProcessor

SEQ_KEY = "block_seq"
"""Metadata key: the block's sequence number (0 for the first block of a stream)."""
GATE_KEY = "gate_open"
"""Metadata key on window frames: False when the block is to be rendered as silence."""
COMPUTE_KEY = "compute_ns"
"""Metadata key: compute spent on the block so far along its critical path, in nanoseconds."""
READY_KEY = "ready_ns"
"""Metadata key: monotonic time (ns) at which the block's window was complete (set by the app's gate)."""


def block_metadata(seq: int, compute_ns: int, source: dict[str, Any]) -> dict[str, Any]:
    """Metadata for a frame derived from a block: its ``seq``, the compute so far, the ready stamp."""
    meta: dict[str, Any] = {SEQ_KEY: seq, COMPUTE_KEY: compute_ns}
    ready = source.get(READY_KEY)
    if ready is not None:
        meta[READY_KEY] = ready
    return meta


_CORE = CoreSettings()
MIN_F0_FRAMES = 30  # DIO calls nothing voiced in windows shorter than ~24 frames


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
            raise ValueError(
                f"BlockGeometry: sample_rate, block_ms and frame_ms must be positive, "
                f"got {sample_rate}, {block_ms}, {frame_ms}"
            )
        lengths = (crossfade_ms, search_ms, context_ms, lookahead_ms, warmup_ms)
        if not all(math.isfinite(v) and v >= 0 for v in lengths):
            raise ValueError(
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


@dataclass(slots=True, eq=False)
class F0Frame(DataFrame):
    """The F0 track over one window (``None``: no estimate for this block, render it silent)."""

    seq: int = 0
    track: F0Track | None = None
    sample_rate: int = 0


@dataclass(slots=True, eq=False)
class SpectralFeaturesFrame(DataFrame):
    """WORLD features of the frames one block renders, and the input samples of its kept span.

    ``features.f0`` is the F0 the analysis used; ``source`` (float64, ``kept_size`` samples) feeds
    loudness matching after synthesis; ``kept_start`` is the kept span's start in the window.
    """

    seq: int = 0
    features: WorldFeatures | None = None
    source: NDArray[np.float64] | None = None
    kept_start: int = 0
    kept_size: int = 0


@dataclass(slots=True, eq=False)
class ConvertedFeaturesFrame(DataFrame):
    """Converted WORLD features for one block, ready for a vocoder (``None``: render silence)."""

    seq: int = 0
    features: WorldFeatures | None = None
    source: NDArray[np.float64] | None = None
    kept_start: int = 0
    kept_size: int = 0


@dataclass(slots=True, eq=False)
class SolaOffsetFrame(SystemFrame):
    """Upstream, from SOLA to the vocoder: where block ``seq`` was stitched and where the next crossfade is.

    ``offset`` is the offset SOLA chose in block ``seq``'s kept span; ``anchor`` (offset + crossfade / 2)
    is the middle of the *next* crossfade as an index into the next block's kept span, and ``advance``
    (one block) is how much later the same input instant sits in block ``seq``'s kept span. A system
    frame on purpose: it is handled on arrival in the sender's task, so it never queues behind the next
    block's features in an asynchronous vocoder's queue.
    """

    seq: int = 0
    offset: int = 0
    anchor: int = 0
    advance: int = 0


T = TypeVar("T")


class ThreadedBlockProcessor(AsyncFrameProcessor):
    """An asynchronous processor that runs its numerical work in a private one-thread executor.

    The work runs off the event loop, so the loop stays free for pacing and I/O, and two of these side by
    side (branches of a ``SyncParallelPipeline``) overlap *when the work releases the GIL*: torch does
    (FCPE, CREPE); pyworld does not (measured: two threads running DIO+CheapTrick+D4C take 1.2x the
    serial time on 2 cores), so WORLD-only stages gain nothing from running side by side. One thread per
    processor keeps thread-local state (torch's thread count) stable and the work strictly in order.
    The executor is created on ``setup`` and shut down in ``cleanup``. With ``threaded=False`` the work
    runs inline in the worker task (no thread hop, no GIL hand-over): the better choice for GIL-bound work.
    """

    def __init__(self, *, threaded: bool = True, max_queue_size: int = 16, name: str | None = None) -> None:
        super().__init__(max_queue_size=max_queue_size, overflow="block", name=name)
        self.threaded = threaded
        self._executor: ThreadPoolExecutor | None = None

    async def setup(self) -> None:
        await super().setup()
        if self._executor is None and self.threaded:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=self.name)

    async def run_in_thread(self, fn: Callable[..., T], *args: Any) -> tuple[T, int]:
        """``fn(*args)`` in this processor's thread (inline when not ``threaded``); returns the result
        and the time it took (ns)."""
        if not self.threaded:
            return _timed(fn, args)
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=self.name)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, _timed, fn, args)

    async def cleanup(self) -> None:
        await super().cleanup()
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)


def _timed(fn: Callable[..., T], args: tuple[Any, ...]) -> tuple[T, int]:
    t0 = time.perf_counter_ns()
    result = fn(*args)
    return result, time.perf_counter_ns() - t0
