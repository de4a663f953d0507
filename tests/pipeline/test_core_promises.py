"""Issue #10 part A: the core's promises under hostile interleavings.

Each test was written against the code before the fix and failed there. Time promises use short
configured timeouts (0.2-0.3 s) and an outer limit ten times larger; nothing here is a speed target.
"""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from apipeline.errors import PipelineError
from apipeline.frames import (
    EndFrame,
    Frame,
    StartInterruptionFrame,
    StopInterruptionFrame,
    StopTaskFrame,
    TextFrame,
)
from apipeline.pipeline import Pipeline, PipelineParams, PipelineTask
from apipeline.processors import AsyncFrameProcessor, FrameDirection, FrameProcessor
from apipeline.processors.io import InputProcessor
from tests.helpers import APass, Pass, Recorder

SHORT = 0.2
OUTER = 10 * SHORT


def framework_tasks() -> list[asyncio.Task]:
    current = asyncio.current_task()
    return [t for t in asyncio.all_tasks() if t is not current and not t.done()]


def workers_of(proc: FrameProcessor) -> int:
    return sum(1 for t in framework_tasks() if t.get_name() == f"{proc.name}.worker")


async def finish(runner: asyncio.Task, limit: float = OUTER) -> float:
    """Await the run; return how long it took. Fails (instead of hanging) past ``limit``."""
    t0 = time.monotonic()
    await asyncio.wait_for(asyncio.shield(runner), limit)
    return time.monotonic() - t0


# -- 1. one worker per async processor ------------------------------------------------------------


class Slow(AsyncFrameProcessor):
    """Sleeps ``delay`` per TextFrame and records the worker count each time it starts one."""

    def __init__(self, delay: float, **kw) -> None:
        super().__init__(**kw)
        self.delay = delay
        self.entered = asyncio.Event()
        self.max_workers = 0

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        self.max_workers = max(self.max_workers, workers_of(self))
        if isinstance(frame, TextFrame):
            self.entered.set()
            await asyncio.sleep(self.delay)
        await self.push_frame(frame, direction)


@pytest.mark.parametrize("queue_size", [1, 4])
async def test_interruption_storm_keeps_exactly_one_worker_and_order(queue_size):
    slow = Slow(0.001, max_queue_size=queue_size)
    rec = Recorder()
    task = PipelineTask(Pipeline([slow, rec]), PipelineParams(allow_interruptions=True))
    await task.queue_frames([TextFrame(str(i)) for i in range(200)])
    runner = asyncio.create_task(task.run())
    await slow.entered.wait()
    most = 0
    for _ in range(40):
        await task.queue_frame(StartInterruptionFrame())
        most = max(most, workers_of(slow))
        await asyncio.sleep(0.002)
        most = max(most, workers_of(slow))
    await task.stop_when_done()
    await finish(runner)
    assert max(most, slow.max_workers) == 1
    assert framework_tasks() == []
    texts = [int(t) for t in rec.texts()]
    assert texts == sorted(texts) and len(set(texts)) == len(texts)


async def test_interrupting_inflight_work_keeps_the_same_worker_task():
    slow = Slow(10.0, max_queue_size=4)
    task = PipelineTask(Pipeline([slow]), PipelineParams(allow_interruptions=True))
    await task.queue_frame(TextFrame("x"))
    runner = asyncio.create_task(task.run())
    await slow.entered.wait()
    before = [t for t in framework_tasks() if t.get_name() == f"{slow.name}.worker"]
    await task.queue_frame(StartInterruptionFrame())
    await task.queue_frame(TextFrame("y"))
    after = [t for t in framework_tasks() if t.get_name() == f"{slow.name}.worker"]
    assert len(before) == 1 and after == before
    await task.cancel()
    await finish(runner)
    assert framework_tasks() == []


# -- 2. End/Stop waits bounded from the moment they are requested -------------------------------


class Stuck(FrameProcessor):
    """Awaits forever on its first TextFrame (cancellable)."""

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.entered = asyncio.Event()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, TextFrame):
            self.entered.set()
            await asyncio.Event().wait()
        await self.push_frame(frame, direction)


