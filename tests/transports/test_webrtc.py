"""WebRTC over loopback: a Python client and a server session, audio both ways, clean ends."""

import asyncio

import numpy as np
import pytest

from apipeline.client.webrtc import WebRTCClient
from apipeline.errors import ConfigurationError, SessionRefused
from apipeline.frames import AudioRawFrame, Frame, TextFrame
from apipeline.processors.frame_processor import FrameDirection, FrameProcessor
from apipeline.transports.webrtc import WebRTCSession, check_ice_servers, make_output_track


class Halve(FrameProcessor):
    """Halves the level (a change the test can see) and says something on the tenth block."""

    def __init__(self) -> None:
        super().__init__()
        self.blocks = 0
        self.loud_s = 0.0  # input audio above -26 dBFS that reached the pipeline

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, AudioRawFrame):
            y = frame.audio * 0.5
            self.blocks += 1
            if np.sqrt(np.mean(frame.audio**2)) > 0.05:
                self.loud_s += frame.duration
            if self.blocks == 10:
                await self.push_frame(TextFrame("ten blocks"))
            await self.push_frame(AudioRawFrame(y.astype(np.float32), frame.sample_rate, 1), direction)
            return
        await self.push_frame(frame, direction)


def _peak_hz(x: np.ndarray, rate: int) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(x.size)))
    return float(np.argmax(spec) * rate / x.size)


async def _tasks() -> set[str]:
    return {t.get_name() for t in asyncio.all_tasks() if t is not asyncio.current_task()}


async def test_client_and_session_stream_audio_both_ways_and_close():
    before = await _tasks()
    sessions: list[WebRTCSession] = []
    runs: list[asyncio.Task] = []

    async def signal(offer: str) -> str:
        s = WebRTCSession([Halve()], sample_rate=16000, peer_timeout=2.0)
        sessions.append(s)
        answer = await s.accept(offer)
        runs.append(asyncio.create_task(s.run()))
        return answer

    rate = 16000
    t = np.arange(int(1.5 * rate)) / rate
    tone = (0.4 * np.sin(2 * np.pi * 330 * t)).astype(np.float32)
    result = await asyncio.wait_for(WebRTCClient(signal).stream(tone, rate, tail_s=0.4), 30)
    task = await asyncio.wait_for(runs[0], 30)
    assert task.errors == []
    out = result.audio
    loud = np.flatnonzero(np.abs(out) > 0.05)
    assert loud.size, "no audio came back"
    # the pipeline got the whole input, within one 20 ms block (plus one for Opus's edge frames)
    assert abs(sessions[0].processors[0].loud_s - 1.5) <= 0.04
    # what came back: nothing lost (a loaded machine delays packets, and the client's jitter buffer then
    # conceals the gap with a few extra frames: a bound from above would test the scheduler, not us)
    frames = out[: out.size // 960 * 960].reshape(-1, 960)
    heard_s = float((np.sqrt((frames**2).mean(axis=1)) > 0.02).sum()) * 0.02
    assert 1.5 - 0.04 <= heard_s <= 1.5 + 0.5, heard_s
    mid = out[loud[0] + 12000 : loud[0] + 12000 + 48000]
    assert abs(_peak_hz(mid, 48000) - 330) < 330 * (2 ** (50 / 1200) - 1)  # no rate error: within 50 cents
    assert 0.12 < np.sqrt(np.mean(mid**2)) < 0.16  # amplitude 0.4 halved: rms 0.141
    assert any(isinstance(f, TextFrame) and f.text == "ten blocks" for f in result.frames)  # data channel
    for _ in range(50):
        if await _tasks() <= before:
            break
        await asyncio.sleep(0.02)
    left = {n for n in (await _tasks()) - before if not n.startswith("Task-")}
    assert not left, left


async def test_a_vanished_peer_ends_the_session_within_its_timeout():
    from aiortc import RTCPeerConnection

    session = WebRTCSession([], sample_rate=16000, peer_timeout=0.3, connect_timeout=0.5)
    pc = RTCPeerConnection()
    pc.addTransceiver("audio", direction="sendrecv")
    await pc.setLocalDescription(await pc.createOffer())
    answer = await session.accept(pc.localDescription.sdp)
    from aiortc import RTCSessionDescription

    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    await pc.close()  # gone without a word, no media ever sent
    task = await asyncio.wait_for(session.run(), 10)  # outer limit: many times the 0.5 s timeout
    assert session.input is not None
    assert session.input.ended_by == "no audio from the peer within 0.5 s of the answer"
    assert task is not None


@pytest.mark.parametrize("offer", ["", "v=0\r\nnot sdp", "hello"])
async def test_bad_offers_are_refused_with_400(offer):
    with pytest.raises(SessionRefused) as err:
        await WebRTCSession([]).accept(offer)
    assert err.value.code == 400


def test_ice_servers_must_be_urls():
    assert check_ice_servers(["stun:stun.example.org:3478", "turn:turn.example.org?transport=udp"])
    for bad in ["stun.example.org", "http://x", "turn:", "stun:"]:
        with pytest.raises(ConfigurationError, match="ICE server"):
            check_ice_servers([bad])


async def test_output_track_paces_drops_on_interrupt_and_bounds_its_buffer():
    track = make_output_track(max_buffer_s=0.1)  # 5 frames
    track.write(np.zeros(960 * 8, np.float32))
    assert track.dropped_overflow == 3 and track.queued_s == pytest.approx(0.1)
    assert track.clear() == 5 and track.queued_s == 0
    track.write(np.full(960 * 2 + 100, 0.5, np.float32))
    first = await track.recv()
    second = await track.recv()
    assert first.samples == 960 and second.pts - first.pts == 960
    assert np.abs(first.to_ndarray()).max() > 10000
    silence = await track.recv()  # the 100 leftover samples wait for a whole frame: silence meanwhile
    assert np.abs(silence.to_ndarray()).max() == 0
    track.stop()


ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]


