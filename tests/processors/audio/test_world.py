import numpy as np

from apipeline.audio.f0 import F0Track, get_f0_estimator
from apipeline.audio.incremental import SPECTRAL_STRIDE, StreamingAnalysis, median_repair
from apipeline.audio.world import APERIODICITY_RATE, analyze, decimate_bins, synthesis_fft_size
from apipeline.frames import AudioRawFrame
from apipeline.processors.audio.f0 import estimate_mirrored
from apipeline.processors.audio.features import (
    GATE_KEY,
    SEQ_KEY,
    BlockGeometry,
    F0Frame,
    SpectralFeaturesFrame,
)
from apipeline.processors.audio.world import WorldAnalysisProcessor
from apipeline.testing import run_pipeline

SR = 16000
G = BlockGeometry.from_ms(SR)


def harmonic(f0: float, n: int) -> np.ndarray:
    t = np.arange(n) / SR
    return sum(0.3 / k * np.sin(2 * np.pi * k * f0 * t) for k in range(1, 8)).astype(np.float32)


def window(seq: int, gate: bool = True) -> AudioRawFrame:
    return AudioRawFrame(harmonic(150.0, G.window), SR, 1, metadata={SEQ_KEY: seq, GATE_KEY: gate})


def f0_frame(seq: int, x: np.ndarray) -> F0Frame:
    track = get_f0_estimator("dio", hop_seconds=G.frame_period_ms / 1000).estimate(x, SR)
    return F0Frame(seq=seq, track=track, sample_rate=SR, metadata={SEQ_KEY: seq})


async def test_shared_mode_uses_the_f0_frame_and_passes_it_on():
    proc = WorldAnalysisProcessor(G, threaded=False)
    w = window(0)
    f0 = f0_frame(0, w.audio)
    out = (await run_pipeline(proc, [f0, w])).data
    assert out[0] is f0 and isinstance(out[1], SpectralFeaturesFrame)
    spec = out[1]
    feats = spec.features
    assert feats is not None and (feats.start_frame, feats.start_frame + feats.num_frames) == G.frames
    assert feats.sp.shape == (G.frame_stop - G.frame_start, feats.fft_size // 2 + 1)
    np.testing.assert_array_equal(feats.f0, np.where(f0.track.voiced, f0.track.f0_hz, 0)[slice(*G.frames)])
    assert spec.kept_size == G.kept_size and spec.source.shape == (G.kept_size,)
    np.testing.assert_array_equal(spec.source, w.audio[G.kept_start : G.kept_start + G.kept_size])


async def test_own_mode_estimates_and_gated_or_missing_f0_render_silent():
    own = WorldAnalysisProcessor(G, analysis_f0="dio")
    out = (await run_pipeline(own, [window(0), window(1, gate=False)])).data
    assert [f.seq for f in out] == [0, 1]
    assert out[0].features is not None and np.median(out[0].features.f0[out[0].features.f0 > 0]) > 140
    assert out[1].features is None
    shared = WorldAnalysisProcessor(G, threaded=False)
    out = (await run_pipeline(shared, [window(5)])).data  # no F0 frame for block 5
    assert out[0].seq == 5 and out[0].features is None


async def test_wrong_window_is_reported():
    proc = WorldAnalysisProcessor(G, analysis_f0="dio", threaded=False)
    bad = AudioRawFrame(np.zeros(100, np.float32), SR, 1, metadata={SEQ_KEY: 0})
    result = await run_pipeline(proc, [bad])
    assert "expects mono windows of" in result.errors[0].error
    assert result.data[0].features is None and result.data[0].source is None


async def test_own_mode_mirrors_the_window_end_like_the_f0_stage():
    w = window(0)
    x = w.audio.astype(np.float64)
    padded = WorldAnalysisProcessor(G, analysis_f0="dio", f0_pad_ms=50.0, threaded=False)
    assert padded.f0_pad == 800
    feats = (await run_pipeline(padded, [w])).data[0].features
    est = get_f0_estimator("dio", hop_seconds=G.frame_period_ms / 1000)
    mirrored = estimate_mirrored(est, x, SR, G.hop, 800)
    # the first window of a stream: nothing carried yet; the F0 gets the streamed track's median repair
    track = F0Track(median_repair(mirrored.f0_hz, mirrored.voiced), mirrored.voiced, mirrored.hop_seconds)
    expected = analyze(x, SR, track, G.frame_period_ms, frames=G.frames, aperiodicity_rate=APERIODICITY_RATE)
    np.testing.assert_array_equal(feats.f0, expected.f0)
    # features come on the synthesis FFT's bins (every other bin of CheapTrick's at 16 kHz)
    expected = decimate_bins(expected, synthesis_fft_size(SR))
    assert feats.fft_size == expected.fft_size == 512
    # CheapTrick/D4C run on the even frames (SPECTRAL_STRIDE 2); the odd ones are interpolated
    anchors = np.flatnonzero((np.arange(G.frames[0], G.frames[1]) % SPECTRAL_STRIDE) == 0)
    # (WORLD adds 1e-16-scale noise whose draw depends on the frames in the call)
    np.testing.assert_allclose(feats.sp[anchors], expected.sp[anchors], rtol=1e-3, atol=1e-12)
    stream = StreamingAnalysis(SR, G.frame_period_ms, G.block // G.hop, G.frames, G.carry_stop)
    np.testing.assert_array_equal(feats.sp, stream.analyze(x, 0, track).sp)