async def test_end_timeout_bounds_a_processor_stuck_on_earlier_data():
    stuck = Stuck()
    task = PipelineTask(Pipeline([stuck]), PipelineParams(end_timeout=SHORT, cancel_timeout=SHORT))
    await task.queue_frames([TextFrame("a"), TextFrame("b")])
    await task.stop_when_done()
    runner = asyncio.create_task(task.run())
    await finish(runner)
    assert any("EndFrame" in t for t in task.timeouts)
    assert framework_tasks() == []


class Echo(FrameProcessor):
    """Answers every downstream TextFrame with a TextFrame pushed upstream."""

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)
        if isinstance(frame, TextFrame) and direction is FrameDirection.DOWNSTREAM:
            await asyncio.sleep(0)  # let the pump fill the async processor's queue meanwhile
            await self.push_frame(TextFrame(frame.text + "?"), FrameDirection.UPSTREAM)


async def test_async_processor_reentering_its_own_full_queue_does_not_deadlock():
    a = APass(max_queue_size=1)
    task = PipelineTask(Pipeline([a, Echo()]), PipelineParams(end_timeout=5.0))
    up: list[str] = []
    task.event_handler("on_frame_reached_upstream")(lambda t, f: up.append(f.text))
    await task.queue_frames([TextFrame(str(i)) for i in range(20)])
    await task.stop_when_done()
    await finish(asyncio.create_task(task.run()), 50.0)
    assert task.timeouts == []
    assert up == [f"{i}?" for i in range(20)]


class StopOnFirst(FrameProcessor):
    def __init__(self) -> None:
        super().__init__()
        self.sent = False

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, TextFrame) and not self.sent:
            self.sent = True
            await self.push_frame(StopTaskFrame(), FrameDirection.UPSTREAM)
        await self.push_frame(frame, direction)


async def test_stop_task_frame_with_bounded_input_queue_does_not_deadlock_the_pump():
    rec = Recorder()
    task = PipelineTask(Pipeline([StopOnFirst(), rec]), PipelineParams(max_input_queue_size=1))
    refused: list[str] = []

    async def produce() -> None:  # keeps the input queue full while the pump pushes "0"
        for i in range(5):
            try:
                await task.queue_frame(TextFrame(str(i)))
            except PipelineError:
                refused.append(str(i))  # the end was requested: later frames are refused, loudly

    producer = asyncio.create_task(produce())
    runner = asyncio.create_task(task.run())
    await finish(runner)
    await asyncio.wait_for(producer, OUTER)
    assert task.timeouts == []
    assert rec.texts()[0] == "0" and isinstance(rec.frames[-1], EndFrame)
    assert refused


# -- 3. start and cancel bounded ----------------------------------------------------------------


class HangingStart(FrameProcessor):
    def __init__(self) -> None:
        super().__init__()
        self.entered = asyncio.Event()

    async def start(self, frame) -> None:
        self.entered.set()
        await asyncio.Event().wait()


async def test_cancel_bounds_a_hung_start():
    p = HangingStart()
    task = PipelineTask(Pipeline([p]), PipelineParams(start_timeout=60.0, cancel_timeout=SHORT))
    runner = asyncio.create_task(task.run())
    await p.entered.wait()
    await task.cancel()
    await finish(runner)
    assert framework_tasks() == []


class LongSetup(FrameProcessor):
    def __init__(self) -> None:
        super().__init__()
        self.entered = asyncio.Event()

    async def setup(self) -> None:
        self.entered.set()
        await asyncio.sleep(60)


async def test_cancel_during_a_long_setup_returns_promptly():
    p = LongSetup()
    task = PipelineTask(Pipeline([p]), PipelineParams(start_timeout=120.0, cancel_timeout=SHORT))
    runner = asyncio.create_task(task.run())
    await p.entered.wait()
    await task.cancel()
    await finish(runner)
    assert framework_tasks() == []


# -- 4. cancellation that escapes or is swallowed ------------------------------------------------


class ForeignCancel(FrameProcessor):
    """Awaits a future that something else cancels: CancelledError escapes process_frame."""

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, TextFrame) and frame.text == "bad":
            fut = asyncio.get_running_loop().create_future()
            asyncio.get_running_loop().call_soon(fut.cancel)
            await fut
        await self.push_frame(frame, direction)


async def test_cancelled_error_escaping_process_frame_does_not_kill_the_pump():
    rec = Recorder()
    task = PipelineTask(Pipeline([ForeignCancel(), rec]), PipelineParams(end_timeout=5.0))
    await task.queue_frames([TextFrame("a"), TextFrame("bad"), TextFrame("c")])
    await task.stop_when_done()
    await finish(asyncio.create_task(task.run()), 50.0)
    assert rec.texts() == ["a", "c"]
    assert task.timeouts == []
    assert any("CancelledError" in e.error for e in task.errors)


