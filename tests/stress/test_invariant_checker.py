"""The test kit itself: the invariant checker catches each kind of broken promise, and the adversaries
do what they say (so a green stress run means something)."""

from __future__ import annotations

import asyncio

import pytest

from apipeline.frames import DataFrame, EndFrame, Frame, SyncNotifyFrame, TextFrame
from apipeline.pipeline import ParallelPipeline, Pipeline, PipelineParams, PipelineTask
from apipeline.processors import AsyncFrameProcessor, FrameDirection, FrameProcessor
from apipeline.testing import (
    AsyncCancelSwallower,
    AsyncHoldBackProcessor,
    AsyncReentrantProcessor,
    AsyncSlowProcessor,
    AsyncStuckProcessor,
    CancelSwallower,
    HoldBackProcessor,
    InvariantChecker,
    InvariantViolation,
    RaisingProcessor,
    StuckProcessor,
    UpstreamAnswerer,
    run_pipeline,
)

FAST = PipelineParams(start_timeout=0.3, end_timeout=0.3, cancel_timeout=0.2, cleanup_timeout=0.2)


async def checked(processors: list[FrameProcessor], frames: list[Frame], params: PipelineParams = FAST, **kw):
    task = PipelineTask(Pipeline(processors), params)
    checker = InvariantChecker(task, **kw)
    checker.start()
    await checker.queue_frames(frames)
    await task.stop_when_done()
    await checker.finish()
    return checker


def texts(n: int) -> list[Frame]:
    return [TextFrame(str(i)) for i in range(n)]


# ---- the checker fails when a promise is broken --------------------------------------------------------


class Duplicate(FrameProcessor):
    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)
        if isinstance(frame, DataFrame):
            await self.push_frame(frame, direction)


class Swap(FrameProcessor):
    """Swaps each pair of data frames."""

    def __init__(self) -> None:
        super().__init__()
        self.held: Frame | None = None

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, DataFrame):
            if self.held is None:
                self.held = frame
                return
            await self.push_frame(frame, direction)
            frame, self.held = self.held, None
        elif self.held is not None:
            await self.push_frame(self.held, direction)
            self.held = None
        await self.push_frame(frame, direction)


class Lose(FrameProcessor):
    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if not (isinstance(frame, TextFrame) and frame.text == "3"):
            await self.push_frame(frame, direction)


class Leak(FrameProcessor):
    async def start(self, frame) -> None:
        self.leaked = asyncio.get_running_loop().create_task(asyncio.sleep(30), name="leaked-by-processor")

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)


class StopTwice(FrameProcessor):
    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, EndFrame):
            await self.stop(frame)  # a second call
        await self.push_frame(frame, direction)


class SecondWorker(AsyncFrameProcessor):
    """Starts a second task under its worker's name: what the interruption bug of issue #10 did."""

    async def start(self, frame) -> None:
        await super().start(frame)
        self.extra = asyncio.get_running_loop().create_task(asyncio.sleep(0.05), name=f"{self.name}.worker")

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (Duplicate, "reached the sink more than once"),
        (Swap, "out of order"),
        (Lose, "lost after a normal end"),
        (Leak, "tasks left after run(): ['leaked-by-processor']"),
        (StopTwice, "stop() ran 2 times"),
        (SecondWorker, "2 worker tasks alive at once"),
    ],
)
async def test_the_checker_reports_each_broken_promise(make, problem):
    proc = make()
    checker = await checked([proc], texts(6))
    with pytest.raises(
        InvariantViolation, match=problem.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")
    ):
        checker.assert_ok()
    if isinstance(proc, Leak):
        proc.leaked.cancel()
    if isinstance(proc, SecondWorker):
        await proc.extra


async def test_the_checker_passes_a_sound_pipeline_and_allows_what_interruptions_drop():
    slow = AsyncSlowProcessor(delay=0.001, max_queue_size=2)
    task = PipelineTask(Pipeline([slow, HoldBackProcessor(2)]), PipelineParams(allow_interruptions=True))
    checker = InvariantChecker(task)
    checker.start()
    await checker.queue_frames(texts(20))
    await checker.interrupt()
    await checker.queue_frames(texts(5))
    await task.stop_when_done()
    await checker.finish()
    checker.assert_ok()
    got = [f.text for f in checker.downstream if isinstance(f, TextFrame)]
    assert got[-5:] == [str(i) for i in range(5)]  # nothing after the interruption was lost


