"""Bases for processors that bring frames in from outside and send them out.

:class:`InputProcessor` runs a reader task (started at ``StartFrame``) that pulls frames from
:meth:`InputProcessor.frames` and pushes them downstream; pushes from the reader and frames passing
through from upstream are serialized by a lock, so a downstream processor never sees two frames at
once from this processor. Frames the reader produces without a ``pts`` are stamped with the time
they enter the pipeline (never the ``StartFrame``'s). When the reader is exhausted it asks the task to
stop (a ``StopTaskFrame`` upstream, which makes the task send ``EndFrame`` after everything already
produced).

:class:`OutputProcessor` hands each data frame to :meth:`OutputProcessor.write_frame` and passes
lifecycle frames on.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from apipeline.frames import (
    CancelFrame,
    DataFrame,
    EndFrame,
    Frame,
    StartFrame,
    StopTaskFrame,
    SystemFrame,
)
from apipeline.processors.frame_processor import FrameDirection, FrameProcessor, monotonic_ns


class InputProcessor(FrameProcessor):
    """Source of frames from outside the pipeline (a file, a socket, a microphone)."""

    def __init__(self, *, stop_at_eof: bool = True, name: str | None = None) -> None:
        super().__init__(name=name)
        self.stop_at_eof = stop_at_eof
        self._reader: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    async def frames(self) -> AsyncIterator[Frame]:
        """Yield the frames to inject; override in subclasses."""
        return
        yield  # pragma: no cover - makes this an async generator

    async def start(self, frame: StartFrame) -> None:
        await super().start(frame)
        self._reader = asyncio.get_running_loop().create_task(self._read(), name=f"{self.name}.reader")

    async def _read(self) -> None:
        try:
            async for frame in self.frames():
                if frame.pts is None:
                    frame.pts = monotonic_ns()  # a new frame enters the pipeline now (the pts rule)
                await self.push_frame(frame)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            await self.push_error(exc)
        if self.stop_at_eof:
            await self.push_frame(StopTaskFrame(), FrameDirection.UPSTREAM)

    async def push_frame(self, frame: Frame, direction: FrameDirection = FrameDirection.DOWNSTREAM) -> None:
        if direction is FrameDirection.DOWNSTREAM and not isinstance(frame, SystemFrame):
            async with self._lock:
                await super().push_frame(frame, direction)
        else:
            await super().push_frame(frame, direction)

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, (EndFrame, CancelFrame)):
            await self._stop_reader(wait=isinstance(frame, EndFrame))
        await self.push_frame(frame, direction)

    async def _stop_reader(self, *, wait: bool) -> None:
        task, self._reader = self._reader, None
        if task is None or task.done():
            return
        # The lock makes the cancel land between two pushes, never inside one: a frame is either
        # fully delivered downstream or not produced at all.
        if wait:
            async with self._lock:
                task.cancel()
        else:
            task.cancel()
        if task is not asyncio.current_task():
            try:
                await task
            except asyncio.CancelledError:
                pass

    async def cleanup(self) -> None:
        await self._stop_reader(wait=False)
        await super().cleanup()


class OutputProcessor(FrameProcessor):
    """Sink of frames to outside the pipeline; data frames go to :meth:`write_frame`."""

    def __init__(self, *, passthrough: bool = False, name: str | None = None) -> None:
        super().__init__(name=name)
        self.passthrough = passthrough

    async def write_frame(self, frame: DataFrame) -> None:
        """Send one data frame out; override in subclasses."""

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if direction is FrameDirection.DOWNSTREAM and isinstance(frame, DataFrame):
            await self.write_frame(frame)
            if not self.passthrough:
                return
        await self.push_frame(frame, direction)
