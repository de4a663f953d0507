"""Mouth-to-ear latency over loopback, WebRTC next to WebSocket, and the bandwidth of a session.

One in-process ``apipeline serve`` server (WebSocket at ``/ws``, WebRTC signalling at
``/webrtc/offer``) serves a pass-through pipeline (or, with ``--voice-changer``, the voice changer at
``--pitch 0``). Each transport gets the same input: a click train (a 4 ms 2 kHz burst every
``--period`` s) streamed in real time in 20 ms frames. For every click the script takes

* sent: the moment the 20 ms frame holding the click's first sample was handed to the transport, plus
  the sample's offset in that frame (so the capture device's own 20 ms buffering is not counted);
* heard: the moment the frame holding the click's echo arrived at the client, plus its offset in that
  frame (when a player that starts each frame on arrival would play it);

and prints the p50/p99 of heard - sent per transport, with the click count paired (a click lost, or
heard later than 0.9 periods after it was sent, is not). Then the bandwidth of a session carrying
speech (``examples/data/speech.wav`` at the session rate), bytes per second each way: WebRTC's UDP
payload (RTP+RTCP+SCTP+ICE, from aiortc's transport statistics; Opus at aiortc's 96 kbit/s VBR
stereo setting), WebSocket's message bytes (float32 PCM in protobuf, without TCP/IP headers).

    python benchmarks/webrtc_latency.py [--seconds 20] [--rate 48000] [--voice-changer]

Both ends are aiortc: the server's receiver and the Python client's receiver each hold
``--jitter-frames`` later Opus frames before decoding one (aiortc's own default is 4 = 80 ms each;
apipeline sets 1, see ``set_audio_jitter_frames``). A browser's downlink goes through its own adaptive
jitter buffer (NetEq) instead of the client's, so for a browser only the uplink and output-queue hops
below carry over. The WebRTC row is split into hops, from taps inside the (in-process) server:

* uplink: client send → the pipeline got the click (client Opus encoder, RTP, the server's jitter
  buffer, decoder, resampler);
* output queue: the pipeline → the server's AudioOutputTrack handed it to aiortc's encoder (waiting for
  the track's 20 ms tick, plus any backlog standing in its queue);
* downlink: → heard by the client (server Opus encoder, RTP, the client's jitter buffer, decoder).

Hop times come from the first sample of each click above 0.05 (about 0.4 ms into the 4 ms burst), the
total from the matched filter, so the hops add up to the total within about a millisecond.
``--jitter-frames 4 --keep-standing-queue`` reproduces the behaviour before the fix (aiortc's depth on
both ends, an output queue that keeps any backlog).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from apipeline.client.webrtc import WebRTCClient, http_signaller
from apipeline.frames import AudioRawFrame, EndFrame, Frame
from apipeline.pipeline.pipeline import Pipeline
from apipeline.processors import FrameDirection, FrameProcessor
from apipeline.serializers import ProtobufFrameSerializer
from apipeline.transports import CallableFactory, ServerConfig, WebsocketServer
from apipeline.transports.webrtc import JITTER_FRAMES, OPUS_RATE, AudioOutputTrack
from apipeline.transports.webrtc_signalling import WebRTCConfig

BURST_S = 0.004
SPEECH = str(Path(__file__).resolve().parents[1] / "examples/data/speech.wav")
SER = ProtobufFrameSerializer()


#: per hop, the (monotonic time, samples) blocks the WebRTC run saw pass there (see ``Taps``)
class Taps:
    """Where the WebRTC run's audio was seen, block by block, to split the latency into hops."""

    def __init__(self) -> None:
        self.pipeline_in: list[tuple[float, np.ndarray]] = []  # the pipeline got it (Opus decoded, resampled)
        self.track_out: list[tuple[float, np.ndarray]] = []  # AudioOutputTrack.recv handed it to the encoder
        self.active = False

    def clear(self) -> None:
        self.pipeline_in.clear()
        self.track_out.clear()


TAPS = Taps()


