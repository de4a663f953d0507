"""F0 estimators on synthetic harmonic signals with known F0, on noise and silence, and the registry."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from apipeline.audio.f0 import F0Track, available_f0_estimators, get_f0_estimator
from apipeline.audio.f0._torch_import import import_without
from apipeline.errors import AudioFormatError, ModelError


def harmonic(f0: float, sr: int, seconds: float) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    x = sum(np.sin(2 * np.pi * h * f0 * t) / h for h in range(1, 30) if h * f0 < sr / 2)
    return (0.3 * x / np.max(np.abs(x))).astype(np.float32)


def median_cents(track: F0Track, f0: float) -> float:
    assert track.voiced.mean() > 0.9
    return float(np.median(np.abs(1200 * np.log2(track.f0_hz[track.voiced] / f0))))


CASES = [("dio", 22050, 1.0), ("harvest", 16000, 0.5), ("fcpe", 22050, 0.5), ("crepe", 16000, 0.5)]


@pytest.mark.parametrize(("name", "sr", "seconds"), CASES)
@pytest.mark.parametrize("f0", [110.0, 220.0])
def test_known_f0_within_10_cents(name: str, sr: int, seconds: float, f0: float) -> None:
    est = get_f0_estimator(name)
    track = est.estimate(harmonic(f0, sr, seconds), sr)
    assert track.num_frames == int(seconds * 100) + 1
    assert median_cents(track, f0) < 10.0


def test_crepe_full_on_a_short_signal() -> None:
    track = get_f0_estimator("crepe-full").estimate(harmonic(220.0, 16000, 0.15), 16000)
    assert median_cents(track, 220.0) < 10.0


@pytest.mark.parametrize("name", ["dio", "harvest", "fcpe", "crepe"])
def test_noise_and_silence_are_unvoiced(name: str) -> None:
    est = get_f0_estimator(name)
    rng = np.random.default_rng(1)
    noise = (0.1 * rng.standard_normal(8000)).astype(np.float32)
    assert est.estimate(np.zeros(8000, np.float32), 16000).voiced.mean() == 0.0
    assert est.estimate(noise, 16000).voiced.mean() < 0.1


def test_custom_hop_gives_the_frame_grid() -> None:
    track = get_f0_estimator("fcpe", hop_seconds=0.005).estimate(harmonic(150.0, 16000, 0.5), 16000)
    assert track.num_frames == 101 and track.hop_seconds == 0.005
    assert median_cents(track, 150.0) < 10.0


def test_unknown_name_lists_known_ones() -> None:
    with pytest.raises(
        ValueError, match="known estimators: crepe, crepe-full, crepe-tiny, dio, fcpe, harvest"
    ):
        get_f0_estimator("rmvpe")
    assert "dio" in available_f0_estimators()


@pytest.mark.parametrize(
    ("x", "match"),
    [
        (np.zeros(0, np.float32), "empty"),
        (np.array([0.0, np.nan], np.float32), "NaN"),
        (np.zeros((10, 2), np.float32), "mono"),
        (np.zeros(10, np.int16), "float"),
    ],
)
def test_bad_input_is_refused(x: np.ndarray, match: str) -> None:
    with pytest.raises(AudioFormatError, match=match):
        get_f0_estimator("dio").estimate(x, 16000)


def test_torchaudio_guard_raises_and_does_not_leak() -> None:
    fcpe = import_without("torchfcpe", ("torchaudio", "torchaudio.transforms"))
    assert "torchaudio" not in sys.modules
    resample = fcpe.mel_extractor.Resample
    with pytest.raises(ModelError, match=r"torchaudio\.transforms\.Resample"):
        resample(22050, 16000)


def test_track_resample_keeps_pitch() -> None:
    track = F0Track(np.full(11, 200.0), np.ones(11, bool), 0.01)
    out = track.resample(0.005, 21)
    assert out.num_frames == 21 and np.allclose(out.f0_hz, 200.0) and out.voiced.all()
