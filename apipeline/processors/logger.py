"""A processor that logs the frames passing through it (for tracing and debugging)."""

from __future__ import annotations

import logging

from apipeline.frames import Frame
from apipeline.processors.frame_processor import FrameDirection, FrameProcessor


class FrameLogger(FrameProcessor):
    """Log every frame (except ``ignored_frame_types``) with a prefix and direction, then pass it on.

    Logging per frame is this processor's whole purpose; nothing else in apipeline logs per frame.
    """

    def __init__(
        self,
        prefix: str = "Frame",
        *,
        level: int = logging.INFO,
        ignored_frame_types: tuple[type[Frame], ...] = (),
        logger: logging.Logger | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        self.prefix = prefix
        self.level = level
        self.ignored_frame_types = ignored_frame_types
        self._logger = logger or logging.getLogger("apipeline.frames")

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if not isinstance(frame, self.ignored_frame_types) and self._logger.isEnabledFor(self.level):
            arrow = "->" if direction is FrameDirection.DOWNSTREAM else "<-"
            self._logger.log(self.level, "%s %s %s", self.prefix, arrow, frame)
        await self.push_frame(frame, direction)