class Immortal(FrameProcessor):
    """Swallows cancellation while processing a TextFrame, until ``die`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = asyncio.Event()
        self.die = asyncio.Event()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, TextFrame):
            self.entered.set()
            while not self.die.is_set():
                try:
                    await self.die.wait()
                except asyncio.CancelledError:
                    pass
        await self.push_frame(frame, direction)


async def test_processor_swallowing_cancellation_is_abandoned_and_reported():
    p = Immortal()
    task = PipelineTask(Pipeline([p]), PipelineParams(cancel_timeout=SHORT, cleanup_timeout=SHORT))
    await task.queue_frame(TextFrame("x"))
    runner = asyncio.create_task(task.run())
    await p.entered.wait()
    await task.cancel()
    try:
        await finish(runner)
        assert task.abandoned, "the task that would not die must be reported"
        assert any("abandon" in t for t in task.timeouts)
    finally:
        p.die.set()  # let the abandoned task go, so the test leaves nothing behind
        await asyncio.sleep(0)
        for t in task.abandoned:
            t.cancel()
    await asyncio.wait_for(asyncio.gather(*task.abandoned, return_exceptions=True), OUTER)


# -- 7. metrics under concurrency and the pts rule ------------------------------------------------


class SlowData(AsyncFrameProcessor):
    """Takes 50 ms per TextFrame: 30 ms before its first push, 20 ms after."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = asyncio.Event()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, TextFrame):
            self.entered.set()
            await asyncio.sleep(0.03)
            await self.push_frame(frame, direction)
            await asyncio.sleep(0.02)
        else:
            await self.push_frame(frame, direction)


class SlowSystem(FrameProcessor):
    """Takes 20 ms on every StopInterruptionFrame (a system frame)."""

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, StopInterruptionFrame):
            await asyncio.sleep(0.02)
        await self.push_frame(frame, direction)


async def test_processing_time_and_ttfb_ignore_concurrent_system_frames():
    slow = SlowData()
    task = PipelineTask(
        Pipeline([slow, SlowSystem()]), PipelineParams(enable_metrics=True, metrics_interval_s=3600)
    )
    await task.queue_frame(TextFrame("x"))
    runner = asyncio.create_task(task.run())
    await slow.entered.wait()
    await asyncio.gather(*(task.queue_frame(StopInterruptionFrame()) for _ in range(5)))
    await task.stop_when_done()
    await finish(runner, 50.0)
    snap = slow.metrics.snapshot()  # type: ignore[union-attr]
    assert snap["processing"]["count"] == 1
    assert snap["processing"]["last_ns"] >= 45_000_000  # it slept 50 ms, none of it downstream
    assert snap["ttfb_ns"] >= 28_000_000  # its first push came 30 ms in


class Source(InputProcessor):
    """Produces frames 100 ms after start; records the monotonic time just before creating each."""

    def __init__(self) -> None:
        super().__init__()
        self.created: list[int] = []

    async def frames(self):
        await asyncio.sleep(0.1)
        for i in range(3):
            self.created.append(time.monotonic_ns())
            yield TextFrame(str(i))


async def test_input_processor_stamps_new_frames_instead_of_inheriting_start_pts():
    src = Source()
    rec = Recorder()
    task = PipelineTask(Pipeline([src, rec]))
    await finish(asyncio.create_task(task.run()), 50.0)
    frames = [f for f in rec.frames if isinstance(f, TextFrame)]
    assert len(frames) == 3
    for f, t in zip(frames, src.created):
        assert f.pts is not None and f.pts >= t


class Derive(FrameProcessor):
    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, TextFrame):
            await self.push_frame(TextFrame(frame.text + "!"), direction)
        else:
            await self.push_frame(frame, direction)


async def test_derived_frames_inherit_pts_and_client_pts_and_latency_is_from_pts():
    rec = Recorder()
    task = PipelineTask(Pipeline([Derive(), APass(), Derive(), rec]))
    src = TextFrame("a", pts=time.monotonic_ns() - 5_000_000_000, client_pts=42)
    await task.queue_frame(src)
    await task.stop_when_done()
    await finish(asyncio.create_task(task.run()), 50.0)
    (out,) = [f for f in rec.frames if isinstance(f, TextFrame)]
    assert out.text == "a!!" and out is not src
    assert out.pts == src.pts and out.client_pts == 42
    assert task.latency_percentiles()["p50_ms"] >= 5000  # measured from pts, not from client_pts


