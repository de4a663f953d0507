"""WORLD analysis/synthesis: shapes, frame sub-ranges, round trip, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from apipeline.audio.f0 import get_f0_estimator
from apipeline.audio.world import (
    WorldFeatures,
    analyze,
    excitation_phase,
    frame_period_for,
    synthesize,
    synthesize_phase_locked,
)
from apipeline.errors import AudioFormatError


def harmonic(f0: float, sr: int, seconds: float) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    return (0.2 * sum(np.sin(2 * np.pi * h * f0 * t) / h for h in range(1, 30) if h * f0 < sr / 2)).astype(
        np.float32
    )


def test_frame_period_is_whole_samples() -> None:
    assert frame_period_for(22050, 5.0) == (110, 110 * 1000 / 22050)
    assert frame_period_for(16000, 5.0) == (80, 5.0)


def test_analysis_shapes_and_round_trip() -> None:
    sr = 16000
    x = harmonic(150.0, sr, 0.5)
    f = analyze(x, sr, "dio", 5.0)
    assert f.num_frames == 101 and f.sp.shape == (101, f.fft_size // 2 + 1) and f.fft_size == 1024
    assert 0.0 <= f.ap.min() and f.ap.max() <= 1.0
    y = synthesize(f)
    assert y.dtype == np.float64 and len(y) == 101 * 80
    est = get_f0_estimator("harvest").estimate(y[: len(x)].astype(np.float32), sr)
    assert np.median(np.abs(1200 * np.log2(est.f0_hz[est.voiced] / 150.0))) < 10
    assert 0.5 < np.std(y) / np.std(x) < 2.0


def test_frame_subrange_matches_full_analysis() -> None:
    sr = 22050
    hop, period = frame_period_for(sr, 5.0)
    x = harmonic(120.0, sr, 0.3)
    full = analyze(x, sr, "dio", period)
    part = analyze(x, sr, "dio", period, frames=(10, 30))
    assert part.start_frame == 10 and part.num_frames == 20
    # WORLD adds a tiny random safeguard to each windowed frame, so equal up to that noise
    assert np.allclose(part.sp, full.sp[10:30], rtol=1e-3, atol=1e-6 * full.sp.max())
    assert np.array_equal(part.f0, full.f0[10:30])
    assert len(synthesize(part)) == 20 * hop


def test_bad_input_and_bad_ranges() -> None:
    with pytest.raises(AudioFormatError, match="NaN"):
        analyze(np.array([0.0, np.inf]), 16000)
    with pytest.raises(ValueError, match="frames must satisfy"):
        analyze(harmonic(100.0, 16000, 0.1), 16000, "dio", 5.0, frames=(5, 500))


def flat_features(f0: np.ndarray, sr: int = 22050, hop: int = 110) -> WorldFeatures:
    """A flat envelope with almost no aperiodicity: every pulse comes out as a near-impulse."""
    bins = 1024 // 2 + 1
    sp = np.full((len(f0), bins), 1e-2)
    return WorldFeatures(f0, sp, np.full_like(sp, 1e-6), hop * 1000 / sr, 1024, sr)


def test_excitation_phase_predicts_worlds_pulse_instants() -> None:
    sr, hop = 22050, 110
    f0 = 120 + 40 * np.sin(np.arange(60) / 7.0)
    f0[20:25] = 0.0
    feats = flat_features(f0)
    y = synthesize(feats)
    phase = excitation_phase(f0, sr, feats.frame_period_ms, 1024, len(y))
    wraps = np.nonzero(np.diff(np.floor(phase / (2 * np.pi))))[0]  # pulse between i and i + 1
    peaks = [
        i
        for i in range(1, len(y) - 1)
        if abs(y[i]) > 0.3 * np.abs(y).max() and abs(y[i]) >= abs(y[i - 1]) and abs(y[i]) >= abs(y[i + 1])
    ]
    # crossings well inside voiced runs (a pulse next to unvoiced stretches is weaker: WORLD scales it
    # by the square root of the distance to the next pulse)
    inside = [
        i for i in wraps if i < len(y) - 2 * hop and (f0[max(i // hop - 1, 0) : i // hop + 3] > 0).all()
    ]
    assert len(peaks) >= 25
    # every impulse sits within 2 samples after a predicted crossing, and no voiced crossing lacks one
    assert all(np.min(np.abs(np.asarray(wraps) + 1 - p)) <= 2 for p in peaks)
    assert all(np.min(np.abs(np.asarray(peaks) - 1 - w)) <= 2 for w in inside)


def test_phase_locked_synthesis_continues_another_pulse_train() -> None:
    hop = 110
    f0 = 120 + 40 * np.sin(np.arange(80) / 7.0)
    whole = flat_features(f0)
    y_all, phase_all = synthesize_phase_locked(whole)
    assert len(y_all) == len(phase_all)
    start, at = 20, 10  # a second synthesis from frame 20, locked at its frame 10 (absolute frame 30)
    part = flat_features(f0[start:])
    locked, phase = synthesize_phase_locked(part, (at * hop, phase_all[(start + at) * hop]))
    free = synthesize(part)
    a, b = (start + at) * hop, at * hop
    ref = y_all[a - 300 : a + 300]
    assert np.linalg.norm(locked[b - 300 : b + 300] - ref) < 0.05 * np.linalg.norm(ref)
    assert np.linalg.norm(free[b - 300 : b + 300] - ref) > 0.3 * np.linalg.norm(ref)
    assert abs(np.angle(np.exp(1j * (phase[b] - phase_all[a])))) < 1e-6
    # lead-in frames are dropped: sample 0 is still the first frame's instant
    assert abs(len(locked) - len(free)) <= 1


def test_phase_locked_synthesis_rejects_bad_arguments() -> None:
    feats = flat_features(np.full(10, 100.0))
    with pytest.raises(ValueError, match="lock index"):
        synthesize_phase_locked(feats, (10 * 110, 0.0))
    with pytest.raises(ValueError, match="whole number of samples"):
        synthesize_phase_locked(feats.with_(frame_period_ms=5.0))
