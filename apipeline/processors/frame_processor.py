"""The processor: the unit that transforms frames.

A :class:`FrameProcessor` is *synchronous* in the pipeline sense: ``push_frame`` awaits the next
processor's handler directly, so a frame crossing it costs one ``await`` — no queue, no task. The
asynchronous variant, with its own bounded queue and worker task, is in
:mod:`~apipeline.processors.async_frame_processor`.

The framework-side entry point of every processor is :meth:`FrameProcessor.receive`; it runs the
user's :meth:`~FrameProcessor.process_frame` and turns any exception into an upstream
:class:`~apipeline.frames.ErrorFrame` naming the processor, so one bad frame never kills the pipeline.
"""

from __future__ import annotations

import enum
import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from apipeline.audio.format import AudioFormat
from apipeline.errors import PipelineError
from apipeline.frames import (
    CancelFrame,
    EndFrame,
    ErrorFrame,
    Frame,
    MetricsFrame,
    StartFrame,
    StartInterruptionFrame,
    SystemFrame,
    UpdateSettingsFrame,
)
from apipeline.processors.metrics import ProcessorMetrics

logger = logging.getLogger("apipeline")

_processor_ids = itertools.count(1)


class FrameDirection(enum.Enum):
    """Which way a frame travels: towards the sink (DOWNSTREAM) or towards the task (UPSTREAM)."""

    DOWNSTREAM = 1
    UPSTREAM = 2


DOWNSTREAM = FrameDirection.DOWNSTREAM
UPSTREAM = FrameDirection.UPSTREAM

EventHandler = Callable[..., Awaitable[None] | None]


