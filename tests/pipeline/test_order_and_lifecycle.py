"""Semantics 1, 3, 5, 9: order, start gating, end, upstream frames."""

from __future__ import annotations

import asyncio
import random

from apipeline.frames import EndFrame, ErrorFrame, Frame, StartFrame, StopTaskFrame, TextFrame
from apipeline.pipeline import Pipeline, PipelineParams, PipelineTask
from apipeline.processors import AsyncFrameProcessor, FrameDirection, FrameProcessor
from tests.helpers import APass, Pass, Recorder


class Yielding(AsyncFrameProcessor):
    """Async processor that yields to the loop a random number of times per frame (seeded)."""

    def __init__(self, seed: int) -> None:
        super().__init__(max_queue_size=4)
        self.rng = random.Random(seed)

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        for _ in range(self.rng.randrange(3)):
            await asyncio.sleep(0)
        await self.push_frame(frame, direction)


class FirstFrameChecker(FrameProcessor):
    def __init__(self) -> None:
        super().__init__()
        self.first: Frame | None = None
        self.starts = 0
        self.cleaned = 0

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if self.first is None:
            self.first = frame
        if isinstance(frame, StartFrame):
            self.starts += 1
        await self.push_frame(frame, direction)

    async def cleanup(self) -> None:
        self.cleaned += 1
        await super().cleanup()


def build_mixed(seed: int) -> tuple[Pipeline, Recorder]:
    rng = random.Random(seed)
    procs: list[FrameProcessor] = []
    for i in range(12):
        kind = rng.choice(["sync", "async", "yield", "nested"])
        if kind == "sync":
            procs.append(Pass())
        elif kind == "async":
            procs.append(APass(max_queue_size=rng.choice([1, 2, 8])))
        elif kind == "yield":
            procs.append(Yielding(seed + i))
        else:
            procs.append(Pipeline([Pass(), APass(max_queue_size=2), Pipeline([Yielding(i)])]))
    rec = Recorder()
    return Pipeline([*procs, rec]), rec


async def test_order_through_mixed_sync_async_nested(no_leftover_tasks):
    for seed in range(3):
        pipeline, rec = build_mixed(seed)
        task = PipelineTask(pipeline)
        sent = [TextFrame(str(i)) for i in range(300)]
        await task.queue_frames(sent)
        await task.stop_when_done()
        await task.run()
        got = [f for f in rec.frames if isinstance(f, TextFrame)]
        assert [f.id for f in got] == [f.id for f in sent]  # none lost, duplicated or reordered
        assert isinstance(rec.frames[-1], EndFrame)  # EndFrame never overtakes data
        assert task.has_finished()
    no_leftover_tasks()


async def test_start_reaches_every_processor_once_and_first():
    checkers = [FirstFrameChecker() for _ in range(4)]
    pipeline = Pipeline([checkers[0], APass(), Pipeline([checkers[1], checkers[2]]), APass(), checkers[3]])
    task = PipelineTask(pipeline)
    await task.queue_frames([TextFrame("a"), TextFrame("b")])  # queued before run
    await task.stop_when_done()
    await task.run()
    for c in checkers:
        assert isinstance(c.first, StartFrame)
        assert c.starts == 1
        assert c.cleaned == 1


async def test_frame_before_start_is_refused_with_an_error():
    p = Pass()
    errors: list[Frame] = []

    class Catch(FrameProcessor):
        async def receive(self, frame, direction):
            errors.append(frame)

    Catch().link(p)
    await p.receive(TextFrame("early"), FrameDirection.DOWNSTREAM)
    assert len(errors) == 1 and isinstance(errors[0], ErrorFrame)
    assert "before StartFrame" in errors[0].error


async def test_run_returns_only_after_end_reached_sink_with_all_data(no_leftover_tasks):
    class Slow(AsyncFrameProcessor):
        async def process_frame(self, frame, direction):
            await super().process_frame(frame, direction)
            for _ in range(5):
                await asyncio.sleep(0)
            await self.push_frame(frame, direction)

    rec = Recorder()
    task = PipelineTask(Pipeline([Slow(max_queue_size=2), Slow(), rec]))
    await task.queue_frames([TextFrame(str(i)) for i in range(50)])
    await task.stop_when_done()
    await task.run()
    assert rec.texts() == [str(i) for i in range(50)]
    assert isinstance(rec.frames[-1], EndFrame)
    no_leftover_tasks()


async def test_end_timeout_is_reported_not_hung(no_leftover_tasks):
    class SwallowEnd(FrameProcessor):
        async def process_frame(self, frame, direction):
            await super().process_frame(frame, direction)
            if not isinstance(frame, EndFrame):
                await self.push_frame(frame, direction)

    task = PipelineTask(Pipeline([SwallowEnd()]), PipelineParams(end_timeout=0.2))
    seen: list[ErrorFrame] = []

    @task.event_handler("on_pipeline_error")
    async def on_error(t, frame):
        seen.append(frame)

    await task.stop_when_done()
    await asyncio.wait_for(task.run(), 5)
    assert task.has_finished()
    assert any("EndFrame to reach the sink" in m for m in task.timeouts)
    assert any("timed out" in e.error for e in seen)
    no_leftover_tasks()


async def test_upstream_error_and_stop_task_reach_the_task():
    class StopAfter(FrameProcessor):
        async def process_frame(self, frame, direction):
            await super().process_frame(frame, direction)
            await self.push_frame(frame, direction)
            if isinstance(frame, TextFrame) and frame.text == "2":
                await self.push_frame(ErrorFrame("not fatal"), FrameDirection.UPSTREAM)
                await self.push_frame(StopTaskFrame(), FrameDirection.UPSTREAM)

    rec = Recorder()
    task = PipelineTask(Pipeline([Pass(), APass(), StopAfter(), rec]))
    await task.queue_frames([TextFrame(str(i)) for i in range(5)])
    await asyncio.wait_for(task.run(), 5)  # no stop_when_done: StopTaskFrame ends it
    assert rec.texts() == ["0", "1", "2", "3", "4"]  # graceful: queued data still delivered
    assert [e.error for e in task.errors] == ["not fatal"]


async def test_queue_after_finish_is_an_error():
    import pytest

    from apipeline.errors import PipelineError

    task = PipelineTask(Pipeline([Pass()]))
    await task.stop_when_done()
    await task.run()
    with pytest.raises(PipelineError, match="has finished"):
        await task.queue_frame(TextFrame("late"))
