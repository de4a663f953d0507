"""Parallel and sync-parallel pipelines: every frame goes to every branch.

ParallelPipeline merges outputs as they come; SyncParallelPipeline emits, per input frame, every
branch's output in branch order. Both emit StartFrame/EndFrame once.

Run: .venv/bin/python examples/parallel_pipeline.py
"""

from __future__ import annotations

import asyncio

from apipeline.frames import Frame, TextFrame
from apipeline.pipeline import ParallelPipeline, Pipeline, PipelineTask, SyncParallelPipeline
from apipeline.processors import AsyncFrameProcessor, FrameDirection, FrameProcessor, OutputFrameProcessor


class Tag(FrameProcessor):
    def __init__(self, tag: str) -> None:
        super().__init__()
        self.tag = tag

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, TextFrame):
            await self.push_frame(TextFrame(f"{self.tag}({frame.text})"), direction)
        else:
            await self.push_frame(frame, direction)


class SlowTag(AsyncFrameProcessor):
    """An asynchronous branch: its own queue and worker task."""

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, TextFrame):
            await asyncio.sleep(0.01)  # simulated work (a model call, say)
            await self.push_frame(TextFrame(f"slow({frame.text})"), direction)
        else:
            await self.push_frame(frame, direction)


async def run(pipeline_cls: type) -> list[str]:
    out: list[str] = []
    pipeline = Pipeline(
        [
            pipeline_cls([Tag("a")], [SlowTag()], [Tag("c")]),
            OutputFrameProcessor(lambda f: out.append(f.text)),
        ]
    )
    task = PipelineTask(pipeline)
    await task.queue_frames([TextFrame("1"), TextFrame("2")])
    await task.stop_when_done()
    await task.run()
    return out


async def main() -> None:
    print("ParallelPipeline:    ", await run(ParallelPipeline))
    print("SyncParallelPipeline:", await run(SyncParallelPipeline))


if __name__ == "__main__":
    asyncio.run(main())
