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
    """For each data frame: passes it on, then sends a derived frame back into *itself*.

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
        if isinstance(frame, DataFrame) and "reentered_from" not in frame.metadata:
            derived = TextFrame(f"re:{frame.id}", metadata={"reentered_from": frame.id})
            self.derived.append(derived)
            await self.receive(derived, direction)


class AsyncReentrantProcessor(ReentrantProcessor, AsyncFrameProcessor):
    """:class:`ReentrantProcessor` with its own queue and worker."""


class HoldBackProcessor(FrameProcessor):
    """Holds the last ``frames`` data frames back, as a VAD pre-roll buffer does.

    A data frame leaves when ``frames`` newer ones have arrived after it. Everything held leaves when
    a control frame arrives: before it by default, or just after it with ``control_first=True`` (as a
    VAD that announces speech and then sends its pre-roll). Held frames are dropped on an interruption
    (counted in ``dropped``). Nothing is lost otherwise, but frames leave *after newer frames entered*,
    which is what breaks merges that assume frames come back in entry order::

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
        if isinstance(frame, DataFrame):
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
            if self.control_first:
                await self.push_frame(frame, direction)
            while self._held:
                await self.push_frame(*self._held.popleft())
            if not self.control_first:
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
