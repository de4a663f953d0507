"""Load on ``apipeline serve``: N concurrent real-time voice changer sessions over WebSocket on loopback.

The server runs as a subprocess (``python -m apipeline.cli.main serve --workers W``, the default voice
changer); this process plays N clients on one event loop. Each client streams the committed speech sample
(resampled to ``--rate``, looped to ``--seconds``) as 20 ms chunks of ``--dtype`` samples (int16, or
float32 as the browser page sends) paced by the wall clock, as a microphone would, with ``pts`` = its send
time on its own clock; each output comes back with the ``pts`` of the input chunk it was made from — the
chunk that completed its block (see docs/protocol.md) — so on arrival ``now - pts`` is that chunk's round
trip (network, queueing and compute; the converter's algorithmic latency — waiting for a block to fill — is
not in it). Before the served voice changer mapped blocks to the chunk that completed them, outputs came
back with the chunk where their block began, and this read-out included up to one block (35 ms) of that
wait.

The load generator shares the cores with the server: it plays all N clients in this one process, and what
it costs (decode, encode, pacing) is printed beside the server's CPU per second of audio. Its own delays
count in the latency: ``--trace`` (see serve_trace.py) splits every output's round trip into client send →
server arrival → voice changer in → out → send → client receive, and prints the event-loop lag of every
worker and of this process, and the workers' garbage-collector pauses. All clients start in the same
millisecond by default (their blocks fall due together: the worst case for a worker's loop);
``--stagger-ms`` spreads the starts as independent users would.

A session *keeps real time* when its p99 per-chunk latency is under ``--p99-limit-ms`` (default 150) and
its last output arrives within ``--end-limit-ms`` (default 300) of its last chunk being sent. For each N
the script prints p50/p99 over all sessions, the worst session's p99 and end lag, and whether every
session kept real time; it stops after the first N that does not (or at ``--max-n``).

    python benchmarks/serve_load.py --workers 2 --rate 22050 --dtype int16 --ns 4,6,8,10
    python benchmarks/serve_load.py --workers 2 --rate 48000 --dtype float32 --ns 2,4,6
    python benchmarks/serve_load.py --workers 2 --ns 1,4,8 --keep-going --trace
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from apipeline.client import VoiceChangerClient
from apipeline.frames import AudioRawFrame

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "tests" / "data" / "speech_16k.wav"
CHUNK_MS = 20


async def session(url: str, audio: np.ndarray, rate: int, offset_s: float = 0.0) -> dict[str, object]:
    chunk = rate * CHUNK_MS // 1000
    latencies: list[float] = []
    received: list[tuple[int, int]] = []  # (pts, receive ns) of each output, for --trace
    jitter: list[float] = []  # how late each chunk left this process's pacing, ms
    last_sent = 0.0
    last_received = 0.0

    async def paced():
        nonlocal last_sent
        start = time.monotonic()
        for k, i in enumerate(range(0, len(audio) - chunk + 1, chunk)):
            due = start + k * CHUNK_MS / 1000
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)  # pacing like a microphone, not synchronisation
            frame = AudioRawFrame(audio[i : i + chunk], sample_rate=rate)
            frame.pts = time.monotonic_ns()
            jitter.append(frame.pts / 1e6 - due * 1000)
            last_sent = time.monotonic()
            yield frame

    if offset_s:
        await asyncio.sleep(offset_s)  # clients do not all start in the same millisecond
    async with VoiceChangerClient(url, pitch=4, formant=1.1) as client:
        async for frame in client.stream(paced()):
            now = time.monotonic_ns()
            last_received = now / 1e9
            if isinstance(frame, AudioRawFrame) and frame.pts is not None:
                latencies.append((now - frame.pts) / 1e6)
                received.append((frame.pts, now))
    lat = np.array(latencies)
    return {
        "p50": float(np.percentile(lat, 50)),
        "p99": float(np.percentile(lat, 99)),
        "end_lag": (last_received - last_sent) * 1000.0,
        "samples": lat,
        "received": received,
        "jitter": np.array(jitter),
    }


async def load(
    url: str, n: int, audio: np.ndarray, rate: int, stagger_s: float = 0.0, watch_lag: bool = False
) -> list[dict]:
    """``n`` sessions at once (the ``k``-th starting ``k * stagger_s / n`` s late); with ``watch_lag``,
    each result also has this process's event-loop lag samples under ``"client_lag"`` (ns)."""
    lag: list[int] = []

    async def watch() -> None:
        while True:
            t0 = time.monotonic_ns()
            await asyncio.sleep(0.002)
            lag.append(time.monotonic_ns() - t0 - 2_000_000)

    watcher = asyncio.get_running_loop().create_task(watch()) if watch_lag else None
    try:
        results = await asyncio.gather(*(session(url, audio, rate, k * stagger_s / n) for k in range(n)))
    finally:
        if watcher is not None:
            watcher.cancel()
    for r in results:
        r["client_lag"] = lag
    return list(results)


