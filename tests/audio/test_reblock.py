import numpy as np
import pytest

from apipeline.audio.reblock import Reblocker
from apipeline.errors import AudioFormatError


def _expected_windows(x: np.ndarray, block: int, ctx: int) -> list[np.ndarray]:
    padded = np.concatenate([np.zeros((ctx, *x.shape[1:]), x.dtype), x])
    return [padded[i * block : i * block + ctx + block] for i in range(len(x) // block)]


def _push_random(r: Reblocker, x: np.ndarray, rng: np.random.Generator, max_chunk: int) -> list[np.ndarray]:
    out, pos = [], 0
    while pos < len(x):
        n = int(rng.integers(0, max_chunk + 1))  # empty chunks included
        out += r.push(x[pos : pos + n])
        pos += n
    return out


@pytest.mark.parametrize("block,ctx", [(160, 0), (160, 480), (256, 100), (64, 300), (1, 3)])
def test_random_chunks_give_exact_windows(block: int, ctx: int):
    rng = np.random.default_rng(block * 1000 + ctx)
    x = rng.standard_normal(5000).astype(np.float32)
    r = Reblocker(block, ctx)
    got = _push_random(r, x, rng, max_chunk=3 * block + 7)
    want = _expected_windows(x, block, ctx)
    assert len(got) == len(want) == 5000 // block
    for g, w in zip(got, want, strict=True):
        assert g.shape == (ctx + block,)
        np.testing.assert_array_equal(g, w)
    final = r.flush()
    rest = 5000 % block
    if rest == 0:
        assert final is None
    else:
        assert final is not None and final.valid == rest
        np.testing.assert_array_equal(final.window[ctx : ctx + rest], x[-rest:])
        assert not final.window[ctx + rest :].any()
        np.testing.assert_array_equal(
            final.window[:ctx], np.concatenate([np.zeros(ctx), x])[-rest - ctx : -rest]
        )


def test_stereo_windows_keep_2d():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1000, 2)).astype(np.float32)
    r = Reblocker(100, 50, channels=2)
    got = _push_random(r, x, rng, max_chunk=170)
    want = _expected_windows(x, 100, 50)
    assert [g.shape for g in got] == [(150, 2)] * 10
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)


def test_windows_are_independent_copies():
    r = Reblocker(4, 2)
    w1 = r.push(np.arange(4, dtype=np.float32))[0]
    w1[:] = -1
    w2 = r.push(np.arange(4, 8, dtype=np.float32))[0]
    np.testing.assert_array_equal(w2, [2, 3, 4, 5, 6, 7])


def test_one_big_push_is_linear():
    """A single 10^6-frame push makes exactly n // block windows, each correct (no re-concatenation)."""
    x = np.arange(1_000_000, dtype=np.float32)
    r = Reblocker(1000, 3000)
    wins = r.push(x)
    assert len(wins) == 1000
    np.testing.assert_array_equal(wins[-1], x[-4000:])
    assert r.pending == 0 and r.flush() is None


def test_bad_input():
    r = Reblocker(10, channels=2)
    with pytest.raises(AudioFormatError, match=r"\(frames, 2\).*shape \(5,\)"):
        r.push(np.zeros(5, dtype=np.float32))
    with pytest.raises(AudioFormatError, match=r"int16"):
        r.push(np.zeros((5, 2), dtype=np.int16))
    with pytest.raises(ValueError, match=r"block_size"):
        Reblocker(0)


def test_flush_resets():
    r = Reblocker(4, 2)
    r.push(np.ones(6, dtype=np.float32))
    final = r.flush()
    assert final is not None and final.valid == 2
    np.testing.assert_array_equal(r.push(np.full(4, 2.0, dtype=np.float32))[0], [0, 0, 2, 2, 2, 2])