class Passthrough(FrameProcessor):
    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if TAPS.active and isinstance(frame, AudioRawFrame):
            TAPS.pipeline_in.append((time.monotonic(), np.asarray(frame.audio, np.float32).reshape(-1)))
        await self.push_frame(frame, direction)


def _tap_output_track() -> None:
    """Record when the server's output track hands each 20 ms frame to aiortc's encoder (benchmark only)."""
    original = AudioOutputTrack.recv

    async def recv(self: AudioOutputTrack) -> object:
        frame = await original(self)
        if TAPS.active:
            data = frame.to_ndarray().reshape(-1).astype(np.float32) / 32768.0  # type: ignore[attr-defined]
            TAPS.track_out.append((time.monotonic(), data))
        return frame

    AudioOutputTrack.recv = recv  # type: ignore[method-assign]


def onsets(blocks: list[tuple[float, np.ndarray]], rate: int, period: float) -> np.ndarray:
    """When each click passed a tap: its block's time plus the offset of its first loud sample."""
    if not blocks:
        return np.zeros(0)
    y = np.concatenate([b for _, b in blocks])
    starts = np.cumsum([0] + [b.size for _, b in blocks[:-1]])
    loud = np.flatnonzero(np.abs(y) > 0.05)
    first = []
    last = -(10**12)
    for i in loud:
        if i - last > period * rate / 2:
            first.append(i)
        last = i
    arrivals = [(t, int(s)) for (t, _), s in zip(blocks, starts, strict=True)]
    return heard_times(arrivals, np.asarray(first, int), rate)


def passthrough_factory() -> CallableFactory:
    return CallableFactory(lambda spec: Pipeline([Passthrough()]), needs_audio_format=True)


