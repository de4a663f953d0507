"""Where WebRTC's latency went (issue #13's benchmark): the output track's standing queue and aiortc's
receiver jitter buffer depth."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apipeline.errors import ConfigurationError
from apipeline.transports.webrtc import (
    FRAME_SAMPLES,
    AudioOutputTrack,
    WebRTCSession,
    make_output_track,
    set_audio_jitter_frames,
)
from apipeline.transports.webrtc_signalling import WebRTCConfig

pytest.importorskip("aiortc")

QUIET = np.zeros(FRAME_SAMPLES, np.float32)


def loud(k: int) -> np.ndarray:
    """A frame that carries sound, numbered by its level so the order can be checked."""
    return np.full(FRAME_SAMPLES, 0.1 + 0.001 * k, np.float32)


def level(chunk: np.ndarray) -> int:
    return int(chunk[0])


def run_real_time(track: AudioOutputTrack, frames: list[np.ndarray], burst: int) -> list[int]:
    """``burst`` frames queued at once, then one written per tick (the rate the track plays): the queue
    depth before each tick."""
    for f in frames[:burst]:
        track.write(f)
    depths = []
    sent = []
    for f in frames[burst:]:
        track.write(f)
        depths.append(len(track._chunks))
        sent.append(level(track.next_chunk()))
    track.sent_levels = sent  # type: ignore[attr-defined]
    return depths


@settings(max_examples=25, deadline=None)
@given(burst=st.integers(1, 60), loud_every=st.integers(3, 40))
def test_a_standing_queue_left_by_a_burst_shrinks_to_one_frame_without_losing_sound(
    burst: int, loud_every: int
) -> None:
    track = make_output_track()
    frames = [loud(i) if i % loud_every == 0 else QUIET for i in range(burst + 500)]
    depths = run_real_time(track, frames, burst)
    # after a few windows, never more than the frame that just arrived is queued ahead of the clock
    settle = 4 * AudioOutputTrack.STANDING_WINDOW
    assert max(depths[settle:]) <= 1, (burst, depths[settle:][:10])
    # every frame with sound went out, in order; only quiet ones were skipped
    written = [level(f * 32767) for f in frames if f.any()]
    sent = [x for x in track.sent_levels if x]  # type: ignore[attr-defined]
    assert sent == written[: len(sent)]
    assert len(written) - len(sent) <= burst  # the rest is still queued, not lost
    assert track.dropped_standing == burst  # exactly the backlog the burst left, no more


def test_sound_is_never_skipped_even_when_it_stands_in_the_queue() -> None:
    track = make_output_track()
    frames = [loud(i % 50) for i in range(300)]
    run_real_time(track, frames, burst=5)
    assert track.dropped_standing == 0
    assert len(track._chunks) == 5  # the backlog stays: playing sound late beats cutting it


@pytest.mark.parametrize("frames", [20, 55, 58, 60, 100, 400])
def test_a_reply_queued_faster_than_real_time_is_played_whole(frames: int) -> None:
    """A TTS reply written at once keeps its pauses, to its last frame (its queue drains: not standing)."""
    track = make_output_track(max_buffer_s=10.0)
    reply = [loud(i) if (i // 3) % 2 else QUIET for i in range(frames)]  # words and pauses
    for f in reply:
        track.write(f)
    out = [track.next_chunk() for _ in range(frames)]
    assert track.dropped_standing == 0
    assert [level(c) for c in out] == [level(f * 32767) for f in reply]


def test_an_interruption_cancels_pending_skips() -> None:
    track = make_output_track()
    run_real_time(track, [QUIET] * 60, burst=6)
    track.clear()
    for k in range(5):
        track.write(loud(k))
    track.write(QUIET)
    assert [level(track.next_chunk()) for _ in range(6)] == [level(loud(k) * 32767) for k in range(5)] + [0]


async def test_set_audio_jitter_frames_makes_the_receiver_release_a_frame_one_frame_later() -> None:
    from aiortc import RTCPeerConnection
    from aiortc.rtp import RtpPacket

    def packets(buffer: object) -> list[object]:
        released = []
        for seq in range(6):
            packet = RtpPacket(sequence_number=seq, timestamp=seq * FRAME_SAMPLES, payload=b"x")
            packet._data = packet.payload  # what aiortc's receiver sets (the depacketized payload)
            _, frame = buffer.add(packet)  # type: ignore[attr-defined]
            released.append(frame.timestamp if frame is not None else None)
        return released

    pc = RTCPeerConnection()
    try:
        pc.addTransceiver("audio")
        pc.addTransceiver("video")
        receiver = pc.getTransceivers()[0].receiver
        # aiortc's own depth: a frame comes out when 4 later ones are in
        assert packets(receiver._RTCRtpReceiver__jitter_buffer) == [None] * 4 + [0, FRAME_SAMPLES]
        assert set_audio_jitter_frames(pc, 1) == 1  # the audio receiver only
        assert packets(receiver._RTCRtpReceiver__jitter_buffer) == [
            None,
            *(k * FRAME_SAMPLES for k in range(5)),
        ]
        assert set_audio_jitter_frames(pc, 2) == 1
        assert packets(receiver._RTCRtpReceiver__jitter_buffer) == [
            None,
            None,
            *(k * FRAME_SAMPLES for k in range(4)),
        ]
    finally:
        await pc.close()


def test_an_aiortc_without_that_buffer_is_left_alone_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    receiver = SimpleNamespace()
    pc = SimpleNamespace(getTransceivers=lambda: [SimpleNamespace(kind="audio", receiver=receiver)])
    with caplog.at_level(logging.WARNING, "apipeline.transports"):
        assert set_audio_jitter_frames(pc, 1) == 0
    assert "no jitter buffer" in caplog.text
    assert vars(receiver) == {}


@pytest.mark.parametrize("bad", [0, 16, -1, 1.5, True, "2", None])
def test_bad_jitter_depths_are_refused_at_build_time(bad: object) -> None:
    with pytest.raises(ConfigurationError, match="jitter_frames must be an int from 1 to 15"):
        WebRTCConfig(jitter_frames=bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="jitter_frames"):
        WebRTCSession([], jitter_frames=bad)  # type: ignore[arg-type]
