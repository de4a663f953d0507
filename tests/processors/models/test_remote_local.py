"""Without Ray: the micro-batcher, and RealtimeModelProcessor on the in-process LocalBackend.

Chunk ``i`` holds the value ``(i + 1) / 1000``; the service negates it, so a processed chunk is negative
and a degraded ("pass") one positive: order and degradation read straight off the output.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import numpy as np
import pytest

from apipeline.errors import ServiceDefinitionError
from apipeline.frames import AudioRawFrame, Frame, TextFrame
from apipeline.models import LocalBackend, ModelRegistry, service_method
from apipeline.models.batching import MicroBatcher
from apipeline.processors.models.remote import RealtimeModelProcessor
from apipeline.testing import run_pipeline

pytestmark = pytest.mark.timeout(30)
RATE, CHUNK = 16000, 320


def chunk(i: int) -> AudioRawFrame:
    return AudioRawFrame(np.full(CHUNK, (i + 1) / 1000, np.float32), RATE, 1)


def values(frames: list[Frame]) -> list[float]:
    return [round(float(f.audio[0]), 6) for f in frames if isinstance(f, AudioRawFrame)]


class Probe:
    """``negate(audio)``: ``-audio``; slower for earlier chunks, failing where asked, counting overlap."""

    protocol = "standard"
    service_name = "probe"

    def __init__(self, *, fail_every: int = 0, slow_first: bool = False, pair_first: bool = False) -> None:
        self.fail_every, self.slow_first, self.pair_first = fail_every, slow_first, pair_first
        self.running = self.max_running = 0
        self.lock = threading.Lock()
        self.second_in = threading.Event()

    def info(self) -> dict[str, Any]:
        param = {"name": "audio", "type": "ndarray", "type_desc": "float32", "desc": "chunk"}
        method = {"name": "negate", "params": [param], "return": {"type": "ndarray"}}
        return {"service_name": "probe", "service_desc": "negates", "resources": {}, "methods": [method]}

    def prepare(self) -> bool:
        return True

    def load(self) -> bool:
        return True

    def test(self) -> bool:
        return True

    def unload(self) -> bool:
        return True

    def cleanup(self) -> bool:
        return True

    @service_method()
    def negate(self, audio: np.ndarray) -> np.ndarray:
        index = round(float(audio[0]) * 1000) - 1
        with self.lock:
            self.running += 1
            self.max_running = max(self.max_running, self.running)
        try:
            if self.pair_first and index == 0:
                # chunk 0 finishes only once chunk 1 is being worked on: two calls were in flight
                assert self.second_in.wait(5.0), "chunk 1 never started while chunk 0 ran"
            if index == 1:
                self.second_in.set()
            if self.slow_first:
                time.sleep(0.002 * max(0, 5 - index))  # earlier chunks finish later
            if self.fail_every and index % self.fail_every == self.fail_every - 1:
                raise ValueError(f"cannot negate chunk {index}")
            return -audio
        finally:
            with self.lock:
                self.running -= 1


async def run(probe: Probe, n: int, **kw: Any) -> tuple[list[float], Any, RealtimeModelProcessor]:
    reg = ModelRegistry(LocalBackend(4), max_concurrency=4)
    reg.register(probe)
    async with reg:
        proc = RealtimeModelProcessor(reg, "probe", "negate", deadline=5.0, **kw)
        frames: list[Frame] = [chunk(i) for i in range(n)]
        frames.insert(3, TextFrame("between 2 and 3"))
        result = await run_pipeline(proc, frames)
    return values(result.downstream), result, proc


async def test_results_come_in_chunk_order_although_later_chunks_finish_first() -> None:
    out, result, proc = await run(Probe(slow_first=True), 8, max_in_flight=4)
    assert out == [-(i + 1) / 1000 for i in range(8)]
    texts = [i for i, f in enumerate(result.data) if isinstance(f, TextFrame)]
    assert texts == [3]  # the in-band frame stays between chunk 2 and chunk 3
    assert proc.stats().processed == 8 and proc.stats().degraded == 0


@pytest.mark.parametrize("cap", [1, 2])
async def test_in_flight_calls_never_exceed_the_cap(cap: int) -> None:
    probe = Probe(pair_first=cap == 2)  # with 2 allowed, chunk 0 waits until chunk 1 runs beside it
    out, _, proc = await run(probe, 10, max_in_flight=cap)
    assert out == [-(i + 1) / 1000 for i in range(10)]
    assert probe.max_running == cap  # 4 worker threads were free: only the cap held calls back
    assert proc.max_in_flight == cap


async def test_a_raising_service_degrades_its_chunks_counted_and_reported() -> None:
    out, result, proc = await run(Probe(fail_every=3), 9, degrade="pass")
    assert out == [(i + 1) / 1000 * (1 if i % 3 == 2 else -1) for i in range(9)]  # dry where it failed
    stats = proc.stats()
    assert (stats.chunks, stats.processed, stats.degraded, stats.failed) == (9, 6, 3, 3)
    assert stats.remote_errors == stats.overloaded == stats.late == 0
    assert sum("cannot negate chunk" in e.error and not e.fatal for e in result.errors) == 3


async def test_silence_degradation_keeps_the_chunk_length() -> None:
    out, result, proc = await run(Probe(fail_every=2), 4, degrade="silence")
    assert out == [-0.001, 0.0, -0.003, 0.0]
    assert all(f.num_frames == CHUNK for f in result.data if isinstance(f, AudioRawFrame))
    assert proc.stats().degraded == 2


# ---- MicroBatcher ---------------------------------------------------------------------------------


def batcher(max_batch: int, max_wait_s: float, fn: Any = None) -> tuple[MicroBatcher, list[list[Any]]]:
    seen: list[list[Any]] = []

    async def run_batch(calls: list[Any]) -> list[Any]:
        seen.append([c["x"] for c in calls])
        return fn(calls) if fn is not None else [2 * c["x"] for c in calls]

    return MicroBatcher(run_batch, max_batch, max_wait_s), seen


async def test_concurrent_calls_share_one_batch_and_get_their_own_results() -> None:
    b, seen = batcher(4, 10.0)  # a full batch goes at once: the 10 s bound is never waited for
    assert await asyncio.gather(*(b.call({"x": i}) for i in range(4))) == [0, 2, 4, 6]
    assert seen == [[0, 1, 2, 3]] and (b.batches, b.calls, b.largest) == (1, 4, 4)


async def test_batches_are_bounded_and_a_lone_call_waits_at_most_max_wait() -> None:
    b, seen = batcher(4, 0.02)
    assert await asyncio.gather(*(b.call({"x": i}) for i in range(10))) == [2 * i for i in range(10)]
    assert seen == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    t0 = time.monotonic()
    assert await b.call({"x": 21}) == 42
    assert time.monotonic() - t0 < 5.0 and seen[-1] == [21]


async def test_a_failing_or_miscounting_companion_fails_every_call_of_its_batch() -> None:
    def boom(calls: list[Any]) -> list[Any]:
        raise RuntimeError("batch exploded")

    b, _ = batcher(3, 10.0, boom)
    results = await asyncio.gather(*(b.call({"x": i}) for i in range(3)), return_exceptions=True)
    assert all(isinstance(r, RuntimeError) and "exploded" in str(r) for r in results)
    short, _ = batcher(2, 10.0, lambda calls: [1])
    results = await asyncio.gather(*(short.call({"x": i}) for i in range(2)), return_exceptions=True)
    assert all(isinstance(r, ServiceDefinitionError) and "1 results for 2 calls" in str(r) for r in results)


async def test_aclose_cancels_waiting_calls() -> None:
    b, seen = batcher(8, 10.0)
    waiting = asyncio.ensure_future(b.call({"x": 1}))
    await asyncio.sleep(0)  # let the call enter its window (ordering, not timing)
    await b.aclose()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert seen == []
