"""Semantics 8: parallel and sync-parallel pipelines."""

from __future__ import annotations

import asyncio

from apipeline.frames import (
    EndFrame,
    Frame,
    ImageRawFrame,
    StartFrame,
    StopInterruptionFrame,
    SyncNotifyFrame,
    TextFrame,
    UserStartedSpeakingFrame,
)
from apipeline.pipeline import ParallelPipeline, Pipeline, PipelineParams, PipelineTask, SyncParallelPipeline
from apipeline.processors import AsyncFrameProcessor, FrameDirection, FrameFilter, FrameProcessor
from apipeline.testing import (
    AsyncHoldBackProcessor,
    AsyncUpstreamAnswerer,
    HoldBackProcessor,
    UpstreamAnswerer,
    run_pipeline,
)
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


# ---- dedup by identity, independent of order (issue #10 items 5 and 9) --------------------------------


async def test_held_back_frames_come_out_once():
    # A branch that holds frames back (a VAD pre-roll) returns them after newer frames entered.
    shapes = [
        lambda: [[Pass()], [HoldBackProcessor(frames=5)]],  # every branch synchronous
        lambda: [[Pass()], [AsyncHoldBackProcessor(frames=5)], [APass(), HoldBackProcessor(frames=2)]],
        # a pre-roll that lets a control frame overtake what it holds (a VAD announcing speech)
        lambda: [[APass()], [HoldBackProcessor(frames=5, control_first=True)]],
    ]
    for shape in shapes:
        par = ParallelPipeline(*shape())
        sent: list[Frame] = []
        for i in range(100):
            sent.append(TextFrame(str(i)))
            if i % 10 == 9:
                sent.append(SyncNotifyFrame())
        result = await run_pipeline([par], sent)
        data = [f for f in sent if isinstance(f, TextFrame)]
        assert sorted(f.id for f in result.data) == [f.id for f in data], par.branches
        assert sum(isinstance(f, SyncNotifyFrame) for f in result.downstream) == 10
        assert sum(isinstance(f, EndFrame) for f in result.downstream) == 1


async def test_frames_entering_after_a_newer_control_frame_come_out_once():
    # Frame ids follow creation order, not entry order: data created before a control frame but
    # queued after it must not be forgotten when that control frame has passed every branch.
    data = [TextFrame(str(i)) for i in range(50)]
    control = SyncNotifyFrame()
    par = ParallelPipeline([Pass()], [APass()])
    result = await run_pipeline([par], [control, *data])
    assert [f.id for f in result.data] == [f.id for f in data]
    assert sum(isinstance(f, SyncNotifyFrame) for f in result.downstream) == 1


async def test_dedup_is_by_identity_not_by_id():
    # A frame decoded from a wire keeps the sender's id, so two different frames may share an id:
    # a branch that emits such a frame must not have it taken for the one that entered.
    class Impostor(FrameProcessor):
        async def process_frame(self, frame, direction):
            await super().process_frame(frame, direction)
            if isinstance(frame, TextFrame) and not frame.text.startswith("copy"):
                twin = TextFrame("copy-" + frame.text)
                twin.id = frame.id  # same id, another frame
                await self.push_frame(twin, direction)
            await self.push_frame(frame, direction)

    par = ParallelPipeline([Pass()], [Impostor()])
    result = await run_pipeline([par], [TextFrame("a"), TextFrame("b")])
    assert sorted(f.text for f in result.data) == ["a", "b", "copy-a", "copy-b"]


async def test_bookkeeping_is_capped_while_running():
    # A branch that swallows every data frame never returns them; without the cap the table would
    # hold every frame that ever entered. Sampled while frames flow, not after EndFrame cleared it.
    par = ParallelPipeline([Pass()], [FrameFilter(ImageRawFrame)], max_tracked=64)
    sizes: list[int] = []

    class Sample(FrameProcessor):
        async def process_frame(self, frame, direction):
            await super().process_frame(frame, direction)
            sizes.append(par.tracked_frames())
            await self.push_frame(frame, direction)

    result = await run_pipeline([par, Sample()], [TextFrame(str(i)) for i in range(1000)])
    assert len(result.data) == 1000
    assert max(sizes) == 64  # the cap was reached (so it was what bounded the table) and held
    assert par.tracked_frames() == 0  # EndFrame has passed every branch: nothing can come back


# ---- sync-parallel: upstream pushes and answers (issue #10 item 6) ------------------------------------


async def test_sync_parallel_sends_a_branch_upstream_push_upstream():
    for answerer in (UpstreamAnswerer(), AsyncUpstreamAnswerer()):
        before = Recorder()
        sync = SyncParallelPipeline([answerer], [Pass()], [APass()])
        result = await asyncio.wait_for(run_pipeline([before, sync], [TextFrame("a"), TextFrame("b")]), 10)
        assert [f.text for f in result.data] == ["a", "b"]  # no answer came out downstream
        ups = [f for f in before.frames if f.metadata.get("answer_to")]
        assert [f.text for f in ups] == [f.text for f in answerer.answers]
        assert len(ups) == 2


async def test_sync_parallel_survives_a_processor_after_it_that_answers_upstream():
    for sync_branch in ([APass()], [Pass()]):
        before = Recorder()
        sync = SyncParallelPipeline(sync_branch, [Suffix("-x")])
        answerer = UpstreamAnswerer()
        sent = [TextFrame(str(i)) for i in range(20)]
        result = await asyncio.wait_for(run_pipeline([before, sync, answerer], sent), 10)
        assert [f.text for f in result.data] == [t for i in range(20) for t in (str(i), f"{i}-x")]
        # every answer crossed the sync-parallel upstream (both branches pass it on: once, deduplicated)
        answers = [f for f in before.frames if f.metadata.get("answer_to")]
        assert sorted(f.id for f in answers) == sorted(f.id for f in answerer.answers)
        assert len(answers) == 40


