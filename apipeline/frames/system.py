"""System frames: out of band, they jump every queue."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from apipeline.frames.base import SystemFrame


@dataclass(slots=True)
class CancelFrame(SystemFrame):
    """Stop now: every processor drops its work and the task ends without draining."""


@dataclass(slots=True)
class ErrorFrame(SystemFrame):
    """An error, normally pushed upstream to the task; ``fatal=True`` cancels the task.

    ``processor`` names where it happened (set by the framework for exceptions it catches);
    ``exception`` is the exception object itself when there is one (kept in this process, never
    serialized).
    """

    error: str = ""
    fatal: bool = False
    processor: str | None = None
    exception: BaseException | None = field(default=None, kw_only=True, compare=False, repr=False)


@dataclass(slots=True)
class StopTaskFrame(SystemFrame):
    """Ask the task to stop gracefully: it queues an ``EndFrame`` so queued data is still delivered."""


@dataclass(slots=True)
class StartInterruptionFrame(SystemFrame):
    """The user interrupted: drop queued and in-flight interruptible work, then pass it on."""


#: pipecat's name for the same frame (pipecat renamed ``StartInterruptionFrame`` to it); one class, so
#: ``isinstance`` checks and serializers treat both names alike.
InterruptionFrame = StartInterruptionFrame


@dataclass(slots=True)
class StopInterruptionFrame(SystemFrame):
    """The interruption is over."""


@dataclass(slots=True)
class MetricsFrame(SystemFrame):
    """Measurements: a list of records (dicts), e.g. ``{"processor": ..., "processing": {...}}``."""

    data: list[dict[str, Any]] = field(default_factory=list)
