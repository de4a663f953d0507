"""``apipeline serve --workers 2`` as a user runs it: one port, the least-loaded worker, one session
limit over both, summed metrics, /ready, and a clean stop on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys

import numpy as np
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from apipeline.frames import AudioRawFrame
from apipeline.serializers import ProtobufFrameSerializer
from tests.transports.test_websocket import collect, http_get

SER = ProtobufFrameSerializer()


def metric(body: str, name: str) -> dict[str, float]:
    """``{labels: value}`` of every sample of ``name``."""
    out = {}
    for line in body.splitlines():
        m = re.match(rf"{name}(\{{[^}}]*\}})? (\S+)$", line)
        if m:
            out[m.group(1) or ""] = float(m.group(2))
    return out


async def test_workers_share_one_port_one_limit_and_stop_together():
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "apipeline.cli.main", "serve", "--port", "0", "--workers", "2",
        "--max-sessions", "4", "--idle-timeout", "30",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    held = []
    try:
        async with asyncio.timeout(60):
            first = (await proc.stdout.readline()).decode()
            port = int(re.search(r"http://127\.0\.0\.1:(\d+)/ .*2 workers", first).group(1))
            assert (await proc.stdout.readline()).decode().strip() == "apipeline serve: ready"
            assert (await http_get(port, "/ready"))[0] == 200
            url = f"ws://127.0.0.1:{port}/ws?sample_rate=16000"
            for _ in range(4):
                ws = await connect(url, compression=None)
                await ws.send(SER.serialize(AudioRawFrame(np.zeros(800, np.int16), sample_rate=16000)))
                held.append(ws)
            try:  # the limit counts the sessions of both workers
                async with connect(url):
                    raise AssertionError("a fifth session was accepted with --max-sessions 4")
            except InvalidStatus as exc:
                assert exc.response.status_code == 503
            for _ in range(100):  # each worker rewrites its snapshot twice a second
                body = (await http_get(port, "/metrics"))[2]
                per_worker = metric(body, "apipeline_process_sessions")
                if sum(per_worker.values()) == 4:
                    break
                await asyncio.sleep(0.05)
            assert sorted(per_worker.values()) == [2.0, 2.0], per_worker  # least-loaded placement
            assert len(metric(body, "apipeline_process_resident_memory_bytes")) == 2
            assert metric(body, "apipeline_sessions_active")['{transport="websocket"}'] == 4
            proc.send_signal(signal.SIGTERM)
            for ws in held:
                _, code = await collect(ws)
                assert code == 1001
            rest, err = await proc.communicate()
        assert proc.returncode == 0, err.decode()
        assert "shutting down" in rest.decode()
    finally:
        await _stop(proc)


def test_worker_thread_pools_split_the_cores_unless_the_operator_sized_them(monkeypatch):
    from apipeline.transports.workers import THREAD_POOL_VARIABLES, worker_environment

    for name in THREAD_POOL_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    env = worker_environment(2, 2)
    assert all(env[name] == "1" for name in THREAD_POOL_VARIABLES)
    assert worker_environment(2, 16)["OMP_NUM_THREADS"] == "8"
    assert worker_environment(4, 2)["OPENBLAS_NUM_THREADS"] == "1"  # never 0
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert worker_environment(2, 2)["OMP_NUM_THREADS"] == "3"


def test_freeze_heap_takes_what_is_alive_out_of_later_full_collections():
    import gc

    from apipeline.transports.workers import freeze_heap

    class Node:
        pass

    before = Node()
    before.self = before  # a cycle alive at freeze time
    try:
        assert freeze_heap() > 0
        assert not any(o is before for o in gc.get_objects(generation=2))  # not scanned any more
        after = Node()
        after.self = after
        assert gc.is_tracked(after) and gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


async def _serve_two_workers(*options: str):
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "apipeline.cli.main", "serve", "--port", "0", "--workers", "2", *options,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    first = (await proc.stdout.readline()).decode()
    port = int(re.search(r"http://127\.0\.0\.1:(\d+)/ .*2 workers", first).group(1))
    assert (await proc.stdout.readline()).decode().strip() == "apipeline serve: ready"
    return proc, port


async def _stop(proc) -> None:
    """SIGTERM (the supervisor then stops its workers and removes its run directory), SIGKILL if stuck."""
    if proc.returncode is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(proc.communicate(), 20)
    except (TimeoutError, asyncio.TimeoutError):
        proc.kill()
        await proc.wait()


def _environment(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/environ") as f:
        return dict(item.split("=", 1) for item in f.read().split("\0") if "=" in item)


async def _metrics_when(port: int, ok) -> str:
    """``/metrics`` once ``ok(body)`` holds (workers copy their numbers twice a second)."""
    body = ""
    for _ in range(200):
        try:
            body = (await http_get(port, "/metrics"))[2]
        except ConnectionError:  # handed to a worker that was killed a moment ago (the test kills one)
            continue
        if ok(body):
            return body
        await asyncio.sleep(0.05)
    raise AssertionError(f"/metrics never got there:\n{body}")


async def test_metrics_sum_both_workers_and_a_killed_worker_leaves_the_gauges():
    """prometheus_client's multiprocess mode: counters and histograms are summed over the workers (and
    keep what a dead worker counted); a killed worker's gauges (open sessions, RSS, CPU) leave the sums,
    and its sessions leave the shared admission count (--max-sessions 2 admits again)."""
    from apipeline.client import FrameClient

    proc, port = await _serve_two_workers("--max-sessions", "2", "--idle-timeout", "30")
    held = []
    try:
        async with asyncio.timeout(90):
            x = np.zeros(1600, np.int16)

            async def one_session() -> int:
                async with FrameClient(f"ws://127.0.0.1:{port}/ws") as client:
                    frames = [AudioRawFrame(x[i : i + 320], sample_rate=16000) for i in range(0, 1600, 320)]
                    return sum([1 async for f in client.stream(frames) if isinstance(f, AudioRawFrame)])

            outputs = sum(await asyncio.gather(one_session(), one_session()))  # one on each worker
            body = await _metrics_when(
                port,
                lambda b: (
                    metric(b, "apipeline_sessions_total").get('{outcome="ok",transport="websocket"}') == 2
                ),
            )
            assert metric(body, "apipeline_frames_received_total")[""] >= 10
            assert outputs > 0
            assert metric(body, "apipeline_session_duration_seconds_count")[""] == 2
            # both workers counted: each has its own files under the run's PROMETHEUS_MULTIPROC_DIR
            url = f"ws://127.0.0.1:{port}/ws?sample_rate=16000"
            for _ in range(2):
                ws = await connect(url, compression=None)
                await ws.send(SER.serialize(AudioRawFrame(np.zeros(800, np.int16), sample_rate=16000)))
                held.append(ws)
            body = await _metrics_when(
                port, lambda b: sorted(metric(b, "apipeline_process_sessions").values()) == [1.0, 1.0]
            )
            assert metric(body, "apipeline_sessions_active")['{transport="websocket"}'] == 2
            rss = metric(body, "apipeline_process_resident_memory_bytes")
            assert len(rss) == 2 and all(v > 0 for v in rss.values())
            victim = int(re.search(r'pid="(\d+)"', next(iter(rss))).group(1))
            os.kill(victim, signal.SIGKILL)
            body = await _metrics_when(
                port, lambda b: len(metric(b, "apipeline_process_resident_memory_bytes")) == 1
            )
            assert str(victim) not in body
            assert metric(body, "apipeline_sessions_active")['{transport="websocket"}'] == 1
            assert len(metric(body, "apipeline_process_cpu_seconds_total")) == 1
            assert metric(body, "apipeline_sessions_total")['{outcome="ok",transport="websocket"}'] == 2
            async with connect(url, compression=None) as again:  # the dead worker's slot is free again
                await again.send(SER.serialize(AudioRawFrame(np.zeros(800, np.int16), sample_rate=16000)))
                assert isinstance(SER.deserialize(await again.recv()), AudioRawFrame)
            survivor = int(
                re.search(
                    r'pid="(\d+)"', next(iter(metric(body, "apipeline_process_cpu_seconds_total")))
                ).group(1)
            )
            environ = await asyncio.to_thread(_environment, survivor)
            private = environ["PROMETHEUS_MULTIPROC_DIR"]
            assert await asyncio.to_thread(os.listdir, private)
            proc.send_signal(signal.SIGTERM)
            await proc.communicate()
            assert not await asyncio.to_thread(os.path.exists, private)  # the run's metrics go with it
    finally:
        for ws in held:
            await ws.close()
        await _stop(proc)


_PROCESS = """
import os, sys
from apipeline.transports.stats import MultiprocessMetrics, ServerStats
stats = ServerStats()
key, counters = stats.session_started("websocket")
counters.frames_in, counters.audio_seconds_in = 10, 2.0
counters.observe_latency(0.02)
stats.observe_metrics(key, [{"processor": "vocoder#7", "processing": {"count": 4, "mean_ns": 250000,
                                                                     "p50_ns": 200000, "p99_ns": 400000}}])
