"""The asynchronous processor: one bounded queue, one worker task.

``push_frame`` into an :class:`AsyncFrameProcessor` returns as soon as the frame is queued (or, with
the ``block`` policy and a full queue, once there is room), so a slow processor never blocks the one
before it for longer than its queue takes to fill. Data and control frames share one FIFO, so
``EndFrame`` can never overtake data; system frames skip the queue and are handled on arrival in the
sender's task.

Interruption (``StartInterruptionFrame`` with ``allow_interruptions``): the queued interruptible frames
are dropped and, if the worker is busy with an interruptible frame, the worker is cancelled and a fresh
one started. ``interruption_epoch`` counts interruptions so subclasses can discard stale results that
come back from work started before one (e.g. a thread-pool call).
"""

from __future__ import annotations

import asyncio
import logging

from apipeline.frames import (
    CancelFrame,
    EndFrame,
    Frame,
    MetricsFrame,
    StartInterruptionFrame,
    SystemFrame,
)
from apipeline.processors.frame_processor import FrameDirection, FrameProcessor
from apipeline.processors.frame_queue import FrameQueue, OverflowPolicy, QueueStatistics

logger = logging.getLogger("apipeline")

_YIELD_EVERY = 64


class AsyncFrameProcessor(FrameProcessor):
    """A processor whose ``process_frame`` runs in its own worker task, fed by a bounded queue."""

    def __init__(
        self,
        *,
        max_queue_size: int = 256,
        overflow: OverflowPolicy = "block",
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        self._queue = FrameQueue(max_queue_size, overflow)
        self._worker_task: asyncio.Task[None] | None = None
        self._current: Frame | None = None
        self._closed = False
        self.interruption_epoch = 0
        self._reported_drops = 0

    # -- queue -----------------------------------------------------------------------------------

    async def receive(self, frame: Frame, direction: FrameDirection) -> None:
        if isinstance(frame, SystemFrame):
            await self._handle_system(frame, direction)
        elif self._worker_task is None or not self._queue.try_put(frame, direction):
            await self.queue_frame(frame, direction)

    async def queue_frame(self, frame: Frame, direction: FrameDirection = FrameDirection.DOWNSTREAM) -> None:
        """Put a frame in this processor's queue (system frames are handled at once instead)."""
        if isinstance(frame, SystemFrame):
            await self._handle_system(frame, direction)
            return
        if self._worker_task is None and not self._closed:
            self._start_worker()
        drops = self._queue.drops
        await self._queue.put(frame, direction)
        if self._queue.drops != drops:
            self._on_drop()

    def queue_statistics(self) -> QueueStatistics:
        return self._queue.statistics()

    @property
    def queue_size(self) -> int:
        return len(self._queue)

    def _on_drop(self) -> None:
        drops = self._queue.drops
        if self.metrics is not None:
            self.metrics.drops = drops
        if drops == 1 or drops % 1000 == 0:
            logger.warning(
                "%s: queue full, dropped %d frame(s) so far (overflow=drop_oldest)", self.name, drops
            )

    # -- worker ----------------------------------------------------------------------------------

    async def setup(self) -> None:
        await super().setup()
        if self._worker_task is None:
            self._start_worker()

    def _start_worker(self) -> None:
        self._worker_task = asyncio.get_running_loop().create_task(self._worker(), name=f"{self.name}.worker")

    async def _worker(self) -> None:
        queue = self._queue
        handle = super().receive
        process = self.process_frame
        streak = 0
        while True:
            item = queue.try_get()
            if item is None:
                streak = 0
                item = await queue.get()
            elif streak >= _YIELD_EVERY:
                # A busy worker whose downstream never suspends would otherwise hold the event loop
                # until its queue is empty; yield now and then so system frames and others can run.
                streak = 0
                await asyncio.sleep(0)
            streak += 1
            frame, direction = item
            self._current = frame
            if frame.interruptible and self._started and self.metrics is None:
                self._pts = frame.pts
                try:
                    await process(frame, direction)
                except Exception as exc:
                    await self._report_exception(exc, frame)
            else:
                if isinstance(frame, EndFrame) and queue.drops != self._reported_drops:
                    await self._report_drops()
                await handle(frame, direction)
            self._current = None

    async def _report_drops(self) -> None:
        # Drops are reported in metrics even when metrics are off: never silent.
        self._reported_drops = self._queue.drops
        await self.push_frame(MetricsFrame([{"processor": self.name, "drops": self._queue.drops}]))

    async def _stop_worker(self) -> None:
        task = self._worker_task
        if task is asyncio.current_task():
            # Called from inside our own worker (a frame we pushed came back to us): the worker cannot
            # await itself; it stops at its next await only if cancelled, which would abort this call.
            return
        self._worker_task = None
        if task is not None and not task.done():
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
        self._current = None

    # -- system frames -----------------------------------------------------------------------------

    async def _handle_system(self, frame: SystemFrame, direction: FrameDirection) -> None:
        if isinstance(frame, StartInterruptionFrame) and self.allow_interruptions:
            await self._interrupt()
        elif isinstance(frame, CancelFrame):
            self._closed = True
            self._queue.clear()
            await self._stop_worker()
        await FrameProcessor.receive(self, frame, direction)

    async def _interrupt(self) -> None:
        self.interruption_epoch += 1
        self._queue.drop_interruptible()
        current = self._current
        task = self._worker_task
        if (
            current is not None
            and current.interruptible
            and task is not None
            and task is not asyncio.current_task()
        ):
            await self._stop_worker()
            self._start_worker()

    async def cleanup(self) -> None:
        self._closed = True
        await self._stop_worker()
        self._queue.clear()
        await super().cleanup()
