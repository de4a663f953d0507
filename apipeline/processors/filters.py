"""Filters: pass some data frames, drop the rest. Lifecycle and system frames always pass."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable

from apipeline.frames import DataFrame, Frame
from apipeline.processors.frame_processor import FrameDirection, FrameProcessor

FilterFn = Callable[[Frame], bool | Awaitable[bool]]


class FrameFilter(FrameProcessor):
    """Pass data frames that are instances of ``types``; drop other data frames.

    Control and system frames always pass: a filter must never swallow ``StartFrame``/``EndFrame``
    (apipeline 0.2.12's filters could, and the pipeline then hung at shutdown).
    """

    def __init__(self, types: tuple[type[Frame], ...] | type[Frame], *, name: str | None = None) -> None:
        super().__init__(name=name)
        self.types = types if isinstance(types, tuple) else (types,)

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if not isinstance(frame, DataFrame) or isinstance(frame, self.types):
            await self.push_frame(frame, direction)


class FunctionFilter(FrameProcessor):
    """Pass data frames travelling in ``direction`` for which ``fn(frame)`` (sync or async) is true.

    Frames travelling the other way, and control and system frames, always pass.
    """

    def __init__(
        self,
        fn: FilterFn,
        direction: FrameDirection = FrameDirection.DOWNSTREAM,
        *,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        self.fn = fn
        self.direction = direction
        self._is_async = inspect.iscoroutinefunction(fn)

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if direction is self.direction and isinstance(frame, DataFrame):
            keep = self.fn(frame)
            if self._is_async or inspect.isawaitable(keep):
                keep = await keep  # type: ignore[misc]
            if not keep:
                return
        await self.push_frame(frame, direction)
