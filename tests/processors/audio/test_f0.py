import numpy as np
import pytest

from apipeline.audio.f0 import get_f0_estimator
from apipeline.audio.incremental import median_repair
from apipeline.audio.voice_changer import StreamingVoiceChanger
from apipeline.frames import AudioRawFrame
from apipeline.processors.audio.f0 import F0Processor, estimate_mirrored, pad_samples
from apipeline.processors.audio.features import GATE_KEY, SEQ_KEY, F0Frame
from apipeline.testing import run_pipeline

SR = 16000


def harmonic(f0: float, seconds: float, sr: int = SR) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return sum(0.3 / k * np.sin(2 * np.pi * k * f0 * t) for k in range(1, 8)).astype(np.float32)


def window(x: np.ndarray, seq: int, gate: bool = True) -> AudioRawFrame:
    return AudioRawFrame(x, SR, 1, metadata={SEQ_KEY: seq, GATE_KEY: gate})


async def test_estimates_known_f0_per_window_in_order():
    proc = F0Processor("dio", sample_rate=SR)
    frames = [window(harmonic(f, 0.2), i) for i, f in enumerate((150.0, 220.0))]
    result = await run_pipeline(proc, frames)
    assert not result.errors
    out = result.data
    assert [type(f) for f in out] == [F0Frame, F0Frame] and [f.seq for f in out] == [0, 1]
    for frame, f0 in zip(out, (150.0, 220.0)):
        track = frame.track
        assert track is not None and track.num_frames == 0.2 * SR // 80 + 1  # 5 ms hop, frame convention
        voiced = track.f0_hz[track.voiced]
        assert voiced.size > 10
        assert abs(1200 * np.log2(np.median(voiced) / f0)) < 10


async def test_gated_window_gets_empty_frame_and_pass_audio_keeps_window():
    proc = F0Processor("dio", sample_rate=SR, pass_audio=True)
    frames = [window(harmonic(150.0, 0.2), 0, gate=False)]
    out = (await run_pipeline(proc, frames)).data
    assert isinstance(out[0], F0Frame) and out[0].track is None and proc.blocks_estimated == 1
    assert isinstance(out[1], AudioRawFrame) and out[1] is frames[0]


async def test_wrong_format_is_reported_and_the_block_keeps_its_place():
    proc = F0Processor("dio", sample_rate=SR, threaded=False)
    bad = AudioRawFrame(harmonic(150.0, 0.2, 22050), 22050, 1, metadata={SEQ_KEY: 0})
    result = await run_pipeline(proc, [bad, window(harmonic(150.0, 0.2), 1)])
    assert len(result.errors) == 1 and "expects mono 16000 Hz windows" in result.errors[0].error
    assert [(f.seq, f.track is None) for f in result.data] == [(0, True), (1, False)]


def test_mirrored_estimate_is_the_cores():
    core = StreamingVoiceChanger(SR)  # default f0_pad_ms = 50
    x = harmonic(130.0, core.window_size / SR).astype(np.float64)
    est = get_f0_estimator("dio", hop_seconds=core.frame_period_ms / 1000)
    pad = pad_samples(50.0, SR, core.hop)
    assert pad == core.f0_pad_size == 800
    mirrored = estimate_mirrored(est, x, SR, core.hop, pad)
    first = core._f0.track(x, 0)  # the first window of a stream: nothing carried yet
    # the core's streamed track is the mirrored estimate with its median repair (voicing untouched)
    np.testing.assert_array_equal(first.f0_hz, median_repair(mirrored.f0_hz, mirrored.voiced))
    np.testing.assert_array_equal(first.voiced, mirrored.voiced)
    plain = est.estimate(x, SR)
    assert mirrored.num_frames == plain.num_frames
    assert estimate_mirrored(est, x, SR, core.hop, 0).f0_hz.tolist() == plain.f0_hz.tolist()
    with pytest.raises(ValueError, match="f0 mirror pad must be >= 0 ms, got -5"):
        pad_samples(-5.0, SR, core.hop)


async def test_pad_ms_estimates_each_window_mirrored():
    x = harmonic(130.0, 0.2)
    proc = F0Processor("dio", sample_rate=SR, pad_ms=50.0, threaded=False)
    track = (await run_pipeline(proc, [window(x, 0)])).data[0].track
    est = get_f0_estimator("dio", hop_seconds=0.005)
    expected = estimate_mirrored(est, x.astype(np.float64), SR, 80, 800)
    np.testing.assert_array_equal(track.f0_hz, expected.f0_hz)
