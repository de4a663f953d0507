"""A bounded FIFO of frames with a declared overflow policy.

Leaner than ``asyncio.Queue`` (no ``Condition``, no task-done accounting): a put into a queue with
room and no waiting getter is a ``deque.append``. Policies when full:

* ``"block"``: the producer waits for room (backpressure travels upstream).
* ``"drop_oldest"``: the oldest *interruptible* (data) frame is discarded and counted; control frames
  are never discarded, so if the queue holds nothing but control frames the producer waits.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass
from typing import Any, Literal

from apipeline.errors import ParameterError
from apipeline.frames import Frame

OverflowPolicy = Literal["block", "drop_oldest"]
_POLICIES = ("block", "drop_oldest")


@dataclass(frozen=True, slots=True)
class QueueStatistics:
    """A snapshot of a queue's state."""

    depth: int
    max_depth: int
    capacity: int
    drops: int
    overflow: str


class FrameQueue:
    """Bounded FIFO of ``(frame, direction)`` pairs."""

    def __init__(self, maxsize: int = 256, overflow: OverflowPolicy = "block") -> None:
        if maxsize < 1:
            raise ParameterError(f"max_queue_size must be >= 1, got {maxsize}")
        if overflow not in _POLICIES:
            raise ParameterError(f"overflow must be one of {_POLICIES}, got {overflow!r}")
        self.maxsize = maxsize
        self.overflow = overflow
        self._items: deque[tuple[Frame, Any]] = deque()
        self._getter: asyncio.Future[None] | None = None
        self._putters: deque[asyncio.Future[None]] = deque()
        self.drops = 0
        self.max_depth = 0

    def __len__(self) -> int:
        return len(self._items)

    def try_put(self, frame: Frame, direction: Any) -> bool:
        """Append without waiting if there is room and nobody is waiting for room; else False."""
        items = self._items
        if len(items) >= self.maxsize or self._putters:
            return False
        items.append((frame, direction))
        n = len(items)
        if n > self.max_depth:
            self.max_depth = n
        getter = self._getter
        if getter is not None:
            self._getter = None
            if not getter.done():
                getter.set_result(None)
        return True

    def put_over_capacity(self, frame: Frame, direction: Any) -> None:
        """Append even when full: for a frame that must not wait (one ``EndFrame``, or a consumer
        pushing into its own queue, which only it can drain)."""
        self._items.append((frame, direction))
        if len(self._items) > self.max_depth:
            self.max_depth = len(self._items)
        getter = self._getter
        if getter is not None:
            self._getter = None
            if not getter.done():
                getter.set_result(None)

    def try_get(self) -> tuple[Frame, Any] | None:
        """The next item without waiting, or None when empty."""
        if not self._items:
            return None
        item = self._items.popleft()
        if self._putters:
            self._wake_putter()
        return item

    async def put(self, frame: Frame, direction: Any) -> None:
        items = self._items
        while len(items) >= self.maxsize:
            if self.overflow == "drop_oldest" and self._drop_one():
                break
            fut = asyncio.get_running_loop().create_future()
            self._putters.append(fut)
            try:
                await fut
            except BaseException:
                if fut in self._putters:
                    self._putters.remove(fut)
                elif not fut.cancelled():
                    self._wake_putter()  # we were woken but give up: pass the turn on
                raise
        items.append((frame, direction))
        n = len(items)
        if n > self.max_depth:
            self.max_depth = n
        getter = self._getter
        if getter is not None:
            self._getter = None
            if not getter.done():
                getter.set_result(None)

    async def get(self) -> tuple[Frame, Any]:
        items = self._items
        while not items:
            fut = asyncio.get_running_loop().create_future()
            self._getter = fut
            try:
                await fut
            finally:
                if self._getter is fut:
                    self._getter = None
        item = items.popleft()
        if self._putters:
            self._wake_putter()
        return item

    def _wake_putter(self) -> None:
        while self._putters:
            fut = self._putters.popleft()
            if not fut.done():
                fut.set_result(None)
                return

    def _drop_one(self) -> bool:
        for i, (frame, _) in enumerate(self._items):
            if frame.interruptible:
                del self._items[i]
                self.drops += 1
                return True
        return False

    def drop_interruptible(self) -> int:
        """Remove every interruptible frame, keeping the others in order; returns how many went."""
        before = len(self._items)
        kept = [item for item in self._items if not item[0].interruptible]
        self._items.clear()
        self._items.extend(kept)
        removed = before - len(kept)
        for _ in range(min(removed, len(self._putters))):
            self._wake_putter()
        return removed

    def clear(self) -> int:
        n = len(self._items)
        self._items.clear()
        while self._putters:
            self._wake_putter()
        return n

    def statistics(self) -> QueueStatistics:
        return QueueStatistics(len(self._items), self.max_depth, self.maxsize, self.drops, self.overflow)
