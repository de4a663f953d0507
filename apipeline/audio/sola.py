"""SOLA (synchronous overlap-add) stitching of block-wise rendered audio.

A block renderer (voice conversion, vocoder) produces, for every new input block, output audio whose
start overlaps the end of the previous block's output but is not sample-exactly consistent with it:
its waveform phase differs a little. Concatenating such blocks clicks at every border. SOLA searches a
small window for the offset where the new output best matches the stored tail of the previous one,
then crossfades over the tail.

With ``B`` the block, ``N`` the crossfade and ``S`` the search length, each call receives the newest
``B + N + S`` output samples ``y`` (so that ``y[0]`` continues the stored tail ``b[0]`` when the renderer
is consistent) and returns exactly ``B`` samples:

- ``r[k] = sum_n y[k+n] b[n] / sqrt(sum_n y[k+n]**2 + eps)`` for ``k = 0..S``; ``k* = argmax r``;
- ``o[n] = w_in[n] y[k*+n] + w_out[n] b[n]`` for ``n < N``, then ``o[n] = y[k*+n]`` up to ``B``;
- the new tail is ``y[k*+B : k*+B+N]``.

The output is exactly ``B`` samples per call, so it never drifts from the input clock. The stitch
delays the signal by ``N + S - k*`` samples, at most ``N + S`` (:attr:`SolaStitcher.latency_samples`).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from apipeline.audio.convert import check_finite
from apipeline.errors import AudioFormatError, ParameterError

FADES = ("sin2", "linear", "equal_power")


def fade_weights(size: int, fade: str) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The (fade-in, fade-out) weights of a crossfade of ``size`` samples.

    ``sin2`` (sin²/cos²) and ``linear`` sum to 1 at every sample: right for correlated signals, which
    SOLA aligns. ``equal_power`` (sin/cos) keeps the power constant instead: right for uncorrelated
    signals (noise), 3 dB too loud mid-fade for correlated ones.
    """
    if fade not in FADES:
        raise ParameterError(f"fade must be one of {FADES}, got {fade!r}")
    t = (np.arange(size) + 0.5) / max(size, 1)
    if fade == "linear":
        w_in = t
    elif fade == "sin2":
        w_in = np.sin(0.5 * np.pi * t) ** 2
    else:
        w_in = np.sin(0.5 * np.pi * t)
        return w_in, np.cos(0.5 * np.pi * t)
    return w_in, 1.0 - w_in


class SolaStitcher:
    """Stitch rendered blocks with an offset search and a crossfade; see the module docstring.

    Args:
        block_size: ``B``, samples returned per call.
        crossfade_size: ``N`` (0 <= N <= B), the crossfade length and the stored tail length.
        search_size: ``S`` (>= 0), the largest offset searched. Without a crossfade there is no tail to
            match and the offset stays 0.
        fade: ``"sin2"`` (default), ``"linear"`` or ``"equal_power"``; see :func:`fade_weights`.

    ``process`` takes ``(input_size,)`` or ``(input_size, channels)`` float audio; the offset search
    sums the correlation over channels so that every channel shifts alike.
    """

    def __init__(self, block_size: int, crossfade_size: int, search_size: int, fade: str = "sin2") -> None:
        if block_size <= 0:
            raise ParameterError(f"block_size must be positive, got {block_size}")
        if not 0 <= crossfade_size <= block_size:
            raise ParameterError(
                f"crossfade_size must be in [0, block_size={block_size}], got {crossfade_size}"
            )
        if search_size < 0:
            raise ParameterError(f"search_size must be >= 0, got {search_size}")
        self.block_size = block_size
        self.crossfade_size = crossfade_size
        self.search_size = search_size
        self.fade = fade
        w_in, w_out = fade_weights(crossfade_size, fade)
        self._w_in = w_in[:, None]
        self._w_out = w_out[:, None]
        self._tail: NDArray | None = None
        self.last_offset = 0

    @property
    def input_size(self) -> int:
        """Samples ``process`` expects per call: block + crossfade + search."""
        return self.block_size + self.crossfade_size + self.search_size

    @property
    def latency_samples(self) -> int:
        """Worst-case delay the stitch adds: crossfade + search."""
        return self.crossfade_size + self.search_size

    def _best_offset(self, y: NDArray, tail: NDArray) -> int:
        n, s = self.crossfade_size, self.search_size
        if n == 0 or s == 0:
            return 0
        seg = y[: n + s].astype(np.float64)
        num = np.zeros(s + 1)
        for c in range(seg.shape[1]):
            num += np.correlate(seg[:, c], tail[:, c], mode="valid")
        power = np.concatenate([[0.0], np.cumsum((seg * seg).sum(axis=1))])
        energy = power[n:] - power[:-n]
        eps = 1e-12 * n * seg.shape[1]
        return int(np.argmax(num / np.sqrt(np.maximum(energy, 0.0) + eps)))

    def process(self, y: NDArray) -> NDArray:
        """Stitch one rendered window; return exactly ``block_size`` samples (same ndim and dtype)."""
        if y.ndim not in (1, 2) or len(y) != self.input_size:
            raise AudioFormatError(
                f"SOLA expects {self.input_size} samples (block {self.block_size} + crossfade "
                f"{self.crossfade_size} + search {self.search_size}), got shape {y.shape}"
            )
        if not np.issubdtype(y.dtype, np.floating):
            raise AudioFormatError(f"SOLA expects float audio, got {y.dtype}")
        check_finite(y, "SOLA stitcher")
        y2 = y.reshape(len(y), -1)
        if self._tail is not None and self._tail.shape[1] != y2.shape[1]:
            raise AudioFormatError(f"SOLA got {y2.shape[1]} channel(s) after {self._tail.shape[1]}")
        b, n = self.block_size, self.crossfade_size
        k = 0 if self._tail is None else self._best_offset(y2, self._tail)
        out = y2[k : k + b].copy()
        if self._tail is not None and n:
            out[:n] = self._w_in * y2[k : k + n] + self._w_out * self._tail
        self._tail = y2[k + b : k + b + n].copy()
        self.last_offset = k
        return out if y.ndim == 2 else out[:, 0]

    def reset(self) -> None:
        """Forget the stored tail: the next call passes through like the first."""
        self._tail = None
        self.last_offset = 0
