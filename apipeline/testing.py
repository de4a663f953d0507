"""Helpers to test processors, the same ones apipeline's own tests use.

``await run_processor(proc, frames)`` runs a processor (or pipeline) in a real :class:`PipelineTask`
with the given input frames followed by ``EndFrame`` and returns what came out downstream;
:class:`RecordingSink` records frames in both directions wherever it is placed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from apipeline.frames import (
    ControlFrame,
    DataFrame,
    ErrorFrame,
    Frame,
)
from apipeline.pipeline.pipeline import Pipeline
from apipeline.pipeline.task import PipelineParams, PipelineTask
from apipeline.processors.frame_processor import FrameDirection, FrameProcessor


class RecordingSink(FrameProcessor):
    """Records every frame that reaches it (both directions) and passes it on."""

    def __init__(self, *, name: str | None = None) -> None:
        super().__init__(name=name)
        self.downstream: list[Frame] = []
        self.upstream: list[Frame] = []

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        (self.downstream if direction is FrameDirection.DOWNSTREAM else self.upstream).append(frame)
        await self.push_frame(frame, direction)

    def data(self) -> list[Frame]:
        return [f for f in self.downstream if isinstance(f, DataFrame)]


@dataclass
class RunResult:
    """What a :func:`run_processor` run produced."""

    downstream: list[Frame] = field(default_factory=list)
    errors: list[ErrorFrame] = field(default_factory=list)
    task: PipelineTask | None = None

    @property
    def data(self) -> list[Frame]:
        return [f for f in self.downstream if isinstance(f, DataFrame)]

    def of_type(self, cls: type[Frame]) -> list[Frame]:
        return [f for f in self.downstream if isinstance(f, cls)]


async def run_processor(
    processor: FrameProcessor | Sequence[FrameProcessor],
    frames: Iterable[Frame],
    *,
    params: PipelineParams | None = None,
    include_control: bool = False,
) -> list[Frame]:
    """Run ``processor`` on ``frames`` (then ``EndFrame``) and return the downstream output.

    By default only data frames are returned; ``include_control=True`` returns control frames
    (``StartFrame``/``EndFrame`` included) as well.
    """
    result = await run_pipeline(processor, frames, params=params)
    if include_control:
        return [f for f in result.downstream if isinstance(f, (DataFrame, ControlFrame))]
    return result.data


async def run_pipeline(
    processor: FrameProcessor | Sequence[FrameProcessor],
    frames: Iterable[Frame],
    *,
    params: PipelineParams | None = None,
    end: bool = True,
) -> RunResult:
    """Like :func:`run_processor`, returning every frame (system frames too) and the errors."""
    procs = [processor] if isinstance(processor, FrameProcessor) else list(processor)
    sink = RecordingSink()
    task = PipelineTask(Pipeline([*procs, sink]), params or PipelineParams())
    await task.queue_frames(frames)
    if end:
        await task.stop_when_done()
    await task.run()
    return RunResult(downstream=list(sink.downstream), errors=list(task.errors), task=task)
