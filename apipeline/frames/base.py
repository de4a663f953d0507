"""The frame base class and the three families.

Every frame gets a process-unique, increasing ``id`` and a ``name`` (``"TextFrame#12"``) when created.
``pts`` is the time (``time.monotonic_ns``, this process's clock) at which the frame entered this
process's pipeline: set by whatever creates it (the task, an input processor, a transport); frames a
processor derives from it inherit it; end-to-end latency is measured from it at the sink.
``client_pts`` is a timestamp a remote client put on the frame, on the client's clock: it is carried
and echoed back on derived frames, never compared with ``pts``.

Families decide how a frame travels:

* :class:`SystemFrame` is out of band: it jumps every queue and is handled on arrival.
* :class:`ControlFrame` is serialized with data: it keeps its place in every queue (so ``EndFrame``
  can never overtake data) and survives interruptions.
* :class:`DataFrame` carries payload; it is the only family that interruptions drop and that
  ``drop_oldest`` queues may discard.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any, ClassVar

_next_id = itertools.count(1).__next__


@dataclass(slots=True)
class Frame:
    """Base of every frame: identity, timestamp and free-form metadata."""

    id: int = field(init=False, compare=True)
    name: str = field(init=False, compare=True)
    pts: int | None = field(default=None, kw_only=True)
    client_pts: int | None = field(default=None, kw_only=True)
    metadata: dict[str, Any] = field(default_factory=dict, kw_only=True)

    #: whether an interruption drops this frame from queues and in-flight work
    interruptible: ClassVar[bool] = False

    def __post_init__(self) -> None:
        self.id = i = _next_id()
        self.name = f"{type(self).__name__}#{i}"

    def __str__(self) -> str:
        return self.name


@dataclass(slots=True)
class SystemFrame(Frame):
    """Out-of-band frame: jumps queues, handled on arrival, never dropped by interruptions."""


@dataclass(slots=True)
class ControlFrame(Frame):
    """In-band control frame: keeps its order with data and survives interruptions."""


@dataclass(slots=True)
class DataFrame(Frame):
    """Payload frame: ordered, interruptible, droppable under a ``drop_oldest`` policy."""

    interruptible: ClassVar[bool] = True


@dataclass(slots=True)
class AppFrame(DataFrame):
    """Base for application-defined payload frames (subclass it with your own fields)."""
