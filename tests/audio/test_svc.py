"""Feature conversions: pitch shift exactness, F0 mapping, formant warp correctness, loudness matching."""

from __future__ import annotations

import numpy as np
import pytest

from apipeline.audio.f0 import get_f0_estimator
from apipeline.audio.svc import F0Stats, VoiceConversion, change_rms, map_f0, shift_pitch, warp_formants
from apipeline.audio.world import analyze, synthesize


def test_shift_pitch_is_exact_and_keeps_unvoiced() -> None:
    f0 = np.array([0.0, 100.0, 220.0, 0.0])
    out = shift_pitch(f0, 12.0)
    assert np.array_equal(out, [0.0, 200.0, 440.0, 0.0])
    assert np.allclose(shift_pitch(f0, -5.0)[1], 100.0 * 2 ** (-5 / 12))


def test_shift_on_a_synthetic_signal_lands_within_10_cents() -> None:
    sr = 16000
    t = np.arange(sr // 2) / sr
    x = 0.2 * sum(np.sin(2 * np.pi * h * 140.0 * t) / h for h in range(1, 30) if h * 140 < sr / 2)
    conv = VoiceConversion(pitch_semitones=4.0)
    y = synthesize(conv.convert(analyze(x, sr, "dio", 5.0)))[: len(x)]
    track = get_f0_estimator("harvest").estimate(y.astype(np.float32), sr)
    target = 140.0 * 2 ** (4 / 12)
    assert np.median(np.abs(1200 * np.log2(track.f0_hz[track.voiced] / target))) < 10.0


def test_map_f0_moves_mean_and_range() -> None:
    rng = np.random.default_rng(0)
    f0 = np.exp(rng.normal(np.log(110.0), 0.1, 500))
    f0[::7] = 0.0
    stats = F0Stats.from_f0(f0)
    out = map_f0(f0, stats, 220.0, target_range=3.0)
    mapped = F0Stats.from_f0(out)
    assert abs(mapped.mean_hz - 220.0) < 0.5
    assert abs(mapped.std_log * 12 / np.log(2) - 3.0) < 1e-6
    assert np.array_equal(out == 0, f0 == 0)
    same_spread = F0Stats.from_f0(map_f0(f0, stats, 220.0))
    assert np.isclose(same_spread.std_log, stats.std_log)


@pytest.mark.parametrize("ratio", [1.2, 0.8])
def test_warp_moves_a_spectral_peak_by_the_ratio(ratio: float) -> None:
    sr, bins = 16000, 513
    freqs = np.linspace(0, sr / 2, bins)
    sp = np.exp(-0.5 * ((freqs - 1000.0) / 80.0) ** 2) + 1e-6
    out = warp_formants(sp[None, :], ratio, sr)[0]
    assert abs(freqs[np.argmax(out)] - 1000.0 * ratio) <= freqs[1]
    assert np.isclose(out.max(), sp.max(), rtol=0.05)
    assert np.array_equal(warp_formants(sp, 1.0, sr), sp)


def test_change_rms_follows_the_source_envelope() -> None:
    sr = 16000
    t = np.arange(sr) / sr
    source = np.sin(2 * np.pi * 200 * t) * np.where(t < 0.5, 0.5, 0.05)
    output = 0.2 * np.sin(2 * np.pi * 300 * t)
    matched = change_rms(source, sr, output, sr, rate=0.0, frame_seconds=0.02)
    first, second = matched[2000:6000], matched[10000:14000]
    assert np.isclose(np.sqrt(np.mean(first**2)), 0.5 / np.sqrt(2), rtol=0.1)
    assert np.isclose(np.sqrt(np.mean(second**2)), 0.05 / np.sqrt(2), rtol=0.1)
    assert np.array_equal(change_rms(source, sr, output, sr, rate=1.0), output)
    with pytest.raises(ValueError, match="rate"):
        change_rms(source, sr, output, sr, rate=1.5)


def test_conversion_validates_its_settings() -> None:
    with pytest.raises(ValueError, match="formant_ratio"):
        VoiceConversion(formant_ratio=0.0)
    with pytest.raises(ValueError, match="rms_mix_rate"):
        VoiceConversion(rms_mix_rate=2.0)
