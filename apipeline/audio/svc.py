"""Voice conversion on WORLD features: pitch shift, F0 mapping, formant warp, loudness envelope matching.

Pure numpy; the vocoder is separate (:mod:`apipeline.audio.vocoder`). Conversion order in
:class:`VoiceConversion`: map F0 to the target speaker's statistics (optional), shift by semitones, warp
the spectral envelope; the aperiodicity is left alone (it is a ratio, not a resonance). Loudness matching
works on audio, after synthesis, because it compares the input's and the output's RMS envelopes.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from apipeline.audio.world import WorldFeatures
from apipeline.errors import ParameterError

Array = NDArray[np.float64]


def shift_pitch(f0: Array, semitones: float) -> Array:
    """F0 scaled by ``2 ** (semitones / 12)`` on voiced frames; unvoiced frames (0) stay 0."""
    f0 = np.asarray(f0, dtype=np.float64)
    return np.where(f0 > 0, f0 * 2.0 ** (semitones / 12.0), 0.0)


@dataclass(frozen=True, slots=True)
class F0Stats:
    """Mean and standard deviation of log(F0) (natural log) over voiced frames, and how many frames."""

    mean_log: float
    std_log: float
    count: int

    @classmethod
    def from_f0(cls, f0: Array) -> F0Stats:
        """Statistics of the voiced (> 0) frames; ValueError when there are none."""
        voiced = np.asarray(f0)[np.asarray(f0) > 0]
        if voiced.size == 0:
            raise ParameterError("F0Stats.from_f0: no voiced frame to take statistics from")
        logs = np.log(voiced)
        return cls(float(logs.mean()), float(logs.std()), int(voiced.size))

    @property
    def mean_hz(self) -> float:
        return float(np.exp(self.mean_log))


def map_f0(
    f0: Array, source_stats: F0Stats, target_mean_hz: float, target_range: float | None = None
) -> Array:
    """Map F0 onto a target speaker: standardise log-F0 with the source stats, rescale to the target's.

    ``target_range`` is the target's log-F0 standard deviation in semitones; None keeps the source's spread
    (a pure transposition to the target mean).
    """
    if target_mean_hz <= 0:
        raise ParameterError(f"map_f0: target_mean_hz must be positive, got {target_mean_hz}")
    f0 = np.asarray(f0, dtype=np.float64)
    voiced = f0 > 0
    logs = np.log(np.where(voiced, f0, 1.0))
    if target_range is None:
        scale = 1.0
    else:
        target_std = target_range * np.log(2.0) / 12.0
        scale = target_std / source_stats.std_log if source_stats.std_log > 1e-9 else 0.0
    mapped = np.log(target_mean_hz) + (logs - source_stats.mean_log) * scale
    return np.where(voiced, np.exp(mapped), 0.0)


def warp_formants(sp: Array, ratio: float, sample_rate: int) -> Array:
    """Spectral envelope warped along frequency: ``out(f) = sp(f / ratio)``, interpolated in log magnitude.

    ``ratio > 1`` moves every resonance up by that factor (a peak at 500 Hz goes to ``500 * ratio``);
    values needed beyond Nyquist hold the top bin. ``sp`` has shape (frames, bins) or (bins,).
    """
    if not ratio > 0:
        raise ParameterError(f"warp_formants: ratio must be positive, got {ratio}")
    sp = np.asarray(sp, dtype=np.float64)
    if ratio == 1.0:
        return sp.copy()
    lo, frac = _warp_plan(sp.shape[-1], float(ratio))
    # in float32: log and exp cost ~5x less than in float64 here, and a relative error of ~1e-7 in an
    # envelope is far below anything audible (the envelope is synthesised in float64 again)
    log_sp = np.log(np.maximum(sp, 1e-30).astype(np.float32))
    below = log_sp.take(lo, axis=-1)
    warped = log_sp.take(lo + 1, axis=-1)
    warped -= below
    warped *= frac
    warped += below
    return np.exp(warped, out=warped).astype(np.float64)


@functools.lru_cache(maxsize=64)
def _warp_plan(bins: int, ratio: float) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    """Source bin and fraction of every output bin for :func:`warp_formants` (bins are evenly spaced
    from 0 to Nyquist, so the plan depends on the bin count and the ratio only)."""
    pos = np.clip(np.arange(bins, dtype=np.float64) / ratio, 0.0, bins - 1)
    lo = np.minimum(np.floor(pos).astype(np.int64), bins - 2)
    return lo, (pos - lo).astype(np.float32)


def rms_envelope(x: Array, sample_rate: int, frame_seconds: float, at_seconds: Array) -> Array:
    """RMS of ``x`` in frames of ``2 * frame_seconds`` every ``frame_seconds``, read at ``at_seconds``."""
    hop = max(1, round(frame_seconds * sample_rate))
    width = 2 * hop
    x = np.asarray(x, dtype=np.float64)
    n_frames = x.shape[0] // hop + 1
    padded = np.pad(x, (hop, hop + width))
    csum = np.concatenate([[0.0], np.cumsum(np.square(padded))])
    starts = np.arange(n_frames) * hop
    rms = np.sqrt(np.maximum(csum[starts + width] - csum[starts], 0.0) / width)
    return np.interp(at_seconds, starts / sample_rate, rms)


def change_rms(
    source: Array, sr_src: int, output: Array, sr_out: int, rate: float, frame_seconds: float = 0.5
) -> NDArray[np.float64]:
    """Give ``output`` the loudness envelope of ``source`` in proportion ``1 - rate``.

    Both envelopes are frame RMS (``frame_seconds`` hop), read at each output sample's time; the gain is
    ``rms_src ** (1 - rate) * rms_out ** (rate - 1)``: ``rate = 1`` leaves ``output`` as it is,
    ``rate = 0`` replaces its envelope by the source's. The two signals must cover the same time span.
    """
    if not 0.0 <= rate <= 1.0:
        raise ParameterError(f"change_rms: rate must be within [0, 1], got {rate}")
    out = np.asarray(output, dtype=np.float64)
    if rate == 1.0:
        return out.copy()
    t = np.arange(out.shape[0]) / sr_out
    rms_src = rms_envelope(source, sr_src, frame_seconds, t)
    rms_out = np.maximum(rms_envelope(out, sr_out, frame_seconds, t), 1e-6)
    return out * rms_src ** (1.0 - rate) * rms_out ** (rate - 1.0)


@dataclass(frozen=True, slots=True)
class VoiceConversion:
    """A conversion recipe applied to WORLD features.

    ``pitch_semitones``: shift after any mapping. ``formant_ratio``: envelope warp (>1 = smaller vocal
    tract). ``target_f0_mean``/``target_f0_range``: map F0 to a target speaker (mean in Hz, spread in
    semitones or None) using ``source_f0_stats`` or, when None, statistics passed to :meth:`convert`.
    ``rms_mix_rate``: loudness matching share of the output's own envelope (1 = off), with RMS frames of
    ``rms_frame_seconds``.
    """

    pitch_semitones: float = 0.0
    formant_ratio: float = 1.0
    target_f0_mean: float | None = None
    target_f0_range: float | None = None
    source_f0_stats: F0Stats | None = None
    rms_mix_rate: float = 1.0
    rms_frame_seconds: float = 0.02

    def __post_init__(self) -> None:
        if not self.formant_ratio > 0:
            raise ParameterError(f"VoiceConversion: formant_ratio must be positive, got {self.formant_ratio}")
        if not 0.0 <= self.rms_mix_rate <= 1.0:
            raise ParameterError(
                f"VoiceConversion: rms_mix_rate must be within [0, 1], got {self.rms_mix_rate}"
            )
        if self.target_f0_mean is not None and self.target_f0_mean <= 0:
            raise ParameterError(
                f"VoiceConversion: target_f0_mean must be positive, got {self.target_f0_mean}"
            )

    def convert_f0(self, f0: Array, stats: F0Stats | None = None) -> Array:
        """Mapped (if a target is set) then shifted F0."""
        out = np.asarray(f0, dtype=np.float64)
        if self.target_f0_mean is not None:
            source = self.source_f0_stats or stats
            if source is None:
                source = F0Stats.from_f0(out) if (out > 0).any() else None
            if source is not None:
                out = map_f0(out, source, self.target_f0_mean, self.target_f0_range)
        if self.pitch_semitones:
            out = shift_pitch(out, self.pitch_semitones)
        return out

    def convert(self, features: WorldFeatures, stats: F0Stats | None = None) -> WorldFeatures:
        """Converted features (new arrays; the input is not modified)."""
        f0 = self.convert_f0(features.f0, stats)
        sp = warp_formants(features.sp, self.formant_ratio, features.sample_rate)
        return features.with_(f0=f0, sp=sp)

    def match_loudness(self, source: Array, sr_src: int, output: Array, sr_out: int) -> NDArray[np.float64]:
        """``output`` with ``change_rms`` applied at ``rms_mix_rate`` (a copy when the rate is 1)."""
        return change_rms(source, sr_src, output, sr_out, self.rms_mix_rate, self.rms_frame_seconds)
