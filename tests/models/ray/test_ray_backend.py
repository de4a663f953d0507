"""RayBackend on a real local Ray: equivalence with LocalBackend, shared actors, order, faults, limits."""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Any

import numpy as np
import pytest

from apipeline.errors import Overloaded, RemoteError
from apipeline.frames import AudioRawFrame, Frame
from apipeline.models import Hook, LocalBackend, ModelRegistry
from apipeline.models.ray_backend import RayBackend
from apipeline.models.services import ContentEncoderService, SvcService
from apipeline.pipeline.pipeline import Pipeline
from apipeline.pipeline.task import PipelineTask
from apipeline.processors.models.remote import RealtimeModelProcessor
from apipeline.testing import RecordingSink, run_processor
from tests.models.ray._services import Negator

pytestmark = [pytest.mark.ray, pytest.mark.timeout(120)]

RATE = 16000
CHUNK = 640  # 40 ms


def chunk(i: int) -> AudioRawFrame:
    """Chunk ``i`` holds the value (i + 1) / 1000: its sign tells processed (-) from degraded (+)."""
    return AudioRawFrame(np.full(CHUNK, (i + 1) / 1000, np.float32), RATE, 1)


def values(frames: list[Frame]) -> list[float]:
    return [float(f.audio[0]) for f in frames if isinstance(f, AudioRawFrame)]


def backend(**kw: Any) -> RayBackend:
    return RayBackend(num_cpus=0.5, **kw)


async def registry_for(rb: RayBackend, source: Any) -> ModelRegistry:
    reg = ModelRegistry(backend=rb, max_concurrency=rb.capacity, max_pending=0)
    for s in source if isinstance(source, list) else [source]:
        reg.register(s)
    return reg


async def test_same_outputs_as_local_backend(ray_session: Any, tiny_models: dict[str, Any]) -> None:
    rng = np.random.default_rng(1)
    audio = (0.1 * rng.standard_normal(RATE // 2)).astype(np.float32)
    f0 = np.full(40, 180.0, np.float32)
    outputs = []
    for make in (LocalBackend, lambda: backend()):
        reg = ModelRegistry(backend=make(), max_concurrency=2)
        reg.register(ContentEncoderService(tiny_models["content_encoder"]))
        reg.register(SvcService(tiny_models["sovits"]))
        async with reg:
            content = await reg.run("content_encoder", "encode", {"audio": audio})
            wave = await reg.run("svc", "convert", {"content": content, "f0": f0, "seed": 3})
            outputs.append((content, wave, reg.state("svc")))
    (c_local, w_local, s_local), (c_ray, w_ray, s_ray) = outputs
    assert s_local == s_ray
    np.testing.assert_array_equal(c_local, c_ray)
    np.testing.assert_array_equal(w_local, w_ray)


async def test_lifecycle_runs_once_per_replica_and_service_errors_come_back_unchanged(
    ray_session: Any,
) -> None:
    rb = backend(replicas=2)
    async with await registry_for(rb, Negator) as reg:
        await reg.ready("negator")
        assert await reg.run("negator", "history", {}) == ["prepare", "load", "test"]
        with pytest.raises(ValueError, match="non-negative"):  # time.sleep's own error, raised in the actor
            await reg.run("negator", "hold", {"seconds": -1.0})
        assert len(set(await rb.replica_pids("negator"))) == 2


async def streams(reg: ModelRegistry, n_streams: int, n_chunks: int) -> list[list[float]]:
    procs = [RealtimeModelProcessor(reg, "negator", "negate", deadline=10.0) for _ in range(n_streams)]
    runs = [run_processor(p, [chunk(1000 * s + i) for i in range(n_chunks)]) for s, p in enumerate(procs)]
    outs = await asyncio.gather(*runs)
    for p in procs:
        assert p.stats().degraded == 0
    return [values(o) for o in outs]


@pytest.mark.parametrize("replicas", [1, 2])
async def test_streams_share_replicas_and_keep_their_own_order(ray_session: Any, replicas: int) -> None:
    rb = backend(replicas=replicas, max_concurrency=6, max_in_flight_per_stream=2)  # 3 streams x 2
    async with await registry_for(rb, Negator) as reg:
        got = await streams(reg, 3, 12)
        for s, vals in enumerate(got):
            assert vals == [-float(np.float32((1000 * s + i + 1) / 1000)) for i in range(12)]
        calls = [r.calls for r in rb.stats("negator").replicas]
        assert sum(calls) == 36
        assert all(c > 0 for c in calls)  # least-busy routing used every replica


async def test_concurrent_calls_of_a_batchable_method_are_batched(ray_session: Any) -> None:
    rb = backend(max_concurrency=8)
    async with await registry_for(rb, Negator) as reg:
        await reg.ready("negator")
        x = np.arange(8, dtype=np.float32)
        got = await asyncio.gather(
            *(reg.run("negator", "scale", {"audio": x, "gain": float(g)}) for g in range(4))
        )
        for g, y in enumerate(got):
            np.testing.assert_array_equal(y, x * g)
        (stats,) = await rb.replica_stats("negator")
        assert stats["batches"]["scale"]["calls"] == 4
        assert stats["batches"]["scale"]["largest"] > 1


class CountingSink(RecordingSink):
    """Records frames and lets the test wait until ``n`` audio chunks came out (and act on one)."""

    def __init__(self, on_chunk: Any = None) -> None:
        super().__init__()
        self.chunks = 0
        self.on_chunk = on_chunk
        self._changed = asyncio.Condition()

    async def process_frame(self, frame: Frame, direction: Any) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, AudioRawFrame):
            self.chunks += 1
            if self.on_chunk is not None:
                self.on_chunk(self.chunks)
            async with self._changed:
                self._changed.notify_all()

    async def wait_chunks(self, n: int) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: self.chunks >= n)


