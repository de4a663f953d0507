"""WORLD analysis and synthesis (pyworld) on numpy arrays.

:func:`analyze` turns a mono window into :class:`WorldFeatures` (F0 per frame, CheapTrick spectral
envelope, D4C aperiodicity) and :func:`synthesize` turns features back into audio. Frames follow the
convention of :mod:`apipeline.audio.f0`: frame ``i`` sits at ``i * frame_period``. ``frames=(start, stop)``
analyses only a sub-range of frames (the F0 track still covers the whole window): streaming code uses it
to spend CheapTrick/D4C time only on the frames it will keep, which is most of WORLD's cost.

Phase-locked synthesis (:func:`synthesize_phase_locked`, :func:`excitation_phase`): WORLD starts every
synthesis with its pulse train at phase 0, so two windows rendered separately place their pulses
independently and do not overlap-add coherently. The pulse instants are a pure function of the F0
track (see :func:`excitation_phase`), so a synthesis can be made to continue another's pulse train: two
lead-in frames are put before the first frame and their F0 is solved for so that the excitation phase
reaches a requested value at a requested sample; the lead-in audio is then dropped.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, replace
from types import ModuleType

import numpy as np
import soxr
from numpy.typing import NDArray

from apipeline.audio.f0 import F0Estimator, F0Track, frames_for, get_f0_estimator
from apipeline.audio.f0.base import check_mono
from apipeline.audio.f0.wavelet import import_pyworld
from apipeline.errors import AudioFormatError, ParameterError


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
            raise ParameterError(
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


@functools.cache
def _pyworld() -> ModuleType:
    """pyworld, imported once (the import helper's warning filter costs ~0.1 ms per call)."""
    return import_pyworld()


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
    aperiodicity_rate: int | None = None,
) -> WorldFeatures:
    """WORLD features of mono float audio ``x``.

    ``f0`` is a ready track (resampled onto the frame grid if its hop differs), an estimator, or an
    estimator name. ``f0_floor`` fixes CheapTrick's FFT size (1024 at 16-24 kHz, 2048 at 44.1/48 kHz).
    ``aperiodicity_rate``: above this sample rate D4C runs on ``x`` resampled to it (soxr), and its
    aperiodicity is interpolated onto the envelope's bins (the last value held above the lower Nyquist);
    D4C's cost grows with the rate and it dominated WORLD's analysis at 48 kHz (see
    :data:`APERIODICITY_RATE`). Raises AudioFormatError for empty, non-float, multichannel or non-finite
    input.
    """
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
        raise ParameterError(
            f"world.analyze: frames must satisfy 0 <= start < stop <= {n}, got ({start}, {stop})"
        )
    f0_sel = np.ascontiguousarray(np.where(track.voiced, track.f0_hz, 0.0)[start:stop], dtype=np.float64)
    times = np.arange(start, stop, dtype=np.float64) * hop_s
    sp, ap, fft_size = spectral_at(
        audio, sample_rate, f0_sel, times, f0_floor, aperiodicity_threshold, aperiodicity_rate
    )
    return WorldFeatures(f0_sel, sp, ap, frame_period_ms, fft_size, sample_rate, start)


def spectral_at(
    audio: NDArray[np.floating],
    sample_rate: int,
    f0: NDArray[np.float64],
    times: NDArray[np.float64],
    f0_floor: float = 71.0,
    aperiodicity_threshold: float = 0.85,
    aperiodicity_rate: int | None = None,
) -> tuple[NDArray[np.float64], NDArray[np.float64], int]:
    """CheapTrick envelope and D4C aperiodicity at the instants ``times`` (s) with F0 ``f0`` (0 = unvoiced).

    ``audio`` is validated float64 mono (see :func:`analyze`, which also explains the keywords). Each
    frame depends only on the samples around it, so any subset of frames can be analysed. Returns
    ``(sp, ap, fft_size)``.
    """
    sp, fft_size = envelope_at(audio, sample_rate, f0, times, f0_floor)
    ap = aperiodicity_at(
        audio, sample_rate, f0, times, fft_size, f0_floor, aperiodicity_threshold, aperiodicity_rate
    )
    return sp, ap, fft_size


