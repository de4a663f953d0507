"""Quality measures for streamed audio: border clicks and pitch accuracy.

:func:`click_score` measures how much louder the signal's sample-to-sample jumps are at one position
of the block grid than elsewhere, which is where a block-wise renderer leaves its seams. Clean speech
scores about 1.2-1.6 (speech is not stationary, so some position is always a bit above the median),
naively concatenated independently rendered blocks 2-5.

:func:`cents_error` compares two F0 tracks against a requested transposition, over the frames that
both estimators call voiced.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from apipeline.audio.convert import check_finite
from apipeline.errors import AudioFormatError, ParameterError

_MIN_BLOCKS = 3


def _mono64(audio: NDArray, where: str) -> NDArray[np.float64]:
    if audio.ndim == 2:
        audio = audio.mean(axis=1)
    elif audio.ndim != 1:
        raise AudioFormatError(f"{where}: expected (frames,) or (frames, channels), got shape {audio.shape}")
    check_finite(audio, where)
    if np.issubdtype(audio.dtype, np.integer):
        return audio.astype(np.float64) / 32768.0
    return audio.astype(np.float64)


def click_score(audio: NDArray, block_size: int, sample_rate: int, *, offset: int = 0) -> float:
    """Ratio of the loudest block-grid position's jump energy to the typical position's.

    Steps: ``d[i] = (x[i] - x[i-1])**2``; fold ``d`` modulo ``block_size`` (position 0 is the jump
    into the first sample of a block; blocks start at ``offset``); take the median over blocks at
    each position (robust to a few loud events); smooth that profile with a circular 1 ms moving
    average; return its maximum divided by its median. The first block is skipped (it has no jump
    into its first sample). Multichannel audio is averaged to mono first.

    Returns 1.0 for digital silence and ``inf`` when only a few positions carry any energy.
    Raises AudioFormatError when fewer than 3 whole blocks follow ``offset``, or on NaN/Inf.
    """
    if block_size <= 0 or sample_rate <= 0:
        raise ParameterError(f"block_size and sample_rate must be positive, got {block_size}, {sample_rate}")
    if not 0 <= offset < block_size:
        raise ParameterError(f"offset must be in [0, block_size), got {offset}")
    x = _mono64(audio, "click_score")
    d = np.zeros_like(x)
    d[1:] = np.diff(x) ** 2
    blocks = (len(x) - offset) // block_size
    if blocks < _MIN_BLOCKS:
        raise AudioFormatError(
            f"click_score needs at least {_MIN_BLOCKS} blocks of {block_size} samples after offset {offset}, "
            f"got {len(x)} samples"
        )
    folded = d[offset : offset + blocks * block_size].reshape(blocks, block_size)[1:]
    profile = np.median(folded, axis=0)
    width = min(block_size, max(1, round(sample_rate / 1000)))
    half = width // 2
    wrapped = np.concatenate([profile[block_size - half :], profile, profile[: width - 1 - half]])
    smooth = np.convolve(wrapped, np.full(width, 1.0 / width), mode="valid")
    peak, typical = float(smooth.max()), float(np.median(smooth))
    if peak == 0.0:
        return 1.0
    if typical == 0.0:
        return float("inf")
    return peak / typical


class PitchError(NamedTuple):
    """Pitch deviation from the requested transposition over frames voiced in both tracks."""

    median_cents: float
    share_over_50: float
    voiced_frames: int


def cents_error(
    f0_ref: NDArray, f0_test: NDArray, shift_semitones: float = 0.0, *, max_length_diff: int = 2
) -> PitchError:
    """Compare ``f0_test`` with ``f0_ref`` transposed by ``shift_semitones``.

    Both tracks are F0 in Hz per frame, with 0 (or NaN, or negative) for unvoiced frames. The error of
    a frame is ``|1200 log2(f0_test / (f0_ref * 2**(shift/12)))|``. Tracks whose lengths differ by up
    to ``max_length_diff`` frames (estimators round the frame count differently) are cut to the shorter;
    a larger difference means misaligned inputs and raises ValueError, as does no frame voiced in both.
    """
    a = np.asarray(f0_ref, dtype=np.float64).reshape(-1)
    b = np.asarray(f0_test, dtype=np.float64).reshape(-1)
    if abs(len(a) - len(b)) > max_length_diff:
        raise ParameterError(
            f"F0 tracks differ in length by {abs(len(a) - len(b))} frames ({len(a)} vs {len(b)}), "
            f"more than max_length_diff={max_length_diff}: align them first"
        )
    n = min(len(a), len(b))
    a, b = a[:n], b[:n]
    with np.errstate(invalid="ignore"):
        voiced = np.isfinite(a) & np.isfinite(b) & (a > 0) & (b > 0)
    count = int(voiced.sum())
    if count == 0:
        raise ParameterError(f"no frame is voiced in both F0 tracks ({n} frames compared)")
    cents = np.abs(1200.0 * np.log2(b[voiced] / (a[voiced] * 2.0 ** (shift_semitones / 12.0))))
    return PitchError(float(np.median(cents)), float(np.mean(cents > 50.0)), count)
