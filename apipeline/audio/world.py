"""WORLD analysis and synthesis (pyworld) on numpy arrays.

:func:`analyze` turns a mono window into :class:`WorldFeatures` (F0 per frame, CheapTrick spectral
envelope, D4C aperiodicity) and :func:`synthesize` turns features back into audio. Frames follow the
convention of :mod:`apipeline.audio.f0`: frame ``i`` sits at ``i * frame_period``. ``frames=(start, stop)``
analyses only a sub-range of frames (the F0 track still covers the whole window): streaming code uses it
to spend CheapTrick/D4C time only on the frames it will keep, which is most of WORLD's cost.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray

from apipeline.audio.f0 import F0Estimator, F0Track, frames_for, get_f0_estimator
from apipeline.audio.f0.base import check_mono
from apipeline.audio.f0.wavelet import import_pyworld


@dataclass(frozen=True, slots=True)
class WorldFeatures:
    """WORLD parameters of a stretch of audio.

    ``f0``: Hz per frame (0 = unvoiced); ``sp``: spectral envelope, power, shape (frames, fft_size//2 + 1);
    ``ap``: aperiodicity in [0, 1], same shape; ``start_frame``: index of the first frame in the analysed
    signal, so the features describe time ``start_frame * frame_period`` onwards.
    """

    f0: NDArray[np.float64]
    sp: NDArray[np.float64]
    ap: NDArray[np.float64]
    frame_period_ms: float
    fft_size: int
    sample_rate: int
    start_frame: int = 0

    def __post_init__(self) -> None:
        bins = self.fft_size // 2 + 1
        n = self.f0.shape[0]
        if self.f0.ndim != 1 or self.sp.shape != (n, bins) or self.ap.shape != (n, bins):
            raise ValueError(
                f"WorldFeatures: expected f0 (n,), sp and ap (n, {bins}); got {self.f0.shape}, "
                f"{self.sp.shape}, {self.ap.shape}"
            )

    @property
    def num_frames(self) -> int:
        return int(self.f0.shape[0])

    @property
    def hop_seconds(self) -> float:
        return self.frame_period_ms / 1000.0

    def with_(self, **changes: object) -> WorldFeatures:
        """A copy with some fields replaced (features are immutable records)."""
        return replace(self, **changes)  # type: ignore[arg-type]


def frame_period_for(sample_rate: int, frame_ms: float) -> tuple[int, float]:
    """The hop in whole samples nearest ``frame_ms`` and the exact frame period in ms it implies.

    Whole-sample hops keep frame times on the sample grid, so windows that start on a frame boundary
    analyse exactly the same instants (5 ms at 22.05 kHz becomes 110 samples = 4.9887 ms).
    """
    hop = max(1, round(sample_rate * frame_ms / 1000.0))
    return hop, hop * 1000.0 / sample_rate


def analyze(
    x: NDArray[np.floating],
    sample_rate: int,
    f0: F0Track | F0Estimator | str = "dio",
    frame_period_ms: float = 5.0,
    frames: tuple[int, int] | None = None,
    f0_floor: float = 71.0,
    aperiodicity_threshold: float = 0.85,
) -> WorldFeatures:
    """WORLD features of mono float audio ``x``.

    ``f0`` is a ready track (resampled onto the frame grid if its hop differs), an estimator, or an
    estimator name. ``f0_floor`` fixes CheapTrick's FFT size (1024 at 16-24 kHz, 2048 at 44.1/48 kHz).
    Raises AudioFormatError for empty, non-float, multichannel or non-finite input.
    """
    pw = import_pyworld()
    audio = check_mono(x, sample_rate, "world.analyze")
    hop_s = frame_period_ms / 1000.0
    n = frames_for(audio.shape[0], sample_rate, hop_s)
    if isinstance(f0, str):
        f0 = get_f0_estimator(f0, hop_seconds=hop_s)
    track = f0.estimate(audio, sample_rate) if isinstance(f0, F0Estimator) else f0
    if track.num_frames != n or abs(track.hop_seconds - hop_s) > 1e-12:
        track = track.resample(hop_s, n)
    start, stop = frames if frames is not None else (0, n)
    if not 0 <= start < stop <= n:
        raise ValueError(
            f"world.analyze: frames must satisfy 0 <= start < stop <= {n}, got ({start}, {stop})"
        )
    f0_sel = np.ascontiguousarray(np.where(track.voiced, track.f0_hz, 0.0)[start:stop], dtype=np.float64)
    times = np.arange(start, stop, dtype=np.float64) * hop_s
    fft_size = int(pw.get_cheaptrick_fft_size(sample_rate, f0_floor))
    sp = pw.cheaptrick(audio, f0_sel, times, sample_rate, f0_floor=f0_floor, fft_size=fft_size)
    ap = pw.d4c(audio, f0_sel, times, sample_rate, threshold=aperiodicity_threshold, fft_size=fft_size)
    return WorldFeatures(f0_sel, sp, ap, frame_period_ms, fft_size, sample_rate, start)


def synthesize(features: WorldFeatures, sample_rate: int | None = None) -> NDArray[np.float64]:
    """Audio (float64) for ``features``; sample 0 is the instant of the first frame (``start_frame``).

    The length is ``num_frames * frame_period`` in samples (rounded as WORLD does).
    """
    pw = import_pyworld()
    rate = features.sample_rate if sample_rate is None else sample_rate
    if rate != features.sample_rate:
        raise ValueError(
            f"world.synthesize: features were analysed at {features.sample_rate} Hz, asked for {rate}"
        )
    y = pw.synthesize(
        np.ascontiguousarray(features.f0, dtype=np.float64),
        np.ascontiguousarray(features.sp, dtype=np.float64),
        np.ascontiguousarray(features.ap, dtype=np.float64),
        rate,
        features.frame_period_ms,
    )
    return np.asarray(y, dtype=np.float64)
