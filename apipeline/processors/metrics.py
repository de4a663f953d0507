"""Per-processor metrics: processing time and time to first byte, on the monotonic clock.

Only instantiated when ``StartFrame.enable_metrics`` is set, so the per-frame path without metrics pays
one ``is None`` check. Processing time is the processor's own time: the time spent awaiting downstream
neighbours inside ``push_frame`` is subtracted, so a chain of synchronous processors does not report
the whole chain's time at its head.

Records are emitted as ``MetricsFrame`` downstream at most every ``interval_s`` (and once more before
``EndFrame``), never per frame.
"""

from __future__ import annotations

import time
from collections import deque
from typing import TYPE_CHECKING, Any

from apipeline.frames import DataFrame, EndFrame, Frame, MetricsFrame

if TYPE_CHECKING:
    from apipeline.processors.frame_processor import FrameDirection, FrameProcessor

_clock = time.perf_counter_ns  # monotonic, highest resolution


class ProcessorMetrics:
    """Running measurements of one processor."""

    def __init__(self, processor: str, interval_s: float = 1.0, only_initial_ttfb: bool = False) -> None:
        self.processor = processor
        self.interval_ns = int(interval_s * 1e9)
        self.only_initial_ttfb = only_initial_ttfb
        self.count = 0
        self.total_ns = 0
        self.max_ns = 0
        self.last_ns = 0
        self.recent: deque[int] = deque(maxlen=1000)
        self.ttfb_ns: int | None = None
        self.drops = 0
        self._pushed_ns = 0
        self._frame_start = 0
        self._awaiting_first_byte = False
        self._last_emit = _clock()

    async def timed_push(self, target: FrameProcessor, frame: Frame, direction: FrameDirection) -> None:
        t0 = _clock()
        if self._awaiting_first_byte:
            self._awaiting_first_byte = False
            if self.ttfb_ns is None or not self.only_initial_ttfb:
                self.ttfb_ns = t0 - self._frame_start
        await target.receive(frame, direction)
        self._pushed_ns += _clock() - t0

    async def timed_process(self, processor: FrameProcessor, frame: Frame, direction: FrameDirection) -> None:
        if not isinstance(frame, DataFrame):
            if isinstance(frame, EndFrame):
                await processor.push_frame(MetricsFrame([self.snapshot()]))
            await processor.process_frame(frame, direction)
            return
        pushed_before = self._pushed_ns
        self._frame_start = t0 = _clock()
        self._awaiting_first_byte = True
        try:
            await processor.process_frame(frame, direction)
        finally:
            self._awaiting_first_byte = False
            now = _clock()
            own = (now - t0) - (self._pushed_ns - pushed_before)
            self.count += 1
            self.total_ns += own
            self.last_ns = own
            self.recent.append(own)
            if own > self.max_ns:
                self.max_ns = own
        if now - self._last_emit >= self.interval_ns:
            self._last_emit = now
            await processor.push_frame(MetricsFrame([self.snapshot()]))

    def snapshot(self) -> dict[str, Any]:
        """An immutable-by-convention record of the measurements so far."""
        recent = sorted(self.recent)
        p50 = recent[len(recent) // 2] if recent else 0
        p99 = recent[min(len(recent) - 1, int(len(recent) * 0.99))] if recent else 0
        return {
            "processor": self.processor,
            "processing": {
                "count": self.count,
                "mean_ns": self.total_ns // self.count if self.count else 0,
                "p50_ns": p50,
                "p99_ns": p99,
                "max_ns": self.max_ns,
                "last_ns": self.last_ns,
            },
            "ttfb_ns": self.ttfb_ns,
            "drops": self.drops,
        }
