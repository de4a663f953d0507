"""Processors that hand frames to user code."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable

from apipeline.frames import DataFrame, Frame
from apipeline.processors.frame_processor import FrameDirection, FrameProcessor

FrameCallback = Callable[[Frame], Awaitable[None] | None]


class OutputFrameProcessor(FrameProcessor):
    """Deliver every downstream data frame to ``cb`` (a sync or async callable), then pass it on."""

    def __init__(self, cb: FrameCallback, *, name: str | None = None) -> None:
        super().__init__(name=name)
        self.cb = cb
        self._is_async = inspect.iscoroutinefunction(cb)

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if direction is FrameDirection.DOWNSTREAM and isinstance(frame, DataFrame):
            result = self.cb(frame)
            if self._is_async or inspect.isawaitable(result):
                await result  # type: ignore[misc]
        await self.push_frame(frame, direction)
