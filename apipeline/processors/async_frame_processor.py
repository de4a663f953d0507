"""The asynchronous processor: one bounded queue, one worker task.

``push_frame`` into an :class:`AsyncFrameProcessor` returns as soon as the frame is queued (or, with
the ``block`` policy and a full queue, once there is room), so a slow processor never blocks the one
before it for longer than its queue takes to fill. Data and control frames share one FIFO, so
``EndFrame`` can never overtake data; system frames skip the queue and are handled on arrival in the
sender's task.

The worker (one per processor, for its whole life; see "The worker" in docs/design.md):

* ``idle``: no worker yet. ``setup()`` (or the first queued frame) starts it: ``running``.
* ``running``: the worker takes frames one by one and delivers each through
  :meth:`FrameProcessor.receive`. An interruption (``StartInterruptionFrame`` with
  ``allow_interruptions``) drops the queued interruptible frames and, if the worker is busy with an
  interruptible frame, cancels *that frame's processing* inside the same worker task; the worker
  catches that one cancellation and goes on with the next frame. No second worker is ever started.
* ``closed`` (``CancelFrame`` or ``cleanup()``): the queue is cleared, the worker is cancelled and
  awaited, and frames arriving later are dropped. It never restarts.

``interruption_epoch`` counts interruptions so subclasses can discard stale results that come back
from work started before one (e.g. a thread-pool call).

A frame travelling upstream, or one the worker pushes back into its own queue (a re-entrant push), is
appended even when the queue is full: backpressure is a downstream notion, and an upstream pusher may
be the very thing this worker is waiting on (an answer from a processor after it), so waiting for room
that only this worker can make would deadlock. Upstream traffic is bounded by the downstream flow
that causes it.
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


_IDLE, _RUNNING, _CLOSED = "idle", "running", "closed"


class AsyncFrameProcessor(FrameProcessor):
    """A processor whose ``process_frame`` runs in its own worker task, fed by a bounded queue."""

    is_async = True

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
        self._state = _IDLE
        self._current: Frame | None = None
        self._interrupting = False  # an interruption has cancelled the frame in flight
        self.interruption_epoch = 0
        self._reported_drops = 0

    # -- queue -----------------------------------------------------------------------------------

    async def receive(self, frame: Frame, direction: FrameDirection) -> None:
        if isinstance(frame, SystemFrame):
            await self._handle_system(frame, direction)
        elif self._state is not _RUNNING or not self._queue.try_put(frame, direction):
            await self.queue_frame(frame, direction)

    async def queue_frame(self, frame: Frame, direction: FrameDirection = FrameDirection.DOWNSTREAM) -> None:
        """Put a frame in this processor's queue (system frames are handled at once instead)."""
        if isinstance(frame, SystemFrame):
            await self._handle_system(frame, direction)
            return
        if self._state is _CLOSED:
            return  # cancelled: every processor drops its work
        if self._state is _IDLE:
            self._start_worker()
        if direction is FrameDirection.UPSTREAM or asyncio.current_task() is self._worker_task:
            # Never wait for room: an upstream frame (its pusher may be what our worker is waiting on)
            # or a re-entrant push (our own worker would wait on itself). See the module docstring.
            self._queue.put_over_capacity(frame, direction)
            return
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
        if self._state is _IDLE:
            self._start_worker()

    def _start_worker(self) -> None:
        assert self._state is _IDLE, f"{self.name}: worker started twice"
        self._state = _RUNNING
        self._worker_task = asyncio.get_running_loop().create_task(self._worker(), name=f"{self.name}.worker")

    async def _worker(self) -> None:
        queue = self._queue
        deliver = super().receive
        task = asyncio.current_task()
        assert task is not None
        streak = 0
        while self._state is _RUNNING:
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
            if not frame.interruptible and isinstance(frame, EndFrame):
                if queue.drops != self._reported_drops:
                    await self._report_drops()
            self._current = frame
            try:
                await deliver(frame, direction)
            except asyncio.CancelledError:
                if not self._interrupting or self._state is _CLOSED:
                    raise
            finally:
                self._current = None
            if self._interrupting:
                # The interruption's cancellation was delivered (caught above) or swallowed by the
                # processor; either way it is spent: this worker goes on with the next frame.
                self._interrupting = False
                task.uncancel()

    async def _report_drops(self) -> None:
        # Drops are reported in metrics even when metrics are off: never silent.
        self._reported_drops = self._queue.drops
        await self.push_frame(MetricsFrame([{"processor": self.name, "drops": self._queue.drops}]))

    async def _stop_worker(self) -> None:
        """Close: no worker will ever run again; cancel and await the one there is."""
        self._state = _CLOSED
        task = self._worker_task
        if task is None or task is asyncio.current_task():
            # From inside our own worker (a frame we pushed came back to us): it ends after this frame.
            return
        if not task.done():
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                if (current := asyncio.current_task()) is not None and current.cancelling():
                    raise
        self._worker_task = None  # only once it is over: a worker that will not die stays visible

    # -- system frames -----------------------------------------------------------------------------

    async def _handle_system(self, frame: SystemFrame, direction: FrameDirection) -> None:
        if isinstance(frame, StartInterruptionFrame) and self.allow_interruptions:
            self._interrupt()
        elif isinstance(frame, CancelFrame):
            self._queue.clear()
            await self._stop_worker()
        await FrameProcessor.receive(self, frame, direction)

    def _interrupt(self) -> None:
        self.interruption_epoch += 1
        self._queue.drop_interruptible()
        current = self._current
        task = self._worker_task
        if (
            current is not None
            and current.interruptible
            and task is not None
            and task is not asyncio.current_task()
            and not self._interrupting
        ):
            self._interrupting = True
            task.cancel()

    async def cleanup(self) -> None:
        self._queue.clear()
        await self._stop_worker()
        await super().cleanup()

    def _framework_needs_close(self) -> bool:
        return self._worker_task is not None

    def _framework_tasks(self) -> list[asyncio.Task[None]]:
        task = self._worker_task
        return [task] if task is not None and not task.done() else []

    async def _framework_close(self) -> None:
        self._queue.clear()
        await self._stop_worker()
