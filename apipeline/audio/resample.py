"""Streaming sample-rate conversion with no clicks at chunk borders (libsoxr through ``soxr``).

The resampler keeps its filter state between calls, so feeding a signal in chunks of any sizes gives
the same samples as resampling it in one shot (bit-identical with ``soxr.resample`` in our tests).

Latency. soxr produces output in internal blocks: after a chunk goes in, part of the corresponding
output is held back until the next block completes. :attr:`StreamingResampler.delay_seconds` is the
worst case of that hold-back (measured once per configuration by streaming 5 ms chunks of silence),
which is what a real-time budget must reserve; :attr:`StreamingResampler.filter_delay_seconds` is the
smallest hold-back, i.e. the filter's own look-ahead. At "HQ" the worst case is 35-60 ms for the
usual voice rates, at "LQ" about 20 ms; see ``docs/benchmarks.md``.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import soxr
from numpy.typing import NDArray

from apipeline.audio.convert import check_finite
from apipeline.errors import AudioFormatError, ParameterError

QUALITIES = ("QQ", "LQ", "MQ", "HQ", "VHQ")
_PROBE_CHUNK_S = 0.005
_PROBE_WARMUP_S = 0.5
_PROBE_SPAN_S = 1.0


@lru_cache(maxsize=64)
def _measure_holdback(in_rate: int, out_rate: int, quality: str) -> tuple[float, float]:
    """(min, max) output samples held back in steady state when streaming small chunks."""
    stream = soxr.ResampleStream(in_rate, out_rate, 1, dtype="float32", quality=quality)
    chunk = np.zeros(max(1, round(in_rate * _PROBE_CHUNK_S)), dtype=np.float32)
    ratio = out_rate / in_rate
    fed = produced = 0
    lo, hi = float("inf"), 0.0
    steps = int((_PROBE_WARMUP_S + _PROBE_SPAN_S) / _PROBE_CHUNK_S)
    warmup = int(_PROBE_WARMUP_S / _PROBE_CHUNK_S)
    for i in range(steps):
        produced += len(stream.resample_chunk(chunk))
        fed += len(chunk)
        if i >= warmup:
            held = fed * ratio - produced
            lo, hi = min(lo, held), max(hi, held)
    return max(lo, 0.0), hi


class StreamingResampler:
    """Stateful resampler from ``in_rate`` to ``out_rate`` for float32 audio of ``channels`` channels.

    ``process`` takes ``(frames,)`` (mono only) or ``(frames, channels)`` float arrays and returns
    the output available so far with the same number of dimensions. ``flush`` returns the held-back
    tail at the end of a stream and readies the resampler for a new one. Equal rates pass through
    unchanged and add no delay.
    """

    def __init__(self, in_rate: int, out_rate: int, channels: int = 1, quality: str = "HQ") -> None:
        if in_rate <= 0 or out_rate <= 0:
            raise ParameterError(f"sample rates must be positive, got in_rate={in_rate}, out_rate={out_rate}")
        if channels <= 0:
            raise ParameterError(f"channels must be positive, got {channels}")
        if quality not in QUALITIES:
            raise ParameterError(f"quality must be one of {QUALITIES}, got {quality!r}")
        self.in_rate = int(in_rate)
        self.out_rate = int(out_rate)
        self.channels = channels
        self.quality = quality
        self.frames_in = 0
        self.frames_out = 0
        self._ndim = 1 if channels == 1 else 2
        self._stream: soxr.ResampleStream | None = None
        if self.in_rate != self.out_rate:
            self._stream = soxr.ResampleStream(self.in_rate, self.out_rate, channels, "float32", quality)

    @property
    def is_identity(self) -> bool:
        return self._stream is None

    @property
    def delay_seconds(self) -> float:
        """Worst-case output held back in steady state (the latency a real-time budget must reserve)."""
        if self._stream is None:
            return 0.0
        return _measure_holdback(self.in_rate, self.out_rate, self.quality)[1] / self.out_rate

    @property
    def filter_delay_seconds(self) -> float:
        """Smallest steady-state hold-back: the resampling filter's own look-ahead."""
        if self._stream is None:
            return 0.0
        return _measure_holdback(self.in_rate, self.out_rate, self.quality)[0] / self.out_rate

    def _check(self, x: NDArray) -> NDArray[np.float32]:
        if x.ndim not in (1, 2):
            raise AudioFormatError(f"resampler expects (frames,) or (frames, channels), got shape {x.shape}")
        ch = 1 if x.ndim == 1 else x.shape[1]
        if ch != self.channels:
            raise AudioFormatError(f"resampler configured for {self.channels} channel(s), got {ch}")
        if not np.issubdtype(x.dtype, np.floating):
            raise AudioFormatError(
                f"resampler expects float audio, got {x.dtype}; convert with to_float32 first"
            )
        check_finite(x, f"resampler {self.in_rate}->{self.out_rate} Hz")
        return np.ascontiguousarray(x, dtype=np.float32)

    def process(self, x: NDArray) -> NDArray[np.float32]:
        """Feed one chunk; return the output samples now available (possibly none)."""
        xf = self._check(x)
        self._ndim = xf.ndim
        self.frames_in += len(xf)
        if self._stream is None:
            self.frames_out += len(xf)
            return xf
        y = self._stream.resample_chunk(xf)
        self.frames_out += len(y)
        return y

    def flush(self) -> NDArray[np.float32]:
        """End the stream: return the held-back tail (shaped like the last input), then reset."""
        shape: tuple[int, ...] = (0,) if self._ndim == 1 else (0, self.channels)
        if self._stream is None:
            return np.zeros(shape, dtype=np.float32)
        tail = self._stream.resample_chunk(np.zeros(shape, dtype=np.float32), last=True)
        self.reset()
        return tail

    def reset(self) -> None:
        """Drop all state (held-back samples included) and start a new stream."""
        if self._stream is not None:
            self._stream.clear()
        self.frames_in = 0
        self.frames_out = 0