class FrameProcessor:
    """Base of every processor.

    Subclasses override :meth:`process_frame`, call ``await super().process_frame(frame, direction)``
    first, and push what they produce with :meth:`push_frame`. Frames a processor does not consume must
    be pushed on unchanged (in particular ``StartFrame``, ``EndFrame`` and system frames).

    Class attributes a subclass may set to take part in format negotiation and the latency query:

    * ``input_format`` / ``output_format``: :class:`~apipeline.audio.format.AudioFormat` or ``None``
      (``None``: this processor does not care about audio formats, it passes audio through).
    * ``latency``: algorithmic latency in seconds (block sizes, look-ahead, crossfades).
    """

    input_format: AudioFormat | None = None
    output_format: AudioFormat | None = None
    latency: float = 0.0

    def __init__(self, *, name: str | None = None, **kwargs: Any) -> None:
        if kwargs:
            raise TypeError(f"{type(self).__name__}() got unexpected keyword arguments: {', '.join(kwargs)}")
        self.id = next(_processor_ids)
        self.name = name or f"{type(self).__name__}#{self.id}"
        self._next: FrameProcessor | None = None
        self._prev: FrameProcessor | None = None
        self._started = False
        # True once started, for plain processors without metrics: neighbours may then call
        # process_frame directly (one coroutine less per hop); see push_frame.
        self._direct = False
        # pts of the frame being processed: frames pushed without one inherit it (end-to-end latency)
        self._pts: int | None = None
        self.allow_interruptions = False
        self.enable_metrics = False
        self.metrics: ProcessorMetrics | None = None
        self._handlers: dict[str, list[EventHandler]] = {}

    # -- structure -----------------------------------------------------------------------------

    def link(self, processor: FrameProcessor) -> FrameProcessor:
        """Make ``processor`` the next one downstream; returns it so links can be chained."""
        self._next = processor
        processor._prev = self
        return processor

    @property
    def next(self) -> FrameProcessor | None:
        return self._next

    @property
    def prev(self) -> FrameProcessor | None:
        return self._prev

    def processors(self) -> list[FrameProcessor]:
        """Child processors (pipelines override this); a plain processor has none."""
        return []

    def walk(self) -> list[FrameProcessor]:
        """This processor and every processor nested inside it, depth first."""
        out: list[FrameProcessor] = [self]
        for p in self.processors():
            out.extend(p.walk())
        return out

    @property
    def started(self) -> bool:
        return self._started

    # -- lifecycle hooks -------------------------------------------------------------------------

    async def setup(self) -> None:
        """Called by the task before ``StartFrame`` is sent; create resources and tasks here."""

    async def start(self, frame: StartFrame) -> None:
        """Called when ``StartFrame`` arrives, before it is passed on."""

    async def stop(self, frame: EndFrame) -> None:
        """Called when ``EndFrame`` arrives (flush here, before it is passed on)."""

    async def cancel(self, frame: CancelFrame) -> None:
        """Called when ``CancelFrame`` arrives, before it is passed on."""

    async def cleanup(self) -> None:
        """Called once when the task finishes: release everything (tasks, files, models)."""

    def update_settings(self, settings: dict[str, Any]) -> None:
        """Apply the settings addressed to this processor (``UpdateSettingsFrame``).

        The default checks them, all or nothing, against the processor's declared ``settings_schema``
        (an :class:`apipeline.params.ParamSchema`; live parameters only) and sets the attributes; a
        processor that declares none takes no settings.
        """
        schema = getattr(self, "settings_schema", None)
        unknown = [key for key in settings if schema is None or key not in schema]
        if unknown or schema is None:
            raise PipelineError(
                f"{self.name}: unknown setting {unknown[0]!r} (settable: {list(schema or ())})"
            )
        for key, value in schema.check(settings, live=True).items():
            setattr(self, key, value)

    # -- events ----------------------------------------------------------------------------------

    def event_handler(self, event: str) -> Callable[[EventHandler], EventHandler]:
        """Decorator registering a handler (sync or async) for a named event."""

        def register(fn: EventHandler) -> EventHandler:
            self._handlers.setdefault(event, []).append(fn)
            return fn

        return register

    def add_event_handler(self, event: str, fn: EventHandler) -> None:
        self._handlers.setdefault(event, []).append(fn)

    async def _call_event_handler(self, event: str, *args: Any) -> None:
        for fn in self._handlers.get(event, ()):
            result = fn(self, *args)
            if result is not None:
                await result

    # -- frame flow ------------------------------------------------------------------------------

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Handle one frame. The base handles lifecycle frames; subclasses call it first."""
        if not frame.interruptible:  # system and control frames (data frames are interruptible)
            await self._handle_lifecycle(frame)

    async def _handle_lifecycle(self, frame: Frame) -> None:
        if isinstance(frame, StartFrame):
            if self._started:
                return
            self._started = True
            self.allow_interruptions = frame.allow_interruptions
            self.enable_metrics = frame.enable_metrics
            if frame.enable_metrics:
                self.metrics = ProcessorMetrics(
                    self.name, frame.metrics_interval_s, frame.report_only_initial_ttfb
                )
            await self.start(frame)
            self._direct = self.metrics is None and type(self).receive is FrameProcessor.receive
        elif isinstance(frame, EndFrame):
            await self.stop(frame)
        elif isinstance(frame, CancelFrame):
            await self.cancel(frame)
        elif isinstance(frame, UpdateSettingsFrame):
            mine = self._settings_for_me(frame.settings)
            if mine:
                self.update_settings(mine)

    def _settings_for_me(self, settings: dict[str, Any]) -> dict[str, Any]:
        mine: dict[str, Any] = {}
        prefix = self.name + "."
        for key, value in settings.items():
            if key.startswith(prefix):
                mine[key[len(prefix) :]] = value
            elif "." not in key and hasattr(self, key) and not key.startswith("_"):
                mine[key] = value
        return mine

    async def push_frame(self, frame: Frame, direction: FrameDirection = DOWNSTREAM) -> None:
        """Send a frame to the neighbour in ``direction`` and wait until it has taken it.

        For a synchronous neighbour that means it has processed the frame; for an asynchronous one,
        that the frame is in its queue.
        """
        target = self._next if direction is DOWNSTREAM else self._prev
        if target is None:
            return
        if frame.pts is None:
            frame.pts = self._pts
        if self.metrics is not None:
            await self.metrics.timed_push(target, frame, direction)
        elif target._direct:
            # Inlined FrameProcessor.receive for a started plain processor: the per-frame path.
            target._pts = frame.pts
            try:
                await target.process_frame(frame, direction)
            except Exception as exc:
                await target._report_exception(exc, frame)
        else:
            await target.receive(frame, direction)

    async def push_error(self, error: str | BaseException, *, fatal: bool = False) -> None:
        """Report an error upstream, to the task."""
        text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        await self.push_frame(ErrorFrame(text, fatal=fatal, processor=self.name), UPSTREAM)

    async def receive(self, frame: Frame, direction: FrameDirection) -> None:
        """Framework entry point: process ``frame`` and report any exception as an ``ErrorFrame``."""
        if not self._started and not isinstance(frame, (StartFrame, SystemFrame)):
            await self._refuse_before_start(frame, direction)
            return
        metrics = self.metrics
        self._pts = frame.pts
        try:
            if metrics is None:
                await self.process_frame(frame, direction)
            else:
                await metrics.timed_process(self, frame, direction)
        except Exception as exc:
            await self._report_exception(exc, frame)

    async def _refuse_before_start(self, frame: Frame, direction: FrameDirection) -> None:
        await self._report_exception(
            PipelineError(f"{self.name} received {frame.name} before StartFrame; frame dropped"), frame
        )

    async def _report_exception(self, exc: BaseException, frame: Frame) -> None:
        if isinstance(frame, ErrorFrame):
            # An error while handling an error: log it rather than looping.
            logger.error("%s: %s while handling %s", self.name, exc, frame.name)
            return
        error = ErrorFrame(
            f"{self.name}: {type(exc).__name__}: {exc} (while processing {frame.name})",
            processor=self.name,
        )
        error.metadata["exception"] = type(exc).__name__
        target = self._prev
        if target is not None:
            await target.receive(error, UPSTREAM)
        else:
            logger.error("%s", error.error)

    async def interrupt(self, frame: StartInterruptionFrame) -> None:
        """Hook for interruptions; asynchronous processors drop their queued work here."""

    def metrics_frame(self) -> MetricsFrame | None:
        """A ``MetricsFrame`` with this processor's measurements, or ``None`` without metrics."""
        if self.metrics is None:
            return None
        return MetricsFrame([self.metrics.snapshot()])

    def __repr__(self) -> str:
        return self.name


def monotonic_ns() -> int:
    """The clock of every ``pts`` and every metric: monotonic, nanoseconds."""
    return time.monotonic_ns()
