"""The processor: the unit that transforms frames.

A :class:`FrameProcessor` is *synchronous* in the pipeline sense: ``push_frame`` awaits the next
processor's handler directly, so a frame crossing it costs one ``await`` — no queue, no task. The
asynchronous variant, with its own bounded queue and worker task, is in
:mod:`~apipeline.processors.async_frame_processor`.

The framework-side entry point of every processor is :meth:`FrameProcessor.receive`, the one delivery
step of the framework: it gates frames that arrive before ``StartFrame``, records the ``pts`` derived
frames inherit, times the call when metrics are on, runs the user's
:meth:`~FrameProcessor.process_frame` and turns any exception into an upstream
:class:`~apipeline.frames.ErrorFrame` naming the processor (logged with its traceback), so one bad
frame never kills the pipeline. :meth:`FrameProcessor.push_frame` hands a frame to the neighbour's
``receive``; the asynchronous worker calls the same ``receive`` for each frame it dequeues.
"""

from __future__ import annotations

import asyncio
import enum
import inspect
import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

from apipeline.errors import PipelineError
from apipeline.frames import (
    CancelFrame,
    EndFrame,
    ErrorFrame,
    Frame,
    StartFrame,
    StartInterruptionFrame,
    SystemFrame,
    UpdateSettingsFrame,
)
from apipeline.frames.format import AudioFormat
from apipeline.processors.metrics import ProcessorMetrics

#: A processor event handler: ``fn(processor, *args)``, sync or async.
EventHandler = Callable[..., Any]

logger = logging.getLogger("apipeline")

_processor_ids = itertools.count(1)


class FrameDirection(enum.Enum):
    """Which way a frame travels: towards the sink (DOWNSTREAM) or towards the task (UPSTREAM)."""

    DOWNSTREAM = 1
    UPSTREAM = 2


DOWNSTREAM = FrameDirection.DOWNSTREAM
UPSTREAM = FrameDirection.UPSTREAM


