"""WORLD analysis/synthesis: shapes, frame sub-ranges, round trip, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from apipeline.audio.f0 import get_f0_estimator
from apipeline.audio.world import analyze, frame_period_for, synthesize
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
