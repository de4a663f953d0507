"""Helpers to test processors and pipelines, the same ones apipeline's own tests use.

Running things:

* ``await run_processor(proc, frames)`` runs a processor (or pipeline) in a real :class:`PipelineTask`
  with the given input frames followed by ``EndFrame`` and returns what came out downstream;
  :func:`run_pipeline` returns every frame and the errors as a :class:`RunResult`.
* :class:`RecordingSink` records frames in both directions wherever it is placed.

Adversaries (the processors apipeline's stress suite throws at the core; put them next to your own
processors to see that your pipeline keeps its promises). Each comes as a synchronous class and an
``Async...`` variant with its own queue and worker:

* :class:`SlowProcessor`: takes ``delay`` seconds per data frame.
* :class:`StuckProcessor`: hangs for ever (until :meth:`~StuckProcessor.release`) in ``setup``,
  ``start``, ``stop`` or on a data frame.
* :class:`CancelSwallower`: hangs on a data frame and swallows the ``CancelledError`` sent to stop it.
* :class:`RaisingProcessor`: raises on every ``every``-th data frame.
* :class:`ReentrantProcessor`: sends a derived frame back into itself for each data frame.
* :class:`HoldBackProcessor`: holds the last ``frames`` data frames back and releases them later
  (as a VAD pre-roll does), so frames leave it after newer ones entered.
* :class:`UpstreamAnswerer`: answers each data frame with a new frame pushed upstream.

Checking: :class:`InvariantChecker` watches a :class:`PipelineTask` run and reports every broken
promise (order, duplicates, unexplained losses, Start/End once per processor, bounded ``run()``,
tasks left behind, one worker per asynchronous processor).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from apipeline.frames import (
    ControlFrame,
    DataFrame,
    EndFrame,
    ErrorFrame,
    Frame,
    StartFrame,
    StartInterruptionFrame,
    SystemFrame,
    TextFrame,
)
from apipeline.pipeline.pipeline import Pipeline
from apipeline.pipeline.task import PipelineParams, PipelineTask
from apipeline.processors.async_frame_processor import AsyncFrameProcessor
from apipeline.processors.frame_processor import FrameDirection, FrameProcessor

__all__ = [
    "AsyncCancelSwallower",
    "AsyncHoldBackProcessor",
    "AsyncRaisingProcessor",
    "AsyncReentrantProcessor",
    "AsyncSlowProcessor",
    "AsyncStuckProcessor",
    "AsyncUpstreamAnswerer",
    "CancelSwallower",
    "HoldBackProcessor",
    "InvariantChecker",
    "InvariantViolation",
    "RaisingProcessor",
    "RecordingSink",
    "ReentrantProcessor",
    "RunResult",
    "SlowProcessor",
    "StuckProcessor",
    "UpstreamAnswerer",
    "run_pipeline",
    "run_processor",
]


class RecordingSink(FrameProcessor):
    """Records every frame that reaches it (both directions) and passes it on."""

    def __init__(self, *, name: str | None = None) -> None:
        super().__init__(name=name)
        self.downstream: list[Frame] = []
        self.upstream: list[Frame] = []

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        (self.downstream if direction is FrameDirection.DOWNSTREAM else self.upstream).append(frame)
        await self.push_frame(frame, direction)

    def data(self) -> list[Frame]:
        return [f for f in self.downstream if isinstance(f, DataFrame)]


@dataclass
class RunResult:
    """What a :func:`run_processor` run produced."""

    downstream: list[Frame] = field(default_factory=list)
    errors: list[ErrorFrame] = field(default_factory=list)
    task: PipelineTask | None = None

    @property
    def data(self) -> list[Frame]:
        return [f for f in self.downstream if isinstance(f, DataFrame)]

    def of_type(self, cls: type[Frame]) -> list[Frame]:
        return [f for f in self.downstream if isinstance(f, cls)]


async def run_processor(
    processor: FrameProcessor | Sequence[FrameProcessor],
    frames: Iterable[Frame],
    *,
    params: PipelineParams | None = None,
    include_control: bool = False,
) -> list[Frame]:
    """Run ``processor`` on ``frames`` (then ``EndFrame``) and return the downstream output.

    By default only data frames are returned; ``include_control=True`` returns control frames
    (``StartFrame``/``EndFrame`` included) as well.
    """
    result = await run_pipeline(processor, frames, params=params)
    if include_control:
        return [f for f in result.downstream if isinstance(f, (DataFrame, ControlFrame))]
    return result.data


async def run_pipeline(
    processor: FrameProcessor | Sequence[FrameProcessor],
    frames: Iterable[Frame],
    *,
    params: PipelineParams | None = None,
    end: bool = True,
) -> RunResult:
    """Like :func:`run_processor`, returning every frame (system frames too) and the errors."""
    procs = [processor] if isinstance(processor, FrameProcessor) else list(processor)
    sink = RecordingSink()
    task = PipelineTask(Pipeline([*procs, sink]), params or PipelineParams())
    await task.queue_frames(frames)
    if end:
        await task.stop_when_done()
    await task.run()
    return RunResult(downstream=list(sink.downstream), errors=list(task.errors), task=task)


# ---- adversaries -------------------------------------------------------------------------------------


class SlowProcessor(FrameProcessor):
    """Takes ``delay`` seconds (``asyncio.sleep``) over each data frame, then passes it on.

    Example::

        slow = AsyncSlowProcessor(delay=0.01, max_queue_size=4, overflow="drop_oldest")
        await run_processor([slow], [TextFrame(str(i)) for i in range(100)])
    """

    def __init__(self, delay: float = 0.001, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.delay = delay

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, DataFrame):
            await asyncio.sleep(self.delay)
        await self.push_frame(frame, direction)


class AsyncSlowProcessor(SlowProcessor, AsyncFrameProcessor):
    """:class:`SlowProcessor` with its own queue and worker."""


class StuckProcessor(FrameProcessor):
    """Hangs for ever in one place until :meth:`release` is called.

    ``where`` is ``"setup"``, ``"start"``, ``"stop"`` or ``"data"`` (the ``after``-th data frame and
    every one after it, counting from 0). ``entered`` is set once it hangs. Use it to check that a
    pipeline's waits are bounded::

        stuck = StuckProcessor(where="data")
        task = PipelineTask(Pipeline([stuck]), PipelineParams(end_timeout=0.2))
        await task.queue_frames([TextFrame("x"), EndFrame()])
        await asyncio.wait_for(task.run(), 2.0)   # returns: the end wait is bounded
        assert task.timeouts
    """

    _WHERE = ("setup", "start", "stop", "data")

    def __init__(self, where: str = "data", *, after: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if where not in self._WHERE:
            raise ValueError(f"where must be one of {self._WHERE}, got {where!r}")
        self.where = where
        self.after = after
        self.entered = asyncio.Event()
        self._released = asyncio.Event()
        self._seen = 0

    def release(self) -> None:
        """Let every hang end (now and later)."""
        self._released.set()

    async def _hang(self) -> None:
        self.entered.set()
        await self._released.wait()

    async def setup(self) -> None:
        await super().setup()
        if self.where == "setup":
            await self._hang()

    async def start(self, frame: StartFrame) -> None:
        await super().start(frame)
        if self.where == "start":
            await self._hang()

    async def stop(self, frame: EndFrame) -> None:
        await super().stop(frame)
        if self.where == "stop":
            await self._hang()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if self.where == "data" and isinstance(frame, DataFrame):
            self._seen += 1
            if self._seen > self.after:
                await self._hang()
        await self.push_frame(frame, direction)


class AsyncStuckProcessor(StuckProcessor, AsyncFrameProcessor):
    """:class:`StuckProcessor` with its own queue and worker (the worker hangs)."""


class CancelSwallower(FrameProcessor):
    """Hangs on each data frame and swallows the ``CancelledError`` meant to stop it.

    It swallows ``times`` cancellations per frame (``None``: every one) and goes on waiting; it stops
    hanging when :meth:`release` is called. A framework that awaits such a task without a bound hangs
    with it; apipeline abandons it after the configured timeout and reports it. Call :meth:`release`
    at the end of your test so the abandoned task can finish::

        swallower = AsyncCancelSwallower()
        task = PipelineTask(Pipeline([swallower]), PipelineParams(cancel_timeout=0.2))
        ...
        await asyncio.wait_for(task.cancel(), 2.0)
        swallower.release()
    """

    def __init__(self, *, times: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.times = times
        self.swallowed = 0
        self.entered = asyncio.Event()
        self._released = asyncio.Event()

    def release(self) -> None:
        self._released.set()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, DataFrame):
            self.entered.set()
            swallowed = 0
            while not self._released.is_set():
                try:
                    await self._released.wait()
                except asyncio.CancelledError:
                    if self.times is not None and swallowed >= self.times:
                        raise
                    swallowed += 1
                    self.swallowed += 1
                    _uncancel()
        await self.push_frame(frame, direction)


class AsyncCancelSwallower(CancelSwallower, AsyncFrameProcessor):
    """:class:`CancelSwallower` with its own queue and worker (the worker swallows cancellation)."""


def _uncancel() -> None:
    task = asyncio.current_task()
    if task is not None:
        task.uncancel()


class RaisingProcessor(FrameProcessor):
    """Raises ``exception_type`` on every ``every``-th data frame (those frames are lost).

    The frames it raised on are kept in ``raised``, so a test can tell this loss from others::

        bad = RaisingProcessor(every=3)
        result = await run_pipeline([bad], frames)
        assert len(result.errors) == len(bad.raised)
    """

    def __init__(self, every: int = 1, *, exception_type: type[Exception] = RuntimeError, **kwargs: Any):
        super().__init__(**kwargs)
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        self.every = every
        self.exception_type = exception_type
        self.raised: list[Frame] = []
        self._count = 0

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, DataFrame):
            self._count += 1
            if self._count % self.every == 0:
                self.raised.append(frame)
                raise self.exception_type(f"{self.name}: refusing {frame.name} (adversary)")
        await self.push_frame(frame, direction)


class AsyncRaisingProcessor(RaisingProcessor, AsyncFrameProcessor):
    """:class:`RaisingProcessor` with its own queue and worker."""


class ReentrantProcessor(FrameProcessor):
    """For each downstream data frame: passes it on, then sends a derived frame back into *itself*.

    The derived frame is a :class:`~apipeline.frames.TextFrame` whose ``metadata["reentered_from"]``
    is the original frame's id; it passes straight through when it comes back. The re-entry goes
    through :meth:`~FrameProcessor.receive`, so an asynchronous variant queues into its own (possibly
    full) queue from its own worker: a processor that does this must not deadlock the pipeline.
    ``derived`` lists the frames it made.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.derived: list[Frame] = []

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)
        if (
            direction is FrameDirection.DOWNSTREAM
            and isinstance(frame, DataFrame)
            and "reentered_from" not in frame.metadata
        ):
            derived = TextFrame(f"re:{frame.id}", metadata={"reentered_from": frame.id})
            self.derived.append(derived)
            await self.receive(derived, direction)


