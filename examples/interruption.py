"""Interruption: a user barges in while a slow "speaker" still has queued sentences.

StartInterruptionFrame (with allow_interruptions) drops the queued and in-flight work of every
asynchronous processor; frames queued after it flow normally, and EndFrame is never dropped.

Run: .venv/bin/python examples/interruption.py
"""

from __future__ import annotations

import asyncio

from apipeline.frames import Frame, StartInterruptionFrame, TextFrame
from apipeline.pipeline import Pipeline, PipelineParams, PipelineTask
from apipeline.processors import AsyncFrameProcessor, FrameDirection, OutputFrameProcessor


class Speaker(AsyncFrameProcessor):
    """Takes 50 ms to "say" each sentence."""

    def __init__(self) -> None:
        super().__init__(max_queue_size=32)
        self.started_speaking = asyncio.Event()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, TextFrame):
            self.started_speaking.set()
            await asyncio.sleep(0.05)
        await self.push_frame(frame, direction)


async def main() -> None:
    said: list[str] = []
    speaker = Speaker()
    task = PipelineTask(
        Pipeline([speaker, OutputFrameProcessor(lambda f: said.append(f.text))]),
        PipelineParams(allow_interruptions=True),
    )
    runner = asyncio.create_task(task.run())
    await task.queue_frames(TextFrame(f"old sentence {i}") for i in range(5))
    await speaker.started_speaking.wait()
    print("user interrupts while the bot is speaking...")
    await task.queue_frame(StartInterruptionFrame())
    await task.queue_frame(TextFrame("answer to the interruption"))
    await task.stop_when_done()
    await runner
    print("said:", said)


if __name__ == "__main__":
    asyncio.run(main())
