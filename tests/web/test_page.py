"""The browser page: served files, and the real voice changer driven from headless Chromium.

The browser tests run the page as a person would: Chromium's fake microphone plays a voiced test signal
made here, the page connects by itself (``?autostart=1``), and the test watches the page through the
DevTools protocol: it waits on the page's own "apipeline-stats" events (never on sleeps), takes
screenshots (desktop and phone sizes), checks that the level meters and the pitch trace move, records
what the page played back and measures its pitch shift with the project's F0 estimator.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import re
import shutil
import struct
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from websockets.asyncio.client import connect

from apipeline.audio.f0 import get_f0_estimator
from apipeline.audio.io import write_audio
from apipeline.frames import (
    AudioRawFrame,
    EndFrame,
    ErrorFrame,
    MetricsFrame,
    StartInterruptionFrame,
    SyncFrame,
    SyncNotifyFrame,
    TextFrame,
    UpdateSettingsFrame,
)
from apipeline.serializers import ProtobufFrameSerializer
from apipeline.transports import ServerConfig, VoiceChangerFactory, WebsocketServer
from apipeline.transports.webrtc_signalling import WebRTCConfig
from tests.transports.test_websocket import http_get

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
WEB = Path(__file__).resolve().parents[2] / "apipeline" / "web"
VOICE_F0 = 150.0  # Hz, the test voice's mean F0


async def test_page_and_scripts_are_served():
    async with WebsocketServer(VoiceChangerFactory(), ServerConfig(port=0, ping_interval=None)) as server:
        status, head, body = await http_get(server.port, "/")
        assert status == 200 and "text/html" in head and '<script type="module" src="/app.js">' in body
        assert '<link rel="stylesheet" href="/style.css">' in body
        for path, needle, kind in (
            ("/app.js", "audioWorklet.addModule", "text/javascript"),
            ("/worklet.js", 'registerProcessor("meter"', "text/javascript"),
            ("/protocol.js", "export function encodeAudio", "text/javascript"),
            ("/style.css", "@media (max-width", "text/css"),
        ):
            status, head, body = await http_get(server.port, path)
            assert status == 200 and kind in head and needle in body, path
        assert (await http_get(server.port, "/../pyproject.toml"))[0] == 404


def test_the_page_loads_nothing_from_elsewhere():
    """No CDN, no web font, no remote script: every URL the page names is one the server serves."""
    for path in sorted(WEB.iterdir()):
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"""["'(]\s*(https?:)?//""", text), f"{path.name} names a remote resource"
        assert "@import" not in text, path.name
    html = (WEB / "index.html").read_text(encoding="utf-8")
    for url in re.findall(r"""(?:src|href)="([^"]+)\"""", html):
        assert url.startswith("/") and (WEB / url.lstrip("/")).is_file(), url
    for script in ("app.js", "worklet.js"):
        for url in re.findall(r"""(?:from |addModule\()["']([^"']+)["']""", (WEB / script).read_text()):
            assert url.startswith("/") and (WEB / url.lstrip("/")).is_file(), url


def test_presets_and_sliders_stay_inside_the_served_schema():
    """Every preset, as the page sends it live (the two F0-mapping keys null unless set), passes the
    served voice changer's schema; the sliders cannot leave its bounds."""
    from apipeline.transports.voice_changer_params import VOICE_CHANGER_SESSION_PARAMS as schema

    app = (WEB / "app.js").read_text(encoding="utf-8")
    block = re.search(r"const PRESETS = \[(.*?)\];", app, re.S)
    assert block is not None
    presets = re.findall(r"\{ name: \"([^\"]+)\", ([^}]*) \}", block.group(1))
    assert {"Natural", "Deeper", "Higher", "Robot-ish"} <= {name for name, _ in presets}
    for name, body in presets:
        sent = {"target_f0_mean": None, "target_f0_range": None}
        sent |= {k: float(v) for k, v in re.findall(r"(\w+): (-?[\d.]+)", body)}
        assert schema.check(sent, live=True) == sent, name
    html = (WEB / "index.html").read_text(encoding="utf-8")
    for name in ("pitch", "formant"):
        tag = re.search(rf'<input id="{name}" [^>]*>', html)
        assert tag is not None
        low, high = (float(re.search(rf'{k}="([^"]+)"', tag.group(0)).group(1)) for k in ("min", "max"))
        schema.check({name: low}, live=True)
        schema.check({name: high}, live=True)


