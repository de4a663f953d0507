"""Release pictures on their presentation time; drop the late ones, never audio."""

from __future__ import annotations

import asyncio
import collections
import time
from typing import Any, Protocol

import numpy as np

from apipeline.errors import ConfigurationError
from apipeline.frames import (
    CancelFrame,
    EndFrame,
    Frame,
    MetricsFrame,
    StartFrame,
    StartInterruptionFrame,
)
from apipeline.frames.video import VideoFrame
from apipeline.processors.frame_processor import FrameDirection, FrameProcessor


class Clock(Protocol):
    """The time source of a pacer: the monotonic clock in production, a driven one in tests."""

    def now_ns(self) -> int: ...

    async def sleep_until(self, t_ns: int) -> None: ...


class MonotonicClock:
    """``time.monotonic_ns``: the clock every ``pts`` is on."""

    def now_ns(self) -> int:
        return time.monotonic_ns()

    async def sleep_until(self, t_ns: int) -> None:
        delay = (t_ns - time.monotonic_ns()) / 1e9
        if delay > 0:
            await asyncio.sleep(delay)


class VideoPacer(FrameProcessor):
    """Releases each :class:`~apipeline.frames.video.VideoFrame` at ``pts + latency``.

    Audio and every other frame pass straight through (an audio output paces itself on its device);
    pictures wait in a bounded queue and one release task (created at start, cancelled at the end)
    pushes each when it is due. A picture that arrives after its slot has passed (due time plus
    ``tolerance``, half a frame period by default) is dropped and counted — video gives way, audio
    never does. On an interruption queued pictures are dropped (counted separately). ``EndFrame``
    waits for the pictures still due, then passes on.

    The A/V offset of a released picture is how late it left against its due time: ``0`` when the
    pacer keeps up. :meth:`statistics` gives the counts and the offset percentiles; a ``MetricsFrame``
    with them is pushed before ``EndFrame``.

    Args:
        latency_s: the play-out delay added to ``pts`` (the time audio takes to reach the speaker).
        tolerance_s: how late a picture may be and still be shown (default: half a frame period).
        max_pending: bound of the picture queue; the oldest picture is dropped beyond it.
        clock: the time source (tests pass a driven clock).
    """

    def __init__(
        self,
        *,
        latency_s: float = 0.1,
        tolerance_s: float | None = None,
        max_pending: int = 50,
        clock: Clock | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not 0.0 <= latency_s <= 10.0:
            raise ConfigurationError(f"latency_s must be within 0..10 s, got {latency_s}")
        if max_pending < 1:
            raise ConfigurationError(f"max_pending must be at least 1, got {max_pending}")
        self.latency_ns = round(latency_s * 1e9)
        self._tolerance_ns = None if tolerance_s is None else round(tolerance_s * 1e9)
        self.clock: Clock = clock or MonotonicClock()
        self._pending: collections.deque[VideoFrame] = collections.deque()
        self._max_pending = max_pending
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self.released = 0
        self.late = 0
        self.interrupted = 0
        self.overflow = 0
        self._offsets: collections.deque[int] = collections.deque(maxlen=10_000)

    def statistics(self) -> dict[str, Any]:
        """Counts and the A/V offset (ms) of released pictures."""
        offs = np.array(self._offsets, dtype=np.float64) / 1e6 if self._offsets else np.zeros(1)
        return {
            "processor": self.name,
            "video_released": self.released,
            "video_late_dropped": self.late,
            "video_interrupted": self.interrupted,
            "video_overflow_dropped": self.overflow,
            "av_offset_ms_p50": float(np.percentile(offs, 50)),
            "av_offset_ms_p99": float(np.percentile(offs, 99)),
            "av_offset_ms_max": float(offs.max()),
        }

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, VideoFrame) and direction is FrameDirection.DOWNSTREAM:
            self._accept(frame)
            return
        if isinstance(frame, StartFrame):
            self._start_task()
        elif isinstance(frame, StartInterruptionFrame):
            # restart the release task too: it may be asleep until a dropped picture's due time
            await self._stop_task()
            self.interrupted += len(self._pending)
            self._pending.clear()
            self._idle.set()
            self._start_task()
        elif isinstance(frame, EndFrame):
            await self._idle.wait()
            await self._stop_task()
            await self.push_frame(MetricsFrame([self.statistics()]))
        elif isinstance(frame, CancelFrame):
            await self._stop_task()
        await self.push_frame(frame, direction)

    def _start_task(self) -> None:
        if self._task is not None:
            return
        self._task = asyncio.get_running_loop().create_task(self._release_loop(), name=f"{self.name}.release")

    def _tolerance(self, frame: VideoFrame) -> int:
        return frame.duration_ns // 2 if self._tolerance_ns is None else self._tolerance_ns

    def _accept(self, frame: VideoFrame) -> None:
        if frame.pts is not None and self.clock.now_ns() > frame.pts + self.latency_ns + self._tolerance(
            frame
        ):
            self.late += 1
            return
        if len(self._pending) >= self._max_pending:
            self._pending.popleft()
            self.overflow += 1
        self._pending.append(frame)
        self._idle.clear()
        self._wake.set()

    async def _release_loop(self) -> None:
        while True:
            if not self._pending:
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            frame = self._pending[0]
            if frame.pts is not None:
                due = frame.pts + self.latency_ns
                await self.clock.sleep_until(due)
                if not self._pending or self._pending[0] is not frame:
                    continue  # dropped by an interruption while we slept
                lateness = self.clock.now_ns() - due
                if lateness > self._tolerance(frame):
                    self._pending.popleft()
                    self.late += 1
                    continue
                self._offsets.append(max(0, lateness))
            self._pending.popleft()
            self.released += 1
            await self.push_frame(frame)

    async def _stop_task(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

    async def cleanup(self) -> None:
        await self._stop_task()
        await super().cleanup()
