"""The voice changer's model stage on LocalBackend vs RayBackend: added latency, streams, recovery.

The stage is one real service call per chunk: the tiny ContentVec-signature encoder and the tiny
so-vits-svc-signature model of ``tools/make_tiny_models.py`` (onnxruntime, 1 thread each) run over a
window of ``[160 ms context | chunk]`` at 16 kHz and return the window's 44.1 kHz output. F0 is a fixed
150 Hz track: F0 estimation costs the same on both backends and is not what is compared here.

Usage::

    python benchmarks/ray_backend.py [--chunks 200] [--seconds 4]

Prints: per-chunk latency p50/p99 for 40 and 100 ms chunks on both backends (and the difference); the
same call on a Ray Serve deployment (``--serve``: ServeBackend calling the replica's host actor, and
through a Serve handle); how many paced real-time streams 1 and 2
replicas sustain (every chunk back within its own duration, none degraded) with the pool's own count of
refused calls; the time from SIGKILL of the replica to the first chunk processed again, with 1 replica
(and where that time went: worker process, host constructor, service bring-up) and (rerouted) with 2.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from apipeline.models import LocalBackend, ModelRegistry, RayBackend, service_method
from apipeline.models.backends import registry_options
from apipeline.models.serve_backend import ServeBackend
from apipeline.models.services import ContentEncoderService, SvcService

TOOLS = Path(__file__).resolve().parents[1] / "tools"
RATE = 16000
CONTEXT = 2560  # 160 ms


class SvcStage:
    """window (16 kHz) -> content -> so-vits-svc -> 44.1 kHz audio covering the window."""

    protocol = "standard"
    service_name = "svc_stage"

    def __init__(self, content_path: str, svc_path: str) -> None:
        self.enc = ContentEncoderService(content_path)
        self.svc = SvcService(svc_path)

    def info(self) -> dict[str, Any]:
        p = {"name": "audio", "type": "ndarray", "type_desc": "float32", "desc": "16 kHz window"}
        m = {"name": "convert", "params": [p], "return": {"type": "ndarray"}}
        return {"service_name": self.service_name, "service_desc": "content + svc", "methods": [m]}

    def prepare(self) -> bool:
        return self.enc.prepare() and self.svc.prepare()

    def load(self) -> bool:
        return self.enc.load() and self.svc.load()

    def test(self) -> bool:
        return self.enc.test() and self.svc.test()

    def unload(self) -> bool:
        return self.enc.unload() and self.svc.unload()

    def cleanup(self) -> bool:
        return True

    @service_method()
    def convert(self, audio: np.ndarray) -> np.ndarray:
        content = self.enc.encode(audio)
        frames = -(-audio.shape[0] * 44100 // RATE // 512)
        return self.svc.convert(content, np.full(frames, 150.0, np.float32), 0, None, 0)


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs) * 1000, q))


async def latency(reg: ModelRegistry, chunk: int, n: int) -> list[float]:
    rng = np.random.default_rng(0)
    out = []
    for i in range(n + 10):
        w = (0.1 * rng.standard_normal(CONTEXT + chunk)).astype(np.float32)
        t = time.perf_counter()
        await reg.run("svc_stage", "convert", {"audio": w})
        if i >= 10:
            out.append(time.perf_counter() - t)
    return out


async def paced_stream(reg: ModelRegistry, chunk: int, seconds: float, stats: dict[str, int]) -> list[float]:
    """One real-time stream: a chunk every ``chunk / RATE`` s, at most 2 in flight; latencies."""
    period = chunk / RATE
    w = np.zeros(CONTEXT + chunk, np.float32)
    lat: list[float] = []
    pending: set[asyncio.Task[None]] = set()
    limit = asyncio.Semaphore(2)

    async def one() -> None:
        t = time.perf_counter()
        try:
            await asyncio.wait_for(reg.run("svc_stage", "convert", {"audio": w}), 2 * period)
            lat.append(time.perf_counter() - t)
        except Exception:
            stats["degraded"] += 1
        finally:
            limit.release()

    start = time.perf_counter()
    k = 0
    while time.perf_counter() - start < seconds:
        await limit.acquire()
        task = asyncio.ensure_future(one())
        pending.add(task)
        task.add_done_callback(pending.discard)
        k += 1
        await asyncio.sleep(max(0.0, start + k * period - time.perf_counter()))
    await asyncio.gather(*pending)
    return lat


async def streams(reg: ModelRegistry, chunk: int, seconds: float) -> int:
    best = 0
    for n in (1, 2, 4, 6, 8, 12, 16):
        stats = {"degraded": 0}
        lats = await asyncio.gather(*(paced_stream(reg, chunk, seconds, stats) for _ in range(n)))
        flat = [x for lat in lats for x in lat]
        p99 = pct(flat, 99) if flat else float("inf")
        ok = stats["degraded"] == 0 and p99 <= 1000 * chunk / RATE
        print(
            f"    {n:2d} streams: p50 {pct(flat, 50):6.2f} ms p99 {p99:6.2f} ms degraded {stats['degraded']}"
        )
        if not ok:
            break
        best = n
    return best


async def recovery(reg: ModelRegistry, rb: RayBackend, chunk: int) -> tuple[float, float]:
    """Seconds from SIGKILL of replica 0 to the first chunk processed again, and the kill's wall time."""
    (pid,) = (await rb.replica_pids("svc_stage"))[:1]
    w = np.zeros(CONTEXT + chunk, np.float32)
    period = chunk / RATE
    t_kill = time.time()
    os.kill(pid, signal.SIGKILL)
    t0 = time.perf_counter()
    while True:
        try:
            await asyncio.wait_for(reg.run("svc_stage", "convert", {"audio": w}), 2 * period)
            return time.perf_counter() - t0, t_kill
        except Exception:
            await asyncio.sleep(period)


