import numpy as np
import pytest
import soxr

from apipeline.audio.resample import StreamingResampler
from apipeline.errors import AudioFormatError

RATE_PAIRS = [(44100, 16000), (16000, 48000), (22050, 16000), (16000, 22050), (48000, 24000)]


def _stream(r: StreamingResampler, x: np.ndarray, rng: np.random.Generator, max_chunk: int) -> np.ndarray:
    out, pos = [], 0
    while pos < len(x):
        n = int(rng.integers(1, max_chunk + 1))
        out.append(r.process(x[pos : pos + n]))
        pos += n
    out.append(r.flush())
    return np.concatenate(out)


@pytest.mark.parametrize("in_rate,out_rate", RATE_PAIRS)
def test_random_chunks_equal_one_shot(in_rate: int, out_rate: int):
    rng = np.random.default_rng(in_rate + out_rate)
    x = (rng.standard_normal(in_rate // 2) * 0.1).astype(np.float32)
    ref = soxr.resample(x, in_rate, out_rate, quality="HQ")
    y = _stream(StreamingResampler(in_rate, out_rate), x, rng, max_chunk=700)
    assert y.shape == ref.shape
    np.testing.assert_allclose(y, ref, atol=1e-6)
    assert abs(len(y) - len(x) * out_rate / in_rate) <= 1


def test_stereo_2d_chunks_equal_one_shot():
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((8000, 2)) * 0.1).astype(np.float32)
    ref = soxr.resample(x, 16000, 24000)
    y = _stream(StreamingResampler(16000, 24000, channels=2), x, rng, max_chunk=333)
    assert y.shape == ref.shape == (12000, 2)
    np.testing.assert_allclose(y, ref, atol=1e-6)


def test_sine_stays_continuous_across_borders():
    """A 440 Hz sine streamed in 10 ms chunks matches the ideal sine at the new rate (no border glitches)."""
    fi, fo = 44100, 16000
    t = np.arange(fi) / fi
    x = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    r = StreamingResampler(fi, fo)
    y = np.concatenate([r.process(x[i : i + 441]) for i in range(0, fi, 441)] + [r.flush()])
    ideal = 0.5 * np.sin(2 * np.pi * 440 * np.arange(fo) / fo)
    core = slice(400, fo - 400)  # away from the signal's own start and end
    assert np.abs(y[core] - ideal[core]).max() < 2e-3
    d = np.abs(np.diff(y[core]))
    assert d.max() < 1.05 * 0.5 * 2 * np.pi * 440 / fo  # slope never exceeds the sine's own


def test_identity_when_rates_equal():
    r = StreamingResampler(16000, 16000)
    x = np.linspace(-1, 1, 100, dtype=np.float32)
    np.testing.assert_array_equal(r.process(x), x)
    assert r.flush().shape == (0,)
    assert r.delay_seconds == 0.0 and r.is_identity


def test_delay_bounds_the_hold_back():
    r = StreamingResampler(44100, 16000)
    assert 0.0 < r.filter_delay_seconds < r.delay_seconds < 0.1
    rng = np.random.default_rng(3)
    fed = made = 0
    worst = 0.0
    for _ in range(400):
        n = int(rng.integers(1, 882))  # chunks up to 20 ms
        made += len(r.process(np.zeros(n, dtype=np.float32)))
        fed += n
        worst = max(worst, fed * 16000 / 44100 - made)
    assert worst <= r.delay_seconds * 16000 + 1


def test_bad_input_refused_and_state_kept():
    rng = np.random.default_rng(4)
    x = (rng.standard_normal(4000) * 0.1).astype(np.float32)
    r = StreamingResampler(16000, 22050)
    parts = [r.process(x[:2000])]
    bad = x[2000:2100].copy()
    bad[50] = np.nan
    with pytest.raises(AudioFormatError, match=r"sample 50"):
        r.process(bad)
    with pytest.raises(AudioFormatError, match=r"2 channel|configured for 1"):
        r.process(np.zeros((10, 2), dtype=np.float32))
    with pytest.raises(AudioFormatError, match=r"int16"):
        r.process(np.zeros(10, dtype=np.int16))
    parts += [r.process(x[2000:]), r.flush()]
    np.testing.assert_allclose(np.concatenate(parts), soxr.resample(x, 16000, 22050), atol=1e-6)


def test_reusable_after_flush():
    x = (np.random.default_rng(5).standard_normal(3000) * 0.1).astype(np.float32)
    r = StreamingResampler(24000, 16000)
    first = np.concatenate([r.process(x), r.flush()])
    second = np.concatenate([r.process(x), r.flush()])
    np.testing.assert_array_equal(first, second)


def test_bad_config():
    with pytest.raises(ValueError, match=r"quality"):
        StreamingResampler(16000, 8000, quality="best")
    with pytest.raises(ValueError, match=r"positive"):
        StreamingResampler(0, 8000)