def voice_wav(directory: Path, sample_rate: int = 16000, seconds: float = 4.0) -> Path:
    """A voiced test signal: syllables of a harmonic voice (F0 gliding ±¼ semitone around VOICE_F0,
    three formants) separated by silences, so levels rise and fall and the F0 is known."""
    t = np.arange(int(sample_rate * seconds)) / sample_rate
    f0 = VOICE_F0 * 2.0 ** (np.sin(2 * np.pi * 0.7 * t) / 48)
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate
    voice = np.zeros_like(t)
    for k in range(1, int(7000 / VOICE_F0)):
        freq = k * f0
        envelope = sum(
            a * np.exp(-(((freq - c) / w) ** 2))
            for c, w, a in ((700, 150, 1), (1200, 200, 0.6), (2600, 300, 0.3))
        )
        voice += (envelope + 0.05) / k * np.sin(k * phase) * (freq < sample_rate / 2 - 500)
    period, voiced = 0.65, 0.45  # a syllable every 0.65 s, 0.45 s of it voiced, faded in and out over 30 ms
    within = np.mod(t, period)
    gain = np.clip(np.minimum(within, voiced - within) / 0.03, 0, 1)
    voice *= gain * 0.5 / np.max(np.abs(voice))
    path = directory / "voice.wav"
    write_audio(path, voice.astype(np.float32), sample_rate, subtype="PCM_16")
    return path


def median_f0(samples: np.ndarray, sample_rate: int) -> float:
    track = get_f0_estimator("harvest", hop_seconds=0.01, f0_min=60.0, f0_max=800.0).estimate(
        samples, sample_rate
    )
    voiced = track.f0_hz[track.voiced & (track.f0_hz > 0)]
    assert len(voiced) >= 50, f"only {len(voiced)} voiced frames"
    return float(np.median(voiced))


def save_png(path: Path, data: bytes) -> tuple[int, int]:
    """Keep a screenshot (under the test's tmp dir) and check it is a real PNG; its (width, height)."""
    path.write_bytes(data)
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    assert width > 0 and height > 0 and len(data) > 1000
    return width, height


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

# How many pixels of the pitch trace's canvas are drawn in the mic's and in the output's colour.
TRACE_PIXELS = """(() => {
  const c = document.getElementById("trace"), g = c.getContext("2d");
  const px = g.getImageData(0, 0, c.width, c.height).data;
  const near = (i, [r, g, b]) =>
    Math.abs(px[i] - r) + Math.abs(px[i + 1] - g) + Math.abs(px[i + 2] - b) < 60 && px[i + 3] > 200;
  let input = 0, output = 0;
  for (let i = 0; i < px.length; i += 4) {
    if (near(i, [79, 209, 197])) input++;
    if (near(i, [246, 173, 85])) output++;
  }
  return { input, output };
})()"""


CLICK_PRESET = "[...document.querySelectorAll('#presets button')].find((b) => b.textContent === '%s').click()"


class DevTools:
    """The least of the Chrome DevTools protocol: call a method, evaluate an expression in the page."""

    def __init__(self, ws) -> None:
        self.ws = ws
        self.next_id = 0

    async def call(self, method: str, **params: Any) -> dict:
        self.next_id += 1
        await self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            reply = json.loads(await self.ws.recv())
            if reply.get("id") == self.next_id:
                return reply

    async def evaluate(self, expression: str, *, await_promise: bool = False):
        while True:
            reply = await self.call(
                "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=await_promise
            )
            if "Execution context was destroyed" in reply.get("error", {}).get("message", ""):
                continue  # the page (re)loaded while we waited: ask the new page; bounded by the caller
            assert "result" in reply and "exceptionDetails" not in reply["result"], reply
            return reply["result"]["result"].get("value")

    async def wait_stats(self, condition: str, timeout: float | None = None) -> dict:
        """The page's stats once ``condition`` holds; with ``timeout``, an AssertionError showing them
        if it does not hold by then (the caller's outer timeout bounds every wait anyway)."""
        try:
            async with asyncio.timeout(timeout):
                return json.loads(await self.evaluate(WAIT_STATS % condition, await_promise=True))
        except TimeoutError:
            pass
        stats = await self.evaluate("JSON.stringify(window.apipelineStats)")
        raise AssertionError(f"not within {timeout} s: {condition}; the page: {stats}")

    async def screenshot(self, path: Path) -> tuple[int, int]:
        reply = await self.call("Page.captureScreenshot", format="png")
        return save_png(path, base64.b64decode(reply["result"]["data"]))

    async def record(self, seconds: float, gate_db: float = -40.0) -> tuple[np.ndarray, int]:
        """``seconds`` of sound the page played back (recorded in the page after the transport, render
        quanta quieter than ``gate_db`` skipped: a server that falls behind real time leaves gaps)."""
        got = await self.evaluate(f"window.apipeline.record({seconds}, {gate_db})", await_promise=True)
        pcm = np.frombuffer(base64.b64decode(got["pcm16"]), dtype="<i2").astype(np.float32) / 32768
        return pcm, int(got["sampleRate"])


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