async def serve_native_latency(
    paths: dict[str, Path], chunks_ms: tuple[int, ...], n: int
) -> dict[int, list[float]]:
    """The stage run *inside* a Serve replica and awaited through a Serve handle: Serve's own data path
    (router -> replica actor -> user method), one hop like the actor call, for the budget decision."""
    from ray import serve

    @serve.deployment(name="svc_stage", max_ongoing_requests=16, ray_actor_options={"num_cpus": 1})
    class Stage:
        def __init__(self, content: str, svc: str) -> None:
            self.stage = SvcStage(content, svc)
            assert self.stage.prepare() and self.stage.load()

        def convert(self, audio: np.ndarray) -> np.ndarray:
            return self.stage.convert(audio)

    def deploy() -> Any:
        serve.start(proxy_location="Disabled")
        app = Stage.bind(str(paths["content_encoder"]), str(paths["sovits"]))
        return serve.run(app, name="bench-native", route_prefix=None)

    handle = await asyncio.to_thread(deploy)
    rng = np.random.default_rng(0)
    results: dict[int, list[float]] = {}
    for ms in chunks_ms:
        out = []
        for i in range(n + 10):
            w = (0.1 * rng.standard_normal(CONTEXT + RATE * ms // 1000)).astype(np.float32)
            t = time.perf_counter()
            await handle.convert.remote(w)
            if i >= 10:
                out.append(time.perf_counter() - t)
        results[ms] = out
    await asyncio.to_thread(serve.delete, "bench-native")
    return results


async def probe(n: int) -> None:
    """The transport alone: a trivial method (``-x`` of 3,200 floats) as a Ray actor call and as a
    Serve handle call on a replica running the same method, awaited the same way, alternating twice."""
    import ray
    from ray import serve

    class Negate:
        async def call(self, x: np.ndarray) -> np.ndarray:
            return -x

    actor = ray.remote(Negate).options(num_cpus=0.5).remote()
    deployment = serve.deployment(Negate).options(
        name="probe", max_ongoing_requests=16, ray_actor_options={"num_cpus": 0.5}
    )

    def deploy() -> Any:
        serve.start(proxy_location="Disabled")
        return serve.run(deployment.bind(), name="bench-probe", route_prefix=None)

    handle = await asyncio.to_thread(deploy)
    x = np.ones(3200, np.float32)
    for name, call in [("actor", lambda: actor.call.remote(x)), ("serve", lambda: handle.call.remote(x))] * 2:
        lat = []
        for i in range(n + 20):
            t = time.perf_counter()
            await call()
            if i >= 20:
                lat.append(time.perf_counter() - t)
        print(f"  probe, {name} call: p50 {pct(lat, 50):.2f} ms p99 {pct(lat, 99):.2f} ms")
    await asyncio.to_thread(serve.delete, "bench-probe")
    ray.kill(actor)


async def main(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(TOOLS))
    import make_tiny_models

    tmp = Path(tempfile.mkdtemp())
    paths = make_tiny_models.build_all(tmp, seed=0)
    stage = SvcStage(str(paths["content_encoder"]), str(paths["sovits"]))
    import ray

    # one local Ray for every backend below (each would otherwise start and stop its own)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)
    if args.serve:
        print("transport probe (trivial method; Serve handle vs actor call):")
        await probe(300)
    results: dict[tuple[str, int], list[float]] = {}
    makers: list[tuple[str, Any]] = [
        ("local", lambda: LocalBackend(2)),
        ("ray", lambda: RayBackend(replicas=1)),
    ]
    if args.serve:
        # the same service as a Serve deployment: called on its host actor (ServeBackend's data path)
        # and through a Serve handle (Serve's router, then the replica, then its host)
        makers += [
            ("serve-actor", lambda: ServeBackend(replicas=1, delete_on_close=True)),
            ("serve-handle", lambda: ServeBackend(replicas=1, data_path="handle", delete_on_close=True)),
        ]
    for name, make in makers:
        backend = make()
        reg = ModelRegistry(backend=backend, max_concurrency=4, max_pending=0)
        reg.register(stage)
        async with reg:
            t = time.perf_counter()
            await reg.ready("svc_stage")
            print(f"{name}: ready in {time.perf_counter() - t:.2f} s")
            for ms in (40, 100):
                lat = await latency(reg, RATE * ms // 1000, args.chunks)
                results[(name, ms)] = lat
                print(f"  {ms} ms chunks: p50 {pct(lat, 50):.2f} ms p99 {pct(lat, 99):.2f} ms")
    names = [name for name, _ in makers[1:]]
    if args.serve:
        native = await serve_native_latency(paths, (40, 100), args.chunks)
        print("serve-native (the stage inside the Serve replica, awaited through a handle):")
        for ms, lat in native.items():
            results[("serve-native", ms)] = lat
            print(f"  {ms} ms chunks: p50 {pct(lat, 50):.2f} ms p99 {pct(lat, 99):.2f} ms")
        names.append("serve-native")
    for ms in (40, 100):
        for name in names:
            d50 = pct(results[(name, ms)], 50) - pct(results[("local", ms)], 50)
            d99 = pct(results[(name, ms)], 99) - pct(results[("local", ms)], 99)
            print(f"added by {name}, {ms} ms chunks: p50 {d50:+.2f} ms, p99 {d99:+.2f} ms")
        if ("serve-native", ms) in results:
            d50 = pct(results[("serve-native", ms)], 50) - pct(results[("ray", ms)], 50)
            print(f"Serve handle (native) vs actor call, {ms} ms chunks: p50 {d50:+.2f} ms")
    for replicas in (1, 2):
        rb = RayBackend(replicas=replicas, num_cpus=1, max_concurrency=16)
        reg = ModelRegistry(backend=rb, **registry_options(rb))
        reg.register(stage)
        async with reg:
            await reg.ready("svc_stage")
            print(f"ray, {replicas} replica(s), 40 ms chunks, paced streams ({args.seconds:g} s each):")
            n = await streams(reg, 640, args.seconds)
            pool = rb.stats("svc_stage")
            print(
                f"  sustained: {n} real-time streams (pool: {pool.overloaded} refused as overloaded, "
                f"{pool.remote_errors} remote errors, {pool.rerouted} rerouted)"
            )
            for i in range(args.kills):
                before = len(rb.stats("svc_stage").recoveries)
                took, t_kill = await recovery(reg, rb, 640)
                print(f"  recovery after SIGKILL #{i + 1}: {took:.2f} s")
                if replicas == 1:
                    born = (await rb.replica_stats("svc_stage"))[0]["born"]
                    print(
                        "    where it went (s after the kill): new worker process started "
                        f"{born['process'] - t_kill:+.2f} (negative: a prestarted idle worker), host "
                        f"constructor {born['host'] - t_kill:.2f}, service up {born['ready'] - t_kill:.2f}, "
                        f"first chunk served {took:.2f}"
                    )
                # the killed replica is back (with 2 replicas a rerouted call may come back first)
                while len(rb.stats("svc_stage").recoveries) == before:  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
                await rb.wait_healthy("svc_stage", 60.0)
    print(f"cpu: {os.cpu_count()} cores")
    ray.shutdown()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--chunks", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--kills", type=int, default=3, help="SIGKILLs of a replica to time recovery")
    parser.add_argument("--serve", action="store_true", help="also time calls on a Ray Serve deployment")
    asyncio.run(main(parser.parse_args()))
