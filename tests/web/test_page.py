"""The browser page: served files, and the real voice changer driven from headless Chromium."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import tempfile
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from apipeline.transports import ServerConfig, VoiceChangerFactory, WebsocketServer
from tests.transports.test_websocket import http_get

SPEECH = Path(__file__).resolve().parents[1] / "data" / "speech_16k.wav"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


async def test_page_and_scripts_are_served():
    async with WebsocketServer(VoiceChangerFactory(), ServerConfig(port=0, ping_interval=None)) as server:
        status, head, body = await http_get(server.port, "/")
        assert status == 200 and "text/html" in head and '<script type="module" src="/app.js">' in body
        for path, needle in (
            ("/app.js", "audioWorklet.addModule"),
            ("/worklet.js", "registerProcessor"),
            ("/protocol.js", "export function encodeAudio"),
        ):
            status, head, body = await http_get(server.port, path)
            assert status == 200 and "text/javascript" in head and needle in body
        assert (await http_get(server.port, "/../pyproject.toml"))[0] == 404


# A promise that resolves (with the stats as JSON) once the condition on `s` holds; it re-checks on each
# "apipeline-stats" event the page dispatches, and the stats may not exist yet when it is evaluated.
WAIT_STATS = """new Promise((resolve) => {
  const check = () => { const s = window.apipelineStats;
    if (!(s && (%s))) return false;
    window.removeEventListener("apipeline-stats", check);
    resolve(JSON.stringify(s));
    return true; };
  if (!check()) window.addEventListener("apipeline-stats", check);
})"""


class DevTools:
    """The least of the Chrome DevTools protocol: evaluate an expression in the page."""

    def __init__(self, ws) -> None:
        self.ws = ws
        self.next_id = 0

    async def evaluate(self, expression: str, *, await_promise: bool = False):
        while True:
            self.next_id += 1
            params = {"expression": expression, "returnByValue": True, "awaitPromise": await_promise}
            request = {"id": self.next_id, "method": "Runtime.evaluate", "params": params}
            await self.ws.send(json.dumps(request))
            while True:
                reply = json.loads(await self.ws.recv())
                if reply.get("id") == self.next_id:
                    break
            if "Execution context was destroyed" in reply.get("error", {}).get("message", ""):
                continue  # the page (re)loaded while we waited: ask the new page; bounded by the caller
            assert "result" in reply and "exceptionDetails" not in reply["result"], reply
            return reply["result"]["result"].get("value")


async def page_target(stderr: asyncio.StreamReader) -> str:
    """The page's DevTools WebSocket URL, from the browser's "DevTools listening on" line."""
    while True:
        line = (await stderr.readline()).decode()
        if not line:
            raise RuntimeError("chromium exited before DevTools was listening")
        match = re.search(r"DevTools listening on ws://127\.0\.0\.1:(\d+)/", line)
        if match:
            break
    port = int(match.group(1))
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET /json/list HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
    head = (await reader.readuntil(b"\r\n\r\n")).decode()
    length = int(re.search(r"(?i)content-length:\s*(\d+)", head).group(1))
    body = await reader.readexactly(length)
    writer.close()
    pages = [t for t in json.loads(body) if t["type"] == "page"]
    return pages[0]["webSocketDebuggerUrl"]


async def drain(stream: asyncio.StreamReader) -> None:
    """Read and drop the browser's log: a full pipe would block it."""
    while await stream.read(65536):
        pass


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)")
@pytest.mark.timeout(90)
async def test_browser_streams_the_microphone_and_shows_latency():
    config = ServerConfig(port=0, ping_interval=None)
    async with WebsocketServer(VoiceChangerFactory(), config) as server:
        await server.wait_ready()
        with tempfile.TemporaryDirectory() as profile:
            browser = await asyncio.create_subprocess_exec(
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-audio-capture={SPEECH}",
                "--autoplay-policy=no-user-gesture-required",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                f"--user-data-dir={profile}",
                "--remote-debugging-port=0",
                f"http://127.0.0.1:{server.port}/?autostart=1",
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )
            assert browser.stderr is not None
            drainer: asyncio.Task | None = None
            try:
                async with asyncio.timeout(60):
                    url = await page_target(browser.stderr)
                    drainer = asyncio.create_task(drain(browser.stderr), name="test.drain_browser_log")
                    async with connect(url, max_size=None) as ws:
                        page = DevTools(ws)
                        # the page announces every stats change; wait (bounded by the timeout above)
                        stats = json.loads(
                            await page.evaluate(
                                WAIT_STATS % "s.received >= 25 && s.latencyMs !== null", await_promise=True
                            )
                        )
                        assert stats and stats["received"] >= 25, stats
                        assert stats["peak"] > 0.01, "converted audio came back silent"
                        assert not stats["errors"], stats["errors"]
                        shown = await page.evaluate("document.getElementById('latency').textContent")
                        assert re.fullmatch(r"\d+", shown), shown
                        assert 0 < float(shown) < 5000
                        # a control change travels as UpdateSettingsFrame and is accepted mid-stream
                        await page.evaluate(
                            "const p = document.getElementById('pitch'); p.value = '-5';"
                            "p.dispatchEvent(new Event('input'))"
                        )
                        await page.evaluate("document.getElementById('stop').click()")
                        closed = json.loads(
                            await page.evaluate(WAIT_STATS % "s.closeCode !== null", await_promise=True)
                        )
                        assert closed["closeCode"] == 1000
                        assert not json.loads(await page.evaluate("JSON.stringify(window.apipelineStats)"))[
                            "errors"
                        ]
            finally:
                browser.terminate()
                await browser.wait()
                if drainer is not None:
                    await drainer
        await server.wait_idle()
        assert server.stats.outcomes[("websocket", "ok")] == 1