@contextlib.asynccontextmanager
async def open_page(url: str, microphone: Path | None = None) -> AsyncIterator[DevTools]:
    """Headless Chromium on ``url`` with ``microphone`` as its (fake) capture device; yields DevTools."""
    assert CHROMIUM is not None
    fake = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]
    media = [*fake, f"--use-file-for-fake-audio-capture={microphone}"] if microphone is not None else []
    with tempfile.TemporaryDirectory() as profile:
        browser = await asyncio.create_subprocess_exec(
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            *media,
            "--autoplay-policy=no-user-gesture-required",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--window-size=1280,1000",
            f"--user-data-dir={profile}",
            "--remote-debugging-port=0",
            url,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        assert browser.stderr is not None
        drainer: asyncio.Task | None = None
        try:
            target = await page_target(browser.stderr)
            drainer = asyncio.create_task(drain(browser.stderr), name="test.drain_browser_log")
            async with connect(target, max_size=None) as ws:
                yield DevTools(ws)
        finally:
            browser.terminate()
            await browser.wait()
            if drainer is not None:
                await drainer


# The page's codec (protocol.js) against the Python serializer, both ways, in the browser.
CODEC = """(async (inbound) => {
  const p = await import("/protocol.js");
  const bytes = (b64) => Uint8Array.from(atob(b64), (c) => c.charCodeAt(0)).buffer;
  const b64 = (u8) => btoa(String.fromCharCode(...u8));
  const decoded = inbound.map((m) => {
    const d = p.decodeEnvelope(bytes(m));
    if (d.samples) d.samples = Array.from(d.samples);
    return d;
  });
  const outbound = [
    p.encodeAudio(new Float32Array([0.5, -0.25, 1]), 44100, 123456789012345),
    p.encodeSettings({ pitch: -5, formant: 0.88, target_f0_mean: null }),
    p.encodeSync(2 ** 52 + 7),
    p.encodeEnd(),
  ].map(b64);
  return JSON.stringify({ decoded, outbound });
})(%s)"""


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)")
@pytest.mark.timeout(60)
async def test_the_pages_codec_speaks_the_wire_format():
    ser = ProtobufFrameSerializer()
    stereo = np.array([[1000, -1000], [-32768, 32767]], dtype=np.int16)
    frames = [
        AudioRawFrame(audio=stereo, sample_rate=8000, num_channels=2),
        TextFrame(text="héllo wörld", metadata={"chat": "bot_end", "interrupted": True}),
        ErrorFrame(error="bad session settings: pitch", fatal=True),
        SyncNotifyFrame(),
        StartInterruptionFrame(),
        EndFrame(),
        MetricsFrame(data=[{"processor": "x", "ttfb": 0.5}]),
    ]
    frames[0].pts = 2**40 + 3
    frames[3].client_pts = 2**52 + 7
    inbound = [base64.b64encode(ser.serialize(f)).decode() for f in frames]
    async with WebsocketServer(VoiceChangerFactory(), ServerConfig(port=0, ping_interval=None)) as server:
        async with asyncio.timeout(45), open_page(f"http://127.0.0.1:{server.port}/") as page:
            await page.wait_stats("window.apipelineReady")
            got = json.loads(await page.evaluate(CODEC % json.dumps(inbound), await_promise=True))
    audio, text, error, notify, interruption, end, metrics = got["decoded"]
    assert audio["kind"] == "audio" and audio["sampleRate"] == 8000 and audio["pts"] == 2**40 + 3
    assert audio["samples"] == [1000 / 32768, -32768 / 32768]  # the first channel
    assert text["kind"] == "text" and text["text"] == "héllo wörld"
    assert text["metadata"] == {"chat": "bot_end", "interrupted": True}
    assert (error["kind"], error["error"], error["fatal"]) == ("error", "bad session settings: pitch", True)
    assert notify["kind"] == "sync_notify" and notify["clientPts"] == 2**52 + 7
    assert [interruption["kind"], end["kind"]] == ["interruption", "end"]
    assert metrics["kind"] == "metrics" and metrics["data"] == [{"processor": "x", "ttfb": 0.5}]
    sent = [ser.deserialize(base64.b64decode(m)) for m in got["outbound"]]
    assert (
        isinstance(sent[0], AudioRawFrame) and sent[0].sample_rate == 44100 and sent[0].pts == 123456789012345
    )
    np.testing.assert_array_equal(np.asarray(sent[0].audio).reshape(-1), np.float32([0.5, -0.25, 1]))
    assert isinstance(sent[1], UpdateSettingsFrame)
    assert sent[1].settings == {"pitch": -5, "formant": 0.88, "target_f0_mean": None}
    assert isinstance(sent[2], SyncFrame) and sent[2].client_pts == 2**52 + 7
    assert isinstance(sent[3], EndFrame)


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)")
@pytest.mark.timeout(90)
async def test_browser_shows_a_refusal_and_passes_the_token(tmp_path):
    """A wrong token: the page says why and can start again. The right one (from the page's URL) opens
    both the WebRTC configuration and the offer."""
    pytest.importorskip("aiortc")
    config = ServerConfig(port=0, ping_interval=None, token="s3cret", webrtc=WebRTCConfig(peer_timeout=5.0))
    async with WebsocketServer(VoiceChangerFactory(), config) as server:
        await server.wait_ready()
        base = f"http://127.0.0.1:{server.port}/?autostart=1&token="
        async with asyncio.timeout(60), open_page(base + "wrong", voice_wav(tmp_path)) as page:
            refused = await page.wait_stats("s.state === 'error'")
            assert refused["transport"] is None and refused["webrtcOffered"] is False  # /webrtc/config: 403
            assert await page.evaluate("document.getElementById('start').disabled") is False
            shown = await page.evaluate("document.getElementById('status').textContent")
            assert shown.startswith("the server refused the session (403: ") and "token" in shown, shown
            await page.call("Page.navigate", url=base + "s3cret")
            started = await page.wait_stats("s.state === 'connected' && s.output.updates > 10")
            assert started["transport"] == "WebRTC" and not started["errors"], started
            await page.evaluate("document.getElementById('stop').click()")
            await page.wait_stats("s.closeCode !== null")
        await server.wait_idle()
        assert server.stats.outcomes[("webrtc", "ok")] == 1


