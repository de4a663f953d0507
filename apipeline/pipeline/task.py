"""The task: drives one pipeline run from ``StartFrame`` to its end.

Layout: ``[task source] -> pipeline -> [task sink]``. Frames queued with :meth:`PipelineTask.queue_frame`
wait in the task's input queue and are pushed in by a pump task; system frames skip that queue and are
pushed in at once from the caller, so they overtake queued data even while the pipeline applies
backpressure. Every way a run can end funnels through :meth:`PipelineTask.run`, and every wait in it is
bounded (see "Bounded waits" in docs/design.md):

* start: each ``setup()`` and the ``StartFrame``'s trip to the sink within ``start_timeout`` each, and
  a ``cancel()`` interrupts them at once.
* ``EndFrame`` (``stop_when_done``, a queued ``EndFrame``, or ``StopTaskFrame`` from a processor): the
  pump pushes it after all data queued before it; the run ends when it reaches the sink, at most
  ``end_timeout`` after the end was requested (or after the start, if requested before ``run()``).
* ``cancel()``/``CancelFrame``/a fatal ``ErrorFrame``/an expired wait: a ``CancelFrame`` is pushed in
  and the pump is cancelled, all within ``cancel_timeout`` of the request.
* cleanup: each processor's ``cleanup()`` within ``cleanup_timeout``.

Each such step runs in a task of its own; a step that outlives its bound is cancelled, and one that
then still will not finish (it swallows ``CancelledError``) is abandoned: listed in
``task.abandoned``, reported in ``task.timeouts``, ``task.errors`` and the log, never waited on again.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

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
from apipeline.pipeline.pipeline import Edge
from apipeline.processors.frame_processor import DOWNSTREAM, FrameDirection, FrameProcessor
from apipeline.processors.frame_queue import FrameQueue

logger = logging.getLogger("apipeline")

#: A task event handler: ``fn(task, arg)``, a plain function or a coroutine function.
TaskEventHandler = Callable[["PipelineTask", Any], Awaitable[None] | None]
_Handler = TypeVar("_Handler", bound=TaskEventHandler)


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


EVENTS = (
    "on_pipeline_started",
    "on_pipeline_finished",
    "on_pipeline_error",
    "on_frame_reached_upstream",
    "on_frame_reached_downstream",
    "on_metrics",
)


class PipelineTask:
    """Runs a pipeline: ``await task.queue_frames([...]); await task.stop_when_done(); await task.run()``."""

    def __init__(
        self, pipeline: FrameProcessor, params: PipelineParams | None = None, *, name: str | None = None
    ):
        self.pipeline = pipeline
        self.params = params or PipelineParams()
        self.name = name or f"PipelineTask#{id(self) & 0xFFFF:x}"
        self._source = Edge(f"{self.name}.source", self._from_pipeline)
        self._sink = Edge(f"{self.name}.sink", self._from_pipeline)
        self._source.link(pipeline)
        pipeline.link(self._sink)
        size = self.params.max_input_queue_size or sys.maxsize
        self._input = FrameQueue(size, "block")
        self._early_system: list[SystemFrame] = []
        self._handlers: dict[str, list[TaskEventHandler]] = {}
        self.errors: list[ErrorFrame] = []
        self.timeouts: list[str] = []
        self.abandoned: list[asyncio.Task[Any]] = []
        self.metrics: list[MetricsFrame] = []
        self.latencies_ns: deque[int] = deque(maxlen=self.params.latency_window)
        self.frames_delivered = 0
        self._running = False
        self._finished = False
        self._end_requested_at: float | None = None  # loop.time() of the first end request
        self._cancel_requested_at: float | None = None
        self._start_seen = asyncio.Event()
        self._end_seen = asyncio.Event()
        # Resolved when an end or a cancel is requested or the EndFrame reaches the sink: the run task
        # (the only waiter) re-evaluates. A plain future, so waiting needs no helper task.
        self._wake: asyncio.Future[None] | None = None
        self._cancel_reason: str | None = None
        self._pump: asyncio.Task[None] | None = None

    # -- public API --------------------------------------------------------------------------------

    def has_finished(self) -> bool:
        return self._finished

    async def queue_frame(self, frame: Frame) -> None:
        """Queue a frame for the pipeline (allowed before ``run``). System frames go in at once.

        Raises :class:`~apipeline.errors.PipelineError` once the task has finished, and for data and
        control frames once the end has been requested (they could never be delivered).
        """
        if self._finished:
            raise PipelineError(f"{self.name} has finished; cannot queue {frame.name}")
        if isinstance(frame, SystemFrame):
            if isinstance(frame, CancelFrame):
                await self.cancel()
            elif isinstance(frame, StopTaskFrame):
                await self.stop_when_done()
            elif self._running and self._start_seen.is_set():
                await self._inject(frame)
            else:
                self._early_system.append(frame)
            return
        if self._end_requested_at is not None:
            raise PipelineError(
                f"{self.name}: cannot queue {frame.name}: the run is ending "
                "(stop_when_done(), an EndFrame or a StopTaskFrame came first)"
            )
        if isinstance(frame, EndFrame):
            self._request_end(frame)
            return
        await self._input.put(frame, DOWNSTREAM)

    async def queue_frames(self, frames: Iterable[Frame]) -> None:
        for frame in frames:
            await self.queue_frame(frame)

    async def stop_when_done(self) -> None:
        """End the run after every frame queued so far has reached the end of the pipeline."""
        if self._end_requested_at is None and not self._finished:
            self._request_end(EndFrame())

    def _request_end(self, frame: EndFrame) -> None:
        # Never waits: the EndFrame may exceed the input queue's bound by one, so a processor asking
        # for the end from inside the pump (StopTaskFrame) cannot deadlock against a full queue.
        self._end_requested_at = asyncio.get_running_loop().time()
        self._input.put_over_capacity(frame, DOWNSTREAM)
        self._poke()

    async def cancel(self, reason: str = "cancelled") -> None:
        """Stop now, without draining; ``run()`` returns within ``cancel_timeout`` (then cleans up)."""
        self.request_cancel(reason)

    def request_cancel(self, reason: str = "cancelled") -> None:
        """:meth:`cancel` for synchronous callers (signal handlers)."""
        if self._finished:
            return
        if self._cancel_reason is None:
            self._cancel_reason = reason
            self._cancel_requested_at = asyncio.get_running_loop().time()
        if not self._running:
            self._finished = True  # cancelled before it ran: run() returns at once
        self._poke()

    def _poke(self) -> None:
        wake = self._wake
        if wake is not None and not wake.done():
            wake.set_result(None)

    def _new_wake(self) -> asyncio.Future[None]:
        self._wake = wake = asyncio.get_running_loop().create_future()
        return wake

    def event_handler(self, event: str) -> Callable[[_Handler], _Handler]:
        """Decorator: ``@task.event_handler("on_pipeline_error")`` (handlers take ``(task, arg)``).

        Events: ``on_pipeline_started``, ``on_pipeline_finished``, ``on_pipeline_error``,
        ``on_frame_reached_upstream``, ``on_frame_reached_downstream``, ``on_metrics``. Any other name
        raises :class:`~apipeline.errors.PipelineError`. A handler that raises is logged and recorded in
        ``task.errors``.
        """
        if event not in EVENTS:
            raise PipelineError(f"{self.name}: unknown event {event!r}; valid events: {', '.join(EVENTS)}")

        def register(fn: _Handler) -> _Handler:
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
        try:
            if await self._start():
                await self._main()
            if not self._end_seen.is_set():
                await self._do_cancel()
        finally:
            await self._cleanup()
            self._finished = True
            self._running = False
            await self._emit("on_pipeline_finished", None)

    async def _start(self) -> bool:
        p = self.params
        if p.check_formats:
            from apipeline.pipeline.negotiation import check_links

            check_links(self.pipeline)
        for proc in self.pipeline.walk():  # pipelines do not recurse: each processor is set up once
            if not await self._step(proc.setup(), p.start_timeout, f"{proc.name}.setup()"):
                if self._cancel_reason is None:
                    self.request_cancel(f"{proc.name} failed to set up; start refused")
                return False
        start = StartFrame(
            allow_interruptions=p.allow_interruptions,
            enable_metrics=p.enable_metrics,
            report_only_initial_ttfb=p.report_only_initial_ttfb,
            metrics_interval_s=p.metrics_interval_s,
            audio_in_sample_rate=p.audio_in_sample_rate,
            audio_out_sample_rate=p.audio_out_sample_rate,
        )
        start.pts = time.monotonic_ns()
        if not await self._step(self._push_start(start), p.start_timeout, "StartFrame to reach the sink"):
            if self._cancel_reason is None:
                self.request_cancel("start timeout")
            return False
        await self._emit("on_pipeline_started", start)
        early, self._early_system = self._early_system, []
        if early and not await self._step(
            self._inject_all(early), p.start_timeout, "system frames queued before the start"
        ):
            return self._cancel_reason is None
        return True

    async def _inject_all(self, frames: list[SystemFrame]) -> None:
        for frame in frames:
            await self._inject(frame)

    async def _push_start(self, start: StartFrame) -> None:
        await self._source.push_frame(start)
        await self._start_seen.wait()

    async def _main(self) -> None:
        """Wait for the end at the sink, a cancel request, the end deadline, or the pump's death."""
        loop = asyncio.get_running_loop()
        started_at = loop.time()
        self._pump = pump = loop.create_task(self._pump_input(), name=f"{self.name}.pump")
        while not self._end_seen.is_set() and self._cancel_reason is None:
            waits: set[asyncio.Future[Any]] = {self._new_wake()}
            if not pump.done():
                waits.add(pump)
            timeout = None
            if self._end_requested_at is not None:
                deadline = max(self._end_requested_at, started_at) + self.params.end_timeout
                timeout = max(0.0, deadline - loop.time())
            done, _ = await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            if self._end_seen.is_set() or self._cancel_reason is not None:
                break
            if pump in done:
                await self._pump_died(pump)
            elif not done:
                await self._report_timeout(
                    f"{self.name}: timed out after {self.params.end_timeout} s waiting for "
                    "EndFrame to reach the sink"
                )
                self.request_cancel("end timeout")

    async def _pump_died(self, pump: asyncio.Task[None]) -> None:
        if pump.cancelled():
            message = "the input pump was cancelled by something else"
        elif (exc := pump.exception()) is not None:
            message = f"the input pump died: {type(exc).__name__}: {exc}"
        else:
            return  # it pushed the EndFrame and finished: keep waiting for the sink
        error = ErrorFrame(f"{self.name}: {message}", processor=self.name, fatal=True)
        await self._on_error(error)
        self.request_cancel(message)

    async def _pump_input(self) -> None:
        """Push queued frames in, one at a time. Supervised: an exception (or a ``CancelledError``
        that is not our own cancellation) escaping a push is reported and the pump goes on."""
        queue = self._input
        push = self._source.push_frame
        clock = time.monotonic_ns
        while True:
            frame, _ = await queue.get()
            if frame.pts is None:
                frame.pts = clock()
            try:
                await push(frame)
            except asyncio.CancelledError as exc:
                current = asyncio.current_task()
                if current is None or current.cancelling():
                    raise
                await self._report_exception(exc, f"pushing {frame.name}")
            except Exception as exc:
                await self._report_exception(exc, f"pushing {frame.name}")
            if isinstance(frame, EndFrame):
                return

    async def _inject(self, frame: Frame) -> None:
        if frame.pts is None:
            frame.pts = time.monotonic_ns()
        await self._source.push_frame(frame)

    def _cancel_budget(self) -> float:
        """Seconds left until ``cancel_timeout`` after the cancel request (at least one tick)."""
        loop = asyncio.get_running_loop()
        requested = self._cancel_requested_at if self._cancel_requested_at is not None else loop.time()
        return max(0.001, requested + self.params.cancel_timeout - loop.time())

    async def _do_cancel(self) -> None:
        if self._cancel_reason is None:
            self.request_cancel("cancelled")
        if self._start_seen.is_set() or self._started_any():
            cancel = CancelFrame()
            cancel.pts = time.monotonic_ns()
            await self._step(
                self._source.push_frame(cancel), self._cancel_budget(), "CancelFrame push", stoppable=False
            )
        pump, self._pump = self._pump, None
        if pump is not None and not pump.done():
            await self._reap(pump, "pump", self._cancel_budget())

    def _started_any(self) -> bool:
        return any(p.started for p in self.pipeline.walk())

    async def _cleanup(self) -> None:
        """Clean up every processor, even if ``run()`` is cancelled meanwhile (each step is bounded;
        a cancellation is re-raised once all of them are done), then close what their cleanup left:
        no worker outlives ``run()`` because a user's ``cleanup()`` failed or timed out."""
        cancelled = False
        pump, self._pump = self._pump, None
        if pump is not None and not pump.done():
            try:
                await self._reap(pump, "pump", self.params.cancel_timeout)
            except asyncio.CancelledError:
                cancelled = True
        for proc in reversed(self.pipeline.walk()):
            steps: list[tuple[Callable[[], Awaitable[None]], str]] = []
            if type(proc).cleanup is not FrameProcessor.cleanup:
                steps.append((proc.cleanup, f"{proc.name}.cleanup()"))
            steps.append((proc._framework_close, f"{proc.name} (framework close)"))
            for fn, what in steps:
                if what.endswith("(framework close)") and not proc._framework_needs_close():
                    continue  # its cleanup() closed it (the usual case)
                try:
                    await self._step(fn(), self.params.cleanup_timeout, what, stoppable=False)
                except asyncio.CancelledError:
                    cancelled = True
        for proc in self.pipeline.walk():  # what would not stop is reported, by name
            for leftover in proc._framework_tasks():
                if leftover not in self.abandoned:
                    self.abandoned.append(leftover)
                    await self._report_timeout(
                        f"{self.name}: abandoned {leftover.get_name()}: it did not stop when cancelled "
                        "(a processor in it swallows CancelledError?)"
                    )
        if cancelled:
            raise asyncio.CancelledError

    # -- bounded steps -----------------------------------------------------------------------------

    async def _step(self, work: Awaitable[Any], timeout: float, what: str, *, stoppable: bool = True) -> bool:
        """Run ``coro`` in a task of its own for at most ``timeout`` s (and, if ``stoppable``, only
        until a cancel is requested). True if it finished without error; otherwise it is reported,
        cancelled, and abandoned if it will not finish within the cancel budget."""
        loop = asyncio.get_running_loop()
        coro = work if asyncio.iscoroutine(work) else _await(work)
        step = loop.create_task(coro, name=f"{self.name}: {what}")
        deadline = loop.time() + timeout
        try:
            while True:
                left = deadline - loop.time()
                if step.done() or left <= 0 or (stoppable and self._cancel_reason is not None):
                    break
                waits: set[asyncio.Future[Any]] = {step}
                if stoppable:
                    waits.add(self._new_wake())  # an end request wakes it too: the loop just waits on
                await asyncio.wait(waits, timeout=left, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            # run() itself is being cancelled (its caller gave up): the step must not outlive it.
            if not step.done():
                step.cancel()
                await asyncio.wait({step}, timeout=self.params.cancel_timeout)
                if not step.done():
                    self.abandoned.append(step)
                    logger.warning("%s: abandoned %s while being cancelled", self.name, what)
            raise
        if step.done():
            if step.cancelled():
                await self._report_exception(asyncio.CancelledError(), what)
                return False
            exc = step.exception()
            if exc is not None:
                await self._report_exception(exc, what)
                return False
            return True
        if not (stoppable and self._cancel_reason is not None):
            await self._report_timeout(f"{self.name}: {what} did not finish within {timeout} s")
        await self._reap(step, what, self._cancel_budget())
        return False

    async def _reap(self, task: asyncio.Task[Any], what: str, budget: float) -> None:
        """Cancel ``task`` and wait for it at most ``budget`` s; abandon (and report) it after that."""
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=budget)
        if done:
            if not task.cancelled() and task.exception() is not None:
                logger.debug(
                    "%s: %s failed while being cancelled", self.name, what, exc_info=task.exception()
                )
            return
        self.abandoned.append(task)
        await self._report_timeout(
            f"{self.name}: abandoned {what}: it did not stop within {budget:.3g} s of being cancelled "
            "(it swallows CancelledError?)"
        )

    async def _report_timeout(self, message: str) -> None:
        logger.warning("%s", message)
        self.timeouts.append(message)
        error = ErrorFrame(message, processor=self.name)
        error.metadata["exception"] = PipelineTimeoutError.__name__
        error.exception = PipelineTimeoutError(message)
        await self._on_error(error)

    async def _report_exception(self, exc: BaseException, what: str) -> None:
        logger.error("%s: %s failed: %s: %s", self.name, what, type(exc).__name__, exc, exc_info=exc)
        error = ErrorFrame(f"{what} failed: {type(exc).__name__}: {exc}", processor=self.name)
        error.metadata["exception"] = type(exc).__name__
        error.exception = exc
        await self._on_error(error)

    # -- frames reaching the ends ------------------------------------------------------------------

    def _from_pipeline(self, frame: Frame, direction: FrameDirection) -> Coroutine[Any, Any, None]:
        return self._downstream(frame) if direction is DOWNSTREAM else self._upstream(frame)

    async def _upstream(self, frame: Frame) -> None:
        if isinstance(frame, ErrorFrame):
            await self._on_error(frame)
        elif isinstance(frame, StopTaskFrame):
            if self._end_requested_at is None and not self._finished:
                self._request_end(EndFrame())
        elif isinstance(frame, CancelFrame):
            self.request_cancel("CancelFrame pushed upstream")
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
            self._start_seen.set()
        elif isinstance(frame, EndFrame):
            self._end_seen.set()
            self._poke()
        elif isinstance(frame, ErrorFrame):
            await self._on_error(frame)
        if "on_frame_reached_downstream" in self._handlers:
            await self._emit("on_frame_reached_downstream", frame)

    async def _on_error(self, frame: ErrorFrame) -> None:
        self._record_error(frame)
        await self._emit("on_pipeline_error", frame)
        if frame.fatal:
            self.request_cancel(f"fatal error: {frame.error}")

    def _record_error(self, frame: ErrorFrame) -> None:
        self.errors.append(frame)
        if len(self.errors) > 1000:
            del self.errors[:500]

    async def _emit(self, event: str, arg: Any) -> None:
        for fn in self._handlers.get(event, ()):
            try:
                result = fn(self, arg)
                if result is not None:
                    await result
            except Exception as exc:
                logger.error("%s: handler %r for %s failed", self.name, fn, event, exc_info=exc)
                error = ErrorFrame(
                    f"{self.name}: handler for {event} failed: {type(exc).__name__}: {exc}",
                    processor=self.name,
                )
                error.metadata["exception"] = type(exc).__name__
                error.exception = exc
                self._record_error(error)  # recorded, not re-emitted: a failing error handler cannot loop


async def _await(work: Awaitable[Any]) -> Any:
    return await work
