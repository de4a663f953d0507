"""Helpers of the chatbot tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from apipeline.frames import Frame
from apipeline.processors.io import InputProcessor


class ScriptSource(InputProcessor):
    """Push a fixed list of frames in order, system frames included (the task's queue would let
    system frames jump ahead), then ask the task to stop."""

    def __init__(self, frames: Sequence[Frame]) -> None:
        super().__init__()
        self.script = list(frames)

    async def frames(self) -> AsyncIterator[Frame]:
        for frame in self.script:
            yield frame
