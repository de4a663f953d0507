"""The task: drives one pipeline run from ``StartFrame`` to its end.

Layout: ``[task source] -> pipeline -> [task sink]``. Frames queued with :meth:`PipelineTask.queue_frame`
wait in the task's input queue and are pushed in by a pump task; system frames skip that queue and are
pushed in at once from the caller, so they overtake queued data even while the pipeline applies
backpressure. Every way a run can end funnels through :meth:`PipelineTask.run`:

* ``EndFrame`` (``stop_when_done``, or ``StopTaskFrame`` from a processor): the pump pushes it after all
  data queued before it; the run ends when it reaches the sink (bounded by ``end_timeout``).
* ``cancel()``/``CancelFrame``/a fatal ``ErrorFrame``: a ``CancelFrame`` is pushed in (bounded by
  ``cancel_timeout``), the pump is cancelled, and the run ends without draining.

Then every processor is cleaned up (each bounded by ``cleanup_timeout``), which cancels and awaits the
tasks they own. An expired wait is reported (log, ``on_pipeline_error`` and ``task.timeouts``), never hung.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from apipeline.errors import PipelineError, PipelineTimeoutError
from apipeline.frames import (
    CancelFrame,
    DataFrame,
    EndFrame,
    ErrorFrame,
    Frame,
    MetricsFrame,
    StartFrame,
    StopTaskFrame,
    SystemFrame,
)
from apipeline.processors.frame_processor import DOWNSTREAM, UPSTREAM, FrameDirection, FrameProcessor
from apipeline.processors.frame_queue import FrameQueue

logger = logging.getLogger("apipeline")


@dataclass
class PipelineParams:
    """Settings of a run. Timeouts are in seconds."""

    allow_interruptions: bool = False
    enable_metrics: bool = False
    report_only_initial_ttfb: bool = False
    metrics_interval_s: float = 1.0
    audio_in_sample_rate: int | None = None
    audio_out_sample_rate: int | None = None
    start_timeout: float = 10.0
    end_timeout: float = 30.0
    cancel_timeout: float = 5.0
    cleanup_timeout: float = 5.0
    max_input_queue_size: int | None = None
    latency_window: int = 10_000
    check_formats: bool = True


class _TaskSource(FrameProcessor):
    def __init__(self, task: PipelineTask) -> None:
        super().__init__(name=f"{task.name}.source")
        self._task = task
        self._started = True

    async def receive(self, frame: Frame, direction: FrameDirection) -> None:
        if direction is UPSTREAM:
            await self._task._upstream(frame)
        else:
            await self.push_frame(frame, direction)


class _TaskSink(FrameProcessor):
    def __init__(self, task: PipelineTask) -> None:
        super().__init__(name=f"{task.name}.sink")
        self._task = task
        self._started = True

    async def receive(self, frame: Frame, direction: FrameDirection) -> None:
        if direction is DOWNSTREAM:
            await self._task._downstream(frame)
        else:
            await self.push_frame(frame, direction)


class PipelineTask:
    """Runs a pipeline: ``await task.queue_frames([...]); await task.stop_when_done(); await task.run()``."""

    def __init__(
        self, pipeline: FrameProcessor, params: PipelineParams | None = None, *, name: str | None = None
    ):
        self.pipeline = pipeline
        self.params = params or PipelineParams()
        self.name = name or f"PipelineTask#{id(self) & 0xFFFF:x}"
        self._source = _TaskSource(self)
        self._sink = _TaskSink(self)
        self._source.link(pipeline)
        pipeline.link(self._sink)
        size = self.params.max_input_queue_size or sys.maxsize
        self._input = FrameQueue(size, "block")
        self._early_system: list[SystemFrame] = []
        self._handlers: dict[str, list[Any]] = {}
        self.errors: list[ErrorFrame] = []
        self.timeouts: list[str] = []
        self.metrics: list[MetricsFrame] = []
        self.latencies_ns: deque[int] = deque(maxlen=self.params.latency_window)
        self.frames_delivered = 0
        self._running = False
        self._finished = False
        self._end_queued = False
        self._start_seen: asyncio.Event | None = None
        self._end_seen: asyncio.Event | None = None
        self._cancel_seen: asyncio.Event | None = None
        self._stop_requested: asyncio.Event | None = None
        self._cancel_reason: str | None = None
        self._pump: asyncio.Task[None] | None = None

    # -- public API --------------------------------------------------------------------------------

    def has_finished(self) -> bool:
        return self._finished

    async def queue_frame(self, frame: Frame) -> None:
        """Queue a frame for the pipeline (allowed before ``run``). System frames go in at once."""
        if self._finished:
            raise PipelineError(f"{self.name} has finished; cannot queue {frame.name}")
        if isinstance(frame, SystemFrame):
            if isinstance(frame, CancelFrame):
                await self.cancel()
            elif isinstance(frame, StopTaskFrame):
                await self.stop_when_done()
            elif self._running and self._start_seen is not None and self._start_seen.is_set():
                await self._inject(frame)
            else:
                self._early_system.append(frame)
            return
        if isinstance(frame, EndFrame):
            self._end_queued = True
        await self._input.put(frame, DOWNSTREAM)

    async def queue_frames(self, frames: Iterable[Frame]) -> None:
        for frame in frames:
            await self.queue_frame(frame)

    async def stop_when_done(self) -> None:
        """End the run after every frame queued so far has reached the end of the pipeline."""
        if not self._end_queued and not self._finished:
            await self.queue_frame(EndFrame())

    async def cancel(self, reason: str = "cancelled") -> None:
        """Stop now, without draining; returns once the run has been asked to stop."""
        if self._finished:
            return
        if self._cancel_reason is None:
            self._cancel_reason = reason
        if self._stop_requested is not None:
            self._stop_requested.set()
        elif not self._running:
            self._finished = True  # cancelled before it ran: run() returns at once

    def event_handler(self, event: str) -> Any:
        """Decorator: ``@task.event_handler("on_pipeline_error")`` (handlers take ``(task, arg)``)."""

        def register(fn: Any) -> Any:
            self._handlers.setdefault(event, []).append(fn)
            return fn

        return register

    def latency_percentiles(self) -> dict[str, float]:
        """End-to-end latency (ms) of data frames from their ``pts`` to the sink: p50, p99, max."""
        lat = sorted(self.latencies_ns)
        if not lat:
            return {"count": 0, "p50_ms": 0.0, "p99_ms": 0.0, "max_ms": 0.0}
        return {
            "count": len(lat),
            "p50_ms": lat[len(lat) // 2] / 1e6,
            "p99_ms": lat[min(len(lat) - 1, int(len(lat) * 0.99))] / 1e6,
            "max_ms": lat[-1] / 1e6,
        }

    # -- the run -----------------------------------------------------------------------------------

    async def run(self) -> None:
        """Run until the pipeline ends (EndFrame at the sink) or is cancelled; then clean up."""
        if self._running:
            raise PipelineError(f"{self.name} is already running")
        if self._finished:
            return
        self._running = True
        self._start_seen = asyncio.Event()
        self._end_seen = asyncio.Event()
        self._cancel_seen = asyncio.Event()
        self._stop_requested = asyncio.Event()
        if self._cancel_reason is not None:
            self._stop_requested.set()
        try:
            await self._run()
        finally:
            await self._cleanup()
            self._finished = True
            self._running = False
            await self._emit("on_pipeline_finished", None)

    async def _run(self) -> None:
        if self.params.check_formats:
            from apipeline.pipeline.negotiation import check_links

            check_links(self.pipeline)
        for proc in self.pipeline.walk():  # pipelines do not recurse: each processor is set up once
            if not await self._bounded(proc.setup(), self.params.start_timeout, f"{proc.name}.setup()"):
                self._cancel_reason = f"{proc.name} failed to set up; start refused"
                return
        p = self.params
        start = StartFrame(
            allow_interruptions=p.allow_interruptions,
            enable_metrics=p.enable_metrics,
            report_only_initial_ttfb=p.report_only_initial_ttfb,
            metrics_interval_s=p.metrics_interval_s,
            audio_in_sample_rate=p.audio_in_sample_rate,
            audio_out_sample_rate=p.audio_out_sample_rate,
        )
        start.pts = time.monotonic_ns()
        assert self._start_seen and self._stop_requested and self._end_seen
        await self._source.push_frame(start)
        if not await self._wait(self._start_seen, p.start_timeout, "StartFrame to reach the sink"):
            self._cancel_reason = "start timeout"
            await self._do_cancel()
            return
        await self._emit("on_pipeline_started", start)
        early, self._early_system = self._early_system, []
        for frame in early:
            await self._inject(frame)
        self._pump = asyncio.get_running_loop().create_task(self._pump_input(), name=f"{self.name}.pump")
        end_wait = asyncio.ensure_future(self._end_seen.wait())
        stop_wait = asyncio.ensure_future(self._stop_requested.wait())
        try:
            await asyncio.wait({end_wait, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            end_wait.cancel()
            stop_wait.cancel()
        if not self._end_seen.is_set():
            await self._do_cancel()

    async def _pump_input(self) -> None:
        queue = self._input
        push = self._source.push_frame
        clock = time.monotonic_ns
        while True:
            frame, _ = await queue.get()
            if frame.pts is None:
                frame.pts = clock()
            await push(frame)
            if isinstance(frame, EndFrame):
                assert self._end_seen is not None
                if not await self._wait(
                    self._end_seen, self.params.end_timeout, "EndFrame to reach the sink"
                ):
                    await self.cancel("end timeout")
                return

    async def _inject(self, frame: Frame) -> None:
        if frame.pts is None:
            frame.pts = time.monotonic_ns()
        await self._source.push_frame(frame)

    async def _do_cancel(self) -> None:
        assert self._cancel_seen is not None
        cancel = CancelFrame()
        cancel.pts = time.monotonic_ns()
        await self._bounded(self._source.push_frame(cancel), self.params.cancel_timeout, "CancelFrame push")
        pump, self._pump = self._pump, None
        if pump is not None and not pump.done():
            pump.cancel()
            await self._bounded(_swallow_cancel(pump), self.params.cancel_timeout, "pump to stop")

    async def _cleanup(self) -> None:
        pump, self._pump = self._pump, None
        if pump is not None and not pump.done():
            pump.cancel()
            await _swallow_cancel(pump)
        for proc in reversed(self.pipeline.walk()):
            if type(proc).cleanup is FrameProcessor.cleanup:
                continue
            await self._bounded(proc.cleanup(), self.params.cleanup_timeout, f"{proc.name}.cleanup()")

    # -- waits -------------------------------------------------------------------------------------

    async def _wait(self, event: asyncio.Event, timeout: float, what: str) -> bool:
        if event.is_set():
            return True
        try:
            await asyncio.wait_for(event.wait(), timeout)
            return True
        except asyncio.TimeoutError:
            await self._report_timeout(f"{self.name}: timed out after {timeout} s waiting for {what}")
            return False

    async def _bounded(self, coro: Any, timeout: float, what: str) -> bool:
        """Await ``coro`` at most ``timeout`` s; report a timeout or an exception; True on success."""
        try:
            await asyncio.wait_for(coro, timeout)
            return True
        except asyncio.TimeoutError:
            await self._report_timeout(f"{self.name}: {what} did not finish within {timeout} s")
        except Exception as exc:
            error = ErrorFrame(f"{what} failed: {type(exc).__name__}: {exc}", processor=self.name)
            error.metadata["exception"] = type(exc).__name__
            await self._on_error(error)
        return False

    async def _report_timeout(self, message: str) -> None:
        logger.warning("%s", message)
        self.timeouts.append(message)
        error = ErrorFrame(message, processor=self.name)
        error.metadata["exception"] = PipelineTimeoutError.__name__
        await self._on_error(error)

    # -- frames reaching the ends ------------------------------------------------------------------

    async def _upstream(self, frame: Frame) -> None:
        if isinstance(frame, ErrorFrame):
            await self._on_error(frame)
        elif isinstance(frame, StopTaskFrame):
            if not self._end_queued and not self._finished:
                self._end_queued = True
                await self._input.put(EndFrame(), DOWNSTREAM)
        elif isinstance(frame, CancelFrame):
            await self.cancel("CancelFrame pushed upstream")
        else:
            await self._emit("on_frame_reached_upstream", frame)

    async def _downstream(self, frame: Frame) -> None:
        if isinstance(frame, DataFrame):
            self.frames_delivered += 1
            if frame.pts is not None:
                self.latencies_ns.append(time.monotonic_ns() - frame.pts)
            if "on_frame_reached_downstream" in self._handlers:
                await self._emit("on_frame_reached_downstream", frame)
            return
        if isinstance(frame, MetricsFrame):
            self.metrics.append(frame)
            if len(self.metrics) > 1000:
                del self.metrics[:500]
            await self._emit("on_metrics", frame)
        elif isinstance(frame, StartFrame):
            assert self._start_seen is not None
            self._start_seen.set()
        elif isinstance(frame, EndFrame):
            assert self._end_seen is not None
            self._end_seen.set()
        elif isinstance(frame, CancelFrame):
            assert self._cancel_seen is not None
            self._cancel_seen.set()
        elif isinstance(frame, ErrorFrame):
            await self._on_error(frame)
        if "on_frame_reached_downstream" in self._handlers:
            await self._emit("on_frame_reached_downstream", frame)

    async def _on_error(self, frame: ErrorFrame) -> None:
        self.errors.append(frame)
        if len(self.errors) > 1000:
            del self.errors[:500]
        await self._emit("on_pipeline_error", frame)
        if frame.fatal:
            await self.cancel(f"fatal error: {frame.error}")

    async def _emit(self, event: str, arg: Any) -> None:
        for fn in self._handlers.get(event, ()):
            try:
                result = fn(self, arg)
                if result is not None:
                    await result
            except Exception:
                logger.exception("%s: handler for %s failed", self.name, event)


async def _swallow_cancel(task: asyncio.Task[Any]) -> None:
    try:
        await task
    except asyncio.CancelledError:
        pass
    except Exception:
        logger.exception("task %s failed while stopping", task.get_name())
