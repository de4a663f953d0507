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

from apipeline.audio.f0.base import F0Estimator, F0Track, register_f0_estimator


def import_pyworld() -> ModuleType:
    """pyworld, imported with its pkg_resources deprecation warning silenced (it is not ours to fix)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        import pyworld

    return pyworld


class DioEstimator(F0Estimator):
    """WORLD DIO followed by StoneMask refinement.

    ``speed`` (1-12) trades accuracy for decimation speed; ``allowed_range`` (>= 0, pyworld's default 0.1)
    is DIO's voicing threshold: how much a frame's F0 candidate may fluctuate and still be called voiced
    (lower calls fewer frames voiced; 0 calls almost none).
    """

    name = "dio"

    def __init__(
        self,
        hop_seconds: float = 0.01,
        f0_min: float = 60.0,
        f0_max: float = 1000.0,
        speed: int = 1,
        refine: bool = True,
        allowed_range: float = 0.1,
    ) -> None:
        super().__init__(hop_seconds, f0_min, f0_max)
        if not 1 <= speed <= 12:
            raise ValueError(f"DioEstimator: speed must be within 1..12, got {speed}")
        if not allowed_range >= 0.0:
            raise ValueError(f"DioEstimator: allowed_range must be >= 0, got {allowed_range}")
        self.speed = speed
        self.refine = refine
        self.allowed_range = allowed_range
        self._pw = import_pyworld()

    def _estimate(self, x: NDArray[np.float64], sample_rate: int) -> F0Track:
        period_ms = self.hop_seconds * 1000.0
        f0, t = self._pw.dio(
            x,
            sample_rate,
            f0_floor=self.f0_min,
            f0_ceil=self.f0_max,
            frame_period=period_ms,
            speed=self.speed,
            allowed_range=self.allowed_range,
        )
        if self.refine:
            f0 = self._pw.stonemask(x, f0, t, sample_rate)
        f0 = np.asarray(f0, dtype=np.float64)
        voiced = f0 > 0
        return F0Track(np.where(voiced, f0, 0.0), voiced, self.hop_seconds)


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