async def check_meters_and_trace(page: DevTools, shots: Path) -> dict:
    """Audio flows both ways: the meters and the pitch trace move, and screenshots show it."""
    stats = await page.wait_stats(
        "s.state === 'connected' && s.input.voiced >= 40 && s.output.voiced >= 40"
        " && s.input.dbMax - s.input.dbMin > 12 && s.output.dbMax - s.output.dbMin > 12"
    )
    assert not stats["errors"], stats["errors"]
    # the read-outs follow the measurements: a level in dB, the meter bar drawn at some width
    widths = set()
    for _ in range(3):  # three states of the meter, each taken after the page announced new measurements
        await page.wait_stats(f"s.input.updates > {stats['input']['updates'] + 10}")
        stats = json.loads(await page.evaluate("JSON.stringify(window.apipelineStats)"))
        widths.add(
            await page.evaluate("document.getElementById('meter-in').style.getPropertyValue('--level')")
        )
    assert len(widths) > 1, f"the input meter did not move: {widths}"
    pixels = await page.evaluate(TRACE_PIXELS)
    assert pixels["input"] > 50 and pixels["output"] > 50, pixels  # both pitch lines are drawn
    width, height = await page.screenshot(shots / "desktop.png")
    assert width >= 1000
    # a phone: nothing wider than the screen, and the screenshot is phone-sized
    await page.call(
        "Emulation.setDeviceMetricsOverride", width=390, height=844, deviceScaleFactor=2, mobile=True
    )
    assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    width, height = await page.screenshot(shots / "phone.png")
    assert (width, height) == (780, 1688)
    await page.call("Emulation.clearDeviceMetricsOverride")
    return stats


