"""Item 2: quiet input is converted, not gated away; most-gated input warns; loud output is limited."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from apipeline.audio.level import AutoGain, NoiseFloorTracker, soft_limit
from tests.voice_changer.conftest import at_peak, cli, speech


def rms(a: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(a, dtype=np.float64))))


@pytest.mark.parametrize("peak_db", [-45.0, -55.0])
def test_the_cli_converts_quiet_speech(tmp_path, peak_db):
    x, sr = speech(2.0)
    quiet = at_peak(x, peak_db)
    src, out = tmp_path / "quiet.wav", tmp_path / "out.wav"
    sf.write(src, quiet, sr, subtype="FLOAT")
    res = cli("--input", str(src), "--output", str(out), "--pitch", "3", "--json")
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout)
    blocks, gated = summary["report"]["blocks"], summary["blocks_gated"]
    assert gated < 0.4 * blocks, (gated, blocks)  # the sample has pauses, but most of it is speech
    y, _ = sf.read(out, dtype="float32")
    # speech out: the output carries the input's level (within 10 dB), not silence
    assert rms(y) > 10 ** (-10 / 20) * rms(quiet), (20 * np.log10(rms(y) + 1e-12), 20 * np.log10(rms(quiet)))
    assert "gated" not in res.stderr


def test_most_of_the_input_gated_is_a_warning(tmp_path):
    x, sr = speech(2.0)
    src = tmp_path / "quiet.wav"
    sf.write(src, at_peak(x, -55.0), sr, subtype="FLOAT")
    res = cli(
        "--input", str(src), "--output", str(tmp_path / "o.wav"), "--gate", "fixed", "--silence-db", "-60"
    )
    assert res.returncode == 0, res.stderr
    assert "were gated as silence" in res.stderr and "--silence-db" in res.stderr


def test_full_scale_input_is_limited_not_clipped(tmp_path):
    x, sr = speech(1.5)
    src, out = tmp_path / "loud.wav", tmp_path / "out.wav"
    sf.write(src, np.clip(4.0 * x, -1.0, 1.0), sr)  # clipped, full-scale input
    res = cli("--input", str(src), "--output", str(out), "--pitch", "5")
    assert res.returncode == 0, res.stderr
    y, _ = sf.read(out, dtype="float32")
    assert np.max(np.abs(y)) < 0.95 and np.count_nonzero(np.abs(y) >= 0.999) == 0


def test_noise_floor_tracker_opens_on_quiet_speech_and_closes_on_hum():
    tracker = NoiseFloorTracker(0.035, margin_db=12.0, hold_blocks=0)
    hum = [tracker.update(-70.0) for _ in range(100)]  # 3.5 s of a -70 dBFS room
    assert not any(hum[60:])  # the floor has risen to the hum: closed
    assert tracker.update(-50.0)  # speech 20 dB above the room opens it
    quiet = NoiseFloorTracker(0.035)
    assert quiet.update(-75.0)  # quiet speech over a silent background opens at once
    assert not quiet.update(-95.0)  # below the absolute floor: never


def test_soft_limit_never_reaches_the_ceiling_and_leaves_quiet_samples_alone():
    x = np.linspace(-10, 10, 20001, dtype=np.float32)
    y = soft_limit(x)
    assert np.max(np.abs(y)) <= 0.944 and np.all(np.diff(y) >= 0)  # bounded and monotonic
    small = np.float32([0.1, -0.5, 0.7])
    np.testing.assert_array_equal(soft_limit(small), small)


def test_auto_gain_brings_quiet_speech_up_smoothly():
    x, sr = speech(2.0)
    agc = AutoGain(sr)
    quiet = at_peak(x, -45.0)
    y = np.concatenate([agc.process(quiet[i : i + 441]) for i in range(0, len(quiet), 441)])
    assert rms(y[sr:]) > 10 * rms(quiet[sr:])  # > +20 dB once settled
    assert np.max(np.abs(np.diff(y))) < 0.5  # no steps