# -- 8. smaller promises --------------------------------------------------------------------------


class Hooked(FrameProcessor):
    def __init__(self) -> None:
        super().__init__()
        self.interrupts: list[Frame] = []

    async def interrupt(self, frame: StartInterruptionFrame) -> None:
        self.interrupts.append(frame)


class AHooked(AsyncFrameProcessor):
    def __init__(self) -> None:
        super().__init__()
        self.interrupts: list[Frame] = []

    async def interrupt(self, frame: StartInterruptionFrame) -> None:
        self.interrupts.append(frame)


class PassHooked(Hooked):
    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)


class APassHooked(AHooked):
    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)


@pytest.mark.parametrize("allow", [True, False])
async def test_interrupt_hook_is_called(allow):
    s, a = PassHooked(), APassHooked()
    task = PipelineTask(Pipeline([s, a]), PipelineParams(allow_interruptions=allow))
    runner = asyncio.create_task(task.run())
    frame = StartInterruptionFrame()
    await task.queue_frame(frame)
    await task.stop_when_done()
    await finish(runner, 50.0)
    expected = [frame] if allow else []
    assert s.interrupts == expected and a.interrupts == expected


async def test_queue_frame_after_stop_when_done_raises():
    task = PipelineTask(Pipeline([Pass()]))
    await task.queue_frame(TextFrame("a"))
    await task.stop_when_done()
    with pytest.raises(PipelineError, match="stop_when_done"):
        await task.queue_frame(TextFrame("late"))
    await task.queue_frame(StopInterruptionFrame())  # system frames still go in while it drains
    await finish(asyncio.create_task(task.run()), 50.0)


class BadStop(Pass):
    async def stop(self, frame: EndFrame) -> None:
        raise RuntimeError("flush failed")


async def test_stop_that_raises_does_not_lose_the_end_frame():
    rec = Recorder()
    task = PipelineTask(Pipeline([BadStop(), rec]), PipelineParams(end_timeout=30.0))
    await task.queue_frame(TextFrame("a"))
    await task.stop_when_done()
    took = await finish(asyncio.create_task(task.run()), 50.0)
    assert isinstance(rec.frames[-1], EndFrame)
    assert task.timeouts == [] and took < 30.0
    assert any("flush failed" in e.error for e in task.errors)


class Boom(Pass):
    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if isinstance(frame, TextFrame):
            raise ValueError("boom")
        await super().process_frame(frame, direction)


async def test_processor_exception_is_logged_with_traceback_and_kept(caplog):
    task = PipelineTask(Pipeline([Boom()]))
    await task.queue_frame(TextFrame("a"))
    await task.stop_when_done()
    with caplog.at_level(logging.ERROR, logger="apipeline"):
        await finish(asyncio.create_task(task.run()), 50.0)
    (error,) = task.errors
    assert isinstance(error.exception, ValueError) and str(error.exception) == "boom"
    records = [r for r in caplog.records if r.name == "apipeline" and r.levelno == logging.ERROR]
    assert any(r.exc_info and r.exc_info[1] is error.exception for r in records)


def test_misspelled_event_name_raises_naming_the_valid_ones():
    task = PipelineTask(Pipeline([Pass()]))
    with pytest.raises(PipelineError, match="on_pipeline_error"):
        task.event_handler("on_pipline_error")


async def test_task_event_handler_that_raises_is_recorded_in_errors():
    task = PipelineTask(Pipeline([Pass()]))

    @task.event_handler("on_pipeline_started")
    async def broken(t, frame):
        raise KeyError("handler bug")

    await task.stop_when_done()
    await finish(asyncio.create_task(task.run()), 50.0)
    assert any(isinstance(e.exception, KeyError) for e in task.errors)


def test_processors_declare_whether_they_are_async():
    assert Pass().is_async is False
    assert APass().is_async is True
    assert not hasattr(FrameProcessor, "metrics_frame")