def server_cpu_seconds(port: int) -> float:
    """CPU seconds of every server process so far (``/metrics``: one sample per worker)."""
    import re
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        body = response.read().decode()
    return sum(float(v) for v in re.findall(r"^apipeline_process_cpu_seconds_total\{.*\} (\S+)$", body, re.M))


def start_server(port: int, workers: int, trace: Path | None = None) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if trace is None:
        command = [sys.executable, "-m", "apipeline.cli.main", "serve"]
    else:  # the same server with every worker recording per-stage timestamps (serve_trace.py)
        from serve_trace import TRACE_DIR_ENV

        command = [sys.executable, str(ROOT / "benchmarks" / "serve_trace.py")]
        env[TRACE_DIR_ENV] = str(trace)
        env["PYTHONPATH"] = os.pathsep.join(
            [str(ROOT / "benchmarks"), str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
        )
    proc = subprocess.Popen(
        [
            *command,
            "--port",
            str(port),
            "--max-sessions",
            "256",
            "--workers",
            str(workers),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if "ready" in line:
            return proc
    raise RuntimeError("the server exited before it was ready")


def reuseport_spread(workers: int, sessions: int, trials: int) -> None:
    """How ``SO_REUSEPORT`` alone would place ``sessions`` connections on ``workers`` listeners (the kernel
    hashes each connection's addresses): the distribution of the busiest listener's share."""
    import socket
    from collections import Counter

    busiest: Counter[int] = Counter()
    for _ in range(trials):
        listeners = []
        port = 0
        for _ in range(workers):
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            s.bind(("127.0.0.1", port))
            port = s.getsockname()[1]
            s.listen(64)
            s.setblocking(False)
            listeners.append(s)
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(sessions)]
        counts = []
        for s in listeners:
            n = 0
            while True:
                try:
                    conn, _ = s.accept()
                except BlockingIOError:
                    break
                conn.close()
                n += 1
            counts.append(n)
        busiest[max(counts)] += 1
        for c in clients:
            c.close()
        for s in listeners:
            s.close()
    even = -(-sessions // workers)
    print(
        f"SO_REUSEPORT, {sessions} connections on {workers} listeners, {trials} trials: busiest listener got"
    )
    for n in sorted(busiest):
        print(f"  {n} connections{' (even)' if n == even else ''}: {busiest[n] / trials:.0%} of trials")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ns", default="1,2,4,6,8,10,12,16", help="session counts to try, in order")
    ap.add_argument("--seconds", type=float, default=8.0, help="audio per session")
    ap.add_argument("--port", type=int, default=8790)
    ap.add_argument("--p99-limit-ms", type=float, default=150.0)
    ap.add_argument("--end-limit-ms", type=float, default=300.0)
    ap.add_argument("--workers", type=int, default=2, help="server worker processes")
    ap.add_argument("--rate", type=int, default=22050, help="the clients' sample rate")
    ap.add_argument("--dtype", choices=("int16", "float32"), default="int16")
    ap.add_argument(
        "--stagger-ms",
        type=float,
        default=0.0,
        help="spread the N sessions' starts evenly over this many ms (0: all at once, the worst case)",
    )
    ap.add_argument(
        "--trace",
        action="store_true",
        help="per-stage timestamps (serve_trace.py): where each output's round trip went",
    )
    ap.add_argument("--keep-going", action="store_true", help="try every N even after one fails")
    ap.add_argument(
        "--reuseport-spread",
        action="store_true",
        help="only measure how SO_REUSEPORT alone would spread --ns's first N sessions over --workers",
    )
    args = ap.parse_args()
    if args.reuseport_spread:
        reuseport_spread(args.workers, int(args.ns.split(",")[0]), 200)
        return
    x, source_rate = sf.read(SAMPLE, dtype="float32")
    rate = args.rate
    if rate != source_rate:
        import soxr

        x = soxr.resample(x, source_rate, rate).astype(np.float32)
    audio = np.resize(x, int(args.seconds * rate))
    if args.dtype == "int16":
        audio = (np.clip(audio, -1, 1) * 32767).astype(np.int16)
    url = f"ws://127.0.0.1:{args.port}/ws"
    print(
        f"{os.cpu_count()} CPUs, {args.workers} workers; {args.seconds:.0f} s of {rate} Hz {args.dtype} "
        f"speech per session, {CHUNK_MS} ms chunks, starts spread over {args.stagger_ms:g} ms"
    )
    print(f"{'N':>3} {'p50 ms':>8} {'p99 ms':>8} {'worst p99':>10} {'worst end lag':>14}  real time")
    best = 0
    server = None if args.trace else start_server(args.port, args.workers)
    try:
        for n in (int(v) for v in args.ns.split(",")):
            trace = None
            if args.trace:  # a fresh traced server per N: its workers write their records on exit
                trace = Path(tempfile.mkdtemp(prefix="serve-trace-"))
                server = start_server(args.port, args.workers, trace)
            try:
                cpu0, client0 = server_cpu_seconds(args.port), os.times()
                results = asyncio.run(load(url, n, audio, rate, args.stagger_ms / 1000, args.trace))
                client1, cpu1 = os.times(), server_cpu_seconds(args.port)
            finally:
                if trace is not None and server is not None:
                    server.terminate()
                    server.wait(timeout=30)
            everything = np.concatenate([r["samples"] for r in results])  # type: ignore[misc]
            worst_p99 = max(r["p99"] for r in results)
            worst_end = max(r["end_lag"] for r in results)
            ok = all(r["p99"] <= args.p99_limit_ms and r["end_lag"] <= args.end_limit_ms for r in results)
            print(
                f"{n:>3} {np.percentile(everything, 50):8.1f} {np.percentile(everything, 99):8.1f} "
                f"{worst_p99:10.1f} {worst_end:14.1f}  {'yes' if ok else 'NO'}",
                flush=True,
            )
            audio_s = n * args.seconds
            client_cpu = client1.user + client1.system - client0.user - client0.system
            print(
                f"  CPU per second of session audio: server {(cpu1 - cpu0) / audio_s:.3f}, "
                f"this load generator {client_cpu / audio_s:.3f} (same cores)"
            )
            if trace is not None:
                from serve_trace import report

                jitter = np.concatenate([r["jitter"] for r in results])  # type: ignore[misc]
                print(
                    f"  client pacing: chunks left p50 {np.percentile(jitter, 50):.1f} "
                    f"p99 {np.percentile(jitter, 99):.1f} ms after their due time"
                )
                report(trace, [r["received"] for r in results], results[0]["client_lag"])
                if not os.environ.get("SERVE_TRACE_KEEP"):
                    shutil.rmtree(trace)
                else:
                    print(f"  records kept in {trace}")
            if not ok and not args.keep_going:
                break
            if ok:
                best = n
    finally:
        if server is not None and server.poll() is None:
            server.terminate()
            server.wait(timeout=30)
    print(f"largest N keeping real time: {best}")


if __name__ == "__main__":
    main()