def envelope_at(
    audio: NDArray[np.floating],
    sample_rate: int,
    f0: NDArray[np.float64],
    times: NDArray[np.float64],
    f0_floor: float = 71.0,
) -> tuple[NDArray[np.float64], int]:
    """CheapTrick envelope at ``times`` (see :func:`spectral_at`); returns ``(sp, fft_size)``."""
    pw = _pyworld()
    f0 = np.ascontiguousarray(f0, dtype=np.float64)
    times = np.ascontiguousarray(times, dtype=np.float64)
    fft_size = int(pw.get_cheaptrick_fft_size(sample_rate, f0_floor))
    sp = pw.cheaptrick(audio, f0, times, sample_rate, f0_floor=f0_floor, fft_size=fft_size)
    return np.asarray(sp, dtype=np.float64), fft_size


def aperiodicity_at(
    audio: NDArray[np.floating],
    sample_rate: int,
    f0: NDArray[np.float64],
    times: NDArray[np.float64],
    fft_size: int,
    f0_floor: float = 71.0,
    aperiodicity_threshold: float = 0.85,
    aperiodicity_rate: int | None = None,
) -> NDArray[np.float64]:
    """D4C aperiodicity at ``times`` on ``fft_size``'s bins (see :func:`spectral_at`)."""
    pw = _pyworld()
    f0 = np.ascontiguousarray(f0, dtype=np.float64)
    times = np.ascontiguousarray(times, dtype=np.float64)
    if aperiodicity_rate is not None and sample_rate > aperiodicity_rate:
        low = soxr.resample(audio, sample_rate, aperiodicity_rate, quality="HQ")
        low_fft = int(pw.get_cheaptrick_fft_size(aperiodicity_rate, f0_floor))
        ap_low = pw.d4c(low, f0, times, aperiodicity_rate, threshold=aperiodicity_threshold, fft_size=low_fft)
        return _bins_to(ap_low, aperiodicity_rate, fft_size, sample_rate)
    ap = pw.d4c(audio, f0, times, sample_rate, threshold=aperiodicity_threshold, fft_size=fft_size)
    return np.asarray(ap, dtype=np.float64)


APERIODICITY_RATE = 24000
"""The streaming analysis runs D4C at most at this rate: at 48 kHz it then costs 2.5x less, and the
aperiodicity differs from full-rate D4C by a median 0.03-0.05 dB below 8 kHz and 0.6-0.9 dB above (CMU
ARCTIC speech resampled to 48 kHz, voiced frames)."""


