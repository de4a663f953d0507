"""WORLD's own F0 estimators through pyworld: ``dio`` (+ ``stonemask`` refinement) and ``harvest``.

``dio`` is fast (about 1 ms per 150 ms window at 22.05 kHz) and is the streaming default; note that it
reports nothing voiced on windows shorter than about 120 ms, so streaming callers give it that much context.
``harvest`` is more robust but ~20x slower (0.2-0.4 real-time factor), fine offline or as a reference.
"""

from __future__ import annotations

import warnings
from types import ModuleType

import numpy as np
from numpy.typing import NDArray

from apipeline.audio.f0.base import F0Estimator, F0Track, check_mono, frames_for, register_f0_estimator
from apipeline.errors import ParameterError

DIO_RATE = 8000.0
"""Rate (Hz) that ``DioEstimator(speed=None)`` decimates to."""


def import_pyworld() -> ModuleType:
    """pyworld, imported with its pkg_resources deprecation warning silenced (it is not ours to fix)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        import pyworld

    return pyworld


class DioEstimator(F0Estimator):
    """WORLD DIO followed by StoneMask refinement.

    ``speed`` (1-12) is DIO's decimation factor (higher is faster and coarser; StoneMask then refines at
    the full rate); ``None`` picks the factor that brings any input rate near 8 kHz (:meth:`decimation`).
    ``allowed_range`` (>= 0, pyworld's default 0.1)
    is DIO's voicing threshold: how much a frame's F0 candidate may fluctuate and still be called voiced
    (lower calls fewer frames voiced; 0 calls almost none).
    """

    name = "dio"

    def __init__(
        self,
        hop_seconds: float = 0.01,
        f0_min: float = 60.0,
        f0_max: float = 1000.0,
        speed: int | None = None,
        refine: bool = True,
        allowed_range: float = 0.1,
    ) -> None:
        super().__init__(hop_seconds, f0_min, f0_max)
        if speed is not None and not 1 <= speed <= 12:
            raise ParameterError(f"DioEstimator: speed must be within 1..12, got {speed}")
        if not allowed_range >= 0.0:
            raise ParameterError(f"DioEstimator: allowed_range must be >= 0, got {allowed_range}")
        self.speed = speed
        self.refine = refine
        self.allowed_range = allowed_range
        self._pw = import_pyworld()

    def decimation(self, sample_rate: int) -> int:
        """DIO's decimation factor at ``sample_rate``: ``speed``, or with ``speed=None`` the factor that
        brings the signal nearest to :data:`DIO_RATE` (DIO only needs the band below the F0 ceiling;
        StoneMask refines at the full rate)."""
        if self.speed is not None:
            return self.speed
        return int(min(12, max(1, round(sample_rate / DIO_RATE))))

    def _raw(
        self, x: NDArray[np.float64], sample_rate: int
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        f0, t = self._pw.dio(
            x,
            sample_rate,
            f0_floor=self.f0_min,
            f0_ceil=self.f0_max,
            frame_period=self.hop_seconds * 1000.0,
            speed=self.decimation(sample_rate),
            allowed_range=self.allowed_range,
        )
        return np.asarray(f0, dtype=np.float64), np.asarray(t, dtype=np.float64)

    def _estimate(self, x: NDArray[np.float64], sample_rate: int) -> F0Track:
        f0, t = self._raw(x, sample_rate)
        if self.refine:
            f0 = np.asarray(self._pw.stonemask(x, f0, t, sample_rate), dtype=np.float64)
        voiced = f0 > 0
        return F0Track(np.where(voiced, f0, 0.0), voiced, self.hop_seconds)

    def estimate_frames(self, x: NDArray[np.floating], sample_rate: int, start: int, stop: int) -> F0Track:
        """DIO over all of ``x``, StoneMask only on frames ``[start, stop)`` (it refines frame by frame,
        so the values equal :meth:`estimate`'s)."""
        audio = check_mono(x, sample_rate, "DioEstimator.estimate_frames")
        n = frames_for(audio.shape[0], int(sample_rate), self.hop_seconds)
        if not 0 <= start <= stop <= n:
            raise ParameterError(f"DioEstimator.estimate_frames: bad range [{start}, {stop}) of {n} frames")
        f0, t = self.raw_frames(audio, int(sample_rate), n)
        f0, t = np.ascontiguousarray(f0[start:stop]), np.ascontiguousarray(t[start:stop])
        if self.refine and f0.shape[0]:
            f0 = self.refine_frames(audio, int(sample_rate), f0, t)
        voiced = f0 > 0
        return F0Track(np.where(voiced, f0, 0.0), voiced, self.hop_seconds)

    def raw_frames(
        self, audio: NDArray[np.float64], sample_rate: int, n: int
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """DIO's unrefined F0 and frame times over validated ``audio``, fitted to ``n`` frames."""
        f0, t = self._raw(audio, sample_rate)
        if f0.shape[0] < n:  # float rounding of the frame count inside DIO: same fix as estimate()
            f0 = np.concatenate([f0, np.repeat(f0[-1:], n - f0.shape[0])])
            t = np.arange(n, dtype=np.float64) * self.hop_seconds
        return f0[:n], t[:n]

    def refine_frames(
        self, audio: NDArray[np.float64], sample_rate: int, f0: NDArray[np.float64], t: NDArray[np.float64]
    ) -> NDArray[np.float64]:
        """StoneMask of the frames at times ``t`` with DIO F0 ``f0``: each from the samples within
        :meth:`refine_reach` of its instant only."""
        f0, t = np.ascontiguousarray(f0, dtype=np.float64), np.ascontiguousarray(t, dtype=np.float64)
        return np.asarray(self._pw.stonemask(audio, f0, t, sample_rate), dtype=np.float64)

    @staticmethod
    def refine_reach(f0: NDArray[np.float64], sample_rate: int) -> NDArray[np.int64]:
        """Samples each side of a frame's centre that StoneMask reads for DIO F0 ``f0`` (WORLD: a
        window of 3 periods, ``int(1.5 fs / f0 + 1)`` each side, one more sample before), 0 where it
        reads none (F0 at or below 40 Hz or above ``fs / 12``: the frame is unvoiced)."""
        f = np.asarray(f0, dtype=np.float64)
        reads = (f > 40.0) & (f <= sample_rate / 12.0)
        half = np.where(reads, (1.5 * sample_rate / np.where(reads, f, 1.0) + 1.0).astype(np.int64) + 1, 0)
        return half.astype(np.int64)


class HarvestEstimator(F0Estimator):
    """WORLD Harvest: robust voicing and few octave errors, but slow (not for small streaming blocks)."""

    name = "harvest"

    def __init__(self, hop_seconds: float = 0.01, f0_min: float = 60.0, f0_max: float = 1000.0) -> None:
        super().__init__(hop_seconds, f0_min, f0_max)
        self._pw = import_pyworld()

    def _estimate(self, x: NDArray[np.float64], sample_rate: int) -> F0Track:
        f0, _ = self._pw.harvest(
            x, sample_rate, f0_floor=self.f0_min, f0_ceil=self.f0_max, frame_period=self.hop_seconds * 1000.0
        )
        f0 = np.asarray(f0, dtype=np.float64)
        voiced = f0 > 0
        return F0Track(np.where(voiced, f0, 0.0), voiced, self.hop_seconds)


register_f0_estimator("dio", DioEstimator)
register_f0_estimator("harvest", HarvestEstimator)
