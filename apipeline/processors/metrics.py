"""Per-processor metrics: processing time and time to first byte, on the monotonic clock.

Only instantiated when ``StartFrame.enable_metrics`` is set, so the per-frame path without metrics pays
one ``is None`` check. Processing time is the processor's own time: the time spent awaiting downstream
neighbours inside ``push_frame`` is subtracted, so a chain of synchronous processors does not report
the whole chain's time at its head. TTFB is the time from the start of a data frame's processing to
its first push.

Concurrency: a processor may be running several calls at once (an asynchronous processor's worker on
a data frame while system frames pass through in their senders' tasks). Each timed data-frame call
is a *span* of the task that runs it, and a push is charged only to the open span of the task that
makes it, so concurrent system frames can neither shorten a frame's processing time (below zero,
before) nor set its TTFB.

Records are emitted as ``MetricsFrame`` downstream at most every ``interval_s`` (and once more before
``EndFrame``), never per frame.
"""

from __future__ import annotations

import asyncio
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
        self._spans: dict[asyncio.Task[Any] | None, _Span] = {}
        self._last_emit = _clock()

    async def timed_push(self, target: FrameProcessor, frame: Frame, direction: FrameDirection) -> None:
        t0 = _clock()
        span = self._spans.get(asyncio.current_task())
        if span is not None and span.awaiting_first_byte:
            span.awaiting_first_byte = False
            if self.ttfb_ns is None or not self.only_initial_ttfb:
                self.ttfb_ns = t0 - span.start
        try:
            await target.receive(frame, direction)
        finally:
            if span is not None:
                span.pushed += _clock() - t0

    async def timed_process(self, processor: FrameProcessor, frame: Frame, direction: FrameDirection) -> None:
        if not isinstance(frame, DataFrame):
            if isinstance(frame, EndFrame):
                await processor.push_frame(MetricsFrame([self.snapshot()]))
            await processor.process_frame(frame, direction)
            return
        task = asyncio.current_task()
        outer = self._spans.get(task)  # a re-entrant call in the same task nests
        self._spans[task] = span = _Span(_clock())
        try:
            await processor.process_frame(frame, direction)
        finally:
            if outer is None:
                del self._spans[task]
            else:
                self._spans[task] = outer
            now = _clock()
            own = (now - span.start) - span.pushed
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


class _Span:
    """One timed data-frame call: when it started, time spent in pushes, first push pending."""

    __slots__ = ("awaiting_first_byte", "pushed", "start")

    def __init__(self, start: int) -> None:
        self.start = start
        self.pushed = 0
        self.awaiting_first_byte = True
