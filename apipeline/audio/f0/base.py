"""The F0 track record, the estimator base class and the name registry.

Frame convention (shared by every estimator and by WORLD): frame ``i`` is centred at ``i * hop_seconds``
from the first sample, and a signal of ``n`` samples at rate ``sr`` has ``floor(n / (hop_seconds * sr)) + 1``
frames. Estimators whose model has its own fixed hop (CREPE, FCPE: 10 ms at 16 kHz) compute at that hop and
are interpolated onto the requested grid by :meth:`F0Track.resample`.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from apipeline.errors import AudioFormatError, ParameterError, UnknownNameError


@dataclass(frozen=True, slots=True)
class F0Track:
    """F0 in Hz per frame (0 where unvoiced), the voicing flags, and the hop between frames in seconds."""

    f0_hz: NDArray[np.float64]
    voiced: NDArray[np.bool_]
    hop_seconds: float

    def __post_init__(self) -> None:
        if self.f0_hz.shape != self.voiced.shape or self.f0_hz.ndim != 1:
            raise ParameterError(
                f"F0Track needs 1-D f0_hz, voiced of equal shape; got {self.f0_hz.shape}, {self.voiced.shape}"
            )
        if not self.hop_seconds > 0:
            raise ParameterError(f"F0Track.hop_seconds must be positive, got {self.hop_seconds}")

    @property
    def num_frames(self) -> int:
        return int(self.f0_hz.shape[0])

    @property
    def times(self) -> NDArray[np.float64]:
        """Centre time of each frame in seconds."""
        return np.arange(self.num_frames, dtype=np.float64) * self.hop_seconds

    def resample(self, hop_seconds: float, num_frames: int) -> F0Track:
        """The track on another grid: log-F0 interpolated across voiced frames, voicing from the nearest."""
        src_t = self.times
        dst_t = np.arange(num_frames, dtype=np.float64) * hop_seconds
        nearest = np.clip(np.rint(dst_t / self.hop_seconds).astype(np.int64), 0, max(self.num_frames - 1, 0))
        if self.num_frames == 0 or not self.voiced.any():
            return F0Track(np.zeros(num_frames), np.zeros(num_frames, dtype=bool), hop_seconds)
        voiced = self.voiced[nearest]
        log_f0 = np.interp(dst_t, src_t[self.voiced], np.log(self.f0_hz[self.voiced]))
        f0 = np.where(voiced, np.exp(log_f0), 0.0)
        return F0Track(f0, voiced, hop_seconds)


def frames_for(num_samples: int, sample_rate: int, hop_seconds: float) -> int:
    """Number of frames a signal has under the frame convention (robust to float rounding of the hop)."""
    return math.floor(num_samples / (hop_seconds * sample_rate) + 1e-9) + 1


def check_mono(x: NDArray[np.floating], sample_rate: int, where: str) -> NDArray[np.float64]:
    """Validate a mono float signal and return it as contiguous float64 (what pyworld and numpy math want)."""
    if not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise AudioFormatError(f"{where}: sample_rate must be a positive int, got {sample_rate!r}")
    arr = np.asarray(x)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise AudioFormatError(f"{where}: expected mono audio of shape (n,) or (n, 1), got shape {arr.shape}")
    if arr.dtype.kind != "f":
        raise AudioFormatError(f"{where}: expected float samples in [-1, 1], got dtype {arr.dtype}")
    if arr.shape[0] == 0:
        raise AudioFormatError(f"{where}: got an empty signal")
    if not np.isfinite(arr).all():
        raise AudioFormatError(f"{where}: the signal contains NaN or Inf samples")
    return np.ascontiguousarray(arr, dtype=np.float64)


class F0Estimator(abc.ABC):
    """Estimates F0 and voicing of mono float audio on a fixed frame grid.

    Subclasses implement :meth:`_estimate` on validated float64 audio and return a track with exactly
    ``frames_for(len(x), sample_rate, hop_seconds)`` frames.
    """

    name: str = ""

    def __init__(self, hop_seconds: float = 0.01, f0_min: float = 60.0, f0_max: float = 1000.0) -> None:
        if not hop_seconds > 0:
            raise ParameterError(f"{type(self).__name__}: hop_seconds must be positive, got {hop_seconds}")
        if not 0 < f0_min < f0_max:
            raise ParameterError(f"{type(self).__name__}: need 0 < f0_min < f0_max, got {f0_min}, {f0_max}")
        self.hop_seconds = float(hop_seconds)
        self.f0_min = float(f0_min)
        self.f0_max = float(f0_max)

    def estimate(self, x: NDArray[np.floating], sample_rate: int) -> F0Track:
        """F0 track of ``x`` (mono float, shape (n,) or (n, 1)) sampled at ``sample_rate`` Hz."""
        audio = check_mono(x, sample_rate, f"{type(self).__name__}.estimate")
        track = self._estimate(audio, int(sample_rate))
        expected = frames_for(audio.shape[0], int(sample_rate), self.hop_seconds)
        if track.num_frames != expected:
            # Off-by-one from float rounding of the frame count inside a backend: fix the grid length here.
            track = _fit_length(track, expected)
        return track

    def estimate_frames(self, x: NDArray[np.floating], sample_rate: int, start: int, stop: int) -> F0Track:
        """Frames ``[start, stop)`` of :meth:`estimate`'s track (frame ``start`` becomes index 0).

        The same values as slicing the whole track; estimators with per-frame work (DIO's StoneMask)
        override it to do that work only on the frames asked for.
        """
        track = self.estimate(x, sample_rate)
        if not 0 <= start <= stop <= track.num_frames:
            raise ParameterError(f"{type(self).__name__}.estimate_frames: bad range [{start}, {stop})")
        return F0Track(track.f0_hz[start:stop].copy(), track.voiced[start:stop].copy(), track.hop_seconds)

    @abc.abstractmethod
    def _estimate(self, x: NDArray[np.float64], sample_rate: int) -> F0Track: ...


def _fit_length(track: F0Track, n: int) -> F0Track:
    if track.num_frames >= n:
        return F0Track(track.f0_hz[:n].copy(), track.voiced[:n].copy(), track.hop_seconds)
    pad = n - track.num_frames
    last_f0 = track.f0_hz[-1:] if track.num_frames else np.zeros(1)
    last_v = track.voiced[-1:] if track.num_frames else np.zeros(1, dtype=bool)
    return F0Track(
        np.concatenate([track.f0_hz, np.repeat(last_f0, pad)]),
        np.concatenate([track.voiced, np.repeat(last_v, pad)]),
        track.hop_seconds,
    )


_REGISTRY: dict[str, Callable[..., F0Estimator]] = {}


def register_f0_estimator(name: str, factory: Callable[..., F0Estimator]) -> None:
    """Make ``factory`` available to :func:`get_f0_estimator` under ``name``."""
    _REGISTRY[name] = factory


def available_f0_estimators() -> list[str]:
    """The registered estimator names, sorted."""
    return sorted(_REGISTRY)


def get_f0_estimator(name: str, **kwargs: object) -> F0Estimator:
    """A new estimator by name (``dio``, ``harvest``, ``fcpe``, ``crepe``/``crepe-tiny``, ``crepe-full``).

    Raises ValueError listing the known names when ``name`` is unknown; never substitutes another estimator.
    """
    try:
        factory = _REGISTRY[name]
    except KeyError:
        known = ", ".join(available_f0_estimators())
        raise UnknownNameError(f"unknown F0 estimator {name!r}; known estimators: {known}") from None
    return factory(**kwargs)
