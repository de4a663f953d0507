"""Small processors used across the core tests."""

from __future__ import annotations

import asyncio

from apipeline.frames import Frame, TextFrame
from apipeline.params import Param, ParamSchema
from apipeline.processors import AsyncFrameProcessor, FrameDirection, FrameProcessor


class Pass(FrameProcessor):
    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)


class APass(AsyncFrameProcessor):
    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)


class Suffix(FrameProcessor):
    """Replaces each TextFrame with a new one whose text has a suffix."""

    settings_schema = ParamSchema([Param("suffix", str, "", live=True)])

    def __init__(self, suffix: str, **kw) -> None:
        super().__init__(**kw)
        self.suffix = suffix

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, TextFrame):
            await self.push_frame(TextFrame(frame.text + self.suffix), direction)
        else:
            await self.push_frame(frame, direction)


class Gate(AsyncFrameProcessor):
    """An async processor that blocks on TextFrames until `release` is set; records what it saw."""

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.release = asyncio.Event()
        self.entered = asyncio.Event()
        self.seen: list[Frame] = []

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        self.seen.append(frame)
        if isinstance(frame, TextFrame):
            self.entered.set()
            await self.release.wait()
        await self.push_frame(frame, direction)


class Recorder(FrameProcessor):
    """Records every frame (both directions) and passes it on."""

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.frames: list[Frame] = []
        self.got: asyncio.Event = asyncio.Event()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        self.frames.append(frame)
        self.got.set()
        await self.push_frame(frame, direction)

    def texts(self) -> list[str]:
        return [f.text for f in self.frames if isinstance(f, TextFrame)]
