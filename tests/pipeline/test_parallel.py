"""Semantics 8: parallel and sync-parallel pipelines."""

from __future__ import annotations

from apipeline.frames import EndFrame, Frame, ImageRawFrame, StartFrame, SyncNotifyFrame, TextFrame
from apipeline.pipeline import ParallelPipeline, Pipeline, PipelineTask, SyncParallelPipeline
from apipeline.processors import FrameFilter, FrameProcessor
from apipeline.testing import run_pipeline
from tests.helpers import APass, Pass, Recorder, Suffix


class Count(FrameProcessor):
    def __init__(self) -> None:
        super().__init__()
        self.data = 0
        self.starts = 0
        self.ends = 0

    async def process_frame(self, frame, direction):
        await super().process_frame(frame, direction)
        self.starts += isinstance(frame, StartFrame)
        self.ends += isinstance(frame, EndFrame)
        self.data += isinstance(frame, TextFrame)
        await self.push_frame(frame, direction)


async def test_every_branch_gets_every_frame_and_outputs_merge():
    counters = [Count(), Count(), Count()]
    par = ParallelPipeline([counters[0], Suffix("-a")], [counters[1], APass(), Suffix("-b")], [counters[2]])
    result = await run_pipeline([par], [TextFrame("x"), TextFrame("y")])
    texts = [f.text for f in result.data]
    assert sorted(texts) == sorted(["x-a", "y-a", "x-b", "y-b", "x", "y"])
    assert all(c.data == 2 and c.starts == 1 and c.ends == 1 for c in counters)


async def test_unchanged_frame_comes_out_once_and_lifecycle_once_after_all_branches():
    par = ParallelPipeline([Pass()], [APass(), APass()], [Pass(), APass()], [FrameFilter(ImageRawFrame)])
    sent = [TextFrame(str(i)) for i in range(100)]
    result = await run_pipeline([par], sent)
    got = result.data
    assert sorted(f.id for f in got) == [f.id for f in sent]  # once each, no duplicates
    assert sum(isinstance(f, StartFrame) for f in result.downstream) == 1
    assert sum(isinstance(f, EndFrame) for f in result.downstream) == 1
    assert isinstance(result.downstream[-1], EndFrame)  # after every branch's data
    assert par.tracked_frames() == 0


async def test_bookkeeping_stays_bounded():
    # A branch that swallows data frames never returns them: the FIFO bound must still hold.
    par = ParallelPipeline([APass()], [FrameFilter(ImageRawFrame)], max_tracked=64)
    rec = Recorder()
    task = PipelineTask(Pipeline([par, rec]))
    await task.queue_frames(TextFrame("x") for _ in range(5000))
    await task.stop_when_done()
    await task.run()
    assert len(rec.texts()) == 5000
    assert par.tracked_frames() <= 64


async def test_nested_parallel_in_parallel():
    inner = ParallelPipeline([Suffix("1")], [Suffix("2")])
    outer = ParallelPipeline([inner], [Pass()])
    result = await run_pipeline([outer], [TextFrame("t")])
    assert sorted(f.text for f in result.data) == ["t", "t1", "t2"]
    assert sum(isinstance(f, EndFrame) for f in result.downstream) == 1


class Split(FrameProcessor):
    """Emits two frames per text frame."""

    async def process_frame(self, frame, direction):
        await super().process_frame(frame, direction)
        if isinstance(frame, TextFrame):
            await self.push_frame(TextFrame(frame.text + ".1"))
            await self.push_frame(TextFrame(frame.text + ".2"))
        else:
            await self.push_frame(frame, direction)


async def test_sync_parallel_emits_all_branch_outputs_per_input_in_branch_order():
    sync = SyncParallelPipeline([APass(), Suffix("-a")], [Split()], [APass(max_queue_size=1), Suffix("-c")])
    result = await run_pipeline([sync], [TextFrame("x"), TextFrame("y")])
    assert [f.text for f in result.data] == ["x-a", "x.1", "x.2", "x-c", "y-a", "y.1", "y.2", "y-c"]
    assert sum(isinstance(f, EndFrame) for f in result.downstream) == 1


async def test_sync_parallel_passthrough_once_and_consuming_branch_does_not_deadlock():
    class EatAll(FrameProcessor):
        async def process_frame(self, frame: Frame, direction):
            await super().process_frame(frame, direction)
            if not isinstance(frame, (TextFrame, SyncNotifyFrame)):
                await self.push_frame(frame, direction)

    sync = SyncParallelPipeline([Pass()], [EatAll()], [APass()])
    sent = [TextFrame("a"), SyncNotifyFrame(), TextFrame("b")]
    result = await run_pipeline([sync], sent)
    assert [f.text for f in result.data] == ["a", "b"]
    assert sum(isinstance(f, SyncNotifyFrame) for f in result.downstream) == 1
