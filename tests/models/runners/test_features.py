"""Pure feature plumbing: coarse pitch, unvoiced filling, frame alignment, mel2ph, speaker mixes."""

from __future__ import annotations

import numpy as np
import pytest

from apipeline.models.runners.features import (
    align_f0,
    expand_frames,
    f0_to_coarse,
    fill_unvoiced,
    frame_rms,
    mel2ph,
    speaker_mix,
)


def test_f0_to_coarse_bins_ends_and_monotonicity():
    f0 = np.array([0.0, 10.0, 50.0, 1100.0, 5000.0])
    assert f0_to_coarse(f0).tolist() == [1, 1, 1, 255, 255]
    sweep = f0_to_coarse(np.geomspace(50, 1100, 500))
    assert (np.diff(sweep) >= 0).all() and sweep.dtype == np.int64
    # mel spacing: an octave high up spans fewer bins than the same ratio low down is not true on mel,
    # but equal mel steps map to equal bin steps
    mel = np.linspace(1127 * np.log1p(50 / 700), 1127 * np.log1p(1100 / 700), 255)
    hz = 700 * np.expm1(mel / 1127)
    assert f0_to_coarse(hz).tolist() == list(range(1, 256))


def test_fill_unvoiced_bridges_gaps_and_reports_voicing():
    f0, uv = fill_unvoiced([0, 100, 0, 0, 200, 0])
    assert f0.tolist() == pytest.approx([100, 100, 133.333, 166.667, 200, 200], abs=1e-3)
    assert uv.tolist() == [0, 1, 0, 0, 1, 0]
    assert fill_unvoiced([0, 0])[0].tolist() == [0, 0]


def test_align_f0_keeps_pitch_and_gaps():
    src = np.array([100.0] * 10 + [0.0] * 10 + [200.0] * 10)
    out = align_f0(src, 60)
    assert out.shape == (60,)
    assert out[:18] == pytest.approx(100, rel=1e-5)
    assert (out[22:38] == 0).all()
    assert out[-18:] == pytest.approx(200, rel=1e-5)


def test_mel2ph_and_expand_modes():
    assert mel2ph(3, 7).tolist() == [0, 0, 0, 1, 1, 2, 2]
    c = np.arange(3, dtype=np.float32)[:, None] * [1, 10]
    assert expand_frames(c, 7, "left")[:, 0].tolist() == [0, 0, 0, 1, 1, 2, 2]
    assert expand_frames(c, 6, "nearest")[:, 0].tolist() == [0, 0, 1, 1, 2, 2]
    lin = expand_frames(c, 6, "linear")[:, 1]
    assert lin[0] == 0 and lin[-1] == 20 and (np.diff(lin) >= 0).all()
    with pytest.raises(ValueError, match="mode must be"):
        expand_frames(c, 4, "cubic")
    with pytest.raises(ValueError, match="content must be"):
        expand_frames(np.zeros(3), 4)


def test_speaker_mix_tracks_are_normalised_per_frame():
    mix = {0: [[0.0, 0.5, 1, 0.5], [0.5, 1, 0.5, 1]], 1: [[0.0, 0.35, 1, 0.5], [0.35, 1, 0.5, 1]]}
    w = speaker_mix(mix, 100, 3)
    assert w.shape == (100, 3) and np.allclose(w.sum(axis=1), 1)
    assert (w[:, 2] == 0).all()
    assert w[0, 0] == pytest.approx(w[0, 1], abs=0.02)  # both start near 1
    assert speaker_mix(2, 4, 3).tolist() == [[0, 0, 1]] * 4
    assert speaker_mix({0: 3.0, 1: 1.0}, 2, 2).tolist() == [[0.75, 0.25]] * 2


@pytest.mark.parametrize(
    ("mix", "message"),
    [
        ({0: [[0.1, 1, 1, 1]]}, "start at time 0 and end at 1"),
        ({0: [[0, 0.5, 1, 1], [0.6, 1, 1, 1]]}, "followed by one starting at 0.6"),
        ({0: [[0, 1, 1]]}, "each segment is"),
        ({5: 1.0}, "speaker id 5 out of range"),
        ({0: [[0, 1, 0, 0]]}, "every weight is 0 at frame 0"),
        ({0: -1.0}, "finite and >= 0"),
        (np.ones((3, 2)), "must be \\(4, 2\\)"),
    ],
)
def test_speaker_mix_refuses_malformed_tracks(mix, message):
    with pytest.raises(ValueError, match=message):
        speaker_mix(mix, 4, 2)


def test_frame_rms():
    x = np.concatenate([np.ones(100), np.zeros(100)])
    assert frame_rms(x, 100, 3).tolist() == [1, 0, 0]
