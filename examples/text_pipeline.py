"""A text pipeline with aggregators: tokens in, sentences out, upper-cased, delivered to a callback.

Run: .venv/bin/python examples/text_pipeline.py
"""

from __future__ import annotations

import asyncio

from apipeline.frames import Frame, TextFrame
from apipeline.pipeline import Pipeline, PipelineRunner, PipelineTask
from apipeline.processors import FrameDirection, FrameProcessor, OutputFrameProcessor, SentenceAggregator


class UpperCase(FrameProcessor):
    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, TextFrame):
            await self.push_frame(TextFrame(frame.text.upper()), direction)
        else:
            await self.push_frame(frame, direction)


async def main() -> None:
    sentences: list[str] = []
    pipeline = Pipeline(
        [SentenceAggregator(), UpperCase(), OutputFrameProcessor(lambda f: sentences.append(f.text))]
    )
    task = PipelineTask(pipeline)
    tokens = "Hello there. This is apipeline, streaming tokens! Does it join them? Yes".split(" ")
    await task.queue_frames(TextFrame(t + " ") for t in tokens)
    await task.stop_when_done()
    await PipelineRunner().run(task)
    for s in sentences:
        print(s)


if __name__ == "__main__":
    asyncio.run(main())
