"""The serial pipeline: processors linked in a chain; itself a processor, so pipelines nest.

A frame entering a :class:`Pipeline` downstream is handed straight to its first processor, and what
leaves the last one is pushed on by the pipeline — two plain calls, no queue. Upstream frames travel
the same way in reverse.
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable, Sequence

from apipeline.errors import DefinitionError
from apipeline.frames import Frame
from apipeline.processors.frame_processor import DOWNSTREAM, FrameDirection, FrameProcessor

__all__ = ["Edge", "Pipeline"]


class Edge(FrameProcessor):
    """Where frames leave a container: whatever reaches it is handed to ``on_frame``.

    The inner ends of a :class:`Pipeline`, the ends of each :class:`ParallelPipeline` branch and the
    task's own source and sink are all edges; only the callback differs.
    """

    def __init__(self, name: str, on_frame: Callable[[Frame, FrameDirection], Awaitable[None]]) -> None:
        super().__init__(name=name)
        self._on_frame = on_frame
        self._started = True

    def receive(self, frame: Frame, direction: FrameDirection) -> Awaitable[None]:  # type: ignore[override]
        return self._on_frame(frame, direction)


class Pipeline(FrameProcessor):
    """Processors in series. Accepts processors and nested pipelines alike."""

    def __init__(self, processors: Sequence[FrameProcessor], *, name: str | None = None) -> None:
        super().__init__(name=name)
        self._processors = list(processors)
        for p in self._processors:
            if not isinstance(p, FrameProcessor):
                raise DefinitionError(f"{self.name}: expected FrameProcessor, got {type(p).__name__}")
        self._source = Edge(f"{self.name}.source", self.push_frame)
        self._sink = Edge(f"{self.name}.sink", self.push_frame)
        chain: list[FrameProcessor] = [self._source, *self._processors, self._sink]
        for a, b in itertools.pairwise(chain):
            a.link(b)
        self._first = chain[1]
        self._last = chain[-2]
        self._started = True  # a pipeline gates nothing itself: its processors do

    def processors(self) -> list[FrameProcessor]:
        return list(self._processors)

    def receive(self, frame: Frame, direction: FrameDirection) -> Awaitable[None]:  # type: ignore[override]
        return (self._first if direction is DOWNSTREAM else self._last).receive(frame, direction)