def click_train(seconds: float, rate: int, period: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The signal, the burst template, and each click's first sample."""
    n = int(seconds * rate)
    t = np.arange(int(BURST_S * rate)) / rate
    burst = (0.5 * np.sin(2 * np.pi * 2000 * t) * np.hanning(t.size)).astype(np.float32)
    starts = np.arange(int(0.5 * rate), n - burst.size, int(period * rate))
    x = np.zeros(n, np.float32)
    for s in starts:
        x[s : s + burst.size] = burst
    return x, burst, starts


def find_clicks(y: np.ndarray, burst: np.ndarray, period_samples: int) -> np.ndarray:
    """First sample of each burst in ``y``: envelope of the matched filter, peaks a period apart."""
    if y.size < burst.size:
        return np.zeros(0, int)
    corr = np.abs(np.correlate(y, burst, mode="valid"))
    threshold = 0.3 * corr.max()
    peaks = []
    i = 0
    while i < corr.size:
        if corr[i] > threshold:
            window = corr[i : i + period_samples // 2]
            peaks.append(i + int(np.argmax(window)))
            i += period_samples // 2
        else:
            i += 1
    return np.asarray(peaks, int)


def heard_times(arrivals: list[tuple[float, int]], samples: np.ndarray, rate: int) -> np.ndarray:
    """When each sample index arrived: its block's arrival time plus its offset in the block."""
    starts = np.asarray([a[1] for a in arrivals])
    times = np.asarray([a[0] for a in arrivals])
    k = np.searchsorted(starts, samples, side="right") - 1
    return times[k] + (samples - starts[k]) / rate


def pair(sent: np.ndarray, heard: np.ndarray, period: float) -> np.ndarray:
    """Latency of each sent click matched with the first heard click after it (within 0.9 periods)."""
    out = []
    j = 0
    for s in sent:
        while j < heard.size and heard[j] < s:
            j += 1
        if j < heard.size and heard[j] - s < 0.9 * period:
            out.append(heard[j] - s)
            j += 1
    return np.asarray(out)


async def run_webrtc(
    port: int, x: np.ndarray, rate: int, burst, starts, period: float, jitter_frames: int = JITTER_FRAMES
) -> dict:
    signal = http_signaller(f"http://127.0.0.1:{port}/webrtc/offer?sample_rate={rate}")
    client = WebRTCClient(signal, jitter_frames=jitter_frames)
    TAPS.clear()
    TAPS.active = True
    try:
        result = await client.stream(x, rate, tail_s=0.5, probe_every_s=None)
    finally:
        TAPS.active = False
    assert result.sent_at is not None
    sent = result.sent_at + starts / rate
    y = result.audio
    template = burst if rate == 48000 else _resample(burst, rate, 48000)
    found = find_clicks(y, template, int(period * 48000))
    heard = heard_times(result.arrivals, found, 48000) if found.size else np.zeros(0)
    lat = pair(sent, heard, period)
    # per hop: each tap's click times paired with the previous tap's
    at_in = onsets(TAPS.pipeline_in, rate, period)
    at_out = onsets(TAPS.track_out, OPUS_RATE, period)
    hops = {
        "uplink": pair(sent, at_in, period),  # client encoder, RTP, server jitter buffer, decoder
        "output queue": pair(at_in, at_out, period),  # pipeline + waiting for the track's 20 ms tick
        "downlink": pair(at_out, heard, period),  # server encoder, RTP, client jitter buffer, decoder
    }
    seconds = max(result.connected_s, 1e-9)
    return {
        "latency_s": lat,
        "hops_s": hops,
        "clicks": (lat.size, starts.size),
        "up_Bps": result.bytes_sent / seconds,
        "down_Bps": result.bytes_received / seconds,
    }


def _resample(x: np.ndarray, a: int, b: int) -> np.ndarray:
    import soxr

    return soxr.resample(x, a, b).astype(np.float32)


async def run_websocket(port: int, x: np.ndarray, rate: int, burst, starts, period: float) -> dict:
    from websockets.asyncio.client import connect

    step = rate // 50
    arrivals: list[tuple[float, int]] = []
    blocks: list[np.ndarray] = []
    up = down = 0
    async with connect(
        f"ws://127.0.0.1:{port}/ws?sample_rate={rate}&channels=1", compression=None, max_size=None
    ) as ws:

        async def receive() -> None:
            nonlocal down
            received = 0
            async for message in ws:
                now = time.monotonic()
                down += len(message)
                frame = SER.deserialize(message)
                if isinstance(frame, AudioRawFrame):
                    a = np.asarray(frame.audio, np.float32).reshape(-1)
                    arrivals.append((now, received))
                    blocks.append(a)
                    received += a.size
                elif isinstance(frame, EndFrame):
                    return

        reader = asyncio.create_task(receive())
        start = time.monotonic()
        for pos in range(0, x.size, step):
            wait = start + pos / rate - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            message = SER.serialize(AudioRawFrame(x[pos : pos + step], sample_rate=rate))
            up += len(message)
            await ws.send(message)
        await ws.send(SER.serialize(EndFrame()))
        await asyncio.wait_for(reader, 30)
        seconds = time.monotonic() - start
    y = np.concatenate(blocks) if blocks else np.zeros(0, np.float32)
    found = find_clicks(y, burst, int(period * rate))
    heard = heard_times(arrivals, found, rate) if found.size else np.zeros(0)
    lat = pair(start + starts / rate, heard, period)
    return {
        "latency_s": lat,
        "clicks": (lat.size, starts.size),
        "up_Bps": up / seconds,
        "down_Bps": down / seconds,
    }


def _bandwidth(name: str, r: dict) -> dict:
    row = {"kbit_s_up": round(r["up_Bps"] * 8 / 1000, 1), "kbit_s_down": round(r["down_Bps"] * 8 / 1000, 1)}
    print(f"{name:10s} up {row['kbit_s_up']} kbit/s  down {row['kbit_s_down']} kbit/s", flush=True)
    return row


def summary(name: str, r: dict) -> dict:
    lat = r["latency_s"] * 1000
    row = {
        "transport": name,
        "clicks": f"{r['clicks'][0]}/{r['clicks'][1]}",
        "p50_ms": round(float(np.percentile(lat, 50)), 1) if lat.size else None,
        "p99_ms": round(float(np.percentile(lat, 99)), 1) if lat.size else None,
        "max_ms": round(float(lat.max()), 1) if lat.size else None,
        "kbit_s_up": round(r["up_Bps"] * 8 / 1000, 1),
        "kbit_s_down": round(r["down_Bps"] * 8 / 1000, 1),
    }
    print(
        f"{name:10s} clicks {row['clicks']:>7s}  p50 {row['p50_ms']} ms  p99 {row['p99_ms']} ms  "
        f"max {row['max_ms']} ms  up {row['kbit_s_up']} kbit/s  down {row['kbit_s_down']} kbit/s",
        flush=True,
    )
    for hop, values in r.get("hops_s", {}).items():
        ms = values * 1000
        if ms.size:
            p50, p99 = np.percentile(ms, 50), np.percentile(ms, 99)
            row[f"{hop} p50_ms"] = round(float(p50), 1)
            print(f"{'':10s}  {hop:13s} p50 {p50:6.1f} ms  p99 {p99:6.1f} ms  ({ms.size} clicks)", flush=True)
    return row


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=20.0, help="click train length per transport")
    ap.add_argument("--period", type=float, default=0.5, help="s between clicks (> the worst latency)")
    ap.add_argument("--rate", type=int, default=48000, help="the session's (and the click train's) rate")
    ap.add_argument("--voice-changer", action="store_true", help="the voice changer (pitch 0), not a pass")
    ap.add_argument("--json", action="store_true", help="also print one JSON line with the rows")
    ap.add_argument("--jitter-frames", type=int, default=JITTER_FRAMES, help="both receivers' depth")
    ap.add_argument(
        "--keep-standing-queue", action="store_true", help="the output track never skips (as before the fix)"
    )
    args = ap.parse_args()
    _tap_output_track()
    if args.keep_standing_queue:
        AudioOutputTrack.STANDING_WINDOW = 1 << 62
    if args.voice_changer:
        from apipeline.transports.factories import VoiceChangerFactory

        factory = VoiceChangerFactory(pitch=0)
    else:
        factory = passthrough_factory()
    webrtc = WebRTCConfig(peer_timeout=5.0, jitter_frames=args.jitter_frames)
    config = ServerConfig(port=0, ping_interval=None, webrtc=webrtc)
    server = WebsocketServer(factory, config)
    await server.start()
    await server.wait_ready()
    try:
        x, burst, starts = click_train(args.seconds, args.rate, args.period)
        print(
            f"# {platform.machine()} {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}; "
            f"{'voice changer' if args.voice_changer else 'pass-through'} at {args.rate} Hz, "
            f"{starts.size} clicks over {args.seconds:g} s per transport; aiortc receivers (server, client) "
            f"hold {args.jitter_frames} frame(s); output queue "
            f"{'kept (before the fix)' if args.keep_standing_queue else 'shrunk when standing'}",
            flush=True,
        )
        rows = [
            summary("websocket", await run_websocket(server.port, x, args.rate, burst, starts, args.period)),
            summary(
                "webrtc",
                await run_webrtc(server.port, x, args.rate, burst, starts, args.period, args.jitter_frames),
            ),
        ]
        import soundfile as sf

        speech, rate = sf.read(SPEECH, dtype="float32")
        speech = _resample(speech, rate, args.rate) if rate != args.rate else speech
        print(f"# bandwidth with speech ({speech.size / args.rate:.1f} s)", flush=True)
        for name, run in (("websocket", run_websocket), ("webrtc", run_webrtc)):
            r = await run(server.port, speech, args.rate, burst, np.zeros(0, int), args.period)
            rows.append({"transport": name, "signal": "speech", **_bandwidth(name, r)})
    finally:
        await server.aclose()
    if args.json:
        print(json.dumps(rows))


if __name__ == "__main__":
    asyncio.run(main())