async def test_sync_parallel_reentered_from_its_own_output_does_not_deadlock():
    # A branch pushes upstream; the processor before the sync-parallel answers by pushing a frame
    # back downstream into it, in the same task, while the sync-parallel is collecting.
    class Bounce(FrameProcessor):
        bounced = 0

        async def process_frame(self, frame, direction):
            await super().process_frame(frame, direction)
            await self.push_frame(frame, direction)
            if direction is FrameDirection.UPSTREAM and isinstance(frame, TextFrame) and not self.bounced:
                self.bounced += 1
                await self.push_frame(TextFrame("bounced:" + frame.text))

    answerer = UpstreamAnswerer()
    sync = SyncParallelPipeline([answerer], [Pass()])
    result = await asyncio.wait_for(run_pipeline([Bounce(), sync], [TextFrame("a")]), 10)
    first_answer = answerer.answers[0]
    assert [f.text for f in result.data] == ["a", "bounced:" + first_answer.text]


async def test_a_system_frame_in_flight_when_end_passes_comes_out_once():
    # Found by the stress suite: forgetting everything when EndFrame had passed every branch also
    # forgot a system frame still inside a branch, which then came out once per branch.
    end_may_pass = asyncio.Event()
    system_may_pass = asyncio.Event()
    system_inside = asyncio.Event()

    class HoldSystem(FrameProcessor):
        async def process_frame(self, frame, direction):
            await super().process_frame(frame, direction)
            if isinstance(frame, StopInterruptionFrame):
                system_inside.set()
                await system_may_pass.wait()
            await self.push_frame(frame, direction)

    class HoldEnd(AsyncFrameProcessor):
        async def process_frame(self, frame, direction):
            await super().process_frame(frame, direction)
            if isinstance(frame, EndFrame):
                await end_may_pass.wait()
            await self.push_frame(frame, direction)

    class Watch(Recorder):
        text = asyncio.Event()
        end = asyncio.Event()

        async def process_frame(self, frame, direction):
            await super().process_frame(frame, direction)
            if isinstance(frame, TextFrame):
                self.text.set()
            elif isinstance(frame, EndFrame):
                self.end.set()

    rec = Watch()
    task = PipelineTask(Pipeline([ParallelPipeline([HoldSystem()], [HoldEnd()]), rec]))
    await task.queue_frames([TextFrame("a")])
    await task.stop_when_done()
    runner = asyncio.create_task(task.run())
    await rec.text.wait()
    injector = asyncio.create_task(task.queue_frame(StopInterruptionFrame()))
    await system_inside.wait()
    end_may_pass.set()  # EndFrame leaves the second branch: its last return
    await rec.end.wait()
    system_may_pass.set()
    await injector
    await asyncio.wait_for(runner, 10)
    assert sum(isinstance(f, StopInterruptionFrame) for f in rec.frames) == 1


async def test_nested_sync_parallel_passes_the_outer_markers_on():
    # Found by the stress suite: the inner one swallowed every marker it had not sent itself, so the
    # outer one waited out sync_timeout on every frame (StartFrame first).
    inner = SyncParallelPipeline([Suffix("-1")], [Suffix("-2")], sync_timeout=10.0)
    outer = SyncParallelPipeline([inner], [Pass()], sync_timeout=10.0)
    result = await asyncio.wait_for(run_pipeline([outer], [TextFrame("a"), TextFrame("b")]), 5)
    assert [f.text for f in result.data] == ["a-1", "a-2", "a", "b-1", "b-2", "b"]
    assert not result.errors


async def test_sync_parallel_frame_held_past_its_step_comes_out_once():
    # Found by the stress suite: a branch that lets the marker overtake a frame it holds returns
    # that frame in a later step, where it was taken for a new frame and sent on a second time.
    hold = [HoldBackProcessor(frames=1, control_first=True), HoldBackProcessor(frames=1)]
    sync = SyncParallelPipeline([Pass()], hold)
    sent = [TextFrame("a"), SyncNotifyFrame(), TextFrame("b")]
    result = await asyncio.wait_for(run_pipeline([sync], sent), 10)
    assert sorted(f.text for f in result.data) == ["a", "b"]
    assert sum(isinstance(f, SyncNotifyFrame) for f in result.downstream) == 1


async def test_cancel_while_a_sync_parallel_waits_for_its_branches_is_not_swallowed():
    # Found by the stress suite (--stress): the CancelFrame ends the sync-parallel's wait at the
    # moment the task cancels the pump blocked in it; asyncio.wait_for (3.11) then swallowed the
    # cancellation, the pump went on and was abandoned after cancel_timeout.
    sync = SyncParallelPipeline([Pass()], [APass(max_queue_size=1, overflow="drop_oldest")])
    params = PipelineParams(max_input_queue_size=1, cancel_timeout=1.0, cleanup_timeout=1.0)
    task = PipelineTask(Pipeline([sync]), params)
    runner = asyncio.create_task(task.run())
    await task.queue_frames([TextFrame("a"), UserStartedSpeakingFrame()])
    await task.cancel()
    await asyncio.wait_for(runner, 10)
    assert not task.abandoned and not task.timeouts
