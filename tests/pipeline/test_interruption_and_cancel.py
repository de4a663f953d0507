"""Semantics 2, 4, 6, 7: system frames overtake, interruption, cancel, errors."""

from __future__ import annotations

import asyncio

import pytest

from apipeline.frames import (
    CancelFrame,
    EndFrame,
    ErrorFrame,
    StartInterruptionFrame,
    StopInterruptionFrame,
    SyncFrame,
    TextFrame,
)
from apipeline.pipeline import Pipeline, PipelineParams, PipelineTask
from apipeline.processors import AsyncFrameProcessor, FrameProcessor
from tests.helpers import APass, Gate, Pass, Recorder


async def start_task(task: PipelineTask) -> asyncio.Task:
    runner = asyncio.create_task(task.run())
    return runner


async def test_system_frame_overtakes_queued_data_in_async_processor(no_leftover_tasks):
    gate = Gate(max_queue_size=16)
    rec = Recorder()
    task = PipelineTask(Pipeline([gate, rec]))
    await task.queue_frames([TextFrame(str(i)) for i in range(5)])
    runner = await start_task(task)
    await gate.entered.wait()  # "0" in flight, "1".."4" queued
    stop_int = StopInterruptionFrame()
    await task.queue_frame(stop_int)
    assert rec.frames[-1] is stop_int  # handled on arrival, before any queued data
    assert rec.texts() == []
    gate.release.set()
    await task.stop_when_done()
    await runner
    assert rec.texts() == ["0", "1", "2", "3", "4"]
    no_leftover_tasks()


async def test_system_frame_overtakes_task_input_under_backpressure(no_leftover_tasks):
    gate = Gate(max_queue_size=1)
    rec = Recorder()
    task = PipelineTask(Pipeline([gate, rec]))
    runner = await start_task(task)
    await task.queue_frames([TextFrame(str(i)) for i in range(10)])  # task input holds most of them
    await gate.entered.wait()
    assert gate.queue_size == 1  # the pipeline is applying backpressure
    system = StopInterruptionFrame()
    await asyncio.wait_for(task.queue_frame(system), 1)  # does not wait behind the data
    assert system in rec.frames and rec.texts() == []
    gate.release.set()
    await task.stop_when_done()
    await runner
    assert rec.texts() == [str(i) for i in range(10)]
    no_leftover_tasks()


async def test_interruption_drops_queued_and_inflight_work_but_keeps_control(no_leftover_tasks):
    gate = Gate(max_queue_size=16)
    after = APass(max_queue_size=16)
    rec = Recorder()
    task = PipelineTask(Pipeline([gate, after, rec]), PipelineParams(allow_interruptions=True))
    sync = SyncFrame()
    await task.queue_frames([TextFrame("old0"), TextFrame("old1"), sync, TextFrame("old2")])
    runner = await start_task(task)
    await gate.entered.wait()  # old0 in flight, old1 + SyncFrame + old2 queued
    epoch = gate.interruption_epoch
    interruption = StartInterruptionFrame()
    await task.queue_frame(interruption)
    assert gate.interruption_epoch == epoch + 1
    assert interruption in rec.frames  # passed on
    gate.release.set()  # the fresh worker must not block on new frames
    await task.queue_frames([TextFrame("new0"), TextFrame("new1")])
    await task.stop_when_done()
    await runner
    assert rec.texts() == ["new0", "new1"]  # old work gone, new work flows
    assert sync in rec.frames and isinstance(rec.frames[-1], EndFrame)  # control frames survive
    no_leftover_tasks()


async def test_interruption_ignored_when_not_allowed():
    gate = Gate()
    rec = Recorder()
    task = PipelineTask(Pipeline([gate, rec]), PipelineParams(allow_interruptions=False))
    await task.queue_frames([TextFrame("a"), TextFrame("b")])
    runner = await start_task(task)
    await gate.entered.wait()
    await task.queue_frame(StartInterruptionFrame())
    gate.release.set()
    await task.stop_when_done()
    await runner
    assert rec.texts() == ["a", "b"]


class Forever(FrameProcessor):
    """A sync processor that never finishes a text frame."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = asyncio.Event()

    async def process_frame(self, frame, direction):
        await super().process_frame(frame, direction)
        if isinstance(frame, TextFrame):
            self.entered.set()
            await asyncio.Event().wait()
        await self.push_frame(frame, direction)


class AForever(AsyncFrameProcessor):
    async def process_frame(self, frame, direction):
        await super().process_frame(frame, direction)
        if isinstance(frame, TextFrame):
            await asyncio.Event().wait()
        await self.push_frame(frame, direction)


@pytest.mark.parametrize("how", ["cancel", "cancel_frame"])
async def test_cancel_stops_slow_pipeline_without_leftovers(how, no_leftover_tasks):
    slow = Forever()
    rec = Recorder()
    task = PipelineTask(Pipeline([APass(), slow, AForever(), rec]), PipelineParams(cancel_timeout=1))
    await task.queue_frames([TextFrame("x"), TextFrame("y")])
    runner = await start_task(task)
    await slow.entered.wait()
    if how == "cancel":
        await task.cancel()
    else:
        await task.queue_frame(CancelFrame())
    await asyncio.wait_for(runner, 5)
    assert task.has_finished()
    assert any(isinstance(f, CancelFrame) for f in rec.frames)
    no_leftover_tasks()


async def test_cancel_before_run_returns_at_once():
    task = PipelineTask(Pipeline([Pass()]))
    await task.cancel()
    await asyncio.wait_for(task.run(), 1)
    assert task.has_finished()


class Boom(FrameProcessor):
    def __init__(self, fatal_on: str | None = None) -> None:
        super().__init__(name="boom")
        self.fatal_on = fatal_on

    async def process_frame(self, frame, direction):
        await super().process_frame(frame, direction)
        if isinstance(frame, TextFrame) and frame.text == "bad":
            raise ValueError("cannot digest 'bad'")
        if isinstance(frame, TextFrame) and frame.text == self.fatal_on:
            await self.push_error("disk on fire", fatal=True)
            return
        await self.push_frame(frame, direction)


async def test_exception_becomes_upstream_error_frame_and_pipeline_keeps_running():
    rec_up = Recorder()
    rec = Recorder()
    task = PipelineTask(Pipeline([rec_up, APass(), Boom(), rec]))
    seen: list[ErrorFrame] = []
    task.event_handler("on_pipeline_error")(lambda t, f: seen.append(f))
    await task.queue_frames([TextFrame("a"), TextFrame("bad"), TextFrame("c")])
    await task.stop_when_done()
    await task.run()
    assert rec.texts() == ["a", "c"]
    assert len(seen) == 1 and seen == task.errors
    err = seen[0]
    assert "boom" in err.error and "ValueError" in err.error and "cannot digest" in err.error
    assert err.processor == "boom" and not err.fatal
    assert any(isinstance(f, ErrorFrame) for f in rec_up.frames)  # it travelled upstream


async def test_fatal_error_cancels_the_task(no_leftover_tasks):
    rec = Recorder()
    task = PipelineTask(Pipeline([APass(), Boom(fatal_on="stop"), AForever(), rec]))
    # "a" gets stuck in AForever; the fatal error on "stop" must still end the run
    await task.queue_frames([TextFrame("a"), TextFrame("stop"), TextFrame("never")])
    await asyncio.wait_for(task.run(), 5)  # no EndFrame queued: the fatal error ends it
    assert task.has_finished()
    assert task.errors[0].fatal and "disk on fire" in task.errors[0].error
    assert any(isinstance(f, CancelFrame) for f in rec.frames)
    no_leftover_tasks()
