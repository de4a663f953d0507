"""pipecat's names for the same concepts work beside ours (docs/pipecat.md lists them)."""

from __future__ import annotations

import asyncio

import pytest

import apipeline.frames as frames
from apipeline.frames import InterruptionFrame, StartFrame, StartInterruptionFrame, TextFrame
from apipeline.pipeline import Pipeline, PipelineTask
from apipeline.processors import FrameProcessor
from tests.helpers import APass, Recorder, Suffix


async def test_queue_frame_on_a_plain_processor_is_its_delivery_step():
    first, last = Suffix("!"), Recorder()
    first.link(last)
    await first.queue_frame(TextFrame("early"))  # before StartFrame: refused like any delivery
    await first.queue_frame(StartFrame())
    await first.queue_frame(TextFrame("a"))
    assert last.texts() == ["a!"]
    assert last.previous is first and last.previous is last.prev
    assert first.previous is None


async def test_queue_frame_on_an_async_processor_enqueues_in_order_with_the_stream():
    entry, last = APass(), Recorder()
    task = PipelineTask(Pipeline([entry, Suffix("?"), last]))

    @task.event_handler("on_pipeline_started")
    async def feed(t: PipelineTask, _frame: object) -> None:
        for text in "abc":
            await entry.queue_frame(TextFrame(text))
        await t.stop_when_done()

    await asyncio.wait_for(task.run(), 30)
    assert last.texts() == ["a?", "b?", "c?"]
    assert not task.errors


def test_interruption_frame_is_pipecats_name_for_start_interruption():
    assert InterruptionFrame is StartInterruptionFrame
    assert "InterruptionFrame" in frames.__all__
    assert isinstance(InterruptionFrame(), StartInterruptionFrame)


def test_previous_is_read_only():
    p = FrameProcessor()
    with pytest.raises(AttributeError):
        p.previous = FrameProcessor()  # type: ignore[misc]
