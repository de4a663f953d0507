"""The serial pipeline: processors linked in a chain; itself a processor, so pipelines nest.

A frame entering a :class:`Pipeline` downstream is handed straight to its first processor, and what
leaves the last one is pushed on by the pipeline — two plain calls, no queue. Upstream frames travel
the same way in reverse.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from apipeline.frames import Frame
from apipeline.processors.frame_processor import DOWNSTREAM, FrameDirection, FrameProcessor


class _Edge(FrameProcessor):
    """The pipeline's inner ends: frames reaching them leave the pipeline."""

    def __init__(self, pipeline: Pipeline, direction: FrameDirection) -> None:
        super().__init__(name=f"{pipeline.name}.{'sink' if direction is DOWNSTREAM else 'source'}")
        self._pipeline = pipeline
        self._out = direction
        self._started = True

    async def receive(self, frame: Frame, direction: FrameDirection) -> None:
        await self._pipeline.push_frame(frame, direction)


class Pipeline(FrameProcessor):
    """Processors in series. Accepts processors and nested pipelines alike."""

    def __init__(self, processors: Sequence[FrameProcessor], *, name: str | None = None) -> None:
        super().__init__(name=name)
        self._processors = list(processors)
        for p in self._processors:
            if not isinstance(p, FrameProcessor):
                raise TypeError(f"{self.name}: expected FrameProcessor, got {type(p).__name__}")
        self._source = _Edge(self, FrameDirection.UPSTREAM)
        self._sink = _Edge(self, FrameDirection.DOWNSTREAM)
        chain: list[FrameProcessor] = [self._source, *self._processors, self._sink]
        for a, b in itertools.pairwise(chain):
            a.link(b)
        self._first = chain[1]
        self._last = chain[-2]
        self._started = True  # a pipeline gates nothing itself: its processors do

    def processors(self) -> list[FrameProcessor]:
        return list(self._processors)

    async def receive(self, frame: Frame, direction: FrameDirection) -> None:
        if direction is DOWNSTREAM:
            await self._first.receive(frame, direction)
        else:
            await self._last.receive(frame, direction)