async def test_a_talking_head_session_sends_a_video_track_that_moves_with_the_speech():
    import soundfile as sf

    from apipeline.processors.video import TalkingHeadProcessor
    from apipeline.video.image import read_image
    from apipeline.video.renderer import PortraitRenderer

    runs: list[asyncio.Task] = []
    sessions: list[WebRTCSession] = []

    async def signal(offer: str) -> str:
        head = TalkingHeadProcessor(
            PortraitRenderer(read_image(ROOT / "examples/data/portrait.png"), size=128)
        )
        s = WebRTCSession([head], sample_rate=16000, peer_timeout=2.0, video=True)
        sessions.append(s)
        answer = await s.accept(offer)
        runs.append(asyncio.create_task(s.run()))
        return answer

    speech, rate = sf.read(ROOT / "examples/data/speech.wav", dtype="float32")
    result = await asyncio.wait_for(
        WebRTCClient(signal).stream(speech[: int(1.5 * rate)], rate, tail_s=0.3, receive_video=True), 30
    )
    await asyncio.wait_for(runs[0], 30)
    track = sessions[0].video_track
    assert track is not None and track.sent_pictures >= 30  # ~37 pictures for 1.5 s at 25 fps
    assert len(result.video) >= 20 and result.video[-1].shape == (128, 128, 3)
    moved = [np.abs(a.astype(int) - b).mean() for a, b in zip(result.video, result.video[1:])]
    assert max(moved) > 0.5  # the mouth moves: not one picture repeated


async def test_the_server_waits_for_a_peer_that_asked_to_end_before_closing():
    """The final EndFrame is only handed to SCTP when sent: the server must not close under it."""
    from aiortc import RTCPeerConnection, RTCSessionDescription

    from apipeline.frames import EndFrame
    from apipeline.serializers import ProtobufFrameSerializer
    from apipeline.transports.webrtc import DATA_CHANNEL

    serializer = ProtobufFrameSerializer()
    session = WebRTCSession([], sample_rate=16000, peer_timeout=20.0, connect_timeout=20.0)
    session.end_wait = 30.0
    pc = RTCPeerConnection()
    pc.addTransceiver("audio", direction="sendrecv")
    channel = pc.createDataChannel(DATA_CHANNEL)
    got: asyncio.Queue = asyncio.Queue()
    closed = asyncio.Event()
    channel.on("message", lambda m: got.put_nowait(serializer.deserialize(m)))
    channel.on("close", closed.set)
    opened = asyncio.Event()
    channel.on("open", opened.set)
    await pc.setLocalDescription(await pc.createOffer())
    answer = await session.accept(pc.localDescription.sdp)
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    run = asyncio.create_task(session.run())
    try:
        await asyncio.wait_for(opened.wait(), 10)
        channel.send(serializer.serialize(EndFrame()))
        while not isinstance(await asyncio.wait_for(got.get(), 10), EndFrame):
            pass
        # the server answered EndFrame; it now waits for us (end_wait 30 s) instead of closing under it
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(closed.wait(), 1.0)
        assert not run.done()
    finally:
        await pc.close()
    await asyncio.wait_for(run, 10)  # our close ends its wait long before end_wait
    assert session.input is not None and session.input.ended_by == "the peer sent EndFrame"