class FrameProcessor:
    """Base of every processor.

    Subclasses override :meth:`process_frame`, call ``await super().process_frame(frame, direction)``
    first, and push what they produce with :meth:`push_frame`. Frames a processor does not consume must
    be pushed on unchanged (in particular ``StartFrame``, ``EndFrame`` and system frames).

    Class attributes a subclass may set to take part in format negotiation and the latency query:

    * ``input_format`` / ``output_format``: :class:`~apipeline.frames.format.AudioFormat` or ``None``
      (``None``: this processor does not care about audio formats, it passes audio through).
    * ``latency``: algorithmic latency in seconds (block sizes, look-ahead, crossfades).
    * ``is_async``: ``True`` when :meth:`receive` may return before the frame has been processed (the
      processor has its own queue and task, as :class:`AsyncFrameProcessor` does), so what it produces
      may come out later, from another task. Containers decide how to wait on a processor from this
      declaration, never from its class.
    * ``EVENTS``: the names of the events the processor fires (see :meth:`event_handler`); a handler for
      any other name is refused when it is registered, so a misspelled event cannot wait in silence.
    """

    input_format: AudioFormat | None = None
    output_format: AudioFormat | None = None
    latency: float = 0.0
    is_async: ClassVar[bool] = False
    EVENTS: ClassVar[tuple[str, ...]] = ()

    def __init__(self, *, name: str | None = None, **kwargs: Any) -> None:
        if kwargs:
            raise TypeError(f"{type(self).__name__}() got unexpected keyword arguments: {', '.join(kwargs)}")
        self.id = next(_processor_ids)
        self.name = name or f"{type(self).__name__}#{self.id}"
        self._next: FrameProcessor | None = None
        self._prev: FrameProcessor | None = None
        self._started = False
        # The data frame being processed: frames pushed without a pts inherit its pts and client_pts
        # (see push_frame and the pts rule in docs/design.md).
        self._origin: Frame | None = None
        self.allow_interruptions = False
        self.enable_metrics = False
        self.metrics: ProcessorMetrics | None = None

    # -- events ----------------------------------------------------------------------------------

    def event_handler(self, event: str) -> Callable[[EventHandler], EventHandler]:
        """Decorator registering a handler (sync or async, called as ``fn(processor, *args)``) for one of
        the events in :attr:`EVENTS`.

        Raises:
            PipelineError: ``event`` is not one of this processor's events (the message lists them).
        """

        self._check_event(event)

        def register(fn: EventHandler) -> EventHandler:
            self.add_event_handler(event, fn)
            return fn

        return register

    def _check_event(self, event: str) -> None:
        if event not in self.EVENTS:
            valid = ", ".join(self.EVENTS) or "none"
            raise PipelineError(f"{self.name}: unknown event {event!r}; valid events: {valid}")

    def add_event_handler(self, event: str, fn: EventHandler) -> None:
        """Register ``fn`` for ``event`` (see :meth:`event_handler`)."""
        self._check_event(event)
        handlers: dict[str, list[EventHandler]] = self.__dict__.setdefault("_event_handlers", {})
        handlers.setdefault(event, []).append(fn)

    async def _call_event_handler(self, event: str, *args: Any) -> None:
        """Call the handlers of ``event`` in registration order; an exception propagates to the caller
        (inside :meth:`process_frame` it becomes an ``ErrorFrame`` like any other)."""
        for fn in self.__dict__.get("_event_handlers", {}).get(event, ()):
            result = fn(self, *args)
            if inspect.isawaitable(result):
                await result

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

    @property
    def previous(self) -> FrameProcessor | None:
        """pipecat's name for :attr:`prev`: the processor upstream of this one."""
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

    async def interrupt(self, frame: StartInterruptionFrame) -> None:
        """Called when ``StartInterruptionFrame`` arrives and the run allows interruptions, before it
        is passed on (an asynchronous processor has already dropped its queued and in-flight work)."""

    async def cleanup(self) -> None:
        """Called once when the task finishes: release everything (tasks, files, models)."""

    def _framework_needs_close(self) -> bool:
        """Whether the framework still owns a task of this processor after ``cleanup()``."""
        return False

    def _framework_tasks(self) -> list[asyncio.Task[None]]:
        """The tasks the framework started for this processor that are still running."""
        return []

    async def _framework_close(self) -> None:
        """Framework side of cleanup, run by the task after ``cleanup()`` whatever that did (it may
        have raised or timed out): stop the tasks the framework started for this processor."""

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

    # -- frame flow ------------------------------------------------------------------------------

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Handle one frame. The base handles lifecycle frames; subclasses call it first."""
        if not frame.interruptible:  # system and control frames (data frames are interruptible)
            await self._handle_lifecycle(frame)

    async def _handle_lifecycle(self, frame: Frame) -> None:
        # A hook that raises is reported, and the frame still goes on: losing an EndFrame (or a
        # StartFrame) to a failed flush would leave the whole run waiting for its timeout.
        try:
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
            elif isinstance(frame, EndFrame):
                await self.stop(frame)
            elif isinstance(frame, CancelFrame):
                await self.cancel(frame)
            elif isinstance(frame, StartInterruptionFrame):
                if self.allow_interruptions:
                    await self.interrupt(frame)
            elif isinstance(frame, UpdateSettingsFrame):
                mine = self._settings_for_me(frame.settings)
                if mine:
                    self.update_settings(mine)
        except Exception as exc:
            await self._report_exception(exc, frame)

    def _settings_for_me(self, settings: dict[str, Any]) -> dict[str, Any]:
        mine: dict[str, Any] = {}
        prefix = self.name + "."
        for key, value in settings.items():
            if key.startswith(prefix):
                mine[key[len(prefix) :]] = value
            elif "." not in key and hasattr(self, key) and not key.startswith("_"):
                mine[key] = value
        return mine

    def push_frame(self, frame: Frame, direction: FrameDirection = DOWNSTREAM) -> Awaitable[None]:
        """Send a frame to the neighbour in ``direction``; await the result to wait until it has taken it.

        For a synchronous neighbour that means it has processed the frame; for an asynchronous one,
        that the frame is in its queue. A frame without a ``pts`` inherits the ``pts`` and
        ``client_pts`` of the data frame this processor is processing (it is derived from it), or is
        stamped with the current time if there is none (it is new).

        A plain function returning the neighbour's awaitable (one coroutine less per hop);
        ``await self.push_frame(...)`` as usual, and overrides may be ``async def``.
        """
        target = self._next if direction is DOWNSTREAM else self._prev
        if frame.pts is None:
            origin = self._origin
            if origin is not None:
                frame.pts = origin.pts
                if frame.client_pts is None:
                    frame.client_pts = origin.client_pts
            else:
                frame.pts = time.monotonic_ns()
        if target is None:
            return _nothing()
        if self.metrics is not None:
            return self.metrics.timed_push(target, frame, direction)
        return target.receive(frame, direction)

    async def push_error(self, error: str | BaseException, *, fatal: bool = False) -> None:
        """Report an error upstream, to the task."""
        text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        frame = ErrorFrame(text, fatal=fatal, processor=self.name)
        if isinstance(error, BaseException):
            frame.exception = error
        await self.push_frame(frame, UPSTREAM)

    async def queue_frame(self, frame: Frame, direction: FrameDirection = DOWNSTREAM) -> None:
        """Hand ``frame`` to this processor as its neighbour would (pipecat's entry point): the same
        delivery step as :meth:`receive`. An asynchronous processor enqueues it for its worker."""
        await self.receive(frame, direction)

    async def receive(self, frame: Frame, direction: FrameDirection) -> None:
        """Framework entry point, the one delivery step: process ``frame``, report any exception.

        Frames other than ``StartFrame`` and system frames that arrive before ``StartFrame`` are
        refused (reported, dropped). A ``CancelledError`` that is not a cancellation of the running
        task (e.g. the processor awaited a future cancelled elsewhere) is reported like any other
        exception instead of silently killing the task that delivered the frame.
        """
        if not self._started and not isinstance(frame, (StartFrame, SystemFrame)):
            await self._report_exception(
                PipelineError(f"{self.name} received {frame.name} before StartFrame; frame dropped"), frame
            )
            return
        data = frame.interruptible
        if data:
            self._origin = frame
        try:
            if self.metrics is None:
                await self.process_frame(frame, direction)
            else:
                await self.metrics.timed_process(self, frame, direction)
        except asyncio.CancelledError as exc:
            task = asyncio.current_task()
            if task is None or task.cancelling():
                raise
            await self._report_exception(exc, frame)
        except Exception as exc:
            await self._report_exception(exc, frame)
        finally:
            if data:
                self._origin = None  # done with it: later pushes (a timer) are not derived from it

    async def _report_exception(self, exc: BaseException, frame: Frame) -> None:
        logger.error(
            "%s: %s: %s while processing %s", self.name, type(exc).__name__, exc, frame.name, exc_info=exc
        )
        if isinstance(frame, ErrorFrame):
            return  # an error while handling an error: logged above rather than looping
        error = ErrorFrame(
            f"{self.name}: {type(exc).__name__}: {exc} (while processing {frame.name})",
            processor=self.name,
            fatal=isinstance(frame, StartFrame),  # a processor that cannot start cannot run
        )
        error.metadata["exception"] = type(exc).__name__
        error.exception = exc
        target = self._prev
        if target is not None:
            await target.receive(error, UPSTREAM)

    def __repr__(self) -> str:
        return self.name


async def _nothing() -> None:
    return None


def monotonic_ns() -> int:
    """The clock of every ``pts`` and every metric: monotonic, nanoseconds."""
    return time.monotonic_ns()