class AsyncReentrantProcessor(ReentrantProcessor, AsyncFrameProcessor):
    """:class:`ReentrantProcessor` with its own queue and worker."""


class HoldBackProcessor(FrameProcessor):
    """Holds the last ``frames`` data frames back, as a VAD pre-roll buffer does.

    A data frame leaves when ``frames`` newer ones have arrived after it. Everything held leaves when
    a control frame arrives: before it by default, or just after it with ``control_first=True`` (as a
    VAD that announces speech and then sends its pre-roll; never after ``EndFrame``). Held frames are
    dropped on an interruption (counted in ``dropped``). Upstream frames pass at once. Nothing is lost
    otherwise, but frames leave *after newer frames entered*, which is what breaks merges that assume
    frames come back in entry order::

        par = ParallelPipeline([HoldBackProcessor(frames=3)], [FrameProcessor()])
    """

    def __init__(self, frames: int = 3, *, control_first: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if frames < 0:
            raise ValueError(f"frames must be >= 0, got {frames}")
        self.frames = frames
        self.control_first = control_first
        self.dropped = 0
        self._held: deque[tuple[Frame, FrameDirection]] = deque()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if direction is FrameDirection.UPSTREAM:
            await self.push_frame(frame, direction)  # a pre-roll holds what flows downstream only
        elif isinstance(frame, DataFrame):
            self._held.append((frame, direction))
            while len(self._held) > self.frames:
                await self.push_frame(*self._held.popleft())
        elif isinstance(frame, StartInterruptionFrame):
            if self.allow_interruptions:
                self.dropped += len(self._held)
                self._held.clear()
            await self.push_frame(frame, direction)
        elif isinstance(frame, SystemFrame):
            await self.push_frame(frame, direction)
        else:
            # EndFrame always goes last: a processor flushes before it passes EndFrame
            first = self.control_first and not isinstance(frame, EndFrame)
            if first:
                await self.push_frame(frame, direction)
            while self._held:
                await self.push_frame(*self._held.popleft())
            if not first:
                await self.push_frame(frame, direction)


class AsyncHoldBackProcessor(HoldBackProcessor, AsyncFrameProcessor):
    """:class:`HoldBackProcessor` with its own queue and worker."""


class UpstreamAnswerer(FrameProcessor):
    """Passes each downstream data frame on, then answers it with a new frame pushed upstream.

    The answer is a :class:`~apipeline.frames.TextFrame` with ``metadata["answer_to"]`` set to the
    frame's id; answers are in ``answers``. Put it after a processor to check that an upstream push
    made while that processor is delivering downstream does not deadlock it.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.answers: list[Frame] = []

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)
        if direction is FrameDirection.DOWNSTREAM and isinstance(frame, DataFrame):
            answer = TextFrame(f"answer:{frame.id}", metadata={"answer_to": frame.id})
            self.answers.append(answer)
            await self.push_frame(answer, FrameDirection.UPSTREAM)


class AsyncUpstreamAnswerer(UpstreamAnswerer, AsyncFrameProcessor):
    """:class:`UpstreamAnswerer` with its own queue and worker."""


# ---- the invariant checker ---------------------------------------------------------------------------


class InvariantViolation(AssertionError):
    """A pipeline run broke one or more of the core's promises; ``problems`` lists them."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass
class _Queued:
    frame: Frame
    interruptions_before: int  # interruptions requested before this frame was queued


class InvariantChecker:
    """Watches one :class:`PipelineTask` run and reports every promise it broke.

    Queue the input through the checker (so it knows what went in and when interruptions came), start
    the run with :meth:`start`, drive it as you like, then :meth:`finish` and :meth:`assert_ok`::

        task = PipelineTask(Pipeline([my_processor]), PipelineParams(allow_interruptions=True))
        checker = InvariantChecker(task)
        checker.start()
        await checker.queue_frames([TextFrame(str(i)) for i in range(100)])
        await checker.interrupt()
        await checker.queue_frames([TextFrame("after")])
        await task.stop_when_done()
        await checker.finish()
        checker.assert_ok()

    Checked (``problems`` names each violation):

    * order: the data frames queued through the checker reach the sink in the order they were queued
      (pass ``ordered=False`` where a merge may legitimately reorder them);
    * duplicates: no frame object reaches the sink twice;
    * losses: a queued data frame that never reached the sink must be explained: the run did not end
      by ``EndFrame``, an interruption came after it was queued (with ``allow_interruptions``), or the
      losses are covered by counted drops (``drop_oldest``) and reported processor errors;
    * drops are reported: after a normal end, every processor that dropped frames sent a
      ``MetricsFrame`` saying how many;
    * lifecycle: every processor's ``start`` ran at most once (exactly once if the run started), and
      ``stop`` at most once (exactly once after a normal end), ``cancel`` at most once;
    * bounded: ``run()`` returned within the bound its parameters promise (a sum of its timeouts,
      see :meth:`bound`, plus ``slack`` seconds); ``finish`` gives up after ten times that;
    * no framework task left after ``run()`` (tasks the task reported as abandoned excepted);
    * at most one worker task alive per asynchronous processor, at every sample (each frame reaching
      the sink, each call on the checker, the end).
    """

    def __init__(self, task: PipelineTask, *, ordered: bool = True, slack: float = 1.0) -> None:
        self.task = task
        self.ordered = ordered
        self.slack = slack
        self.problems: list[str] = []
        self.downstream: list[Frame] = []
        self.duration: float | None = None
        self._queued: list[_Queued] = []
        self._interruptions = 0
        self._end_reached = False
        self._start_reached = False
        self._leaves = [p for p in task.pipeline.walk() if not p.processors()]
        self._async = [p for p in self._leaves if isinstance(p, AsyncFrameProcessor)]
        self._calls: dict[tuple[int, str], int] = {}
        for proc in self._leaves:
            for hook in ("start", "stop", "cancel"):
                self._count_calls(proc, hook)
        self._worker_peak: dict[str, int] = {}
        self._before: set[asyncio.Task[Any]] = set()
        self._run: asyncio.Task[None] | None = None
        task.event_handler("on_frame_reached_downstream")(self._on_downstream)

    def _count_calls(self, proc: FrameProcessor, hook: str) -> None:
        original = getattr(proc, hook)
        key = (id(proc), hook)
        self._calls[key] = 0

        async def counted(frame: Frame) -> None:
            self._calls[key] += 1
            await original(frame)

        setattr(proc, hook, counted)

    def _on_downstream(self, task: PipelineTask, frame: Frame) -> None:
        self.downstream.append(frame)
        if isinstance(frame, EndFrame):
            self._end_reached = True
        elif isinstance(frame, StartFrame):
            self._start_reached = True
        self.sample_workers()

    # -- driving -----------------------------------------------------------------------------------

    def bound(self) -> float:
        """Seconds within which ``run()`` must return, from the task's parameters.

        Each ``setup()``, the ``StartFrame`` trip, the early system frames, each ``cleanup()`` and
        each wait for a step that was cancelled has its own timeout; the bound is their sum.
        """
        p = self.task.params
        n = len(self.task.pipeline.walk())
        return (
            (n + 2) * (p.start_timeout + p.cancel_timeout)
            + p.end_timeout
            + 3 * p.cancel_timeout
            + n * (p.cleanup_timeout + p.cancel_timeout)
        )

    def start(self) -> asyncio.Task[None]:
        """Start ``task.run()`` in a task of its own (call it once, before or after queueing)."""
        if self._run is not None:
            raise RuntimeError("InvariantChecker.start() called twice")
        self._before = set(asyncio.all_tasks())
        self._started_at = time.monotonic()
        self._run = asyncio.get_running_loop().create_task(self._timed_run(), name="InvariantChecker.run")
        return self._run

    async def _timed_run(self) -> None:
        try:
            await self.task.run()
        finally:
            self.duration = time.monotonic() - self._started_at

    async def queue_frames(self, frames: Iterable[Frame]) -> None:
        """Queue frames into the task, remembering the data frames as the run's input."""
        for frame in frames:
            if isinstance(frame, DataFrame):
                self._queued.append(_Queued(frame, self._interruptions))
            await self.task.queue_frame(frame)
        self.sample_workers()

    async def interrupt(self) -> None:
        """Send a ``StartInterruptionFrame`` (frames queued before it may be dropped)."""
        self._interruptions += 1
        await self.task.queue_frame(StartInterruptionFrame())
        self.sample_workers()

    def sample_workers(self) -> None:
        """Record how many worker tasks each asynchronous processor has alive right now."""
        alive: dict[str, int] = {}
        for t in asyncio.all_tasks():
            if not t.done():
                name = t.get_name()
                alive[name] = alive.get(name, 0) + 1
        for proc in self._async:
            n = alive.get(f"{proc.name}.worker", 0)
            if n > self._worker_peak.get(proc.name, 0):
                self._worker_peak[proc.name] = n

    async def finish(self) -> None:
        """Wait for ``run()`` (at most ten times :meth:`bound`), then check everything."""
        if self._run is None:
            raise RuntimeError("InvariantChecker.finish() before start()")
        limit = 10 * self.bound()
        done, _ = await asyncio.wait({self._run}, timeout=limit)
        if not done:
            self.problems.append(f"run() did not return within {limit:.3g} s (10x its bound): hung")
            self._run.cancel()
            await asyncio.wait({self._run}, timeout=1.0)
            return
        if not self._run.cancelled() and self._run.exception() is not None:
            self.problems.append(f"run() raised {self._run.exception()!r}")
        self.sample_workers()
        self._check()

    # -- checks ------------------------------------------------------------------------------------

    def _check(self) -> None:
        problems = self.problems
        task = self.task
        bound = self.bound() + self.slack
        if self.duration is not None and self.duration > bound:
            problems.append(f"run() took {self.duration:.3f} s, more than its bound of {bound:.3f} s")
        # tasks left behind: only those the task reported as abandoned may outlive run()
        abandoned = set(task.abandoned)
        current = asyncio.current_task()
        left = [
            t
            for t in asyncio.all_tasks()
            if not t.done() and t is not current and t not in self._before and t not in abandoned
        ]
        if left:
            problems.append(f"tasks left after run(): {sorted(t.get_name() for t in left)}")
        for name, peak in sorted(self._worker_peak.items()):
            if peak > 1:
                problems.append(f"{name}: {peak} worker tasks alive at once")
        # lifecycle
        for proc in self._leaves:
            starts, stops, cancels = (self._calls[(id(proc), h)] for h in ("start", "stop", "cancel"))
            if starts > 1 or (self._start_reached and starts != 1):
                problems.append(f"{proc.name}: start() ran {starts} times")
            if stops > 1 or (self._end_reached and stops != 1):
                problems.append(
                    f"{proc.name}: stop() ran {stops} times (EndFrame reached the sink: {self._end_reached})"
                )
            if cancels > 1:
                problems.append(f"{proc.name}: cancel() ran {cancels} times")
        # duplicates
        seen: set[int] = set()
        for frame in self.downstream:
            if isinstance(frame, (DataFrame, ControlFrame)):
                if id(frame) in seen:
                    problems.append(f"{frame.name} reached the sink more than once")
                seen.add(id(frame))
        # order and losses
        position = {id(f): i for i, f in enumerate(self.downstream)}
        arrived = [q for q in self._queued if id(q.frame) in position]
        if self.ordered:
            last = -1
            for q in arrived:
                at = position[id(q.frame)]
                if at < last:
                    problems.append(f"{q.frame.name} reached the sink out of order")
                    break
                last = at
        if not self._end_reached:
            return  # cancelled or timed out: losses are allowed
        interruptions = self._interruptions if task.params.allow_interruptions else 0
        lost = [q for q in self._queued if id(q.frame) not in position]
        unexplained = [q for q in lost if q.interruptions_before >= interruptions]
        drops = sum(p.queue_statistics().drops for p in self._async)
        failures = sum(1 for e in task.errors if e.processor is not None and "while processing" in e.error)
        if len(unexplained) > drops + failures:
            names = ", ".join(q.frame.name for q in unexplained[:5])
            problems.append(
                f"{len(unexplained)} queued data frame(s) lost after a normal end with no interruption "
                f"after them, {drops} counted drop(s) and {failures} processor error(s) to explain them "
                f"(first: {names})"
            )
        reported: dict[str, int] = {}
        for metrics in task.metrics:
            for record in metrics.data:
                if "drops" in record:
                    reported[str(record.get("processor"))] = record["drops"]
        for proc in self._async:
            drops = proc.queue_statistics().drops
            if drops and reported.get(proc.name) != drops:
                problems.append(
                    f"{proc.name}: dropped {drops} frame(s) but reported {reported.get(proc.name, 0)}"
                )

    def assert_ok(self) -> None:
        """Raise :class:`InvariantViolation` listing every problem found by :meth:`finish`."""
        if self.problems:
            raise InvariantViolation(self.problems)
