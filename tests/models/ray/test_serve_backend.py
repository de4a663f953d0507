"""ServeBackend: services as Ray Serve deployments shared by processes, on the session's Ray and Serve."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from apipeline.errors import Overloaded, ResourceError
from apipeline.models import ModelRegistry, collect_services
from apipeline.models.backends import add_backend_arguments, backend_from_options, registry_options
from apipeline.models.serve_backend import ServeBackend
from tests.models.ray._services import Heavy, Negator, TooHeavy
from tests.models.ray.test_ray_defects import _stream_with_a_kill

pytestmark = [pytest.mark.ray, pytest.mark.timeout(180)]

ROOT = Path(__file__).resolve().parents[3]
ONES = np.ones(4, np.float32)
#: options two tests share, so that the second finds the first one's deployment (one deploy less)
SHARED: dict[str, Any] = {"threads": 8, "max_concurrency": 8, "max_queued_requests": 4}


def _negator() -> Any:
    (definition,) = collect_services(Negator)
    return definition


def test_equal_configurations_name_one_deployment_and_others_another() -> None:
    pytest.importorskip("ray")
    a = ServeBackend(replicas=2, num_cpus=0.25).app_name(_negator())
    assert a == ServeBackend(replicas=2, num_cpus=0.25).app_name(_negator())
    assert a.startswith("apipeline-negator-")
    others = {
        ServeBackend(replicas=1, num_cpus=0.25).app_name(_negator()),
        ServeBackend(replicas=2, num_cpus=0.5).app_name(_negator()),
        ServeBackend(min_replicas=1, max_replicas=2, num_cpus=0.25).app_name(_negator()),
    }
    assert a not in others and len(others) == 3


def test_two_driver_processes_share_one_deployment(serve_session: Any) -> None:
    import ray

    address = ray._private.worker._global_node.gcs_address  # the session's cluster, Serve up in it
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_USAGE_STATS_ENABLED": "0"}
    reports = []
    try:
        for _ in range(2):
            done = subprocess.run(
                [sys.executable, "-m", "tests.models.ray._serve_driver", address],
                cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
            )  # fmt: skip
            assert done.returncode == 0, done.stderr[-3000:]
            reports.append(json.loads(done.stdout.strip().splitlines()[-1]))
        first, second = reports
        assert first["deployed"] and not second["deployed"]  # the second found it by name
        assert first["app"] == second["app"] and first["hosts"] == second["hosts"]
        assert len(first["hosts"]) == 2 and first["out"] == second["out"] == [-1.0] * 4
        apps = [a for a in serve_session.status().applications if a.startswith("apipeline-negator-")]
        assert apps == [first["app"]]  # one deployment, not one per process
    except BaseException:
        for report in reports:
            serve_session.delete(report["app"])
        raise
    # left running: the next test uses it (the module's Serve shutdown deletes it)


async def test_a_killed_replica_of_two_is_routed_around(serve_session: Any) -> None:
    # the drivers' deployment, if they left it; a call may wait 5 s (not 1) on the loaded machine before
    # its replica counts as dead, so only the killed one is
    rb = ServeBackend(replicas=2, num_cpus=0.5, threads=1, call_timeout=5.0)
    got, stats, errors, pool = await _stream_with_a_kill(rb, delay=0.05, deadline=10.0)
    await asyncio.to_thread(serve_session.delete, rb.deployment_of("negator")[0])
    assert [abs(v) for v in got] == [float(np.float32((i + 1) / 1000)) for i in range(24)]
    assert stats.degraded == 0, (stats, errors)  # the in-flight call went to the other replica
    assert pool.rerouted >= 1


async def test_a_killed_single_replica_recovers(serve_session: Any) -> None:
    rb = ServeBackend(num_cpus=0.5, **SHARED, call_timeout=0.5)  # left for the handle-path test
    reg = ModelRegistry(backend=rb, **registry_options(rb))
    reg.register(Negator)
    async with reg:
        await reg.ready("negator")
        (pid,) = await rb.replica_pids("negator")
        os.kill(pid, signal.SIGKILL)
        t0 = time.monotonic()
        failures = 0
        while True:
            try:
                out = await reg.run("negator", "negate", {"audio": ONES})
                break
            except Exception:
                failures += 1
                assert time.monotonic() - t0 < 30.0  # 10x the 3 s promise (benchmarks measure it)
                await asyncio.sleep(0.02)
        took = time.monotonic() - t0
        assert failures >= 1 and list(out) == [-1.0] * 4
        assert (await rb.replica_pids("negator"))[0] != pid
        print(f"\nsingle replica, SIGKILL -> first call served again: {took:.2f} s")


async def test_resources_the_cluster_cannot_satisfy_fail_the_start(serve_session: Any) -> None:
    reg = ModelRegistry(backend=ServeBackend(start_timeout=30.0, delete_on_close=True))
    reg.register(TooHeavy)
    t0 = time.monotonic()
    async with reg:
        with pytest.raises(ResourceError, match=r"'too_heavy' needs 64 CPU.*Ray cluster"):
            await reg.ready("too_heavy")
    assert time.monotonic() - t0 < 10.0  # refused before deploying, not after the start timeout
    # Each replica fits a node (3 of 4 cpus), two do not: the deployment never runs.
    rb = ServeBackend(replicas=2, start_timeout=4.0, delete_on_close=True)
    reg = ModelRegistry(backend=rb)
    reg.register(Heavy)
    t0 = time.monotonic()
    async with reg:
        with pytest.raises(
            ResourceError, match=r"'heavy' not running within 4 s .*each replica needs 3 CPU, 64 MiB memory"
        ):
            await reg.ready("heavy")
    assert time.monotonic() - t0 < 40.0
    assert not [a for a in serve_session.status().applications if "heavy" in a]  # removed again


async def test_handle_path_batches_with_serve_and_refuses_beyond_the_queue(serve_session: Any) -> None:
    # the deployment of the single-replica test if it ran (the data path is no part of a deployment)
    rb = ServeBackend(data_path="handle", num_cpus=0.5, **SHARED, call_timeout=20.0, delete_on_close=True)
    reg = ModelRegistry(backend=rb, **registry_options(rb))
    reg.register(Negator)
    async with reg:
        await reg.ready("negator")
        x = np.arange(8, dtype=np.float32)
        scaled = [reg.run("negator", "scale", {"audio": x, "gain": float(g)}) for g in range(4)]
        for g, y in enumerate(await asyncio.gather(*scaled)):
            np.testing.assert_array_equal(y, x * g)
        (stats,) = await rb.replica_stats("negator")
        collected = stats["batches"]["scale (collected by Serve)"]
        assert collected["calls"] == 4 and collected["largest"] > 1
        with pytest.raises(ValueError, match="non-negative"):  # the service's own error, unchanged
            await reg.run("negator", "hold", {"seconds": -1.0})
        # Serve counts a call as queued until its router assigns it, even with the replica free, so
        # the replica is filled in waves no larger than the queue
        holds: list[asyncio.Future[Any]] = []
        deadline = time.monotonic() + 30.0
        for wave in (4, 8):
            holds += [asyncio.ensure_future(reg.run("negator", "hold", {"seconds": 3.0})) for _ in range(4)]
            while (await rb.replica_stats("negator"))[0]["in_flight"] < wave:  # assigned and running
                assert time.monotonic() < deadline
        # four wait in the handle's queue (max_queued_requests), the fifth is refused at once
        burst = [asyncio.ensure_future(reg.run("negator", "negate", {"audio": ONES})) for _ in range(5)]
        done = await asyncio.gather(*burst, return_exceptions=True)
        refused = [e for e in done if isinstance(e, Overloaded)]
        assert len(refused) == 1 and "admission refused: service 'negator' has 4 queued" in str(refused[0])
        assert [list(o) for o in done if not isinstance(o, BaseException)] == [[-1.0] * 4] * 4
        assert await asyncio.gather(*holds) == [3.0] * 8
        assert rb.stats("negator").overloaded == 1


async def test_autoscaling_follows_the_calls_in_flight_and_the_pool_follows_the_deployment(
    serve_session: Any,
) -> None:
    rb = ServeBackend(
        min_replicas=1, max_replicas=2, target_ongoing_requests=1, num_cpus=0.5, threads=4,
        max_concurrency=8, call_timeout=30.0, delete_on_close=True,
    )  # fmt: skip
    reg = ModelRegistry(backend=rb, **registry_options(rb))
    reg.register(Negator)
    async with reg:
        await reg.ready("negator")
        assert len(await rb.replica_names("negator")) == 1
        stop = asyncio.Event()

        async def load() -> None:  # 3 calls in flight at all times, direct to the hosts
            while not stop.is_set():
                await reg.run("negator", "hold", {"seconds": 0.2})

        loads = [asyncio.ensure_future(load()) for _ in range(3)]
        t0 = time.monotonic()
        deadline = t0 + 90.0
        while len(await rb.replica_names("negator")) < 2:  # Serve scaled up, the pool found the host
            assert time.monotonic() < deadline, rb.stats("negator")
            await asyncio.sleep(0.1)
        print(f"\nautoscaled 1 -> 2 replicas, new host in the pool {time.monotonic() - t0:.1f} s after load")
        stop.set()
        await asyncio.gather(*loads)
        out = await asyncio.gather(*(reg.run("negator", "negate", {"audio": ONES}) for _ in range(8)))
        assert all(list(o) == [-1.0] * 4 for o in out)
        assert all(r.calls > 0 for r in rb.stats("negator").replicas)  # the new replica takes calls


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"min_replicas": 3, "max_replicas": 2}, r"min_replicas \(3\) is above max_replicas \(2\)"),
        ({"min_replicas": 0, "max_replicas": 2}, "min_replicas must be >= 1"),
        ({"min_replicas": 1}, "go together"),
        ({"num_cpus": 0}, "num_cpus .* must be > 0, got 0"),
        ({"num_cpus": -1}, "must be > 0, got -1"),
        ({"address": "nonsense"}, "Ray address 'nonsense' is not one"),
        ({"address": "http://host:80/x"}, "is not one"),
        ({"max_queued_requests": 0}, "max_queued_requests must be -1"),
        ({"data_path": "grpc"}, "data_path must be one of"),
        ({"replicas": 5, "min_replicas": 1, "max_replicas": 3}, r"replicas \(5\) must lie within"),
    ],
)
def test_bad_options_are_clear_errors_before_anything_starts(options: dict[str, Any], message: str) -> None:
    pytest.importorskip("ray")
    with pytest.raises(ValueError, match=message):
        ServeBackend(**options)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="x")
    p.add_argument("--ray-address", default=None)
    add_backend_arguments(p)
    return p


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--ray-serve", "--ray-min-replicas", "3", "--ray-max-replicas", "2"],
            "is above --ray-max-replicas",
        ),
        (["--ray-serve", "--ray-min-replicas", "2"], "go together"),
        (["--ray-min-replicas", "1", "--ray-max-replicas", "2"], "need --ray-serve"),
        (["--ray-serve", "--ray-cpus", "0"], "expected a number of cpu cores > 0"),
        (["--ray-serve", "--ray-cpus", "-2"], "expected a number of cpu cores > 0"),
        (["--ray-serve", "--ray-address", "not an address"], "is not one"),
        (["--ray-serve", "--ray-max-queued", "0"], "expected -1"),
        (
            ["--ray-serve", "--ray-min-replicas", "1", "--ray-max-replicas", "2", "--ray-replicas", "3"],
            "outside",
        ),
    ],
)
def test_bad_command_line_options_are_usage_errors(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("ray")
    with pytest.raises(SystemExit) as exit_:
        _parser().parse_args(argv)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_command_line_options_reach_the_serve_backend() -> None:
    pytest.importorskip("ray")
    argv = ["--ray-address", "127.0.0.1:26379", "--ray-serve", "--ray-min-replicas", "2"]
    argv += [
        "--ray-max-replicas",
        "4",
        "--ray-cpus",
        "0.5",
        "--ray-target-ongoing",
        "3",
        "--ray-max-queued",
        "5",
    ]
    backend = backend_from_options(_parser().parse_args(argv))
    assert isinstance(backend, ServeBackend)
    assert (backend.replicas, backend.min_replicas, backend.max_replicas) == (2, 2, 4)
    assert (backend.num_cpus, backend.target_ongoing_requests, backend.max_queued_requests) == (0.5, 3.0, 5)
    assert backend.data_path == "actor" and backend.capacity == 4 * backend.max_concurrency
