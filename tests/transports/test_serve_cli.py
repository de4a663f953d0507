"""``apipeline serve`` as a user runs it: a subprocess, its endpoints, a session, SIGTERM."""

from __future__ import annotations

import asyncio
import re
import signal
import sys

import numpy as np

from apipeline.client import VoiceChangerClient
from apipeline.frames import AudioRawFrame
from tests.transports.test_websocket import http_get


async def test_serve_subprocess_serves_then_stops_cleanly_on_sigterm():
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "apipeline.cli.main", "serve", "--port", "0", "--token", "tok",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        async with asyncio.timeout(30):
            first = (await proc.stdout.readline()).decode()
            port = int(re.search(r"http://127\.0\.0\.1:(\d+)/", first).group(1))
            assert (await proc.stdout.readline()).decode().strip() == "apipeline serve: ready"
            assert (await http_get(port, "/ready"))[0] == 200
            async with VoiceChangerClient(f"ws://127.0.0.1:{port}/ws", pitch=3, token="tok") as client:
                frames = [AudioRawFrame(np.zeros(320, np.int16), sample_rate=16000) for _ in range(10)]
                out = [f async for f in client.stream(frames)]
            assert out and client.close_code == 1000
            proc.send_signal(signal.SIGTERM)
            rest, err = await proc.communicate()
        assert proc.returncode == 0, err.decode()
        assert "shutting down" in rest.decode()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
