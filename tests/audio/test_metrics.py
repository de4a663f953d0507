import numpy as np
import pytest

from apipeline.audio.metrics import cents_error, click_score
from apipeline.errors import AudioFormatError

SR = 16000


def _harmonic(seconds: float, seed: int = 0) -> np.ndarray:
    """A voice-like harmonic tone whose F0 wanders between ~110 and ~190 Hz, plus a little noise.

    The wandering matters: a fixed F0 commensurate with the block would lock the waveform to the grid.
    """
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    f0 = 150 + 40 * np.sin(2 * np.pi * 0.7 * t + rng.uniform(0, 6)) * np.sin(2 * np.pi * 0.23 * t + 1)
    phase = 2 * np.pi * np.cumsum(f0) / SR
    x = sum(np.sin(k * phase) / k for k in range(1, 8))
    return (0.2 * x + 0.003 * rng.standard_normal(len(t))).astype(np.float32)


def test_clean_signal_scores_low():
    assert click_score(_harmonic(3.0), 640, SR) < 1.6


def test_block_border_discontinuities_score_high():
    x = _harmonic(3.0)
    block = 640
    y = x.copy()
    for start in range(block, len(y), block):  # each block rendered with a phase-shifted copy
        y[start : start + block] = np.roll(x, 37 * (start // block))[start : start + block]
    assert click_score(y, block, SR) > 3.0
    # the seams sit at position 0: with a half-block offset the folding puts them mid-profile, same peak
    assert click_score(y, block, SR, offset=block // 2) == pytest.approx(click_score(y, block, SR), rel=0.2)


def test_click_score_sees_border_not_elsewhere():
    """An impulse at every block start is a click; the same impulse at random places is not."""
    rng = np.random.default_rng(1)
    base = (0.01 * rng.standard_normal(SR * 3)).astype(np.float32)
    grid = base.copy()
    grid[::640] += 0.2
    scattered = base.copy()
    scattered[rng.integers(0, len(base), len(base) // 640)] += 0.2
    assert click_score(grid, 640, SR) > 5 * click_score(scattered, 640, SR)


def test_click_score_edge_cases():
    assert click_score(np.zeros(SR), 160, SR) == 1.0
    with pytest.raises(AudioFormatError, match=r"at least 3 blocks"):
        click_score(np.zeros(1000), 400, SR)
    with pytest.raises(AudioFormatError, match=r"NaN|nan"):
        click_score(np.full(SR, np.nan), 160, SR)
    stereo = np.stack([_harmonic(1.0), _harmonic(1.0)], axis=1)
    assert click_score(stereo, 320, SR) == pytest.approx(click_score(_harmonic(1.0), 320, SR))


def test_cents_error_exact_shift():
    ref = np.array([0, 100, 200, 0, 150, 300], dtype=float)
    err = cents_error(ref, ref * 2 ** (4 / 12), 4)
    assert err.median_cents == pytest.approx(0, abs=1e-9)
    assert err.share_over_50 == 0 and err.voiced_frames == 4


def test_cents_error_counts_outliers_and_voicing():
    ref = np.full(10, 200.0)
    test = ref * 2 ** (-5 / 12)
    test[:3] *= 2 ** (60 / 1200)  # 3 frames 60 cents sharp
    test[9] = 0.0  # unvoiced in test only
    test[8] = np.nan
    err = cents_error(ref, test, -5)
    assert err.voiced_frames == 8
    assert err.share_over_50 == pytest.approx(3 / 8)
    assert err.median_cents == pytest.approx(0, abs=1e-9)


def test_cents_error_length_checks():
    assert cents_error(np.full(10, 100.0), np.full(12, 100.0)).voiced_frames == 10
    with pytest.raises(ValueError, match=r"differ in length by 5"):
        cents_error(np.full(10, 100.0), np.full(15, 100.0))
    with pytest.raises(ValueError, match=r"no frame is voiced"):
        cents_error(np.zeros(5), np.full(5, 100.0))