async def test_the_checker_counts_drops_and_errors_as_explained_losses():
    raising = RaisingProcessor(every=4)
    lossy = AsyncSlowProcessor(delay=0.001, max_queue_size=1, overflow="drop_oldest")
    checker = await checked([raising, lossy], texts(30), PipelineParams())
    checker.assert_ok()
    assert lossy.queue_statistics().drops > 0 and len(raising.raised) == 7


async def test_the_checker_reports_a_run_that_exceeds_its_bound():
    class SlowStop(FrameProcessor):
        async def stop(self, frame) -> None:
            await asyncio.sleep(0.5)

        async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
            await super().process_frame(frame, direction)
            await self.push_frame(frame, direction)

    checker = await checked([SlowStop()], texts(1), PipelineParams(end_timeout=5.0), slack=0.0)
    checker.bound = lambda: 0.1  # type: ignore[method-assign]  # pretend a tighter promise
    checker.problems.clear()
    checker._check()
    assert any("more than its bound" in p for p in checker.problems)


# ---- the adversaries do what they say -------------------------------------------------------------------


async def test_holdback_releases_after_newer_frames_and_before_end():
    hold = HoldBackProcessor(frames=3)
    order: list[str] = []

    class Spy(FrameProcessor):
        async def process_frame(self, frame, direction):
            await super().process_frame(frame, direction)
            if isinstance(frame, TextFrame):
                order.append(f"out{frame.text}")
            await self.push_frame(frame, direction)

    class In(FrameProcessor):
        async def process_frame(self, frame, direction):
            await super().process_frame(frame, direction)
            if isinstance(frame, TextFrame):
                order.append(f"in{frame.text}")
            await self.push_frame(frame, direction)

    result = await run_pipeline([In(), hold, Spy()], texts(5))
    assert [f.text for f in result.data] == ["0", "1", "2", "3", "4"]
    assert order[:5] == ["in0", "in1", "in2", "in3", "out0"]  # 0 left after 3 newer frames entered


async def test_holdback_control_first_lets_the_control_frame_overtake():
    hold = AsyncHoldBackProcessor(frames=5, control_first=True)
    marker = SyncNotifyFrame()
    result = await run_pipeline([hold], [*texts(3), marker])
    kinds = [type(f).__name__ for f in result.downstream if isinstance(f, (TextFrame, SyncNotifyFrame))]
    assert kinds == ["SyncNotifyFrame", "TextFrame", "TextFrame", "TextFrame"]


async def test_reentrant_and_answerer_make_their_frames():
    re = AsyncReentrantProcessor(max_queue_size=1)
    answer = UpstreamAnswerer()
    result = await run_pipeline([re, answer], texts(4))
    assert len(re.derived) == 4 and len(answer.answers) == 8
    assert sorted(f.text for f in result.data) == sorted(
        [str(i) for i in range(4)] + [f.text for f in re.derived]
    )


@pytest.mark.parametrize("where", ["setup", "start", "stop", "data"])
async def test_stuck_processor_hangs_where_told_and_the_run_stays_bounded(where):
    stuck = StuckProcessor(where)
    checker = await checked([stuck], texts(2))
    assert stuck.entered.is_set()
    assert checker.task.timeouts
    checker.assert_ok()
    stuck.release()


async def test_async_stuck_and_cancel_swallowers_are_abandoned_and_reported():
    for adversary in (AsyncStuckProcessor("data"), AsyncCancelSwallower(), CancelSwallower(times=1)):
        checker = await checked([adversary], texts(2))
        assert adversary.entered.is_set()
        checker.assert_ok()
        adversary.release()
        left = [t for t in checker.task.abandoned if not t.done()]
        if left:
            await asyncio.wait(left, timeout=2)


async def test_raising_processor_reports_each_frame_it_refused():
    bad = RaisingProcessor(every=3)
    result = await run_pipeline([bad], texts(9))
    assert len(bad.raised) == 3 and len(result.data) == 6
    assert len([e for e in result.errors if "adversary" in e.error]) == 3


async def test_parallel_with_every_adversary_keeps_its_promises():
    par = ParallelPipeline(
        [HoldBackProcessor(4, control_first=True)],
        [AsyncHoldBackProcessor(2), UpstreamAnswerer()],
        [AsyncReentrantProcessor(max_queue_size=1)],
    )
    frames: list[Frame] = []
    for i in range(40):
        frames.append(TextFrame(str(i)))
        if i % 7 == 0:
            frames.append(SyncNotifyFrame())
    checker = await checked([par], frames, PipelineParams())
    checker.assert_ok()
