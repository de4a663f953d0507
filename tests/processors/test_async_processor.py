"""Semantics 10 and 11: bounded queues with a declared overflow policy; metrics."""

from __future__ import annotations

import asyncio

import pytest

from apipeline.frames import MetricsFrame, TextFrame
from apipeline.pipeline import Pipeline, PipelineParams, PipelineTask
from apipeline.processors import AsyncFrameProcessor, FrameDirection, FrameQueue
from apipeline.testing import run_pipeline
from tests.helpers import APass, Gate, Pass, Recorder


async def spin(n: int = 50) -> None:
    """Let the loop run n iterations (deterministic, no wall-clock wait)."""
    for _ in range(n):
        await asyncio.sleep(0)


async def test_block_policy_applies_backpressure():
    gate = Gate(max_queue_size=2)
    rec = Recorder()
    task = PipelineTask(Pipeline([gate, rec]))
    runner = asyncio.create_task(task.run())
    producer = asyncio.create_task(task.queue_frames([TextFrame(str(i)) for i in range(10)]))
    await gate.entered.wait()
    await spin()
    stats = gate.queue_statistics()
    assert stats.depth == 2 and stats.max_depth == 2 and stats.drops == 0
    assert len(task._input) > 0  # the rest waits upstream: nothing unbounded inside the pipeline
    gate.release.set()
    await producer
    await task.stop_when_done()
    await runner
    assert rec.texts() == [str(i) for i in range(10)]


async def test_drop_oldest_counts_and_reports_drops():
    gate = Gate(max_queue_size=3, overflow="drop_oldest")
    rec = Recorder()
    task = PipelineTask(Pipeline([gate, rec]))
    runner = asyncio.create_task(task.run())
    await task.queue_frame(TextFrame("first"))
    await gate.entered.wait()
    for i in range(10):  # never blocks
        await gate.queue_frame(TextFrame(str(i)), FrameDirection.DOWNSTREAM)
    assert gate.queue_statistics().drops == 7
    gate.release.set()
    await task.stop_when_done()
    await runner
    assert rec.texts() == ["first", "7", "8", "9"]
    reports = [d for m in task.metrics for d in m.data if d.get("processor") == gate.name]
    assert reports and reports[-1]["drops"] == 7  # reported even with metrics off: never silent


async def test_drop_oldest_never_drops_control_frames():
    q = FrameQueue(2, "drop_oldest")
    from apipeline.frames import EndFrame, SyncFrame

    await q.put(SyncFrame(), None)
    await q.put(TextFrame("a"), None)
    await q.put(TextFrame("b"), None)  # drops "a", not the SyncFrame
    assert [type(f).__name__ for f, _ in q._items] == ["SyncFrame", "TextFrame"]
    await q.put(EndFrame(), None)  # drops "b"
    assert q.drops == 2
    blocked = asyncio.create_task(q.put(EndFrame(), None))  # only control frames left: must wait
    await spin(5)
    assert not blocked.done()
    await q.get()
    await blocked


def test_queue_rejects_bad_settings():
    with pytest.raises(ValueError, match="max_queue_size"):
        FrameQueue(0)
    with pytest.raises(ValueError, match="overflow"):
        FrameQueue(4, "drop_newest")  # type: ignore[arg-type]


async def test_slow_async_processor_does_not_block_the_one_before():
    gate = Gate(max_queue_size=100)
    before = Recorder()
    task = PipelineTask(Pipeline([before, gate, Recorder()]))
    runner = asyncio.create_task(task.run())
    await task.queue_frames([TextFrame(str(i)) for i in range(20)])
    await gate.entered.wait()
    await spin()
    assert before.texts() == [str(i) for i in range(20)]  # all went past while gate is stuck
    gate.release.set()
    await task.stop_when_done()
    await runner


class Work(AsyncFrameProcessor):
    """Waits 20 ms before its first push (the TTFB), then 10 ms more before returning."""

    async def process_frame(self, frame, direction):
        await super().process_frame(frame, direction)
        if isinstance(frame, TextFrame):
            await asyncio.sleep(0.02)
            await self.push_frame(TextFrame(frame.text + "!"), direction)
            await asyncio.sleep(0.01)
        else:
            await self.push_frame(frame, direction)


async def test_metrics_report_processing_time_ttfb_and_latency():
    params = PipelineParams(enable_metrics=True, metrics_interval_s=0.0)
    result = await run_pipeline(
        [Pass(name="p"), Work(name="w"), APass()], [TextFrame("a"), TextFrame("b")], params=params
    )
    records = [d for m in result.of_type(MetricsFrame) for d in m.data]
    by_proc = {d["processor"]: d for d in records}
    assert {"p", "w"} <= set(by_proc)
    w = by_proc["w"]
    # each frame took >= 30 ms in "w" itself; its first push came >= 20 ms in
    assert w["processing"]["count"] == 2 and w["processing"]["p50_ns"] >= 28_000_000
    assert 18_000_000 <= w["ttfb_ns"] <= w["processing"]["max_ns"]
    # end-to-end: from each frame's pts (stamped when the task pushed it) to the sink, >= 20 ms
    lat = result.task.latency_percentiles()
    assert lat["count"] == 2 and lat["p50_ms"] >= 18


class SyncWork(Pass):
    async def process_frame(self, frame, direction):
        if isinstance(frame, TextFrame):
            await asyncio.sleep(0.02)
        await super().process_frame(frame, direction)


async def test_processing_time_excludes_time_spent_downstream():
    params = PipelineParams(enable_metrics=True, metrics_interval_s=0.0)
    result = await run_pipeline([Pass(name="p"), SyncWork(name="s")], [TextFrame("a")], params=params)
    by_proc = {d["processor"]: d for m in result.of_type(MetricsFrame) for d in m.data}
    s, p = by_proc["s"]["processing"], by_proc["p"]["processing"]
    assert s["count"] == p["count"] == 1
    assert s["max_ns"] >= 18_000_000  # "s" slept 20 ms itself
    assert p["max_ns"] < 10_000_000  # "p" only waited for "s": that time is not its own