stats.refused("websocket", "origin")
stats.observe_loop_lag(0.2)
metrics = MultiprocessMetrics(os.environ["PROMETHEUS_MULTIPROC_DIR"], "worker-" + sys.argv[1])
metrics.sync(stats)
metrics.sync(stats)  # nothing new: nothing added twice
stats.session_ended(key, "ok")
metrics.sync(stats)
if sys.argv[1] == "1":
    print(metrics.render())
"""


def test_multiprocess_metrics_add_each_process_once(tmp_path):
    """Two processes copy the same numbers into one directory: every counter, histogram and summary is
    the sum of both (each change copied once however often sync runs), the derived realtime factor is
    the ratio of the sums, and the gauges of live processes add up."""
    import os
    import subprocess

    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    for i in ("0", "1"):
        done = subprocess.run([sys.executable, "-c", _PROCESS, i], env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    body = done.stdout
    assert metric(body, "apipeline_frames_received_total")[""] == 20
    assert metric(body, "apipeline_latency_seconds_count")[""] == 2
    assert metric(body, "apipeline_sessions_total")['{outcome="ok",transport="websocket"}'] == 2
    assert metric(body, "apipeline_handshakes_refused_total")['{reason="origin",transport="websocket"}'] == 2
    assert metric(body, "apipeline_session_duration_seconds_count")[""] == 2
    assert metric(body, "apipeline_event_loop_lag_seconds_bucket")['{le="0.25"}'] == 2
    assert metric(body, "apipeline_event_loop_lag_seconds_bucket")['{le="0.1"}'] == 0
    assert metric(body, "apipeline_processor_latency_seconds_count")['{processor="vocoder"}'] == 8
    assert metric(body, "apipeline_processor_latency_seconds_sum")['{processor="vocoder"}'] == 0.002
    assert metric(body, "apipeline_processor_latency_p99_seconds")['{processor="vocoder"}'] == 0.0004
    assert metric(body, "apipeline_realtime_factor")[""] == 0.002 / 4.0
    assert metric(body, "apipeline_sessions_active")['{transport="websocket"}'] == 0


def test_multiprocess_metrics_refuse_a_directory_prometheus_client_does_not_use(tmp_path, monkeypatch):
    import pytest

    from apipeline.errors import ConfigurationError
    from apipeline.transports.stats import MultiprocessMetrics

    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    with pytest.raises(ConfigurationError, match="PROMETHEUS_MULTIPROC_DIR"):
        MultiprocessMetrics(str(tmp_path), "worker-0")


async def test_a_handed_over_connection_sends_without_nagle_delay():
    """asyncio disables Nagle's algorithm only on sockets whose ``proto`` says TCP; a socket accepted on a
    ``socket.create_server`` listener has proto 0, so ``adopt`` must set ``TCP_NODELAY`` itself (else small
    audio messages may wait for the peer's delayed ACK, up to 40 ms on Linux)."""
    import socket

    from apipeline.transports import ServerConfig, WebsocketServer
    from tests.transports._standin import gain_factory

    server = WebsocketServer(gain_factory(), ServerConfig(port=0, ping_interval=None))
    await server.start(handover=True)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.setblocking(False)
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(30):
            await server.wait_ready()
            client = asyncio.ensure_future(
                connect(f"ws://127.0.0.1:{listener.getsockname()[1]}/ws?sample_rate=16000")
            )
            accepted, _ = await loop.sock_accept(listener)
            assert accepted.proto == 0  # what asyncio's own check would skip
            accepted.setblocking(False)
            connection = await server.adopt(accepted)
            sock = connection.transport.get_extra_info("socket")
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
            await (await client).close()
    finally:
        listener.close()
        await server.aclose()
