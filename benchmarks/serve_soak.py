"""Soak ``apipeline serve``: sessions come and go at random for ``--minutes``, some of them misbehaving.

The server runs as a subprocess (``apipeline serve --workers W``, the voice changer, a short
``--idle-timeout``); this process keeps ``--concurrency`` clients going, each one picking at random:

* ``normal`` (most): 1-3 s of speech paced in real time, then EndFrame; must end with close 1000;
* ``abrupt``: streams a little, then drops the TCP connection without a close frame;
* ``idle``: connects and sends nothing (the server must close it, 1008, after its idle timeout);
* ``hostile``: an unknown or out-of-range setting at the handshake (must be refused with 400);
* ``garbage``: a message that is not a frame (must be closed with 1002);
* ``oversized``: a message over the size limit (1009);
* ``flood``: 20 s of audio as fast as it can (paced by the server; it gives up after 2 s).

Every ``--every`` seconds it prints the server's RSS (all processes, from ``/metrics``), the sessions
open, the p99 round trip of the normal sessions in that window, and how each kind ended. At the end it
waits for the server to report no open session and prints the verdict: nothing leaked when no session
is left open and every outcome was the expected one.

    python benchmarks/serve_soak.py --minutes 10 --workers 2
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import soundfile as sf
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from apipeline.frames import AudioRawFrame, EndFrame
from apipeline.serializers import ProtobufFrameSerializer

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "tests" / "data" / "speech_16k.wav"
SER = ProtobufFrameSerializer()
RSS = "apipeline_process_resident_memory_bytes"
KINDS = {"normal": 60, "abrupt": 8, "idle": 6, "hostile": 8, "garbage": 6, "oversized": 4, "flood": 8}
EXPECTED = {"normal": "1000", "abrupt": "dropped", "idle": "1008", "hostile": "400", "garbage": "1002",
            "oversized": "1009", "flood": "dropped"}  # fmt: skip


class Soak:
    def __init__(self, url: str, audio: np.ndarray, rate: int) -> None:
        self.url, self.audio, self.rate = url, audio, rate
        self.latencies: list[float] = []
        self.outcomes: Counter[tuple[str, str]] = Counter()

    async def one(self, kind: str) -> None:
        try:
            outcome = await getattr(self, kind)()
        except InvalidStatus as exc:
            outcome = str(exc.response.status_code)
        except (ConnectionClosed, OSError) as exc:
            outcome = f"error {type(exc).__name__}"
        self.outcomes[(kind, outcome)] += 1

    async def normal(self) -> str:
        chunk = self.rate // 50
        seconds = random.uniform(1, 3)
        start = random.randrange(0, len(self.audio) - int(seconds * self.rate))
        async with connect(f"{self.url}?pitch={random.randint(-6, 6)}", compression=None) as ws:

            async def send() -> None:
                t0 = time.monotonic()
                for k in range(int(seconds * 50)):
                    await asyncio.sleep(max(0.0, t0 + k * 0.02 - time.monotonic()))  # microphone pacing
                    i = start + k * chunk
                    frame = AudioRawFrame(self.audio[i : i + chunk], sample_rate=self.rate)
                    frame.pts = time.monotonic_ns()
                    await ws.send(SER.serialize(frame))
                await ws.send(SER.serialize(EndFrame()))

            sender = asyncio.ensure_future(send())
            try:
                async for message in ws:
                    f = SER.deserialize(message)
                    if isinstance(f, AudioRawFrame) and f.pts is not None:
                        self.latencies.append((time.monotonic_ns() - f.pts) / 1e6)
            except ConnectionClosed:
                pass
            finally:
                sender.cancel()
            return str(ws.close_code)

    async def abrupt(self) -> str:
        ws = await connect(self.url, compression=None)
        for i in range(random.randint(1, 30)):
            await ws.send(SER.serialize(AudioRawFrame(self.audio[i * 320 : (i + 1) * 320], self.rate)))
        ws.transport.abort()
        return "dropped"

    async def idle(self) -> str:
        async with connect(self.url, compression=None) as ws:
            await drain(ws)
        return str(ws.close_code)

    async def hostile(self) -> str:
        query = random.choice(["search_ms=1000000", "context_ms=600000", "bogus=1", "pitch=1e308", "name=x"])
        async with connect(f"{self.url}?{query}"):
            return "accepted"

    async def garbage(self) -> str:
        async with connect(self.url, compression=None) as ws:
            await ws.send(os.urandom(64))
            await drain(ws)
        return str(ws.close_code)

    async def oversized(self) -> str:
        async with connect(self.url, compression=None, max_size=None) as ws:
            await ws.send(b"\0" * (2 << 20))
            await drain(ws)
        return str(ws.close_code)

    async def flood(self) -> str:
        ws = await connect(self.url, compression=None)
        block = AudioRawFrame(np.resize(self.audio, self.rate // 10), self.rate)
        message = SER.serialize(block)

        async def push() -> None:
            for _ in range(200):
                await ws.send(message)

        try:
            await asyncio.wait_for(push(), 2.0)
        except (asyncio.TimeoutError, TimeoutError):
            pass
        ws.transport.abort()
        return "dropped"


async def drain(ws) -> None:
    """Read until the server closes (an abnormal close code raises; the code is what matters)."""
    try:
        async for _ in ws:
            pass
    except ConnectionClosed:
        pass


async def metrics(port: int) -> str:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    data = await reader.read()
    writer.close()
    return data.decode().partition("\r\n\r\n")[2]


def total(body: str, name: str) -> float:
    return sum(float(v) for v in re.findall(rf"^{name}(?:\{{[^}}]*\}})? (\S+)$", body, re.M))


async def soak(args: argparse.Namespace, port: int) -> bool:
    x, rate = sf.read(SAMPLE, dtype="int16")
    s = Soak(f"ws://127.0.0.1:{port}/ws", np.resize(x, rate * 30), rate)
    names, weights = list(KINDS), list(KINDS.values())
    end = time.monotonic() + args.minutes * 60
    running: set[asyncio.Task[None]] = set()
    started = time.monotonic()
    next_report = started
    sessions = 0
    print(f"{'t s':>6} {'RSS MB':>8} {'open':>5} {'sessions':>9} {'p99 ms':>8}  outcomes", flush=True)
    while time.monotonic() < end:
        while len(running) < args.concurrency:
            task = asyncio.ensure_future(s.one(random.choices(names, weights)[0]))
            running.add(task)
            task.add_done_callback(running.discard)
            sessions += 1
        await asyncio.sleep(0.05)
        if time.monotonic() >= next_report:
            body = await metrics(port)
            p99 = float(np.percentile(s.latencies, 99)) if s.latencies else float("nan")
            s.latencies.clear()
            print(
                f"{time.monotonic() - started:6.0f} {total(body, RSS) / 1e6:8.1f} "
                f"{total(body, 'apipeline_sessions_active'):5.0f} {sessions:9d} {p99:8.1f}",
                flush=True,
            )
            next_report += args.every
    await asyncio.gather(*running)
    for _ in range(200):  # the workers' metrics snapshots lag by up to half a second
        body = await metrics(port)
        if total(body, "apipeline_sessions_active") == 0:
            break
        await asyncio.sleep(0.1)
    open_left = total(body, "apipeline_sessions_active")
    print(f"final: RSS {total(body, RSS) / 1e6:.1f} MB, open {open_left:.0f}")
    unexpected = {k: n for k, n in s.outcomes.items() if k[1] != EXPECTED[k[0]]}
    for (kind, outcome), n in sorted(s.outcomes.items()):
        print(f"  {kind:10s} {outcome:18s} {n:6d}{'' if outcome == EXPECTED[kind] else '  (unexpected)'}")
    ok = open_left == 0 and not unexpected
    print("nothing leaked" if ok else "LEAK OR UNEXPECTED OUTCOMES")
    return ok


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--concurrency", type=int, default=6)
    ap.add_argument("--every", type=float, default=10.0, help="seconds between reports")
    ap.add_argument("--port", type=int, default=8795)
    args = ap.parse_args()
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "apipeline.cli.main", "serve", "--port", str(args.port), "--workers",
            str(args.workers), "--idle-timeout", "2", "--max-sessions", "64",
        ],
        cwd=ROOT, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            if line.strip() == "apipeline serve: ready":
                break
        else:
            raise RuntimeError("the server exited before it was ready")
        return 0 if asyncio.run(soak(args, args.port)) else 1
    finally:
        proc.terminate()
        proc.wait(timeout=30)


if __name__ == "__main__":
    sys.exit(main())
