"""Aggregators: collect frames and release them in groups."""

from __future__ import annotations

import re
from collections.abc import Callable

from apipeline.frames import (
    CancelFrame,
    DataFrame,
    EndFrame,
    Frame,
    StartInterruptionFrame,
    SyncNotifyFrame,
    TextFrame,
)
from apipeline.processors.frame_processor import FrameDirection, FrameProcessor

_SENTENCE_END = re.compile(r"[.!?。！？;；…]['\")\]]*\s*$")


class SentenceAggregator(FrameProcessor):
    """Join ``TextFrame``s into whole sentences.

    Text is held until it ends with sentence punctuation (Latin or CJK), then released as one
    ``TextFrame``. What remains at ``EndFrame`` is flushed before it; an interruption discards it.
    """

    def __init__(self, *, name: str | None = None) -> None:
        super().__init__(name=name)
        self._text = ""

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, TextFrame) and direction is FrameDirection.DOWNSTREAM:
            self._text += frame.text
            if _SENTENCE_END.search(self._text):
                text, self._text = self._text, ""
                await self.push_frame(TextFrame(text.strip(), pts=frame.pts))
            return
        if isinstance(frame, EndFrame) and self._text:
            text, self._text = self._text, ""
            await self.push_frame(TextFrame(text.strip()))
        elif isinstance(frame, (StartInterruptionFrame, CancelFrame)):
            self._text = ""
        await self.push_frame(frame, direction)


class GatedAggregator(FrameProcessor):
    """Hold data frames while the gate is closed; release them in order when it opens.

    ``gate_open_fn(frame)`` opens the gate (the opening frame is passed on first, then the held
    ones); ``gate_close_fn(frame)`` closes it (the closing frame itself passes). Only frames travelling
    in ``direction`` are gated. Held frames are flushed before ``EndFrame`` and dropped on interruption.
    """

    def __init__(
        self,
        gate_open_fn: Callable[[Frame], bool],
        gate_close_fn: Callable[[Frame], bool],
        start_open: bool,
        direction: FrameDirection = FrameDirection.DOWNSTREAM,
        *,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        self.gate_open_fn = gate_open_fn
        self.gate_close_fn = gate_close_fn
        self.open = start_open
        self.direction = direction
        self._held: list[Frame] = []

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if direction is not self.direction:
            await self.push_frame(frame, direction)
            return
        if isinstance(frame, (StartInterruptionFrame, CancelFrame)):
            self._held.clear()
        elif isinstance(frame, EndFrame):
            await self._release(direction)
        if not isinstance(frame, DataFrame):
            await self.push_frame(frame, direction)
            return
        if self.open:
            if self.gate_close_fn(frame):
                self.open = False
            await self.push_frame(frame, direction)
        elif self.gate_open_fn(frame):
            self.open = True
            await self.push_frame(frame, direction)
            await self._release(direction)
        else:
            self._held.append(frame)

    async def _release(self, direction: FrameDirection) -> None:
        held, self._held = self._held, []
        for f in held:
            await self.push_frame(f, direction)


class HoldFramesAggregator(FrameProcessor):
    """Hold frames of ``hold_frame_classes`` until released; everything else passes at once.

    Release happens when a ``SyncNotifyFrame`` passes (in band: the held frames go out right after
    it), when :meth:`release` is awaited, or at ``EndFrame`` (before it). Interruptions drop them.
    """

    def __init__(self, hold_frame_classes: tuple[type[Frame], ...], *, name: str | None = None) -> None:
        super().__init__(name=name)
        self.hold_frame_classes = hold_frame_classes
        self._held: list[Frame] = []

    @property
    def held(self) -> int:
        return len(self._held)

    async def release(self) -> None:
        held, self._held = self._held, []
        for f in held:
            await self.push_frame(f)

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if direction is FrameDirection.DOWNSTREAM and isinstance(frame, self.hold_frame_classes):
            self._held.append(frame)
            return
        if isinstance(frame, EndFrame):
            await self.release()
        elif isinstance(frame, (StartInterruptionFrame, CancelFrame)):
            self._held = [f for f in self._held if not isinstance(f, DataFrame)]
        await self.push_frame(frame, direction)
        if isinstance(frame, SyncNotifyFrame):
            await self.release()
