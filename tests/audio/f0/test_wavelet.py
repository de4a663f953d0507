"""pyworld estimators: DIO's options reach pyworld (``allowed_range``, the voicing threshold)."""

from __future__ import annotations

import numpy as np
import pytest

from apipeline.audio.f0.wavelet import DioEstimator, import_pyworld


def noisy_voice(sr: int = 16000, seconds: float = 0.5) -> np.ndarray:
    """A gliding harmonic voice in noise: its DIO voicing depends on the threshold."""
    t = np.arange(int(seconds * sr)) / sr
    x = sum(0.2 / k * np.sin(2 * np.pi * k * 140.0 * t * (1 + 0.1 * t)) for k in range(1, 6))
    return x + 0.05 * np.random.default_rng(0).standard_normal(t.shape[0])


@pytest.mark.parametrize("allowed_range", [0.0, 0.02, 0.2])
def test_dio_passes_allowed_range_to_pyworld(allowed_range: float) -> None:
    x, sr = noisy_voice(), 16000
    for speed in (None, 1):  # None (the default): DIO decimates to ~8 kHz, i.e. speed 2 at 16 kHz
        est = DioEstimator(hop_seconds=0.01, allowed_range=allowed_range, refine=False, speed=speed)
        track = est.estimate(x, sr)
        pw = import_pyworld()
        f0, _ = pw.dio(
            x,
            sr,
            f0_floor=60.0,
            f0_ceil=1000.0,
            frame_period=10.0,
            allowed_range=allowed_range,
            speed=speed or 2,
        )
        np.testing.assert_array_equal(track.f0_hz, np.where(f0 > 0, f0, 0.0))


def test_a_lower_threshold_calls_fewer_frames_voiced() -> None:
    x, sr = noisy_voice(), 16000
    voiced = [int(DioEstimator(allowed_range=r).estimate(x, sr).voiced.sum()) for r in (0.0, 0.02, 0.1)]
    assert voiced[0] < voiced[1] < voiced[2]


def test_a_negative_threshold_is_refused() -> None:
    with pytest.raises(ValueError, match=r"allowed_range must be >= 0, got -0\.1"):
        DioEstimator(allowed_range=-0.1)
