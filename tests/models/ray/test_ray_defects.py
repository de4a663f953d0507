"""The Ray path's observed defects (model workers shared across servers), each tried as a user would."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from apipeline.errors import ResourceError
from apipeline.models import ModelRegistry
from apipeline.models.backends import registry_options
from apipeline.models.ray_backend import RayBackend
from apipeline.pipeline.pipeline import Pipeline
from apipeline.pipeline.task import PipelineTask
from apipeline.processors.models.remote import RealtimeModelProcessor
from tests.models._services import Minimal
from tests.models.ray._services import Heavy, Negator, TooHeavy
from tests.models.ray.test_ray_backend import CountingSink, chunk, values

pytestmark = [pytest.mark.ray, pytest.mark.timeout(120)]

ROOT = Path(__file__).resolve().parents[3]


async def test_minimal_protocol_service_runs_on_ray(ray_session: Any) -> None:
    reg = ModelRegistry(backend=RayBackend(num_cpus=0.25))
    reg.register(Minimal)
    async with reg:
        assert await reg.run("minimal", "hi", {}) == "hello"


async def test_declared_resources_are_checked_against_the_cluster_and_reserved(ray_session: Any) -> None:
    # 3 cpu cores declared: more than this driver machine has, less than the (logical) cluster's 4.
    reg = ModelRegistry(backend=RayBackend())
    reg.register(Heavy)
    async with reg:
        assigned = await reg.run("heavy", "assigned", {})
    assert assigned.get("CPU") == 3.0
    assert assigned.get("memory") == 64 * 2**20


async def test_resources_no_node_has_fail_the_start_with_a_clear_error(ray_session: Any) -> None:
    reg = ModelRegistry(backend=RayBackend(start_timeout=30.0))
    reg.register(TooHeavy)
    t0 = time.monotonic()
    async with reg:
        with pytest.raises(ResourceError, match=r"'too_heavy' needs 64 CPU.*Ray cluster.*4"):
            await reg.ready("too_heavy")
    assert time.monotonic() - t0 < 10.0  # refused up front, not after the start timeout


async def test_replicas_the_cluster_cannot_place_fail_within_the_start_timeout(ray_session: Any) -> None:
    # Each replica fits a node (3 of 4 cpus), two do not: the second stays pending until start_timeout.
    # The message states the free cpus, so first let Ray free what earlier tests' killed actors held.
    deadline = time.monotonic() + 30.0
    while ray_session.available_resources().get("CPU", 0) != 4.0:
        assert time.monotonic() < deadline, ray_session.available_resources()
        await asyncio.sleep(0.05)
    reg = ModelRegistry(backend=RayBackend(replicas=2, start_timeout=4.0))
    reg.register(Heavy)
    t0 = time.monotonic()
    async with reg:
        with pytest.raises(
            ResourceError,
            match=r"of 2 replicas of 'heavy' not placed within 4 s: each needs 3 CPU, 64 MiB memory, "
            r"the Ray cluster has 1 CPU",
        ):
            await reg.ready("heavy")
    assert time.monotonic() - t0 < 40.0
    deadline = time.monotonic() + 30.0
    while ray_session.available_resources().get("CPU", 0) != 4.0:  # Ray frees killed actors' cpus
        assert time.monotonic() < deadline, ray_session.available_resources()
        await asyncio.sleep(0.05)


def test_a_driver_joins_an_explicit_address_with_the_cluster_token(ray_session: Any) -> None:
    gcs = ray_session._private.worker._global_node.gcs_address  # "127.0.0.1:PORT", auth on by default
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("RAY_AUTH_MODE", None)
    done = subprocess.run(
        [sys.executable, "-m", "tests.models.ray._driver", gcs],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=90,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1])["out"] == [-1.0] * 4
    assert "InvalidAuthToken" not in done.stderr


async def _stream_with_a_kill(
    rb: RayBackend, delay: float, deadline: float, n: int = 24, kill_at: int = 10
) -> tuple[list[float], Any, list[str], Any]:
    """Stream ``n`` chunks through a negator on ``rb``; SIGKILL replica 0's worker when chunk ``kill_at``
    comes out (with one worker thread and ``delay`` s per chunk, calls are in flight on every replica)."""
    reg = ModelRegistry(backend=rb, **registry_options(rb))
    reg.register(Negator(delay=delay))
    await reg.ready("negator")
    pid = (await rb.replica_pids("negator"))[0]
    killed: list[int] = []

    def kill(count: int) -> None:
        if count == kill_at and not killed:
            os.kill(pid, signal.SIGKILL)
            killed.append(count)

    proc = RealtimeModelProcessor(reg, "negator", "negate", deadline=deadline)
    sink = CountingSink(kill)
    task = PipelineTask(Pipeline([proc, sink]))
    runner = asyncio.ensure_future(task.run())
    await task.queue_frames([chunk(i) for i in range(n)])
    await task.stop_when_done()
    await runner
    pool = rb.stats("negator")
    await reg.aclose()
    assert killed
    return values(sink.downstream), proc.stats(), [e.error for e in task.errors], pool


async def test_a_killed_replica_of_two_is_routed_around(ray_session: Any) -> None:
    rb = RayBackend(replicas=2, num_cpus=0.5, threads=1, max_in_flight_per_stream=2)
    got, stats, errors, pool = await _stream_with_a_kill(rb, delay=0.05, deadline=10.0)
    assert [abs(v) for v in got] == [float(np.float32((i + 1) / 1000)) for i in range(24)]
    # The call in flight on the killed replica went to the other one: nothing degraded at all.
    assert stats.degraded == 0, (stats, errors)
    assert pool.rerouted >= 1


async def test_a_killed_single_replica_is_reported_as_dead_not_late(ray_session: Any) -> None:
    # A deadline shorter than a heartbeat round: the death must be seen before the deadline expires.
    rb = RayBackend(num_cpus=0.5, threads=1, max_in_flight_per_stream=2)
    got, stats, errors, _ = await _stream_with_a_kill(rb, delay=0.05, deadline=0.3)
    assert len(got) == 24 and stats.degraded >= 1
    first = next(e for e in errors if "unavailable" in e)
    assert re.search(r"RemoteError: replica 0 of 'negator' died \(its worker process \d+ exited\)", first), (
        first
    )