async def check_pitch_shift(page: DevTools, reference_f0: float, semitones: float) -> None:
    """What the page played back is the test voice shifted by ``semitones`` (within 50 cents)."""
    samples, rate = await page.record(2.0)
    cents = 1200 * np.log2(median_f0(samples, rate) / reference_f0)
    assert abs(cents - 100 * semitones) < 50, f"asked for {semitones} semitones, heard {cents:.0f} cents"


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)")
@pytest.mark.timeout(150)
async def test_browser_voice_changer_over_websocket(tmp_path):
    microphone = voice_wav(tmp_path)
    reference = median_f0(*_read(microphone))
    assert abs(1200 * np.log2(reference / VOICE_F0)) < 30  # the estimator hears the test voice right
    config = ServerConfig(port=0, ping_interval=None)
    async with WebsocketServer(VoiceChangerFactory(), config) as server:
        await server.wait_ready()
        url = f"http://127.0.0.1:{server.port}/?autostart=1&transport=websocket"
        async with asyncio.timeout(120), open_page(url, microphone) as page:
            stats = await check_meters_and_trace(page, tmp_path)
            assert stats["transport"] == "WebSocket" and stats["app"] == "voice-changer"
            assert await page.evaluate("document.getElementById('transport').textContent") == "WebSocket"
            assert re.fullmatch(
                r"\d+", shown := await page.evaluate("document.getElementById('latency').textContent")
            ), shown
            assert (
                float(shown) > 0 and round(stats["latencyMs"]) >= 0
            )  # no speed target: the machine is shared
            await check_pitch_shift(page, reference, 4)  # the page's starting voice: +4 semitones
            # "Robot-ish": every F0 mapped to one flat 110 Hz, heard by the page's own pitch read-out
            await page.evaluate(CLICK_PRESET % "Robot-ish")
            await page.wait_stats("Math.abs(12 * Math.log2(s.output.medianF0 / 110)) < 1")
            # a preset, live: one UpdateSettingsFrame mid-stream; the voice that comes back follows it
            await page.evaluate(CLICK_PRESET % "Deeper")
            assert await page.evaluate("document.getElementById('pitch').value") == "-5"
            # the page's own pitch read-out hears the change first (the server may lag behind real time)
            low, high = reference * 2 ** (-6 / 12), reference * 2 ** (-4 / 12)
            await page.wait_stats(f"s.output.medianF0 > {low} && s.output.medianF0 < {high}")
            await check_pitch_shift(page, reference, -5)
            await page.evaluate("document.getElementById('stop').click()")
            closed = await page.wait_stats("s.closeCode !== null")
            assert closed["closeCode"] == 1000 and not closed["errors"], closed
        await server.wait_idle()
        assert server.stats.outcomes[("websocket", "ok")] == 1


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)")
@pytest.mark.timeout(150)
async def test_browser_voice_changer_over_webrtc(tmp_path):
    """The page takes WebRTC when the server offers it: Opus both ways, frames on the data channel."""
    pytest.importorskip("aiortc")
    microphone = voice_wav(tmp_path)
    reference = median_f0(*_read(microphone))
    # the operator's session rate: 16 kHz costs the voice changer a third of 48 kHz (docs/benchmarks.md)
    config = ServerConfig(
        port=0, ping_interval=None, webrtc=WebRTCConfig(peer_timeout=5.0, sample_rate=16000)
    )
    async with WebsocketServer(VoiceChangerFactory(), config) as server:
        await server.wait_ready()
        url = f"http://127.0.0.1:{server.port}/?autostart=1"
        async with asyncio.timeout(120), open_page(url, microphone) as page:
            stats = await check_meters_and_trace(page, tmp_path)
            assert stats["transport"] == "WebRTC" and stats["webrtcError"] is None, stats
            assert await page.evaluate("document.getElementById('transport').textContent") == "WebRTC"
            # the round trip measured over the data channel (SyncFrame out, SyncNotifyFrame back)
            rtt = await page.wait_stats("s.latencySource === 'RTT'")
            assert rtt["latencyMs"] >= 0
            assert await page.evaluate("document.getElementById('latency-label').textContent") == "RTT"
            await check_pitch_shift(page, reference, 4)
            # the microphone list is filled, and echo cancellation switches mid-stream: a new capture
            # track replaces the sent one (RTCRtpSender.replaceTrack) and the voice keeps coming back
            assert await page.evaluate("document.getElementById('mic').options.length") >= 2
            assert stats["microphone"]["echoCancellation"] is False
            await page.evaluate("const c = document.getElementById('aec'); c.click()")
            switched = await page.wait_stats("s.microphoneChanges === 1")
            assert switched["microphone"]["echoCancellation"] is True
            voiced = switched["output"]["voiced"]
            await page.wait_stats(
                f"s.output.voiced > {voiced + 25} && s.input.updates > {switched['input']['updates'] + 25}"
            )
            # a live change travels on the data channel
            await page.evaluate(CLICK_PRESET % "Chipmunk")
            low, high = reference * 2 ** (9 / 12), reference * 2 ** (11 / 12)
            await page.wait_stats(f"s.output.medianF0 > {low} && s.output.medianF0 < {high}")
            await check_pitch_shift(page, reference, 10)
            await page.evaluate("document.getElementById('stop').click()")
            closed = await page.wait_stats("s.closeCode !== null")
            shown = await page.evaluate("document.getElementById('status').textContent")
            assert closed["state"] == "idle" and not closed["errors"], (shown, closed)
            # 1000: the server's EndFrame arrived before it closed the connection (the server waits for
            # the page to close its side after a page-initiated end; its close used to overtake the
            # EndFrame under load, and the page saw 1006)
            assert closed["closeCode"] == 1000, (shown, closed)
        await server.wait_idle()
        assert server.stats.outcomes[("webrtc", "ok")] == 1


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)")
@pytest.mark.timeout(600)
async def test_browser_talks_to_the_bot(tmp_path):
    """``serve --app chatbot``: the page turns into a conversation; a spoken question (eSpeak NG, the
    fake microphone) comes back as the user's transcript, the bot's answer as text and as audio the page
    plays, over WebRTC. The engines are the real local ones (loaded once per test process)."""
    pytest.importorskip("aiortc")
    from apipeline.services.espeak import synthesize_speech
    from apipeline.transports.chatbot import ChatbotFactory

    rate = 16000
    question = synthesize_speech("what is two plus two", sample_rate=rate)
    pause = np.zeros(rate * 30, np.float32)  # the fake microphone loops the file: a question every 30 s
    microphone = tmp_path / "question.wav"
    write_audio(microphone, np.concatenate([np.zeros(rate // 2, np.float32), question, pause]), rate)
    config = ServerConfig(port=0, ping_interval=None, webrtc=WebRTCConfig(peer_timeout=5.0))
    async with WebsocketServer(ChatbotFactory(), config) as server:
        await asyncio.wait_for(server.wait_ready(), 540)  # the LLM's first load (cached for the process)
        async with (
            asyncio.timeout(120),
            open_page(f"http://127.0.0.1:{server.port}/?autostart=1", microphone) as page,
        ):
            started = await page.wait_stats("s.state === 'connected'")
            assert started["app"] == "chatbot" and started["transport"] == "WebRTC", started
            assert await page.evaluate("document.getElementById('chat-card').hidden") is False
            assert await page.evaluate("document.getElementById('voice-card').hidden") is True
            assert started["microphone"]["echoCancellation"] is True  # a bot that talks needs it
            said = await page.wait_stats(
                "s.conversation.some((m) => m.role === 'user' && m.text.trim())"
                " && s.conversation.some((m) => m.role === 'bot' && m.text.trim())"
                " && s.output.dbMax > -35",  # the bot's voice was played (silence otherwise)
                timeout=90,
            )
            user = next(m["text"] for m in said["conversation"] if m["role"] == "user")
            bot = next(m["text"] for m in said["conversation"] if m["role"] == "bot")
            # pocketsphinx hears the question through Opus and echo cancellation ("what is too close to",
            # once): at least one of its words, in a bubble of its own
            assert {"what", "is", "two", "plus"} & set(user.lower().split()), said["chatEvents"]
            assert bot.strip(), said["chatEvents"]
            shown = await page.evaluate("document.getElementById('conversation').textContent")
            assert user in shown and bot.split()[0] in shown
            await page.screenshot(tmp_path / "chatbot.png")
            await page.evaluate("document.getElementById('stop').click()")
            closed = await page.wait_stats("s.closeCode !== null")
            assert closed["state"] == "idle" and not closed["errors"], closed
        await server.wait_idle()


def _read(path: Path) -> tuple[np.ndarray, int]:
    from apipeline.audio.io import read_audio

    audio, rate = read_audio(path)
    return audio.reshape(len(audio), -1)[:, 0].astype(np.float32), rate