class Ticker(FrameProcessor):
    """After its first data frame, a timer task of its own pushes one new frame 50 ms later."""

    def __init__(self) -> None:
        super().__init__()
        self.timer: asyncio.Task | None = None
        self.created = 0

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, TextFrame) and self.timer is None:
            self.timer = asyncio.create_task(self._tick())
        if isinstance(frame, EndFrame) and self.timer is not None:
            await self.timer
        await self.push_frame(frame, direction)

    async def _tick(self) -> None:
        await asyncio.sleep(0.05)
        self.created = time.monotonic_ns()
        await self.push_frame(TextFrame("tick"))


async def test_a_frame_pushed_after_processing_is_new_not_derived():
    ticker, rec = Ticker(), Recorder()
    task = PipelineTask(Pipeline([ticker, rec]))
    await task.queue_frame(TextFrame("a"))
    await task.stop_when_done()
    await finish(asyncio.create_task(task.run()), 50.0)
    a, tick = [f for f in rec.frames if isinstance(f, TextFrame)]
    assert tick.text == "tick" and tick.pts >= ticker.created > a.pts


class SlowCleanup(APass):
    def __init__(self) -> None:
        super().__init__()
        self.cleaning = asyncio.Event()

    async def cleanup(self) -> None:
        self.cleaning.set()
        await asyncio.sleep(60)
        await super().cleanup()


async def test_cancelling_run_itself_leaves_no_step_behind():
    p = SlowCleanup()
    task = PipelineTask(Pipeline([p]), PipelineParams(cleanup_timeout=60.0, cancel_timeout=SHORT))
    await task.stop_when_done()
    runner = asyncio.create_task(task.run())
    await p.cleaning.wait()  # run() is now inside the cleanup step
    runner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(runner, OUTER)
    assert framework_tasks() == []


async def test_upstream_push_into_a_full_async_queue_does_not_deadlock():
    # APass's worker waits (inside the sync-parallel) for the answerer's marker, while the answerer's
    # worker pushes its answer upstream into APass's full queue: a cycle if upstream waits for room.
    from apipeline.pipeline import SyncParallelPipeline
    from apipeline.testing import AsyncUpstreamAnswerer

    rec = Recorder()
    task = PipelineTask(
        Pipeline([APass(max_queue_size=1), SyncParallelPipeline([AsyncUpstreamAnswerer()]), rec]),
        PipelineParams(end_timeout=5.0),
    )
    await task.queue_frames([TextFrame(str(i)) for i in range(5)])
    await task.stop_when_done()
    await finish(asyncio.create_task(task.run()), 50.0)
    assert task.timeouts == []
    assert rec.texts() == [str(i) for i in range(5)]


async def test_interruption_storm_inside_parallel_branches_keeps_one_worker_each():
    from apipeline.pipeline import ParallelPipeline

    a, b = Slow(0.001, max_queue_size=2), Slow(0.001, max_queue_size=2)
    rec = Recorder()
    task = PipelineTask(Pipeline([ParallelPipeline([a], [b]), rec]), PipelineParams(allow_interruptions=True))
    await task.queue_frames([TextFrame(str(i)) for i in range(100)])
    runner = asyncio.create_task(task.run())
    await a.entered.wait()
    most = 0
    for _ in range(20):
        await task.queue_frame(StartInterruptionFrame())
        most = max(most, workers_of(a), workers_of(b))
        await asyncio.sleep(0.002)
    await task.stop_when_done()
    await finish(runner)
    assert max(most, a.max_workers, b.max_workers) == 1
    assert framework_tasks() == []


async def test_a_worker_that_will_not_die_is_listed_as_abandoned():
    from apipeline.testing import CancelSwallower

    sw = CancelSwallower()  # sync, after an async processor: it hangs inside APass's worker
    a = APass()
    task = PipelineTask(Pipeline([a, sw]), PipelineParams(cancel_timeout=SHORT, cleanup_timeout=SHORT))
    await task.queue_frames([TextFrame("x")])
    runner = asyncio.create_task(task.run())
    await sw.entered.wait()
    await task.cancel()
    try:
        await finish(runner)
        alive = set(framework_tasks())
        assert alive and alive <= set(task.abandoned)  # everything still running is reported
        assert any(t.get_name() == f"{a.name}.worker" for t in task.abandoned)
    finally:
        sw.release()
        for t in task.abandoned:
            t.cancel()
    await asyncio.wait_for(asyncio.gather(*task.abandoned, return_exceptions=True), OUTER)
