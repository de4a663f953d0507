"""What the voice-conversion processors exchange: the block geometry, feature frames, a threaded shell.

The streaming voice changer cuts its input into windows ``[left context | block]`` (one per new block of
``B`` samples) and runs, per window: F0 estimation, WORLD spectral analysis, conversion, synthesis and
SOLA stitching, each in its own processor. The frames between them carry one block's worth of data and
its sequence number (``seq``, also in ``metadata["block_seq"]``), so a stage that joins two inputs (the
conversion joins F0 and spectral features) pairs them by block, never by arrival alone.

* :class:`~apipeline.audio.geometry.BlockGeometry` (re-exported from :mod:`apipeline.audio.geometry`):
  block, crossfade, search, context and look-ahead sizes in samples, on the WORLD frame grid.
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
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray

from apipeline.audio.f0 import F0Track
from apipeline.audio.geometry import BlockGeometry as BlockGeometry
from apipeline.audio.world import WorldFeatures
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