def _bins_to(ap: NDArray[np.float64], rate: int, fft_size: int, sample_rate: int) -> NDArray[np.float64]:
    """Aperiodicity rows on ``rate``'s bins, interpolated onto ``fft_size`` bins at ``sample_rate``."""
    src = np.linspace(0.0, rate / 2.0, ap.shape[1])
    dst = np.linspace(0.0, sample_rate / 2.0, fft_size // 2 + 1)
    idx = np.minimum(np.searchsorted(src, dst, side="right") - 1, src.shape[0] - 2)
    w = np.clip((dst - src[idx]) / (src[idx + 1] - src[idx]), 0.0, 1.0)
    return np.ascontiguousarray(ap[:, idx] * (1.0 - w) + ap[:, idx + 1] * w)


def synthesize(features: WorldFeatures, sample_rate: int | None = None) -> NDArray[np.float64]:
    """Audio (float64) for ``features``; sample 0 is the instant of the first frame (``start_frame``).

    The length is ``num_frames * frame_period`` in samples (rounded as WORLD does).
    """
    pw = _pyworld()
    rate = features.sample_rate if sample_rate is None else sample_rate
    if rate != features.sample_rate:
        raise AudioFormatError(
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


SYNTHESIS_RESPONSE_S = 0.02
"""Shortest pulse response (s) the streaming synthesis keeps: see :func:`synthesis_fft_size`."""


def synthesis_fft_size(sample_rate: int) -> int:
    """FFT size the streaming voice changer synthesises with: the smallest power of two holding
    :data:`SYNTHESIS_RESPONSE_S` (512 at 16-24 kHz, 1024 at 44.1/48 kHz).

    CheapTrick's FFT must hold three periods of the F0 floor (1024 at 22.05 kHz, 2048 at 48 kHz), but
    WORLD synthesis only needs each pulse's response: a minimum-phase formant response has decayed by
    > 30 dB after 20 ms. The envelope is smooth in frequency (CheapTrick smooths it over the F0), so every
    other bin of it (:func:`decimate_bins`) describes it as well; each pulse then costs half as much.
    WORLD calls frames below ``sample_rate / fft_size + 1`` Hz unvoiced: 44 Hz at 22.05 kHz, 48 Hz at 48 kHz.
    """
    size = 1
    while size < SYNTHESIS_RESPONSE_S * sample_rate:
        size *= 2
    return size


def decimate_bins(features: WorldFeatures, fft_size: int) -> WorldFeatures:
    """``features`` with envelope and aperiodicity sampled on the bins of a smaller power-of-two
    ``fft_size`` (every k-th bin, no interpolation); unchanged when it is not smaller."""
    if fft_size >= features.fft_size:
        return features
    step = features.fft_size // fft_size
    if step * fft_size != features.fft_size:
        raise ParameterError(f"decimate_bins: {fft_size} does not divide {features.fft_size}")
    return features.with_(
        sp=np.ascontiguousarray(features.sp[:, ::step]),
        ap=np.ascontiguousarray(features.ap[:, ::step]),
        fft_size=fft_size,
    )


DEFAULT_F0_UNVOICED = 500.0
"""WORLD's excitation rate (Hz) on unvoiced samples: pulses still run there, carrying noise only."""
LEAD_IN_FRAMES = 2


def _hop_samples(frame_period_ms: float, sample_rate: int, where: str) -> int:
    hop = frame_period_ms * sample_rate / 1000.0
    if abs(hop - round(hop)) > 1e-6 or round(hop) < 1:
        raise ParameterError(
            f"{where}: the frame period must be a whole number of samples (see frame_period_for), "
            f"got {frame_period_ms} ms at {sample_rate} Hz = {hop} samples"
        )
    return round(hop)


def excitation_phase(
    f0: NDArray[np.floating], sample_rate: int, frame_period_ms: float, fft_size: int, num_samples: int
) -> NDArray[np.float64]:
    """WORLD's cumulative excitation phase (radians) at each of the first ``num_samples`` output samples.

    Mirrors the time base of WORLD's synthesis: frame F0 below ``sample_rate / fft_size + 1`` counts as
    unvoiced; F0 and voicing are interpolated linearly per sample between frames (one frame extrapolated
    past the end); samples whose interpolated voicing is <= 0.5 run at :data:`DEFAULT_F0_UNVOICED`; the
    phase is the running sum of ``2 pi f / sample_rate`` including the current sample. A pulse is placed
    where the phase crosses a multiple of ``2 pi`` (between samples ``i`` and ``i + 1``, at a fractional
    position), so two syntheses whose phases agree at a sample have their pulses there in common.
    Checked against pyworld's output in ``tests/audio/test_world.py``.
    """
    f = np.asarray(f0, dtype=np.float64).reshape(-1)
    if f.shape[0] < 2:
        raise ParameterError(f"excitation_phase: needs at least 2 frames, got {f.shape[0]}")
    n = f.shape[0]
    coarse = np.empty(n + 1)
    np.copyto(coarse[:n], f)
    coarse[:n][f < sample_rate / fft_size + 1.0] = 0.0
    coarse[n] = 2.0 * coarse[n - 1] - coarse[n - 2]
    vuv = np.empty(n + 1)
    np.not_equal(coarse[:n], 0.0, out=vuv[:n])
    vuv[n] = 2.0 * vuv[n - 1] - vuv[n - 2]
    t, frame_times = _phase_grid(num_samples, float(sample_rate), n + 1, float(frame_period_ms))
    voiced = np.interp(t, frame_times, vuv) > 0.5
    rate = np.interp(t, frame_times, coarse)
    rate[~voiced] = DEFAULT_F0_UNVOICED
    rate *= 2.0 * math.pi / sample_rate
    return np.cumsum(rate, out=rate)


@functools.lru_cache(maxsize=16)
def _phase_grid(
    num_samples: int, sample_rate: float, frames: int, frame_period_ms: float
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Sample and frame instants (s) of :func:`excitation_phase` (read-only: shared between calls)."""
    t = np.arange(num_samples, dtype=np.float64) / sample_rate
    frame_times = np.arange(frames, dtype=np.float64) * (frame_period_ms / 1000.0)
    t.flags.writeable = False
    frame_times.flags.writeable = False
    return t, frame_times


def synthesize_phase_locked(
    features: WorldFeatures, lock: tuple[int, float] | None = None
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Like :func:`synthesize`, with the pulse train's phase chosen; returns ``(audio, excitation phase)``.

    ``lock = (index, phase)`` asks for excitation phase ``phase`` (radians, any value: taken modulo
    ``2 pi``) at output sample ``index``: the synthesis then continues, near that sample, the pulse train
    of another synthesis whose :func:`excitation_phase` had that value there. Two lead-in frames (F0
    solved for, envelope and aperiodicity of the first frame) are synthesised before the first frame and
    dropped, so sample 0 is still the first frame's instant. ``lock=None`` picks the lead-in F0 nearest
    the first frame's. The phase array (same length as the audio) says where this synthesis' pulses are,
    to lock the next one. The frame period must be a whole number of samples.
    """
    rate, period = features.sample_rate, features.frame_period_ms
    hop = _hop_samples(period, rate, "world.synthesize_phase_locked")
    lead = LEAD_IN_FRAMES * hop
    n = features.num_frames + LEAD_IN_FRAMES
    if lock is not None and not 0 <= lock[0] < features.num_frames * hop - 1:
        raise ParameterError(
            f"world.synthesize_phase_locked: lock index must be in [0, {features.num_frames * hop - 1}), "
            f"got {lock[0]}"
        )

    def lead_in(value: float) -> NDArray[np.float64]:
        return np.concatenate([np.full(LEAD_IN_FRAMES, value), features.f0])

    # the phase is affine in the lead-in F0 (which stays voiced): two evaluations give slope and offset
    f_lo, f_hi = 70.0, 170.0
    # (the lead-in F0 only reaches the samples before the first frame, so past them the slope is constant)
    phase_lo = excitation_phase(lead_in(f_lo), rate, period, features.fft_size, n * hop)
    head = lead + 1
    phase_hi = excitation_phase(lead_in(f_hi), rate, period, features.fft_size, head)
    slope = np.empty_like(phase_lo)
    slope[:head] = (phase_hi - phase_lo[:head]) / (f_hi - f_lo)
    slope[head:] = slope[head - 1]
    first = float(features.f0[0])
    guess = first if first >= f_lo else 100.0
    if lock is None:
        lead_f0 = guess
    else:
        index, phase = lead + lock[0], lock[1]
        step = 2.0 * math.pi / slope[index]  # F0 change that turns the phase at ``index`` by one cycle
        base = f_lo + ((phase - phase_lo[index]) % (2.0 * math.pi)) / slope[index]
        lead_f0 = base + step * max(0.0, round((guess - base) / step))
    padded = features.with_(
        f0=lead_in(lead_f0),
        sp=np.concatenate([np.repeat(features.sp[:1], LEAD_IN_FRAMES, axis=0), features.sp]),
        ap=np.concatenate([np.repeat(features.ap[:1], LEAD_IN_FRAMES, axis=0), features.ap]),
    )
    y = synthesize(padded)[lead:]
    full_phase = phase_lo + (lead_f0 - f_lo) * slope
    return y, full_phase[lead : lead + y.shape[0]]