async def test_killed_actor_degrades_then_recovers_without_losing_or_reordering(
    ray_session: Any, no_leftover_tasks: Any
) -> None:
    # One worker thread and 50 ms per chunk: when chunk 10 comes out, chunk 11 is running in the actor,
    # so the kill at that moment always lands on a call in flight.
    rb = backend(max_in_flight_per_stream=2, threads=1)
    reg = await registry_for(rb, Negator(delay=0.05))
    await reg.ready("negator")
    (pid,) = await rb.replica_pids("negator")
    killed: list[int] = []

    def kill_at(n: int) -> None:
        if n == 10 and not killed:
            os.kill(pid, signal.SIGKILL)
            killed.append(n)

    proc = RealtimeModelProcessor(reg, "negator", "negate", deadline=10.0)
    sink = CountingSink(kill_at)
    task = PipelineTask(Pipeline([proc, sink]))
    runner = asyncio.ensure_future(task.run())
    await task.queue_frames([chunk(i) for i in range(16)])
    await sink.wait_chunks(16)
    await rb.wait_healthy("negator", 30.0)
    await task.queue_frames([chunk(i) for i in range(16, 24)])
    await task.stop_when_done()
    await runner

    got = values(sink.downstream)
    assert [abs(v) for v in got] == [
        float(np.float32((i + 1) / 1000)) for i in range(24)
    ]  # none lost, in order
    degraded = [i for i, v in enumerate(got) if v > 0]
    stats = proc.stats()
    assert killed and degraded and degraded[0] > 10 - 2  # the outage began at the kill
    assert stats.degraded == len(degraded) and stats.processed == 24 - len(degraded)
    assert stats.outages >= 1 and stats.remote_errors + stats.late >= 1
    assert all(v < 0 for v in got[16:])  # recovered by itself after the restart
    assert len(stats.recoveries) == stats.outages
    print(f"\nrecovery after SIGKILL: {stats.recoveries} s; degraded chunks {degraded}")
    errors = [e.error for e in task.errors]
    assert any("unavailable" in e for e in errors) and not any(e.fatal for e in task.errors)
    assert rb.stats("negator").replicas[0].in_flight == 0
    await reg.aclose()
    no_leftover_tasks()


async def test_saturation_is_refused_at_once_with_overloaded(ray_session: Any) -> None:
    rb = backend(max_concurrency=2, threads=2)
    reg = ModelRegistry(backend=rb, max_concurrency=8, max_pending=0)  # the backend is the limit here
    reg.register(Negator)
    async with reg:
        await reg.ready("negator")
        hold = {"seconds": 0.5}
        holds = [asyncio.ensure_future(rb.invoke("negator", Hook.SERVICE, "hold", hold)) for _ in range(2)]
        await asyncio.sleep(0)  # one loop turn: both calls are submitted (submitting never waits)
        assert rb.stats("negator").replicas[0].in_flight == 2
        with pytest.raises(Overloaded, match=r"admission refused: service 'negator' has 2 calls in flight"):
            await reg.run("negator", "negate", {"audio": np.ones(4, np.float32)})
        assert not any(h.done() for h in holds)  # refused while both were still running: not queued
        assert await asyncio.gather(*holds) == [0.5, 0.5]
        assert rb.stats("negator").overloaded == 1


@pytest.mark.parametrize("address", ["127.0.0.1:1", "ray://127.0.0.1:1"])
async def test_unreachable_cluster_is_a_clear_error_at_start(ray_session: Any, address: str) -> None:
    rb = RayBackend(address, connect_timeout=2.0)
    with pytest.raises(RemoteError, match=r"127\.0\.0\.1:1"):
        await rb.start()
    await rb.aclose()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"address": "nonsense"}, "Ray address 'nonsense' is not one"),
        ({"address": "host:99999"}, "is not one"),
        ({"address": "http://host:80/x"}, "is not one"),
        ({"num_cpus": 0}, "num_cpus .* must be > 0, got 0"),
        ({"num_cpus": -1}, "must be > 0, got -1"),
        ({"num_gpus": -0.5}, "num_gpus .* must be >= 0"),
        ({"replicas": 0}, "must be >= 1"),
        ({"memory": 0}, "memory .* must be > 0"),
    ],
)
def test_bad_options_are_clear_errors_at_construction(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RayBackend(**options)
